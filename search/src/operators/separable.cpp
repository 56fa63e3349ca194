// "separable": a kxk depthwise convolution (dense, the block's kernel and stride) then a
// 1x1 convolution to the block's width, each with batch norm and ReLU (MobileNetV1).
#include "operators.hpp"

namespace udc::search {

namespace {

using Shape = OperatorLayer::Shape;

class Separable final : public SearchOperator {
 public:
  // The depthwise writes the "hidden" width, which for an expansion of 1 is the block's
  // input width: its channels are masked to the active input width.
  Separable()
      : SearchOperator({{Shape::Depthwise, "dw", /*windowed=*/true, /*from_hidden=*/false,
                         /*to_hidden=*/true, /*relu=*/true, /*prunable=*/false},
                        {Shape::Conv, "pw", false, /*from_hidden=*/true, false, true, true}}) {}
  std::string name() const override { return "separable"; }
  void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const override {
    LayerSpec depthwise = block_layer(chosen);
    depthwise.kind = LayerKind::Depthwise;
    depthwise.name = chosen.block + "_dw";
    depthwise.out_channels = 0;  // a depthwise layer keeps its input's channels
    depthwise.weight_bits = chosen.bits.at(0);
    depthwise.sparsity = 0.0;
    layers.push_back(depthwise);
    LayerSpec pointwise = block_layer(chosen);
    pointwise.kind = LayerKind::Conv;
    pointwise.name = chosen.block + "_pw";
    pointwise.kernel = 1;
    pointwise.stride = 1;
    pointwise.weight_bits = chosen.bits.at(1);
    pointwise.sparsity = chosen.sparsity.at(1);
    layers.push_back(pointwise);
  }
};

}  // namespace

OperatorPtr parse_separable(const std::string& text) {
  return text == "separable" ? std::make_shared<Separable>() : nullptr;
}

}  // namespace udc::search
