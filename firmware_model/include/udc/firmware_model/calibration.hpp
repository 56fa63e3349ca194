// Calibration of the simulator against Arm Vela's performance estimates: reads a
// Vela-format calibration file (single-layer int8 models, their exact weights and Vela's
// per-layer figures on several systems), builds each layer as a Model exactly as the
// file's `source` describes, compiles and runs it timing-only on the matching NPU
// configuration and compares total cycles. Used by `udc calibrate` and by the fidelity
// test that holds the figures as a floor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "udc/firmware_model/model.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {

/// One single-layer model of the calibration set (the file's `specs`).
struct CalibrationLayer {
  std::string name;
  std::string kind;                ///< "conv", "dw" (depthwise, multiplier 1) or "fc"
  uint32_t height = 1, width = 1;  ///< input feature map [elements]; fc: 1 x 1
  uint32_t in_channels = 0, out_channels = 0;
  uint32_t kernel = 1, stride = 1;
  uint32_t bits = 8;            ///< significant weight bits
  double sparsity = 0;          ///< fraction of zero weights
  std::vector<int8_t> weights;  ///< TFLite layout (conv OHWI, dw 1HWC, fc [out][in])
};

/// Vela's figures for one layer on one system (the file's `results`). Cycles are NPU
/// core cycles.
struct VelaFigures {
  std::string layer;
  std::string accelerator;  ///< e.g. "ethos-u55-128"
  std::string system;       ///< Vela's system config, e.g. "Ethos_U55_High_End_Embedded"
  std::string memory_mode;  ///< "Shared_Sram", "Dedicated_Sram" or "Sram_Only"
  double total_cycles = 0;  ///< Vela's estimate: the largest of the terms below
  double npu_cycles = 0;    ///< compute, block schedule and weight DMA
  double sram_access_cycles = 0, dram_access_cycles = 0, offflash_access_cycles = 0;
};

struct CalibrationSet {
  std::string source;  ///< how the models were built and by which Vela
  std::vector<CalibrationLayer> layers;
  /// Whole networks (the second format): `.udcm` models by name, VelaFigures::layer naming
  /// the model.
  std::map<std::string, Model> networks;
  std::vector<VelaFigures> results;
};

/// Reads `path` (JSON). Two formats: an object of single-layer `specs` and `results`, with
/// every `NAME.weights.npy` beside it; or an array of whole-network entries (`model`,
/// `udcm` beside the file, `vela`: accelerator, system, memory_mode, and
/// `vela_total_cycles`, `vela_cycles_npu`, `vela_cycles_sram_access`, ...). Throws
/// std::runtime_error naming the file and the entry or key that is missing or malformed.
CalibrationSet read_calibration_set(const std::string& path);

/// The layer as an int8 model: input scale 0.05 (zero point 0), weights with one scale of
/// 0.01, zero bias, output scale 0.1 (zero point 0), SAME padding, fused ReLU.
Model calibration_model(const CalibrationLayer& layer);

/// The configuration files (NPU, then system) under `config_dir` for one Vela system:
/// `<accelerator>.yaml` and `systems/<system>.yaml`, the system named by Vela's name
/// without "Ethos_", lower case with hyphens, plus "-<memory mode>" when the mode is not
/// the system's default (shared_sram on the U55, dedicated_sram on the U65).
std::vector<std::string> calibration_config_files(const std::string& config_dir,
                                                  const VelaFigures& figures);

/// What bound one layer's time in the simulation: the largest of the MAC array's compute
/// and its waits for weights, input and output.
struct CalibrationRow {
  std::string layer, config;  ///< config: "<accelerator> <system> <memory mode>"
  double vela_cycles = 0, udc_cycles = 0;
  double ratio() const { return udc_cycles / vela_cycles; }
  double compute_cycles = 0, weight_wait_cycles = 0, input_wait_cycles = 0, output_wait_cycles = 0;
  std::string bound;       ///< "compute", "weights", "input" or "output"
  std::string vela_bound;  ///< Vela's largest term: "npu", "sram", "dram" or "flash"
  std::string error;       ///< non-empty when the layer did not compile or run
  std::string details;     ///< commands and udc's layer report (run_calibration's `details`)
};

/// Per configuration (and "all"): the geometric mean of |ln(udc / vela)| as a deviation
/// (exp(mean) - 1), the share of layers within 15 % and the worst ratio either way.
struct CalibrationSummary {
  std::string config;
  size_t layers = 0;
  double geomean_deviation = 0;  ///< 0.10 = 10 %
  double within_15_percent = 0;  ///< share of layers, 0..1
  double worst_ratio = 1;        ///< the ratio furthest from 1 (udc / vela)
};

/// Runs every result of the set on its configuration, with `overrides` (key=value, as
/// `--set` takes them) applied to each, e.g. to see how a parameter moves the figures.
/// `only_layer`, when not empty, runs that layer's rows alone; `details` fills
/// CalibrationRow::details.
std::vector<CalibrationRow> run_calibration(const CalibrationSet& set,
                                            const std::string& config_dir,
                                            const std::vector<std::string>& overrides = {},
                                            const std::string& only_layer = {},
                                            bool details = false);

/// Summaries per configuration, in order of first appearance, then "all".
std::vector<CalibrationSummary> summarize_calibration(const std::vector<CalibrationRow>& rows);

/// The per-layer table and the summaries as text (`udc calibrate`).
std::string format_calibration(const std::vector<CalibrationRow>& rows,
                               const std::vector<CalibrationSummary>& summaries);

}  // namespace udc::firmware_model
