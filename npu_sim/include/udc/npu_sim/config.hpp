// NPU and system configuration: an immutable specs struct, the declaration of every
// parameter (default, unit, help, range) and the YAML loader that validates against it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "udc/common/config_source.hpp"
#include "udc/common/params.hpp"

namespace udc::npu_sim {

/// Timing and capacity of one memory as the NPU sees it. Cycles are NPU core cycles:
/// a memory clocked at `scale` times the core clock with an AXI port of W bytes has
/// bytes_per_cycle = W * scale.
struct MemoryConfig {
  uint64_t size_bytes = 0;             ///< capacity [bytes]
  double bytes_per_cycle = 8;          ///< sustained bandwidth [bytes / core cycle]
  uint32_t burst_bytes = 32;           ///< transfer granularity; transfers round up to it [bytes]
  uint32_t read_latency_cycles = 32;   ///< request to first data, reads [core cycles]
  uint32_t write_latency_cycles = 32;  ///< request to acknowledge, writes [core cycles]
};

/// Bytes of one shared-buffer bank (Ethos-U55/U65).
constexpr uint64_t kSharedBufferBankBytes = 1024;

/// Output micro-block: the outputs the MAC array produces in one step [elements].
struct MicroBlock {
  uint32_t h = 1, w = 1, c = 8;
  uint32_t volume() const { return h * w * c; }
};

/// Everything the simulator reads about the hardware. Plain data, kept apart from any
/// simulation state; a job reads it at its start, so one process can simulate many.
struct NpuConfig {
  std::string npu_name = "ethos-u55-128";
  std::string system_name = "u55-deep-embedded";

  // --- NPU ---
  uint32_t macs_per_cycle = 128;  ///< int8 MACs per cycle per core [MAC / cycle]
  uint32_t cores = 1;             ///< cores; each has its own MAC array and decoders [count]
  MicroBlock micro_block{2, 1, 8};
  /// SHRAM: holds two input blocks and two accumulator blocks (int32), in banks of
  /// kSharedBufferBankBytes [bytes]
  uint64_t shared_buffer_bytes = 24 * 1024;
  /// Banks kept for the output unit and the lookup table [banks]
  uint32_t shared_buffer_reserved_banks = 4;
  /// Allocation granules of the input and accumulator areas: each area is two buffers,
  /// rounded up to a multiple of its granule [banks]
  uint32_t input_bank_granule = 4;
  uint32_t accumulator_bank_granule = 8;
  /// Weights the MAC array loads from the decoded-weight buffer per cycle and core
  /// [weights / cycle]: an output block with few micro-blocks in height and width is bound
  /// by it, since every weight loaded serves only those micro-blocks.
  double mac_weights_per_cycle = 8;
  /// Extra cycles per kernel step when an output block is a single micro-block in height
  /// and width (the accumulator pipeline cannot be kept full) [cycles]
  uint32_t mac_pipeline_delay_cycles = 2;
  /// Output unit: cycles per output element and core (requantise, clamp, write-back) [cycles]
  double output_cycles_per_element = 0.5;
  /// Bytes of a position's channels the output unit writes per transaction and core; each
  /// transaction rounds up to a memory burst [bytes]
  uint32_t output_write_bytes = 16;
  uint32_t weight_decoders = 1;  ///< weight decompression engines per core [count]
  /// Decoder throughput per engine: symbols (weight and zero-run) per cycle, stream bits
  /// per cycle, and cycles per slice header. A block decodes in
  /// slices * slice_cycles + max(symbols / symbols_per_cycle, bits / bits_per_cycle).
  double decoder_symbols_per_cycle = 8;
  double decoder_bits_per_cycle = 64;
  uint32_t decoder_slice_cycles = 16;
  uint32_t weight_buffers = 2;     ///< decoded-weight block buffers per engine [blocks]
  uint32_t output_buffers = 2;     ///< accumulator block buffers ahead of the output unit [blocks]
  uint32_t command_cycles = 4;     ///< command processor cost per command [cycles]
  uint32_t op_setup_cycles = 64;   ///< fixed cost to start a kernel operation [cycles]
  uint32_t dma_chunk_bytes = 512;  ///< DMA and weight fetch transaction size [bytes]

  // --- System ---
  double core_clock_hz = 200e6;  ///< NPU core clock [Hz]
  MemoryConfig sram{4u << 20, 8.0, 32, 32, 32};
  MemoryConfig offchip{8u << 20, 0.5, 128, 64, 64};
  /// Where the compiler places feature maps and constants (Vela's memory modes):
  ///  - shared_sram: feature maps (the tensor arena) in SRAM, weights and scales off-chip;
  ///  - dedicated_sram: feature maps and weights off-chip (DRAM); the SRAM belongs to the NPU
  ///    alone and holds only what the compiler stages there (weight buffers);
  ///  - sram_only: feature maps and weights both in SRAM; the off-chip memory is unused.
  std::string memory_mode = "shared_sram";
  /// dedicated_sram: the SRAM the compiler may stage intermediate feature maps in (Vela's
  /// arena cache size) [bytes]
  uint64_t npu_cache_bytes = 384 * 1024;

  /// Weight streams and scale records are stored in SRAM (sram_only).
  bool weights_in_sram() const { return memory_mode == "sram_only"; }
  /// The tensor arena lives off-chip (dedicated_sram).
  bool feature_maps_offchip() const { return memory_mode == "dedicated_sram"; }

  /// MACs per cycle of the whole NPU.
  uint64_t total_macs_per_cycle() const { return uint64_t{macs_per_cycle} * cores; }
  /// Input channels the MAC array consumes per cycle and core (MACs over the micro-block).
  uint32_t input_depth_per_step() const;
};

/// Every NPU and system parameter, declared once (key, type, range, unit, help; the default
/// is a default-constructed NpuConfig's value), in documentation order: the list that
/// reading, --set, --list-params, sweeps and config_fingerprint() all walk.
const std::vector<common::Param<NpuConfig>>& npu_params();

/// Loads a configuration file. Accepted forms:
///  - a file with `npu:` and/or `system:` maps (missing keys take defaults);
///  - `npu:` or `system:` given as a string: a path, relative to this file, of a file
///    holding that section (an NPU file plus a system file composed by name);
///  - an `overrides:` map of dotted keys applied last.
/// Throws common::ConfigError naming the file, the line, the key and the reason on unknown
/// keys, wrong types, out-of-range or inconsistent values.
NpuConfig load_npu_config(const std::string& path);
/// Applies one such file onto `config` (the keys it gives; the others stay).
void apply_npu_file(NpuConfig& config, const std::string& path);
/// Loads several files in order onto the defaults (e.g. an NPU file, then a system file).
NpuConfig load_npu_config(const std::vector<std::string>& paths);
/// The built-in defaults (Ethos-U55-128 on the deep-embedded system), then the source's
/// files in order, then its overrides: what --npu and --set select everywhere.
NpuConfig load_npu_config(const common::ConfigSource& source);

/// Applies `key=value` overrides (dotted keys as in npu_params()); throws on bad input
/// naming `origin` (e.g. "--set").
void apply_overrides(NpuConfig& config, const std::vector<std::string>& assignments,
                     const std::string& origin);

/// Reads one numeric parameter (sweep size formulas); throws std::invalid_argument for a
/// key that is not one.
double param_value(const NpuConfig& config, const std::string& key);
/// Sets one parameter from its text form; throws common::ConfigError naming `origin` and
/// the key.
void set_param(NpuConfig& config, const std::string& key, const std::string& value,
               const std::string& origin);

/// One line per parameter (common::format_param_line): key, value in `config`, unit, help
/// with default, range or choices. What every --list-params prints for the NPU.
std::string npu_params_listing(const NpuConfig& config);

/// A whole configuration as a file load_npu_config() reads back to the same values: `npu:`
/// and `system:` maps with every parameter.
std::string npu_config_yaml(const NpuConfig& config);

/// Every parameter that decides what the NPU does and how fast, as "key=value ..." (the
/// names left out): equal fingerprints, equal costs. Caches of measured costs key on it.
std::string config_fingerprint(const NpuConfig& config);

/// Consistency checks across parameters; returns the first problem, empty if none.
std::string check_consistency(const NpuConfig& config);

}  // namespace udc::npu_sim
