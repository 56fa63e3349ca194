// The int8 arithmetic library against independent expectations: exact rational
// arithmetic in long double for the fixed-point products, and the real-valued formulas of
// the TFLite scheme for requantisation and ADD.
#include "udc/int8/fixed_point.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>

namespace udc::int8 {
namespace {

TEST(FixedPoint, MultiplierRoundTripsWithinOneStep) {
  std::mt19937 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const double real =
        std::ldexp(std::uniform_real_distribution<double>(0.5, 1.0)(rng), int(rng() % 40) - 30);
    const auto [m, shift] = quantize_multiplier(real);
    EXPECT_GE(m, 1 << 30);
    const double back = double(m) * std::ldexp(1.0, shift - 31);
    EXPECT_NEAR(back / real, 1.0, 1e-9);
  }
  EXPECT_EQ(quantize_multiplier(0.0), std::make_pair(0, 0));
  EXPECT_THROW(quantize_multiplier(-1.0), std::invalid_argument);
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0, 40)), std::invalid_argument);
}

// With a right shift the result is two roundings of x * m * 2^shift / 2^31: within one
// step of the exact product, and equal to it wherever the product is an integer.
TEST(FixedPoint, MultiplyByQuantizedMultiplierIsTheRoundedProduct) {
  std::mt19937 rng(2);
  for (int i = 0; i < 20000; ++i) {
    const int32_t x = int32_t(rng() % 2000001) - 1000000;
    const int32_t m = int32_t((1u << 30) + rng() % (1u << 30));
    const int shift = -int(rng() % 20);
    const long double exact = (long double)x * m * std::ldexp(1.0L, shift - 31);
    const int32_t got = multiply_by_quantized_multiplier(x, m, shift);
    EXPECT_LE(std::fabs((long double)got - exact), 1.0L) << x << " " << m << " " << shift;
  }
  // Exact products: x * 2^30 / 2^31 = x / 2, ties away from zero (TFLite).
  EXPECT_EQ(multiply_by_quantized_multiplier(6, 1 << 30, 0), 3);
  EXPECT_EQ(multiply_by_quantized_multiplier(5, 1 << 30, 0), 3);
  EXPECT_EQ(multiply_by_quantized_multiplier(-5, 1 << 30, 0), -2);   // doubling high mul: +inf ties
  EXPECT_EQ(multiply_by_quantized_multiplier(-6, 1 << 30, -1), -2);  // -1.5 away from zero
  // Left shifts saturate before the multiply.
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 30, 1 << 30, 4), 1 << 30);  // (2^31-1)/2, up
}

TEST(FixedPoint, RequantizeClampsAndAddsTheZeroPoint) {
  const auto [m, shift] = quantize_multiplier(0.25);
  EXPECT_EQ(requantize(40, m, shift, 3, kMin, kMax), 13);
  EXPECT_EQ(requantize(4000, m, shift, 3, kMin, kMax), kMax);
  EXPECT_EQ(requantize(-4000, m, shift, 3, kMin, kMax), kMin);
  EXPECT_EQ(requantize(-40, m, shift, 3, 3, 9), 3);  // ReLU-like clamp at the zero point
}

// ADD against its real-valued definition: out = (s1 (a - za) + s2 (b - zb)) / s_out + zo,
// within one integer step (the headroom of left_shift keeps the rounding error small).
TEST(FixedPoint, AddFollowsTheRealSum) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> scale(0.005, 0.2);
  for (int trial = 0; trial < 200; ++trial) {
    const double s1 = scale(rng), s2 = scale(rng), so = scale(rng) * 2;
    const AddParams p = add_params(s1, s2, so);
    const int32_t za = int32_t(rng() % 256) - 128, zb = int32_t(rng() % 256) - 128;
    const int32_t zo = int32_t(rng() % 256) - 128;
    for (int i = 0; i < 50; ++i) {
      const int32_t a = int32_t(rng() % 256) - 128, b = int32_t(rng() % 256) - 128;
      const double real = (s1 * (a - za) + s2 * (b - zb)) / so + zo;
      const int32_t got = add(a, za, b, zb, p, zo, kMin, kMax);
      EXPECT_LE(std::fabs(got - std::clamp(real, double(kMin), double(kMax))), 1.0)
          << s1 << " " << s2 << " " << so << " " << a << " " << b;
    }
  }
}

}  // namespace
}  // namespace udc::int8
