#include "udc/compression/size_estimate.hpp"

#include <algorithm>
#include <cmath>

#include "symbol_cost.hpp"

namespace udc::compression {
namespace {

/// Expected unary padding of the last chunk of a stream, in bits.
constexpr double kExpectedChunkPadding = 5.5;

uint64_t slice_count(uint64_t symbols) {
  return std::max<uint64_t>(1, (symbols + format::kMaxSliceLength - 1) / format::kMaxSliceLength);
}

/// Expected bits of the zero runs between `nonzero` weights when each weight is zero
/// with probability `p`: runs are geometric, P(run >= k) = p^k, so
/// E[run >> d] = sum_{k>=1} p^(k 2^d) = p^(2^d) / (1 - p^(2^d)).
double geometric_run_bits(uint64_t nonzero, double p) {
  const double runs = static_cast<double>(nonzero + 1);
  double best = HUGE_VAL;
  for (int d = 0; d <= format::kMaxZdiv; ++d) {
    const double pm = std::pow(p, static_cast<double>(1 << d));
    const double mean_quotient = pm < 1 ? pm / (1 - pm) : HUGE_VAL;
    best = std::min(best, runs * (1 + d + mean_quotient) + kExpectedChunkPadding);
  }
  return best;
}

}  // namespace

WeightHistogram WeightHistogram::of(const int8_t* weights, size_t count) {
  std::array<uint64_t, 256> by_byte{};
  for (size_t i = 0; i < count; ++i) ++by_byte[static_cast<uint8_t>(weights[i])];
  WeightHistogram histogram;
  for (int byte = 0; byte < 256; ++byte) {
    if (by_byte[byte]) histogram.add(static_cast<int8_t>(byte), by_byte[byte]);
  }
  return histogram;
}

SizeEstimate estimate_stream_size(const WeightHistogram& histogram) {
  SizeEstimate estimate;
  const uint64_t total = histogram.total();
  if (total > 0) {
    detail::CodeHistogram codes{};
    for (int weight = format::kMinWeight; weight <= format::kMaxWeight; ++weight) {
      codes[format::to_sign_magnitude(weight)] += histogram.count(weight);
    }
    const double plain = static_cast<double>(detail::choose_palette(codes, false).weight_bits) +
                         static_cast<double>(slice_count(total) * format::kSliceHeaderBits) +
                         kExpectedChunkPadding;
    estimate.payload_bits = plain;
    const uint64_t zeros = histogram.count(0);
    if (zeros > 0) {
      const uint64_t nonzero = total - zeros;
      double alternating;
      if (nonzero == 0) {
        // One explicit zero, then a single run of the rest at the largest divisor.
        alternating = static_cast<double>(detail::choose_palette(codes, true).weight_bits) +
                      format::kSliceHeaderBits + static_cast<double>(total - 1) / 8.0 +
                      2 * (1 + 3) + kExpectedChunkPadding;
      } else {
        alternating =
            static_cast<double>(detail::choose_palette(codes, true).weight_bits) +
            static_cast<double>(slice_count(nonzero) * format::kSliceHeaderBits) +
            kExpectedChunkPadding +
            geometric_run_bits(nonzero, static_cast<double>(zeros) / static_cast<double>(total));
      }
      if (alternating < plain) {
        estimate.payload_bits = alternating;
        estimate.zero_runs = true;
      }
    }
  }
  const uint64_t bits = static_cast<uint64_t>(std::ceil(estimate.payload_bits)) + format::kZdivBits;
  const uint64_t bytes = (bits + 7) / 8;
  estimate.stream_bytes = (bytes + format::kStreamAlignmentBytes - 1) /
                          format::kStreamAlignmentBytes * format::kStreamAlignmentBytes;
  return estimate;
}

}  // namespace udc::compression
