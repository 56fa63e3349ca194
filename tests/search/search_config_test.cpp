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
    EXPECT_EQ(config.space.blocks.back().ops.front().op, BlockOp::Classifier);
    EXPECT_EQ(config.space.blocks.back().widths, std::vector<uint32_t>{config.space.classes});
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
  EXPECT_EQ(c.space.blocks[0].ops[1].op, BlockOp::InvertedResidual);
  EXPECT_EQ(c.space.blocks[0].ops[1].expansion, 6u);
  EXPECT_EQ(c.space.blocks[1].ops[1].name(), "skip");
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
}

// Each operator's weighted layers, in execution order, as the paper's operators are built:
// roles, which take a sparsity choice (never a depthwise), and where channels come from.
TEST(SearchConfig, OperatorLayersDescribeEachOperator) {
  auto roles = [](const OpChoice& op) {
    std::string text;
    for (const OperatorLayer& l : operator_layers(op)) {
      text += std::string(text.empty() ? "" : " ") + l.role + (l.prunable ? "" : "(dense)");
    }
    return text;
  };
  EXPECT_EQ(roles({BlockOp::Conv, 1}), "conv");
  EXPECT_EQ(roles({BlockOp::Separable, 1}), "dw(dense) pw");
  EXPECT_EQ(roles({BlockOp::InvertedResidual, 4}), "expand dw(dense) project");
  EXPECT_EQ(roles({BlockOp::InvertedResidual, 1}), "dw(dense) project");
  EXPECT_EQ(roles({BlockOp::Classifier, 1}), "fc");
  EXPECT_EQ(roles({BlockOp::Skip, 1}), "");
  for (const OpChoice& op :
       {OpChoice{BlockOp::Conv, 1}, OpChoice{BlockOp::Separable, 1},
        OpChoice{BlockOp::InvertedResidual, 6}, OpChoice{BlockOp::Classifier, 1}}) {
    const std::vector<OperatorLayer> layers = operator_layers(op);
    // A chain: the first layer reads the block input, the last writes the block output,
    // and each layer reads where the previous one wrote.
    EXPECT_FALSE(layers.front().from_hidden) << op.name();
    EXPECT_FALSE(layers.back().to_hidden) << op.name();
    for (size_t i = 1; i < layers.size(); ++i) {
      EXPECT_EQ(layers[i].from_hidden, layers[i - 1].to_hidden) << op.name() << " layer " << i;
    }
    for (const OperatorLayer& l : layers) {
      if (l.shape == OperatorLayer::Shape::Depthwise) {
        EXPECT_FALSE(l.prunable) << op.name();
      }
    }
  }
}
