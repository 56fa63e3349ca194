// Functional int8 execution of one output-depth block of a kernel command: the MAC
// array's arithmetic and the output unit's requantisation, bit-exact with TFLite's
// int8 reference kernels. Bounds are checked by the caller before the command runs.
#pragma once

#include <cstdint>
#include <vector>

#include "udc/npu_sim/command_stream.hpp"

namespace udc::npu_sim {

/// Raw storage of the simulated memories, indexed by MemoryId.
struct MemoryArrays {
  uint8_t* base[kMemoryCount] = {};
  uint64_t size[kMemoryCount] = {};
};

/// Per-command state kept across its blocks (the input converted once).
class KernelContext {
 public:
  /// Prepares `command` for block execution: reads and offsets the input feature map.
  KernelContext(const Command& command, const MemoryArrays& memories);

  /// Computes output channels of `block` and writes them to the ofm. `weights` holds
  /// the block's decoded weights in stream order (per channel: [kh][kw][ic] for conv,
  /// [kh][kw] for depthwise, [n] for fully connected); `scales` one per channel.
  void run_block(uint32_t block, const int16_t* weights, const ChannelScale* scales);

 private:
  void conv_block(uint32_t first, uint32_t count, const int16_t* weights,
                  const ChannelScale* scales);
  void depthwise_block(uint32_t first, uint32_t count, const int16_t* weights,
                       const ChannelScale* scales);
  void fully_connected_block(uint32_t first, uint32_t count, const int16_t* weights,
                             const ChannelScale* scales);
  void add_block(uint32_t first, uint32_t count);
  void pool_block(uint32_t first, uint32_t count);
  void store(uint32_t y, uint32_t x, uint32_t channel, int32_t accumulator, const ChannelScale& s);

  const Command& command_;
  MemoryArrays memories_;
  /// Input plus its offset, zero-padded on all sides: (h + pads) x (w + pads) x c.
  std::vector<int16_t> padded_input_;
  uint32_t padded_h_ = 0, padded_w_ = 0;
  std::vector<int16_t> scratch_;
};

}  // namespace udc::npu_sim
