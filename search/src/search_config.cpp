#include "udc/search/search_config.hpp"

#include <algorithm>
#include <set>

#include "udc/common/yaml_section.hpp"

namespace udc::search {

using common::YamlSection;

std::string OpChoice::name() const {
  switch (op) {
    case BlockOp::Conv:
      return "conv";
    case BlockOp::Separable:
      return "separable";
    case BlockOp::InvertedResidual:
      return "ir" + std::to_string(expansion);
    case BlockOp::Skip:
      return "skip";
    case BlockOp::Classifier:
      return "classifier";
  }
  return "?";
}

namespace {

OpChoice parse_op(YamlSection& block, size_t index, const std::string& text) {
  const std::string key = "ops[" + std::to_string(index) + "]";
  if (text == "conv") return {BlockOp::Conv, 1};
  if (text == "separable") return {BlockOp::Separable, 1};
  if (text == "skip") return {BlockOp::Skip, 1};
  if (text.size() > 2 && text.compare(0, 2, "ir") == 0 &&
      text.find_first_not_of("0123456789", 2) == std::string::npos && text.size() <= 4) {
    const uint32_t e = uint32_t(std::stoul(text.substr(2)));
    if (e >= 1 && e <= 16) return {BlockOp::InvertedResidual, e};
  }
  block.fail(key, "'" + text + "' is not an operator: conv, separable, ir<expansion 1..16>, skip");
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
    if (!names.insert(b.name).second || b.name == "classifier") {
      block.fail("name", "'" + b.name + "' used twice");
    }
    const std::vector<std::string> ops = block.strings("ops", {"conv"});
    for (size_t k = 0; k < ops.size(); ++k) {
      const OpChoice op = parse_op(block, k, ops[k]);
      for (const OpChoice& seen : b.ops) {
        if (seen.name() == op.name()) block.fail("ops", "'" + ops[k] + "' listed twice");
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
    block.finish();
    const bool skip = std::any_of(b.ops.begin(), b.ops.end(),
                                  [](const OpChoice& o) { return o.op == BlockOp::Skip; });
    if (skip && b.ops.size() == 1) block.fail("ops", "skip needs another operator beside it");
    if (skip && b.stride != 1) block.fail("ops", "skip needs stride 1");
    // A skipped block passes its input on, so its width choices must be its input's.
    if (skip && b.widths != input_widths) {
      block.fail("widths", "a block that may be skipped must offer its input's widths");
    }
    input_widths = b.widths;
    s.blocks.push_back(b);
  }
  BlockSpace classifier;
  classifier.name = "classifier";
  classifier.ops = {{BlockOp::Classifier, 1}};
  classifier.widths = {s.classes};
  classifier.kernel = 1;
  s.blocks.push_back(classifier);
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
  budgets.finish();
}

void read_search(YamlSection search, SearchStageSpec& s) {
  s.batch_size = uint32_t(search.integer("batch_size", s.batch_size, 1, 65536));
  read_phase(search.section("warmup"), s.warmup);
  read_phase(search.section("search"), s.search);
  s.architecture_learning_rate = search.number("arch_lr", s.architecture_learning_rate, 0.0, 100);
  s.weight_decay = search.number("weight_decay", s.weight_decay, 0.0, 1.0);
  YamlSection temperature = search.section("temperature");
  s.temperature_initial = temperature.number("initial", s.temperature_initial, 1e-3, 1e3);
  s.temperature_final = temperature.number("final", s.temperature_final, 1e-3, 1e3);
  temperature.finish();
  YamlSection noise = search.section("gumbel_noise");
  s.noise_initial = noise.number("initial", s.noise_initial, 0.0, 10.0);
  s.noise_final = noise.number("final", s.noise_final, 0.0, 10.0);
  noise.finish();
  s.operators = search.choice("operators", "mixed", {"mixed", "sampled"}) == "sampled"
                    ? SearchStageSpec::OperatorRelaxation::Sampled
                    : SearchStageSpec::OperatorRelaxation::Mixed;
  s.lagrange_rate = search.number("lagrange_rate", s.lagrange_rate, 0.0, 100.0);
  s.budget_margin = search.number("budget_margin", s.budget_margin, 0.0, 0.5);
  YamlSection derivation = search.section("derivation");
  s.derivation_samples = uint32_t(derivation.integer("samples", s.derivation_samples, 0, 10000));
  s.holdout_fraction = derivation.number("holdout_fraction", s.holdout_fraction, 0.0, 0.5);
  derivation.finish();
  s.flash_refresh_steps =
      uint32_t(search.integer("flash_refresh_steps", s.flash_refresh_steps, 1, 1 << 30));
  s.prune_interval = uint32_t(search.integer("prune_interval", s.prune_interval, 1, 1 << 30));
  s.seed = uint64_t(search.integer("seed", int64_t(s.seed), 0, int64_t{1} << 62));
  s.threads = uint32_t(search.integer("threads", s.threads, 1, 256));
  s.max_steps_per_epoch = size_t(search.integer("max_steps_per_epoch", 0, 0, int64_t{1} << 40));
  search.finish();
}

}  // namespace

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
  space.classes = uint32_t(root.integer("classes", space.classes, 2, 100000));
  read_space(root.section("space"), space);
  read_budgets(root.section("budgets"), config.budgets);
  config.data = read_data_spec(root.section("data"));
  read_search(root.section("search"), config.search);
  config.finetune = read_train_spec(root.section("finetune"));
  config.npu = read_npu_source(root);
  if (config.npu.files.empty()) {
    root.fail("npu", "missing (required): the NPU configuration whose costs the search uses");
  }
  config.verify_images = uint32_t(root.integer("verify_images", config.verify_images, 0, 1 << 20));
  config.baselines = resolve_path(path, root.string("baselines", ""));
  if (!config.budgets.any()) {
    root.fail("budgets",
              "no budget set: give at least one of weight_bytes, flash_bytes, sram_bytes, cycles, "
              "milliseconds");
  }
  root.finish();
  return config;
}

}  // namespace udc::search
