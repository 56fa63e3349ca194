// Mean, sample standard deviation, Spearman's rank correlation and the Pareto front
// against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "udc/common/statistics.hpp"

namespace udc::common {
namespace {

TEST(Statistics, MeanAndSampleStandardDeviation) {
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations 32, sample variance 32 / 7.
  const Spread s = spread_of({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8u);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(32.0 / 7.0));
  EXPECT_EQ(format_spread(spread_of({88.0, 89.0}), 2), "88.50 ± 0.71");
  const Spread one = spread_of({3.5});
  EXPECT_EQ(one.n, 1u);
  EXPECT_EQ(one.mean, 3.5);
  EXPECT_EQ(one.std, 0.0);
  EXPECT_EQ(spread_of({}).n, 0u);
}

TEST(Statistics, SpearmanRankCorrelation) {
  // Without ties, rho = 1 - 6 sum(d^2) / (n (n^2 - 1)): rank differences 0, -1, 1, -1, 1
  // give 1 - 6 * 4 / (5 * 24) = 0.8.
  EXPECT_DOUBLE_EQ(spearman_correlation({10, 20, 30, 40, 50}, {1, 3, 2, 5, 4}), 0.8);
  // Only the order counts: any increasing map of one side keeps the value.
  EXPECT_DOUBLE_EQ(spearman_correlation({0.1, 0.2, 0.3, 0.4, 0.5}, {1, 30, 2, 500, 40}), 0.8);
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3}, {30, 20, 10}), -1.0);
  // Ties take the mean rank: {1, 2.5, 2.5, 4} against {1, 2, 3, 4}, deviations from 2.5
  // multiply to 4.5 over sqrt(4.5 * 5).
  EXPECT_EQ(fractional_ranks({1, 2, 2, 3}), (std::vector<double>{1, 2.5, 2.5, 4}));
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(22.5));
  // No ordering on one side, or too few pairs: undefined.
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman_correlation({1}, {2})));
  EXPECT_THROW(spearman_correlation({1, 2}, {1}), std::invalid_argument);
}

TEST(Statistics, ParetoFrontOfCostsToMinimise) {
  // (bytes, -accuracy): A (2, -85) and C (8, -91) trade off; B (8, -89) is beaten by C in
  // accuracy at equal bytes; D (9, -91) by C in bytes at equal accuracy; E equals A and
  // stays on the front with it (nothing is strictly better).
  const std::vector<std::vector<double>> points{{2, -85}, {8, -89}, {8, -91}, {9, -91}, {2, -85}};
  EXPECT_EQ(pareto_front(points), (std::vector<bool>{true, false, true, false, true}));
  // Three costs: a point worse in one and better in another is not dominated.
  EXPECT_EQ(pareto_front({{1, 1, 1}, {2, 2, 0}, {2, 2, 2}}),
            (std::vector<bool>{true, true, false}));
  EXPECT_TRUE(pareto_front({}).empty());
  EXPECT_THROW(pareto_front({{1, 2}, {1}}), std::invalid_argument);
}

}  // namespace
}  // namespace udc::common
