#include "udc/compression/decoder.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "udc/compression/format.hpp"

namespace udc::compression {
namespace {

/// Unary quotients of weights never exceed the largest index; stopping there bounds
/// the arithmetic on corrupt streams.
constexpr uint32_t kMaxWeightCarry = format::kMaxIndex;
/// Most bits one chunk can hold: both unary fields of the weights (12 + 12), the
/// zero-run unary field (12), 12 weight remainders of up to 9 bits, 12 zero-run
/// remainders of up to 3 bits.
constexpr uint64_t kLargestChunkBits = 12 + 12 + 12 + 12 * 9 + 12 * 3;
constexpr size_t kShortRun = 16;

/// Bit tables for parsing unary fields six slots at a time: popcount, and
/// "deposit" (the low bits of v placed at the set bits of mask m, like BMI2 pdep).
struct UnaryTables {
  std::array<uint8_t, 64> popcount{};
  std::array<std::array<uint8_t, 64>, 64> deposit{};
  constexpr UnaryTables() {
    for (int m = 0; m < 64; ++m) {
      int count = 0;
      for (int b = 0; b < 6; ++b) count += (m >> b) & 1;
      popcount[m] = static_cast<uint8_t>(count);
      for (int v = 0; v < 64; ++v) {
        int out = 0, next = 0;
        for (int b = 0; b < 6; ++b) {
          if ((m >> b) & 1) out |= ((v >> next++) & 1) << b;
        }
        deposit[m][v] = static_cast<uint8_t>(out);
      }
    }
  }
};
constexpr UnaryTables kUnary{};

/// WUNARY1's bits moved to the slots of WUNARY0 that carry them (12 slots).
inline uint32_t spread_second_unary(uint32_t unary0, uint32_t unary1) {
  const uint32_t low = unary0 & 63, high = (unary0 >> 6) & 63;
  return kUnary.deposit[low][unary1 & 63] |
         (uint32_t{kUnary.deposit[high][(unary1 >> kUnary.popcount[low]) & 63]} << 6);
}

uint64_t load_le64(const uint8_t* data, size_t size, size_t byte) {
  uint64_t word = 0;
  if (byte + 8 <= size) {
    std::memcpy(&word, data + byte, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    return word;
  }
  for (size_t i = 0; byte + i < size && i < 8; ++i) word |= uint64_t{data[byte + i]} << (8 * i);
  return word;
}

}  // namespace

std::string DecodeError::to_string() const {
  return "bit " + std::to_string(bit_offset) + " (byte " + std::to_string(bit_offset / 8) +
         "), field " + field + ": " + message;
}

StreamDecoder::StreamDecoder(const uint8_t* data, size_t size, DecodeOptions options)
    : data_(data), size_(size), size_bits_(uint64_t{size} * 8), options_(options) {
  palette_.reserve(format::kMaxPaletteSize);
  if (size == 0) fail(0, "ZDIV", "empty stream: expected a slice header or end-of-stream marker");
}

bool StreamDecoder::fail(uint64_t bit_offset, const char* field, std::string message) {
  if (!error_) error_ = DecodeError{bit_offset, field, std::move(message)};
  return false;
}

bool StreamDecoder::read_bits(int bits, const char* field, uint32_t& value) {
  if (position_ + static_cast<uint64_t>(bits) > size_bits_) {
    return fail(position_, field,
                "stream ends after " + std::to_string(size_bits_) + " bits while " +
                    std::to_string(bits) + " more were expected");
  }
  if (bits == 0) {
    value = 0;
    return true;
  }
  const uint64_t word = load_le64(data_, size_, static_cast<size_t>(position_ >> 3));
  value = static_cast<uint32_t>((word >> (position_ & 7)) & ((uint64_t{1} << bits) - 1));
  position_ += static_cast<uint64_t>(bits);
  return true;
}

void StreamDecoder::build_value_table() {
  const int palette_size = static_cast<int>(palette_.size());
  for (int index = 0; index <= format::kMaxIndex; ++index) {
    const int code = index < palette_size ? palette_[index] : index - palette_size + direct_offset_;
    value_of_index_[index] = code <= format::kMaxIndex
                                 ? static_cast<int16_t>(format::from_sign_magnitude(code))
                                 : kInvalidValue;
  }
}

template <bool kChecked>
bool StreamDecoder::take(int bits, const char* field, uint32_t& value) {
  if constexpr (kChecked) {
    return read_bits(bits, field, value);
  } else {
    (void)field;
    uint64_t word;
    std::memcpy(&word, data_ + (position_ >> 3), 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    value = static_cast<uint32_t>((word >> (position_ & 7)) & ((uint64_t{1} << bits) - 1));
    position_ += static_cast<uint64_t>(bits);
    return true;
  }
}

template <bool kChecked>
bool StreamDecoder::decode_chunk(ChunkState& s) {
  // Flow control: weights may run at most 8 symbols ahead of zero runs, and zero
  // runs never ahead of weights. Positions count completed symbols, padding included.
  const int64_t balance = s.zero_runs ? int64_t{s.weight_pos} - int64_t{s.run_pos} : 0;
  const bool weight_enabled = balance < 8 && s.weight_pos < s.weight_count;
  const bool run_enabled = s.zero_runs && balance >= 0 && s.run_pos < s.run_count;

  uint32_t unary0 = 0;
  if (weight_enabled && !s.uncompressed) {
    if (!take<kChecked>(format::kWeightChunkSlots, "WUNARY0", unary0)) return false;
  }
  int run_symbols = 0;
  if (run_enabled) {
    const uint64_t field_start = position_;
    uint32_t unary = 0;
    if (!take<kChecked>(s.zero_slots, "ZUNARY", unary)) return false;
    // A zero bit ends a run symbol; the ones before it (back to the previous end)
    // are its quotient.
    // A zero bit ends a run symbol; the ones before it (back to the previous end)
    // are its quotient. Branch-free: the loop's trip count is fixed.
    // Always 12 iterations (unrolled); slots past the chunk never end a symbol.
    const uint32_t run_ends = ~unary & ((1u << s.zero_slots) - 1);
    int start = 0;
    for (int slot = 0; slot < format::kWeightChunkSlots; ++slot) {
      const int end = static_cast<int>((run_ends >> slot) & 1);
      s.run_q[run_symbols] = static_cast<uint64_t>(slot - start);
      run_symbols += end;
      start = end ? slot + 1 : start;
    }
    uint64_t carry = s.run_carry + static_cast<uint64_t>(s.zero_slots - start);
    if (run_symbols > 0) {
      s.run_q[0] += s.run_carry;
      carry = static_cast<uint64_t>(s.zero_slots - start);
    }
    s.run_carry = carry;
    if (s.run_carry > options_.max_weights) {
      return fail(field_start, "ZUNARY", "zero run longer than the allowed weight count");
    }
    s.run_pos += static_cast<uint32_t>(run_symbols);
  }
  int weight_symbols = 0;
  if (weight_enabled) {
    const uint64_t field_start = position_;
    uint32_t unary1 = 0;
    const int unary1_bits = kUnary.popcount[unary0 & 63] + kUnary.popcount[(unary0 >> 6) & 63];
    if (!take<kChecked>(unary1_bits, "WUNARY1", unary1)) return false;
    // A slot codes 0, 1 or 2 (WUNARY0 bit plus the WUNARY1 bit it carries). A symbol
    // ends at a slot coding less than 2, or at every slot when truncated, so every
    // slot inside a symbol codes 2.
    const uint32_t second = spread_second_unary(unary0, unary1);
    const uint32_t slot_mask = (1u << s.weight_slots) - 1;
    const uint32_t ends = s.truncated ? slot_mask : ~second & slot_mask;
    int start = 0;
    for (int slot = 0; slot < format::kWeightChunkSlots; ++slot) {  // unrolled; see above
      const uint32_t code = ((unary0 >> slot) & 1) + ((second >> slot) & 1);
      const int end = static_cast<int>((ends >> slot) & 1);
      s.weight_q[weight_symbols] = 2 * static_cast<uint32_t>(slot - start) + code;
      weight_symbols += end;
      start = end ? slot + 1 : start;
    }
    uint32_t count = s.weight_carry + 2 * static_cast<uint32_t>(s.weight_slots - start);
    if (weight_symbols > 0) {
      s.weight_q[0] += s.weight_carry;
      count = 2 * static_cast<uint32_t>(s.weight_slots - start);
    }
    s.weight_carry = count;
    if (s.weight_carry > kMaxWeightCarry) {
      return fail(field_start, "WUNARY1", "weight quotient exceeds the 9-bit index range");
    }
    s.weight_pos += static_cast<uint32_t>(weight_symbols);
  }
  if (s.prev_weight_enabled) {
    const int count = static_cast<int>(std::min<uint32_t>(
        static_cast<uint32_t>(s.prev_weight_symbols), s.weight_count - s.weight_prev_pos));
    int16_t* out = slice_weights_.data() + s.weight_prev_pos;
    for (int i = 0; i < count; ++i) {
      const uint64_t field_start = position_;
      uint32_t remainder = 0;
      if (!take<kChecked>(s.weight_bits, "WREMAIN", remainder)) return false;
      const uint32_t index = (s.prev_weight_q[i] << s.weight_bits) + remainder;
      const int16_t value = index <= format::kMaxIndex ? value_of_index_[index] : kInvalidValue;
      if (value == kInvalidValue) {
        return fail(
            field_start, "WREMAIN",
            "weight index " + std::to_string(index) +
                (index > format::kMaxIndex ? " exceeds 511" : " decodes to a magnitude above 255"));
      }
      out[i] = value;
    }
    s.weight_prev_pos += static_cast<uint32_t>(count);
  }
  if (s.prev_run_enabled) {
    const int count = static_cast<int>(std::min<uint32_t>(static_cast<uint32_t>(s.prev_run_symbols),
                                                          s.run_count - s.run_prev_pos));
    uint64_t* out = slice_runs_.data() + s.run_prev_pos;
    for (int i = 0; i < count; ++i) {
      const uint64_t field_start = position_;
      uint32_t remainder = 0;
      if (!take<kChecked>(s.zero_bits, "ZREMAIN", remainder)) return false;
      const uint64_t run = (s.prev_run_q[i] << s.zero_bits) + remainder;
      s.zeros += run;
      if (weights_decoded_ + s.weight_count + s.zeros > options_.max_weights) {
        return fail(field_start, "ZREMAIN",
                    "stream holds more than the allowed " + std::to_string(options_.max_weights) +
                        " weights");
      }
      out[i] = run;
    }
    s.run_prev_pos += static_cast<uint32_t>(count);
  }
  s.prev_weight_enabled = weight_enabled;
  s.prev_weight_symbols = weight_symbols;
  s.prev_weight_q = s.weight_q;
  s.prev_run_enabled = run_enabled;
  s.prev_run_symbols = run_symbols;
  s.prev_run_q = s.run_q;
  return true;
}

size_t StreamDecoder::read(int16_t* out, size_t capacity) {
  size_t produced = 0;
  while (produced < capacity) {
    if (pending_zeros_ > 0) {
      const size_t count =
          static_cast<size_t>(std::min<uint64_t>(pending_zeros_, capacity - produced));
      std::fill_n(out + produced, count, int16_t{0});
      produced += count;
      pending_zeros_ -= count;
      continue;
    }
    if (next_symbol_ < slice_symbols_) {
      // Hand out weights and the zeros after them until the caller's buffer is full.
      if (!slice_zero_runs_) {
        const size_t count = std::min<size_t>(slice_symbols_ - next_symbol_, capacity - produced);
        std::memcpy(out + produced, slice_weights_.data() + next_symbol_, count * sizeof(int16_t));
        produced += count;
        next_symbol_ += static_cast<uint32_t>(count);
        continue;
      }
      // Weights with the zero runs after them; short runs are written with one
      // fixed-size store when the buffer has room for it.
      static constexpr int16_t kZeros[kShortRun] = {};
      while (next_symbol_ < slice_symbols_ && produced < capacity) {
        out[produced++] = slice_weights_[next_symbol_];
        const uint64_t run = slice_runs_[next_symbol_ + run_offset_];
        ++next_symbol_;
        const size_t room = capacity - produced;
        if (run <= kShortRun && room >= kShortRun) {
          std::memcpy(out + produced, kZeros, sizeof(kZeros));
          produced += static_cast<size_t>(run);
        } else {
          pending_zeros_ = run;
          break;
        }
      }
      continue;
    }
    if (finished_ || error_ || !decode_slice()) break;
  }
  weights_read_ += produced;
  return produced;
}

bool StreamDecoder::decode_slice() {
  uint32_t zdiv = 0;
  for (;;) {
    if (!read_bits(format::kZdivBits, "ZDIV", zdiv)) return false;
    if (zdiv != format::kZdivEndOfStream) break;
    // End of stream: skip to the byte boundary; another stream may follow.
    uint32_t ignored = 0;
    if (!read_bits(static_cast<int>((8 - (position_ & 7)) & 7), "end-of-stream alignment",
                   ignored)) {
      return false;
    }
    need_palette_ = true;
    if (position_ == size_bits_) {
      finished_ = true;
      return false;
    }
  }
  const uint64_t header_start = position_ - format::kZdivBits;
  if (zdiv > format::kMaxZdiv && zdiv != format::kZdivNoZeroRuns) {
    return fail(header_start, "ZDIV",
                "reserved value " + std::to_string(zdiv) + " (expected 0..3, 6 or 7)");
  }
  const bool zero_runs = zdiv != format::kZdivNoZeroRuns;

  uint32_t length_field = 0, wdiv = 0, truncated = 0, new_palette = 0;
  if (!read_bits(format::kSliceLengthBits, "SLICELEN", length_field)) return false;
  const uint64_t wdiv_start = position_;
  if (!read_bits(format::kWdivBits, "WDIV", wdiv)) return false;
  if (wdiv > format::kMaxWdiv && wdiv != format::kWdivUncompressed) {
    return fail(wdiv_start, "WDIV",
                "reserved value " + std::to_string(wdiv) + " (expected 0..5 or 7)");
  }
  if (!read_bits(format::kTruncBits, "WTRUNC", truncated)) return false;
  const uint64_t new_palette_start = position_;
  if (!read_bits(format::kNewPaletteBits, "NEWPAL", new_palette)) return false;
  if (need_palette_ && !new_palette) {
    return fail(new_palette_start, "NEWPAL",
                "the first slice of a stream must load a palette (NEWPAL = 1)");
  }
  if (!new_palette && zero_runs != section_zero_runs_) {
    return fail(header_start, "ZDIV", "zero-run mode changes without a new palette");
  }
  if (new_palette) {
    uint32_t direct_offset = 0, size_field = 0, bits_field = 0;
    if (!read_bits(format::kDirectOffsetBits, "DIROFS", direct_offset)) return false;
    if (!read_bits(format::kPaletteSizeBits, "PALSIZE", size_field)) return false;
    if (!read_bits(format::kPaletteBitsBits, "PALBITS", bits_field)) return false;
    direct_offset_ = static_cast<int>(direct_offset);
    palette_bits_ = static_cast<int>(bits_field) + format::kMinPaletteBits;
    palette_.assign(size_field == 0 ? 0 : size_field + 1, 0);
    for (uint16_t& entry : palette_) {
      uint32_t value = 0;
      if (!read_bits(palette_bits_, "PALETTE", value)) return false;
      entry = static_cast<uint16_t>(value);
    }
  }
  if (new_palette) build_value_table();
  need_palette_ = false;
  section_zero_runs_ = zero_runs;

  const uint32_t weight_count = length_field + 1;
  const bool uncompressed = wdiv == format::kWdivUncompressed;
  const int palette_size = static_cast<int>(palette_.size());
  const int weight_bits = uncompressed
                              ? (palette_size > 0 ? format::ceil_log2(palette_size) : palette_bits_)
                              : static_cast<int>(wdiv);
  const int zero_bits = zero_runs ? static_cast<int>(zdiv) : 0;
  const uint32_t run_count = zero_runs ? weight_count + (new_palette ? 1 : 0) : 0;

  if (weights_decoded_ + weight_count > options_.max_weights) {
    return fail(
        header_start, "SLICELEN",
        "stream holds more than the allowed " + std::to_string(options_.max_weights) + " weights");
  }
  slice_weights_.resize(weight_count);
  slice_runs_.resize(run_count);

  ChunkState state;
  state.weight_count = weight_count;
  state.run_count = run_count;
  state.weight_bits = weight_bits;
  state.zero_bits = zero_bits;
  state.zero_slots = format::zero_run_chunk_slots(zero_bits);
  state.weight_slots =
      uncompressed ? format::uncompressed_chunk_symbols(weight_bits) : format::kWeightChunkSlots;
  state.zero_runs = zero_runs;
  state.uncompressed = uncompressed;
  state.truncated = truncated != 0;
  do {
    // Unchecked reads while even the largest chunk cannot run past the input (with
    // room for the 8-byte loads); checked, field-naming reads near the end.
    const bool ok = position_ + kLargestChunkBits + 64 <= size_bits_ ? decode_chunk<false>(state)
                                                                     : decode_chunk<true>(state);
    if (!ok) return false;
  } while (state.prev_weight_enabled || state.prev_run_enabled);
  const uint64_t zeros = state.zeros;

  weights_decoded_ += weight_count + zeros;
  slice_symbols_ = weight_count;
  next_symbol_ = 0;
  slice_zero_runs_ = zero_runs;
  run_offset_ = zero_runs && new_palette ? 1 : 0;
  pending_zeros_ = run_offset_ ? slice_runs_[0] : 0;

  if (options_.record_slices) {
    SliceInfo info;
    info.bits = position_ - header_start;
    info.bit_offset = header_start;
    info.weight_symbols = weight_count;
    info.zeros_from_runs = zeros;
    info.zero_runs = zero_runs;
    info.zero_run_divisor = zero_bits;
    info.uncompressed = uncompressed;
    info.weight_divisor = weight_bits;
    info.truncated = truncated != 0;
    info.new_palette = new_palette != 0;
    info.palette_size = palette_size;
    info.palette_bits = palette_bits_;
    info.direct_offset = direct_offset_;
    slices_.push_back(info);
  }
  return true;
}

DecodeResult decode_stream(const uint8_t* data, size_t size, DecodeOptions options) {
  StreamDecoder decoder(data, size, options);
  DecodeResult result;
  constexpr size_t kBatch = 1 << 16;
  for (;;) {
    const size_t before = result.weights.size();
    result.weights.resize(before + kBatch);
    const size_t got = decoder.read(result.weights.data() + before, kBatch);
    result.weights.resize(before + got);
    if (got < kBatch) break;
  }
  result.error = decoder.error();
  if (!result.error && !decoder.finished()) {
    result.error = DecodeError{decoder.bit_position(), "ZDIV", "stream stopped before its end"};
  }
  result.slices = decoder.slices();
  return result;
}

StreamWork measure_stream_work(const uint8_t* data, size_t size) {
  DecodeOptions options;
  options.record_slices = true;
  const DecodeResult result = decode_stream(data, size, options);
  if (result.error) throw std::invalid_argument("weight stream: " + result.error->to_string());
  StreamWork work;
  work.weights = result.weights.size();
  for (const SliceInfo& slice : result.slices) {
    ++work.slices;
    work.weight_symbols += slice.weight_symbols;
    if (slice.zero_runs) work.run_symbols += uint64_t{slice.weight_symbols} + 1;
    work.payload_bits += slice.bits;
  }
  return work;
}

}  // namespace udc::compression
