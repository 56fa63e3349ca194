// The integer arithmetic of the TFLite int8 scheme (DESIGN.md section 4): fixed-point
// multipliers, requantisation of an accumulator to an output integer and the int8 ADD.
// This is the one specification that the simulator's output unit, the reference
// interpreter, the exporter and the exact integer forward of training all follow; the
// interpreter stays independent of the simulator in its loops and data layout, not in
// the rounding rules, which are the hardware's contract.
//
// At the bottom of the library stack: no dependency on any other udc library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

namespace udc::int8 {

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

/// Lowest and highest int8 values, the default fused clamp.
constexpr int32_t kMin = -128, kMax = 127;

/// An output integer from an int32 accumulator (bias included): the fixed-point scale,
/// the output zero point and the fused clamp [clamp_min, clamp_max] (within int8).
inline int32_t requantize(int32_t accumulator, int32_t multiplier, int shift, int32_t zero_point,
                          int32_t clamp_min, int32_t clamp_max) {
  return std::clamp(multiply_by_quantized_multiplier(accumulator, multiplier, shift) + zero_point,
                    clamp_min, clamp_max);
}

/// Requantisation of the int8 elementwise ADD (TFLite): both inputs, less their zero
/// points, are shifted left by `left_shift`, scaled to a common scale, summed and scaled
/// to the output. Shifts <= 0 are right shifts. The field order is the .udcm and command
/// stream order; never reorder.
struct AddParams {
  int32_t input1_multiplier = 1 << 30, input1_shift = 0;
  int32_t input2_multiplier = 1 << 30, input2_shift = 0;
  int32_t output_multiplier = 1 << 30, output_shift = 0;
  int32_t left_shift = 20;  ///< headroom applied to both inputs [bits], 0..20
};

/// One output of ADD: a and b are the input integers with zero points za and zb.
inline int32_t add(int32_t a, int32_t za, int32_t b, int32_t zb, const AddParams& p,
                   int32_t zero_point, int32_t clamp_min, int32_t clamp_max) {
  const int32_t scaled_a = multiply_by_quantized_multiplier((a - za) * (1 << p.left_shift),
                                                            p.input1_multiplier, p.input1_shift);
  const int32_t scaled_b = multiply_by_quantized_multiplier((b - zb) * (1 << p.left_shift),
                                                            p.input2_multiplier, p.input2_shift);
  return requantize(scaled_a + scaled_b, p.output_multiplier, p.output_shift, zero_point, clamp_min,
                    clamp_max);
}

/// A real multiplier as TFLite's fixed-point pair: real = multiplier * 2^shift / 2^31,
/// multiplier in [2^30, 2^31) (0 for real = 0 or below the smallest step), shift in
/// -31..30. Throws std::invalid_argument for negative, non-finite or too large values.
std::pair<int32_t, int32_t> quantize_multiplier(double real);

/// The fixed-point pair of one output channel of a convolution or fully connected layer
/// from its float32 scales, as TFLite computes it (input x weight / output, in double
/// precision), so that a model read from or written to a .tflite file requantises exactly
/// as TFLite's kernels do. Throws as quantize_multiplier().
std::pair<int32_t, int32_t> channel_multiplier(float input_scale, float weight_scale,
                                               float output_scale);

/// TFLite's int8 ADD parameters for input scales s1, s2 and output scale s_out
/// [real units per integer step].
AddParams add_params(double s1, double s2, double s_out);

}  // namespace udc::int8
