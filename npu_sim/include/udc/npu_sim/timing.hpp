// Closed-form costs the simulator's units charge. Kept as free functions so tests and
// the search's cost model use the same formulas the simulation does.
#pragma once

#include <cstdint>

#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::npu_sim {

/// Cycles one memory's data channel is busy moving `bytes`: whole bursts at the
/// memory's bandwidth. Latency is separate (it overlaps with other transfers).
double data_cycles(const MemoryConfig& memory, uint64_t bytes);

/// Cycles of an uncontended DMA of `bytes` from `src` to `dst`, split in transactions
/// of `chunk_bytes` (a multiple of both bursts): per transaction the slower of the two
/// channels, then the read latency of src and the write latency of dst.
double dma_cycles(const MemoryConfig& src, const MemoryConfig& dst, uint64_t bytes,
                  uint32_t chunk_bytes);

/// MAC-array cycles for output-depth block `block` of a kernel command: micro-block
/// steps times the input depth steps, cores splitting the block's depth. Equals the
/// block's MACs over the MAC rate when every dimension fills the micro-block.
uint64_t compute_cycles(const Command& command, uint32_t block, const NpuConfig& config);

/// Cycles one engine needs to decode `weights` weights.
double decode_cycles(uint64_t weights, const NpuConfig& config);

/// Bytes of input feature map(s) a kernel command reads per pass.
uint64_t ifm_bytes(const Command& command);

}  // namespace udc::npu_sim
