#include "udc/int8/fixed_point.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <tuple>

namespace udc::int8 {

std::pair<int32_t, int32_t> quantize_multiplier(double real) {
  if (!(real >= 0.0) || !std::isfinite(real)) {
    throw std::invalid_argument(fmt::format("multiplier {} must be finite and non-negative", real));
  }
  if (real == 0.0) return {0, 0};
  int exponent = 0;
  const double fraction = std::frexp(real, &exponent);  // real = fraction * 2^exponent
  int64_t q = std::llround(fraction * double(int64_t{1} << 31));
  if (q == (int64_t{1} << 31)) {  // the fraction rounded up to 1.0
    q /= 2;
    ++exponent;
  }
  if (exponent < -31) return {0, 0};  // below the smallest representable step
  if (exponent > 30) {
    throw std::invalid_argument(fmt::format("multiplier {} too large (at most 2^30)", real));
  }
  return {int32_t(q), exponent};
}

std::pair<int32_t, int32_t> channel_multiplier(float input_scale, float weight_scale,
                                               float output_scale) {
  return quantize_multiplier(double(input_scale) * double(weight_scale) / double(output_scale));
}

AddParams add_params(double s1, double s2, double s_out) {
  AddParams p;
  p.left_shift = 20;
  // Both inputs are brought to twice the larger input scale, so that their sum keeps
  // the headroom of left_shift bits; the output multiplier undoes the common scale.
  const double twice_max = 2.0 * std::max(s1, s2);
  std::tie(p.input1_multiplier, p.input1_shift) = quantize_multiplier(s1 / twice_max);
  std::tie(p.input2_multiplier, p.input2_shift) = quantize_multiplier(s2 / twice_max);
  std::tie(p.output_multiplier, p.output_shift) =
      quantize_multiplier(twice_max / (double(1 << p.left_shift) * s_out));
  return p;
}

}  // namespace udc::int8
