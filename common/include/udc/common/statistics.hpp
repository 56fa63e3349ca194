// Summaries of repeated measurements (runs over seeds): mean and sample standard deviation.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace udc::common {

/// The mean and the sample standard deviation (n - 1 in the denominator; 0 for one value)
/// of `n` values; all zero for none.
struct Spread {
  double mean = 0, std = 0;
  size_t n = 0;
};
Spread spread_of(const std::vector<double>& values);

/// "mean ± std" with `decimals` digits after the point, e.g. "88.37 ± 0.21".
std::string format_spread(const Spread& spread, int decimals);

}  // namespace udc::common
