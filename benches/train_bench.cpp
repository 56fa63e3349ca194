// Training step time of the small Fashion-MNIST CNN of configs/train (batch 128): float
// warm-up step, quantised step (LSQ weights, exact integer forward, masks), and the integer
// evaluation forward pass. Synthetic images: the arithmetic does not depend on them.
#include <systemc>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <random>

#include "qnet.hpp"
#include "training.hpp"
#include "udc/search/train_config.hpp"

using namespace udc::search;

namespace {

struct Fixture {
  TrainConfig config;
  udc::data::ImageDataset set;
  std::shared_ptr<QNet> net;
  torch::Tensor images, labels;

  explicit Fixture(int threads) {
    use_training_threads(uint32_t(threads));
    torch::manual_seed(1);
    config = load_train_config(std::string(UDC_CONFIG_DIR) + "/train/fmnist-cnn-w4.yaml");
    for (auto& layer : config.architecture.layers) layer.sparsity = 0.5;
    set.name = "synthetic";
    set.height = set.width = 28;
    set.channels = 1;
    set.classes = 10;
    std::mt19937 rng(1);
    for (size_t i = 0; i < 512 * 784; ++i) set.pixels.push_back(uint8_t(rng() % 256));
    for (size_t i = 0; i < 512; ++i) set.labels.push_back(uint16_t(rng() % 10));
    net = std::make_shared<QNet>(config.architecture, config.data.normalization);
    images = torch::randn({128, 1, 28, 28});
    labels = torch::randint(0, 10, {128}, torch::kLong);
  }
};

void train_steps(benchmark::State& state, Mode mode) {
  Fixture f(int(state.range(0)));
  if (mode == Mode::Quantized) {
    for (const auto& l : f.net->weighted()) l->update_mask(l->target_sparsity());
    prepare_quantization(*f.net, f.set, f.config.data.normalization, 128, 1);
  }
  torch::optim::AdamW optimizer(f.net->parameters(), torch::optim::AdamWOptions(1e-3));
  f.net->train();
  for (auto _ : state) {
    const QTensor logits = f.net->forward(f.images, {mode, mode == Mode::Quantized, 0.99});
    const torch::Tensor loss = torch::cross_entropy_loss(logits.x, f.labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  state.counters["images/s"] =
      benchmark::Counter(double(state.iterations()) * 128, benchmark::Counter::kIsRate);
}

void BM_TrainStepFloat(benchmark::State& state) {
  train_steps(state, Mode::Float);
}
void BM_TrainStepQuantized(benchmark::State& state) {
  train_steps(state, Mode::Quantized);
}

void BM_IntegerForward(benchmark::State& state) {
  Fixture f(int(state.range(0)));
  prepare_quantization(*f.net, f.set, f.config.data.normalization, 128, 1);
  f.net->eval();
  torch::NoGradGuard no_grad;
  for (auto _ : state)
    benchmark::DoNotOptimize(f.net->forward(f.images, {Mode::Quantized, false, 0}));
  state.counters["images/s"] =
      benchmark::Counter(double(state.iterations()) * 128, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_TrainStepFloat)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStepQuantized)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IntegerForward)->Arg(2)->Unit(benchmark::kMillisecond);

int sc_main(int argc, char* argv[]) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
