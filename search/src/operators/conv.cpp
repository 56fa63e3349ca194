// "conv": one kxk convolution with batch norm and ReLU, the block's kernel and stride.
#include "operators.hpp"

namespace udc::search {

namespace {

class Conv final : public SearchOperator {
 public:
  Conv() : SearchOperator({{OperatorLayer::Shape::Conv, "conv", /*windowed=*/true}}) {}
  std::string name() const override { return "conv"; }
  void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const override {
    LayerSpec conv = block_layer(chosen);
    conv.kind = LayerKind::Conv;
    conv.weight_bits = chosen.bits.at(0);
    conv.sparsity = chosen.sparsity.at(0);
    layers.push_back(conv);
  }
};

}  // namespace

OperatorPtr parse_conv(const std::string& text) {
  return text == "conv" ? std::make_shared<Conv>() : nullptr;
}

}  // namespace udc::search
