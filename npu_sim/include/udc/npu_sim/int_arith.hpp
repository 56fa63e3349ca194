// Fixed-point helpers of the TFLite int8 scheme (DESIGN.md section 4). This is the
// specification the simulator's output unit and the reference interpreter both follow.
#pragma once

#include <cstdint>
#include <limits>

namespace udc::npu_sim {

/// round(a * b / 2^31) with ties toward +infinity, saturating the one overflow case
/// (a = b = INT32_MIN).
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::max();
  const int64_t ab = int64_t{a} * int64_t{b};
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  return static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
}

/// x / 2^exponent rounded to nearest, ties away from zero. exponent in 0..31.
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/// x * multiplier * 2^shift / 2^31 (shift > 0: left), as TFLite's
/// MultiplyByQuantizedMultiplier.
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const int64_t shifted = int64_t{x} * (int64_t{1} << left);
  const int32_t clamped = static_cast<int32_t>(
      shifted > std::numeric_limits<int32_t>::max()   ? std::numeric_limits<int32_t>::max()
      : shifted < std::numeric_limits<int32_t>::min() ? std::numeric_limits<int32_t>::min()
                                                      : shifted);
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(clamped, multiplier), right);
}

}  // namespace udc::npu_sim
