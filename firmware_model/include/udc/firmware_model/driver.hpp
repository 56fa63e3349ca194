// Runs a compiled model on the simulated NPU: loads the weights and the inputs into the
// simulated memories, runs the job, reads the outputs back and accounts cycles per layer.
#pragma once

#include <string>
#include <vector>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/npu_sim/report.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::firmware_model {

/// One model operation's share of the job.
struct LayerReport {
  size_t operation = 0;
  /// Its commands' accounts summed (DMA commands excluded: they overlap other layers).
  npu_sim::CommandReport totals;
  double start_cycle = 0, end_cycle = 0;  ///< first command picked up, last one done
  uint64_t sram_live_bytes = 0;           ///< activation bytes live during the layer
};

struct NpuRun {
  npu_sim::JobReport job;
  std::vector<TensorValues> outputs;  ///< one per CompiledModel::output_tensors
  std::vector<LayerReport> layers;    ///< one per model operation
};

/// Runs `compiled` (from compile(model, config)) on `inputs` (one per model input).
/// Throws std::invalid_argument on wrong input sizes and std::runtime_error when the job
/// stops on an error.
NpuRun run_on_npu(const Model& model, const CompiledModel& compiled,
                  const npu_sim::NpuConfig& config, const std::vector<TensorValues>& inputs,
                  const npu_sim::RunOptions& options = {});

/// The reference interpreter and the simulator on the same inputs.
struct Verification {
  std::vector<TensorValues> reference;  ///< every tensor, from run_reference
  NpuRun run;                           ///< the simulator's run of `compiled`
  /// Empty when every tensor the run read back equals the reference; else the first
  /// differing byte in execution order ("layer N (name, type) output T: byte B (y, x,
  /// channel): NPU a != reference b"), found again with every tensor kept apart
  /// (CompileOptions::reuse_memory off) so that the first wrong layer is named.
  std::string difference;
};
Verification verify_on_npu(const Model& model, const CompiledModel& compiled,
                           const npu_sim::NpuConfig& config,
                           const std::vector<TensorValues>& inputs,
                           const CompileOptions& options = {});

/// The cost query: `compiled` run timing-only (no arithmetic, so the inputs' values do not
/// matter and zeros are used). Cycles, bytes and per-layer reports as run_on_npu's.
NpuRun run_timing_only(const Model& model, const CompiledModel& compiled,
                       const npu_sim::NpuConfig& config);

/// The command stream with the inputs loaded, as `udc compile` writes it for `udc sim`.
npu_sim::CommandStream stream_with_inputs(const Model& model, const CompiledModel& compiled,
                                          const std::vector<TensorValues>& inputs);

/// Per-layer table: MACs, weight stream bytes and bits per weight, cycles and their
/// bottleneck, SRAM live; then latency in cycles and ms, inferences per second, peaks.
std::string format_layer_report(const Model& model, const CompiledModel& compiled,
                                const npu_sim::NpuConfig& config, const NpuRun& run);
/// The same as JSON (for sweeps and tools).
std::string layer_report_json(const Model& model, const CompiledModel& compiled,
                              const npu_sim::NpuConfig& config, const NpuRun& run);

}  // namespace udc::firmware_model
