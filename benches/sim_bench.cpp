// Simulator speed: simulated NPU cycles per host second in timing-only mode, and int8
// MACs per host second with full bit-exact execution, on a MobileNet-like sequence of
// layers (U55-128 on the deep-embedded system).
#include <systemc>

#include <benchmark/benchmark.h>

#include <cstdlib>

#include "npu_sim/job_builder.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::npu_sim::test {
namespace {

/// 96x96x3 input; conv 3x3 s2 to 32; then depthwise-separable blocks
/// (dw 3x3, pw 1x1) down to 6x6x256; global 6x6 average pool; fully connected to 10.
CommandStream mobilenet_like() {
  std::mt19937 rng(2022);
  CommandStream stream;
  uint64_t sram_next = 0x1000, flash_next = 0;
  auto alloc = [&](uint64_t bytes) {
    const uint64_t at = sram_next;
    sram_next += (bytes + 15) / 16 * 16;
    return at;
  };
  Tensor input = random_tensor(96, 96, 3, rng);
  TensorRef current = tensor_ref(alloc(input.data.size()), input);
  place_input(stream, current.address, input);
  auto add_weighted = [&](Command c, int limit, double sparsity) {
    const size_t n = size_t(c.ofm.shape[2]) * c.weights_per_channel();
    attach_weights(stream, c, random_weights(n, limit, sparsity, rng),
                   random_quant(int(c.ofm.shape[2]), rng), flash_next);
    flash_next += (stream.images.back().bytes.size() + 15) / 16 * 16;
    stream.commands.push_back(c);
    current = c.ofm;
  };
  auto conv = [&](uint32_t k, uint32_t stride, uint32_t out_c, bool depthwise) {
    Command c;
    c.kind = depthwise ? CommandKind::DepthwiseConv2d : CommandKind::Conv2d;
    c.kernel_h = c.kernel_w = k;
    c.stride_h = c.stride_w = stride;
    const uint32_t h = current.shape[0], w = current.shape[1];
    const uint32_t out_h = (h + stride - 1) / stride, out_w = (w + stride - 1) / stride;
    const uint32_t pad_h = std::max<int64_t>(0, int64_t(out_h - 1) * stride + k - h);
    const uint32_t pad_w = std::max<int64_t>(0, int64_t(out_w - 1) * stride + k - w);
    c.pad_top = pad_h / 2;
    c.pad_bottom = pad_h - pad_h / 2;
    c.pad_left = pad_w / 2;
    c.pad_right = pad_w - pad_w / 2;
    c.ifm = current;
    c.ofm = tensor_ref(alloc(uint64_t(out_h) * out_w * out_c),
                       Tensor(int(out_h), int(out_w), int(out_c)));
    c.ofm_block_depth = 16;
    c.activation_min = 0;
    add_weighted(c, depthwise ? 127 : 7, depthwise ? 0.0 : 0.5);
  };
  conv(3, 2, 32, false);
  const std::pair<uint32_t, uint32_t> blocks[] = {{1, 64},  {2, 128}, {1, 128},
                                                  {2, 256}, {2, 256}, {1, 256}};
  for (auto [stride, channels] : blocks) {
    conv(3, stride, current.shape[2], true);
    conv(1, 1, channels, false);
  }
  Command pool;
  pool.kind = CommandKind::AvgPool;
  pool.kernel_h = current.shape[0];
  pool.kernel_w = current.shape[1];
  pool.ifm = current;
  pool.ofm = tensor_ref(alloc(current.shape[2]), Tensor(1, 1, int(current.shape[2])));
  pool.ofm_block_depth = 64;
  stream.commands.push_back(pool);
  current = pool.ofm;
  Command fc;
  fc.kind = CommandKind::FullyConnected;
  fc.ifm = current;
  fc.ofm = tensor_ref(alloc(10), Tensor(1, 1, 10));
  fc.ofm_block_depth = 10;
  add_weighted(fc, 127, 0.0);
  stream.outputs.push_back({"logits", MemoryId::Sram, fc.ofm.address, 10});
  return stream;
}

NpuConfig bench_config() {
  return load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/u55-128-deep-embedded.yaml");
}

void run_bench(benchmark::State& state, bool timing_only) {
  static const CommandStream stream = mobilenet_like();
  const NpuConfig config = bench_config();
  RunOptions options;
  options.timing_only = timing_only;
  double cycles = 0;
  uint64_t macs = 0;
  for (auto _ : state) {
    const JobReport report = Simulator::instance().run(stream, config, options);
    if (!report.error.empty()) state.SkipWithError(report.error.c_str());
    cycles += report.total_cycles;
    macs += report.macs;
  }
  state.counters["sim_cycles_per_s"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate);
  state.counters["MACs_per_s"] = benchmark::Counter(double(macs), benchmark::Counter::kIsRate);
  state.counters["job_cycles"] = cycles / double(state.iterations());
  state.counters["commands"] = double(stream.commands.size());
}

void BM_TimingOnly(benchmark::State& state) {
  run_bench(state, true);
}
void BM_Functional(benchmark::State& state) {
  run_bench(state, false);
}
BENCHMARK(BM_TimingOnly)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Functional)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace udc::npu_sim::test

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
