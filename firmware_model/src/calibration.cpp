#include "udc/firmware_model/calibration.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "udc/common/file_io.hpp"
#include "udc/common/weight_file.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/npu_sim/timing.hpp"

namespace udc::firmware_model {
namespace {

using nlohmann::json;

// The quantisation the calibration file's `source` states for every model.
constexpr float kInputScale = 0.05f;
constexpr double kWeightScale = 0.01;
constexpr float kOutputScale = 0.1f;
constexpr double kWithin = 0.15;  ///< "agrees" means within 15 % of Vela

template <typename T>
T field(const json& entry, const char* key, const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) {
    throw std::runtime_error(where + ": missing key '" + key + "'");
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw std::runtime_error(where + ": key '" + key + "' has the wrong type");
  }
}

double optional_number(const json& entry, const char* key) {
  const auto it = entry.find(key);
  return it == entry.end() || it->is_null() ? 0.0 : it->get<double>();
}

/// The keys of Vela's cycle figures in the two file formats.
struct CycleKeys {
  const char *total, *npu, *sram, *dram, *offflash;
};
constexpr CycleKeys kLayerCycleKeys{"total_cycles", "npu_cycles", "sram_access_cycles",
                                    "dram_access_cycles", "offflash_access_cycles"};
constexpr CycleKeys kNetworkCycleKeys{"vela_total_cycles", "vela_cycles_npu",
                                      "vela_cycles_sram_access", "vela_cycles_dram_access",
                                      "vela_cycles_off_chip_flash_access"};

void read_cycles(const json& entry, const CycleKeys& keys, const std::string& where,
                 VelaFigures& f) {
  f.total_cycles = field<double>(entry, keys.total, where);
  if (!(f.total_cycles > 0)) {
    throw std::runtime_error(where + ": " + keys.total + " must be > 0");
  }
  f.npu_cycles = optional_number(entry, keys.npu);
  f.sram_access_cycles = optional_number(entry, keys.sram);
  f.dram_access_cycles = optional_number(entry, keys.dram);
  f.offflash_access_cycles = optional_number(entry, keys.offflash);
}

std::string lower_hyphenated(std::string text) {
  for (char& c : text) c = c == '_' ? '-' : char(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

/// The whole-network format: an array of entries, one per model and configuration.
CalibrationSet read_network_set(const std::string& path, const json& root) {
  CalibrationSet set;
  set.source = "whole networks";
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (size_t i = 0; i < root.size(); ++i) {
    const std::string where = fmt::format("{}: [{}]", path, i);
    const json& e = root[i];
    if (!e.is_object()) throw std::runtime_error(where + ": expected an object");
    VelaFigures f;
    f.layer = field<std::string>(e, "model", where);
    const auto vela = e.find("vela");
    if (vela == e.end() || !vela->is_object())
      throw std::runtime_error(where + ": missing key 'vela'");
    f.accelerator = field<std::string>(*vela, "accelerator", where + ".vela");
    f.system = field<std::string>(*vela, "system", where + ".vela");
    f.memory_mode = field<std::string>(*vela, "memory_mode", where + ".vela");
    read_cycles(e, kNetworkCycleKeys, where, f);
    if (!set.networks.count(f.layer)) {
      const std::string model_path = (dir / field<std::string>(e, "udcm", where)).string();
      set.networks.emplace(f.layer, read_model(model_path));
    }
    set.results.push_back(std::move(f));
  }
  return set;
}

}  // namespace

CalibrationSet read_calibration_set(const std::string& path) {
  const std::vector<uint8_t> bytes = common::read_file(path);
  json root;
  try {
    root = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": malformed JSON: " + e.what());
  }
  if (root.is_array()) return read_network_set(path, root);
  if (!root.is_object()) throw std::runtime_error(path + ": expected a JSON object or array");
  CalibrationSet set;
  set.source = root.value("source", "");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const json& specs = root.contains("specs") ? root["specs"] : json();
  if (!specs.is_array() || specs.empty()) throw std::runtime_error(path + ": no 'specs' array");
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string where = fmt::format("{}: specs[{}]", path, i);
    const json& s = specs[i];
    CalibrationLayer layer;
    layer.name = field<std::string>(s, "name", where);
    layer.kind = field<std::string>(s, "kind", where);
    if (layer.kind != "conv" && layer.kind != "dw" && layer.kind != "fc") {
      throw std::runtime_error(where + ": kind '" + layer.kind + "' (expected conv, dw or fc)");
    }
    layer.in_channels = field<uint32_t>(s, "cin", where);
    layer.out_channels = field<uint32_t>(s, "cout", where);
    layer.bits = field<uint32_t>(s, "bits", where);
    layer.sparsity = field<double>(s, "sparsity", where);
    if (layer.kind != "fc") {
      layer.height = field<uint32_t>(s, "h", where);
      layer.width = field<uint32_t>(s, "w", where);
      layer.kernel = field<uint32_t>(s, "k", where);
      layer.stride = field<uint32_t>(s, "stride", where);
    }
    const std::string weights_path = (dir / (layer.name + ".weights.npy")).string();
    const std::vector<int16_t> weights = common::read_weights(weights_path);
    const uint64_t expected =
        layer.kind == "dw"
            ? uint64_t{layer.kernel} * layer.kernel * layer.out_channels
            : uint64_t{layer.kernel} * layer.kernel * layer.in_channels * layer.out_channels;
    if (weights.size() != expected) {
      throw std::runtime_error(fmt::format("{}: {} weights, but {} needs {}", weights_path,
                                           weights.size(), layer.name, expected));
    }
    layer.weights.reserve(weights.size());
    for (size_t k = 0; k < weights.size(); ++k) {
      if (weights[k] < -128 || weights[k] > 127) {
        throw std::runtime_error(
            fmt::format("{}: weight {} is {}, not int8", weights_path, k, weights[k]));
      }
      layer.weights.push_back(int8_t(weights[k]));
    }
    set.layers.push_back(std::move(layer));
  }
  const json& results = root.contains("results") ? root["results"] : json();
  if (!results.is_array()) throw std::runtime_error(path + ": no 'results' array");
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string where = fmt::format("{}: results[{}]", path, i);
    const json& r = results[i];
    VelaFigures f;
    f.layer = field<std::string>(r, "layer", where);
    f.accelerator = field<std::string>(r, "accelerator", where);
    f.system = field<std::string>(r, "system", where);
    f.memory_mode = field<std::string>(r, "memory_mode", where);
    read_cycles(r, kLayerCycleKeys, where, f);
    const bool known = std::any_of(set.layers.begin(), set.layers.end(),
                                   [&](const CalibrationLayer& l) { return l.name == f.layer; });
    if (!known) throw std::runtime_error(where + ": layer '" + f.layer + "' is not in specs");
    set.results.push_back(std::move(f));
  }
  return set;
}

Model calibration_model(const CalibrationLayer& layer) {
  ModelBuilder builder(layer.name);
  const ModelBuilder::Quant out{kOutputScale, 0};
  const auto [multiplier, shift] =
      int8::quantize_multiplier(kInputScale * kWeightScale / kOutputScale);
  const uint32_t channels = layer.out_channels;
  ModelBuilder::Requant requant{std::vector<int32_t>(channels, 0),
                                std::vector<int32_t>(channels, multiplier),
                                std::vector<int32_t>(channels, shift)};
  int32_t output = -1;
  if (layer.kind == "fc") {
    const int32_t input = builder.add_input("input", {1, 1, layer.in_channels}, kInputScale, 0);
    output = builder.fully_connected(layer.name, input, channels, layer.weights, layer.bits,
                                     requant, out, Activation::Relu);
  } else {
    const int32_t input =
        builder.add_input("input", {layer.height, layer.width, layer.in_channels}, kInputScale, 0);
    if (layer.kind == "conv") {
      output =
          builder.conv2d(layer.name, input, channels, layer.kernel, layer.stride, Padding::Same,
                         layer.weights, layer.bits, requant, out, Activation::Relu);
    } else {
      // TFLite's depthwise layout is [1][kh][kw][c]; ours is [c][kh][kw].
      const uint32_t taps = layer.kernel * layer.kernel;
      std::vector<int8_t> weights(layer.weights.size());
      for (uint32_t t = 0; t < taps; ++t) {
        for (uint32_t c = 0; c < channels; ++c)
          weights[c * taps + t] = layer.weights[t * channels + c];
      }
      output =
          builder.depthwise_conv2d(layer.name, input, layer.kernel, layer.stride, Padding::Same,
                                   std::move(weights), layer.bits, requant, out, Activation::Relu);
    }
  }
  builder.mark_output(output);
  return builder.finish();
}

std::vector<std::string> calibration_config_files(const std::string& config_dir,
                                                  const VelaFigures& figures) {
  std::string system = figures.system;
  if (system.rfind("Ethos_", 0) == 0) system = system.substr(6);
  system = lower_hyphenated(system);
  const std::string mode = lower_hyphenated(figures.memory_mode);
  const bool u65 = system.rfind("u65", 0) == 0;
  if (mode != (u65 ? "dedicated-sram" : "shared-sram")) system += "-" + mode;
  const std::filesystem::path dir(config_dir);
  return {(dir / (figures.accelerator + ".yaml")).string(),
          (dir / "systems" / (system + ".yaml")).string()};
}

std::vector<CalibrationRow> run_calibration(const CalibrationSet& set,
                                            const std::string& config_dir,
                                            const std::vector<std::string>& overrides,
                                            const std::string& only_layer, bool details) {
  std::map<std::string, Model> models = set.networks;
  for (const CalibrationLayer& layer : set.layers)
    models.emplace(layer.name, calibration_model(layer));
  std::vector<CalibrationRow> rows;
  for (const VelaFigures& f : set.results) {
    if (!only_layer.empty() && f.layer != only_layer) continue;
    CalibrationRow row;
    row.layer = f.layer;
    row.config = f.accelerator + " " + f.system + " " + f.memory_mode;
    row.vela_cycles = f.total_cycles;
    const std::pair<double, const char*> vela_terms[] = {{f.npu_cycles, "npu"},
                                                         {f.sram_access_cycles, "sram"},
                                                         {f.dram_access_cycles, "dram"},
                                                         {f.offflash_access_cycles, "flash"}};
    row.vela_bound = std::max_element(std::begin(vela_terms), std::end(vela_terms))->second;
    try {
      npu_sim::NpuConfig config = npu_sim::load_npu_config(calibration_config_files(config_dir, f));
      npu_sim::apply_overrides(config, overrides, "calibration override");
      const Model& model = models.at(f.layer);
      CompileResult compiled = compile(model, config);
      if (!compiled.fits()) throw std::runtime_error(compiled.does_not_fit->reason);
      const NpuRun run = run_timing_only(model, compiled.compiled, config);
      row.udc_cycles = run.job.total_cycles;
      if (details) {
        for (const npu_sim::Command& c : compiled.compiled.stream.commands) {
          if (!npu_sim::traits(c.kind).kernel) {
            row.details +=
                fmt::format("  {} {} bytes\n", npu_sim::command_name(c.kind), c.dma_bytes);
            continue;
          }
          const npu_sim::BlockShape b = npu_sim::ofm_block_shape(c);
          row.details +=
              fmt::format("  {} ofm {}x{}x{} block {}x{}x{} weights in {}{}\n",
                          npu_sim::command_name(c.kind), c.ofm.shape[0], c.ofm.shape[1],
                          c.ofm.shape[2], b.h, b.w, b.d, npu_sim::memory_name(c.weight_memory),
                          npu_sim::part_kernel_first(c) ? ", part-kernel-first" : "");
        }
        row.details += format_layer_report(model, compiled.compiled, config, run);
      }
      for (const LayerReport& layer : run.layers) {
        row.compute_cycles += layer.totals.compute_cycles;
        row.weight_wait_cycles += layer.totals.weight_wait_cycles;
        row.input_wait_cycles += layer.totals.input_wait_cycles;
        row.output_wait_cycles += layer.totals.output_wait_cycles;
      }
      const std::pair<double, const char*> terms[] = {{row.compute_cycles, "compute"},
                                                      {row.weight_wait_cycles, "weights"},
                                                      {row.input_wait_cycles, "input"},
                                                      {row.output_wait_cycles, "output"}};
      row.bound = std::max_element(std::begin(terms), std::end(terms))->second;
    } catch (const std::exception& e) {
      row.error = e.what();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<CalibrationSummary> summarize_calibration(const std::vector<CalibrationRow>& rows) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> log_ratios;
  for (const CalibrationRow& r : rows) {
    if (!r.error.empty() || !(r.udc_cycles > 0)) continue;
    if (!log_ratios.count(r.config)) order.push_back(r.config);
    log_ratios[r.config].push_back(std::log(r.ratio()));
    log_ratios["all"].push_back(std::log(r.ratio()));
  }
  order.push_back("all");
  std::vector<CalibrationSummary> summaries;
  for (const std::string& config : order) {
    const std::vector<double>& logs = log_ratios[config];
    CalibrationSummary s;
    s.config = config;
    s.layers = logs.size();
    double sum = 0, worst = 0;
    size_t within = 0;
    for (double l : logs) {
      sum += std::abs(l);
      if (std::abs(l) > std::abs(worst)) worst = l;
      if (std::abs(std::exp(l) - 1) <= kWithin) ++within;
    }
    if (!logs.empty()) {
      s.geomean_deviation = std::exp(sum / double(logs.size())) - 1;
      s.within_15_percent = double(within) / double(logs.size());
    }
    s.worst_ratio = std::exp(worst);
    summaries.push_back(s);
  }
  return summaries;
}

std::string format_calibration(const std::vector<CalibrationRow>& rows,
                               const std::vector<CalibrationSummary>& summaries) {
  std::string text = fmt::format("{:<26} {:<52} {:>10} {:>10} {:>6}  {:<7} {:<5}\n", "layer",
                                 "configuration", "vela", "udc", "ratio", "bound", "vela");
  for (const CalibrationRow& r : rows) {
    if (!r.error.empty()) {
      text += fmt::format("{:<26} {:<52} {:>10.0f} error: {}\n", r.layer, r.config, r.vela_cycles,
                          r.error);
      continue;
    }
    text += fmt::format("{:<26} {:<52} {:>10.0f} {:>10.0f} {:>6.2f}  {:<7} {:<5}\n", r.layer,
                        r.config, r.vela_cycles, r.udc_cycles, r.ratio(), r.bound, r.vela_bound);
    text += r.details;
  }
  text += fmt::format("\n{:<52} {:>6} {:>14} {:>10} {:>8}\n", "configuration", "layers",
                      "geomean |dev|", "within 15%", "worst");
  for (const CalibrationSummary& s : summaries) {
    text += fmt::format("{:<52} {:>6} {:>13.1f}% {:>9.0f}% {:>8.2f}\n", s.config, s.layers,
                        100 * s.geomean_deviation, 100 * s.within_15_percent, s.worst_ratio);
  }
  const size_t errors = size_t(std::count_if(
      rows.begin(), rows.end(), [](const CalibrationRow& r) { return !r.error.empty(); }));
  if (errors) text += fmt::format("{} layer(s) failed to compile or run (see above)\n", errors);
  return text;
}

}  // namespace udc::firmware_model
