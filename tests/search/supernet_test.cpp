// The DNAS: cost tables against independent measurements, differentiable expected costs,
// gradients into the architecture, and a tiny search under tight budgets whose result the
// real codec, compiler and simulator confirm.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "derivation.hpp"
#include "hardware_tables.hpp"
#include "supernet.hpp"
#include "udc/common/file_io.hpp"
#include "udc/common/statistics.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/tflite_import.hpp"
#include "udc/firmware_model/upscale.hpp"
#include "udc/npu_sim/area.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/search/hardware_comparison.hpp"
#include "udc/search/search.hpp"
#include "udc/search/seeds.hpp"

namespace fs = std::filesystem;
namespace fm = udc::firmware_model;
using namespace udc::search;

namespace {

/// Three blocks plus the classifier: every operator kind, a skip, two widths each.
SearchSpace tiny_space() {
  SearchSpace s;
  s.name = "tiny";
  s.height = s.width = 12;
  s.channels = 1;
  s.classes = 10;
  s.bits = {2, 4, 8};
  s.sparsity = {0.0, 0.5, 0.9};
  auto op = [](const std::string& name) { return parse_operator(name); };
  s.blocks.push_back({"stem", {op("conv")}, {4, 8}, 3, 2});
  s.blocks.push_back({"b1", {op("conv"), op("separable"), op("ir2"), op("skip")}, {4, 8}, 3, 1});
  s.blocks.push_back({"b2", {op("separable"), op("ir3")}, {8, 12}, 3, 2});
  s.blocks.push_back({"classifier", {classifier_operator()}, {10}, 1, 1});
  return s;
}

/// The supernet's output for one fixed architecture.
torch::Tensor forward_at(Supernet& net, const torch::Tensor& images,
                         const ArchitectureChoice& choice) {
  SamplingSettings fixed;
  fixed.fixed = &choice;
  return net.forward(images, fixed);
}

/// tiny_space() with its weight quantisers started by `rule`.
SearchSpace tiny_space(WeightStepRule rule) {
  SearchSpace space = tiny_space();
  space.weight_step = rule;
  return space;
}

/// A super-resolution space: stride 1 throughout, the upscaler (x2) last, batch norm on
/// frozen statistics.
SearchSpace tiny_upscaler_space() {
  SearchSpace s;
  s.name = "tiny-sr";
  s.height = s.width = 10;
  s.channels = 1;
  s.classes = 0;
  s.scale = 2;
  s.batch_statistics = false;
  s.bits = {2, 4, 8};
  s.sparsity = {0.0, 0.5, 0.9};
  auto op = [](const std::string& name) { return parse_operator(name); };
  s.blocks.push_back({"feature", {op("conv")}, {4, 8}, 5, 1});
  s.blocks.push_back({"b1", {op("conv"), op("separable"), op("ir2"), op("skip")}, {4, 8}, 3, 1});
  s.blocks.push_back({"upscale", {upscaler_operator(2)}, {4}, 3, 1});
  return s;
}

udc::npu_sim::NpuConfig npu() {
  return udc::npu_sim::load_npu_config(std::string(UDC_CONFIG_DIR) +
                                       "/npu/u55-128-deep-embedded.yaml");
}

/// A random architecture; every weighted layer draws its own bits and sparsity.
ArchitectureChoice random_choice(const SearchSpace& s, std::mt19937& rng) {
  ArchitectureChoice c;
  for (const BlockSpace& b : s.blocks) {
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    BlockChoice block{pick(b.ops.size()), pick(b.widths.size()), {}};
    const SearchOperator& op = *b.ops[block.op];
    for (size_t l = 0; l < op.layers().size(); ++l) {
      const size_t bits = pick(s.bits.size());
      block.layers.push_back({bits, op.prunable(l) ? pick(s.sparsity.size()) : 0});
    }
    c.push_back(block);
  }
  return c;
}

/// Every architecture logit of block k with its name: op, width, then bits and sparsity of
/// each weighted layer of each operator.
std::vector<std::pair<std::string, torch::Tensor>> block_logits(const Supernet& net, size_t k) {
  const BlockSpace& bs = net.space().blocks[k];
  std::vector<std::pair<std::string, torch::Tensor>> list{{"op", net.logits(k, "op")},
                                                          {"width", net.logits(k, "width")}};
  for (size_t o = 0; o < bs.ops.size(); ++o) {
    const SearchOperator& op = *bs.ops[o];
    for (size_t l = 0; l < op.layers().size(); ++l) {
      const std::string layer = op.name() + "_" + op.layers()[l].role;
      list.emplace_back(layer + "_bits", net.logits(k, "bits", o, l));
      if (op.prunable(l)) {
        list.emplace_back(layer + "_sparsity", net.logits(k, "sparsity", o, l));
      }
    }
  }
  return list;
}

/// Logits that put all probability on `choice` (softmax of +-1e4 is exactly one-hot).
void set_one_hot(Supernet& net, const ArchitectureChoice& choice) {
  torch::NoGradGuard no_grad;
  auto set = [](torch::Tensor l, size_t index) {
    l.fill_(-1e4);
    l[int64_t(index)] = 1e4;
  };
  for (size_t k = 0; k < choice.size(); ++k) {
    const BlockChoice& c = choice[k];
    set(net.logits(k, "op"), c.op);
    set(net.logits(k, "width"), c.width);
    for (size_t l = 0; l < c.layers.size(); ++l) {
      set(net.logits(k, "bits", c.op, l), c.layers[l].bits);
      const torch::Tensor sparsity = net.logits(k, "sparsity", c.op, l);
      if (sparsity.defined()) set(sparsity, c.layers[l].sparsity);
    }
  }
}

}  // namespace

TEST(Supernet, ExpectedCostAtOneHotChoiceEqualsTableValue) {
  torch::manual_seed(3);
  const SearchSpace space = tiny_space();
  Supernet net(space);
  net.set_hardware_tables(measure_hardware_tables(space, npu(), ""));
  net.refresh_weight_tables();
  std::mt19937 rng(5);
  for (int trial = 0; trial < 12; ++trial) {
    const ArchitectureChoice choice = random_choice(space, rng);
    set_one_hot(net, choice);
    const ExpectedCosts expected = net.expected_costs();
    const TableCosts table = net.table_costs(choice);
    EXPECT_NEAR(expected.weight_bytes.item<double>(), table.weight_bytes, 1e-6) << trial;
    EXPECT_NEAR(expected.flash_bytes.item<double>(), table.flash_bytes, 1e-6) << trial;
    EXPECT_NEAR(expected.cycles.item<double>(), table.cycles, 1e-6) << trial;
    EXPECT_NEAR(expected.sram_bytes.item<double>(), table.sram_bytes, 1e-6) << trial;
    EXPECT_EQ(net.most_probable().size(), choice.size());
  }
}

TEST(Supernet, CoSearchAtOneHotHardwareReproducesTheFixedNpuCosts) {
  const SearchSpace space = tiny_space();
  const std::vector<udc::npu_sim::NpuConfig> npus = {
      npu(), udc::npu_sim::load_npu_config(std::vector<std::string>{
                 std::string(UDC_CONFIG_DIR) + "/npu/ethos-u55-256.yaml",
                 std::string(UDC_CONFIG_DIR) + "/npu/systems/u55-deep-embedded.yaml"})};
  // The same seed gives the same shared weights: the hardware logits are registered last
  // and start at zero.
  torch::manual_seed(3);
  Supernet co(space, {2});
  std::vector<std::unique_ptr<Supernet>> fixed;
  for (size_t h = 0; h < npus.size(); ++h) {
    torch::manual_seed(3);
    fixed.push_back(std::make_unique<Supernet>(space));
    fixed.back()->set_hardware_tables(measure_hardware_tables(space, npus[h], ""));
  }
  co.set_candidate_tables(
      {measure_hardware_tables(space, npus[0], ""), measure_hardware_tables(space, npus[1], "")});
  ASSERT_EQ(co.hardware_count(), 2u);
  ASSERT_EQ(co.hardware_parameters().size(), 1u);
  std::mt19937 rng(9);
  for (int trial = 0; trial < 4; ++trial) {
    // Random architecture logits, the same in all three.
    {
      torch::NoGradGuard no_grad;
      const std::vector<torch::Tensor> logits = fixed[0]->architecture_parameters();
      for (const torch::Tensor& l : logits) l.copy_(torch::randn_like(l));
      for (size_t i = 0; i < logits.size(); ++i) {
        fixed[1]->architecture_parameters()[i].copy_(logits[i]);
        co.architecture_parameters()[i].copy_(logits[i]);
      }
    }
    const ExpectedCosts each = co.expected_costs_per_hardware();
    for (size_t h = 0; h < npus.size(); ++h) {
      {
        torch::NoGradGuard no_grad;
        torch::Tensor l = co.hardware_parameters()[0];
        l.fill_(-1e4);
        l[int64_t(h)] = 1e4;
      }
      const ExpectedCosts mixed = co.expected_costs();
      const ExpectedCosts alone = fixed[h]->expected_costs();
      for (const auto& [a, b, c] :
           {std::tuple{mixed.weight_bytes, alone.weight_bytes, each.weight_bytes[int64_t(h)]},
            std::tuple{mixed.flash_bytes, alone.flash_bytes, each.flash_bytes[int64_t(h)]},
            std::tuple{mixed.sram_bytes, alone.sram_bytes, each.sram_bytes[int64_t(h)]},
            std::tuple{mixed.cycles, alone.cycles, each.cycles[int64_t(h)]}}) {
        EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-9 * b.item<double>()) << trial;
        EXPECT_NEAR(c.item<double>(), b.item<double>(), 1e-9 * b.item<double>()) << trial;
      }
      co.select_hardware(h);
      const ArchitectureChoice choice = random_choice(space, rng);
      const TableCosts t = co.table_costs(choice), u = fixed[h]->table_costs(choice);
      EXPECT_EQ(t.weight_bytes, u.weight_bytes);
      EXPECT_EQ(t.flash_bytes, u.flash_bytes);
      EXPECT_EQ(t.sram_bytes, u.sram_bytes);
      EXPECT_EQ(t.cycles, u.cycles);
      EXPECT_EQ(co.most_probable_hardware(), h);
    }
    // The two NPUs differ (so the check above could fail), and a uniform hardware
    // distribution costs the mean of the two.
    EXPECT_NE(each.cycles[0].item<double>(), each.cycles[1].item<double>());
    {
      torch::NoGradGuard no_grad;
      co.hardware_parameters()[0].zero_();
    }
    EXPECT_NEAR(co.expected_costs().cycles.item<double>(),
                (each.cycles[0].item<double>() + each.cycles[1].item<double>()) / 2, 1e-6);
  }
  // A candidate left out has probability 0, whatever its logits.
  {
    torch::NoGradGuard no_grad;
    co.hardware_parameters()[0].copy_(torch::tensor({5.0f, -5.0f}));
  }
  co.set_hardware_allowed({false, true});
  EXPECT_EQ(co.hardware_probabilities()[0].item<double>(), 0.0);
  EXPECT_NEAR(co.hardware_probabilities()[1].item<double>(), 1.0, 1e-12);
  EXPECT_EQ(co.most_probable_hardware(), 1u);
}

namespace {

/// A few hard-sampled training-mode batches: different batch-norm statistics per channel,
/// so that folding matters.
void move_batch_norm_statistics(Supernet& net) {
  torch::NoGradGuard no_grad;
  net.train();
  for (int i = 0; i < 3; ++i) {
    SamplingSettings s;
    s.hard = true;
    net.forward(torch::randn({8, 1, 12, 12}) * 2 + 0.5, s);
  }
}

/// Weights inherited, masks and steps set as the trainer sets them before export.
void inherit_for_export(const Supernet& net, const ArchitectureChoice& choice, QNet& derived) {
  net.inherit(choice, derived);
  for (const auto& layer : derived.weighted()) {
    layer->update_mask(layer->target_sparsity());
    layer->initialize_step();
  }
}

}  // namespace

TEST(Supernet, WeightTablesEqualTheCompiledLayoutOfTheDerivedModel) {
  // The tables' bytes per candidate must be what the compiler lays out for the exported
  // model of the derived network (weights inherited, masks and steps set as the trainer
  // sets them): its streams, split in the block depths the hardware tables recorded, and
  // its weight image with scale records and alignment.
  for (WeightStepRule rule : {WeightStepRule::Lsq, WeightStepRule::LeastError}) {
    SCOPED_TRACE(weight_step_rule_name(rule));
    torch::manual_seed(4);
    const SearchSpace space = tiny_space(rule);
    Supernet net(space);
    move_batch_norm_statistics(net);
    net.set_hardware_tables(measure_hardware_tables(space, npu(), ""));
    std::mt19937 rng(9);
    const udc::data::Normalization norm{0.3f, 0.3f};
    for (int trial = 0; trial < 10; ++trial) {
      const ArchitectureChoice choice = random_choice(space, rng);
      QNet derived(net.derive(choice), norm);
      inherit_for_export(net, choice, derived);
      const fm::Model model = derived.export_model();
      const fm::CompileResult compiled = fm::compile(model, npu());
      ASSERT_TRUE(compiled.fits());
      uint64_t streams = 0;
      for (const fm::LayerCommands& layer : compiled.compiled.layers)
        streams += layer.weight_stream_bytes;
      const TableCosts table = net.table_costs(choice);
      EXPECT_EQ(double(streams), table.weight_bytes) << net.describe(choice);
      EXPECT_EQ(double(compiled.compiled.plan.flash_bytes), table.flash_bytes)
          << net.describe(choice);
      // One stream per layer (the codec alone) is not what the NPU holds.
      EXPECT_LT(double(fm::summarize(model).compressed_bytes), table.flash_bytes);
    }
  }
}

TEST(Supernet, DerivedNetworkComputesWhatTheSupernetComputes) {
  // Inherited weights make the derived network the supernet's one-hot sub-network: the
  // same masks and the same quantised weights, slice by slice. The derived network's
  // quantised forward also rounds every activation to int8, which the supernet does not:
  // that rounding is the only difference left, a few per cent at most, where a mask or a
  // step taken over the wrong slice changes the logits by far more. With float activations
  // (CompressedWeights) the two agree to rounding.
  // Under both step rules: LSQ's on the mixed weights, the least-error one from the step
  // fractions of the last mask refresh.
  for (WeightStepRule rule : {WeightStepRule::Lsq, WeightStepRule::LeastError}) {
    SCOPED_TRACE(weight_step_rule_name(rule));
    torch::manual_seed(5);
    const SearchSpace space = tiny_space(rule);
    Supernet net(space);
    move_batch_norm_statistics(net);
    net.refresh_masks();
    net.eval();
    std::mt19937 rng(11);
    const torch::Tensor images = torch::randn({32, 1, 12, 12});
    for (int trial = 0; trial < 16; ++trial) {
      const ArchitectureChoice choice = random_choice(space, rng);
      torch::NoGradGuard no_grad;
      const torch::Tensor expected = forward_at(net, images, choice).reshape({32, -1});
      ASSERT_EQ(net.derive(choice).weight_step, rule);
      QNet derived(net.derive(choice), {0.3f, 0.3f});
      inherit_for_export(net, choice, derived);
      derived.eval();
      // Float activations with the compressed weights: the supernet's own arithmetic.
      const torch::Tensor compressed =
          derived.forward(images, {Mode::CompressedWeights, false, 0.0}).x.reshape({32, -1});
      EXPECT_TRUE(torch::allclose(compressed, expected, 1e-4, 1e-5)) << net.describe(choice);
      derived.forward(images, {Mode::Quantized, true, 0.0});  // activation ranges of this batch
      const torch::Tensor got =
          derived.forward(images, {Mode::Quantized, false, 0.0}).x.reshape({32, -1});
      const double scale = expected.abs().max().item<double>();
      // LE: a choice that silences every logit (2-bit, 90 % sparse) gives 0 on both sides.
      EXPECT_LE((got - expected).abs().max().item<double>(), 0.08 * scale) << net.describe(choice);
    }
  }
}

TEST(Supernet, CheckpointedMasksCarryTheStepFractionsOfTheirRefresh) {
  // Under the least-error rule the supernet quantises with step fractions taken at the last
  // mask refresh; a checkpoint must restore them with the masks, or a resumed search would
  // quantise with fractions of other weights.
  torch::manual_seed(7);
  const SearchSpace space = tiny_space(WeightStepRule::LeastError);
  Supernet saved(space), restored(space);
  move_batch_norm_statistics(saved);
  saved.refresh_masks();
  saved.eval();
  restored.eval();
  {
    // Weights that moved since the refresh, far enough to change fractions.
    torch::NoGradGuard no_grad;
    for (auto& p : saved.named_parameters()) {
      if (p.key().find("weight") != std::string::npos && p.value().dim() > 1)
        p.value().mul_(torch::rand_like(p.value()) * 2);
    }
  }
  const std::vector<torch::Tensor> checkpoint = saved.masks();
  {
    torch::NoGradGuard no_grad;
    auto from = saved.named_parameters();
    for (auto& p : restored.named_parameters()) p.value().copy_(from[p.key()]);
    auto from_buffers = saved.named_buffers();
    for (auto& b : restored.named_buffers()) b.value().copy_(from_buffers[b.key()]);
  }
  restored.refresh_masks();  // fractions of the moved weights: not the saved ones
  std::mt19937 rng(3);
  const torch::Tensor images = torch::randn({8, 1, 12, 12});
  torch::NoGradGuard no_grad;
  bool refresh_differs = false;
  for (int trial = 0; trial < 6; ++trial) {
    const ArchitectureChoice choice = random_choice(space, rng);
    refresh_differs |=
        !torch::equal(forward_at(restored, images, choice), forward_at(saved, images, choice));
  }
  EXPECT_TRUE(refresh_differs) << "the moved weights did not change any fraction";
  restored.set_masks(checkpoint);
  std::mt19937 same_rng(3);
  for (int trial = 0; trial < 6; ++trial) {
    const ArchitectureChoice choice = random_choice(space, same_rng);
    EXPECT_TRUE(
        torch::equal(forward_at(restored, images, choice), forward_at(saved, images, choice)))
        << saved.describe(choice);
  }
  // LSQ's rule keeps no fractions: its checkpoints hold the masks alone, as before.
  const Supernet lsq(tiny_space());
  EXPECT_LT(lsq.masks().size(), checkpoint.size());
}

TEST(Supernet, UpscalerSpaceDerivesSubPixelNetworksThatComputeWhatItComputes) {
  // The supernet's output is the upscaler's channels as pixels (depth_to_space, flattened);
  // a derived network ends in the same conv and depth_to_space, with frozen batch norm.
  torch::manual_seed(6);
  const SearchSpace space = tiny_upscaler_space();
  Supernet net(space);
  move_batch_norm_statistics(net);
  net.refresh_masks();
  net.train();  // frozen statistics: training mode computes what evaluation does
  std::mt19937 rng(12);
  const torch::Tensor images = torch::rand({8, 1, 10, 10});
  for (int trial = 0; trial < 8; ++trial) {
    const ArchitectureChoice choice = random_choice(space, rng);
    torch::NoGradGuard no_grad;
    const torch::Tensor expected = forward_at(net, images, choice);
    ASSERT_EQ(expected.sizes(), (std::vector<int64_t>{8, 20 * 20}));
    const ArchitectureSpec arch = net.derive(choice);
    EXPECT_FALSE(arch.batch_statistics);
    ASSERT_EQ(arch.layers.back().kind, LayerKind::DepthToSpace);
    EXPECT_EQ(arch.layers.back().kernel, 2u);
    EXPECT_EQ(arch.layers[arch.layers.size() - 2].activation, ActivationKind::None);
    QNet derived(arch, {0.0f, 1.0f});
    inherit_for_export(net, choice, derived);
    derived.train();
    const torch::Tensor compressed =
        derived.forward(images, {Mode::CompressedWeights, false, 0.0}).x;
    EXPECT_TRUE(torch::allclose(compressed, expected, 1e-4, 1e-5)) << net.describe(choice);
    // The exported model is an upscaler of the space's input.
    derived.forward(images, {Mode::Quantized, true, 0.0});
    const fm::UpscalerShape shape = fm::upscaler_shape(derived.export_model());
    EXPECT_EQ(shape.height, 10u);
    EXPECT_EQ(shape.scale, 2u);
  }
}

TEST(Supernet, HardwareTablesMatchCompilerOnChainsAndCache) {
  const SearchSpace space = tiny_space();
  const fs::path cache =
      fs::temp_directory_path() / ("udc_hw_" + std::to_string(::getpid()) + ".json");
  fs::remove(cache);
  const HardwareTables measured = measure_hardware_tables(space, npu(), cache.string());
  EXPECT_FALSE(measured.from_cache);
  const HardwareTables cached = measure_hardware_tables(space, npu(), cache.string());
  EXPECT_TRUE(cached.from_cache);
  ASSERT_EQ(cached.blocks.size(), measured.blocks.size());
  for (size_t k = 0; k < measured.blocks.size(); ++k) {
    EXPECT_EQ(cached.blocks[k].cycles, measured.blocks[k].cycles);
    EXPECT_EQ(cached.blocks[k].sram_bytes, measured.blocks[k].sram_bytes);
  }
  // Another NPU is another fingerprint: measured again.
  udc::npu_sim::NpuConfig other = npu();
  other.macs_per_cycle = 256;
  EXPECT_FALSE(measure_hardware_tables(space, other, cache.string()).from_cache);
  fs::remove(cache);

  // The peak arena of a whole chain equals the largest one-block arena (the compiler's plan
  // of a chain is its liveness bound, which these one-block models measure block by block),
  // and the model's cycles are close to the sum of the blocks'.
  torch::manual_seed(1);
  Supernet net(space);
  net.set_hardware_tables(measured);
  net.refresh_weight_tables();
  net.refresh_cycles_table(npu());  // on the supernet's weights, as the exported models hold
  std::mt19937 rng(2);
  for (int trial = 0; trial < 6; ++trial) {
    const ArchitectureChoice choice = random_choice(space, rng);
    QNet derived(net.derive(choice), {0.3f, 0.3f});
    inherit_for_export(net, choice, derived);
    const fm::Model model = derived.export_model();
    const fm::CompileResult compiled = fm::compile(model, npu());
    ASSERT_TRUE(compiled.fits());
    const TableCosts table = net.table_costs(choice);
    EXPECT_EQ(double(compiled.compiled.plan.arena_bytes), table.sram_bytes) << net.describe(choice);
    // Layers of one block at different bits and sparsity are costed as the sum of their
    // shares of uniform one-block models measured on the supernet's weights; the whole
    // model on the simulator agrees within 2 %. (On synthetic weights a chain differed by up
    // to 10 %: the decoder's time follows the streams' content.)
    udc::npu_sim::RunOptions timing;
    timing.timing_only = true;
    const std::vector<int8_t> input(12 * 12, 0);
    const fm::NpuRun run = fm::run_on_npu(model, compiled.compiled, npu(), {input}, timing);
    EXPECT_NEAR(double(run.job.total_cycles), table.cycles, 0.02 * table.cycles)
        << net.describe(choice);
  }
}

TEST(Derivation, CandidatesFitAndGrowthStopsOnlyAtTheBudget) {
  torch::manual_seed(8);
  const SearchSpace space = tiny_space();
  Supernet net(space);
  net.set_hardware_tables(measure_hardware_tables(space, npu(), ""));
  net.refresh_weight_tables();
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& logits : net.architecture_parameters())
      logits.copy_(torch::randn_like(logits));
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::mt19937 rng(3);
  int grew = 0;
  for (int trial = 0; trial < 4; ++trial) {
    // A flash budget and an SRAM budget between the costs of two random architectures.
    const TableCosts a = net.table_costs(random_choice(space, rng));
    const TableCosts b = net.table_costs(random_choice(space, rng));
    const Limits limits{inf, (a.flash_bytes + b.flash_bytes) / 2,
                        std::max(a.sram_bytes, b.sram_bytes), inf};
    const std::vector<ArchitectureChoice> candidates =
        derivation_candidates(net, limits, 1.0, 6, uint64_t(trial));
    ASSERT_FALSE(candidates.empty());
    for (const ArchitectureChoice& c : candidates) {
      EXPECT_TRUE(within(costs_of(net.table_costs(c)), limits, 1.0)) << net.describe(c);
    }
    const std::optional<ArchitectureChoice> fitted =
        fit_by_tables(net, random_choice(space, rng), limits, 1.0);
    ASSERT_TRUE(fitted.has_value());
    const ArchitectureChoice grown = grow_to_budget(net, *fitted, limits, 1.0);
    EXPECT_TRUE(within(costs_of(net.table_costs(grown)), limits, 1.0));
    grew += net.describe(grown) != net.describe(*fitted);
    for (size_t k = 0; k < grown.size(); ++k) {
      // Never poorer than where it started, and no single richer step still fits.
      EXPECT_EQ(grown[k].op, (*fitted)[k].op);
      EXPECT_GE(grown[k].width, (*fitted)[k].width);
      const SearchOperator& op = *space.blocks[k].ops[grown[k].op];
      if (op.passes_input()) continue;
      auto still_fits = [&](ArchitectureChoice richer) {
        const TableCosts t = net.table_costs(richer);
        return t.fits && within(costs_of(t), limits, 1.0);
      };
      ArchitectureChoice m = grown;
      if (grown[k].width + 1 < space.blocks[k].widths.size()) {
        ++m[k].width;
        EXPECT_FALSE(still_fits(m)) << net.describe(m);
        m = grown;
      }
      ASSERT_EQ(grown[k].layers.size(), op.layers().size());
      for (size_t l = 0; l < grown[k].layers.size(); ++l) {
        const LayerChoice& now = grown[k].layers[l];
        EXPECT_GE(now.bits, (*fitted)[k].layers[l].bits);
        EXPECT_LE(now.sparsity, (*fitted)[k].layers[l].sparsity);
        if (!op.prunable(l)) {
          EXPECT_EQ(now.sparsity, 0u);
        }
        if (now.bits + 1 < space.bits.size()) {
          ++m[k].layers[l].bits;
          EXPECT_FALSE(still_fits(m)) << net.describe(m);
          m = grown;
        }
        if (op.prunable(l) && now.sparsity > 0) {
          --m[k].layers[l].sparsity;
          EXPECT_FALSE(still_fits(m)) << net.describe(m);
          m = grown;
        }
      }
    }
  }
  EXPECT_GT(grew, 0);  // the checks above saw growth happen
  // Nothing fits a budget of one byte.
  EXPECT_FALSE(fit_by_tables(net, net.most_probable(), {1.0, inf, inf}, 1.0).has_value());
}

TEST(Supernet, GradientsReachEveryArchitectureChoiceThroughTaskAndCost) {
  torch::manual_seed(6);
  const SearchSpace space = tiny_space();
  Supernet net(space);
  net.set_hardware_tables(measure_hardware_tables(space, npu(), ""));
  net.refresh_weight_tables();
  auto zero_gradients = [&] {
    for (const torch::Tensor& l : net.architecture_parameters()) {
      if (l.grad().defined()) l.grad().zero_();
    }
  };
  auto gradient = [](const torch::Tensor& l) {
    return l.grad().defined() ? l.grad().abs().sum().item<double>() : 0.0;
  };

  // Task loss with every operator mixed: every choice with more than one option gets a
  // gradient, the bits and sparsity of every layer of every operator included. With one
  // operator sampled: the operator logits and the sampled operator's choices.
  for (const bool sampled : {false, true}) {
    zero_gradients();
    SamplingSettings sampling{1.0, 1.0, false, sampled, nullptr};
    const torch::Tensor labels = torch::randint(0, 10, {16}, torch::kLong);
    torch::cross_entropy_loss(net.forward(torch::randn({16, 1, 12, 12}), sampling), labels)
        .backward();
    for (size_t k = 0; k + 1 < space.blocks.size(); ++k) {
      for (const auto& [name, l] : block_logits(net, k)) {
        if (l.numel() < 2) continue;
        if (sampled && name != "op") continue;
        EXPECT_GT(gradient(l), 0) << space.blocks[k].name << " " << name
                                  << (sampled ? " sampled" : " mixed");
      }
    }
  }

  // Cost: expected flash and cycles depend on every choice with more than one option.
  zero_gradients();
  const ExpectedCosts costs = net.expected_costs();
  (costs.flash_bytes + costs.cycles).backward();
  for (size_t k = 0; k + 1 < space.blocks.size(); ++k) {
    for (const auto& [name, l] : block_logits(net, k)) {
      if (l.numel() < 2) continue;
      EXPECT_GT(gradient(l), 0) << space.blocks[k].name << " " << name;
    }
  }
  // Cost gradients point to cheaper choices: more sparsity, fewer bits lower the flash.
  zero_gradients();
  net.expected_costs().flash_bytes.backward();
  const torch::Tensor bits_grad = net.logits(0, "bits", 0, 0).grad();
  EXPECT_GT(bits_grad[2].item<double>(), bits_grad[0].item<double>());  // 8-bit costs more
  const torch::Tensor sparsity_grad = net.logits(0, "sparsity", 0, 0).grad();
  EXPECT_GT(sparsity_grad[0].item<double>(), sparsity_grad[2].item<double>());  // dense costs more
  // Per layer: the project of b2's ir3 (the widest 1x1) is costed apart from its expand.
  const torch::Tensor expand = net.logits(2, "bits", 1, 0).grad();
  const torch::Tensor project = net.logits(2, "bits", 1, 2).grad();
  EXPECT_FALSE(torch::allclose(expand, project));
}

namespace {

SearchConfig tiny_search_config(const std::string& budgets_yaml, const std::string& data_dir,
                                const std::string& extra_yaml = "") {
  const fs::path path =
      fs::temp_directory_path() / ("udc_tiny_search_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path)
      << "name: tiny\ninput: [28, 28, 1]\nclasses: 10\n"
         "space:\n  bits: [2, 4, 8]\n  sparsity: [0.0, 0.5, 0.9]\n  blocks:\n"
         "    - {name: stem, ops: [conv], widths: [4, 8], stride: 2}\n"
         "    - {name: b1, ops: [conv, separable, skip], widths: [4, 8]}\n"
         "    - {name: b2, ops: [conv, separable, ir2], widths: [8, 16], stride: 2}\n"
         "budgets: " +
             budgets_yaml +
             "\n"
             "data: {set: fashion-mnist, dir: " +
             data_dir +
             ", train_subset: 384, test_subset: 128}\n"
             "search: {batch_size: 64, warmup: {epochs: 1}, search: {epochs: 2}, "
             "max_steps_per_epoch: 3, flash_refresh_steps: 2, arch_lr: 0.05, "
             "lagrange_rate: 1.0}\n"
             "finetune: {batch_size: 64, warmup: {epochs: 1}, compress: {epochs: 1}, "
             "finetune: {epochs: 1}, max_steps_per_epoch: 2}\n"
             "npu: " UDC_CONFIG_DIR
             "/npu/u55-128-deep-embedded.yaml\n"
             "verify_images: 6\n" +
             extra_yaml;
  SearchConfig config = load_search_config(path.string());
  fs::remove(path);
  return config;
}

/// The largest distance of a choice's probability from uniform over its options, over
/// every epoch, block and choice of an evolution.csv.
double max_deviation_from_uniform(const fs::path& evolution_csv) {
  std::ifstream in(evolution_csv);
  std::string line;
  std::getline(in, line);  // header: epoch,block,choice,option,probability
  std::map<std::string, std::vector<double>> groups;
  while (std::getline(in, line)) {
    const size_t last = line.rfind(',');
    const size_t option = line.rfind(',', last - 1);
    groups[line.substr(0, option)].push_back(std::stod(line.substr(last + 1)));
  }
  EXPECT_FALSE(groups.empty());
  double deviation = 0;
  for (const auto& [key, probabilities] : groups) {
    for (double p : probabilities) {
      deviation = std::max(deviation, std::abs(p - 1.0 / double(probabilities.size())));
    }
  }
  return deviation;
}

/// Budgets that, in the tiny space, only a sparse, low-bit or narrow choice meets: the
/// widest 8-bit dense models need several KB.
constexpr const char* kTightBudgets =
    "{weight_bytes: 400, flash_bytes: 1000, sram_bytes: 4000, cycles: 20000}";

/// An empty folder for one test's search output, named per process.
fs::path fresh_output_dir(const std::string& prefix) {
  const fs::path out = fs::temp_directory_path() / (prefix + std::to_string(::getpid()));
  fs::remove_all(out);
  return out;
}

/// Runs a search that must stop with an error whose message contains `fragment`.
void expect_search_error(const SearchConfig& config, const SearchOptions& options,
                         const std::string& fragment) {
  try {
    run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
    FAIL() << "expected an error naming " << fragment;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Search, RandomControlKeepsTheChoicesUniformAndStillFits) {
  SearchConfig config = tiny_search_config(kTightBudgets, udc::data::kFashionMnistDir);
  config.search.strategy = SearchStageSpec::Strategy::Random;
  const fs::path out = fresh_output_dir("udc_random_search_");
  SearchOptions options;
  options.output_dir = out.string();
  const SearchResult result =
      run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_TRUE(result.within_budgets);
  // evolution.csv prints 6 decimals.
  EXPECT_LT(max_deviation_from_uniform(out / "evolution.csv"), 1e-6);
  fs::remove_all(out);
}

TEST(Search, BiLevelSearchStepsTheArchitectureOnItsOwnImagesAndFits) {
  SearchConfig config = tiny_search_config(kTightBudgets, udc::data::kFashionMnistDir);
  config.search.architecture_fraction = 0.25;
  const fs::path out = fresh_output_dir("udc_bilevel_search_");
  std::ostringstream log;
  SearchOptions options;
  options.output_dir = out.string();
  options.log = &log;
  const SearchResult result =
      run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_TRUE(result.within_budgets);
  // 384 images: 38 held out for the derivation (0.1), a quarter of the other 346 (87) for
  // the architecture steps, 259 for the weights.
  EXPECT_NE(log.str().find("259 training images (bi-level: 87 more for the architecture steps)"),
            std::string::npos)
      << log.str();
  // The architecture steps move the choices.
  EXPECT_GT(max_deviation_from_uniform(out / "evolution.csv"), 1e-3);
  fs::remove_all(out);

  // A split that leaves the weights no image is refused before training, naming the key.
  SearchConfig starved = config;
  starved.data.train_subset = 2;
  starved.search.architecture_fraction = 0.9;
  expect_search_error(starved, options, "search.architecture_fraction");
  fs::remove_all(out);
}

TEST(Search, DerivationCanRankCandidatesAfterAShortFineTuneAndReportsTheRankCorrelation) {
  SearchConfig config = tiny_search_config(kTightBudgets, udc::data::kFashionMnistDir);
  config.search.derivation_samples = 1;
  config.search.derivation_finetune_epochs = 2;  // the float warm-up and one compress epoch
  const fs::path out = fresh_output_dir("udc_checked_derivation_");
  SearchOptions options;
  options.output_dir = out.string();
  const SearchResult result =
      run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_TRUE(result.within_budgets);
  const auto derivation =
      nlohmann::json::parse(udc::common::read_file((out / "derivation.json").string()));
  const nlohmann::json& candidates = derivation.at("candidates");
  ASSERT_GE(candidates.size(), 2u);
  std::vector<double> inherited, finetuned;
  double best = -1;
  std::string best_architecture;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const nlohmann::json& c = candidates[i];
    const nlohmann::json& f = c.at("finetuned");
    inherited.push_back(c.at("holdout_accuracy").get<double>());
    finetuned.push_back(f.at("holdout_accuracy").get<double>());
    // The score is the held-out figure of the exported epoch in the candidate's own run:
    // the float warm-up is not scored, the compress epoch is.
    const auto report = nlohmann::json::parse(udc::common::read_file(
        (out / "candidates" / std::to_string(i + 1) / "report.json").string()));
    EXPECT_EQ(f.at("holdout_by_epoch").size(), 2u);
    EXPECT_LT(f.at("holdout_by_epoch")[0].get<double>(), 0);
    EXPECT_EQ(f.at("holdout_by_epoch")[1].get<double>(), finetuned.back());
    EXPECT_EQ(report.at("test_accuracy").get<double>(), f.at("test_accuracy").get<double>());
    if (finetuned.back() > best) {
      best = finetuned.back();
      best_architecture = c.at("architecture").get<std::string>();
    }
  }
  // The candidate best after its fine-tune is the one derived (unless the measured repair
  // had to change it).
  if (derivation.at("steps").empty()) {
    EXPECT_EQ(derivation.at("derived"), best_architecture);
  }
  const nlohmann::json& rho = derivation.at("rank_correlation");
  EXPECT_EQ(rho.at("candidates").get<size_t>(), candidates.size());
  const double expected = udc::common::spearman_correlation(inherited, finetuned);
  if (std::isnan(expected)) {
    EXPECT_TRUE(rho.at("inherited_vs_finetuned_holdout").is_null());
  } else {
    EXPECT_DOUBLE_EQ(rho.at("inherited_vs_finetuned_holdout").get<double>(), expected);
  }
  fs::remove_all(out);

  // A cut that ends in the float warm-up cannot be ranked as exported.
  config.search.derivation_finetune_epochs = 1;
  expect_search_error(config, options, "search.derivation.finetune_epochs 1");
  fs::remove_all(out);
}

TEST(Search, TinySearchUnderTightBudgetsEndsWithAModelThatFits) {
  ASSERT_TRUE(fs::is_directory(udc::data::kFashionMnistDir))
      << udc::data::kFashionMnistDir
      << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const SearchConfig config = tiny_search_config(kTightBudgets, udc::data::kFashionMnistDir);
  const fs::path out = fresh_output_dir("udc_search_");
  SearchOptions options;
  options.output_dir = out.string();
  const SearchResult result =
      run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_TRUE(result.within_budgets);
  // Independent measurement of the written model: compiler and simulator.
  const fm::Model model = fm::read_model(result.model_path);
  // model.tflite holds the same model: importing it gives back model.udcm byte for byte.
  EXPECT_EQ(fm::serialize_model(fm::load_model_file(result.tflite_path).model),
            udc::common::read_file(result.model_path));
  const fm::CompileResult compiled = fm::compile(model, npu());
  ASSERT_TRUE(compiled.fits());
  uint64_t streams = 0;
  for (const fm::LayerCommands& layer : compiled.compiled.layers)
    streams += layer.weight_stream_bytes;
  EXPECT_LE(streams, 400u);
  EXPECT_EQ(streams, result.hardware.weight_bytes);
  EXPECT_LE(compiled.compiled.plan.flash_bytes, 1000u);
  EXPECT_EQ(compiled.compiled.plan.flash_bytes, result.hardware.flash_bytes);
  EXPECT_LE(compiled.compiled.plan.arena_bytes, 4000u);
  EXPECT_LE(result.hardware.cycles, 20000);
  // The DNAS moves its choices (what the random control must not do).
  EXPECT_GT(max_deviation_from_uniform(out / "evolution.csv"), 1e-3);
  for (const char* file : {"report.json", "accuracy_vs_size.svg", "evolution.csv", "derived.yaml",
                           "derivation.json", "search_checkpoint.pt", "hardware_tables.json"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
  }
  // The derived architecture is a valid `udc train` config.
  const TrainConfig derived = load_train_config((out / "derived.yaml").string());
  EXPECT_EQ(derived.architecture.layers.back().kind, LayerKind::FullyConnected);

  // A second run resumes from the checkpoints and writes the same model.
  const std::vector<uint8_t> first = udc::common::read_file(result.model_path);
  const SearchResult again = run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_EQ(udc::common::read_file(again.model_path), first);
  fs::remove_all(out);
}

TEST(Search, CoSearchUnderAnAreaBudgetEndsWithAPairThatFitsEveryBudget) {
  // Three MAC arrays x two SRAM sizes; at 0.18 mm^2 (the default area model) only the 64-
  // and 128-MAC NPUs with 64 KiB of SRAM fit (0.137, 0.154 mm^2; 256 MACs: 0.200 mm^2).
  const std::string hardware =
      "hardware:\n"
      "  mac_array:\n"
      "    - {file: " UDC_CONFIG_DIR
      "/npu/ethos-u55-64.yaml}\n"
      "    - {file: " UDC_CONFIG_DIR
      "/npu/ethos-u55-128.yaml}\n"
      "    - {file: " UDC_CONFIG_DIR
      "/npu/ethos-u55-256.yaml}\n"
      "  system.sram.size_bytes: [65536, 262144]\n";
  const double area_budget = 0.18;
  SearchConfig config = tiny_search_config(
      "{weight_bytes: 400, flash_bytes: 1000, sram_bytes: 4000, cycles: 20000, area_mm2: 0.18}",
      udc::data::kFashionMnistDir, hardware);
  ASSERT_EQ(config.hardware.size(), 6u);
  const fs::path out = fresh_output_dir("udc_co_search_");
  std::ostringstream log;
  SearchOptions options;
  options.output_dir = out.string();
  options.log = &log;
  const udc::npu_sim::NpuConfig base = udc::npu_sim::load_npu_config(config.npu);
  // A seed that an earlier invocation finished into the co-search's folder alone: it stays
  // in that folder's seeds.json but out of the comparison, which compares like for like.
  fs::create_directories(out / "co-search");
  udc::common::write_file_atomically(
      (out / "co-search" / "seeds.json").string(),
      nlohmann::json{{"config", config.file},
                     {"score_unit", "percent"},
                     {"runs", {{{"seed", 9}, {"test_accuracy", 99.0}}}}}
          .dump());
  // The co-search, and the network alone on candidate 0 (`udc search --compare-hardware 0`).
  const HardwareComparison comparison = compare_with_network_alone(config, base, options, {0}, {1});
  EXPECT_EQ(comparison.seeds, std::vector<uint64_t>{1});
  EXPECT_EQ(
      nlohmann::json::parse(udc::common::read_file((out / "co-search" / "seeds.json").string()))
          .at("runs")
          .size(),
      2u);
  ASSERT_EQ(comparison.co_search.seeds.runs.size(), 1u);
  ASSERT_EQ(comparison.alone.size(), 1u);
  ASSERT_EQ(comparison.alone[0].seeds.runs.size(), 1u);
  const SeedRun& co = comparison.co_search.seeds.runs[0];
  const fs::path co_dir = out / "co-search" / "seed-1";
  EXPECT_TRUE(co.within_budgets) << log.str();
  // The pair, measured independently: the NPU file read back, priced by the area model,
  // the model compiled and simulated on it.
  ASSERT_EQ(co.npu_file, (co_dir / "npu.yaml").string());
  const udc::npu_sim::NpuConfig found = udc::npu_sim::load_npu_config(co.npu_file);
  EXPECT_EQ(found.sram.size_bytes, 65536u);
  EXPECT_TRUE(found.macs_per_cycle == 64 || found.macs_per_cycle == 128) << found.macs_per_cycle;
  const double area = udc::npu_sim::area_of(found, udc::npu_sim::AreaModel{}).total();
  EXPECT_LE(area, area_budget);
  EXPECT_DOUBLE_EQ(area, co.area_mm2);
  const fm::ModelMeasurement measured =
      fm::measure_model(fm::read_model((co_dir / "model.udcm").string()), found);
  ASSERT_TRUE(measured.fits());
  EXPECT_LE(measured.weight_bytes, 400u);
  EXPECT_LE(measured.flash_bytes, 1000u);
  EXPECT_LE(measured.arena_bytes, 4000u);
  EXPECT_LE(measured.cycles, 20000);
  ASSERT_TRUE(co.hardware.has_value());
  EXPECT_EQ(measured.cycles, co.hardware->cycles);
  // The fine-tune ran on that NPU: derived.yaml names it.
  const TrainConfig derived = load_train_config((co_dir / "derived.yaml").string());
  ASSERT_EQ(derived.npu.files.size(), 1u);
  EXPECT_EQ(fs::canonical(derived.npu.files[0]), fs::canonical(co.npu_file));
  // The visited pairs: each on an allowed candidate, the Pareto front marked.
  const auto report =
      nlohmann::json::parse(udc::common::read_file((co_dir / "report.json").string()));
  EXPECT_EQ(report.at("hardware").at("npu_file"), co.npu_file);
  size_t pairs = 0, front = 0;
  for (const auto& c : report.at("derivation").at("candidates")) {
    EXPECT_LE(c.at("area_mm2").get<double>(), area_budget);
    ++pairs;
    front += c.at("pareto").get<bool>();
  }
  EXPECT_GT(pairs, 0u);
  EXPECT_GT(front, 0u);
  EXPECT_TRUE(fs::exists(co_dir / "pairs.csv"));
  EXPECT_TRUE(fs::exists(co_dir / "pareto.svg"));
  for (size_t h = 0; h < 6; ++h) {
    EXPECT_TRUE(fs::exists(co_dir / "hardware_tables" / (std::to_string(h) + ".json"))) << h;
  }

  // The network alone on candidate 0: that NPU, whole, in npu.yaml, named by derived.yaml,
  // the report and seeds.json with its area, and the model measured on it.
  const SeedRun& alone = comparison.alone[0].seeds.runs[0];
  EXPECT_TRUE(alone.within_budgets) << log.str();
  const fs::path alone_dir = out / "hardware-0" / "seed-1";
  ASSERT_EQ(alone.npu_file, (alone_dir / "npu.yaml").string());
  const udc::npu_sim::NpuConfig chosen = udc::npu_sim::load_npu_config(alone.npu_file);
  EXPECT_EQ(chosen.macs_per_cycle, 64u);
  EXPECT_EQ(chosen.sram.size_bytes, 65536u);
  ASSERT_TRUE(alone.hardware.has_value());
  EXPECT_EQ(fm::measure_model(fm::read_model((alone_dir / "model.udcm").string()), chosen).cycles,
            alone.hardware->cycles);
  const double chosen_area = udc::npu_sim::area_of(chosen, udc::npu_sim::AreaModel{}).total();
  EXPECT_DOUBLE_EQ(alone.area_mm2, chosen_area);
  const TrainConfig alone_derived = load_train_config((alone_dir / "derived.yaml").string());
  ASSERT_EQ(alone_derived.npu.files.size(), 1u);
  EXPECT_EQ(fs::canonical(alone_derived.npu.files[0]), fs::canonical(alone.npu_file));
  const auto alone_report =
      nlohmann::json::parse(udc::common::read_file((alone_dir / "report.json").string()));
  EXPECT_EQ(alone_report.at("npu_config"), alone.npu_file);
  const auto summary =
      nlohmann::json::parse(udc::common::read_file(comparison.alone[0].seeds.summary_path));
  EXPECT_EQ(summary.at("runs").at(0).at("npu_file"), alone.npu_file);
  EXPECT_DOUBLE_EQ(summary.at("runs").at(0).at("area_mm2").get<double>(), chosen_area);
  EXPECT_NE(format_seeds_table(comparison.alone[0].seeds).find("mm^2"), std::string::npos);

  // The comparison holds both ways' scores as their own reports give them.
  const auto compared = nlohmann::json::parse(udc::common::read_file(comparison.json_path));
  ASSERT_EQ(compared.at("ways").size(), 2u);
  EXPECT_EQ(compared.at("seeds"), nlohmann::json::array({1}));
  EXPECT_EQ(compared.at("ways").at(0).at("runs").size(), 1u);
  EXPECT_EQ(compared.at("sequential_pick").at("candidate"), 0u);
  EXPECT_NEAR(compared.at("co_search_minus_sequential").get<double>(),
              100 * (report.at("test_accuracy").get<double>() -
                     alone_report.at("test_accuracy").get<double>()),
              1e-9);
  EXPECT_DOUBLE_EQ(compared.at("sequential_seconds").get<double>(), alone.seconds);
  EXPECT_NE(format_comparison(comparison).find("alone on 0 *"), std::string::npos);
  EXPECT_TRUE(fs::exists(comparison.csv_path));
  fs::remove_all(out);

  // Budgets no candidate meets are reported before any training, naming the candidates.
  config.budgets.area_mm2 = 0.1;
  expect_search_error(config, options, "no hardware candidate");
  config.budgets.area_mm2 = area_budget;
  config.search.derivation_finetune_epochs = 2;
  expect_search_error(config, options, "finetune_epochs");
  config.search.derivation_finetune_epochs = 0;
  // A comparison names a candidate that does not exist, and a space of one, before training.
  EXPECT_THROW(compare_with_network_alone(config, base, options, {0, 6}, {1}),
               udc::common::ConfigError);
  config.hardware = config.hardware.only(0);
  EXPECT_THROW(compare_with_network_alone(config, base, options, {0}, {1}),
               udc::common::ConfigError);
  EXPECT_FALSE(fs::exists(out / "hardware-0"));
  fs::remove_all(out);
}

TEST(Search, SuperResolutionSearchEndsInAVerifiedUpscalerThatFits) {
  const fs::path config_path =
      fs::temp_directory_path() / ("udc_tiny_sr_search_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(config_path)
      << "name: tiny-sr\ninput: [12, 12, 1]\n"
         "space:\n  bits: [2, 4, 8]\n  sparsity: [0.0, 0.5, 0.9]\n  anchor: bicubic\n  blocks:\n"
         "    - {name: feature, ops: [conv], widths: [4, 8]}\n"
         "    - {name: b1, ops: [conv, separable, skip], widths: [4, 8]}\n"
         "budgets: {weight_bytes: 300}\n"
         "data: {set: sr-photos, train_subset: 3, test_subset: 1, augment: {flip: true}}\n"
         "search: {batch_size: 16, warmup: {epochs: 1}, search: {epochs: 1}, "
         "max_steps_per_epoch: 3, flash_refresh_steps: 2, lagrange_rate: 1.0, "
         "derivation: {samples: 2, holdout_fraction: 0.34}}\n"
         "finetune: {batch_size: 16, warmup: {epochs: 1}, compress: {epochs: 1}, "
         "finetune: {epochs: 1}, max_steps_per_epoch: 2}\n"
         "npu: " UDC_CONFIG_DIR
         "/npu/u55-128-deep-embedded.yaml\n"
         "verify_images: 4\n";
  const SearchConfig config = load_search_config(config_path.string());
  fs::remove(config_path);
  EXPECT_EQ(config.space.scale, 2u);
  EXPECT_EQ(config.space.blocks.back().name, "upscale");
  EXPECT_EQ(config.space.anchor, AnchorKind::Bicubic);
  const fs::path out = fresh_output_dir("udc_sr_search_");
  SearchOptions options;
  options.output_dir = out.string();
  const SearchResult result =
      run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
  EXPECT_TRUE(result.within_budgets);
  EXPECT_EQ(result.metric, Metric::Psnr);
  const fm::Model model = fm::read_model(result.model_path);
  EXPECT_EQ(fm::upscaler_shape(model).scale, 2u);
  // The anchor's convolution and ADD are in the model whose streams the budget counts.
  EXPECT_TRUE(std::any_of(model.operations.begin(), model.operations.end(),
                          [](const fm::Operation& op) { return op.name == "anchor_add"; }));
  const fm::CompileResult compiled = fm::compile(model, npu());
  ASSERT_TRUE(compiled.fits());
  uint64_t streams = 0;
  for (const fm::LayerCommands& layer : compiled.compiled.layers)
    streams += layer.weight_stream_bytes;
  EXPECT_LE(streams, 300u);
  const auto report = nlohmann::json::parse(udc::common::read_file(result.report_path));
  EXPECT_EQ(report["test_psnr_db"].get<double>(), result.test_score);
  EXPECT_EQ(report["verified_images"].get<uint64_t>(), 4u);
  // The derived architecture trains again with udc train: an upscaler config.
  const TrainConfig derived = load_train_config((out / "derived.yaml").string());
  EXPECT_TRUE(derived.data.super_resolution());
  EXPECT_EQ(derived.architecture.layers.back().kind, LayerKind::DepthToSpace);
  EXPECT_FALSE(derived.architecture.batch_statistics);
  EXPECT_EQ(derived.architecture.anchor, AnchorKind::Bicubic);
  fs::remove_all(out);
}

TEST(Search, ImpossibleBudgetIsReportedBeforeAnyTraining) {
  // The data folder does not exist: the budget error must come first.
  const SearchConfig config = tiny_search_config("{flash_bytes: 20}", "/nonexistent/fmnist");
  const fs::path out = fs::temp_directory_path() / ("udc_search_bad_" + std::to_string(::getpid()));
  SearchOptions options;
  options.output_dir = out.string();
  try {
    run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
    FAIL() << "expected a BudgetError";
  } catch (const BudgetError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("flash_bytes = 20 cannot be met"), std::string::npos) << what;
    EXPECT_NE(what.find("flash image"), std::string::npos) << what;
  }
  fs::remove_all(out);
}
