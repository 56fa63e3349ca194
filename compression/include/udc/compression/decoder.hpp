// Decoder for the Ethos-U weight stream format.
//
// StreamDecoder hands weights out incrementally (as many as the caller asks for per
// call), so a hardware model can meter decode throughput. Corrupt or truncated
// streams never crash, read out of bounds or loop: decoding stops with a DecodeError
// naming the bit offset and the field being read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace udc::compression {

struct DecodeError {
  uint64_t bit_offset = 0;  ///< stream bit at which the field being read starts
  std::string field;        ///< slice header or chunk field, e.g. "WDIV", "ZUNARY"
  std::string message;      ///< what was expected
  std::string to_string() const;
};

/// Header and size of one decoded slice.
struct SliceInfo {
  uint64_t bit_offset = 0;      ///< where the slice header starts
  uint64_t bits = 0;            ///< header, palette and symbols
  uint32_t weight_symbols = 0;  ///< SLICELEN + 1
  uint64_t zeros_from_runs = 0;
  bool zero_runs = false;
  int zero_run_divisor = 0;  ///< log2, when zero_runs
  bool uncompressed = false;
  int weight_divisor = 0;  ///< log2; for uncompressed slices the index width
  bool truncated = false;
  bool new_palette = false;
  int palette_size = 0;   ///< entries of the palette in force
  int palette_bits = 0;   ///< PALBITS in force
  int direct_offset = 0;  ///< DIROFS in force
};

struct DecodeOptions {
  /// Decoding fails once the stream yields more weights than this (a guard for
  /// corrupt streams whose zero runs would otherwise exhaust memory).
  uint64_t max_weights = std::numeric_limits<uint32_t>::max();
  /// Keep one SliceInfo per slice (see StreamDecoder::slices()).
  bool record_slices = false;
};

class StreamDecoder {
 public:
  /// The decoder reads `size` bytes at `data`; they must outlive it.
  StreamDecoder(const uint8_t* data, size_t size, DecodeOptions options = {});

  /// Writes up to `capacity` weights to `out` and returns how many. Returns fewer
  /// than `capacity` only when the stream has ended or failed: see finished() and
  /// error().
  size_t read(int16_t* out, size_t capacity);

  /// The end-of-stream marker was reached at the end of the input and every weight
  /// has been read.
  bool finished() const {
    return finished_ && pending_zeros_ == 0 && next_symbol_ >= slice_symbols_;
  }
  const std::optional<DecodeError>& error() const { return error_; }
  /// Weights handed out so far.
  uint64_t weights_read() const { return weights_read_; }
  /// Stream bits consumed so far (the decoder works a slice ahead of its output).
  uint64_t bit_position() const { return position_; }
  const std::vector<SliceInfo>& slices() const { return slices_; }

 private:
  /// Chunk-loop state of the slice being decoded.
  struct ChunkState {
    uint32_t weight_count = 0, run_count = 0;
    int weight_bits = 0, zero_bits = 0, weight_slots = 0, zero_slots = 0;
    bool zero_runs = false, uncompressed = false, truncated = false;
    uint32_t weight_pos = 0, run_pos = 0, weight_prev_pos = 0, run_prev_pos = 0;
    uint32_t weight_carry = 0;
    uint64_t run_carry = 0;
    std::array<uint32_t, 12> weight_q{}, prev_weight_q{};
    std::array<uint64_t, 12> run_q{}, prev_run_q{};
    int prev_weight_symbols = 0, prev_run_symbols = 0;
    bool prev_weight_enabled = false, prev_run_enabled = false;
    uint64_t zeros = 0;
  };
  static constexpr int16_t kInvalidValue = -32768;

  bool decode_slice();
  template <bool kChecked>
  bool decode_chunk(ChunkState& state);
  template <bool kChecked>
  bool take(int bits, const char* field, uint32_t& value);
  void build_value_table();
  bool read_bits(int bits, const char* field, uint32_t& value);
  bool fail(uint64_t bit_offset, const char* field, std::string message);

  const uint8_t* data_;
  size_t size_;
  uint64_t size_bits_;
  uint64_t position_ = 0;
  DecodeOptions options_;

  // Stream state carried between slices.
  bool need_palette_ = true;
  bool section_zero_runs_ = false;
  std::vector<uint16_t> palette_;
  int palette_bits_ = 0;
  int direct_offset_ = 0;
  std::array<int16_t, 512> value_of_index_{};  // weight of each index, or kInvalidValue

  // The decoded slice waiting to be handed out.
  std::vector<int16_t> slice_weights_;
  std::vector<uint64_t> slice_runs_;
  uint32_t slice_symbols_ = 0;
  uint32_t next_symbol_ = 0;
  uint32_t run_offset_ = 0;  // 1 when the slice has a leading run
  bool slice_zero_runs_ = false;
  uint64_t pending_zeros_ = 0;

  uint64_t weights_decoded_ = 0;  // weights of all slices decoded so far
  uint64_t weights_read_ = 0;
  bool finished_ = false;
  std::optional<DecodeError> error_;
  std::vector<SliceInfo> slices_;
};

struct DecodeResult {
  std::vector<int16_t> weights;
  std::optional<DecodeError> error;
  std::vector<SliceInfo> slices;  ///< filled when DecodeOptions::record_slices
  bool ok() const { return !error.has_value(); }
};

/// Decodes a whole stream (one or several concatenated streams).
DecodeResult decode_stream(const uint8_t* data, size_t size, DecodeOptions options = {});

/// What a hardware weight decoder has to work through in a stream: the quantities its
/// time depends on (see npu_sim's decoder model).
struct StreamWork {
  uint32_t slices = 0;          ///< slice headers parsed
  uint64_t weight_symbols = 0;  ///< palette or direct symbols (one per weight not in a run)
  uint64_t run_symbols = 0;     ///< zero-run lengths (slices with zero runs: symbols + 1)
  uint64_t payload_bits = 0;    ///< bits of headers, palettes and symbols
  uint64_t weights = 0;         ///< weights produced, zeros from runs included
  uint64_t symbols() const { return weight_symbols + run_symbols; }
};

/// Measures a stream's decoding work (decodes it with record_slices). Throws
/// std::invalid_argument with the DecodeError if the stream is corrupt.
StreamWork measure_stream_work(const uint8_t* data, size_t size);

}  // namespace udc::compression
