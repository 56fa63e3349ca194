// Bit costs of weight and zero-run symbols under each Golomb-Rice configuration,
// and the choice of palette from a histogram. Shared by the encoder (which then
// refines slices) and the histogram size estimator.
#pragma once

#include <array>
#include <cstdint>

#include "udc/compression/encoder.hpp"
#include "udc/compression/format.hpp"

namespace udc::compression::detail {

/// Weight configurations a slice can use: plain Golomb-Rice with divisor 2^d
/// (ids 0..5), truncated Golomb-Rice (ids 6..11), uncompressed (id 12).
constexpr int kWeightConfigs = 13;
constexpr int kTruncatedConfigBase = 6;
constexpr int kUncompressedConfig = 12;
/// Zero-run configurations: Golomb-Rice divisor 2^d, d = 0..3.
constexpr int kZeroRunConfigs = format::kMaxZdiv + 1;

struct WeightConfig {
  int divisor = 0;  ///< log2 of the divisor (ignored when uncompressed)
  bool truncated = false;
  bool uncompressed = false;
};

constexpr WeightConfig weight_config(int id) {
  if (id == kUncompressedConfig) return {0, false, true};
  if (id >= kTruncatedConfigBase) return {id - kTruncatedConfigBase, true, false};
  return {id, false, false};
}

constexpr int weight_config_id(const WeightConfig& config) {
  if (config.uncompressed) return kUncompressedConfig;
  return config.truncated ? kTruncatedConfigBase + config.divisor : config.divisor;
}

/// Returns the bits of one weight symbol with this index, or -1 where the
/// configuration cannot code it. Uncompressed cost depends on the section, see
/// uncompressed_index_bits().
constexpr int weight_symbol_bits(int index, int config_id, int uncompressed_bits) {
  const WeightConfig config = weight_config(config_id);
  if (config.uncompressed) return index < (1 << uncompressed_bits) ? uncompressed_bits : -1;
  const int quotient = index >> config.divisor;
  if (config.truncated) {
    if (quotient > 2) return -1;
    return (quotient == 0 ? 1 : 2) + config.divisor;
  }
  if (quotient > format::kMaxWeightQuotient) return -1;
  return quotient + 1 + config.divisor;
}

/// Width of uncompressed weight indices for a palette (the decoder derives it the
/// same way: from the palette size, or from PALBITS without a palette).
inline int uncompressed_index_bits(const Palette& palette) {
  return palette.entries.empty() ? palette.entry_bits
                                 : format::ceil_log2(static_cast<int>(palette.entries.size()));
}

/// Bits of a slice header, with its palette when it loads one.
inline uint64_t slice_header_bits(const Palette& palette, bool loads_palette) {
  uint64_t bits = format::kSliceHeaderBits;
  if (loads_palette) {
    bits += format::kPaletteHeaderBits + static_cast<uint64_t>(palette.entries.size()) *
                                             static_cast<uint64_t>(palette.entry_bits);
  }
  return bits;
}

/// Counts of weights by sign-magnitude code (0..511).
using CodeHistogram = std::array<uint64_t, format::kMaxIndex + 1>;

struct PaletteChoice {
  Palette palette;
  /// Palette header plus all weight symbols under the single best configuration:
  /// an estimate of the section's weight-stream bits (slicing can only lower it).
  uint64_t weight_bits = 0;
};

/// Chooses the palette (size, entries, direct offset, PALBITS) that minimises the
/// weight-stream bits of `histogram`. With zero runs, code 0 is left out: zeros
/// travel as runs. A histogram with no codes to send yields an empty palette.
PaletteChoice choose_palette(const CodeHistogram& histogram, bool zero_runs);

}  // namespace udc::compression::detail
