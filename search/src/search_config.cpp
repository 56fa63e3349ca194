#include "udc/search/search_config.hpp"

#include <algorithm>
#include <set>

#include "udc/common/yaml_section.hpp"

namespace udc::search {

using common::YamlSection;

namespace {

OperatorPtr parse_op(YamlSection& block, size_t index, const std::string& text) {
  if (OperatorPtr op = parse_operator(text)) return op;
  block.fail("ops[" + std::to_string(index) + "]",
             "'" + text + "' is not an operator: " + operator_spellings());
}

void read_space(YamlSection space, SearchSpace& s) {
  const std::vector<int64_t> bits = space.integers("bits", {2, 4, 8}, 2, 8);
  s.bits.assign(bits.begin(), bits.end());
  s.sparsity = space.numbers("sparsity", s.sparsity, 0.0, 0.99);
  auto ascending_unique = [](auto v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) == v.end();
  };
  if (!ascending_unique(s.bits)) space.fail("bits", "a bitwidth is listed twice");
  if (!ascending_unique(s.sparsity)) space.fail("sparsity", "a sparsity level is listed twice");
  std::sort(s.bits.begin(), s.bits.end());
  std::sort(s.sparsity.begin(), s.sparsity.end());

  std::vector<YamlSection> blocks = space.sections("blocks");
  if (blocks.empty()) space.fail("blocks", "expected a non-empty list of blocks");
  std::set<std::string> names;
  std::vector<uint32_t> input_widths{s.channels};
  for (size_t i = 0; i < blocks.size(); ++i) {
    YamlSection& block = blocks[i];
    BlockSpace b;
    b.name = block.string("name", "block" + std::to_string(i));
    if (!names.insert(b.name).second || b.name == "classifier" || b.name == "upscale") {
      block.fail("name", "'" + b.name + "' used twice");
    }
    const std::vector<std::string> ops = block.strings("ops", {"conv"});
    for (size_t k = 0; k < ops.size(); ++k) {
      const OperatorPtr op = parse_op(block, k, ops[k]);
      for (const OperatorPtr& seen : b.ops) {
        if (seen->name() == op->name()) block.fail("ops", "'" + ops[k] + "' listed twice");
      }
      b.ops.push_back(op);
    }
    const std::vector<int64_t> widths = block.integers("widths", {}, 1, 4096);
    if (widths.empty()) block.fail("widths", "missing (required): output channel choices");
    b.widths.assign(widths.begin(), widths.end());
    if (!ascending_unique(b.widths)) block.fail("widths", "a width is listed twice");
    std::sort(b.widths.begin(), b.widths.end());
    b.kernel = uint32_t(block.integer("kernel", 3, 1, 15));
    b.stride = uint32_t(block.integer("stride", 1, 1, 4));
    if (s.scale > 0 && b.stride != 1) {
      block.fail("stride",
                 "a super-resolution space keeps the resolution until its upscaler "
                 "(stride 1)");
    }
    block.finish();
    const bool skip = std::any_of(b.ops.begin(), b.ops.end(),
                                  [](const OperatorPtr& o) { return o->passes_input(); });
    if (skip && b.ops.size() == 1) block.fail("ops", "skip needs another operator beside it");
    if (skip && b.stride != 1) block.fail("ops", "skip needs stride 1");
    // A skipped block passes its input on, so its width choices must be its input's.
    if (skip && b.widths != input_widths) {
      block.fail("widths", "a block that may be skipped must offer its input's widths");
    }
    input_widths = b.widths;
    s.blocks.push_back(b);
  }
  s.anchor = read_anchor(space, s.scale > 0);
  s.weight_step = read_weight_step_rule(space);
  BlockSpace last;
  if (s.scale > 0) {
    last.name = "upscale";
    last.ops = {upscaler_operator(s.scale)};
    last.widths = {s.scale * s.scale * s.channels};
    last.kernel = uint32_t(space.integer("upscale_kernel", 3, 1, 15));
  } else {
    last.name = "classifier";
    last.ops = {classifier_operator()};
    last.widths = {s.classes};
    last.kernel = 1;
  }
  s.blocks.push_back(last);
  space.finish();
}

void read_budgets(YamlSection budgets, Budgets& b) {
  const int64_t big = int64_t{1} << 50;
  if (budgets.has("weight_bytes"))
    b.weight_bytes = uint64_t(budgets.integer("weight_bytes", 0, 1, big));
  if (budgets.has("flash_bytes"))
    b.flash_bytes = uint64_t(budgets.integer("flash_bytes", 0, 1, big));
  if (budgets.has("sram_bytes")) b.sram_bytes = uint64_t(budgets.integer("sram_bytes", 0, 1, big));
  if (budgets.has("cycles")) b.cycles = budgets.number("cycles", 0, 1, 1e15);
  if (budgets.has("milliseconds")) b.milliseconds = budgets.number("milliseconds", 0, 1e-6, 1e9);
  if (budgets.has("area_mm2")) b.area_mm2 = budgets.number("area_mm2", 0, 1e-9, 1e6);
  budgets.finish();
}

void read_search(YamlSection search, SearchStageSpec& s) {
  common::read_params(search, search_params(), s);
  search.finish();
}

}  // namespace

const std::vector<common::Param<SearchStageSpec>>& search_params() {
  using common::number_param;
  using S = SearchStageSpec;
  static const std::vector<common::Param<S>> params{
      number_param<S>(
          "batch_size", [](auto& s) -> auto& { return s.batch_size; }, 1, 65536, "images",
          "images per training step"),
      number_param<S>(
          "warmup.epochs", [](auto& s) -> auto& { return s.warmup.epochs; }, 0, 10000, "epochs",
          "warm-up of the shared weights under uniformly sampled architectures"),
      number_param<S>(
          "warmup.lr", [](auto& s) -> auto& { return s.warmup.learning_rate; }, 0.0, 10.0, "",
          "initial learning rate of the warm-up (cosine decay)"),
      number_param<S>(
          "search.epochs", [](auto& s) -> auto& { return s.search.epochs; }, 0, 10000, "epochs",
          "joint search of weights and architecture"),
      number_param<S>(
          "search.lr", [](auto& s) -> auto& { return s.search.learning_rate; }, 0.0, 10.0, "",
          "initial learning rate of the weights in the search"),
      number_param<S>(
          "arch_lr", [](auto& s) -> auto& { return s.architecture_learning_rate; }, 0.0, 100, "",
          "Adam learning rate of the choice logits"),
      number_param<S>(
          "weight_decay", [](auto& s) -> auto& { return s.weight_decay; }, 0.0, 1.0, "",
          "decoupled weight decay of the shared weights"),
      number_param<S>(
          "temperature.initial", [](auto& s) -> auto& { return s.temperature_initial; }, 1e-3, 1e3,
          "", "Gumbel-softmax temperature at the start of the search"),
      number_param<S>(
          "temperature.final", [](auto& s) -> auto& { return s.temperature_final; }, 1e-3, 1e3, "",
          "Gumbel-softmax temperature at the end (exponential schedule)"),
      number_param<S>(
          "gumbel_noise.initial", [](auto& s) -> auto& { return s.noise_initial; }, 0.0, 10.0, "",
          "scale of the Gumbel noise at the start (1: sample, 0: follow)"),
      number_param<S>(
          "gumbel_noise.final", [](auto& s) -> auto& { return s.noise_final; }, 0.0, 10.0, "",
          "scale of the Gumbel noise at the end (linear schedule)"),
      common::choice_param<S>(
          "operators", [](auto& s) -> auto& { return s.operators; }, {"mixed", "sampled"},
          "operator relaxation: every operator weighted (mixed) or one sampled per step"),
      common::choice_param<S>(
          "strategy", [](auto& s) -> auto& { return s.strategy; }, {"dnas", "random"},
          "dnas: learn the choices; random: the control, choices drawn uniformly (no "
          "architecture learning), ranked, repaired and fine-tuned the same way"),
      number_param<S>(
          "lagrange_rate", [](auto& s) -> auto& { return s.lagrange_rate; }, 0.0, 100.0, "1/step",
          "growth of a budget's multiplier per unit of relative excess"),
      number_param<S>(
          "budget_margin", [](auto& s) -> auto& { return s.budget_margin; }, 0.0, 0.5, "",
          "fraction below each budget that the search aims at"),
      number_param<S>(
          "derivation.samples", [](auto& s) -> auto& { return s.derivation_samples; }, 0, 10000,
          "architectures", "candidates sampled from the learnt distribution"),
      number_param<S>(
          "derivation.finetune_epochs",
          [](auto& s) -> auto& { return s.derivation_finetune_epochs; }, 0, 10000, "epochs",
          "0: rank the candidates with inherited weights; N: rank them after the fine-tune "
          "recipe's first N epochs each, and report the rank correlation"),
      number_param<S>(
          "derivation.hardware", [](auto& s) -> auto& { return s.derivation_hardware; }, 1, 4096,
          "candidates",
          "co-search: the most probable hardware candidates (within the area budget) the "
          "derivation derives architectures for, the pairs ranked together"),
      number_param<S>(
          "derivation.holdout_fraction", [](auto& s) -> auto& { return s.holdout_fraction; }, 0.0,
          0.5, "", "training images held out to rank the candidates"),
      number_param<S>(
          "architecture_fraction", [](auto& s) -> auto& { return s.architecture_fraction; }, 0.0,
          0.9, "",
          "bi-level search: training images kept for the architecture steps (0: single-level, "
          "both steps on the same batches)"),
      number_param<S>(
          "flash_refresh_steps", [](auto& s) -> auto& { return s.flash_refresh_steps; }, 1, 1 << 30,
          "steps", "steps between measurements of the weight and flash tables"),
      number_param<S>(
          "prune_interval", [](auto& s) -> auto& { return s.prune_interval; }, 1, 1 << 30, "steps",
          "steps between magnitude-mask updates"),
      number_param<S>(
          "seed", [](auto& s) -> auto& { return s.seed; }, 0, double(int64_t{1} << 62), "",
          "seed of initialisation, sampling and batch order"),
      number_param<S>(
          "threads", [](auto& s) -> auto& { return s.threads; }, 1, 256, "threads",
          "Torch intra-op threads"),
      number_param<S>(
          "max_steps_per_epoch", [](auto& s) -> auto& { return s.max_steps_per_epoch; }, 0,
          double(int64_t{1} << 40), "steps", "cap on steps per epoch (0: whole epochs)"),
  };
  return params;
}

SearchConfig load_search_config(const std::string& path) {
  SearchConfig config;
  config.file = path;
  YamlSection root(path, common::load_yaml_file(path), "");
  SearchSpace& space = config.space;
  space.name = root.string("name", space.name);
  const std::vector<int64_t> input = root.integers("input", {28, 28, 1}, 1, 4096);
  if (input.size() != 3) root.fail("input", "expected [height, width, channels]");
  space.height = uint32_t(input[0]);
  space.width = uint32_t(input[1]);
  space.channels = uint32_t(input[2]);
  config.data = read_data_spec(root.section("data"));
  if (config.data.super_resolution()) {
    if (root.has("classes")) {
      root.fail("classes",
                "a super-resolution search (data.set " + config.data.set + ") has no classes");
    }
    space.classes = 0;
    space.scale = config.data.scale;
    space.batch_statistics = false;
  } else {
    space.classes = uint32_t(root.integer("classes", space.classes, 2, 100000));
  }
  read_space(root.section("space"), space);
  read_budgets(root.section("budgets"), config.budgets);
  read_search(root.section("search"), config.search);
  config.finetune = read_train_spec(root.section("finetune"));
  config.npu = read_npu_source(root);
  if (config.npu.files.empty()) {
    root.fail("npu", "missing (required): the NPU configuration whose costs the search uses");
  }
  YamlSection hardware = root.section("hardware");
  config.hardware = npu_sim::read_hardware_space(hardware);
  YamlSection area = root.section("area");
  config.area = npu_sim::read_area_model(area);
  config.verify_images = uint32_t(root.integer("verify_images", config.verify_images, 0, 1 << 20));
  config.baselines = resolve_path(path, root.string("baselines", ""));
  if (!config.budgets.any()) {
    root.fail("budgets",
              "no budget set: give at least one of weight_bytes, flash_bytes, sram_bytes, cycles, "
              "milliseconds, area_mm2");
  }
  root.finish();
  return config;
}

}  // namespace udc::search
