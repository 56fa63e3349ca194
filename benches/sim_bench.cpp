// Simulator and compiler speed on the MobileNet-like model (about 9 M MACs, 96x96x3,
// 4-bit weights, 50 % sparse) for Ethos-U55-128 on the deep-embedded system:
//  - compile time (codec encoding, arena plan, commands);
//  - simulated NPU cycles per host second, timing-only and with bit-exact execution;
//  - the end-to-end work of `udc run`: read the .udcm, compile, run, format the report;
//  - one budget check of the trainer's guard on the quick preset's found model: the
//    compiled layout (measure_model without simulation), against the codec alone
//    (one stream per layer, the estimate budgets used before).
// Counters: sim_cycles_per_s (simulated cycles per host second), macs_per_s.
#include <systemc>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {
namespace {

const npu_sim::NpuConfig& config() {
  static const npu_sim::NpuConfig c =
      npu_sim::load_npu_config(UDC_CONFIG_DIR "/npu/u55-128-deep-embedded.yaml");
  return c;
}

const Model& model() {
  static const Model m = [] {
    MobileNetOptions options;
    options.weight_bits = 4;
    options.sparsity = 0.5;
    return mobilenet_like(options);
  }();
  return m;
}

std::vector<TensorValues> zero_input() {
  return {TensorValues(model().tensors[size_t(model().inputs[0])].elements(), 1)};
}

void BM_Compile(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(compile(model(), config()));
  state.counters["macs"] = double(summarize(model()).macs);
}

void simulate(benchmark::State& state, bool timing_only) {
  const CompiledModel compiled = compile(model(), config()).compiled;
  const std::vector<TensorValues> input = zero_input();
  npu_sim::RunOptions options;
  options.timing_only = timing_only;
  double cycles = 0, macs = 0;
  for (auto _ : state) {
    const NpuRun run = run_on_npu(model(), compiled, config(), input, options);
    cycles += run.job.total_cycles;
    macs += double(run.job.macs);
  }
  state.counters["sim_cycles_per_s"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate);
  state.counters["macs_per_s"] = benchmark::Counter(macs, benchmark::Counter::kIsRate);
}
void BM_SimulateTimingOnly(benchmark::State& state) {
  simulate(state, true);
}
void BM_SimulateFunctional(benchmark::State& state) {
  simulate(state, false);
}

/// What `udc run` does between reading its arguments and printing.
void BM_EndToEndRun(benchmark::State& state) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("udc_bench_" + std::to_string(::getpid()) + ".udcm"))
                               .string();
  write_model(model(), path);
  for (auto _ : state) {
    const Model m = read_model(path);
    const CompiledModel compiled = compile(m, config()).compiled;
    const NpuRun run = run_on_npu(m, compiled, config(), zero_input());
    benchmark::DoNotOptimize(format_layer_report(m, compiled, config(), run));
  }
  std::filesystem::remove(path);
}

const Model& quick_model() {
  static const Model m =
      read_model(UDC_SOURCE_DIR "/tests/data/calibration/vela_wholenet/fmnist_quick.udcm");
  return m;
}

void BM_BudgetCheckCompiledLayout(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(measure_model(quick_model(), config(), {false, {}}));
}

void BM_BudgetCheckCodecOnly(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(summarize(quick_model()).compressed_bytes);
}

BENCHMARK(BM_Compile)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BudgetCheckCompiledLayout)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BudgetCheckCodecOnly)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SimulateTimingOnly)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SimulateFunctional)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EndToEndRun)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace udc::firmware_model

int sc_main(int argc, char* argv[]) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

int main(int argc, char* argv[]) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
