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
#include "udc/npu_sim/area.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/hardware_space.hpp"

namespace udc::firmware_model {

/// A sweep file (configs/sweeps/): base configuration files, the grid and the weights of
/// the hardware-size proxy.
struct SweepSpace {
  std::string file;                     ///< where it was read from, for messages
  std::vector<std::string> base_files;  ///< `npu:`, relative to the sweep file
  npu_sim::HardwareSpace grid;          ///< `parameters:`, one axis per choice
  /// key, weight: hardware size = sum of weight x parameter; empty: the area model's
  /// total (NPU and SRAM) [mm^2].
  std::vector<std::pair<std::string, double>> size_weights;
  npu_sim::AreaModel area;  ///< `area:` (npu_sim/area.hpp), defaults where not given
  WeightPlacement weights = WeightPlacement::Auto;
};

/// Reads a sweep file; throws common::ConfigError naming the file, line and key (unknown
/// keys, unknown or non-numeric parameters, empty axes, values a parameter does not accept).
SweepSpace read_sweep_space(const std::string& path);

/// One configuration of the grid and what it measured.
struct SweepPoint {
  std::vector<std::string> values;  ///< per axis, the option's label (HardwareOption)
  npu_sim::NpuConfig config;
  double size = 0;      ///< the hardware size [mm^2, or units of the size weights]
  double area_mm2 = 0;  ///< the area model's total (NPU and SRAM) [mm^2]
  bool fits = false;
  double cycles = 0, milliseconds = 0, utilisation = 0;
  uint64_t sram_bytes = 0, weight_bytes = 0, flash_bytes = 0;
  std::string note;     ///< why it does not fit, or the error
  bool pareto = false;  ///< no other fitting point is smaller and faster
  /// What the worker measured, as it reported it (shard files carry it; empty: not yet).
  std::string measured;
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

/// One of `count` parts of a sweep split over processes on several machines (cluster
/// job-array tasks, MPI ranks): part `index` (0-based) measures every `count`-th point of
/// the grid from `index`, so that neighbours in the grid, which cost alike, spread over the
/// parts.
struct SweepShard {
  uint32_t index = 0, count = 1;
};
/// Reads "I/N" (0 <= I < N); throws std::invalid_argument saying what was expected.
SweepShard parse_sweep_shard(const std::string& text);
/// The points of a grid of `total` that `shard` measures, in grid order.
std::vector<size_t> shard_points(size_t total, SweepShard shard);
/// Measures the points `which` only (as measure_sweep does), without marking the Pareto
/// front, which needs every point.
void measure_points(const Model& model, const SweepSpace& space, std::vector<SweepPoint>& points,
                    const std::vector<size_t>& which, unsigned jobs, const SweepProgress& progress);
/// The Pareto front among the points that fit (SweepPoint::pareto).
void mark_pareto_front(std::vector<SweepPoint>& points);

/// A shard's results as text: a header with the grid's fingerprint (model, axes, values,
/// base configuration) and the shard, then each measured point's index and result.
std::string sweep_shard_text(const Model& model, const std::vector<SweepPoint>& points,
                             const std::vector<size_t>& which, SweepShard shard);
/// Fills the grid `points` from shard texts (`shards`: name for errors, text), then marks
/// the Pareto front: the same points as one process measuring the whole grid. Throws
/// std::runtime_error naming the shard and line when one is malformed or belongs to another
/// grid or model, when a point comes twice, or naming the first points nobody measured.
void merge_sweep_shards(const Model& model, std::vector<SweepPoint>& points,
                        const std::vector<std::pair<std::string, std::string>>& shards);

/// The CSV (one row per point: axis values, size, fit, cycles, ms, inferences/s, MAC
/// utilisation, SRAM, weight and flash bytes, Pareto flag, note) and the SVG plot.
std::string sweep_csv(const SweepSpace& space, const std::vector<SweepPoint>& points);
std::string sweep_svg(const SweepSpace& space, const std::vector<SweepPoint>& points,
                      const std::string& model_name);

}  // namespace udc::firmware_model
