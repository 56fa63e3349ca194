#include "symbol_cost.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace udc::compression::detail {
namespace {

struct CodeCount {
  int code;
  uint64_t count;
};

/// Bits of every weight config for indices 0..511 (-1 where impossible), without the
/// uncompressed config, whose width depends on the palette.
struct WeightBitsTable {
  std::array<std::array<int16_t, format::kMaxIndex + 1>, kUncompressedConfig> bits{};
  WeightBitsTable() {
    for (int config = 0; config < kUncompressedConfig; ++config) {
      for (int index = 0; index <= format::kMaxIndex; ++index) {
        bits[config][index] = static_cast<int16_t>(weight_symbol_bits(index, config, 0));
      }
    }
  }
};

const WeightBitsTable& weight_bits_table() {
  static const WeightBitsTable table;
  return table;
}

}  // namespace

PaletteChoice choose_palette(const CodeHistogram& histogram, bool zero_runs) {
  std::vector<CodeCount> used;
  used.reserve(histogram.size());
  for (int code = zero_runs ? 1 : 0; code <= format::kMaxIndex; ++code) {
    if (histogram[code] != 0) used.push_back({code, histogram[code]});
  }

  PaletteChoice best;
  best.palette.zero_runs = zero_runs;
  if (used.empty()) {
    // Nothing but zero runs: a single explicit zero (index 0) carries the slice.
    best.weight_bits = slice_header_bits(best.palette, true) - format::kSliceHeaderBits + 1;
    return best;
  }

  // Palette entries are the most frequent codes, most frequent first, so that the
  // most frequent weights get the smallest indices.
  std::vector<CodeCount> by_frequency = used;
  std::stable_sort(by_frequency.begin(), by_frequency.end(),
                   [](const CodeCount& a, const CodeCount& b) { return a.count > b.count; });

  const auto& table = weight_bits_table();
  const int max_entries = std::min<int>(format::kMaxPaletteSize, static_cast<int>(used.size()));
  std::vector<bool> in_palette(format::kMaxIndex + 1, false);
  best.weight_bits = std::numeric_limits<uint64_t>::max();

  for (int entries = 0; entries <= max_entries; ++entries) {
    // Each candidate palette is the previous one plus the next most frequent code.
    if (entries > 0) in_palette[by_frequency[entries - 1].code] = true;
    if (entries == 1) continue;  // the format cannot express a palette of one entry

    // Direct codes: everything outside the palette, shifted down by DIROFS.
    int min_direct = format::kMaxIndex + 1;
    int max_direct = -1;
    for (const CodeCount& c : used) {
      if (in_palette[c.code]) continue;
      min_direct = std::min(min_direct, c.code);
      max_direct = std::max(max_direct, c.code);
    }
    const int direct_offset = max_direct < 0 ? 0 : std::min(min_direct, format::kMaxDirectOffset);
    const int max_index = max_direct < 0 ? entries - 1 : max_direct - direct_offset + entries;
    if (max_index > format::kMaxIndex) continue;

    int palette_max_code = 0;
    for (int i = 0; i < entries; ++i)
      palette_max_code = std::max(palette_max_code, by_frequency[i].code);
    const int entry_bits =
        entries > 0 ? std::max(format::kMinPaletteBits, format::bit_width(palette_max_code))
                    : std::max(format::kMinPaletteBits, format::bit_width(max_index));

    // Sum symbol costs over the histogram for every configuration at once.
    std::array<uint64_t, kUncompressedConfig> config_bits{};
    std::array<bool, kUncompressedConfig> config_ok;
    config_ok.fill(true);
    auto add_index = [&](int index, uint64_t count) {
      for (int config = 0; config < kUncompressedConfig; ++config) {
        const int bits = table.bits[config][index];
        if (bits < 0) {
          config_ok[config] = false;
        } else {
          config_bits[config] += count * static_cast<uint64_t>(bits);
        }
      }
    };
    uint64_t symbols = 0;
    for (int i = 0; i < entries; ++i) {
      add_index(i, by_frequency[i].count);
      symbols += by_frequency[i].count;
    }
    for (const CodeCount& c : used) {
      if (in_palette[c.code]) continue;
      add_index(c.code - direct_offset + entries, c.count);
      symbols += c.count;
    }

    Palette palette;
    palette.zero_runs = zero_runs;
    palette.direct_offset = direct_offset;
    palette.entry_bits = entry_bits;
    palette.entries.reserve(entries);
    for (int i = 0; i < entries; ++i)
      palette.entries.push_back(static_cast<uint16_t>(by_frequency[i].code));

    uint64_t symbol_bits = std::numeric_limits<uint64_t>::max();
    for (int config = 0; config < kUncompressedConfig; ++config) {
      if (config_ok[config]) symbol_bits = std::min(symbol_bits, config_bits[config]);
    }
    const int uncompressed_bits = uncompressed_index_bits(palette);
    if (max_index < (1 << uncompressed_bits)) {
      symbol_bits = std::min(symbol_bits, symbols * static_cast<uint64_t>(uncompressed_bits));
    }
    if (symbol_bits == std::numeric_limits<uint64_t>::max()) continue;

    const uint64_t total =
        symbol_bits + slice_header_bits(palette, true) - format::kSliceHeaderBits;
    if (total < best.weight_bits) {
      best.weight_bits = total;
      best.palette = std::move(palette);
    }
  }
  return best;
}

}  // namespace udc::compression::detail
