// Facts of the Ethos-U weight stream format (see DESIGN.md section 3 and
// compression/FORMAT.md). Everything here is a property of the bit stream, shared
// by the encoder, the decoder and the size estimators.
#pragma once

#include <cstdint>

namespace udc::compression::format {

// Weights are 9-bit sign-magnitude values: magnitude 0..255 and a sign bit.
constexpr int kMinWeight = -255;
constexpr int kMaxWeight = 255;

// Slice header field widths in bits, in stream order.
constexpr int kZdivBits = 3;
constexpr int kSliceLengthBits = 15;
constexpr int kWdivBits = 3;
constexpr int kTruncBits = 1;
constexpr int kNewPaletteBits = 1;
constexpr int kDirectOffsetBits = 5;
constexpr int kPaletteSizeBits = 5;
constexpr int kPaletteBitsBits = 3;

/// Bits of a slice header without palette.
constexpr int kSliceHeaderBits =
    kZdivBits + kSliceLengthBits + kWdivBits + kTruncBits + kNewPaletteBits;
/// Extra header bits of a slice that loads a palette, before its entries.
constexpr int kPaletteHeaderBits = kDirectOffsetBits + kPaletteSizeBits + kPaletteBitsBits;

// Special ZDIV / WDIV codes.
constexpr int kZdivNoZeroRuns = 6;    ///< zeros are coded as ordinary weights
constexpr int kZdivEndOfStream = 7;   ///< end-of-stream marker
constexpr int kWdivUncompressed = 7;  ///< weight indices stored as fixed-width remainders
constexpr int kMaxZdiv = 3;           ///< largest Golomb-Rice divisor (log2) for zero runs
constexpr int kMaxWdiv = 5;           ///< largest Golomb-Rice divisor (log2) for weights

constexpr int kMaxSliceLength = 1 << kSliceLengthBits;  ///< weights (not zeros) per slice
constexpr int kMaxPaletteSize = 32;
constexpr int kMinPaletteBits = 2;
constexpr int kMaxPaletteBits = 9;
constexpr int kMaxDirectOffset = (1 << kDirectOffsetBits) - 1;
constexpr int kMaxIndex = 511;  ///< largest weight index (9 bits)
/// Largest unary quotient the hardware decodes in a weight symbol (the reference
/// encoder never exceeds it; decoders accept more).
constexpr int kMaxWeightQuotient = 31;

/// Unary slots per weight chunk (WUNARY0 is always this wide).
constexpr int kWeightChunkSlots = 12;
/// Streams end on this alignment (bytes), padded with 0xFF.
constexpr int kStreamAlignmentBytes = 16;

/// Unary bits per zero-run chunk for a zero-run divisor.
constexpr int zero_run_chunk_slots(int zdiv) {
  return zdiv < 3 ? 12 : 8;
}
/// Symbols per weight chunk in uncompressed mode for a remainder width.
constexpr int uncompressed_chunk_symbols(int bits) {
  return bits > 5 ? 8 : 12;
}

/// Sign-magnitude code of a weight: magnitude << 1 | sign.
constexpr int to_sign_magnitude(int weight) {
  return weight < 0 ? ((-weight) << 1) | 1 : weight << 1;
}
constexpr int from_sign_magnitude(int code) {
  return (code & 1) ? -(code >> 1) : (code >> 1);
}

/// Smallest b with 2^b >= n (0 for n <= 1).
constexpr int ceil_log2(int n) {
  int bits = 0;
  while ((1 << bits) < n) ++bits;
  return bits;
}
/// Number of bits needed to write value (at least 1 for 0).
constexpr int bit_width(int value) {
  int bits = 1;
  while ((value >> bits) != 0) ++bits;
  return bits;
}

}  // namespace udc::compression::format
