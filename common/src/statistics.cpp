#include "udc/common/statistics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

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

std::vector<double> fractional_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t first = 0; first < order.size();) {
    size_t last = first + 1;
    while (last < order.size() && values[order[last]] == values[order[first]]) ++last;
    // Positions first..last-1 hold equal values: each takes the mean of ranks first+1..last.
    const double rank = double(first + 1 + last) / 2.0;
    for (size_t k = first; k < last; ++k) ranks[order[k]] = rank;
    first = last;
  }
  return ranks;
}

double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    throw std::invalid_argument(fmt::format(
        "spearman_correlation: {} values against {}; the pairs must match", a.size(), b.size()));
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (a.size() < 2) return nan;
  const std::vector<double> ra = fractional_ranks(a), rb = fractional_ranks(b);
  const double mean = double(a.size() + 1) / 2.0;  // of ranks 1..n, ties included
  double covariance = 0, variance_a = 0, variance_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    covariance += (ra[i] - mean) * (rb[i] - mean);
    variance_a += (ra[i] - mean) * (ra[i] - mean);
    variance_b += (rb[i] - mean) * (rb[i] - mean);
  }
  if (variance_a == 0 || variance_b == 0) return nan;
  return covariance / std::sqrt(variance_a * variance_b);
}

std::vector<bool> pareto_front(const std::vector<std::vector<double>>& costs) {
  for (const std::vector<double>& c : costs) {
    if (c.size() != costs.front().size()) {
      throw std::invalid_argument("pareto_front: points with different numbers of costs");
    }
  }
  auto dominates = [](const std::vector<double>& q, const std::vector<double>& p) {
    bool better = false;
    for (size_t k = 0; k < p.size(); ++k) {
      if (q[k] > p[k]) return false;
      better = better || q[k] < p[k];
    }
    return better;
  };
  std::vector<bool> front(costs.size());
  for (size_t i = 0; i < costs.size(); ++i) {
    front[i] = std::none_of(costs.begin(), costs.end(),
                            [&](const std::vector<double>& q) { return dominates(q, costs[i]); });
  }
  return front;
}

}  // namespace udc::common
