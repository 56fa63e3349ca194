// The NPU command stream: what firmware hands the command processor. Serialised as JSON
// (documented in npu_sim/COMMANDS.md); built directly in C++ by tests and the compiler.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "udc/int8/fixed_point.hpp"

namespace udc::npu_sim {

/// The memories a command can address.
enum class MemoryId : uint8_t { Sram = 0, Offchip = 1 };
constexpr int kMemoryCount = 2;
const char* memory_name(MemoryId id);

/// An int8 NHWC feature map (or a region of one) in memory. Channels are contiguous;
/// strides say how far apart columns and rows are, so a command can address a stripe
/// or a channel slice of a larger tensor.
struct TensorRef {
  MemoryId memory = MemoryId::Sram;
  uint64_t address = 0;                    ///< byte address of element (0, 0, 0)
  std::array<uint32_t, 3> shape{1, 1, 1};  ///< height, width, channels [elements]
  uint64_t row_stride = 0;                 ///< bytes between rows; 0 = dense (width * col_stride)
  uint64_t column_stride = 0;              ///< bytes between columns; 0 = dense (channels)

  uint64_t col_step() const { return column_stride ? column_stride : shape[2]; }
  uint64_t row_step() const { return row_stride ? row_stride : shape[1] * col_step(); }
  uint64_t elements() const { return uint64_t{shape[0]} * shape[1] * shape[2]; }
  /// One past the highest byte address the tensor touches.
  uint64_t end_address() const;
};

/// Command kinds. The order is the order of kCommandTraits.
enum class CommandKind : uint8_t {
  Dma,      ///< copy bytes between memories, asynchronously
  WaitDma,  ///< stall the command processor until at most `max_pending_dma` are in flight
  Conv2d,
  DepthwiseConv2d,
  FullyConnected,
  Add,
  MaxPool,
  AvgPool,
  Mean,  ///< TFLite's int8 MEAN over a window: zero points applied, rescaled, averaged
};

/// What a command kind is, said once: its name in the stream and the properties that
/// validation, the kernels, timing and the compiler dispatch on. A new kind is one row
/// here plus its kernel and its timing.
struct CommandTraits {
  CommandKind kind;
  const char* name;         ///< the stream's "op" (COMMANDS.md)
  bool kernel;              ///< runs on the MAC array and output unit (not a DMA or a wait)
  bool weights;             ///< carries weight streams and per-channel scale records
  bool windowed;            ///< a kernel window with stride and padding
  bool all_input_channels;  ///< every output channel reads every input channel (else its own)
  bool second_input;        ///< reads ifm2
};
// clang-format off
inline constexpr std::array<CommandTraits, 9> kCommandTraits{{
    // kind                         name                kernel weights window all_ic ifm2
    {CommandKind::Dma,             "dma",              false, false, false, false, false},
    {CommandKind::WaitDma,         "wait_dma",         false, false, false, false, false},
    {CommandKind::Conv2d,          "conv2d",           true,  true,  true,  true,  false},
    {CommandKind::DepthwiseConv2d, "depthwise_conv2d", true,  true,  true,  false, false},
    {CommandKind::FullyConnected,  "fully_connected",  true,  true,  false, true,  false},
    {CommandKind::Add,             "add",              true,  false, false, false, true},
    {CommandKind::MaxPool,         "max_pool",         true,  false, true,  false, false},
    {CommandKind::AvgPool,         "avg_pool",         true,  false, true,  false, false},
    {CommandKind::Mean,            "mean",             true,  false, true,  false, false},
}};
// clang-format on
constexpr const CommandTraits& traits(CommandKind kind) {
  return kCommandTraits[static_cast<size_t>(kind)];
}
constexpr const char* command_name(CommandKind kind) {
  return traits(kind).name;
}
constexpr bool has_weights(CommandKind kind) {
  return traits(kind).weights;
}

/// One weight stream: the encoded weights of one output-depth block.
struct WeightStreamRef {
  uint64_t address = 0;  ///< byte address in the op's weight memory
  uint32_t bytes = 0;    ///< encoded length [bytes]
  /// The decoding work the stream holds (compression::StreamWork), recorded by whoever
  /// encoded it so that timing-only runs, which keep no memory contents, can charge the
  /// decoder for it. symbols == 0: not recorded (see decode_cycles()).
  uint32_t slices = 0;
  uint64_t symbols = 0;
  uint64_t payload_bits = 0;
};

/// One command. Fields not used by a kind keep their defaults.
struct Command {
  CommandKind kind = CommandKind::Dma;

  // Dma
  MemoryId dma_src_memory = MemoryId::Offchip, dma_dst_memory = MemoryId::Sram;
  uint64_t dma_src_address = 0, dma_dst_address = 0;
  uint64_t dma_bytes = 0;
  // WaitDma
  uint32_t max_pending_dma = 0;

  // Kernel operations
  TensorRef ifm, ifm2, ofm;  ///< ifm2: second input of Add
  uint32_t kernel_h = 1, kernel_w = 1;
  uint32_t stride_h = 1, stride_w = 1;
  uint32_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int32_t input_zero_point = 0;   ///< ifm zero point (Add: ifm's)
  int32_t input2_zero_point = 0;  ///< Add only
  int32_t output_zero_point = 0;
  int32_t activation_min = -128, activation_max = 127;  ///< fused clamp (ReLU/ReLU6)
  int8::AddParams add;  ///< Add only: requantisation of both inputs and the output
  /// Mean only: the window's sum of (input - input_zero_point) is scaled by this pair
  /// (TFLite's input-to-output scale ratio; shift > 0: left) before it is divided by the
  /// window's size, rounding half away from zero.
  int32_t mean_multiplier = 1 << 30, mean_shift = 1;
  /// Output channels per block. Weight-carrying ops have one weight stream and one
  /// scale record per channel for each block, in order; blocks pipeline through the
  /// decoders, the MAC array and the output unit.
  uint32_t ofm_block_depth = 16;
  /// Output block height and width [elements]: the spatial unit of the NPU's schedule
  /// (see timing.hpp); 0: the whole output.
  uint32_t ofm_block_height = 0, ofm_block_width = 0;
  MemoryId weight_memory = MemoryId::Offchip;
  std::vector<WeightStreamRef> weight_streams;
  /// Per output channel: int32 bias, int32 multiplier, int8 shift (+: left), one pad
  /// byte: kScaleRecordBytes, little-endian, channel after channel.
  uint64_t scale_address = 0;

  uint32_t ofm_blocks() const { return (ofm.shape[2] + ofm_block_depth - 1) / ofm_block_depth; }
  uint32_t block_channels(uint32_t block) const;
  /// Weights one output channel needs.
  uint64_t weights_per_channel() const;
  /// Multiply-accumulates of the whole operation (Add and pooling: one per input read).
  uint64_t macs() const;
};

constexpr uint32_t kScaleRecordBytes = 10;

/// One output channel's output-unit parameters (a scale record in memory).
struct ChannelScale {
  int32_t bias = 0;
  int32_t multiplier = 0;
  int32_t shift = 0;  ///< > 0: left; -31..30
};
ChannelScale read_scale_record(const uint8_t* record);
void write_scale_record(const ChannelScale& scale, uint8_t* record);

/// Bytes placed in a memory before the job starts.
struct MemoryImage {
  MemoryId memory = MemoryId::Sram;
  uint64_t address = 0;
  std::vector<uint8_t> bytes;
};

/// A region read back after the job (a network output).
struct OutputRegion {
  std::string name;
  MemoryId memory = MemoryId::Sram;
  uint64_t address = 0;
  uint64_t bytes = 0;
};

/// A complete job: initial memory contents, commands, and outputs to read back.
struct CommandStream {
  std::vector<MemoryImage> images;
  std::vector<Command> commands;
  std::vector<OutputRegion> outputs;
};

/// Reads a command stream file (JSON, see COMMANDS.md). Images named by `file` are
/// read relative to the stream's folder. Throws naming the file, the command index and
/// key, and what was expected.
CommandStream read_command_stream(const std::string& path);
/// Writes the stream as JSON; images larger than `inline_limit` bytes go to files
/// beside it (`<stem>.image<N>.bin`). Written to a temporary and renamed.
void write_command_stream(const CommandStream& stream, const std::string& path,
                          size_t inline_limit = 4096);

/// Checks shapes, ranges and the consistency of every command (sizes, blocks, weight
/// streams). Returns the first problem as "command N (kind): ..." or empty.
std::string validate(const CommandStream& stream);

}  // namespace udc::npu_sim
