#include "udc/npu_sim/timing.hpp"

#include <algorithm>

namespace udc::npu_sim {
namespace {
uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
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

uint64_t compute_cycles(const Command& c, uint32_t block, const NpuConfig& config) {
  const MicroBlock& ub = config.micro_block;
  const uint64_t depth_steps = ceil_div(c.block_channels(block), uint64_t{ub.c} * config.cores);
  const uint64_t spatial_steps = ceil_div(c.ofm.shape[0], ub.h) * ceil_div(c.ofm.shape[1], ub.w);
  const uint64_t taps = uint64_t{c.kernel_h} * c.kernel_w;
  switch (c.kind) {
    case CommandKind::Conv2d:
      return spatial_steps * depth_steps * taps *
             ceil_div(c.ifm.shape[2], config.input_depth_per_step());
    case CommandKind::FullyConnected:
      return depth_steps * ceil_div(c.ifm.elements(), config.input_depth_per_step());
    case CommandKind::DepthwiseConv2d:
    case CommandKind::MaxPool:
    case CommandKind::AvgPool:
      return spatial_steps * depth_steps * taps;
    case CommandKind::Add:
      return spatial_steps * depth_steps;
    default:
      return 0;
  }
}

double decode_cycles(uint64_t weights, const NpuConfig& config) {
  return static_cast<double>(weights) / config.decoder_weights_per_cycle;
}

uint64_t ifm_bytes(const Command& c) {
  return c.ifm.elements() + (c.kind == CommandKind::Add ? c.ifm2.elements() : 0);
}

}  // namespace udc::npu_sim
