#include "udc/npu_sim/timing.hpp"

#include <algorithm>
#include <vector>

namespace udc::npu_sim {
namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

/// Input channels one depth-first MAC step consumes (Ethos-U's int8 input block depth),
/// and the input channels and kernel positions of a part-kernel-first step.
constexpr uint32_t kDepthFirstChannels = 32;
constexpr uint32_t kPartKernelChannels = 8;
constexpr uint32_t kPartKernelPositions = 4;
/// Input block depth of part-kernel-first convolutions (int8).
constexpr uint32_t kPartKernelBlockDepth = 16;
/// Depthwise and pooling kernels advance this many kernel positions per step.
constexpr uint32_t kDepthwisePositions = 4;

bool windowed(CommandKind kind) {
  return kind == CommandKind::Conv2d || kind == CommandKind::DepthwiseConv2d ||
         kind == CommandKind::MaxPool || kind == CommandKind::AvgPool;
}

/// Input channels the MAC array reads per output block: all of them for convolutions
/// and fully connected layers, the block's own otherwise.
bool reads_every_input_channel(CommandKind kind) {
  return kind == CommandKind::Conv2d || kind == CommandKind::FullyConnected;
}

/// Cycles per micro-block step: a depth-first step's 32 input channels at the MAC array's
/// input rate (4 on every Ethos-U configuration).
double step_cycles(const NpuConfig& config) {
  return double(kDepthFirstChannels) / double(config.input_depth_per_step());
}

uint64_t input_channels(const Command& c) {
  return c.kind == CommandKind::FullyConnected ? c.ifm.elements() : c.ifm.shape[2];
}

/// One axis of the input a block reads: the window of `count` outputs from `first`,
/// clipped to the input.
uint32_t input_extent(uint32_t first, uint32_t count, uint32_t stride, uint32_t kernel,
                      uint32_t pad_before, uint32_t in_size) {
  const int64_t begin = int64_t{first} * stride - pad_before;
  const int64_t end = int64_t{first + count - 1} * stride - pad_before + kernel;
  return uint32_t(
      std::max<int64_t>(0, std::min<int64_t>(end, in_size) - std::max<int64_t>(begin, 0)));
}

}  // namespace

double data_cycles(const MemoryConfig& memory, uint64_t bytes) {
  const uint64_t bursts = ceil_div(bytes, memory.burst_bytes);
  return static_cast<double>(bursts * memory.burst_bytes) / memory.bytes_per_cycle;
}

double dma_cycles(const MemoryConfig& src, const MemoryConfig& dst, uint64_t bytes,
                  uint32_t chunk_bytes) {
  double cycles = 0;
  for (uint64_t done = 0; done < bytes; done += chunk_bytes) {
    const uint64_t chunk = std::min<uint64_t>(chunk_bytes, bytes - done);
    cycles += std::max(data_cycles(src, chunk), data_cycles(dst, chunk));
  }
  return cycles + src.read_latency_cycles + dst.write_latency_cycles;
}

BlockShape ofm_block_shape(const Command& c) {
  BlockShape b;
  b.h = c.ofm_block_height ? std::min(c.ofm_block_height, c.ofm.shape[0]) : c.ofm.shape[0];
  b.w = c.ofm_block_width ? std::min(c.ofm_block_width, c.ofm.shape[1]) : c.ofm.shape[1];
  b.d = std::min(c.ofm_block_depth, c.ofm.shape[2]);
  return b;
}

uint64_t spatial_blocks(const Command& c) {
  const BlockShape b = ofm_block_shape(c);
  return ceil_div(c.ofm.shape[0], b.h) * ceil_div(c.ofm.shape[1], b.w);
}

bool part_kernel_first(const Command& c) {
  if (c.kind != CommandKind::Conv2d) return false;
  const uint64_t depth = c.ifm.shape[2];
  const uint64_t positions = uint64_t{c.kernel_h} * c.kernel_w;
  const double depth_first =
      double(depth) / double(ceil_div(depth, kDepthFirstChannels) * kDepthFirstChannels);
  const double part_kernel =
      double(depth * positions) /
      double(ceil_div(depth, kPartKernelChannels) * kPartKernelChannels *
             ceil_div(positions, kPartKernelPositions) * kPartKernelPositions);
  return part_kernel > depth_first;
}

double block_compute_cycles(const Command& c, const BlockShape& block, const NpuConfig& config) {
  const MicroBlock& ub = config.micro_block;
  const uint64_t blocks_xy = ceil_div(block.h, ub.h) * ceil_div(block.w, ub.w);
  const uint64_t blocks_z = ceil_div(block.d, ub.c);
  const uint64_t positions = uint64_t{c.kernel_h} * c.kernel_w;
  const double step = step_cycles(config);
  // Loading one step's weights: micro-block depth x the step's input channels.
  const double weight_load = double(ub.c) * kDepthFirstChannels / config.mac_weights_per_cycle;
  const double per_step = std::max(weight_load, step * double(blocks_xy));
  uint64_t kernel_steps = positions;
  uint64_t depth_steps = 1;  // input-depth passes of the whole kernel
  double cycles = 0;
  switch (c.kind) {
    case CommandKind::Conv2d:
      if (part_kernel_first(c)) {
        const uint64_t block_depth = std::min<uint64_t>(c.ifm.shape[2], kPartKernelBlockDepth);
        kernel_steps = ceil_div(positions, kPartKernelPositions);
        const uint64_t channel_groups = ceil_div(block_depth, kPartKernelChannels);
        depth_steps = ceil_div(c.ifm.shape[2], block_depth) * channel_groups;
      } else {
        depth_steps = ceil_div(c.ifm.shape[2], kDepthFirstChannels);
      }
      cycles = per_step * double(kernel_steps * blocks_z * depth_steps);
      break;
    case CommandKind::FullyConnected:
      kernel_steps = 1;
      depth_steps = ceil_div(input_channels(c), kDepthFirstChannels);
      cycles = per_step * double(blocks_z * depth_steps);
      break;
    case CommandKind::DepthwiseConv2d:
      kernel_steps = ceil_div(positions, kDepthwisePositions);
      cycles = per_step * double(kernel_steps * blocks_z);
      break;
    case CommandKind::MaxPool:
    case CommandKind::AvgPool:
      kernel_steps = 1;
      cycles = double(std::max<uint64_t>(4, positions) * blocks_xy * blocks_z);
      break;
    case CommandKind::Add:
      return double(blocks_xy * blocks_z) / config.cores;
    default:
      return 0;
  }
  // A block of one micro-block in height and width cannot hide the accumulator
  // pipeline: the delay is paid per kernel step (all but the first when the block has
  // several micro-blocks of depth to interleave).
  double delay = 0;
  if (blocks_xy == 1) {
    if (blocks_z == 1) {
      delay = double(config.mac_pipeline_delay_cycles * kernel_steps);
    } else if (kernel_steps > 1) {
      delay = double(config.mac_pipeline_delay_cycles * (kernel_steps - 1) * blocks_z);
    }
  }
  cycles += delay * double(depth_steps);
  return cycles / config.cores;
}

double block_output_cycles(const Command&, const BlockShape& block, const NpuConfig& config) {
  return double(uint64_t{block.h} * block.w * block.d) * config.output_cycles_per_element /
         config.cores;
}

/// Input channels the input unit requests per position and transaction: the input
/// block depth (convolutions: 32, or 16 part-kernel-first; fully connected: 32; others:
/// the output block's depth).
uint64_t input_request_bytes(const Command& c, const BlockShape& block) {
  if (c.kind == CommandKind::Conv2d) {
    return std::min<uint64_t>(c.ifm.shape[2],
                              part_kernel_first(c) ? kPartKernelBlockDepth : kDepthFirstChannels);
  }
  if (c.kind == CommandKind::FullyConnected) {
    return std::min<uint64_t>(input_channels(c), kDepthFirstChannels);
  }
  return block.d;
}

Access input_block_access(const Command& c, const TensorRef& input, uint32_t row, uint32_t col,
                          const BlockShape& block) {
  uint64_t positions = uint64_t{block.h} * block.w;
  uint64_t channels = reads_every_input_channel(c.kind) ? input.shape[2] : block.d;
  if (c.kind == CommandKind::FullyConnected) {
    positions = 1;
    channels = input_channels(c);
  } else if (windowed(c.kind)) {
    positions =
        uint64_t{input_extent(row, block.h, c.stride_h, c.kernel_h, c.pad_top, input.shape[0])} *
        input_extent(col, block.w, c.stride_w, c.kernel_w, c.pad_left, input.shape[1]);
  }
  // One request per position and input-block depth of channels: NHWC rows are not
  // fetched as one run, so a request shorter than a burst wastes the rest of it.
  Access a;
  a.run_bytes = std::min(channels, input_request_bytes(c, block));
  a.runs = positions * ceil_div(channels, a.run_bytes);
  return a;
}

Access output_block_access(const Command& c, const BlockShape& block, const NpuConfig& config) {
  (void)c;
  Access a;
  a.run_bytes = std::min<uint64_t>(block.d, uint64_t{config.output_write_bytes} * config.cores);
  a.runs = uint64_t{block.h} * block.w * ceil_div(block.d, a.run_bytes);
  return a;
}

uint64_t shared_buffer_need(const Command& c, const BlockShape& block, const NpuConfig&) {
  uint64_t rows = block.h, cols = block.w;
  if (windowed(c.kind)) {
    rows = uint64_t{block.h - 1} * c.stride_h + c.kernel_h;
    cols = uint64_t{block.w - 1} * c.stride_w + c.kernel_w;
  }
  uint64_t depth = block.d;
  if (c.kind == CommandKind::Conv2d) {
    depth = std::min<uint64_t>(c.ifm.shape[2],
                               part_kernel_first(c) ? kPartKernelBlockDepth : kDepthFirstChannels);
  } else if (c.kind == CommandKind::FullyConnected) {
    rows = cols = 1;
    depth = std::min<uint64_t>(input_channels(c), kDepthFirstChannels);
  } else if (c.kind == CommandKind::Add) {
    depth = 2 * uint64_t{block.d};
  }
  const uint64_t input = rows * cols * depth;
  const uint64_t accumulators = uint64_t{block.h} * block.w * block.d * 4;
  return 2 * input + 2 * accumulators;
}

BlockShape choose_ofm_block(const Command& c, const NpuConfig& config, uint32_t depth,
                            const MemoryConfig& weight_memory) {
  const MicroBlock& ub = config.micro_block;
  const uint32_t out_h = c.ofm.shape[0], out_w = c.ofm.shape[1], out_d = c.ofm.shape[2];
  auto extents = [](uint32_t unit, uint32_t whole) {
    std::vector<uint32_t> values;
    for (uint32_t k : {1u, 2u, 3u, 4u, 6u, 8u, 12u, 16u, 24u, 32u, 48u, 64u}) {
      if (uint64_t{k} * unit < whole) values.push_back(k * unit);
    }
    values.push_back(whole);
    return values;
  };
  std::vector<uint32_t> depths;
  if (depth > 0) {
    depths.push_back(std::min(depth, out_d));
  } else {
    depths = extents(ub.c * config.cores, out_d);
  }
  const MemoryConfig& in_memory = c.ifm.memory == MemoryId::Sram ? config.sram : config.offchip;
  const MemoryConfig& out_memory = c.ofm.memory == MemoryId::Sram ? config.sram : config.offchip;
  const uint64_t weights = has_weights(c.kind) ? uint64_t{out_d} * c.weights_per_channel() : 0;
  struct Candidate {
    BlockShape block;
    double cycles = 0;
    uint64_t volume = 0;
  };
  std::vector<Candidate> candidates;
  for (uint32_t d : depths) {
    for (uint32_t h : extents(ub.h, out_h)) {
      for (uint32_t w : extents(ub.w, out_w)) {
        const BlockShape block{h, w, d};
        if (shared_buffer_need(c, block, config) > config.shared_buffer_bytes &&
            !(h == std::min(ub.h, out_h) && w == std::min(ub.w, out_w))) {
          continue;  // the smallest block is always allowed
        }
        // Full and edge blocks in each dimension, weighted by their counts.
        const uint32_t dims_h[2] = {h, out_h % h}, dims_w[2] = {w, out_w % w},
                       dims_d[2] = {d, out_d % d};
        const uint64_t counts_h[2] = {out_h / h, out_h % h ? 1u : 0u},
                       counts_w[2] = {out_w / w, out_w % w ? 1u : 0u},
                       counts_d[2] = {out_d / d, out_d % d ? 1u : 0u};
        double compute = 0, output = 0, input_traffic = 0, output_traffic = 0;
        for (int i = 0; i < 2; ++i) {
          for (int j = 0; j < 2; ++j) {
            for (int k = 0; k < 2; ++k) {
              const uint64_t n = counts_h[i] * counts_w[j] * counts_d[k];
              if (n == 0) continue;
              const BlockShape part{dims_h[i], dims_w[j], dims_d[k]};
              compute += double(n) * block_compute_cycles(c, part, config);
              output += double(n) * block_output_cycles(c, part, config);
              // An interior block's input: its window without clipping at the edges.
              const Access in =
                  input_block_access(c, c.ifm, c.pad_top ? 1 : 0, c.pad_left ? 1 : 0, part);
              input_traffic += double(n * in.runs) * data_cycles(in_memory, in.run_bytes);
              const Access out = output_block_access(c, part, config);
              output_traffic += double(n * out.runs) * data_cycles(out_memory, out.run_bytes);
            }
          }
        }
        // Weights are fetched again for every spatial block; traffic on one memory adds up.
        const double spatial = double(ceil_div(out_h, h) * ceil_div(out_w, w));
        const double weight_traffic = double(weights) * spatial / weight_memory.bytes_per_cycle;
        double in_channel = input_traffic, out_channel = output_traffic,
               weight_channel = weight_traffic;
        if (&in_memory == &out_memory) in_channel = out_channel = input_traffic + output_traffic;
        if (&weight_memory == &in_memory || &weight_memory == &out_memory) {
          weight_channel += std::max(in_channel, out_channel);
        }
        const double memory = std::max({in_channel, out_channel, weight_channel});
        candidates.push_back({block, std::max({compute, output, memory}), uint64_t{h} * w * d});
      }
    }
  }
  // The largest block within a small margin of the fastest: the estimate leaves out fixed
  // per-block costs, which favour fewer, larger blocks.
  constexpr double kMargin = 1.03;
  double fastest = candidates.front().cycles;
  for (const Candidate& k : candidates) fastest = std::min(fastest, k.cycles);
  const Candidate* best = nullptr;
  for (const Candidate& k : candidates) {
    if (k.cycles <= fastest * kMargin && (!best || k.volume > best->volume)) best = &k;
  }
  return best->block;
}

double decode_cycles(const WeightStreamRef& stream, uint64_t weights, const NpuConfig& config) {
  const uint64_t symbols = stream.symbols ? stream.symbols : weights;
  const uint64_t bits = stream.symbols ? stream.payload_bits : 8 * weights;
  const uint32_t slices = stream.symbols ? stream.slices : 1;
  return double(slices) * config.decoder_slice_cycles +
         std::max(double(symbols) / config.decoder_symbols_per_cycle,
                  double(bits) / config.decoder_bits_per_cycle);
}

}  // namespace udc::npu_sim
