#include "udc/firmware_model/measurement.hpp"

#include <fmt/format.h>

#include "udc/firmware_model/driver.hpp"

namespace udc::firmware_model {

namespace {

void take_layout(const CompiledModel& compiled, ModelMeasurement& m) {
  m.weight_bytes = 0;
  m.flash_bytes = compiled.plan.flash_bytes + compiled.plan.sram_weights_bytes;
  m.layers.clear();
  for (const LayerCommands& layer : compiled.layers) {
    if (layer.weight_stream_bytes == 0 && layer.image_bytes == 0) continue;
    m.weight_bytes += layer.weight_stream_bytes;
    m.layers.push_back({layer.operation, layer.weight_stream_bytes, layer.image_bytes});
  }
}

}  // namespace

ModelMeasurement measure_model(const Model& model, const npu_sim::NpuConfig& npu,
                               const MeasureOptions& options) {
  ModelMeasurement m;
  const CompileResult result = compile(model, npu, options.compile);
  if (!result.fits()) {
    m.does_not_fit = result.does_not_fit;
    if (result.does_not_fit->resource == "sram") m.sram_bytes = result.does_not_fit->needed;
    // The weights as they would be laid out with room for everything: a budget on them is
    // still checked when the model misses another resource.
    npu_sim::NpuConfig roomy = npu;
    roomy.sram.size_bytes = roomy.offchip.size_bytes = uint64_t{1} << 40;
    const CompileResult unlimited = compile(model, roomy, options.compile);
    if (unlimited.fits()) {
      take_layout(unlimited.compiled, m);
      m.arena_bytes = unlimited.compiled.plan.arena_bytes;
    }
    return m;
  }
  const CompiledModel& compiled = result.compiled;
  take_layout(compiled, m);
  m.arena_bytes = compiled.plan.arena_bytes;
  m.sram_bytes = compiled.plan.sram_bytes;
  if (options.simulate) {
    const NpuRun run = run_timing_only(model, compiled, npu);
    m.cycles = double(run.job.total_cycles);
    m.milliseconds = run.job.milliseconds();
    m.mac_utilisation = run.job.mac_utilisation;
  }
  return m;
}

std::vector<std::string> budget_violations(const ModelMeasurement& measured,
                                           const MeasuredBudgets& budgets) {
  std::vector<std::string> lines;
  if (!measured.fits()) lines.push_back("does not fit: " + measured.does_not_fit->reason);
  auto check = [&](const char* name, double value, const auto& budget, const char* unit) {
    if (budget && value > double(*budget)) {
      lines.push_back(fmt::format("{}: {:.0f} {} measured, budget {:.0f} {}", name, value, unit,
                                  double(*budget), unit));
    }
  };
  check("weight_bytes", double(measured.weight_bytes), budgets.weight_bytes, "B");
  check("flash_bytes", double(measured.flash_bytes), budgets.flash_bytes, "B");
  check("sram_bytes", double(measured.arena_bytes), budgets.sram_bytes, "B");
  if (measured.fits()) check("cycles", measured.cycles, budgets.cycles, "cycles");
  return lines;
}

}  // namespace udc::firmware_model
