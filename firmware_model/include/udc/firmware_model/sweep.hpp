// Design-space sweeps: one model evaluated over a grid of NPU parameters (compile, then a
// timing-only simulation: firmware_model::measure_model), each configuration in its own
// process, with the latency / hardware-size Pareto front, a CSV and an SVG plot.
// `udc sweep` is a thin layer over this.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/model.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {

/// A sweep file (configs/sweeps/): base configuration files, the grid and the weights of
/// the hardware-size proxy.
struct SweepSpace {
  std::string file;                     ///< where it was read from, for messages
  std::vector<std::string> base_files;  ///< `npu:`, relative to the sweep file
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  ///< key, values
  /// key, weight: hardware size = sum of weight x parameter; empty: MACs per cycle.
  std::vector<std::pair<std::string, double>> size_weights;
  WeightPlacement weights = WeightPlacement::Auto;
};

/// Reads a sweep file; throws common::ConfigError naming the file, line and key (unknown
/// keys, unknown or non-numeric parameters, empty axes, values a parameter does not accept).
SweepSpace read_sweep_space(const std::string& path);

/// One configuration of the grid and what it measured.
struct SweepPoint {
  std::vector<std::string> values;  ///< per axis, as written in the sweep file
  npu_sim::NpuConfig config;
  double size = 0;  ///< the hardware-size proxy [units of the size weights]
  bool fits = false;
  double cycles = 0, milliseconds = 0, utilisation = 0;
  uint64_t sram_bytes = 0, weight_bytes = 0, flash_bytes = 0;
  std::string note;     ///< why it does not fit, or the error
  bool pareto = false;  ///< no other fitting point is smaller and faster
};

/// The grid over `base` (last axis fastest), sizes computed, nothing measured yet. Throws
/// naming the sweep file for values a parameter does not accept.
std::vector<SweepPoint> sweep_grid(const SweepSpace& space, const npu_sim::NpuConfig& base);

/// Called after each point is measured: points done, all points, the point, and the
/// estimated seconds left.
using SweepProgress =
    std::function<void(size_t done, size_t total, const SweepPoint& point, double eta_seconds)>;

/// Measures every point, `jobs` worker processes at a time (0: one per core). A process
/// per configuration: SystemC elaborates once per process, and a crash in one
/// configuration cannot take the sweep down (it becomes that point's note). Marks the
/// Pareto front.
void measure_sweep(const Model& model, const SweepSpace& space, std::vector<SweepPoint>& points,
                   unsigned jobs, const SweepProgress& progress);

/// The CSV (one row per point: axis values, size, fit, cycles, ms, inferences/s, MAC
/// utilisation, SRAM, weight and flash bytes, Pareto flag, note) and the SVG plot.
std::string sweep_csv(const SweepSpace& space, const std::vector<SweepPoint>& points);
std::string sweep_svg(const SweepSpace& space, const std::vector<SweepPoint>& points,
                      const std::string& model_name);

}  // namespace udc::firmware_model
