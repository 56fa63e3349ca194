// Encoder for the Ethos-U weight stream format.
//
// The encoder splits its work in two: planning (choosing zero-run mode, palette,
// slice boundaries and Golomb-Rice parameters, with the exact size of the result)
// and writing the bits of a plan. The search asks only for sizes, so planning never
// materialises the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace udc::compression {

/// How one section (a run of weights sharing one palette) maps weights to symbols.
struct Palette {
  /// Palette entries as sign-magnitude codes, in index order (0 or 2..32 entries).
  std::vector<uint16_t> entries;
  /// PALBITS: width of each entry (2..9); without entries, the width of
  /// uncompressed weight indices.
  int entry_bits = 2;
  /// DIROFS: index i >= entries.size() stands for code i - entries.size() + direct_offset.
  int direct_offset = 0;
  /// Zeros are coded as run lengths between weights (alternating mode).
  bool zero_runs = false;
};

/// One slice: a header and its interleaved weight and zero-run symbols.
struct SliceParams {
  uint32_t first_symbol = 0;     ///< first weight symbol of the slice, within its section
  uint32_t symbols = 0;          ///< weight symbols in the slice (SLICELEN + 1)
  uint8_t weight_divisor = 0;    ///< log2 of the weight Golomb-Rice divisor, 0..5
  bool truncated = false;        ///< weight quotients limited to 0..2, coded in at most 2 bits
  bool uncompressed = false;     ///< weight indices written as fixed-width remainders only
  uint8_t zero_run_divisor = 0;  ///< log2 of the zero-run divisor, 0..3 (zero-run mode only)
};

struct SectionPlan {
  size_t first_weight = 0;  ///< offset of the section in the input, in weights
  size_t weights = 0;       ///< input weights (zeros included) covered by the section
  Palette palette;
  std::vector<SliceParams> slices;
  uint64_t bits = 0;  ///< exact size of the section's slices, in bits
};

struct EncodingPlan {
  std::vector<SectionPlan> sections;
  uint64_t payload_bits = 0;  ///< all slices, before the end marker and padding

  /// Size of the complete stream: payload, end-of-stream marker, byte alignment
  /// and 0xFF padding to 16 bytes.
  uint64_t stream_bytes() const;
};

/// Reusable encoder. Keeps scratch buffers between calls, so one instance per thread
/// encodes many tensors without allocating. Not thread-safe.
///
/// Inputs are weights in [-255, 255] (int8 weights are a subset; -128 is legal but
/// costs a 9-bit magnitude). Out-of-range values throw std::out_of_range naming the
/// offending index and value.
class WeightEncoder {
 public:
  /// Plans the stream for `count` weights and returns the plan (valid until the next
  /// call). The plan's sizes are exact: encode() of the same input produces
  /// plan.stream_bytes() bytes.
  const EncodingPlan& plan(const int8_t* weights, size_t count);
  const EncodingPlan& plan(const int16_t* weights, size_t count);

  /// Exact size in bytes of the encoded stream, without writing it.
  uint64_t encoded_bytes(const int8_t* weights, size_t count) {
    return plan(weights, count).stream_bytes();
  }
  uint64_t encoded_bytes(const int16_t* weights, size_t count) {
    return plan(weights, count).stream_bytes();
  }

  /// Plans and writes the stream.
  std::vector<uint8_t> encode(const int8_t* weights, size_t count);
  std::vector<uint8_t> encode(const int16_t* weights, size_t count);

 private:
  template <class Weight>
  const EncodingPlan& plan_impl(const Weight* weights, size_t count);
  template <class Weight>
  void plan_section(const Weight* weights, size_t begin, size_t end);
  uint64_t plan_slices(SectionPlan& section);
  void write(std::vector<uint8_t>& out) const;

  EncodingPlan plan_;
  // Symbols of every section, concatenated in section order.
  std::vector<uint16_t> indices_;            // weight index per weight symbol
  std::vector<uint32_t> zero_runs_;          // zeros after each symbol (+1 leading per section)
  std::vector<size_t> section_index_begin_;  // first symbol of each section in indices_
  std::vector<size_t> section_run_begin_;    // first run of each section in zero_runs_
  std::vector<uint32_t> run_scratch_;        // zero runs of the section being planned
  std::vector<int16_t> nonzero_scratch_;     // its non-zero weights, in order
};

/// Convenience wrappers around a temporary WeightEncoder.
std::vector<uint8_t> encode_weights(const int8_t* weights, size_t count);
std::vector<uint8_t> encode_weights(const int16_t* weights, size_t count);
uint64_t encoded_size_bytes(const int8_t* weights, size_t count);

}  // namespace udc::compression
