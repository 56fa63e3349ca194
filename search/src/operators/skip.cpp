// "skip": the block passes its input on (the depth choice). The config reader requires a
// skippable block to have stride 1, another operator beside it and its input's widths.
#include "operators.hpp"

namespace udc::search {

namespace {

class Skip final : public SearchOperator {
 public:
  Skip() : SearchOperator({}) {}
  std::string name() const override { return "skip"; }
  void derive(const ChosenOperator&, std::vector<LayerSpec>&) const override {}
};

}  // namespace

OperatorPtr parse_skip(const std::string& text) {
  return text == "skip" ? std::make_shared<Skip>() : nullptr;
}

}  // namespace udc::search
