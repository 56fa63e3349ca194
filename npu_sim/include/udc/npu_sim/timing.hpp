// Closed-form costs the simulator's units charge, and the output-block schedule that the
// compiler chooses and the simulator follows. Free functions, so the compiler, the tests
// and the search's cost model use the same formulas the simulation does. The model is
// described, with the source of every number, in npu_sim/FIDELITY.md.
#pragma once

#include <cstdint>

#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::npu_sim {

/// Cycles one memory's data channel is busy moving `bytes` in one transaction: whole
/// bursts at the memory's bandwidth. Latency is separate (it overlaps with other transfers).
double data_cycles(const MemoryConfig& memory, uint64_t bytes);

/// Cycles of an uncontended DMA of `bytes` from `src` to `dst`, split in transactions
/// of `chunk_bytes` (a multiple of both bursts): per transaction the slower of the two
/// channels, then the read latency of src and the write latency of dst.
double dma_cycles(const MemoryConfig& src, const MemoryConfig& dst, uint64_t bytes,
                  uint32_t chunk_bytes);

// --- The output-block schedule ---
//
// A kernel command's output is cut into blocks of (height, width, depth); the NPU walks
// them row by row of blocks, and within each spatial block through the depth blocks. For
// every block the input unit fetches the input block (with its halo; every input channel
// for convolutions and fully connected layers), a decoder fetches and decodes that depth
// block's weight stream, the MAC array computes it and the output unit writes it back.

/// Output block extents of a kernel command [elements]; 0 in the command means the whole
/// output (height, width) and is resolved here.
struct BlockShape {
  uint32_t h = 1, w = 1, d = 1;
};
BlockShape ofm_block_shape(const Command& command);
/// Blocks in height x width (each also cut in depth by ofm_block_depth).
uint64_t spatial_blocks(const Command& command);

/// Part-kernel-first traversal: the MAC array takes 8 input channels of 4 kernel positions
/// per step instead of 32 input channels of one position, which wastes less of each step on
/// shallow inputs. Chosen when its utilisation of the steps is higher (Ethos-U convolutions;
/// always depth-first for other kinds).
bool part_kernel_first(const Command& command);

/// MAC-array cycles of one output block of the given extents, for one core's share: per
/// input-depth chunk, kernel step and micro-block of depth, the larger of the micro-blocks'
/// compute (4 cycles each for 32 input channels) and loading the weights at
/// mac_weights_per_cycle, plus the pipeline delay of single-micro-block blocks; cores split
/// the block's depth.
double block_compute_cycles(const Command& command, const BlockShape& block,
                            const NpuConfig& config);

/// Output-unit cycles of one block (elements x output_cycles_per_element over the cores).
double block_output_cycles(const Command& command, const BlockShape& block,
                           const NpuConfig& config);

/// A memory access pattern: `runs` contiguous pieces of `run_bytes` each.
struct Access {
  uint64_t run_bytes = 0, runs = 0;
  uint64_t bytes() const { return run_bytes * runs; }
};
/// What the input unit reads for a block at output row `row`, column `col` (the block's
/// extents clipped at the edges): the window's input positions, every input channel
/// (convolution, fully connected) or the block's channels (depthwise, pooling, add: per
/// input), requested per position in pieces of the input block depth (32 channels, 16
/// part-kernel-first, the block depth for depthwise and pooling), each rounding up to a
/// burst.
Access input_block_access(const Command& command, const TensorRef& input, uint32_t row,
                          uint32_t col, const BlockShape& block);
/// What the output unit writes for a block: per position, pieces of at most
/// output_write_bytes x cores bytes of its channels, each rounding up to a burst.
Access output_block_access(const Command& command, const BlockShape& block,
                           const NpuConfig& config);

/// The input block that feeds an output block: the window's rows and columns rounded up
/// to the micro-block (sub-kernels of at most 8x8), and the input-block depth (32 channels,
/// 16 part-kernel-first, rounded up to 8; the block's depth for depthwise and pooling).
BlockShape input_block_shape(const Command& command, const BlockShape& block,
                             const NpuConfig& config);

/// Shared-buffer banks (of kSharedBufferBankBytes) an output block needs: the reserved
/// banks, two input blocks and two int32 accumulator blocks (add: two inputs, no
/// accumulators), each area rounded up to its granule.
uint64_t shared_buffer_banks(const Command& command, const BlockShape& block,
                             const NpuConfig& config);
bool fits_shared_buffer(const Command& command, const BlockShape& block, const NpuConfig& config);

/// The output block for a kernel command, chosen as Vela 3.10 chooses it: among blocks of
/// micro-block multiples up to 32 high, 64 wide and 128 deep (depth in multiples of 16 when
/// the output has several depth blocks; `depth` when not 0) that fit the shared buffer, the
/// one that fetches the least input and weights per output element (the input again for
/// every depth block of a convolution, the weights again for every spatial block), halved
/// when both input buffers hold the whole input; later (larger) blocks win ties.
BlockShape choose_ofm_block(const Command& command, const NpuConfig& config, uint32_t depth);

/// Closed-form parts of a kernel command's time under its block schedule, for decisions
/// the compiler makes before simulating (such as where weights are read from).
struct CommandEstimate {
  double compute = 0;          ///< MAC array over every block [cycles]
  double sram_traffic = 0;     ///< input and output traffic on the SRAM channel [cycles]
  double offchip_traffic = 0;  ///< the same on the off-chip channel [cycles]
  uint64_t spatial_blocks = 1;
};
CommandEstimate estimate_command(const Command& command, const NpuConfig& config);

/// Cycles one engine needs to decode a stream: per slice header decoder_slice_cycles, then
/// the larger of its symbols and its bits at the engine's rates. A stream whose work is not
/// recorded (symbols 0) is charged one symbol and 8 bits per weight.
double decode_cycles(const WeightStreamRef& stream, uint64_t weights, const NpuConfig& config);

}  // namespace udc::npu_sim
