#include "udc/common/statistics.hpp"

#include <fmt/format.h>

#include <cmath>

namespace udc::common {

Spread spread_of(const std::vector<double>& values) {
  Spread s;
  s.n = values.size();
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= double(s.n);
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(squares / double(s.n - 1));
  return s;
}

std::string format_spread(const Spread& spread, int decimals) {
  return fmt::format("{:.{}f} ± {:.{}f}", spread.mean, decimals, spread.std, decimals);
}

}  // namespace udc::common
