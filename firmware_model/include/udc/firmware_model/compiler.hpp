// Lowers a Model to an NPU command stream for one NpuConfig: encodes each weight block
// with the codec and places the streams in flash (or SRAM), plans the activation arena
// in SRAM with liveness, splits operations whose weights do not fit the weight buffers,
// schedules weight DMA with double buffering and emits the commands. A model that cannot
// fit is reported as a value (DoesNotFit), never thrown: the search relies on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/firmware_model/model.hpp"
#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {

/// How weight streams reach the decoders.
enum class WeightPlacement {
  /// Per operation: prefetch where the estimate (npu_sim::estimate_command) says the
  /// operation, whose weights are fetched again for every spatial block, finishes sooner
  /// reading them from SRAM after a DMA than streaming them from flash; stream otherwise.
  Auto,
  Stream,    ///< decoders read the streams where they are stored (flash or SRAM)
  Prefetch,  ///< DMA each tile's streams into one of two SRAM buffers ahead of its use
};
const char* weight_placement_name(WeightPlacement placement);

struct CompileOptions {
  WeightPlacement weights = WeightPlacement::Auto;
  /// Output channels per weight block; 0: chosen per operation (see compiler.cpp).
  uint32_t ofm_block_depth = 0;
  /// Bytes of each of the two prefetch buffers; 0: the largest operation's weights,
  /// limited by the SRAM the arena leaves free.
  uint64_t weight_buffer_bytes = 0;
  /// Output rows per stripe of windowed operations; 0: striped only where the input does
  /// not fit the shared buffer and striping is estimated to save cycles; at least the
  /// output height: never.
  uint32_t stripe_rows = 0;
  /// false: every tensor keeps its own SRAM region and is read back after the job, so a
  /// verification can compare every layer (costs SRAM; used by `udc verify`).
  bool reuse_memory = true;
};

/// Bytes are aligned to this in SRAM and flash (the NPU's burst-friendly alignment).
constexpr uint64_t kPlacementAlignment = 16;

/// Bytes of one weight tile in the image: each stream aligned, then the `channels` scale
/// records, aligned. An operation streamed in place is one tile; prefetched, one per DMA.
uint64_t weight_tile_bytes(const std::vector<uint64_t>& stream_bytes, uint32_t channels);

/// One operation's weights (`channels` output channels of `per_channel` weights each, the
/// model's layout) encoded as the compiler encodes them, one stream per block of
/// `block_depth` output channels (0: one block), and laid out as one tile.
struct WeightLayout {
  uint64_t stream_bytes = 0;  ///< the encoded streams [bytes]
  uint64_t image_bytes = 0;   ///< weight_tile_bytes of them [bytes]
};
WeightLayout layout_weights(const int8_t* weights, uint32_t channels, uint64_t per_channel,
                            uint32_t block_depth);

/// Where a tensor lives and when. Steps are operation indices; model inputs are live from
/// step 0, model outputs to the last step.
struct TensorPlacement {
  npu_sim::MemoryId memory = npu_sim::MemoryId::Sram;  ///< SRAM, or DRAM in dedicated_sram
  uint64_t address = 0;                                ///< byte address in `memory`
  uint64_t bytes = 0;
  uint32_t first_step = 0, last_step = 0;  ///< inclusive
  int32_t alias_of = -1;                   ///< a Reshape output shares its input's region
};

struct MemoryPlan {
  std::vector<TensorPlacement> tensors;  ///< indexed like Model::tensors
  uint64_t arena_bytes = 0;  ///< peak bytes of the activations in SRAM (the arena's end)
  /// Activations kept off-chip in dedicated_sram (the model's inputs and outputs, and the
  /// intermediates when they do not fit system.npu_cache_bytes) [bytes]
  uint64_t offchip_arena_bytes = 0;
  uint64_t weight_buffer_address = 0;  ///< first of two prefetch buffers (0 bytes: none)
  uint64_t weight_buffer_bytes = 0;    ///< each
  uint64_t sram_weights_bytes = 0;     ///< weights stored in SRAM (memory_mode: sram_only)
  uint64_t sram_bytes = 0;             ///< everything placed in SRAM
  uint64_t flash_bytes = 0;  ///< weight streams and scale records off-chip (arena excluded)
  /// Live activation bytes during each step (the arena's lower bound at that step).
  std::vector<uint64_t> live_bytes;
};

/// Which commands carry out one model operation.
struct LayerCommands {
  size_t operation = 0;
  size_t first_command = 0, end_command = 0;  ///< [first, end) in the stream
  uint64_t weight_stream_bytes = 0;           ///< encoded weights (scale records excluded)
  uint64_t scale_bytes = 0;
  /// Its share of the weight image: streams and scale records of every tile, each aligned
  /// (the padding between tiles included) [bytes]
  uint64_t image_bytes = 0;
  uint32_t tiles = 0;        ///< kernel commands the operation was split into
  uint32_t block_depth = 0;  ///< output channels per weight block
};

struct CompiledModel {
  npu_sim::CommandStream stream;  ///< weight images, commands, outputs; no input images
  MemoryPlan plan;
  /// What Auto resolved to: Prefetch when any operation prefetches.
  WeightPlacement weights = WeightPlacement::Stream;
  std::vector<LayerCommands> layers;    ///< one per model operation
  std::vector<int32_t> output_tensors;  ///< tensor of each stream output
};

/// Why a model does not fit: the resource, what it needs and what there is.
struct DoesNotFit {
  std::string resource;  ///< "sram", "flash", "weight buffer", "shared buffer", "operation"
  uint64_t needed = 0, available = 0;  ///< [bytes] (operation: limits of the op)
  std::string reason;                  ///< one line with the numbers
};

struct CompileResult {
  std::optional<DoesNotFit> does_not_fit;
  CompiledModel compiled;  ///< valid only when it fits
  bool fits() const { return !does_not_fit.has_value(); }
};

/// The model must be valid (validate()). Throws std::invalid_argument otherwise.
CompileResult compile(const Model& model, const npu_sim::NpuConfig& config,
                      const CompileOptions& options = {});

/// The arena, buffers and weights as a table (`udc compile`).
std::string format_memory_plan(const Model& model, const CompiledModel& compiled);

}  // namespace udc::firmware_model
