// The quantisation-aware network: its integer helpers against the specification
// (int8/include/udc/int8/fixed_point.hpp, the interpreter's pooling), exact masks, and the central
// claim: the exported .udcm model gives, on the reference interpreter and on the simulator, the
// same integers as LibTorch's quantised forward pass, for several architectures and
// bitwidths.
#include <systemc>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "budget_guard.hpp"
#include "qnet.hpp"
#include "training.hpp"
#include "udc/common/file_io.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/tflite_import.hpp"
#include "udc/firmware_model/upscale.hpp"
#include "udc/search/seeds.hpp"
#include "udc/search/trainer.hpp"

namespace fs = std::filesystem;
namespace fm = udc::firmware_model;
using namespace udc::search;

TEST(IntegerOps, RoundedAverageRoundsHalfAwayFromZero) {
  for (int64_t count = 1; count < 50; ++count) {
    std::vector<int64_t> sums;
    for (int64_t s = -3000; s <= 3000; s += 7) sums.push_back(s);
    const torch::Tensor avg = rounded_average(torch::tensor(sums, torch::kLong), count);
    for (size_t i = 0; i < sums.size(); ++i) {
      const int64_t s = sums[i];
      const int64_t expected = s >= 0 ? (s + count / 2) / count : (s - count / 2) / count;
      ASSERT_EQ(avg[int64_t(i)].item<int64_t>(), expected) << s << "/" << count;
    }
  }
}

TEST(Pruning, MagnitudeMaskHasExactCountPerChannelAtSmallestMagnitudes) {
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({16, 8, 3, 3});
  w.view(-1).slice(0, 0, 100).fill_(0.25f);  // ties, across the first channels
  const int64_t per_channel = 8 * 3 * 3;
  for (double sparsity : {0.0, 0.3, 0.5, 0.75, 0.9}) {
    const torch::Tensor mask = magnitude_mask(w, sparsity);
    for (int64_t c = 0; c < w.size(0); ++c) {
      const torch::Tensor m = mask[c], a = w[c].abs();
      const int64_t zeros = (m == 0).sum().item<int64_t>();
      EXPECT_EQ(zeros, std::llround(sparsity * double(per_channel))) << c;
      if (zeros > 0 && zeros < per_channel) {
        const float largest_pruned = (a * (1 - m)).max().item<float>();
        const float smallest_kept = (a + (1 - m) * 1e9).min().item<float>();
        EXPECT_LE(largest_pruned, smallest_kept) << c;
      }
    }
    // Invariant under a positive scale per channel (batch-norm folding).
    const torch::Tensor scaled = w * (torch::rand({16, 1, 1, 1}) + 0.1);
    EXPECT_TRUE(torch::equal(magnitude_mask(scaled, sparsity), mask)) << sparsity;
  }
}

TEST(Pruning, MagnitudeMaskKeepsEachChannelsLargestWeight) {
  // 0.96 of a 3x3 stem channel's 9 weights rounds to 9: the channel would be cut (a uniform
  // 96 % baseline trained to chance this way).
  torch::manual_seed(2);
  const torch::Tensor w = torch::randn({6, 1, 3, 3});
  for (double sparsity : {0.96, 1.0}) {
    const torch::Tensor mask = magnitude_mask(w, sparsity);
    for (int64_t c = 0; c < w.size(0); ++c) {
      ASSERT_EQ((mask[c] != 0).sum().item<int64_t>(), 1) << sparsity << " channel " << c;
      const int64_t largest = w[c].abs().flatten().argmax().item<int64_t>();
      EXPECT_EQ(mask[c].flatten()[largest].item<float>(), 1.0f) << sparsity << " channel " << c;
    }
  }
}

namespace {

/// model.tflite beside a trained model.udcm holds the same model: importing it gives back
/// the .udcm byte for byte.
void expect_tflite_round_trip(const udc::search::TrainResult& trained) {
  EXPECT_EQ(udc::firmware_model::serialize_model(
                udc::firmware_model::load_model_file(trained.tflite_path).model),
            udc::common::read_file(trained.model_path))
      << trained.tflite_path;
}

/// Random images with random labels: enough to move weights and activation ranges.
udc::data::ImageDataset synthetic_set(uint32_t side, uint32_t channels, size_t count,
                                      uint32_t seed) {
  udc::data::ImageDataset set;
  set.name = "synthetic";
  set.height = set.width = side;
  set.channels = channels;
  set.classes = 10;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pixel(0, 255), label(0, 9);
  for (size_t i = 0; i < count * set.image_bytes(); ++i) set.pixels.push_back(uint8_t(pixel(rng)));
  for (size_t i = 0; i < count; ++i) set.labels.push_back(uint16_t(label(rng)));
  return set;
}

LayerSpec layer(LayerKind kind, uint32_t out, uint32_t kernel, uint32_t stride, uint32_t bits,
                double sparsity, ActivationKind act = ActivationKind::Relu,
                uint32_t expansion = 1) {
  LayerSpec spec;
  spec.kind = kind;
  spec.out_channels = out;
  spec.kernel = kernel;
  spec.stride = stride;
  spec.weight_bits = bits;
  spec.sparsity = sparsity;
  spec.activation = act;
  spec.expansion = expansion;
  return spec;
}

ArchitectureSpec architecture(const std::string& name, uint32_t side, uint32_t channels,
                              std::vector<LayerSpec> layers) {
  ArchitectureSpec arch;
  arch.name = name;
  arch.height = arch.width = side;
  arch.channels = channels;
  arch.classes = 10;
  for (size_t i = 0; i < layers.size(); ++i) layers[i].name = name + "_l" + std::to_string(i);
  arch.layers = std::move(layers);
  return arch;
}

/// Sub-pixel output with the anchor (ArchitectureSpec::anchor): the input tiled over the 4
/// sub-pixels added to the last convolution before depth_to_space.
ArchitectureSpec anchored_upscaler(AnchorKind anchor, uint32_t side, uint32_t channels) {
  using K = LayerKind;
  ArchitectureSpec arch =
      architecture(fmt::format("anchored_{}", anchor_kind_name(anchor)), side, channels,
                   {layer(K::Conv, 8, 3, 1, 6, 0.0),
                    layer(K::Conv, 4 * channels, 3, 1, 4, 0.25, ActivationKind::None),
                    layer(K::DepthToSpace, 0, 2, 1, 8, 0)});
  arch.anchor = anchor;
  return arch;
}

std::vector<ArchitectureSpec> test_architectures() {
  using K = LayerKind;
  const auto none = ActivationKind::None, relu6 = ActivationKind::Relu6;
  return {
      // Plain CNN, max pool, fc on a spatial input (HWC flattening); 8, 4 and 2 bits.
      architecture(
          "plain", 15, 1,
          {layer(K::Conv, 8, 3, 1, 8, 0.0), layer(K::MaxPool, 0, 2, 2, 8, 0),
           layer(K::Conv, 12, 3, 2, 4, 0.5), layer(K::FullyConnected, 10, 1, 1, 2, 0.0, none)}),
      // MobileNetV2 blocks with residual adds, ReLU6, global average pool.
      architecture("mbv2", 12, 3,
                   {layer(K::Conv, 8, 3, 2, 8, 0.0, relu6),
                    layer(K::InvertedResidual, 8, 3, 1, 4, 0.75, relu6, 3),
                    layer(K::InvertedResidual, 16, 3, 2, 6, 0.5, relu6, 2),
                    layer(K::InvertedResidual, 16, 5, 1, 3, 0.0, ActivationKind::Relu, 2),
                    layer(K::GlobalAvgPool, 0, 1, 1, 8, 0),
                    layer(K::FullyConnected, 10, 1, 1, 8, 0.9, none)}),
      // Depthwise first, 1x1 conv, average pool, 5x5 windows, 2-bit fc.
      architecture("separable", 14, 3,
                   {layer(K::Depthwise, 0, 5, 1, 5, 0.0), layer(K::Conv, 24, 1, 1, 2, 0.3),
                    layer(K::AvgPool, 0, 3, 2, 8, 0), layer(K::Conv, 16, 3, 1, 7, 0.6),
                    layer(K::GlobalAvgPool, 0, 1, 1, 8, 0),
                    layer(K::FullyConnected, 10, 1, 1, 2, 0.0, none)}),
      // Sub-pixel output (ESPCN): depth-to-space by 2 of 4 channels; its 8x8 values serve as
      // the logits here.
      architecture("subpixel", 4, 1,
                   {layer(K::Conv, 8, 3, 1, 6, 0.0), layer(K::Conv, 4, 3, 1, 4, 0.25, none),
                    layer(K::DepthToSpace, 0, 2, 1, 8, 0)}),
      anchored_upscaler(AnchorKind::Nearest, 4, 1),
      anchored_upscaler(AnchorKind::Bicubic, 6, 1),
      // Wide 8-bit layers: 576 products per output (split float accumulation) and 9,216
      // (double accumulation).
      architecture("wide", 12, 1,
                   {layer(K::Conv, 64, 3, 1, 8, 0.0), layer(K::Conv, 64, 3, 1, 8, 0.2),
                    layer(K::FullyConnected, 10, 1, 1, 8, 0.0, none)}),
  };
}

torch::Tensor images_of(udc::data::Batch& batch) {
  return torch::from_blob(
      batch.images.data(),
      {int64_t(batch.size), int64_t(batch.channels), int64_t(batch.height), int64_t(batch.width)},
      torch::kFloat);
}

/// A few float steps, quantisation set-up, a few quantised steps with full sparsity.
void short_training(QNet& net, const udc::data::ImageDataset& set,
                    const udc::data::Normalization& normalization) {
  torch::optim::Adam optimizer(net.parameters(), torch::optim::AdamOptions(3e-3));
  udc::data::BatchLoader loader(set, normalization, {1, true}, {32, true, false, 5, 2});
  for (Mode mode : {Mode::Float, Mode::Quantized}) {
    if (mode == Mode::Quantized) {
      for (const auto& l : net.weighted()) l->update_mask(l->target_sparsity());
      prepare_quantization(net, set, normalization, 32, 5);
    }
    net.train();
    loader.start_epoch(mode == Mode::Float ? 0 : 1);
    udc::data::Batch batch;
    for (int step = 0; step < 4 && loader.next(batch); ++step) {
      const QTensor logits = net.forward(images_of(batch), {mode, true, 0.9});
      const torch::Tensor loss = torch::cross_entropy_loss(
          logits.x, torch::from_blob(batch.labels.data(), {int64_t(batch.size)}, torch::kLong));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
  }
}

std::vector<int8_t> model_input(const udc::data::ImageDataset& set, size_t index) {
  std::vector<int8_t> input(set.image_bytes());
  for (size_t k = 0; k < input.size(); ++k)
    input[k] = udc::data::quantize_pixel(set.image(index)[k]);
  return input;
}

}  // namespace

TEST(Export, IntegerModelEqualsLibTorchOnInterpreterAndSimulator) {
  torch::set_num_threads(2);
  const udc::data::Normalization normalization{0.4f, 0.3f};
  const udc::npu_sim::NpuConfig npu;  // Ethos-U55-128, deep embedded
  for (const ArchitectureSpec& arch : test_architectures()) {
    SCOPED_TRACE(arch.name);
    torch::manual_seed(11);
    const auto set = synthetic_set(arch.height, arch.channels, 96, 2);
    QNet net(arch, normalization);
    short_training(net, set, normalization);
    const fm::Model model = net.export_model();
    // Round trip through the file format, as a user would.
    const fs::path path =
        fs::temp_directory_path() / (arch.name + std::to_string(::getpid()) + ".udcm");
    fm::write_model(model, path.string());
    const fm::Model loaded = fm::read_model(path.string());
    fs::remove(path);
    const Evaluation eval = evaluate(net, set, normalization, Mode::Quantized, 32, set.size());
    ASSERT_EQ(eval.logits.size(), set.size());
    const fm::CompileResult compiled = fm::compile(loaded, npu);
    ASSERT_TRUE(compiled.fits());
    size_t distinct_outputs = 0;
    for (size_t i = 0; i < set.size(); ++i) {
      const std::vector<int8_t> input = model_input(set, i);
      const auto values = fm::run_reference(loaded, {input});
      const auto& reference = values[size_t(loaded.outputs[0])];
      ASSERT_EQ(reference, eval.logits[i]) << "image " << i;
      if (i < 24) {
        const fm::NpuRun run = fm::run_on_npu(loaded, compiled.compiled, npu, {input});
        ASSERT_EQ(run.job.error, "");
        ASSERT_EQ(run.outputs.at(0), reference) << "image " << i;
      }
      distinct_outputs += i > 0 && eval.logits[i] != eval.logits[i - 1];
    }
    // The check means something only if the outputs vary with the input.
    EXPECT_GT(distinct_outputs, set.size() / 2);
    // Weights: b-bit range and at least the target sparsity, exact zeros.
    size_t weighted = 0;
    for (const fm::Operation& op : loaded.operations) {
      if (op.weights.empty()) continue;
      if (op.name == "anchor") {
        // Fixed, not trained; nearest: a copy of input channel k % C into channel k.
        if (arch.anchor != AnchorKind::Nearest) continue;
        for (size_t k = 0; k < op.weights.size(); ++k) {
          ASSERT_EQ(int(op.weights[k]), k / arch.channels % arch.channels == k % arch.channels)
              << k;
        }
        continue;
      }
      const auto& layer = net.weighted()[weighted++];
      const int limit = weight_limit(layer->bits());
      EXPECT_EQ(op.weight_bits, layer->bits());
      for (int8_t w : op.weights) ASSERT_LE(std::abs(int(w)), limit) << op.name;
      // Pruned per output channel: round(sparsity * weights per channel) in each.
      const uint64_t zeros = op.weights.size() - op.nonzero_weights();
      const size_t per_channel = op.weights.size() / layer->out_channels();
      const uint64_t pruned_per_channel =
          uint64_t(std::llround(layer->target_sparsity() * double(per_channel)));
      EXPECT_GE(zeros, pruned_per_channel * layer->out_channels()) << op.name;
    }
    EXPECT_EQ(weighted, net.weighted().size());
  }
}

TEST(BudgetGuard, StepSizesRunFromOneZeroToEveryWeightButOne) {
  EXPECT_TRUE(guard_step_sizes(0).empty());
  EXPECT_EQ(guard_step_sizes(1), std::vector<int64_t>({1}));
  for (int64_t available : {2, 5, 8, 143, 575}) {
    const std::vector<int64_t> sizes = guard_step_sizes(available);
    EXPECT_EQ(sizes.front(), 1);
    EXPECT_EQ(sizes.back(), available);
    for (size_t i = 1; i < sizes.size(); ++i) {
      EXPECT_GT(sizes[i], sizes[i - 1]);
      EXPECT_LE(sizes[i], sizes[i - 1] * 3 / 2 + 1) << "a gap the guard would not try";
    }
  }
}

TEST(BudgetGuard, TakesBytesWhereTheyCostLeastEvenIfManyZerosAreNeeded) {
  // A dense int8 network over its weight budget whose wide layer saves bytes cheaply, but
  // only past 40 zeros a channel: its 40 smallest weights a channel already round to integer
  // zero (pruning them saves nothing), its next 40 are small, the rest, and every weight of
  // the stem and the classifier, large. The guard must prune the wide layer and leave the
  // stem and the classifier whole. (A guard that tried at most 8 zeros a step found no saving
  // in a trained baseline's wide layers and stripped its classifier to 96 %: 89 % -> 60 %.)
  torch::manual_seed(3);
  const udc::data::Normalization normalization{0.4f, 0.3f};
  const ArchitectureSpec arch = architecture(
      "guard", 12, 1,
      {layer(LayerKind::Conv, 16, 3, 2, 8, 0.0), layer(LayerKind::Conv, 32, 3, 2, 8, 0.0),
       layer(LayerKind::GlobalAvgPool, 0, 1, 1, 8, 0),
       layer(LayerKind::FullyConnected, 10, 1, 1, 8, 0.0, ActivationKind::None)});
  QNet net(arch, normalization);
  short_training(net, synthetic_set(12, 1, 64, 4), normalization);
  constexpr int64_t kZeroed = 40, kSmall = 40;
  {
    torch::NoGradGuard no_grad;
    for (const auto& l : net.weighted()) {
      torch::Tensor w = l->decayed_parameters().at(0);
      const torch::Tensor magnitude = torch::rand(w.sizes()) * 0.2 + 0.8;  // large
      w.copy_(magnitude * (torch::randint(0, 2, w.sizes()) * 2 - 1));
    }
    torch::Tensor wide = net.weighted()[1]->decayed_parameters().at(0).view({32, -1});
    wide.slice(1, 0, kZeroed).mul_(1e-4);
    wide.slice(1, kZeroed, kZeroed + kSmall).mul_(0.05);
    for (const auto& l : net.weighted()) l->initialize_step();
  }
  const udc::npu_sim::NpuConfig npu;
  const auto measure = [&] {
    return fm::measure_model(net.export_model(), npu, {/*simulate=*/false, /*compile=*/{}});
  };
  const fm::ModelMeasurement before = measure();
  const WeightBudgets budgets{before.weight_bytes - 64, 0, &npu};
  const BudgetGuard guard = hold_budgets(net, budgets);
  ASSERT_TRUE(guard.fits);
  EXPECT_LE(measure().weight_bytes, budgets.weight_bytes);
  EXPECT_EQ(guard.after.weight_bytes, measure().weight_bytes);
  EXPECT_GT(guard.pruned, 0u);
  EXPECT_EQ(net.weighted()[0]->mask().sum().item<int64_t>(), net.weighted()[0]->mask().numel())
      << "the stem gave weights";
  EXPECT_EQ(net.weighted()[2]->mask().sum().item<int64_t>(), net.weighted()[2]->mask().numel())
      << "the classifier gave weights";
  EXPECT_GT(net.weighted()[1]->target_sparsity(), double(kZeroed) / 144.0);
  // The step taken is the smallest sufficient one: it zeroed none of the large weights.
  EXPECT_LE(net.weighted()[1]->target_sparsity(), double(kZeroed + kSmall) / 144.0);
}

TEST(QWeighted, LeastErrorStepRoundsBetterThanLsqsAndIgnoresPrunedZeros) {
  // Worked by hand, 2 bits, channel [1, 0.5, -0.25, 0.1]: of the grid's steps 2^(-k/8)
  // (max|w| / Q = 1), k = 3 (0.77111) rounds to 1, 1, 0, 0 with the least squared error,
  // 0.19839 (k = 2: 0.2141, k = 4: 0.2012); LSQ's step 0.925 errs by 0.25875.
  const torch::Tensor kept = torch::tensor({1.0f, 0.5f, -0.25f, 0.1f});
  const torch::Tensor dense = torch::stack({kept, kept * 3});
  const torch::Tensor step = initial_weight_step(dense, 2, WeightStepRule::LeastError);
  EXPECT_NEAR(step[0].item<double>(), std::pow(2.0, -3.0 / 8), 1e-6);
  EXPECT_NEAR(step[1].item<double>(), 3 * std::pow(2.0, -3.0 / 8), 1e-5);
  const auto error = [](const torch::Tensor& w, WeightStepRule rule) {
    return (w - rounded_at_initial_step(w, 2, rule)).square().sum(1)[0].item<double>();
  };
  EXPECT_NEAR(error(dense, WeightStepRule::LeastError), 0.19839, 1e-5);
  EXPECT_NEAR(error(dense, WeightStepRule::Lsq), 0.25875, 1e-5);
  // Pruned zeros round exactly under any step: the least-error step stays that of the
  // kept weights, where LSQ's, a mean over the zeros too, halves.
  const torch::Tensor pruned =
      torch::stack({torch::tensor({1.0f, 0.0f, 0.5f, 0.0f, -0.25f, 0.0f, 0.1f, 0.0f})});
  EXPECT_NEAR(initial_weight_step(pruned, 2, WeightStepRule::LeastError)[0].item<double>(),
              step[0].item<double>(), 1e-6);
  EXPECT_NEAR(initial_weight_step(pruned, 2, WeightStepRule::Lsq)[0].item<double>(), 0.925 / 2,
              1e-6);
  // Gaussian channels, 90 % pruned, 4 bits: LSQ's step clips every kept weight at 7 steps;
  // the least-error step loses a small part of the energy LSQ's loses.
  torch::manual_seed(2);
  const torch::Tensor gaussian = torch::randn({16, 400});
  const torch::Tensor sparse = gaussian * magnitude_mask(gaussian, 0.9);
  const auto relative_error = [&](WeightStepRule rule) {
    return ((sparse - rounded_at_initial_step(sparse, 4, rule)).square().sum() /
            sparse.square().sum())
        .item<double>();
  };
  EXPECT_GT(relative_error(WeightStepRule::Lsq), 0.1);
  EXPECT_LT(relative_error(WeightStepRule::LeastError), 0.01);
  // 8 bits: max|w| / Q under both rules.
  EXPECT_TRUE(torch::equal(initial_weight_step(sparse, 8, WeightStepRule::LeastError),
                           initial_weight_step(sparse, 8, WeightStepRule::Lsq)));
}

TEST(BudgetGuard, RequantizationDamageIsTheRiseInRoundingErrorOverTheChannelsEnergy) {
  // Worked by hand. Channel [1, 0.5, -0.25, 0.1], energy 1.3225. 8 bits: step 1/127 (max /
  // 127), integers 127, 64, -32, 13 (63.5 rounds to even), error 2.4955e-5. 4 bits: step
  // 2 * mean|w| / sqrt(7) = 0.34962, integers 3, 1, -1, 0, error 0.044925. 2 bits: step
  // 2 * 0.4625 = 0.925, integers 1, 1, 0, 0, error 0.25875. The second channel is the first
  // doubled: the same fractions, so the mean over channels is the first channel's.
  const torch::Tensor channel = torch::tensor({1.0f, 0.5f, -0.25f, 0.1f});
  const torch::Tensor weights = torch::stack({channel, channel * 2});
  EXPECT_NEAR(requantization_damage(weights, 8, 4, WeightStepRule::Lsq),
              (0.044925 - 2.4955e-5) / 1.3225, 1e-5);
  EXPECT_NEAR(requantization_damage(weights, 8, 2, WeightStepRule::Lsq),
              (0.25875 - 2.4955e-5) / 1.3225, 1e-5);
  EXPECT_NEAR(requantization_damage(weights, 4, 2, WeightStepRule::Lsq),
              (0.25875 - 0.044925) / 1.3225, 1e-5);
  EXPECT_EQ(requantization_damage(weights, 4, 4, WeightStepRule::Lsq), 0.0);
}

TEST(BudgetGuard, LowersBitsWhereEveryWeightIsLargeAndPruningWouldCostMore) {
  // A dense int8 network whose weights are all large (0.8 to 1 in magnitude): a zero costs
  // 1/144 of a channel's energy and saves about a byte, a lower bitwidth costs a few percent
  // and saves a share of every byte. Held to 60 % of its bytes, the pruning-only guard must
  // prune; the guard that may lower bits fits by lowering them, pruning less, and the
  // network it leaves exports weights within its layers' new ranges.
  const udc::data::Normalization normalization{0.4f, 0.3f};
  const ArchitectureSpec arch = architecture(
      "bits", 12, 1,
      {layer(LayerKind::Conv, 16, 3, 2, 8, 0.0), layer(LayerKind::Conv, 32, 3, 2, 8, 0.0),
       layer(LayerKind::GlobalAvgPool, 0, 1, 1, 8, 0),
       layer(LayerKind::FullyConnected, 10, 1, 1, 8, 0.0, ActivationKind::None)});
  const auto make_net = [&] {
    torch::manual_seed(5);
    auto net = std::make_unique<QNet>(arch, normalization);
    short_training(*net, synthetic_set(12, 1, 64, 4), normalization);
    torch::NoGradGuard no_grad;
    for (const auto& l : net->weighted()) {
      torch::Tensor w = l->decayed_parameters().at(0);
      const torch::Tensor magnitude = torch::rand(w.sizes()) * 0.2 + 0.8;
      w.copy_(magnitude * (torch::randint(0, 2, w.sizes()) * 2 - 1));
      l->initialize_step();
    }
    return net;
  };
  const udc::npu_sim::NpuConfig npu;
  const auto measure = [&](QNet& net) {
    return fm::measure_model(net.export_model(), npu, {/*simulate=*/false, /*compile=*/{}});
  };
  std::unique_ptr<QNet> pruned_only = make_net(), lowered = make_net();
  const uint64_t dense_bytes = measure(*pruned_only).weight_bytes;
  ASSERT_EQ(measure(*lowered).weight_bytes, dense_bytes);
  const WeightBudgets budgets{dense_bytes * 6 / 10, 0, &npu};

  const BudgetGuard by_pruning = hold_budgets(*pruned_only, budgets);
  ASSERT_TRUE(by_pruning.fits);
  EXPECT_EQ(by_pruning.bits_lowered, 0u);
  for (const auto& l : pruned_only->weighted()) EXPECT_EQ(l->bits(), 8u);

  const BudgetGuard by_bits = hold_budgets(*lowered, budgets, /*lower_bits=*/{2, 4});
  ASSERT_TRUE(by_bits.fits);
  EXPECT_GT(by_bits.bits_lowered, 0u);
  EXPECT_LT(by_bits.pruned, by_pruning.pruned);
  const fm::Model model = lowered->export_model();
  EXPECT_LE(fm::measure_model(model, npu, {false, {}}).weight_bytes, budgets.weight_bytes);
  bool any_lower = false;
  for (const fm::Operation& layer : model.operations) {
    if (layer.weights.empty()) continue;
    any_lower = any_lower || layer.weight_bits < 8;
    const int limit = (1 << (layer.weight_bits - 1)) - 1;
    int largest = 0;
    size_t nonzero = 0, at_limit = 0;
    for (const int8_t w : layer.weights) {
      largest = std::max(largest, std::abs(int(w)));
      nonzero += w != 0;
      at_limit += std::abs(int(w)) == limit;
    }
    EXPECT_LE(largest, limit) << layer.name;
    EXPECT_GT(nonzero, 0u) << layer.name;
    // The step started afresh for the new width: with the int8 step kept, weights of 0.8 to
    // 1 (integers 100 to 127) would all clamp to the new limit.
    if (limit > 1) {
      EXPECT_LT(at_limit, nonzero) << layer.name;
    }
  }
  EXPECT_TRUE(any_lower);
}

TEST(Recalibration, NewBatchNormStatisticsKeepTheIntegerWeights) {
  // After masks move, batch norm is re-estimated for the pruned layers; the folding changes,
  // and the steps follow it, so the integers the network would export stay the same.
  torch::manual_seed(5);
  const udc::data::Normalization normalization{0.4f, 0.3f};
  const ArchitectureSpec arch = architecture(
      "recal", 12, 1,
      {layer(LayerKind::Conv, 8, 3, 1, 4, 0.0), layer(LayerKind::Conv, 16, 3, 2, 8, 0.0),
       layer(LayerKind::GlobalAvgPool, 0, 1, 1, 8, 0),
       layer(LayerKind::FullyConnected, 10, 1, 1, 8, 0.0, ActivationKind::None)});
  QNet net(arch, normalization);
  const auto set = synthetic_set(12, 1, 64, 6);
  short_training(net, set, normalization);
  // The mask of the middle layer moves to 90 % after the statistics were taken.
  net.weighted()[1]->update_mask(0.9);
  auto integers = [&] {
    std::vector<torch::Tensor> all;
    for (const auto& l : net.weighted()) all.push_back(l->integers(ActQuant{}).weights.clone());
    return all;
  };
  const std::vector<torch::Tensor> before = integers();
  const torch::Tensor scale_before = net.weighted()[1]->fold_scale().clone();
  recalibrate_batch_norm(net, set, normalization, 32, 7, 2, Mode::MaskedFloat);
  const std::vector<torch::Tensor> after = integers();
  // The statistics did change: the pruned layer's output variance fell, its scale rose.
  EXPECT_TRUE(torch::all(net.weighted()[1]->fold_scale().abs() > scale_before.abs()).item<bool>())
      << "a layer that lost 90 % of its weights has a smaller output variance";
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i], after[i])) << net.weighted()[i]->layer_name();
  }
}

TEST(Anchor, AZeroResidualGivesTheAnchorsUpscale) {
  // A zero residual leaves only the anchor: the nearest-neighbour upscale
  // (exact up to the output's requantisation), or data::resize_bicubic's (stb's
  // Catmull-Rom) away from the borders, where it clamps and the convolution pads.
  const udc::data::Normalization normalization{0.4f, 0.3f};
  for (const AnchorKind kind : {AnchorKind::Nearest, AnchorKind::Bicubic}) {
    SCOPED_TRACE(anchor_kind_name(kind));
    const ArchitectureSpec arch = anchored_upscaler(kind, 8, 2);  // k reads input channel k % 2
    const uint32_t side = arch.height, c = arch.channels, out_side = 2 * side;
    const auto set = synthetic_set(side, c, 24, 3);
    // A new anchored network's upscaler weights are 0 (its batch norm's shift too).
    QNet net(arch, normalization);
    prepare_quantization(net, set, normalization, 8, 3);
    const fm::Model model = net.export_model();
    const Evaluation eval = evaluate(net, set, normalization, Mode::Quantized, 8, set.size());
    const fm::TensorInfo& output = model.tensors[size_t(model.outputs[0])];
    ASSERT_EQ(output.shape, (fm::Shape{out_side, out_side, c}));
    // Bicubic: within 2 input pixels of a border the clamp and the padding differ.
    const uint32_t margin = kind == AnchorKind::Bicubic ? 4 : 0;
    const double tolerance = kind == AnchorKind::Bicubic ? 2.5 * output.scale : output.scale;
    for (size_t i = 0; i < set.size(); ++i) {
      const auto values = fm::run_reference(model, {model_input(set, i)});
      const auto& up = values[size_t(model.outputs[0])];  // HWC
      const udc::data::Image low{side, side, c, {set.image(i), set.image(i) + set.image_bytes()}};
      const udc::data::Image bicubic = udc::data::resize_bicubic(low, out_side, out_side);
      for (uint32_t y = 0; y < out_side; ++y) {
        for (uint32_t x = 0; x < out_side; ++x) {
          for (uint32_t ch = 0; ch < c; ++ch) {
            const int8_t q = up[(size_t{y} * out_side + x) * c + ch];
            // LibTorch's integers (CHW) are the interpreter's, as for every network.
            ASSERT_EQ(q, eval.logits[i][(size_t{ch} * out_side + y) * out_side + x]) << i;
            if (y < margin || x < margin || y >= out_side - margin || x >= out_side - margin) {
              continue;
            }
            const uint8_t pixel = kind == AnchorKind::Nearest
                                      ? set.image(i)[(size_t{y / 2} * side + x / 2) * c + ch]
                                      : bicubic.pixels[(size_t{y} * out_side + x) * c + ch];
            const double out = double(output.scale) * (q - output.zero_point);
            ASSERT_NEAR(out, normalization.normalize(pixel), tolerance)
                << "image " << i << " pixel " << y << "," << x << "," << ch;
          }
        }
      }
    }
  }
}

TEST(QuantizedForward, GradientsReachWeightsAndStepsThroughIntegerValues) {
  torch::manual_seed(4);
  const udc::data::Normalization normalization{0.5f, 0.5f};
  const ArchitectureSpec arch = test_architectures()[1];
  const auto set = synthetic_set(arch.height, arch.channels, 64, 9);
  QNet net(arch, normalization);
  prepare_quantization(net, set, normalization, 32, 1);
  udc::data::BatchLoader loader(set, normalization, {}, {32, false, false, 1, 1});
  loader.start_epoch(0);
  udc::data::Batch batch;
  ASSERT_TRUE(loader.next(batch));
  net.train();
  const QTensor logits = net.forward(images_of(batch), {Mode::Quantized, false, 0.9});
  // Values on the integer grid of the output quantisation.
  const torch::Tensor q = logits.x / logits.quant.scale + logits.quant.zero_point;
  EXPECT_LT((q - q.round()).abs().max().item<float>(), 1e-3f);
  torch::cross_entropy_loss(logits.x, torch::from_blob(batch.labels.data(), {32}, torch::kLong))
      .backward();
  for (const auto& item : net.named_parameters()) {
    if (item.key().find("batch_norm") != std::string::npos) continue;
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
}

namespace {

/// A tiny configuration on a subset of the real Fashion-MNIST.
TrainConfig tiny_config(uint32_t finetune_epochs) {
  TrainConfig config;
  config.file = "tiny";
  config.architecture = architecture(
      "tiny", 28, 1,
      {layer(LayerKind::Conv, 8, 3, 2, 4, 0.5), layer(LayerKind::Conv, 16, 3, 2, 8, 0.8),
       layer(LayerKind::GlobalAvgPool, 0, 1, 1, 8, 0),
       layer(LayerKind::FullyConnected, 10, 1, 1, 4, 0.0, ActivationKind::None)});
  config.data.train_subset = 512;
  config.data.test_subset = 200;
  config.data.augmentation = {2, true};
  config.train.batch_size = 64;
  config.train.warmup = {1, 3e-3};
  config.train.compress = {1, 1e-3};
  config.train.finetune = {finetune_epochs, 3e-4};
  config.train.max_steps_per_epoch = 4;
  config.train.prune_interval = 2;
  config.npu.files = {std::string(UDC_CONFIG_DIR) + "/npu/u55-128-deep-embedded.yaml"};
  config.verify_images = 20;
  return config;
}

/// tiny_config's network in int8, dense: the sequential control's starting point.
TrainConfig dense_int8_tiny_config(uint32_t finetune_epochs) {
  TrainConfig config = tiny_config(finetune_epochs);
  for (LayerSpec& l : config.architecture.layers) {
    l.sparsity = 0;
    if (l.kind != LayerKind::GlobalAvgPool) l.weight_bits = 8;
  }
  return config;
}

}  // namespace

TEST(Trainer, SeedsRunInTheirOwnFoldersAndSummarise) {
  const fs::path root = fs::temp_directory_path() / ("udc_seeds_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions options;
  options.output_dir = root.string();
  const TrainConfig config = tiny_config(1);
  const SeedsResult result = train_seeds(config, configured_npu(config), options, {3, 4});
  ASSERT_EQ(result.runs.size(), 2u);
  std::vector<double> accuracies;
  for (const SeedRun& run : result.runs) {
    EXPECT_EQ(run.output_dir, (root / ("seed-" + std::to_string(run.seed))).string());
    // Each run is an ordinary training with that seed: its own report says the same.
    const auto report =
        nlohmann::json::parse(udc::common::read_file(run.output_dir + "/report.json"));
    EXPECT_EQ(report["test_accuracy"].get<double>(), run.test_score);
    ASSERT_TRUE(run.hardware.has_value());
    EXPECT_EQ(report["hardware"]["weight_bytes"].get<uint64_t>(), run.hardware->weight_bytes);
    accuracies.push_back(100 * run.test_score);
  }
  EXPECT_NE(udc::common::read_file(result.runs[0].output_dir + "/model.udcm"),
            udc::common::read_file(result.runs[1].output_dir + "/model.udcm"));
  const auto summary = nlohmann::json::parse(udc::common::read_file(result.summary_path));
  const auto& accuracy = summary["summary"]["test_accuracy"];
  EXPECT_DOUBLE_EQ(accuracy["mean"].get<double>(), (accuracies[0] + accuracies[1]) / 2);
  EXPECT_NEAR(accuracy["std"].get<double>(),
              std::abs(accuracies[0] - accuracies[1]) / std::sqrt(2.0), 1e-9);
  EXPECT_EQ(summary["runs"].size(), 2u);
  EXPECT_NE(format_seeds_table(result).find("± std"), std::string::npos);

  // A later invocation into the same folder adds its seed to the summary (stops lose no
  // finished seed); the table and seeds.json hold all three, in seed order.
  const SeedsResult later = train_seeds(config, configured_npu(config), options, {2});
  ASSERT_EQ(later.runs.size(), 3u);
  EXPECT_EQ(later.runs[0].seed, 2u);
  EXPECT_EQ(later.runs[1].seed, 3u);
  EXPECT_EQ(later.runs[2].seed, 4u);
  EXPECT_NEAR(later.runs[1].test_score, result.runs[0].test_score, 1e-12);
  ASSERT_TRUE(later.runs[2].hardware.has_value());
  EXPECT_EQ(later.runs[2].hardware->weight_bytes, result.runs[1].hardware->weight_bytes);
  // The latency too: a comparison of ways reads it back for seeds finished earlier.
  ASSERT_TRUE(measured_milliseconds(result.runs[1]).has_value());
  EXPECT_GT(*measured_milliseconds(result.runs[1]), 0.0);
  EXPECT_EQ(measured_milliseconds(later.runs[2]), measured_milliseconds(result.runs[1]));
  accuracies.push_back(100 * later.runs[0].test_score);
  const auto merged = nlohmann::json::parse(udc::common::read_file(later.summary_path));
  EXPECT_EQ(merged["runs"].size(), 3u);
  EXPECT_NEAR(merged["summary"]["test_accuracy"]["mean"].get<double>(),
              (accuracies[0] + accuracies[1] + accuracies[2]) / 3, 1e-9);
  EXPECT_EQ(merged["summary"]["weight_bytes"]["n"].get<size_t>(), 3u);

  // A finished seed run again resumes at its end: its wall time is the first run's plus
  // this moment, not the moment alone (a resumed run counts every part it took).
  const double first_seconds = later.runs[1].seconds;
  ASSERT_GT(first_seconds, 0.0);
  const SeedsResult again = train_seeds(config, configured_npu(config), options, {3});
  ASSERT_EQ(again.runs.size(), 3u);
  EXPECT_EQ(again.runs[1].seed, 3u);
  EXPECT_NEAR(again.runs[1].test_score, result.runs[0].test_score, 1e-12);
  EXPECT_GE(again.runs[1].seconds, first_seconds);
  const std::vector<uint8_t> record =
      udc::common::read_file(again.runs[1].output_dir + "/wall_seconds");
  EXPECT_NEAR(std::stod(std::string(record.begin(), record.end())), again.runs[1].seconds, 0.5);
  nlohmann::json merged_other = merged;

  // A summary that is not one, or is another config's, is named and left alone.
  udc::common::write_file_atomically(later.summary_path, std::string("{\"runs\": 3}"));
  try {
    train_seeds(config, configured_npu(config), options, {2});
    ADD_FAILURE() << "a corrupt seeds.json was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(later.summary_path), std::string::npos) << e.what();
  }
  merged_other["config"] = "configs/search/another.yaml";
  udc::common::write_file_atomically(later.summary_path, merged_other.dump());
  try {
    train_seeds(config, configured_npu(config), options, {2});
    ADD_FAILURE() << "another config's seeds.json was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another.yaml"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Trainer, TrainsExportsVerifiesAndResumesIdentically) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_train_" + std::to_string(::getpid()));
  fs::remove_all(root);
  // Uninterrupted: 3 epochs.
  TrainOptions options;
  options.output_dir = (root / "full").string();
  const TrainResult full = train(tiny_config(1), configured_npu(tiny_config(1)), options);
  EXPECT_EQ(full.verified_images, 20u);
  EXPECT_EQ(full.history.size(), 3u);
  EXPECT_FALSE(full.resumed);
  const auto report = nlohmann::json::parse(udc::common::read_file(full.report_path));
  EXPECT_EQ(report["test_accuracy"].get<double>(), full.test_score);
  EXPECT_GT(report["hardware"]["cycles"].get<double>(), 0.0);
  EXPECT_GT(report["hardware"]["sram_peak_bytes"].get<uint64_t>(), 28u * 28u);
  ASSERT_TRUE(full.hardware.has_value());
  EXPECT_EQ(report["hardware"]["weight_bytes"].get<uint64_t>(), full.hardware->weight_bytes);
  EXPECT_EQ(report["hardware"]["flash_bytes"].get<uint64_t>(), full.hardware->flash_bytes);
  // The bytes reported are the compiler's, measured again here on the written model.
  const fm::Model model = fm::read_model(full.model_path);
  expect_tflite_round_trip(full);
  const fm::CompileResult compiled =
      fm::compile(model, udc::npu_sim::load_npu_config(tiny_config(1).npu));
  ASSERT_TRUE(compiled.fits());
  uint64_t streams = 0;
  for (const fm::LayerCommands& layer : compiled.compiled.layers)
    streams += layer.weight_stream_bytes;
  EXPECT_EQ(streams, full.hardware->weight_bytes);
  EXPECT_EQ(compiled.compiled.plan.flash_bytes, full.hardware->flash_bytes);
  EXPECT_GT(full.hardware->flash_bytes, full.hardware->weight_bytes);

  // Interrupted after 2 epochs (a run that stops there), then resumed to 3.
  options.output_dir = (root / "resumed").string();
  train(tiny_config(0), configured_npu(tiny_config(0)), options);
  const TrainResult resumed = train(tiny_config(1), configured_npu(tiny_config(1)), options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.first_epoch, 2u);
  EXPECT_EQ(udc::common::read_file(resumed.model_path), udc::common::read_file(full.model_path));
  EXPECT_EQ(resumed.test_score, full.test_score);
  fs::remove_all(root);
}

TEST(Trainer, FlashBudgetHoldsAfterEveryEpochAndSurvivesResume) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_flash_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions options;
  options.output_dir = (root / "free").string();
  const TrainResult free_run = train(tiny_config(1), configured_npu(tiny_config(1)), options);
  ASSERT_TRUE(free_run.hardware.has_value());
  const uint64_t budget = free_run.hardware->flash_bytes * 9 / 10;

  TrainConfig bounded = tiny_config(1);
  bounded.train.flash_budget_bytes = budget;
  options.output_dir = (root / "bounded").string();
  std::ostringstream log;
  options.log = &log;
  const TrainResult held = train(bounded, configured_npu(bounded), options);
  options.log = nullptr;
  // Over the budget at its targets when the compress phase begins: the targets are raised
  // then, before the ramp, so that the ramp prunes towards the budget (the guard still holds
  // it where the masks reach their targets, mid-epoch, and at the epoch's end).
  EXPECT_NE(log.str().find(fmt::format(
                " of {} B at the targets; targets raised before the compress ramp", budget)),
            std::string::npos)
      << log.str();
  // The exported model, compiled independently of the trainer's bookkeeping, fits.
  const fm::Model model = fm::read_model(held.model_path);
  expect_tflite_round_trip(held);
  const fm::CompileResult compiled = fm::compile(model, udc::npu_sim::load_npu_config(bounded.npu));
  ASSERT_TRUE(compiled.fits());
  EXPECT_LE(compiled.compiled.plan.flash_bytes, budget);
  ASSERT_TRUE(held.hardware.has_value());
  EXPECT_EQ(held.hardware->flash_bytes, compiled.compiled.plan.flash_bytes);
  EXPECT_TRUE(held.within_budgets);
  for (const EpochRecord& r : held.history) {
    if (r.phase != "warmup") {
      EXPECT_LE(r.flash_bytes, budget) << "epoch " << r.epoch;
    }
  }
  // It fits by pruning more, not by luck: fewer non-zero weights than the free run.
  EXPECT_LT(fm::summarize(model).nonzero,
            fm::summarize(fm::read_model(free_run.model_path)).nonzero);

  // Stopped after the compress epoch and resumed: the raised sparsities come back with the
  // checkpoint, so the model is the one trained without a stop.
  TrainConfig stopped = tiny_config(0);
  stopped.train.flash_budget_bytes = budget;
  options.output_dir = (root / "resumed").string();
  train(stopped, configured_npu(stopped), options);
  const TrainResult resumed = train(bounded, configured_npu(bounded), options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(udc::common::read_file(resumed.model_path), udc::common::read_file(held.model_path));
  fs::remove_all(root);
}

TEST(Trainer, RecalibratedBatchNormTrainsAVerifiedModel) {
  // train.recalibration_batches: new statistics whenever the compress phase's masks move; the
  // model differs from one trained without, and its export is still bit-exact on the
  // interpreter and the simulator (train() checks that on 20 test images).
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_recal_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions options;
  options.output_dir = (root / "frozen").string();
  const TrainResult frozen = train(tiny_config(1), configured_npu(tiny_config(1)), options);
  TrainConfig config = tiny_config(1);
  config.train.recalibration_batches = 2;
  options.output_dir = (root / "recalibrated").string();
  const TrainResult recalibrated = train(config, configured_npu(config), options);
  EXPECT_EQ(recalibrated.verified_images, 20u);
  EXPECT_NE(udc::common::read_file(recalibrated.model_path),
            udc::common::read_file(frozen.model_path));
  fs::remove_all(root);
}

TEST(Trainer, ADenseNetworkFarOverItsBudgetIsPrunedAlongTheRampNotAtItsEnd) {
  // The sequential control's case: a network trained dense, three times over its weight
  // budget. Its targets are raised when the compress phase begins, so the ramp takes the
  // excess gradually and the guard, where the masks reach their targets, finds (almost)
  // nothing left to prune; before, it pruned the whole excess there in one step.
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_ramp_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const TrainConfig dense = dense_int8_tiny_config(1);
  TrainOptions options;
  options.output_dir = (root / "free").string();
  const TrainResult free_run = train(dense, configured_npu(dense), options);
  ASSERT_TRUE(free_run.hardware.has_value());
  const uint64_t budget = free_run.hardware->weight_bytes / 3;

  TrainConfig bounded = dense;
  bounded.train.weight_budget_bytes = budget;
  options.output_dir = (root / "bounded").string();
  std::ostringstream log;
  options.log = &log;
  const TrainResult held = train(bounded, configured_npu(bounded), options);
  const std::string text = log.str();
  const std::string planned_mark = "targets raised before the compress ramp (";
  const size_t planned_at = text.find(planned_mark);
  ASSERT_NE(planned_at, std::string::npos) << text;
  const uint64_t planned = std::stoull(text.substr(planned_at + planned_mark.size()));
  EXPECT_GT(planned, 0u);
  // What the guard pruned afterwards, over every check: a small fraction of the plan.
  uint64_t guarded = 0;
  const std::string guard_mark = " more weights pruned";
  for (size_t at = text.find(guard_mark); at != std::string::npos;
       at = text.find(guard_mark, at + 1)) {
    const size_t number = text.rfind("; ", at) + 2;
    guarded += std::stoull(text.substr(number, at - number));
  }
  EXPECT_LT(guarded * 4, planned) << text;
  // The exported model, measured apart from the trainer's bookkeeping, fits.
  EXPECT_LE(
      fm::measure_model(fm::read_model(held.model_path), udc::npu_sim::load_npu_config(bounded.npu),
                        {/*simulate=*/false, /*compile=*/{}})
          .weight_bytes,
      budget);
  EXPECT_TRUE(held.within_budgets);
  fs::remove_all(root);
}

TEST(Trainer, ADenseNetworkOverItsBudgetMayFitByLowerBitsAndResumesWithThem) {
  // The sequential control with bits: int8 dense, a third of its bytes, bitwidths down to
  // 4 allowed. The exported model fits with some layer below 8 bits and is verified on the
  // interpreter and the simulator; a run stopped after the compress phase resumes with the
  // lowered bits (a checkpoint that forgot them would fine-tune at 8 bits: another model).
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_bits_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions options;
  options.output_dir = (root / "free").string();
  const TrainResult free_run =
      train(dense_int8_tiny_config(1), configured_npu(dense_int8_tiny_config(1)), options);
  ASSERT_TRUE(free_run.hardware.has_value());
  const auto bounded = [&](uint32_t finetune_epochs) {
    TrainConfig config = dense_int8_tiny_config(finetune_epochs);
    config.train.weight_budget_bytes = free_run.hardware->weight_bytes / 3;
    config.train.budget_bits = {4, 8};
    return config;
  };
  std::ostringstream log;
  options.log = &log;
  options.output_dir = (root / "full").string();
  const TrainResult full = train(bounded(1), configured_npu(bounded(1)), options);
  EXPECT_NE(log.str().find("bits lowered: "), std::string::npos) << log.str();
  EXPECT_TRUE(full.within_budgets);
  EXPECT_EQ(full.verified_images, 20u);
  const fm::Model model = fm::read_model(full.model_path);
  uint32_t lowest = 8;
  for (const fm::Operation& layer : model.operations) {
    if (!layer.weights.empty()) lowest = std::min(lowest, layer.weight_bits);
  }
  EXPECT_LT(lowest, 8u);
  EXPECT_GE(lowest, 4u);
  EXPECT_LE(fm::measure_model(model, udc::npu_sim::load_npu_config(bounded(1).npu),
                              {/*simulate=*/false, /*compile=*/{}})
                .weight_bytes,
            bounded(1).train.weight_budget_bytes);

  options.log = nullptr;
  options.output_dir = (root / "resumed").string();
  train(bounded(0), configured_npu(bounded(0)), options);
  const TrainResult resumed = train(bounded(1), configured_npu(bounded(1)), options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(udc::common::read_file(resumed.model_path), udc::common::read_file(full.model_path));
  fs::remove_all(root);
}

TEST(Trainer, ABudgetThatCannotBeMetLeavesNoModelUdcm) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root =
      fs::temp_directory_path() / ("udc_overbudget_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  // A stale model.udcm from an earlier run in the same folder must not survive either.
  std::ofstream(root / "model.udcm") << "stale";
  // Every channel keeps one weight and its scale record: 64 bytes of image cannot hold it.
  TrainConfig config = tiny_config(0);
  config.train.flash_budget_bytes = 64;
  config.train.weight_budget_bytes = 100000;
  TrainOptions options;
  options.output_dir = root.string();
  const TrainResult result = train(config, configured_npu(config), options);
  EXPECT_FALSE(result.within_budgets);
  ASSERT_EQ(result.budget_violations.size(), 1u);
  EXPECT_NE(result.budget_violations[0].find("flash_bytes"), std::string::npos);
  EXPECT_NE(result.budget_violations[0].find("budget 64 B"), std::string::npos);
  EXPECT_FALSE(fs::exists(root / "model.udcm"));
  EXPECT_EQ(result.model_path, (root / "model.over-budget.udcm").string());
  const fm::Model model = fm::read_model(result.model_path);
  expect_tflite_round_trip(result);
  EXPECT_EQ(fm::measure_model(model, udc::npu_sim::load_npu_config(config.npu),
                              {/*simulate=*/false, /*compile=*/{}})
                .flash_bytes,
            result.hardware.value().flash_bytes);
  const auto report = nlohmann::json::parse(udc::common::read_file(result.report_path));
  EXPECT_FALSE(report["budgets"]["within"].get<bool>());
  fs::remove_all(root);
}

TEST(Distillation, LossMixesCrossEntropyWithTorchsKlDivergence) {
  torch::manual_seed(3);
  const torch::Tensor student = torch::randn({16, 10}, torch::kDouble).requires_grad_(true);
  const torch::Tensor teacher = 3 * torch::randn({16, 10}, torch::kDouble);
  const torch::Tensor labels = torch::randint(0, 10, {16}, torch::kLong);
  const torch::Tensor hard = torch::nll_loss(torch::log_softmax(student, 1), labels);
  // Without a teacher, or at weight 0: the cross-entropy alone.
  EXPECT_TRUE(torch::allclose(training_loss(student, labels, {}, {0.5, 4.0}), hard));
  EXPECT_TRUE(torch::allclose(training_loss(student, labels, teacher, {0.0, 4.0}), hard));
  // Weight 0.3, temperature 4: Torch's own KL divergence (summed, per sample) scaled by t^2.
  const double t = 4.0;
  const torch::Tensor kl =
      torch::kl_div(torch::log_softmax(student / t, 1), torch::log_softmax(teacher / t, 1),
                    at::Reduction::Sum, /*log_target=*/true) /
      16.0;
  EXPECT_TRUE(torch::allclose(training_loss(student, labels, teacher, {0.3, t}),
                              0.7 * hard + 0.3 * t * t * kl));
  // At weight 1 the gradient is the classic t * (softmax(s/t) - softmax(t_logits/t)) / N,
  // and it vanishes when the student matches the teacher.
  training_loss(student, labels, teacher, {1.0, t}).backward();
  const torch::Tensor expected =
      t * (torch::softmax(student.detach() / t, 1) - torch::softmax(teacher / t, 1)) / 16.0;
  EXPECT_TRUE(torch::allclose(student.grad(), expected, 1e-9, 1e-12));
  EXPECT_NEAR(training_loss(teacher.clone(), labels, teacher, {1.0, t}).item<double>(), 0.0, 1e-12);
}

TEST(Trainer, DistillsFromTheWarmupNetworkAndResumesWithIt) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_distil_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions options;
  options.output_dir = (root / "plain").string();
  const TrainResult plain = train(tiny_config(1), configured_npu(tiny_config(1)), options);

  TrainConfig distilled = tiny_config(1);
  distilled.train.distillation = {0.7, 2.0};
  options.output_dir = (root / "full").string();
  const TrainResult full = train(distilled, configured_npu(distilled), options);
  // The float warm-up does not distil: same epoch as without; the quantised ones differ.
  EXPECT_EQ(full.history.at(0).loss, plain.history.at(0).loss);
  EXPECT_NE(full.history.at(1).loss, plain.history.at(1).loss);
  EXPECT_NE(udc::common::read_file(full.model_path), udc::common::read_file(plain.model_path));

  // Stopped after the compress epoch and resumed: the teacher, taken at the end of the
  // warm-up, comes back with the checkpoint (the network has moved on since), so the model
  // is the one trained without a stop.
  TrainConfig stopped = distilled;
  stopped.train.finetune.epochs = 0;
  options.output_dir = (root / "resumed").string();
  train(stopped, configured_npu(stopped), options);
  const TrainResult resumed = train(distilled, configured_npu(distilled), options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.first_epoch, 2u);
  EXPECT_EQ(udc::common::read_file(resumed.model_path), udc::common::read_file(full.model_path));

  // Started over from the checkpoint kept at the end of the float warm-up: the same model.
  options.output_dir = (root / "from_warmup").string();
  fs::create_directories(options.output_dir);
  fs::copy_file(root / "full" / "warmup-checkpoint.pt", root / "from_warmup" / "checkpoint.pt");
  const TrainResult from_warmup = train(distilled, configured_npu(distilled), options);
  EXPECT_TRUE(from_warmup.resumed);
  EXPECT_EQ(from_warmup.first_epoch, 1u);
  EXPECT_EQ(udc::common::read_file(from_warmup.model_path),
            udc::common::read_file(full.model_path));
  fs::remove_all(root);
}

// With an NPU, so that the error is thrown after the simulator has run (verification of the
// first run): under the sanitizers that once misreported the throw as a stack overflow
// (npu_sim/src/sanitizer_fibers.cpp).
TEST(Trainer, DistillationSwitchedOnPastTheWarmupIsAnError) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_late_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainConfig stopped = tiny_config(0);
  TrainConfig distilled = tiny_config(1);
  distilled.train.distillation = {0.7, 2.0};
  TrainOptions options;
  options.output_dir = root.string();
  train(stopped, configured_npu(stopped), options);
  // The checkpoint, past the warm-up, holds no teacher: a clear error, not a teacher made
  // of the quantised network.
  try {
    train(distilled, configured_npu(distilled), options);
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("holds no teacher"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Trainer, ExportsTheEpochBestOnHeldOutImagesAndResumesIt) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const fs::path root = fs::temp_directory_path() / ("udc_holdout_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainConfig config = tiny_config(3);
  config.train.holdout_fraction = 0.25;  // 128 of the 512 training images
  // A fine-tune rate high enough that its epochs differ, so that the choice matters.
  config.train.finetune.learning_rate = 1e-1;
  TrainOptions options;
  options.output_dir = (root / "full").string();
  const TrainResult full = train(config, configured_npu(config), options);
  ASSERT_EQ(full.history.size(), 5u);
  EXPECT_EQ(full.holdout_images, 128u);

  // Candidates are the quantised epochs with masks at their targets (here the compress
  // epoch, whose ramp ends with it, and the fine-tune epochs); the float warm-up is not.
  int64_t expected = -1;
  double best = -1;
  for (const EpochRecord& r : full.history) {
    if (r.phase == "warmup") {
      EXPECT_LT(r.holdout_score, 0.0);
      continue;
    }
    EXPECT_GE(r.holdout_score, 0.0) << "epoch " << r.epoch;
    if (r.holdout_score >= best) {
      best = r.holdout_score;
      expected = r.epoch;
    }
  }
  EXPECT_EQ(full.selected_epoch, expected);
  ASSERT_LT(expected, 4) << "this set-up no longer makes an earlier epoch the best; the test "
                            "would not see whether the chosen epoch is exported";
  const auto report = nlohmann::json::parse(udc::common::read_file(full.report_path));
  EXPECT_EQ(report["selection"]["epoch"].get<int64_t>(), expected);
  // The model exported is that epoch's: it scores that epoch's test accuracy, and on the
  // reference interpreter exactly its held-out accuracy.
  EXPECT_EQ(full.test_score, full.history.at(size_t(expected)).test_score);
  udc::data::ImageDataset training_images = load_data(config.data, udc::data::Split::Train);
  const udc::data::ImageDataset held_out = training_images.split_off(128);
  const fm::Model model = fm::read_model(full.model_path);
  expect_tflite_round_trip(full);
  size_t correct = 0;
  for (size_t i = 0; i < held_out.size(); ++i) {
    std::vector<int8_t> input(held_out.image_bytes());
    for (size_t k = 0; k < input.size(); ++k) {
      input[k] = udc::data::quantize_pixel(held_out.image(i)[k]);
    }
    const auto values = fm::run_reference(model, {input});
    const auto& logits = values[size_t(model.outputs[0])];
    const auto top = std::max_element(logits.begin(), logits.end()) - logits.begin();
    correct += size_t(top) == held_out.labels[i];
  }
  EXPECT_EQ(double(correct) / double(held_out.size()), best);

  // Stopped after the compress epoch (then the best so far) and resumed: the kept network
  // comes back with the checkpoint, so the model is the one trained without a stop.
  TrainConfig stopped = config;
  stopped.train.finetune.epochs = 0;
  options.output_dir = (root / "resumed").string();
  EXPECT_EQ(train(stopped, configured_npu(stopped), options).selected_epoch, 1);
  const TrainResult resumed = train(config, configured_npu(config), options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.selected_epoch, full.selected_epoch);
  EXPECT_EQ(udc::common::read_file(resumed.model_path), udc::common::read_file(full.model_path));
  fs::remove_all(root);
}

namespace {

void expect_super_resolution_scored_as_udc_eval(AnchorKind anchor) {
  const fs::path root = fs::temp_directory_path() /
                        fmt::format("udc_train_sr_{}_{}", ::getpid(), anchor_kind_name(anchor));
  fs::remove_all(root);
  using K = LayerKind;
  TrainConfig config;
  config.file = "tiny-sr";
  config.architecture = architecture(
      "tiny-sr", 12, 1,
      {layer(K::Conv, 8, 3, 1, 8, 0.0), layer(K::Conv, 4, 3, 1, 4, 0.5, ActivationKind::None),
       layer(K::DepthToSpace, 0, 2, 1, 8, 0.0, ActivationKind::None)});
  config.architecture.classes = 0;
  config.architecture.batch_statistics = false;  // as load_train_config sets it
  config.architecture.anchor = anchor;
  config.data.set = "sr-photos";
  config.data.dir = udc::data::kOpencvSamplesDir;
  config.data.normalization = {0.0f, 1.0f};
  config.data.augmentation = {0, true};
  config.data.train_subset = 3;  // photographs; the third held out
  config.data.test_subset = 1;
  config.train.batch_size = 16;
  config.train.warmup = {1, 3e-3};
  config.train.compress = {1, 1e-3};
  config.train.finetune = {1, 3e-4};
  config.train.max_steps_per_epoch = 6;
  config.train.prune_interval = 2;
  config.train.holdout_fraction = 0.34;
  config.npu.files = {std::string(UDC_CONFIG_DIR) + "/npu/u55-128-deep-embedded.yaml"};
  config.verify_images = 4;
  TrainOptions options;
  options.output_dir = root.string();
  const TrainResult trained = train(config, configured_npu(config), options);
  EXPECT_EQ(trained.metric, Metric::Psnr);
  EXPECT_EQ(trained.verified_images, 4u);  // patches, equal on LibTorch, interpreter, simulator
  EXPECT_GT(trained.holdout_images, 0u);   // patches of the held-out photograph
  EXPECT_GE(trained.selected_epoch, 1);

  // The score is what `udc eval` measures on the exported model: whole photographs through
  // tiles on the reference interpreter, PSNR with the scale as border.
  const fm::Model model = fm::read_model(trained.model_path);
  expect_tflite_round_trip(trained);
  const udc::data::SuperResolutionSet photos =
      load_photographs(config.data, udc::data::Split::Test);
  ASSERT_EQ(photos.high.size(), 1u);
  const udc::data::Image& low = photos.low[0];
  const udc::data::Image up{
      photos.high[0].height, photos.high[0].width, 1,
      fm::upscale_image(model, low.pixels.data(), low.height, low.width,
                        fm::receptive_radius(model), [&](const fm::TensorValues& tile) {
                          return fm::run_reference(model, {tile})[size_t(model.outputs[0])];
                        })};
  EXPECT_DOUBLE_EQ(trained.test_score, udc::data::psnr(photos.high[0], up, 2));
  const auto report = nlohmann::json::parse(udc::common::read_file(trained.report_path));
  EXPECT_EQ(report["test_psnr_db"].get<double>(), trained.test_score);
  EXPECT_FALSE(report.contains("test_accuracy"));
  EXPECT_TRUE(report["history"][1]["holdout_psnr_db"].is_number());

  // The checkpoint's PSNR history reads back: a second run resumes at the end and writes
  // the same model.
  const TrainResult again = train(config, configured_npu(config), options);
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.history.size(), trained.history.size());
  EXPECT_EQ(again.history.back().holdout_score, trained.history.back().holdout_score);
  EXPECT_EQ(udc::common::read_file(again.model_path), udc::common::read_file(trained.model_path));
  fs::remove_all(root);
}

}  // namespace

TEST(Trainer, SuperResolutionScoresWholePhotographsAsUdcEvalDoes) {
  // Plain, and with the anchor (its fixed convolution and ADD exported, verified and
  // round-tripped like every layer).
  for (AnchorKind anchor : {AnchorKind::None, AnchorKind::Bicubic}) {
    SCOPED_TRACE(anchor_kind_name(anchor));
    expect_super_resolution_scored_as_udc_eval(anchor);
  }
}
