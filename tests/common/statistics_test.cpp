// Mean and sample standard deviation against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace udc::common
