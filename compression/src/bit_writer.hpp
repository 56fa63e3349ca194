// Least-significant-bit-first bit writer: stream bit p is bit (p & 7) of byte p >> 3,
// and each field is written low bit first.
#pragma once

#include <cstdint>
#include <vector>

namespace udc::compression::detail {

class BitWriter {
 public:
  /// Appends to `out`; call finish() before reading it.
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out), start_bits_(out.size() * 8) {}

  /// Writes the low `bits` bits of value (bits <= 32; higher bits of value must be 0).
  void put(uint32_t value, int bits) {
    pending_ |= static_cast<uint64_t>(value) << pending_bits_;
    pending_bits_ += bits;
    written_bits_ += static_cast<uint64_t>(bits);
    if (pending_bits_ >= 32) {
      const uint32_t word = static_cast<uint32_t>(pending_);
      out_.push_back(static_cast<uint8_t>(word));
      out_.push_back(static_cast<uint8_t>(word >> 8));
      out_.push_back(static_cast<uint8_t>(word >> 16));
      out_.push_back(static_cast<uint8_t>(word >> 24));
      pending_ >>= 32;
      pending_bits_ -= 32;
    }
  }

  /// Fills with 1-bits up to the next byte boundary.
  void align_with_ones() {
    const int fill = static_cast<int>((8 - (written_bits_ & 7)) & 7);
    if (fill) put((1u << fill) - 1, fill);
  }

  /// Flushes whole pending bytes; the stream must be byte aligned.
  void finish() {
    while (pending_bits_ >= 8) {
      out_.push_back(static_cast<uint8_t>(pending_));
      pending_ >>= 8;
      pending_bits_ -= 8;
    }
  }

  /// Bits written since construction.
  uint64_t bits_written() const { return written_bits_; }
  /// Bit position in `out` including what it held before.
  uint64_t position() const { return start_bits_ + written_bits_; }

 private:
  std::vector<uint8_t>& out_;
  uint64_t start_bits_;
  uint64_t pending_ = 0;
  int pending_bits_ = 0;
  uint64_t written_bits_ = 0;
};

}  // namespace udc::compression::detail
