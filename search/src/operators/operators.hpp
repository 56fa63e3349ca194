// The parsers of the registered operator families (one per file in this folder), for
// registry.cpp. Each returns the operator spelt `text`, or nullptr when the spelling is
// another family's.
#pragma once

#include <string>

#include "udc/search/search_operator.hpp"

namespace udc::search {

OperatorPtr parse_conv(const std::string& text);
OperatorPtr parse_separable(const std::string& text);
OperatorPtr parse_inverted_residual(const std::string& text);
OperatorPtr parse_skip(const std::string& text);

}  // namespace udc::search
