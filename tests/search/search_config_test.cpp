// Search configurations: the shipped presets parse; bad spaces and budgets are rejected
// with the file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "udc/common/yaml_section.hpp"
#include "udc/search/search_config.hpp"

namespace fs = std::filesystem;
using namespace udc::search;

namespace {

std::string error_for(const std::string& yaml) {
  const fs::path path =
      fs::temp_directory_path() / ("udc_search_cfg_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << yaml;
  try {
    load_search_config(path.string());
  } catch (const udc::common::ConfigError& e) {
    fs::remove(path);
    return e.what();
  }
  fs::remove(path);
  return "";
}

std::string with_blocks(const std::string& blocks,
                        const std::string& budgets = "{flash_bytes: 1000}") {
  return "space:\n  blocks:\n" + blocks + "budgets: " + budgets + "\nnpu: x.yaml\n";
}

}  // namespace

TEST(SearchConfig, ShippedPresetsParse) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(UDC_CONFIG_DIR) / "search")) {
    if (entry.path().extension() != ".yaml") continue;
    const SearchConfig config = load_search_config(entry.path().string());
    ASSERT_EQ(config.npu.files.size(), 1u);
    EXPECT_TRUE(fs::exists(config.npu.files[0])) << config.npu.files[0];
    EXPECT_TRUE(config.budgets.any());
    // Classification spaces end in the classifier, super-resolution spaces in the upscaler
    // to scale^2 sub-pixels of each image channel.
    const bool upscaler = config.data.super_resolution();
    EXPECT_EQ(config.space.blocks.back().ops.front()->name(), upscaler ? "upscaler" : "classifier");
    EXPECT_EQ(config.space.blocks.back().widths,
              std::vector<uint32_t>{upscaler ? config.space.scale * config.space.scale *
                                                   config.space.channels
                                             : config.space.classes});
    EXPECT_EQ(config.space.blocks.back().ops.front()->upscales(), config.space.scale);
    if (!config.baselines.empty()) {
      EXPECT_TRUE(fs::exists(config.baselines)) << config.baselines;
    }
    ++count;
  }
  EXPECT_GE(count, 2);
}

TEST(SearchConfig, ReadsChoicesSorted) {
  const fs::path path = fs::temp_directory_path() / "udc_search_cfg_ok.yaml";
  std::ofstream(path) << "space:\n  bits: [8, 2]\n  sparsity: [0.5, 0]\n  blocks:\n"
                         "    - {name: a, ops: [conv, ir6], widths: [16, 8], stride: 2}\n"
                         "    - {name: b, ops: [separable, skip], widths: [8, 16]}\n"
                         "budgets: {milliseconds: 0.5, weight_bytes: 900}\nnpu: n.yaml\n"
                         "search: {operators: sampled, derivation: {samples: 3, "
                         "holdout_fraction: 0.2}}\n";
  const SearchConfig c = load_search_config(path.string());
  fs::remove(path);
  EXPECT_EQ(c.space.bits, (std::vector<uint32_t>{2, 8}));
  EXPECT_EQ(c.space.sparsity, (std::vector<double>{0.0, 0.5}));
  ASSERT_EQ(c.space.blocks.size(), 3u);
  EXPECT_EQ(c.space.blocks[0].widths, (std::vector<uint32_t>{8, 16}));
  EXPECT_EQ(c.space.blocks[0].ops[1]->name(), "ir6");
  EXPECT_EQ(c.space.blocks[0].ops[1]->expansion(), 6u);
  EXPECT_TRUE(c.space.blocks[0].ops[1]->adds_input());
  EXPECT_EQ(c.space.blocks[1].ops[1]->name(), "skip");
  EXPECT_TRUE(c.space.blocks[1].ops[1]->passes_input());
  EXPECT_DOUBLE_EQ(*c.budgets.milliseconds, 0.5);
  EXPECT_FALSE(c.budgets.flash_bytes.has_value());
  EXPECT_EQ(*c.budgets.weight_bytes, 900u);
  EXPECT_EQ(c.search.operators, SearchStageSpec::OperatorRelaxation::Sampled);
  EXPECT_EQ(c.search.derivation_samples, 3u);
  EXPECT_DOUBLE_EQ(c.search.holdout_fraction, 0.2);
}

TEST(SearchConfig, BadInputNamesKeyAndReason) {
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv, pool], widths: [8]}\n"))
                .find("space.blocks[0].ops[1]: 'pool' is not an operator"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv, skip], widths: [8], stride: 2}\n"))
                .find("skip needs stride 1"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8]}\n"
                                  "    - {ops: [conv, skip], widths: [8, 16]}\n"))
                .find("space.blocks[1].widths: a block that may be skipped must offer its input"),
            std::string::npos);
  EXPECT_NE(error_for("space:\n  weight_step: mse\n  blocks:\n    - {ops: [conv], widths: [8]}\n"
                      "budgets: {flash_bytes: 1000}\nnpu: x.yaml\n")
                .find("space.weight_step: 'mse' is not one of"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8, 8]}\n")).find("listed twice"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv]}\n")).find("widths: missing"),
            std::string::npos);
  EXPECT_NE(
      error_for(with_blocks("    - {ops: [conv], widths: [8]}\n", "{}")).find("budgets: no budget"),
      std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8]}\n", "{flash: 100}"))
                .find("budgets.flash"),
            std::string::npos);
  EXPECT_NE(error_for("space:\n  blocks:\n    - {ops: [conv], widths: [8]}\nbudgets: "
                      "{sram_bytes: 10}\n")
                .find("npu: missing"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8]}\n") +
                      "search: {temperature: {initial: 0}}\n")
                .find("search.temperature.initial"),
            std::string::npos);
  EXPECT_NE(
      error_for(with_blocks("    - {ops: [conv], widths: [8]}\n") + "search: {operators: soft}\n")
          .find("search.operators"),
      std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8]}\n") +
                      "search: {derivation: {holdout_fraction: 0.9}}\n")
                .find("search.derivation.holdout_fraction"),
            std::string::npos);
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8]}\n") +
                      "search: {derivation: {candidates: 4}}\n")
                .find("search.derivation.candidates"),
            std::string::npos);
  // Super-resolution spaces: no classes, stride 1 until the upscaler.
  EXPECT_NE(error_for(with_blocks("    - {ops: [conv], widths: [8], stride: 2}\n") +
                      "data: {set: sr-photos}\n")
                .find("space.blocks[0].stride: a super-resolution space keeps the resolution"),
            std::string::npos);
  EXPECT_NE(error_for("classes: 10\n" + with_blocks("    - {ops: [conv], widths: [8]}\n") +
                      "data: {set: sr-photos}\n")
                .find("classes: a super-resolution search (data.set sr-photos) has no classes"),
            std::string::npos);
  EXPECT_NE(error_for("space:\n  anchor: nearest\n  blocks:\n    - {ops: [conv], widths: [8]}\n"
                      "budgets: {flash_bytes: 1000}\nnpu: x.yaml\n")
                .find("space.anchor: only a super-resolution network"),
            std::string::npos);
}

// Each operator's weighted layers, in execution order, as the paper's operators are built:
// roles, which take a sparsity choice (never a depthwise), and where channels come from.
TEST(SearchConfig, OperatorLayersDescribeEachOperator) {
  auto roles = [](const std::string& name) {
    const OperatorPtr op = name == "classifier" ? classifier_operator() : parse_operator(name);
    std::string text;
    for (const OperatorLayer& l : op->layers()) {
      text += std::string(text.empty() ? "" : " ") + l.role + (l.prunable ? "" : "(dense)");
    }
    return text;
  };
  EXPECT_EQ(roles("conv"), "conv");
  EXPECT_EQ(roles("separable"), "dw(dense) pw");
  EXPECT_EQ(roles("ir4"), "expand dw(dense) project");
  EXPECT_EQ(roles("ir1"), "dw(dense) project");
  EXPECT_EQ(roles("classifier"), "fc");
  EXPECT_EQ(roles("skip"), "");
  for (const OperatorPtr& op : {parse_operator("conv"), parse_operator("separable"),
                                parse_operator("ir6"), classifier_operator()}) {
    const std::vector<OperatorLayer>& layers = op->layers();
    // A chain: the first layer reads the block input, the last writes the block output,
    // and each layer reads where the previous one wrote.
    EXPECT_FALSE(layers.front().from_hidden) << op->name();
    EXPECT_FALSE(layers.back().to_hidden) << op->name();
    for (size_t i = 1; i < layers.size(); ++i) {
      EXPECT_EQ(layers[i].from_hidden, layers[i - 1].to_hidden) << op->name() << " layer " << i;
    }
    for (const OperatorLayer& l : layers) {
      if (l.shape == OperatorLayer::Shape::Depthwise) {
        EXPECT_FALSE(l.prunable) << op->name();
      }
    }
  }
}

// The registry recognises exactly the spellings it lists; the classifier is appended by the
// reader, never named in a config.
TEST(SearchConfig, OperatorRegistryParsesOnlyItsSpellings) {
  for (const char* name : {"conv", "separable", "skip", "ir1", "ir6", "ir16"}) {
    const OperatorPtr op = parse_operator(name);
    ASSERT_NE(op, nullptr) << name;
    EXPECT_EQ(op->name(), name);
  }
  for (const char* name : {"ir0", "ir17", "ir", "ir-1", "ir123", "classifier", "Conv", ""}) {
    EXPECT_EQ(parse_operator(name), nullptr) << name;
  }
  EXPECT_EQ(operator_spellings(), "conv, separable, ir<expansion 1..16>, skip");
}

// Every operator derives layers that carry its choices in its layers' order: one bitwidth
// per weighted layer, the chosen sparsity on prunable layers and none on dense ones.
TEST(SearchConfig, DerivedLayersCarryEachWeightedLayersChoice) {
  for (const OperatorPtr& op :
       {parse_operator("conv"), parse_operator("separable"), parse_operator("ir1"),
        parse_operator("ir4"), parse_operator("skip"), classifier_operator()}) {
    ChosenOperator chosen{"blk", 24, 5, 2, {}, {}};
    for (size_t l = 0; l < op->layers().size(); ++l) {
      chosen.bits.push_back(uint32_t(2 + l));
      chosen.sparsity.push_back(op->prunable(l) ? 0.25 * double(l + 1) : 0.0);
    }
    std::vector<LayerSpec> derived;
    op->derive(chosen, derived);
    // Flatten the derived layers to their weighted (sub-)layers' bits and sparsity.
    std::vector<uint32_t> bits;
    std::vector<double> sparsity;
    for (const LayerSpec& l : derived) {
      if (l.kind == LayerKind::InvertedResidual) {
        EXPECT_EQ(l.expansion, op->expansion());
        for (size_t i = 0; i < l.sublayer_count(); ++i) {
          bits.push_back(l.sublayer_bits_at(i));
          sparsity.push_back(l.sublayer_sparsity_at(i));
        }
      } else if (l.kind != LayerKind::GlobalAvgPool) {
        bits.push_back(l.weight_bits);
        sparsity.push_back(l.sparsity);
      }
      EXPECT_EQ(l.name.rfind(
                    op->pools_globally() && l.kind == LayerKind::GlobalAvgPool ? "pool" : "blk", 0),
                0u)
          << op->name() << " " << l.name;
    }
    EXPECT_EQ(bits, chosen.bits) << op->name();
    EXPECT_EQ(sparsity, chosen.sparsity) << op->name();
    // The layer writing the block's output has the chosen width (a depthwise keeps its
    // input's).
    if (!derived.empty()) {
      EXPECT_EQ(derived.back().out_channels, 24u) << op->name();
    }
  }
}
