#include "udc/compression/decoder.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "udc/compression/format.hpp"

namespace udc::compression {
namespace {

/// Unary quotients of weights never exceed the largest index; stopping there bounds
/// the arithmetic on corrupt streams.
constexpr uint32_t kMaxWeightCarry = format::kMaxIndex;

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

size_t StreamDecoder::read(int16_t* out, size_t capacity) {
  size_t produced = 0;
  while (produced < capacity) {
    if (pending_zeros_ > 0) {
      const size_t count = static_cast<size_t>(std::min<uint64_t>(pending_zeros_, capacity - produced));
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
      out[produced++] = slice_weights_[next_symbol_];
      pending_zeros_ = slice_runs_[next_symbol_ + run_offset_];
      ++next_symbol_;
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
    if (!read_bits(static_cast<int>((8 - (position_ & 7)) & 7), "end-of-stream alignment", ignored)) {
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
  need_palette_ = false;
  section_zero_runs_ = zero_runs;

  const uint32_t weight_count = length_field + 1;
  const bool uncompressed = wdiv == format::kWdivUncompressed;
  const int palette_size = static_cast<int>(palette_.size());
  const int weight_bits =
      uncompressed ? (palette_size > 0 ? format::ceil_log2(palette_size) : palette_bits_)
                   : static_cast<int>(wdiv);
  const bool is_truncated = truncated != 0;
  const int zero_bits = zero_runs ? static_cast<int>(zdiv) : 0;
  const int zero_slots = format::zero_run_chunk_slots(zero_bits);
  const uint32_t run_count = zero_runs ? weight_count + (new_palette ? 1 : 0) : 0;
  const int weight_slots = uncompressed ? format::uncompressed_chunk_symbols(weight_bits)
                                        : format::kWeightChunkSlots;

  if (weights_decoded_ + weight_count > options_.max_weights) {
    return fail(header_start, "SLICELEN",
                "stream holds more than the allowed " + std::to_string(options_.max_weights) +
                    " weights");
  }
  slice_weights_.resize(weight_count);
  slice_runs_.resize(run_count);

  // Chunk loop, mirroring the encoder's flow control. Positions count completed
  // symbols, padding included; remainders of a chunk arrive in the next one.
  uint32_t weight_pos = 0, run_pos = 0, weight_prev_pos = 0, run_prev_pos = 0;
  uint32_t weight_carry = 0;
  uint64_t run_carry = 0;
  std::array<uint32_t, format::kWeightChunkSlots> weight_q{}, prev_weight_q{};
  std::array<uint64_t, format::kWeightChunkSlots> run_q{}, prev_run_q{};
  int weight_symbols = 0, run_symbols = 0, prev_weight_symbols = 0, prev_run_symbols = 0;
  bool prev_weight_enabled = false, prev_run_enabled = false;
  uint64_t zeros = 0;

  do {
    const int64_t balance = zero_runs ? int64_t{weight_pos} - int64_t{run_pos} : 0;
    const bool weight_enabled = balance < 8 && weight_pos < weight_count;
    const bool run_enabled = zero_runs && balance >= 0 && run_pos < run_count;

    uint32_t unary0 = 0;
    if (weight_enabled && !uncompressed) {
      if (!read_bits(format::kWeightChunkSlots, "WUNARY0", unary0)) return false;
    }
    if (run_enabled) {
      const uint64_t field_start = position_;
      uint32_t unary = 0;
      if (!read_bits(zero_slots, "ZUNARY", unary)) return false;
      run_symbols = 0;
      for (int slot = 0; slot < zero_slots; ++slot) {
        if ((unary >> slot) & 1) {
          ++run_carry;
        } else {
          run_q[run_symbols++] = run_carry;
          run_carry = 0;
        }
      }
      if (run_carry > options_.max_weights) {
        return fail(field_start, "ZUNARY", "zero run longer than the allowed weight count");
      }
      run_pos += static_cast<uint32_t>(run_symbols);
    }
    if (weight_enabled) {
      const uint64_t field_start = position_;
      uint32_t unary1 = 0;
      if (!read_bits(__builtin_popcount(unary0), "WUNARY1", unary1)) return false;
      weight_symbols = 0;
      uint32_t count = weight_carry;
      for (int slot = 0; slot < weight_slots; ++slot) {
        uint32_t code = 0;
        if ((unary0 >> slot) & 1) {
          code = 1 + (unary1 & 1);
          unary1 >>= 1;
        }
        count += code;
        if (code < 2 || is_truncated) {
          weight_q[weight_symbols++] = count;
          count = 0;
        }
      }
      weight_carry = count;
      if (weight_carry > kMaxWeightCarry) {
        return fail(field_start, "WUNARY1", "weight quotient exceeds the 9-bit index range");
      }
      weight_pos += static_cast<uint32_t>(weight_symbols);
    }
    if (prev_weight_enabled) {
      for (int i = 0; i < prev_weight_symbols && weight_prev_pos < weight_count; ++i) {
        const uint64_t field_start = position_;
        uint32_t remainder = 0;
        if (!read_bits(weight_bits, "WREMAIN", remainder)) return false;
        const uint32_t index = (prev_weight_q[i] << weight_bits) + remainder;
        if (index > format::kMaxIndex) {
          return fail(field_start, "WREMAIN",
                      "weight index " + std::to_string(index) + " exceeds 511");
        }
        const uint32_t code = static_cast<int>(index) < palette_size
                                  ? palette_[index]
                                  : index - static_cast<uint32_t>(palette_size) +
                                        static_cast<uint32_t>(direct_offset_);
        if (code > format::kMaxIndex) {
          return fail(field_start, "WREMAIN",
                      "weight index " + std::to_string(index) +
                          " decodes to a magnitude above 255");
        }
        slice_weights_[weight_prev_pos++] = static_cast<int16_t>(format::from_sign_magnitude(static_cast<int>(code)));
      }
    }
    if (prev_run_enabled) {
      for (int i = 0; i < prev_run_symbols && run_prev_pos < run_count; ++i) {
        uint32_t remainder = 0;
        const uint64_t field_start = position_;
        if (!read_bits(zero_bits, "ZREMAIN", remainder)) return false;
        const uint64_t run = (prev_run_q[i] << zero_bits) + remainder;
        zeros += run;
        if (weights_decoded_ + weight_count + zeros > options_.max_weights) {
          return fail(field_start, "ZREMAIN",
                      "stream holds more than the allowed " +
                          std::to_string(options_.max_weights) + " weights");
        }
        slice_runs_[run_prev_pos++] = run;
      }
    }
    prev_weight_enabled = weight_enabled;
    prev_weight_symbols = weight_symbols;
    prev_weight_q = weight_q;
    prev_run_enabled = run_enabled;
    prev_run_symbols = run_symbols;
    prev_run_q = run_q;
  } while (prev_weight_enabled || prev_run_enabled);

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
    info.truncated = is_truncated;
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

}  // namespace udc::compression
