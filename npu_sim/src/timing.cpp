#include "udc/npu_sim/timing.hpp"

#include <algorithm>
#include <vector>

namespace udc::npu_sim {
namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

uint64_t round_up(uint64_t value, uint64_t unit) {
  return ceil_div(value, unit) * unit;
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
  return traits(kind).windowed;
}

/// Input channels the MAC array reads per output block: all of them for convolutions
/// and fully connected layers, the block's own otherwise.
bool reads_every_input_channel(CommandKind kind) {
  return traits(kind).all_input_channels;
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
    case CommandKind::Mean:
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
  // One request per position and input-block depth of channels (rounded up to the 8-channel
  // micro-block): NHWC rows are not fetched as one run, so a request shorter than a burst
  // wastes the rest of it. A dense tensor shallower than a request packs neighbouring
  // positions into each request.
  const uint64_t request = round_up(std::min(channels, input_request_bytes(c, block)), 8);
  const bool dense = input.col_step() == input.shape[2];
  Access a;
  if (channels < request && dense && c.kind != CommandKind::FullyConnected) {
    a.run_bytes = request;
    a.runs = ceil_div(positions * channels, request);
  } else {
    a.run_bytes = std::min(channels, request);
    a.runs = positions * ceil_div(channels, a.run_bytes);
  }
  return a;
}

Access output_block_access(const Command&, const BlockShape& block, const NpuConfig& config) {
  Access a;
  a.run_bytes = std::min<uint64_t>(block.d, uint64_t{config.output_write_bytes} * config.cores);
  a.runs = uint64_t{block.h} * block.w * ceil_div(block.d, a.run_bytes);
  return a;
}

namespace {

/// The largest output block the NPU's block registers describe [elements].
constexpr BlockShape kLargestBlock{32, 64, 128};
/// Output depth is split in multiples of this where an operation has several depth blocks.
constexpr uint32_t kDepthSplit = 16;
/// Kernels larger than this are run as sub-kernels, each re-reading the input block.
constexpr uint32_t kLargestSubKernel = 8;

/// Banks of one double-buffered area holding `bytes` per buffer, rounded to `granule`.
uint64_t area_banks(uint64_t bytes, uint32_t granule) {
  return round_up(ceil_div(bytes, kSharedBufferBankBytes) * 2, granule);
}

bool equal_depth(CommandKind kind) {
  return !reads_every_input_channel(kind);
}

}  // namespace

BlockShape input_block_shape(const Command& c, const BlockShape& block, const NpuConfig& config) {
  const MicroBlock& ub = config.micro_block;
  BlockShape in{block.h, block.w, block.d};
  if (windowed(c.kind)) {
    in.h = uint32_t(round_up(
        uint64_t{block.h - 1} * c.stride_h + std::min(c.kernel_h, kLargestSubKernel), ub.h));
    in.w = uint32_t(round_up(
        uint64_t{block.w - 1} * c.stride_w + std::min(c.kernel_w, kLargestSubKernel), ub.w));
  } else if (c.kind == CommandKind::FullyConnected) {
    in.h = in.w = 1;
  }
  if (reads_every_input_channel(c.kind)) {
    in.d = uint32_t(round_up(input_request_bytes(c, block), kPartKernelChannels));
  }
  return in;
}

uint64_t shared_buffer_banks(const Command& c, const BlockShape& block, const NpuConfig& config) {
  const BlockShape in = input_block_shape(c, block, config);
  const uint64_t input_bytes = uint64_t{in.h} * in.w * round_up(in.d, 8);
  uint64_t banks =
      config.shared_buffer_reserved_banks + area_banks(input_bytes, config.input_bank_granule);
  if (c.kind == CommandKind::Add) {
    banks += area_banks(input_bytes, config.input_bank_granule);  // the second input
  } else {
    const uint64_t accumulator_bytes = uint64_t{block.h} * block.w * round_up(block.d, 8) * 4;
    banks += area_banks(accumulator_bytes, config.accumulator_bank_granule);
  }
  return banks;
}

bool fits_shared_buffer(const Command& c, const BlockShape& block, const NpuConfig& config) {
  return shared_buffer_banks(c, block, config) <=
         config.shared_buffer_bytes / kSharedBufferBankBytes;
}

BlockShape choose_ofm_block(const Command& c, const NpuConfig& config, uint32_t depth) {
  const MicroBlock& ub = config.micro_block;
  const uint32_t out_h = c.ofm.shape[0], out_w = c.ofm.shape[1], out_d = c.ofm.shape[2];
  const uint32_t step_d = ub.c;
  const uint32_t search_h = uint32_t(round_up(std::min(out_h, kLargestBlock.h), ub.h));
  const uint32_t search_w = uint32_t(round_up(std::min(out_w, kLargestBlock.w), ub.w));
  const uint32_t search_d = uint32_t(round_up(std::min(out_d, kLargestBlock.d), step_d));
  const uint64_t in_depth = input_channels(c);
  const bool convolution = c.kind == CommandKind::Conv2d || c.kind == CommandKind::DepthwiseConv2d;
  const uint64_t kernel_positions = convolution ? uint64_t{c.kernel_h} * c.kernel_w : 0;
  const uint64_t repeats =
      ceil_div(c.kernel_h, kLargestSubKernel) * ceil_div(c.kernel_w, kLargestSubKernel);
  const double out_elements = double(c.ofm.elements());
  const double in_elements = double(c.ifm.elements());
  auto next_depth = [&](uint32_t d) { return d < out_d ? uint32_t(round_up(d, kDepthSplit)) : d; };
  uint32_t first_depth = next_depth(std::max(step_d, std::min(search_d, kDepthSplit)));
  uint32_t last_depth = search_d;
  if (depth > 0) first_depth = last_depth = std::min(depth, out_d);

  BlockShape best{std::min(ub.h, out_h), std::min(ub.w, out_w), first_depth};
  double best_cost = -1, best_coverage = 0;
  for (uint32_t d = first_depth; d <= last_depth; d = next_depth(d + step_d)) {
    for (uint32_t h = ub.h; h <= search_h; h += ub.h) {
      for (uint32_t w = ub.w; w <= search_w; w += ub.w) {
        const BlockShape block{h, w, d};
        if (!fits_shared_buffer(c, block, config)) break;  // wider only needs more
        const BlockShape in = input_block_shape(c, block, config);
        // Memory fetched per output element: input blocks (again for every depth block
        // of a convolution) and weights (again for every spatial block).
        const double full_h = double(ceil_div(out_h, h)), full_w = double(ceil_div(out_w, w));
        const double full_d = double(ceil_div(out_d, d));
        const double part_h = double(out_h) / h, part_w = double(out_w) / w;
        const double weight_fetch = double(kernel_positions * in_depth) * full_h * full_w *
                                    (c.kind == CommandKind::DepthwiseConv2d ? 1.0 : double(out_d));
        double input_fetch = double(uint64_t{in.h} * in.w * in_depth * repeats) * part_h * part_w;
        if (!equal_depth(c.kind)) input_fetch *= full_d;
        double cost = (input_fetch + weight_fetch) / out_elements;
        // An input that both buffers hold whole is fetched once.
        if (in_elements < 2.0 * double(uint64_t{in.h} * in.w * in.d)) cost /= 2;
        if (best_cost >= 0 && cost > best_cost) continue;
        if (best_cost >= 0 && cost == best_cost) {
          // Equal cost: prefer small blocks that cover more of a small input.
          const double coverage =
              double(uint64_t{c.ifm.shape[0]} * c.ifm.shape[1]) /
              double(uint64_t{std::min(c.ifm.shape[0], in.h)} * std::min(c.ifm.shape[1], in.w));
          if (!(coverage <= best_coverage && h <= 4 && w <= 4)) continue;
          best_coverage = coverage;
        } else {
          best_coverage = 1e300;
        }
        best_cost = cost;
        best = {std::min(h, out_h), std::min(w, out_w), std::min(d, out_d)};
      }
    }
    if (d >= last_depth) break;
  }
  return best;
}

CommandEstimate estimate_command(const Command& c, const NpuConfig& config) {
  CommandEstimate e;
  const BlockShape block = ofm_block_shape(c);
  e.spatial_blocks = spatial_blocks(c);
  const uint64_t blocks = e.spatial_blocks * c.ofm_blocks();
  e.compute = double(blocks) * block_compute_cycles(c, block, config);
  auto channel = [&](MemoryId id) -> double& {
    return id == MemoryId::Sram ? e.sram_traffic : e.offchip_traffic;
  };
  auto memory = [&](MemoryId id) -> const MemoryConfig& {
    return id == MemoryId::Sram ? config.sram : config.offchip;
  };
  // Interior blocks stand for all (edges read a little less).
  const Access in = input_block_access(c, c.ifm, c.pad_top ? 1 : 0, c.pad_left ? 1 : 0, block);
  channel(c.ifm.memory) +=
      double(blocks * in.runs) * data_cycles(memory(c.ifm.memory), in.run_bytes);
  if (c.kind == CommandKind::Add) {
    const Access in2 = input_block_access(c, c.ifm2, 0, 0, block);
    channel(c.ifm2.memory) +=
        double(blocks * in2.runs) * data_cycles(memory(c.ifm2.memory), in2.run_bytes);
  }
  const Access out = output_block_access(c, block, config);
  channel(c.ofm.memory) +=
      double(blocks * out.runs) * data_cycles(memory(c.ofm.memory), out.run_bytes);
  return e;
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
