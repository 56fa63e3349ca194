// "classifier": the fixed last block, global average pooling then a fully connected layer
// to the classes (no ReLU). Not selectable in a config: the reader appends it.
#include "operators.hpp"

namespace udc::search {

namespace {

class Classifier final : public SearchOperator {
 public:
  Classifier()
      : SearchOperator({{OperatorLayer::Shape::FullyConnected, "fc", false, false, false,
                         /*relu=*/false, /*prunable=*/true}}) {}
  std::string name() const override { return "classifier"; }
  void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const override {
    LayerSpec pool;
    pool.kind = LayerKind::GlobalAvgPool;
    pool.name = "pool";
    pool.activation = ActivationKind::None;
    pool.kernel = 1;
    layers.push_back(pool);
    LayerSpec fc = block_layer(chosen);
    fc.kind = LayerKind::FullyConnected;
    fc.kernel = 1;
    fc.activation = ActivationKind::None;
    fc.weight_bits = chosen.bits.at(0);
    fc.sparsity = chosen.sparsity.at(0);
    layers.push_back(fc);
  }
};

}  // namespace

OperatorPtr classifier_operator() {
  static const OperatorPtr classifier = std::make_shared<Classifier>();
  return classifier;
}

}  // namespace udc::search
