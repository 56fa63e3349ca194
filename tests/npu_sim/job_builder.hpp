// Builds single-operation jobs for the simulator tests: places tensors in SRAM, encodes
// each output-depth block's weights with the codec into off-chip memory, writes scale
// records, and emits the command.
#pragma once

#include <random>

#include "scalar_reference.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/npu_sim/command_stream.hpp"

namespace udc::npu_sim::test {

constexpr uint64_t kIfmAddress = 0x1000;
constexpr uint64_t kIfm2Address = 0x40000;
constexpr uint64_t kOfmAddress = 0x80000;

inline TensorRef tensor_ref(uint64_t address, const Tensor& t) {
  TensorRef r;
  r.memory = MemoryId::Sram;
  r.address = address;
  r.shape = {uint32_t(t.h), uint32_t(t.w), uint32_t(t.c)};
  return r;
}

inline Tensor random_tensor(int h, int w, int c, std::mt19937& rng, int lo = -128, int hi = 127) {
  Tensor t(h, w, c);
  std::uniform_int_distribution<int> d(lo, hi);
  for (int8_t& v : t.data) v = int8_t(d(rng));
  return t;
}

/// Random weights in [-limit, limit] with about `sparsity` exact zeros.
inline std::vector<int8_t> random_weights(size_t n, int limit, double sparsity, std::mt19937& rng) {
  std::vector<int8_t> w(n);
  std::uniform_int_distribution<int> d(-limit, limit);
  std::bernoulli_distribution zero(sparsity);
  for (int8_t& v : w) v = zero(rng) ? 0 : int8_t(d(rng));
  return w;
}

/// Random but sensible output-unit parameters (multipliers in [2^30, 2^31)).
inline RefQuant random_quant(int channels, std::mt19937& rng) {
  RefQuant q;
  q.input_zp = std::uniform_int_distribution<int>(-128, 127)(rng);
  q.output_zp = std::uniform_int_distribution<int>(-128, 127)(rng);
  for (int c = 0; c < channels; ++c) {
    q.bias.push_back(std::uniform_int_distribution<int32_t>(-20000, 20000)(rng));
    q.multiplier.push_back(std::uniform_int_distribution<int32_t>(1 << 30, INT32_MAX)(rng));
    q.shift.push_back(std::uniform_int_distribution<int>(-12, -4)(rng));
  }
  return q;
}

/// Adds the command's weight streams and scale records to `stream` as an off-chip
/// image at `base`. `weights` in the command's stream order, whole tensor.
inline void attach_weights(CommandStream& stream, Command& c, const std::vector<int8_t>& weights,
                           const RefQuant& q, uint64_t base = 0) {
  MemoryImage image;
  image.memory = MemoryId::Offchip;
  image.address = base;
  const uint64_t per_channel = c.weights_per_channel();
  c.weight_memory = MemoryId::Offchip;
  c.weight_streams.clear();
  for (uint32_t b = 0; b < c.ofm_blocks(); ++b) {
    const size_t first = size_t(b) * c.ofm_block_depth * per_channel;
    const size_t count = size_t(c.block_channels(b)) * per_channel;
    std::vector<uint8_t> encoded = compression::encode_weights(weights.data() + first, count);
    c.weight_streams.push_back(WeightStreamRef{base + image.bytes.size(), uint32_t(encoded.size())});
    image.bytes.insert(image.bytes.end(), encoded.begin(), encoded.end());
  }
  c.scale_address = base + image.bytes.size();
  for (size_t ch = 0; ch < q.bias.size(); ++ch) {
    uint8_t record[kScaleRecordBytes];
    write_scale_record(ChannelScale{q.bias[ch], q.multiplier[ch], q.shift[ch]}, record);
    image.bytes.insert(image.bytes.end(), record, record + kScaleRecordBytes);
  }
  stream.images.push_back(std::move(image));
}

inline void place_input(CommandStream& stream, uint64_t address, const Tensor& t) {
  MemoryImage image;
  image.memory = MemoryId::Sram;
  image.address = address;
  image.bytes.assign(reinterpret_cast<const uint8_t*>(t.data.data()),
                     reinterpret_cast<const uint8_t*>(t.data.data()) + t.data.size());
  stream.images.push_back(std::move(image));
}

inline void set_window(Command& c, const RefWindow& win, int pad_bottom, int pad_right) {
  c.kernel_h = uint32_t(win.kh);
  c.kernel_w = uint32_t(win.kw);
  c.stride_h = uint32_t(win.sh);
  c.stride_w = uint32_t(win.sw);
  c.pad_top = uint32_t(win.pad_top);
  c.pad_left = uint32_t(win.pad_left);
  c.pad_bottom = uint32_t(pad_bottom);
  c.pad_right = uint32_t(pad_right);
}

inline Tensor output_tensor(const std::vector<uint8_t>& bytes, int h, int w, int c) {
  Tensor t(h, w, c);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<uint8_t*>(t.data.data()));
  return t;
}

}  // namespace udc::npu_sim::test
