#include "udc/npu_sim/config.hpp"

#include "udc/common/params.hpp"

#include "udc/common/yaml_section.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <set>
#include <sstream>
#include <stdexcept>

namespace udc::npu_sim {

uint32_t NpuConfig::input_depth_per_step() const {
  return std::max<uint32_t>(1, macs_per_cycle / micro_block.volume());
}

namespace {

/// A declared parameter with the code that reads and writes it.
struct Param {
  ParamInfo info;
  std::function<double(const NpuConfig&)> number;  ///< null for text parameters
  std::function<std::string(const NpuConfig&)> text;
  std::function<void(NpuConfig&, double)> set_number;
  std::function<void(NpuConfig&, const std::string&)> set_text;
};

/// A numeric parameter reached by `field`; its default text is the value in a
/// default-constructed NpuConfig, so defaults are stated once, in config.hpp.
template <typename T>
Param number_param(std::string key, ParamKind kind, std::string unit, std::string help, double min,
                   double max, T& (*field)(NpuConfig&)) {
  Param p;
  const NpuConfig defaults;
  const T default_value = field(const_cast<NpuConfig&>(defaults));
  std::ostringstream text;
  text << default_value;
  p.info =
      ParamInfo{std::move(key), kind, std::move(unit), std::move(help), text.str(), min, max, {}};
  p.number = [field](const NpuConfig& c) {
    return static_cast<double>(field(const_cast<NpuConfig&>(c)));
  };
  p.text = [field](const NpuConfig& c) {
    std::ostringstream out;
    out << field(const_cast<NpuConfig&>(c));
    return out.str();
  };
  p.set_number = [field](NpuConfig& c, double v) { field(c) = static_cast<T>(v); };
  return p;
}

/// A text parameter (a name or one of `choices`) reached by `field`.
Param text_param(std::string key, std::string help, std::vector<std::string> choices,
                 std::string& (*field)(NpuConfig&)) {
  Param p;
  const NpuConfig defaults;
  p.info = ParamInfo{std::move(key),
                     ParamKind::Text,
                     "",
                     std::move(help),
                     field(const_cast<NpuConfig&>(defaults)),
                     0,
                     0,
                     std::move(choices)};
  p.text = [field](const NpuConfig& c) { return field(const_cast<NpuConfig&>(c)); };
  p.set_text = [field](NpuConfig& c, const std::string& v) { field(c) = v; };
  return p;
}

#define UDC_FIELD(type, member) +[](NpuConfig& c) -> type& { return c.member; }

/// The five parameters of one memory (`system.sram.*` or `system.offchip.*`): the same
/// declarations for both, so the two memories cannot drift apart.
void add_memory_params(std::vector<Param>& params, const std::string& name, const char* what) {
  using K = ParamKind;
  const std::string prefix = "system." + name + ".";
  const bool sram = name == "sram";
  auto size = sram ? UDC_FIELD(uint64_t, sram.size_bytes) : UDC_FIELD(uint64_t, offchip.size_bytes);
  auto bw =
      sram ? UDC_FIELD(double, sram.bytes_per_cycle) : UDC_FIELD(double, offchip.bytes_per_cycle);
  auto burst =
      sram ? UDC_FIELD(uint32_t, sram.burst_bytes) : UDC_FIELD(uint32_t, offchip.burst_bytes);
  auto rl = sram ? UDC_FIELD(uint32_t, sram.read_latency_cycles)
                 : UDC_FIELD(uint32_t, offchip.read_latency_cycles);
  auto wl = sram ? UDC_FIELD(uint32_t, sram.write_latency_cycles)
                 : UDC_FIELD(uint32_t, offchip.write_latency_cycles);
  params.push_back(number_param(prefix + "size_bytes", K::Integer, "bytes",
                                std::string("capacity of the ") + what, 1, 1ull << 40, size));
  params.push_back(number_param(prefix + "bytes_per_cycle", K::Real, "bytes/cycle",
                                std::string("sustained bandwidth of the ") + what +
                                    " in NPU core cycles (AXI width x clock scale)",
                                1.0 / 1024, 1024, bw));
  params.push_back(number_param(prefix + "burst_bytes", K::Integer, "bytes",
                                std::string("burst length; transfers round up to whole bursts"), 1,
                                1 << 16, burst));
  params.push_back(number_param(prefix + "read_latency_cycles", K::Integer, "cycles",
                                "read request to first data", 0, 1 << 20, rl));
  params.push_back(number_param(prefix + "write_latency_cycles", K::Integer, "cycles",
                                "write request to acknowledge", 0, 1 << 20, wl));
}

/// Every NPU and system parameter, declared once, in documentation order: the list that
/// reading, --set, --list-params, sweeps and the hardware-table fingerprint all walk.
const std::vector<Param>& registry() {
  static const std::vector<Param> params = [] {
    using K = ParamKind;
    std::vector<Param> p;
    p.push_back(text_param("npu.name", "name of the NPU configuration", {},
                           UDC_FIELD(std::string, npu_name)));
    p.push_back(number_param("npu.macs_per_cycle", K::Integer, "MAC/cycle",
                             "int8 multiply-accumulates per cycle of one core's MAC array", 8, 4096,
                             UDC_FIELD(uint32_t, macs_per_cycle)));
    p.push_back(number_param("npu.cores", K::Integer, "count",
                             "cores; each has a MAC array and its own weight decoders; an "
                             "operation's output depth is split between them",
                             1, 4, UDC_FIELD(uint32_t, cores)));
    p.push_back(number_param("npu.micro_block.h", K::Integer, "elements",
                             "output micro-block height", 1, 16,
                             UDC_FIELD(uint32_t, micro_block.h)));
    p.push_back(number_param("npu.micro_block.w", K::Integer, "elements",
                             "output micro-block width", 1, 16,
                             UDC_FIELD(uint32_t, micro_block.w)));
    p.push_back(number_param("npu.micro_block.c", K::Integer, "elements",
                             "output micro-block depth", 1, 64,
                             UDC_FIELD(uint32_t, micro_block.c)));
    p.push_back(number_param("npu.shared_buffer_bytes", K::Integer, "bytes",
                             "shared buffer (SHRAM), banks of 1 KiB: an output block is chosen so "
                             "that two input blocks and two int32 accumulator blocks fit in it",
                             1024, 1 << 24, UDC_FIELD(uint64_t, shared_buffer_bytes)));
    p.push_back(number_param("npu.shared_buffer_reserved_banks", K::Integer, "banks",
                             "shared-buffer banks (of 1 KiB) kept for the output unit and the "
                             "lookup table, not available to input and accumulator blocks",
                             0, 64, UDC_FIELD(uint32_t, shared_buffer_reserved_banks)));
    p.push_back(number_param("npu.input_bank_granule", K::Integer, "banks",
                             "allocation granule of the (double-buffered) input block area", 1, 64,
                             UDC_FIELD(uint32_t, input_bank_granule)));
    p.push_back(number_param("npu.accumulator_bank_granule", K::Integer, "banks",
                             "allocation granule of the (double-buffered) accumulator area", 1, 64,
                             UDC_FIELD(uint32_t, accumulator_bank_granule)));
    p.push_back(number_param("npu.mac_weights_per_cycle", K::Real, "weights/cycle",
                             "weights the MAC array loads per cycle and core; bounds output "
                             "blocks with few micro-blocks (fully connected layers)",
                             1, 1024, UDC_FIELD(double, mac_weights_per_cycle)));
    p.push_back(number_param("npu.mac_pipeline_delay_cycles", K::Integer, "cycles",
                             "extra cycles per kernel step when an output block is one "
                             "micro-block high and wide",
                             0, 64, UDC_FIELD(uint32_t, mac_pipeline_delay_cycles)));
    p.push_back(number_param("npu.output_cycles_per_element", K::Real, "cycles",
                             "output unit cycles per output element and core (requantise, "
                             "clamp, write-back)",
                             0, 64, UDC_FIELD(double, output_cycles_per_element)));
    p.push_back(number_param("npu.output_write_bytes", K::Integer, "bytes",
                             "bytes of a position's channels per output write transaction and "
                             "core; each rounds up to a memory burst",
                             1, 4096, UDC_FIELD(uint32_t, output_write_bytes)));
    p.push_back(number_param("npu.weight_decoders", K::Integer, "count",
                             "weight decompression engines per core", 1, 8,
                             UDC_FIELD(uint32_t, weight_decoders)));
    p.push_back(number_param("npu.decoder_symbols_per_cycle", K::Real, "symbols/cycle",
                             "weight and zero-run symbols one decoder engine resolves per cycle "
                             "(calibrated: fast enough that Vela's figures, which model no "
                             "decoder, are met; see npu_sim/FIDELITY.md)",
                             1.0 / 64, 64, UDC_FIELD(double, decoder_symbols_per_cycle)));
    p.push_back(number_param("npu.decoder_bits_per_cycle", K::Real, "bits/cycle",
                             "stream bits one decoder engine consumes per cycle", 1, 1024,
                             UDC_FIELD(double, decoder_bits_per_cycle)));
    p.push_back(number_param("npu.decoder_slice_cycles", K::Integer, "cycles",
                             "decoder cycles to parse one slice header (and palette)", 0, 10000,
                             UDC_FIELD(uint32_t, decoder_slice_cycles)));
    p.push_back(number_param("npu.weight_buffers", K::Integer, "blocks",
                             "decoded weight blocks an engine can hold ahead of the MAC array", 1,
                             8, UDC_FIELD(uint32_t, weight_buffers)));
    p.push_back(number_param("npu.output_buffers", K::Integer, "blocks",
                             "accumulator blocks the MAC array can hold ahead of the output unit",
                             1, 8, UDC_FIELD(uint32_t, output_buffers)));
    p.push_back(number_param("npu.command_cycles", K::Integer, "cycles",
                             "command processor cost to fetch and issue one command", 0, 10000,
                             UDC_FIELD(uint32_t, command_cycles)));
    p.push_back(number_param("npu.op_setup_cycles", K::Integer, "cycles",
                             "fixed cost to start a kernel operation", 0, 100000,
                             UDC_FIELD(uint32_t, op_setup_cycles)));
    p.push_back(number_param("npu.dma_chunk_bytes", K::Integer, "bytes",
                             "size of the memory transactions DMA and weight fetches are split "
                             "into; other masters are served between them",
                             16, 1 << 20, UDC_FIELD(uint32_t, dma_chunk_bytes)));
    p.push_back(text_param("system.name", "name of the system configuration", {},
                           UDC_FIELD(std::string, system_name)));
    p.push_back(number_param("system.core_clock_hz", K::Real, "Hz", "NPU core clock", 1e6, 1e10,
                             UDC_FIELD(double, core_clock_hz)));
    add_memory_params(p, "sram", "on-chip SRAM (activations, and weights in SRAM-only systems)");
    add_memory_params(p, "offchip", "off-chip flash or DRAM (weights)");
    p.push_back(text_param("system.memory_mode",
                           "Vela's memory mode: shared_sram (feature maps in SRAM, weights "
                           "off-chip), dedicated_sram (feature maps and weights off-chip, SRAM "
                           "for the NPU's staging buffers), sram_only (everything in SRAM)",
                           {"shared_sram", "dedicated_sram", "sram_only"},
                           UDC_FIELD(std::string, memory_mode)));
    p.push_back(number_param("system.npu_cache_bytes", K::Integer, "bytes",
                             "dedicated_sram: SRAM in which the compiler stages intermediate "
                             "feature maps when they fit (Vela's arena cache size)",
                             0, 1ull << 40, UDC_FIELD(uint64_t, npu_cache_bytes)));
    return p;
  }();
  return params;
}

#undef UDC_FIELD

/// The declaration of `key`; throws naming `origin` (file:line or "--set") when unknown.
const Param& find_param(const std::string& key, const std::string& origin) {
  for (const Param& p : registry()) {
    if (p.info.key == key) return p;
  }
  throw std::runtime_error(origin + ": unknown parameter '" + key +
                           "' (see `udc sim --list-params`)");
}

/// Sets one parameter from its text after the checks every source shares: choices for
/// text, a whole finite number in range for numbers. Errors name `origin` and the key.
void set_checked(NpuConfig& config, const Param& param, const std::string& value,
                 const std::string& origin) {
  const ParamInfo& info = param.info;
  if (info.kind == ParamKind::Text) {
    if (value.empty()) throw std::runtime_error(origin + ": " + info.key + ": empty value");
    if (!info.choices.empty()) {
      bool known = false;
      std::string list;
      for (const std::string& choice : info.choices) {
        known |= choice == value;
        list += (list.empty() ? "" : ", ") + choice;
      }
      if (!known) {
        throw std::runtime_error(origin + ": " + info.key + ": '" + value + "' is not one of " +
                                 list);
      }
    }
    param.set_text(config, value);
    return;
  }
  errno = 0;
  char* end = nullptr;
  const double number = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size() || errno != 0 ||
      !std::isfinite(number)) {
    throw std::runtime_error(origin + ": " + info.key + ": '" + value + "' is not a number");
  }
  if (info.kind == ParamKind::Integer && number != std::floor(number)) {
    throw std::runtime_error(origin + ": " + info.key + ": '" + value + "' is not an integer");
  }
  if (number < info.min || number > info.max) {
    std::ostringstream range;
    range << info.min << " .. " << info.max;
    throw std::runtime_error(origin + ": " + info.key + ": " + value + " is out of range " +
                             range.str() + (info.unit.empty() ? "" : " " + info.unit));
  }
  param.set_number(config, number);
}

/// "FILE:LINE" of a node, or FILE for nodes built in code.
std::string location(const std::string& file, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1);
}

/// Walks a YAML map, setting every scalar leaf as the parameter `prefix.key...`.
void apply_map(NpuConfig& config, const YAML::Node& map, const std::string& prefix,
               const std::string& file) {
  if (!map.IsMap()) {
    throw std::runtime_error(location(file, map) + ": " + prefix +
                             ": expected a map of parameters");
  }
  for (const auto& entry : map) {
    const std::string key = prefix + "." + entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (value.IsMap()) {
      apply_map(config, value, key, file);
    } else if (value.IsScalar()) {
      set_checked(config, find_param(key, location(file, entry.first)), value.Scalar(),
                  location(file, value));
    } else {
      throw std::runtime_error(location(file, value) + ": " + key +
                               ": expected a scalar value, found a sequence or null");
    }
  }
}

/// Applies one file onto `config`: its `npu:` and `system:` maps (or, as strings, files
/// holding them, relative to this one; `depth` bounds such includes), then `overrides:`.
void load_into(NpuConfig& config, const std::string& path, int depth) {
  if (depth > 8) throw std::runtime_error(path + ": configuration files include each other");
  const YAML::Node root = common::load_yaml_file(path);
  if (!root.IsMap()) throw std::runtime_error(path + ": expected a map with npu: and/or system:");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (const auto& entry : root) {
    const std::string section = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (section == "npu" || section == "system") {
      if (value.IsScalar()) {
        load_into(config, (dir / value.Scalar()).string(), depth + 1);
      } else {
        apply_map(config, value, section, path);
      }
    } else if (section != "overrides") {
      throw std::runtime_error(location(path, entry.first) + ": unknown key '" + section +
                               "' (expected npu, system or overrides)");
    }
  }
  if (const YAML::Node overrides = root["overrides"]) {
    if (!overrides.IsMap()) {
      throw std::runtime_error(location(path, overrides) + ": overrides: expected a map");
    }
    for (const auto& entry : overrides) {
      const std::string key = entry.first.as<std::string>();
      if (!entry.second.IsScalar()) {
        throw std::runtime_error(location(path, entry.second) + ": " + key + ": expected a scalar");
      }
      set_checked(config, find_param(key, location(path, entry.first)), entry.second.Scalar(),
                  location(path, entry.second));
    }
  }
}

}  // namespace

const std::vector<ParamInfo>& npu_params() {
  static const std::vector<ParamInfo> infos = [] {
    std::vector<ParamInfo> out;
    for (const Param& p : registry()) out.push_back(p.info);
    return out;
  }();
  return infos;
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
    throw std::runtime_error(names + ": inconsistent configuration: " + problem);
  }
  return config;
}

std::string npu_params_listing(const NpuConfig& config) {
  std::string lines;
  for (const ParamInfo& p : npu_params()) {
    std::string range;
    if (p.kind != ParamKind::Text) range = fmt::format("{:.15g} .. {:.15g}", p.min, p.max);
    for (size_t i = 0; i < p.choices.size(); ++i) range += (i ? ", " : "") + p.choices[i];
    lines += common::format_param_line(p.key, param_text(config, p.key), p.unit,
                                       p.help + " (default " + p.default_text + ")", range);
  }
  return lines;
}

NpuConfig load_npu_config(const common::ConfigSource& source) {
  NpuConfig config = source.files.empty() ? NpuConfig{} : load_npu_config(source.files);
  apply_overrides(config, source.overrides, "--set");
  return config;
}

void set_param(NpuConfig& config, const std::string& key, const std::string& value,
               const std::string& origin) {
  set_checked(config, find_param(key, origin), value, origin);
}

void apply_overrides(NpuConfig& config, const std::vector<std::string>& assignments,
                     const std::string& origin) {
  for (const std::string& assignment : assignments) {
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos) {
      throw std::runtime_error(origin + ": '" + assignment + "': expected KEY=VALUE");
    }
    set_param(config, assignment.substr(0, eq), assignment.substr(eq + 1), origin);
  }
  if (const std::string problem = check_consistency(config); !problem.empty()) {
    throw std::runtime_error(origin + ": inconsistent configuration: " + problem);
  }
}

double param_value(const NpuConfig& config, const std::string& key) {
  const Param& p = find_param(key, "param_value");
  if (!p.number) throw std::runtime_error("parameter '" + key + "' is not a number");
  return p.number(config);
}

std::string param_text(const NpuConfig& config, const std::string& key) {
  const Param& p = find_param(key, "param_text");
  if (p.text) return p.text(config);
  std::ostringstream text;
  text << std::setprecision(15) << p.number(config);
  return text.str();
}

}  // namespace udc::npu_sim
