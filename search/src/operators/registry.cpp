// The operator registry and what every operator shares. A new operator is one file in this
// folder and one row below (and its parser's declaration in operators.hpp).
#include <algorithm>

#include "operators.hpp"

namespace udc::search {

const std::vector<OperatorRegistration>& operator_registry() {
  static const std::vector<OperatorRegistration> registry{
      {"conv", parse_conv},
      {"separable", parse_separable},
      {"ir<expansion 1..16>", parse_inverted_residual},
      {"skip", parse_skip},
  };
  return registry;
}

OperatorPtr parse_operator(const std::string& text) {
  for (const OperatorRegistration& r : operator_registry()) {
    if (OperatorPtr op = r.parse(text)) return op;
  }
  return nullptr;
}

std::string operator_spellings() {
  std::string text;
  for (const OperatorRegistration& r : operator_registry()) {
    text += (text.empty() ? "" : ", ") + std::string(r.spelling);
  }
  return text;
}

bool SearchOperator::pools_globally() const {
  return std::any_of(layers_.begin(), layers_.end(), [](const OperatorLayer& l) {
    return l.shape == OperatorLayer::Shape::FullyConnected;
  });
}

LayerSpec SearchOperator::block_layer(const ChosenOperator& chosen) {
  LayerSpec layer;
  layer.name = chosen.block;
  layer.out_channels = chosen.out_channels;
  layer.kernel = chosen.kernel;
  layer.stride = chosen.stride;
  layer.activation = ActivationKind::Relu;
  return layer;
}

}  // namespace udc::search
