#include "udc/compression/encoder.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>
#include <string>

#include "bit_writer.hpp"
#include "symbol_cost.hpp"
#include "udc/compression/format.hpp"

namespace udc::compression {
namespace {

using detail::kTruncatedConfigBase;
using detail::kUncompressedConfig;
using detail::kWeightConfigs;
using detail::kZeroRunConfigs;

/// Slices are chosen at the granularity of blocks of this many weight symbols.
/// Must divide kMaxSliceLength so that the slice length cap falls on a block edge.
constexpr uint32_t kBlockSymbols = 128;
constexpr uint32_t kMaxBlocksPerSlice = format::kMaxSliceLength / kBlockSymbols;
static_assert(format::kMaxSliceLength % kBlockSymbols == 0);
/// Cost charged for starting a new slice in the slicing search: its header plus the
/// expected unary padding of the last weight and zero-run chunks of the slice before.
constexpr uint64_t kSliceSwitchBits = format::kSliceHeaderBits + 11;
constexpr uint64_t kImpossible = std::numeric_limits<uint64_t>::max() / 4;
/// Largest shift for which the block statistics keep sums (d + 1 for d = kMaxWdiv).
constexpr int kShiftSums = format::kMaxWdiv + 2;

/// Sufficient statistics of a run of symbols for the exact bit count of any slice
/// configuration: sum_i (index_i >> d) gives unary lengths and slot counts.
struct SymbolStats {
  uint64_t symbols = 0;
  uint64_t runs = 0;
  uint32_t max_index = 0;
  std::array<uint64_t, kShiftSums> index_shift_sum{};           // sum of index >> d
  std::array<uint64_t, format::kMaxWdiv + 1> index_at_least{};  // count of index >= 2^d
  std::array<uint64_t, kZeroRunConfigs> run_shift_sum{};        // sum of run >> d

  void add(const SymbolStats& other) {
    symbols += other.symbols;
    runs += other.runs;
    max_index = std::max(max_index, other.max_index);
    for (size_t d = 0; d < index_shift_sum.size(); ++d)
      index_shift_sum[d] += other.index_shift_sum[d];
    for (size_t d = 0; d < index_at_least.size(); ++d) index_at_least[d] += other.index_at_least[d];
    for (size_t d = 0; d < run_shift_sum.size(); ++d) run_shift_sum[d] += other.run_shift_sum[d];
  }
};

SymbolStats symbol_stats(const uint16_t* indices, size_t count, const uint32_t* runs,
                         size_t run_count) {
  SymbolStats stats;
  stats.symbols = count;
  stats.runs = run_count;
  // Scalar accumulators (not arrays indexed in the loop) so that the compiler
  // vectorises the loop; a block of kBlockSymbols 9-bit indices cannot overflow them.
  uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0;
  uint32_t c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, nonzero = 0;
  uint32_t max_index = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t index = indices[i];
    max_index = std::max(max_index, index);
    s0 += index;
    s1 += index >> 1;
    s2 += index >> 2;
    s3 += index >> 3;
    s4 += index >> 4;
    s5 += index >> 5;
    s6 += index >> 6;
    nonzero += index != 0;
    c1 += index >= 2;
    c2 += index >= 4;
    c3 += index >= 8;
    c4 += index >= 16;
    c5 += index >= 32;
  }
  stats.max_index = max_index;
  stats.index_shift_sum = {s0, s1, s2, s3, s4, s5, s6};
  stats.index_at_least = {nonzero, c1, c2, c3, c4, c5};
  uint64_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
  for (size_t i = 0; i < run_count; ++i) {
    const uint32_t run = runs[i];
    r0 += run;
    r1 += run >> 1;
    r2 += run >> 2;
    r3 += run >> 3;
  }
  stats.run_shift_sum = {r0, r1, r2, r3};
  return stats;
}

uint64_t div_round_up(uint64_t value, uint64_t divisor) {
  return (value + divisor - 1) / divisor;
}

/// Weight-stream bits of a slice under a configuration, or kImpossible. With
/// `exact`, includes the padding of the last chunk's unary field.
uint64_t weight_stream_bits(const SymbolStats& s, int config_id, int uncompressed_bits,
                            bool exact) {
  const detail::WeightConfig config = detail::weight_config(config_id);
  if (config.uncompressed) {
    if (s.max_index >= (1u << uncompressed_bits)) return kImpossible;
    return s.symbols * static_cast<uint64_t>(uncompressed_bits);
  }
  const int d = config.divisor;
  const uint32_t max_quotient = s.max_index >> d;
  uint64_t slots;
  uint64_t second_unary_bits;
  if (config.truncated) {
    if (max_quotient > 2) return kImpossible;
    slots = s.symbols;
    second_unary_bits = s.index_at_least[d];
  } else {
    if (max_quotient > format::kMaxWeightQuotient) return kImpossible;
    // A quotient q takes floor(q/2)+1 slots and ceil(q/2) bits of WUNARY1.
    slots = s.symbols + s.index_shift_sum[d + 1];
    second_unary_bits = s.index_shift_sum[d] - s.index_shift_sum[d + 1];
  }
  const uint64_t first_unary_bits =
      exact ? format::kWeightChunkSlots * div_round_up(slots, format::kWeightChunkSlots) : slots;
  return first_unary_bits + second_unary_bits + s.symbols * static_cast<uint64_t>(d);
}

uint64_t zero_run_stream_bits(const SymbolStats& s, int zdiv, bool exact) {
  const uint64_t slots = s.runs + s.run_shift_sum[zdiv];
  const uint64_t chunk = static_cast<uint64_t>(format::zero_run_chunk_slots(zdiv));
  const uint64_t unary_bits = exact ? chunk * div_round_up(slots, chunk) : slots;
  return unary_bits + s.runs * static_cast<uint64_t>(zdiv);
}

int code_of(int weight) {
  return format::to_sign_magnitude(weight);
}

constexpr size_t kWeightValues = format::kMaxWeight - format::kMinWeight + 1;

/// Weight index of every weight value (offset by -kMinWeight) under a palette.
std::array<uint16_t, kWeightValues> index_table(const Palette& palette) {
  std::array<uint16_t, kWeightValues> index_of{};
  const int entries = static_cast<int>(palette.entries.size());
  for (int weight = format::kMinWeight; weight <= format::kMaxWeight; ++weight) {
    const int direct = code_of(weight) - palette.direct_offset + entries;
    index_of[weight - format::kMinWeight] =
        static_cast<uint16_t>(std::clamp(direct, 0, format::kMaxIndex));
  }
  for (int i = 0; i < entries; ++i) {
    index_of[format::from_sign_magnitude(palette.entries[i]) - format::kMinWeight] =
        static_cast<uint16_t>(i);
  }
  return index_of;
}

[[noreturn]] void throw_out_of_range(size_t index, int value) {
  throw std::out_of_range("weight " + std::to_string(index) + " is " + std::to_string(value) +
                          ", outside the codec's range [" + std::to_string(format::kMinWeight) +
                          ", " + std::to_string(format::kMaxWeight) + "]");
}

template <class Weight>
void check_range(const Weight* weights, size_t count) {
  if constexpr (sizeof(Weight) > 1) {
    for (size_t i = 0; i < count; ++i) {
      if (weights[i] < format::kMinWeight || weights[i] > format::kMaxWeight) {
        throw_out_of_range(i, weights[i]);
      }
    }
  } else {
    (void)weights;
    (void)count;
  }
}

/// Writes one slice: header, optional palette, then chunks of weight and zero-run
/// symbols interleaved under the format's flow control.
void write_slice(detail::BitWriter& out, const uint16_t* indices, const uint32_t* runs,
                 const SliceParams& slice, const Palette& palette, bool loads_palette) {
  const int uncompressed_bits = detail::uncompressed_index_bits(palette);
  const int weight_bits = slice.uncompressed ? uncompressed_bits : slice.weight_divisor;
  const int zero_bits = slice.zero_run_divisor;
  const bool zero_runs = palette.zero_runs;

  out.put(zero_runs ? slice.zero_run_divisor : format::kZdivNoZeroRuns, format::kZdivBits);
  out.put(slice.symbols - 1, format::kSliceLengthBits);
  out.put(slice.uncompressed ? format::kWdivUncompressed : slice.weight_divisor, format::kWdivBits);
  out.put(slice.truncated ? 1 : 0, format::kTruncBits);
  out.put(loads_palette ? 1 : 0, format::kNewPaletteBits);
  if (loads_palette) {
    out.put(static_cast<uint32_t>(palette.direct_offset), format::kDirectOffsetBits);
    out.put(palette.entries.empty() ? 0 : static_cast<uint32_t>(palette.entries.size() - 1),
            format::kPaletteSizeBits);
    out.put(static_cast<uint32_t>(palette.entry_bits - format::kMinPaletteBits),
            format::kPaletteBitsBits);
    for (uint16_t entry : palette.entries) out.put(entry, palette.entry_bits);
  }

  const uint32_t weight_count = slice.symbols;
  const uint32_t run_count = zero_runs ? weight_count + (loads_palette ? 1 : 0) : 0;
  const int weight_slots = slice.uncompressed ? format::uncompressed_chunk_symbols(weight_bits)
                                              : format::kWeightChunkSlots;
  const int zero_slots = format::zero_run_chunk_slots(zero_bits);
  const int quotient_step = slice.truncated ? 3 : 2;
  const uint32_t weight_mask = (1u << weight_bits) - 1;
  const uint32_t zero_mask = (1u << zero_bits) - 1;

  // Symbol in progress of each stream: quotient still to send (-1: none), its
  // remainder, and whether it is padding after the last symbol.
  uint32_t weights_started = 0, weights_done = 0;
  int weight_quotient = -1;
  uint32_t weight_remainder = 0;
  bool weight_padding = false;
  uint32_t runs_started = 0, runs_done = 0;
  int64_t run_quotient = -1;
  uint32_t run_remainder = 0;
  bool run_padding = false;

  std::array<uint32_t, format::kWeightChunkSlots> weight_remainders{}, prev_weight_remainders{};
  std::array<uint32_t, format::kWeightChunkSlots> run_remainders{}, prev_run_remainders{};
  int prev_weight_symbols = 0, prev_run_symbols = 0;
  bool prev_weight_enabled = false, prev_run_enabled = false;

  do {
    const int64_t balance = zero_runs ? int64_t{weights_done} - int64_t{runs_done} : 0;
    const bool weight_enabled = balance < 8 && weights_done < weight_count;
    const bool run_enabled = zero_runs && balance >= 0 && runs_done < run_count;

    uint32_t unary0 = 0, unary1 = 0, run_unary = 0;
    int unary1_bits = 0, weight_symbols = 0, run_symbols = 0;
    if (weight_enabled) {
      int slot = 0;
      while (slot < weight_slots) {
        if (weight_quotient < 0) {
          // Fast path: whole symbols that fit in the chunk. A quotient q takes
          // floor(q/2)+1 slots (one with truncation); WUNARY0 gets a 1 for every
          // slot but the last of an even q, WUNARY1 a 1 for every full pair.
          while (weights_started < weight_count) {
            const uint32_t index = indices[weights_started];
            const uint32_t quotient = slice.uncompressed ? 0 : index >> weight_bits;
            uint32_t slots, ones0, ones1;
            if (slice.truncated) {
              slots = 1;
              ones0 = quotient > 0;
              ones1 = quotient > 1;
            } else {
              slots = (quotient >> 1) + 1;
              ones0 = (quotient + 1) >> 1;
              ones1 = quotient >> 1;
            }
            if (slot + static_cast<int>(slots) > weight_slots) break;
            unary0 |= ((1u << ones0) - 1) << slot;
            unary1 |= ((1u << ones1) - 1) << unary1_bits;
            unary1_bits += static_cast<int>(ones0);
            slot += static_cast<int>(slots);
            weight_remainders[weight_symbols++] = index & weight_mask;
            ++weights_started;
            ++weights_done;
          }
          if (slot == weight_slots) break;
          // Slow path: a symbol that crosses into the next chunk, or padding.
          weight_padding = weights_started >= weight_count;
          const uint32_t index = weight_padding ? 0 : indices[weights_started++];
          weight_quotient = slice.uncompressed ? 0 : static_cast<int>(index >> weight_bits);
          weight_remainder = index & weight_mask;
        }
        while (weight_quotient >= 0 && slot < weight_slots) {
          if (weight_quotient > 0) {
            unary0 |= 1u << slot;
            if (weight_quotient > 1) unary1 |= 1u << unary1_bits;
            ++unary1_bits;
          }
          ++slot;
          weight_quotient -= quotient_step;
        }
        if (weight_quotient < 0 && !weight_padding) {
          weight_remainders[weight_symbols++] = weight_remainder;
          ++weights_done;
        }
      }
    }
    if (run_enabled) {
      int slot = 0;
      while (slot < zero_slots) {
        if (run_quotient < 0) {
          // Fast path: whole runs that fit in the chunk (a quotient q takes q + 1
          // slots: q ones and a zero).
          while (runs_started < run_count) {
            const uint32_t run = runs[runs_started];
            const uint32_t quotient = run >> zero_bits;
            if (slot + static_cast<int64_t>(quotient) + 1 > zero_slots) break;
            run_unary |= ((1u << quotient) - 1) << slot;
            slot += static_cast<int>(quotient) + 1;
            run_remainders[run_symbols++] = run & zero_mask;
            ++runs_started;
            ++runs_done;
          }
          if (slot == zero_slots) break;
          run_padding = runs_started >= run_count;
          const uint32_t run = run_padding ? 0 : runs[runs_started++];
          run_quotient = run >> zero_bits;
          run_remainder = run & zero_mask;
        }
        while (run_quotient >= 0 && slot < zero_slots) {
          if (run_quotient > 0) run_unary |= 1u << slot;
          ++slot;
          --run_quotient;
        }
        if (run_quotient < 0 && !run_padding) {
          run_remainders[run_symbols++] = run_remainder;
          ++runs_done;
        }
      }
    }

    if (weight_enabled && !slice.uncompressed) out.put(unary0, format::kWeightChunkSlots);
    if (run_enabled) out.put(run_unary, zero_slots);
    if (weight_enabled && !slice.uncompressed) out.put(unary1, unary1_bits);
    if (prev_weight_enabled) {
      for (int i = 0; i < prev_weight_symbols; ++i) out.put(prev_weight_remainders[i], weight_bits);
    }
    if (prev_run_enabled) {
      for (int i = 0; i < prev_run_symbols; ++i) out.put(prev_run_remainders[i], zero_bits);
    }
    prev_weight_enabled = weight_enabled;
    prev_weight_symbols = weight_symbols;
    prev_weight_remainders = weight_remainders;
    prev_run_enabled = run_enabled;
    prev_run_symbols = run_symbols;
    prev_run_remainders = run_remainders;
  } while (prev_weight_enabled || prev_run_enabled);
}

}  // namespace

uint64_t EncodingPlan::stream_bytes() const {
  const uint64_t bits = payload_bits + format::kZdivBits;
  const uint64_t bytes = (bits + 7) / 8;
  return (bytes + format::kStreamAlignmentBytes - 1) / format::kStreamAlignmentBytes *
         format::kStreamAlignmentBytes;
}

const EncodingPlan& WeightEncoder::plan(const int8_t* weights, size_t count) {
  return plan_impl(weights, count);
}
const EncodingPlan& WeightEncoder::plan(const int16_t* weights, size_t count) {
  return plan_impl(weights, count);
}

template <class Weight>
const EncodingPlan& WeightEncoder::plan_impl(const Weight* weights, size_t count) {
  check_range(weights, count);
  plan_ = EncodingPlan{};
  indices_.clear();
  zero_runs_.clear();
  section_index_begin_.clear();
  section_run_begin_.clear();
  if (count > 0) plan_section(weights, 0, count);
  for (const SectionPlan& section : plan_.sections) plan_.payload_bits += section.bits;
  return plan_;
}

template <class Weight>
void WeightEncoder::plan_section(const Weight* weights, size_t begin, size_t end) {
  const size_t count = end - begin;
  detail::CodeHistogram histogram{};
  if constexpr (sizeof(Weight) == 1) {
    std::array<uint64_t, 256> byte_counts{};
    for (size_t i = begin; i < end; ++i) ++byte_counts[static_cast<uint8_t>(weights[i])];
    for (int byte = 0; byte < 256; ++byte) {
      histogram[code_of(static_cast<int8_t>(byte))] += byte_counts[byte];
    }
  } else {
    for (size_t i = begin; i < end; ++i) ++histogram[code_of(weights[i])];
  }

  // Zero-run mode pays one run symbol per non-zero weight and saves one weight
  // symbol per zero; compare both with the single best configuration of each.
  const detail::PaletteChoice plain = detail::choose_palette(histogram, false);
  detail::PaletteChoice alternating;
  uint64_t alternating_bits = kImpossible;
  size_t nonzero = 0;
  if (histogram[0] != 0) {
    // Runs before each non-zero weight, then the trailing run; written without
    // branches (slot `nonzero` is overwritten until a non-zero weight claims it).
    run_scratch_.resize(count + 1);
    nonzero_scratch_.resize(count + 1);
    uint32_t* runs = run_scratch_.data();
    int16_t* values = nonzero_scratch_.data();
    uint32_t run = 0;
    for (size_t i = begin; i < end; ++i) {
      const int16_t weight = weights[i];
      runs[nonzero] = run;
      values[nonzero] = weight;
      const bool is_nonzero = weight != 0;
      nonzero += is_nonzero;
      run = is_nonzero ? 0 : run + 1;
    }
    runs[nonzero] = run;
    size_t run_count = nonzero + 1;
    if (nonzero == 0) {
      // All zeros: the first zero is sent as a weight to give the slice a symbol.
      values[0] = 0;
      runs[0] = 0;
      runs[1] = static_cast<uint32_t>(count - 1);
      nonzero = 1;
      run_count = 2;
    }
    const SymbolStats stats = symbol_stats(nullptr, 0, runs, run_count);
    uint64_t run_bits = kImpossible;
    for (int d = 0; d < kZeroRunConfigs; ++d) {
      run_bits = std::min(run_bits, zero_run_stream_bits(stats, d, false));
    }
    alternating = detail::choose_palette(histogram, true);
    alternating_bits = alternating.weight_bits + run_bits;
  }

  SectionPlan section;
  section.first_weight = begin;
  section.weights = count;
  section.palette = alternating_bits < plain.weight_bits ? alternating.palette : plain.palette;
  const std::array<uint16_t, kWeightValues> index_of = index_table(section.palette);
  section_index_begin_.push_back(indices_.size());
  section_run_begin_.push_back(zero_runs_.size());
  if (section.palette.zero_runs) {
    const size_t base = indices_.size();
    indices_.resize(base + nonzero);
    for (size_t i = 0; i < nonzero; ++i) {
      indices_[base + i] = index_of[nonzero_scratch_[i] - format::kMinWeight];
    }
    zero_runs_.insert(zero_runs_.end(), run_scratch_.begin(),
                      run_scratch_.begin() + static_cast<long>(nonzero + 1));
  } else {
    const size_t base = indices_.size();
    indices_.resize(base + count);
    uint16_t* out = indices_.data() + base;
    for (size_t i = 0; i < count; ++i) out[i] = index_of[weights[begin + i] - format::kMinWeight];
  }
  section.bits = plan_slices(section);
  plan_.sections.push_back(std::move(section));
}

uint64_t WeightEncoder::plan_slices(SectionPlan& section) {
  const size_t section_id = section_index_begin_.size() - 1;
  const uint16_t* indices = indices_.data() + section_index_begin_[section_id];
  const uint32_t* runs =
      section.palette.zero_runs ? zero_runs_.data() + section_run_begin_[section_id] : nullptr;
  const size_t symbol_count = indices_.size() - section_index_begin_[section_id];
  const bool zero_runs = section.palette.zero_runs;
  const int uncompressed_bits = detail::uncompressed_index_bits(section.palette);
  const int zero_configs = zero_runs ? kZeroRunConfigs : 1;
  const int states = kWeightConfigs * zero_configs;

  // Statistics per block of symbols; block b owns the runs after its weights, and
  // block 0 also owns the section's leading run.
  const size_t blocks = (symbol_count + kBlockSymbols - 1) / kBlockSymbols;
  std::vector<SymbolStats> block_stats(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t first = b * kBlockSymbols;
    const size_t count = std::min<size_t>(kBlockSymbols, symbol_count - first);
    const size_t run_first = zero_runs ? (b == 0 ? 0 : first + 1) : 0;
    const size_t run_count = zero_runs ? count + (b == 0 ? 1 : 0) : 0;
    block_stats[b] =
        symbol_stats(indices + first, count, zero_runs ? runs + run_first : nullptr, run_count);
  }

  // Dynamic programme over blocks: state = (weight config, zero-run config) of the
  // slice that holds the block; a new slice costs kSliceSwitchBits.
  std::vector<uint64_t> cost(states), next_cost(states);
  std::vector<uint32_t> slice_blocks(states), next_slice_blocks(states);
  std::vector<uint64_t> starts_slice(blocks);  // bit s: state s starts a slice here
  std::vector<uint8_t> best_before(blocks, 0);
  static_assert(kWeightConfigs * kZeroRunConfigs <= 64);
  std::array<uint64_t, kWeightConfigs> weight_cost{};
  std::array<uint64_t, kZeroRunConfigs> run_cost{};

  for (size_t b = 0; b < blocks; ++b) {
    for (int w = 0; w < kWeightConfigs; ++w) {
      weight_cost[w] = weight_stream_bits(block_stats[b], w, uncompressed_bits, false);
    }
    for (int z = 0; z < zero_configs; ++z) {
      run_cost[z] = zero_runs ? zero_run_stream_bits(block_stats[b], z, false) : 0;
    }
    uint64_t best = kImpossible;
    int best_state = 0;
    if (b > 0) {
      for (int s = 0; s < states; ++s) {
        if (cost[s] < best) {
          best = cost[s];
          best_state = s;
        }
      }
      best_before[b] = static_cast<uint8_t>(best_state);
    }
    uint64_t starts = 0;
    for (int s = 0; s < states; ++s) {
      const uint64_t block_cost = weight_cost[s % kWeightConfigs] + run_cost[s / kWeightConfigs];
      const bool can_continue = b > 0 && slice_blocks[s] < kMaxBlocksPerSlice;
      const uint64_t continue_cost = can_continue ? cost[s] : kImpossible;
      const uint64_t start_cost = b == 0 ? 0 : best + kSliceSwitchBits;
      if (continue_cost <= start_cost) {
        next_cost[s] = std::min(kImpossible, continue_cost + block_cost);
        next_slice_blocks[s] = slice_blocks[s] + 1;
      } else {
        next_cost[s] = std::min(kImpossible, start_cost + block_cost);
        next_slice_blocks[s] = 1;
        starts |= uint64_t{1} << s;
      }
    }
    starts_slice[b] = starts;
    cost.swap(next_cost);
    slice_blocks.swap(next_slice_blocks);
  }

  int state = static_cast<int>(std::min_element(cost.begin(), cost.end()) - cost.begin());
  std::vector<int> block_state(blocks);
  for (size_t b = blocks; b-- > 0;) {
    block_state[b] = state;
    if ((starts_slice[b] >> state) & 1) state = best_before[b];
  }

  // Turn block assignments into slices and count their exact bits.
  uint64_t bits = 0;
  size_t b = 0;
  while (b < blocks) {
    const int s = block_state[b];
    size_t end_block = b + 1;
    while (end_block < blocks && block_state[end_block] == s &&
           !((starts_slice[end_block] >> s) & 1)) {
      ++end_block;
    }
    SymbolStats stats;
    for (size_t k = b; k < end_block; ++k) stats.add(block_stats[k]);
    const detail::WeightConfig config = detail::weight_config(s % kWeightConfigs);
    SliceParams slice;
    slice.first_symbol = static_cast<uint32_t>(b * kBlockSymbols);
    slice.symbols = static_cast<uint32_t>(stats.symbols);
    slice.weight_divisor = static_cast<uint8_t>(config.divisor);
    slice.truncated = config.truncated;
    slice.uncompressed = config.uncompressed;
    slice.zero_run_divisor = static_cast<uint8_t>(zero_runs ? s / kWeightConfigs : 0);
    const bool loads_palette = section.slices.empty();
    bits += detail::slice_header_bits(section.palette, loads_palette);
    bits += weight_stream_bits(stats, s % kWeightConfigs, uncompressed_bits, true);
    if (zero_runs) bits += zero_run_stream_bits(stats, slice.zero_run_divisor, true);
    section.slices.push_back(slice);
    b = end_block;
  }
  return bits;
}

void WeightEncoder::write(std::vector<uint8_t>& out) const {
  detail::BitWriter writer(out);
  for (size_t id = 0; id < plan_.sections.size(); ++id) {
    const SectionPlan& section = plan_.sections[id];
    const uint16_t* indices = indices_.data() + section_index_begin_[id];
    const bool zero_runs = section.palette.zero_runs;
    for (size_t k = 0; k < section.slices.size(); ++k) {
      const SliceParams& slice = section.slices[k];
      const bool loads_palette = k == 0;
      // The first slice carries the leading run; later ones start after a weight.
      const uint32_t* slice_runs = zero_runs ? zero_runs_.data() + section_run_begin_[id] +
                                                   (loads_palette ? 0 : slice.first_symbol + 1)
                                             : nullptr;
      write_slice(writer, indices + slice.first_symbol, slice_runs, slice, section.palette,
                  loads_palette);
    }
  }
  writer.put(format::kZdivEndOfStream, format::kZdivBits);
  writer.align_with_ones();
  writer.finish();
  while (out.size() % format::kStreamAlignmentBytes != 0) out.push_back(0xFF);
}

std::vector<uint8_t> WeightEncoder::encode(const int8_t* weights, size_t count) {
  std::vector<uint8_t> out;
  out.reserve(plan(weights, count).stream_bytes());
  write(out);
  return out;
}

std::vector<uint8_t> WeightEncoder::encode(const int16_t* weights, size_t count) {
  std::vector<uint8_t> out;
  out.reserve(plan(weights, count).stream_bytes());
  write(out);
  return out;
}

std::vector<uint8_t> encode_weights(const int8_t* weights, size_t count) {
  return WeightEncoder().encode(weights, count);
}
std::vector<uint8_t> encode_weights(const int16_t* weights, size_t count) {
  return WeightEncoder().encode(weights, count);
}
uint64_t encoded_size_bytes(const int8_t* weights, size_t count) {
  return WeightEncoder().encoded_bytes(weights, count);
}

}  // namespace udc::compression
