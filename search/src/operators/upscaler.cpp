// "upscaler": the fixed last block of a super-resolution space, a kxk convolution to
// scale^2 x image channels (no ReLU) whose channels depth_to_space turns into pixels
// (ESPCN's sub-pixel layer). Not selectable in a config: the reader appends it.
#include <stdexcept>

#include "operators.hpp"

namespace udc::search {

namespace {

class Upscaler final : public SearchOperator {
 public:
  explicit Upscaler(uint32_t scale)
      : SearchOperator({{OperatorLayer::Shape::Conv, "subpixel", /*windowed=*/true, false, false,
                         /*relu=*/false, /*prunable=*/true}}),
        scale_(scale) {}
  std::string name() const override { return "upscaler"; }
  uint32_t upscales() const override { return scale_; }
  void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const override {
    LayerSpec conv = block_layer(chosen);
    conv.kind = LayerKind::Conv;
    conv.activation = ActivationKind::None;
    conv.weight_bits = chosen.bits.at(0);
    conv.sparsity = chosen.sparsity.at(0);
    layers.push_back(conv);
    LayerSpec shuffle;
    shuffle.kind = LayerKind::DepthToSpace;
    shuffle.name = "shuffle";
    shuffle.kernel = scale_;
    shuffle.stride = 1;
    shuffle.activation = ActivationKind::None;
    layers.push_back(shuffle);
  }

 private:
  uint32_t scale_;  ///< output pixels per input pixel along each axis
};

}  // namespace

OperatorPtr upscaler_operator(uint32_t scale) {
  if (scale < 2) throw std::invalid_argument("upscaler_operator: scale below 2");
  return std::make_shared<Upscaler>(scale);
}

}  // namespace udc::search
