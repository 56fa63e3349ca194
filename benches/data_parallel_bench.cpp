// Data-parallel training steps (search/include/udc/search/ranks.hpp) on this machine: the
// fixed CNN of train_bench at a global batch of 128, float (the warm-up's step) and quantised
// (LSQ weights, observed ranges), on 1, 2 and 4 ranks of one thread each over loopback.
// Rank 0 is the benchmark; the other ranks are this program started again with
// --rank R --world N --port P --steps S --mode M, running the same steps. Reports the time
// of a global step, images/s, and the bytes each rank puts into the step's sums: gradients
// (float32) and synchronised batch-norm statistics (float64, forward and backward). Strong
// scaling: the global batch stays 128 whatever the ranks, as in training.
#include <systemc>

#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "collectives.hpp"
#include "qnet.hpp"
#include "training.hpp"
#include "udc/common/local_port.hpp"
#include "udc/search/train_config.hpp"

extern char** environ;

using namespace udc::search;

namespace {

constexpr int64_t kGlobalBatch = 128;
constexpr int kWarmupSteps = 3;   ///< untimed steps before the timed ones (every rank)
constexpr int kTimedSteps = 20;   ///< the benchmark's fixed iterations

/// One rank's training: its share of a fixed synthetic global batch, the same network on
/// every rank (same seed).
struct RankTraining {
  std::shared_ptr<Ranks> ranks;
  TrainConfig config;
  std::shared_ptr<QNet> net;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  torch::Tensor images, labels;
  double share = 1;
  Mode mode;

  RankTraining(std::shared_ptr<Ranks> joined, Mode m) : ranks(std::move(joined)), mode(m) {
    use_training_threads(1);
    torch::manual_seed(1);
    config = load_train_config(std::string(UDC_CONFIG_DIR) + "/train/fmnist-cnn-w4.yaml");
    for (auto& layer : config.architecture.layers) layer.sparsity = 0.5;
    net = std::make_shared<QNet>(config.architecture, config.data.normalization);
    const torch::Tensor all_images = torch::randn({kGlobalBatch, 1, 28, 28});
    const torch::Tensor all_labels = torch::randint(0, 10, {kGlobalBatch}, torch::kLong);
    const udc::data::BatchShare s =
        udc::data::batch_share(kGlobalBatch, ranks->rank(), ranks->size());
    images = all_images.narrow(0, int64_t(s.first), int64_t(s.count)).contiguous();
    labels = all_labels.narrow(0, int64_t(s.first), int64_t(s.count)).contiguous();
    share = double(s.count) / double(kGlobalBatch);
    if (mode == Mode::Quantized) {
      for (const auto& l : net->weighted()) {
        l->update_mask(l->target_sparsity());
        l->initialize_step();
      }
    }
    optimizer = std::make_unique<torch::optim::AdamW>(net->parameters(),
                                                      torch::optim::AdamWOptions(1e-3));
    net->train();
  }

  void step() {
    const QTensor logits = net->forward(images, {mode, mode == Mode::Quantized, 0.99, ranks.get()});
    const torch::Tensor loss = torch::cross_entropy_loss(logits.x, labels);
    optimizer->zero_grad();
    (several(ranks.get()) ? loss * share : loss).backward();
    reduce_gradients(ranks.get(), net->parameters());
    optimizer->step();
  }

  /// Bytes this rank sums with the others per step: every gradient, and per batch norm the
  /// channel sums and squares and the count, there and back.
  double gradient_bytes() const {
    double bytes = 0;
    for (const auto& p : net->parameters()) bytes += 4.0 * double(p.numel());
    return bytes;
  }
  double batch_norm_bytes() const {
    double bytes = 0;
    for (const auto& m : net->modules(/*include_self=*/false)) {
      if (const auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bytes += 2 * 8.0 * double(2 * bn->options.num_features() + 1);
      }
    }
    return mode == Mode::Float ? bytes : 0.0;  // quantised steps fold the running statistics
  }
};

Rendezvous loopback(uint32_t rank, uint32_t world, uint16_t port) {
  Rendezvous r;
  r.rank = rank;
  r.world_size = world;
  r.port = port;
  r.timeout = std::chrono::seconds(120);
  r.source = "data_parallel_bench";
  return r;
}

void data_parallel_steps(benchmark::State& state, Mode mode) {
  const auto world = uint32_t(state.range(0));
  const uint16_t port = udc::common::free_loopback_port();
  std::vector<pid_t> helpers;
  for (uint32_t r = 1; r < world; ++r) {
    std::vector<std::string> args{"/proc/self/exe", "--rank",  std::to_string(r),
                                  "--world",        std::to_string(world), "--port",
                                  std::to_string(port), "--mode",
                                  mode == Mode::Float ? "float" : "quantized"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
      state.SkipWithError("cannot start a helper rank");
      return;
    }
    helpers.push_back(pid);
  }
  {
    RankTraining training(Ranks::join(loopback(0, world, port)), mode);
    for (int i = 0; i < kWarmupSteps; ++i) training.step();
    for (auto _ : state) training.step();
    state.counters["images/s"] = benchmark::Counter(double(state.iterations()) * kGlobalBatch,
                                                    benchmark::Counter::kIsRate);
    state.counters["ranks"] = world;
    state.counters["allreduce_B/step"] =
        world > 1 ? training.gradient_bytes() + training.batch_norm_bytes() : 0.0;
    training.ranks->barrier("the end of the benchmark");
  }
  for (pid_t pid : helpers) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("a helper rank failed");
  }
}

void BM_DataParallelStepFloat(benchmark::State& state) {
  data_parallel_steps(state, Mode::Float);
}
void BM_DataParallelStepQuantized(benchmark::State& state) {
  data_parallel_steps(state, Mode::Quantized);
}

/// A helper rank: the same warm-up and timed steps as rank 0, then the closing barrier.
int run_helper(int argc, char** argv) {
  uint32_t rank = 0, world = 0;
  uint16_t port = 0;
  Mode mode = Mode::Float;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--rank") rank = uint32_t(std::stoul(value));
    if (key == "--world") world = uint32_t(std::stoul(value));
    if (key == "--port") port = uint16_t(std::stoul(value));
    if (key == "--mode") mode = value == "float" ? Mode::Float : Mode::Quantized;
  }
  try {
    RankTraining training(Ranks::join(loopback(rank, world, port)), mode);
    for (int i = 0; i < kWarmupSteps + kTimedSteps; ++i) training.step();
    training.ranks->barrier("the end of the benchmark");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_parallel_bench helper rank %u: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}

}  // namespace

BENCHMARK(BM_DataParallelStepFloat)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Iterations(kTimedSteps)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_DataParallelStepQuantized)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Iterations(kTimedSteps)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int sc_main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--rank") == 0) return run_helper(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
