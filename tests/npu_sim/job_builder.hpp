// Builds single-operation jobs for the simulator tests: places tensors in SRAM, encodes
// each output-depth block's weights with the codec into off-chip memory, writes scale
// records, and emits the command.
#pragma once

#include <random>

#include "scalar_reference.hpp"
#include "udc/compression/decoder.hpp"
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
    // The decoding work, recorded as the compiler does, so the decoder is charged for it.
    const compression::StreamWork work =
        compression::measure_stream_work(encoded.data(), encoded.size());
    c.weight_streams.push_back(WeightStreamRef{base + image.bytes.size(), uint32_t(encoded.size()),
                                               work.slices, work.symbols(), work.payload_bits});
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

inline Command dma(MemoryId src, uint64_t src_address, MemoryId dst, uint64_t dst_address,
                   uint64_t bytes) {
  Command c;
  c.kind = CommandKind::Dma;
  c.dma_src_memory = src;
  c.dma_src_address = src_address;
  c.dma_dst_memory = dst;
  c.dma_dst_address = dst_address;
  c.dma_bytes = bytes;
  return c;
}

/// A conv whose dimensions fill the U55-128 micro-block (2x1x8, 8 input channels per
/// step) exactly, with weights in fast SRAM and fast decoders: compute-bound.
struct ConvJob {
  CommandStream stream;
  Command command;
};

inline ConvJob make_conv(int out_h, int out_w, int in_c, int out_c, int k, double sparsity,
                         uint32_t block, std::mt19937& rng, int stride = 1) {
  ConvJob job;
  const int pad = k / 2;
  const Tensor input = random_tensor((out_h - 1) * stride + 1, (out_w - 1) * stride + 1, in_c, rng);
  RefWindow win{k, k, stride, stride, pad, pad, out_h, out_w};
  Command& c = job.command;
  c.kind = CommandKind::Conv2d;
  set_window(c, win, pad, pad);
  c.ifm = tensor_ref(kIfmAddress, input);
  c.ofm = tensor_ref(kOfmAddress, Tensor(out_h, out_w, out_c));
  c.ofm_block_depth = block;
  const RefQuant q = random_quant(out_c, rng);
  c.input_zero_point = q.input_zp;
  c.output_zero_point = q.output_zp;
  attach_weights(job.stream, c, random_weights(size_t(out_c) * k * k * in_c, 127, sparsity, rng),
                 q);
  place_input(job.stream, kIfmAddress, input);
  job.stream.commands.push_back(c);
  return job;
}

/// A fully connected layer of `in_c` inputs and `out_c` outputs in blocks of `block`
/// channels, its weights within +-`limit` and `sparsity` zeros, alone in its job.
inline ConvJob make_fc(int in_c, int out_c, uint32_t block, int limit, double sparsity,
                       std::mt19937& rng) {
  ConvJob job;
  const Tensor input = random_tensor(1, 1, in_c, rng);
  Command& fc = job.command;
  fc.kind = CommandKind::FullyConnected;
  fc.ifm = tensor_ref(kIfmAddress, input);
  fc.ofm = tensor_ref(kOfmAddress, Tensor(1, 1, out_c));
  fc.ofm_block_depth = block;
  attach_weights(job.stream, fc, random_weights(size_t(out_c) * in_c, limit, sparsity, rng),
                 random_quant(out_c, rng));
  place_input(job.stream, kIfmAddress, input);
  job.stream.commands.push_back(fc);
  return job;
}

/// A small network: DMA of the second layer's weights into SRAM overlapping the first
/// layer, then depthwise, conv and fully connected layers.
inline CommandStream example_network(std::mt19937& rng) {
  ConvJob first = make_conv(16, 16, 8, 32, 3, 0.5, 8, rng);
  CommandStream stream = first.stream;
  // Layer 2: depthwise 3x3 stride 2 on the 16x16x32 output, weights DMA'd to SRAM.
  Command dw;
  dw.kind = CommandKind::DepthwiseConv2d;
  set_window(dw, RefWindow{3, 3, 2, 2, 1, 1, 8, 8}, 1, 1);
  dw.ifm = first.command.ofm;
  dw.ofm = tensor_ref(0x100000, Tensor(8, 8, 32));
  dw.ofm_block_depth = 16;
  const RefQuant q2 = random_quant(32, rng);
  attach_weights(stream, dw, random_weights(32 * 9, 127, 0.3, rng), q2, 0x20000);
  const uint64_t image_bytes = stream.images.back().bytes.size();
  stream.commands.insert(stream.commands.begin(),
                         dma(MemoryId::Offchip, 0x20000, MemoryId::Sram, 0x200000, image_bytes));
  for (WeightStreamRef& s : dw.weight_streams) s.address += 0x200000 - 0x20000;
  dw.scale_address += 0x200000 - 0x20000;
  dw.weight_memory = MemoryId::Sram;
  Command wait;
  wait.kind = CommandKind::WaitDma;
  stream.commands.push_back(wait);
  stream.commands.push_back(dw);
  // Layer 3: 1x1 conv to 64 channels; layer 4: fully connected to 10.
  Command pw;
  pw.kind = CommandKind::Conv2d;
  pw.ifm = dw.ofm;
  pw.ofm = tensor_ref(0x110000, Tensor(8, 8, 64));
  pw.ofm_block_depth = 16;
  attach_weights(stream, pw, random_weights(64 * 32, 7, 0.7, rng), random_quant(64, rng), 0x40000);
  stream.commands.push_back(pw);
  Command fc;
  fc.kind = CommandKind::FullyConnected;
  fc.ifm = pw.ofm;
  fc.ofm = tensor_ref(0x120000, Tensor(1, 1, 10));
  fc.ofm_block_depth = 8;
  attach_weights(stream, fc, random_weights(10 * 8 * 8 * 64, 3, 0.8, rng), random_quant(10, rng),
                 0x60000);
  stream.commands.push_back(fc);
  stream.outputs.push_back({"logits", MemoryId::Sram, 0x120000, 10});
  return stream;
}

}  // namespace udc::npu_sim::test
