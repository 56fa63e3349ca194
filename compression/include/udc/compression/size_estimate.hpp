// Cheap size estimate of an encoded weight stream from a histogram alone, for
// cost models that cannot afford (or do not have) the weights in order. For the
// exact size use WeightEncoder::encoded_bytes().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "udc/compression/format.hpp"

namespace udc::compression {

/// Counts of weights by value, -255..255.
class WeightHistogram {
 public:
  void add(int weight, uint64_t count = 1) {
    counts_[static_cast<size_t>(weight - format::kMinWeight)] += count;
    total_ += count;
  }
  uint64_t count(int weight) const {
    return counts_[static_cast<size_t>(weight - format::kMinWeight)];
  }
  uint64_t total() const { return total_; }

  static WeightHistogram of(const int8_t* weights, size_t count);

 private:
  std::array<uint64_t, format::kMaxWeight - format::kMinWeight + 1> counts_{};
  uint64_t total_ = 0;
};

struct SizeEstimate {
  double payload_bits = 0;    ///< slices, before end marker and padding
  uint64_t stream_bytes = 0;  ///< with end marker and 16-byte padding
  bool zero_runs = false;     ///< whether the estimate codes zeros as runs
};

/// Estimates the stream for weights with this histogram, assuming they occur in
/// random order (zero runs geometric) and one Golomb-Rice configuration fits all.
/// Costs O(distinct values), independent of the number of weights.
SizeEstimate estimate_stream_size(const WeightHistogram& histogram);

}  // namespace udc::compression
