// Least-significant-bit-first bit writer: stream bit p is bit (p & 7) of byte p >> 3,
// and each field is written low bit first.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace udc::compression::detail {

class BitWriter {
 public:
  /// Appends to `out`, which grows as needed; reserve() it for speed. Call finish()
  /// before reading it.
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out), size_(out.size()) {}

  /// Writes the low `bits` bits of value (bits <= 32; higher bits of value must be 0).
  void put(uint32_t value, int bits) {
    pending_ |= static_cast<uint64_t>(value) << pending_bits_;
    pending_bits_ += bits;
    written_bits_ += static_cast<uint64_t>(bits);
    if (pending_bits_ >= 32) {
      if (size_ + 4 > out_.size())
        out_.resize(out_.capacity() >= size_ + 4 ? out_.capacity() : 2 * size_ + 64);
      const uint8_t bytes[4] = {static_cast<uint8_t>(pending_), static_cast<uint8_t>(pending_ >> 8),
                                static_cast<uint8_t>(pending_ >> 16),
                                static_cast<uint8_t>(pending_ >> 24)};
      std::memcpy(out_.data() + size_, bytes, 4);
      size_ += 4;
      pending_ >>= 32;
      pending_bits_ -= 32;
    }
  }

  /// Fills with 1-bits up to the next byte boundary.
  void align_with_ones() {
    const int fill = static_cast<int>((8 - (written_bits_ & 7)) & 7);
    if (fill) put((1u << fill) - 1, fill);
  }

  /// Flushes whole pending bytes and trims `out` to what was written; the stream
  /// must be byte aligned.
  void finish() {
    out_.resize(size_);
    while (pending_bits_ >= 8) {
      out_.push_back(static_cast<uint8_t>(pending_));
      pending_ >>= 8;
      pending_bits_ -= 8;
    }
    size_ = out_.size();
  }

  /// Bits written since construction.
  uint64_t bits_written() const { return written_bits_; }

 private:
  std::vector<uint8_t>& out_;
  size_t size_;  // bytes of out_ holding stream data
  uint64_t pending_ = 0;
  int pending_bits_ = 0;
  uint64_t written_bits_ = 0;
};

}  // namespace udc::compression::detail
