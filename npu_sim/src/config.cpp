#include "udc/npu_sim/config.hpp"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "udc/common/params.hpp"
#include "udc/common/yaml_section.hpp"

namespace udc::npu_sim {

uint32_t NpuConfig::input_depth_per_step() const {
  return std::max<uint32_t>(1, macs_per_cycle / micro_block.volume());
}

namespace {

/// The five parameters of one memory (`system.sram.*` or `system.offchip.*`): the same
/// declarations for both, so the two memories cannot drift apart.
void add_memory_params(std::vector<common::Param<NpuConfig>>& params, const std::string& name,
                       MemoryConfig NpuConfig::*memory, const std::string& what) {
  using common::number_param;
  const std::string prefix = "system." + name + ".";
  params.push_back(number_param<NpuConfig>(
      prefix + "size_bytes", [memory](auto& c) -> auto& { return (c.*memory).size_bytes; }, 1,
      double(1ull << 40), "bytes", "capacity of the " + what));
  params.push_back(number_param<NpuConfig>(
      prefix + "bytes_per_cycle",
      [memory](auto& c) -> auto& { return (c.*memory).bytes_per_cycle; }, 1.0 / 1024, 1024,
      "bytes/cycle",
      "sustained bandwidth of the " + what + " in NPU core cycles (AXI width x clock scale)"));
  params.push_back(number_param<NpuConfig>(
      prefix + "burst_bytes", [memory](auto& c) -> auto& { return (c.*memory).burst_bytes; }, 1,
      1 << 16, "bytes", "burst length; transfers round up to whole bursts"));
  params.push_back(number_param<NpuConfig>(
      prefix + "read_latency_cycles",
      [memory](auto& c) -> auto& { return (c.*memory).read_latency_cycles; }, 0, 1 << 20, "cycles",
      "read request to first data"));
  params.push_back(number_param<NpuConfig>(
      prefix + "write_latency_cycles",
      [memory](auto& c) -> auto& { return (c.*memory).write_latency_cycles; }, 0, 1 << 20, "cycles",
      "write request to acknowledge"));
}

/// Applies one file onto `config`: its `npu:` and `system:` maps (or, as strings, files
/// holding them, relative to this one; `depth` bounds such includes), then `overrides:`,
/// a map of full dotted keys.
void load_into(NpuConfig& config, const std::string& path, int depth) {
  if (depth > 8) {
    throw common::ConfigError(path + ": configuration files include each other");
  }
  common::YamlSection root(path, common::load_yaml_file(path), "");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (const std::string section : {"npu", "system"}) {
    if (root.has(section) && !root.holds_map(section)) {
      load_into(config, (dir / root.string(section, "")).string(), depth + 1);
      continue;
    }
    common::YamlSection values = root.section(section);
    common::read_params(values, common::params_under(npu_params(), section), config);
    values.finish();
  }
  common::YamlSection overrides = root.section("overrides");
  for (const std::string& key : overrides.keys()) {
    const common::Param<NpuConfig>* param = common::find_param(npu_params(), key);
    if (!param) overrides.fail(key, "unknown parameter (see `udc sim --list-params`)");
    if (std::string error = param->set(config, overrides.string(key, "")); !error.empty()) {
      overrides.fail(key, error);
    }
  }
  overrides.finish();
  root.finish();
}

}  // namespace

const std::vector<common::Param<NpuConfig>>& npu_params() {
  using common::number_param;
  using common::text_param;
  using C = NpuConfig;
  static const std::vector<common::Param<C>> params = [] {
    std::vector<common::Param<C>> p;
    p.push_back(text_param<C>(
        "npu.name", [](auto& c) -> auto& { return c.npu_name; }, {},
        "name of the NPU configuration"));
    p.push_back(number_param<C>(
        "npu.macs_per_cycle", [](auto& c) -> auto& { return c.macs_per_cycle; }, 8, 4096,
        "MAC/cycle", "int8 multiply-accumulates per cycle of one core's MAC array"));
    p.push_back(number_param<C>(
        "npu.cores", [](auto& c) -> auto& { return c.cores; }, 1, 4, "count",
        "cores; each has a MAC array and its own weight decoders; an operation's output depth "
        "is split between them"));
    p.push_back(number_param<C>(
        "npu.micro_block.h", [](auto& c) -> auto& { return c.micro_block.h; }, 1, 16, "elements",
        "output micro-block height"));
    p.push_back(number_param<C>(
        "npu.micro_block.w", [](auto& c) -> auto& { return c.micro_block.w; }, 1, 16, "elements",
        "output micro-block width"));
    p.push_back(number_param<C>(
        "npu.micro_block.c", [](auto& c) -> auto& { return c.micro_block.c; }, 1, 64, "elements",
        "output micro-block depth"));
    p.push_back(number_param<C>(
        "npu.shared_buffer_bytes", [](auto& c) -> auto& { return c.shared_buffer_bytes; }, 1024,
        1 << 24, "bytes",
        "shared buffer (SHRAM), banks of 1 KiB: an output block is chosen so that two input "
        "blocks and two int32 accumulator blocks fit in it"));
    p.push_back(number_param<C>(
        "npu.shared_buffer_reserved_banks",
        [](auto& c) -> auto& { return c.shared_buffer_reserved_banks; }, 0, 64, "banks",
        "shared-buffer banks (of 1 KiB) kept for the output unit and the lookup table, not "
        "available to input and accumulator blocks"));
    p.push_back(number_param<C>(
        "npu.input_bank_granule", [](auto& c) -> auto& { return c.input_bank_granule; }, 1, 64,
        "banks", "allocation granule of the (double-buffered) input block area"));
    p.push_back(number_param<C>(
        "npu.accumulator_bank_granule", [](auto& c) -> auto& { return c.accumulator_bank_granule; },
        1, 64, "banks", "allocation granule of the (double-buffered) accumulator area"));
    p.push_back(number_param<C>(
        "npu.mac_weights_per_cycle", [](auto& c) -> auto& { return c.mac_weights_per_cycle; }, 1,
        1024, "weights/cycle",
        "weights the MAC array loads per cycle and core; bounds output blocks with few "
        "micro-blocks (fully connected layers)"));
    p.push_back(number_param<C>(
        "npu.mac_pipeline_delay_cycles",
        [](auto& c) -> auto& { return c.mac_pipeline_delay_cycles; }, 0, 64, "cycles",
        "extra cycles per kernel step when an output block is one micro-block high and wide"));
    p.push_back(number_param<C>(
        "npu.output_cycles_per_element",
        [](auto& c) -> auto& { return c.output_cycles_per_element; }, 0, 64, "cycles",
        "output unit cycles per output element and core (requantise, clamp, write-back)"));
    p.push_back(number_param<C>(
        "npu.output_write_bytes", [](auto& c) -> auto& { return c.output_write_bytes; }, 1, 4096,
        "bytes",
        "bytes of a position's channels per output write transaction and core; each rounds up "
        "to a memory burst"));
    p.push_back(number_param<C>(
        "npu.weight_decoders", [](auto& c) -> auto& { return c.weight_decoders; }, 1, 8, "count",
        "weight decompression engines per core"));
    p.push_back(number_param<C>(
        "npu.decoder_symbols_per_cycle",
        [](auto& c) -> auto& { return c.decoder_symbols_per_cycle; }, 1.0 / 64, 64, "symbols/cycle",
        "weight and zero-run symbols one decoder engine resolves per cycle (calibrated: fast "
        "enough that Vela's figures, which model no decoder, are met; see "
        "npu_sim/FIDELITY.md)"));
    p.push_back(number_param<C>(
        "npu.decoder_bits_per_cycle", [](auto& c) -> auto& { return c.decoder_bits_per_cycle; }, 1,
        1024, "bits/cycle", "stream bits one decoder engine consumes per cycle"));
    p.push_back(number_param<C>(
        "npu.decoder_slice_cycles", [](auto& c) -> auto& { return c.decoder_slice_cycles; }, 0,
        10000, "cycles", "decoder cycles to parse one slice header (and palette)"));
    p.push_back(number_param<C>(
        "npu.weight_buffers", [](auto& c) -> auto& { return c.weight_buffers; }, 1, 8, "blocks",
        "decoded weight blocks an engine can hold ahead of the MAC array"));
    p.push_back(number_param<C>(
        "npu.output_buffers", [](auto& c) -> auto& { return c.output_buffers; }, 1, 8, "blocks",
        "accumulator blocks the MAC array can hold ahead of the output unit"));
    p.push_back(number_param<C>(
        "npu.command_cycles", [](auto& c) -> auto& { return c.command_cycles; }, 0, 10000, "cycles",
        "command processor cost to fetch and issue one command"));
    p.push_back(number_param<C>(
        "npu.op_setup_cycles", [](auto& c) -> auto& { return c.op_setup_cycles; }, 0, 100000,
        "cycles", "fixed cost to start a kernel operation"));
    p.push_back(number_param<C>(
        "npu.dma_chunk_bytes", [](auto& c) -> auto& { return c.dma_chunk_bytes; }, 16, 1 << 20,
        "bytes",
        "size of the memory transactions DMA and weight fetches are split into; other masters "
        "are served between them"));
    p.push_back(text_param<C>(
        "system.name", [](auto& c) -> auto& { return c.system_name; }, {},
        "name of the system configuration"));
    p.push_back(number_param<C>(
        "system.core_clock_hz", [](auto& c) -> auto& { return c.core_clock_hz; }, 1e6, 1e10, "Hz",
        "NPU core clock"));
    add_memory_params(p, "sram", &NpuConfig::sram,
                      "on-chip SRAM (activations, and weights in SRAM-only systems)");
    add_memory_params(p, "offchip", &NpuConfig::offchip, "off-chip flash or DRAM (weights)");
    p.push_back(text_param<C>(
        "system.memory_mode", [](auto& c) -> auto& { return c.memory_mode; },
        {"shared_sram", "dedicated_sram", "sram_only"},
        "Vela's memory mode: shared_sram (feature maps in SRAM, weights off-chip), "
        "dedicated_sram (feature maps and weights off-chip, SRAM for the NPU's staging "
        "buffers), sram_only (everything in SRAM)"));
    p.push_back(number_param<C>(
        "system.npu_cache_bytes", [](auto& c) -> auto& { return c.npu_cache_bytes; }, 0,
        double(1ull << 40), "bytes",
        "dedicated_sram: SRAM in which the compiler stages intermediate feature maps when they "
        "fit (Vela's arena cache size)"));
    return p;
  }();
  return params;
}

std::string check_consistency(const NpuConfig& c) {
  if (c.micro_block.volume() > c.macs_per_cycle) {
    return "npu.micro_block (" + std::to_string(c.micro_block.volume()) +
           " outputs) exceeds npu.macs_per_cycle (" + std::to_string(c.macs_per_cycle) + ")";
  }
  if (c.macs_per_cycle % c.micro_block.volume() != 0) {
    return "npu.macs_per_cycle (" + std::to_string(c.macs_per_cycle) +
           ") is not a multiple of the micro-block volume (" +
           std::to_string(c.micro_block.volume()) + ")";
  }
  const uint64_t least_banks =
      uint64_t{c.shared_buffer_reserved_banks} + c.input_bank_granule + c.accumulator_bank_granule;
  if (c.shared_buffer_bytes % kSharedBufferBankBytes != 0 ||
      c.shared_buffer_bytes / kSharedBufferBankBytes < least_banks) {
    return "npu.shared_buffer_bytes (" + std::to_string(c.shared_buffer_bytes) +
           ") must be whole banks of 1024 bytes, at least npu.shared_buffer_reserved_banks + "
           "npu.input_bank_granule + npu.accumulator_bank_granule (" +
           std::to_string(least_banks) + " banks)";
  }
  if (c.dma_chunk_bytes % c.sram.burst_bytes != 0 ||
      c.dma_chunk_bytes % c.offchip.burst_bytes != 0) {
    return "npu.dma_chunk_bytes (" + std::to_string(c.dma_chunk_bytes) +
           ") must be a multiple of both memories' burst_bytes";
  }
  return {};
}

NpuConfig load_npu_config(const std::string& path) {
  return load_npu_config(std::vector<std::string>{path});
}

NpuConfig load_npu_config(const std::vector<std::string>& paths) {
  NpuConfig config;
  for (const std::string& path : paths) load_into(config, path, 0);
  if (const std::string problem = check_consistency(config); !problem.empty()) {
    std::string names;
    for (const std::string& path : paths) names += (names.empty() ? "" : " + ") + path;
    throw common::ConfigError(names + ": inconsistent configuration: " + problem);
  }
  return config;
}

std::string npu_params_listing(const NpuConfig& config) {
  return common::params_listing(npu_params(), config, "");
}

std::string npu_config_yaml(const NpuConfig& config) {
  return "npu:\n" + common::params_yaml(common::params_under(npu_params(), "npu"), config, 2) +
         "system:\n" + common::params_yaml(common::params_under(npu_params(), "system"), config, 2);
}

std::string config_fingerprint(const NpuConfig& config) {
  std::string text;
  for (const common::Param<NpuConfig>& p : npu_params()) {
    if (p.type == common::ParamType::Text) continue;
    text += (text.empty() ? "" : " ") + p.key + "=" + p.text(config);
  }
  return text;
}

void apply_npu_file(NpuConfig& config, const std::string& path) {
  load_into(config, path, 0);
}

NpuConfig load_npu_config(const common::ConfigSource& source) {
  NpuConfig config = source.files.empty() ? NpuConfig{} : load_npu_config(source.files);
  apply_overrides(config, source.overrides, "--set");
  return config;
}

void set_param(NpuConfig& config, const std::string& key, const std::string& value,
               const std::string& origin) {
  common::set_param_text(npu_params(), config, key, value, origin);
}

void apply_overrides(NpuConfig& config, const std::vector<std::string>& assignments,
                     const std::string& origin) {
  for (const std::string& assignment : assignments) {
    const auto [key, value] = common::split_assignment(assignment, origin);
    set_param(config, key, value, origin);
  }
  if (const std::string problem = check_consistency(config); !problem.empty()) {
    throw common::ConfigError(origin + ": inconsistent configuration: " + problem);
  }
}

double param_value(const NpuConfig& config, const std::string& key) {
  const common::Param<NpuConfig>* p = common::find_param(npu_params(), key);
  if (!p || !p->number) throw std::invalid_argument("'" + key + "' is not a numeric NPU parameter");
  return p->number(config);
}

}  // namespace udc::npu_sim
