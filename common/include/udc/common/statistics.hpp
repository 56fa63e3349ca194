// Summaries of repeated measurements (runs over seeds): mean and sample standard deviation;
// Spearman's rank correlation of two orderings (a derivation's ranking against results);
// the Pareto front of points with several costs.
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

/// Ranks 1..n of `values`, ties given the mean of the ranks they span (1 is the smallest).
std::vector<double> fractional_ranks(const std::vector<double>& values);

/// Spearman's rank correlation of paired values: Pearson's correlation of their fractional
/// ranks, in [-1, 1]. NaN when there are fewer than two pairs or either side's ranks are
/// all equal (no ordering to compare). Throws std::invalid_argument on unequal lengths.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

/// Which points no other point dominates. Each point's costs are all to be minimised (negate
/// a figure to be maximised); q dominates p when q is no worse in every cost and better in
/// one, so equal points are all on the front. Throws std::invalid_argument when points have
/// different numbers of costs.
std::vector<bool> pareto_front(const std::vector<std::vector<double>>& costs);

}  // namespace udc::common
