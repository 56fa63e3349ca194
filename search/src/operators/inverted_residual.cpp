// "ir<e>": the MobileNetV2 inverted residual block. A 1x1 expansion to e x the input width
// (absent when e = 1), a kxk depthwise (dense, the block's kernel and stride), a 1x1
// projection to the block's width without ReLU, and the input added back when the shapes
// agree.
#include <string>

#include "operators.hpp"

namespace udc::search {

namespace {

using Shape = OperatorLayer::Shape;

/// Expansions a config may name: 1..kMaxExpansion.
constexpr uint32_t kMaxExpansion = 16;

std::vector<OperatorLayer> inverted_residual_layers(uint32_t expansion) {
  //       shape            role      window hidden-in hidden-out relu   prunable
  const OperatorLayer expand{Shape::Conv, "expand", false, false, true, true, true};
  const OperatorLayer depthwise{Shape::Depthwise, "dw", true, true, true, true, false};
  const OperatorLayer project{Shape::Conv, "project", false, true, false, false, true};
  if (expansion > 1) return {expand, depthwise, project};
  return {depthwise, project};
}

class InvertedResidual final : public SearchOperator {
 public:
  explicit InvertedResidual(uint32_t expansion)
      : SearchOperator(inverted_residual_layers(expansion)), expansion_(expansion) {}
  std::string name() const override { return "ir" + std::to_string(expansion_); }
  uint32_t expansion() const override { return expansion_; }
  bool adds_input() const override { return true; }
  // One derived layer of kind InvertedResidual with a bitwidth and sparsity per sub-layer.
  void derive(const ChosenOperator& chosen, std::vector<LayerSpec>& layers) const override {
    LayerSpec block = block_layer(chosen);
    block.kind = LayerKind::InvertedResidual;
    block.expansion = expansion_;
    block.sublayer_bits = chosen.bits;
    block.sublayer_sparsity = chosen.sparsity;
    block.weight_bits = block.sublayer_bits.back();
    block.sparsity = block.sublayer_sparsity.back();
    layers.push_back(block);
  }

 private:
  uint32_t expansion_;  ///< hidden channels per input channel
};

}  // namespace

OperatorPtr parse_inverted_residual(const std::string& text) {
  // "ir" and one or two digits.
  if (text.size() < 3 || text.size() > 4 || text.compare(0, 2, "ir") != 0 ||
      text.find_first_not_of("0123456789", 2) != std::string::npos) {
    return nullptr;
  }
  const auto expansion = uint32_t(std::stoul(text.substr(2)));
  if (expansion < 1 || expansion > kMaxExpansion) return nullptr;
  return std::make_shared<InvertedResidual>(expansion);
}

}  // namespace udc::search
