// Training configurations: the shipped baselines parse; bad input names file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "udc/common/yaml_section.hpp"
#include "udc/search/search_config.hpp"
#include "udc/search/train_config.hpp"

namespace fs = std::filesystem;
using namespace udc::search;

namespace {

std::string error_for(const std::string& yaml) {
  const fs::path path =
      fs::temp_directory_path() / ("udc_cfg_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << yaml;
  try {
    load_train_config(path.string());
  } catch (const udc::common::ConfigError& e) {
    fs::remove(path);
    return e.what();
  }
  fs::remove(path);
  return "";
}

const char* kMinimal = "model:\n  layers:\n    - {op: conv, out: 4}\n    - {op: fc}\n";

}  // namespace

TEST(TrainConfig, ShippedBaselinesParse) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(UDC_CONFIG_DIR) / "train")) {
    const TrainConfig config = load_train_config(entry.path().string());
    // Classifiers end in fc, super-resolution models in depth_to_space.
    EXPECT_EQ(config.architecture.layers.back().kind,
              config.data.super_resolution() ? LayerKind::DepthToSpace : LayerKind::FullyConnected);
    ASSERT_EQ(config.npu.files.size(), 1u);
    EXPECT_TRUE(fs::exists(config.npu.files[0])) << config.npu.files[0];
    ++count;
  }
  EXPECT_GE(count, 4);
}

TEST(TrainConfig, DefaultsAndDerivedValues) {
  const fs::path path = fs::temp_directory_path() / "udc_cfg_min.yaml";
  std::ofstream(path)
      << kMinimal
      << "npu: ../npu/x.yaml\ntrain: {weight_budget_bytes: 1500, flash_budget_bytes: 2048, "
         "holdout_fraction: 0.1, "
         "distillation: {weight: 0.5, temperature: 2}}\n";
  const TrainConfig config = load_train_config(path.string());
  ASSERT_EQ(config.architecture.layers.size(), 2u);
  EXPECT_EQ(config.architecture.layers[1].out_channels, 10u);  // fc: classes
  EXPECT_EQ(config.architecture.layers[1].activation, ActivationKind::None);
  EXPECT_EQ(config.architecture.layers[0].activation, ActivationKind::Relu);
  EXPECT_EQ(config.data.dir, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(config.train.weight_budget_bytes, 1500u);
  EXPECT_EQ(config.train.flash_budget_bytes, 2048u);
  EXPECT_TRUE(config.train.has_budget());
  EXPECT_EQ(config.train.holdout_fraction, 0.1);
  EXPECT_EQ(config.train.distillation.weight, 0.5);
  EXPECT_EQ(config.train.distillation.temperature, 2.0);
  EXPECT_TRUE(config.train.distillation.enabled());
  EXPECT_EQ(config.train.ramp_fraction, TrainSpec{}.ramp_fraction);
  EXPECT_EQ(config.npu.files,
            std::vector<std::string>{(path.parent_path().parent_path() / "npu/x.yaml").string()});
  fs::remove(path);
}

TEST(TrainConfig, WeightStepRuleIsLsqUnlessTheModelNamesAnother) {
  const fs::path path = fs::temp_directory_path() / "udc_cfg_step.yaml";
  std::ofstream(path) << kMinimal;
  EXPECT_EQ(load_train_config(path.string()).architecture.weight_step, WeightStepRule::Lsq);
  std::ofstream(path) << "model:\n  weight_step: least_error\n  layers:\n    - {op: conv, out: "
                         "4}\n    - {op: fc}\n";
  EXPECT_EQ(load_train_config(path.string()).architecture.weight_step, WeightStepRule::LeastError);
  fs::remove(path);
  EXPECT_NE(error_for("model:\n  weight_step: mse\n  layers:\n    - {op: fc}\n")
                .find(":2: model.weight_step: 'mse' is not one of"),
            std::string::npos);
}

TEST(TrainConfig, DepthToSpaceTakesABlockAndNoWeights) {
  const fs::path path = fs::temp_directory_path() / "udc_cfg_d2s.yaml";
  std::ofstream(path) << "model:\n  input: [16, 16, 1]\n  layers:\n    - {op: conv, out: 4}\n"
                         "    - {op: depth_to_space, block: 2}\n    - {op: fc}\n";
  const TrainConfig config = load_train_config(path.string());
  const LayerSpec& d2s = config.architecture.layers.at(1);
  EXPECT_EQ(d2s.kind, LayerKind::DepthToSpace);
  EXPECT_EQ(d2s.kernel, 2u);
  EXPECT_EQ(d2s.name, "depth_to_space1");
  fs::remove(path);
  EXPECT_NE(error_for("model:\n  layers:\n    - {op: depth_to_space, block: 9}\n").find("block"),
            std::string::npos);
  EXPECT_NE(error_for("model:\n  layers:\n    - {op: depth_to_space, bits: 4}\n").find("bits"),
            std::string::npos);
}

// A super-resolution set makes the model an upscaler: no classes, pixels as v / 255, an
// ending in conv to scale^2 channels and depth_to_space by the scale, resolution kept.
TEST(TrainConfig, SuperResolutionSetsTakeAnUpscaler) {
  const std::string upscaler =
      "model:\n  input: [16, 16, 1]\n  layers:\n    - {op: conv, out: 8}\n"
      "    - {op: conv, out: 4, activation: none}\n    - {op: depth_to_space, block: 2}\n";
  const fs::path path = fs::temp_directory_path() / "udc_cfg_sr.yaml";
  std::ofstream(path) << upscaler << "data: {set: sr-photos, patch_stride: 5}\n";
  const TrainConfig config = load_train_config(path.string());
  fs::remove(path);
  EXPECT_TRUE(config.data.super_resolution());
  EXPECT_EQ(config.data.dir, udc::data::kOpencvSamplesDir);
  EXPECT_EQ(config.data.scale, 2u);
  EXPECT_EQ(config.data.patch_stride, 5u);
  EXPECT_EQ(config.data.normalization.mean, 0.0f);
  EXPECT_EQ(config.data.normalization.std, 1.0f);
  EXPECT_EQ(config.architecture.classes, 0u);
  EXPECT_EQ(config.architecture.anchor, AnchorKind::None);
  EXPECT_EQ(metric_of(config.data), Metric::Psnr);
  EXPECT_EQ(score_key(Metric::Psnr, "test"), "test_psnr_db");
  EXPECT_EQ(format_score(Metric::Psnr, 27.314), "27.31 dB");
  EXPECT_EQ(format_score(Metric::Top1, 0.8837), "88.37%");

  EXPECT_NE(error_for(upscaler + "data: {set: sr-photos, scale: 3}\n")
                .find("must end in a conv with out = 9 and a depth_to_space with block 3"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "data: {set: sr-photos}\n")
                .find("model.layers[1].op: fc: a super-resolution model keeps the resolution"),
            std::string::npos);
  EXPECT_NE(
      error_for("model:\n  classes: 10\n  layers:\n    - {op: conv, out: 4}\n"
                "    - {op: depth_to_space}\ndata: {set: sr-photos}\n")
          .find("model.classes: a super-resolution model (data.set sr-photos) has no classes"),
      std::string::npos);
  EXPECT_NE(error_for("model:\n  layers:\n    - {op: conv, out: 8, stride: 2}\n"
                      "    - {op: conv, out: 4}\n    - {op: depth_to_space}\n"
                      "data: {set: sr-photos}\n")
                .find("model.layers[0].stride: 2: a super-resolution model keeps the resolution"),
            std::string::npos);
  EXPECT_NE(error_for(upscaler + "data: {set: sr-photos, normalize: {mean: 0.5}}\n")
                .find("normalize must be {mean: 0, std: 1}"),
            std::string::npos);
  EXPECT_NE(error_for(upscaler + "data: {set: sr-photos, augment: {crop_padding: 2}}\n")
                .find("data.augment.crop_padding: not for super-resolution patches"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "data: {scale: 2}\n").find("data.scale: unknown key"),
            std::string::npos);
  // The anchor: read for an upscaler, refused for a classifier.
  const fs::path anchored = fs::temp_directory_path() / "udc_cfg_sr_anchor.yaml";
  std::ofstream(anchored) << "model:\n  anchor: bicubic\n"
                          << upscaler.substr(7) << "data: {set: sr-photos}\n";
  EXPECT_EQ(load_train_config(anchored.string()).architecture.anchor, AnchorKind::Bicubic);
  fs::remove(anchored);
  EXPECT_NE(error_for("model:\n  anchor: nearest\n" + std::string(kMinimal).substr(7))
                .find("model.anchor: only a super-resolution network"),
            std::string::npos);
  EXPECT_NE(error_for("model:\n  anchor: true\n" + upscaler.substr(7) + "data: {set: sr-photos}\n")
                .find("model.anchor"),
            std::string::npos);
}

// npu: takes a list of files (an NPU file then a system file), relative to the config, and
// npu_set: overrides as --set does.
TEST(TrainConfig, NpuFilesAndOverrides) {
  const fs::path path = fs::temp_directory_path() / "udc_cfg_npu.yaml";
  std::ofstream(path) << kMinimal
                      << "npu: [a.yaml, /abs/b.yaml]\nnpu_set: [npu.macs_per_cycle=64]\n";
  const TrainConfig config = load_train_config(path.string());
  EXPECT_EQ(config.npu.files,
            (std::vector<std::string>{(path.parent_path() / "a.yaml").string(), "/abs/b.yaml"}));
  EXPECT_EQ(config.npu.overrides, std::vector<std::string>{"npu.macs_per_cycle=64"});
  fs::remove(path);
  EXPECT_NE(error_for(std::string(kMinimal) + "npu: x.yaml\nnpu_set: [macs]\n")
                .find("npu_set: expected KEY=VALUE, got 'macs'"),
            std::string::npos);
}

TEST(TrainConfig, ErrorsNameLineAndKey) {
  EXPECT_NE(error_for(std::string(kMinimal) + "trian: {}\n").find(":5: trian: unknown key"),
            std::string::npos);
  EXPECT_NE(error_for("model:\n  layers:\n    - {op: conv, out: 4, bits: 9}\n    - {op: fc}\n")
                .find(":3: model.layers[0].bits: expected an integer 2..8, got '9'"),
            std::string::npos);
  EXPECT_NE(error_for("model:\n  layers:\n    - {op: conv, out: 4}\n    - {op: fc, out: 3}\n")
                .find("the last layer must be fc with out = classes"),
            std::string::npos);
  EXPECT_NE(
      error_for("model:\n  layers:\n    - {op: convolution}\n").find("'convolution' is not one of"),
      std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "train: {warmup: {epochs: -1}}\n")
                .find("train.warmup.epochs"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "train: {flash_budget_bytes: -5}\n")
                .find("train.flash_budget_bytes"),
            std::string::npos);
  // Budgets are measured on the compiled model: without an NPU there is nothing to measure.
  const std::string no_npu =
      error_for(std::string(kMinimal) + "train: {weight_budget_bytes: 900}\n");
  EXPECT_NE(no_npu.find("npu: train.weight_budget_bytes and train.flash_budget_bytes are measured"),
            std::string::npos)
      << no_npu;
  EXPECT_NE(error_for(std::string(kMinimal) + "train: {holdout_fraction: 0.9}\n")
                .find("train.holdout_fraction: expected a number 0..0.5"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "train: {distillation: {weight: 1.5}}\n")
                .find("train.distillation.weight: expected a number 0..1"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "train: {distillation: {temprature: 2}}\n")
                .find("train.distillation.temprature: unknown key"),
            std::string::npos);
  // The teacher is the warm-up's network, so distillation needs a warm-up.
  EXPECT_NE(error_for(std::string(kMinimal) +
                      "train: {warmup: {epochs: 0}, distillation: {weight: 0.5}}\n")
                .find("train.distillation.weight: distillation learns from the float warm-up"),
            std::string::npos);
  EXPECT_NE(error_for("model: [1, 2\n").find("malformed YAML"), std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "data: {set: cifar100}\n").find("data.dir: missing"),
            std::string::npos);
}

TEST(TrainConfig, InvertedResidualTakesBitsAndSparsityPerSublayer) {
  const fs::path path =
      fs::temp_directory_path() / ("udc_cfg_ir_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "model:\n  layers:\n"
                         "    - {op: inverted_residual, out: 8, expansion: 2, bits: [2, 8, 4], "
                         "sparsity: [0.5, 0, 0.75]}\n"
                         "    - {op: inverted_residual, out: 8, expansion: 1, bits: 4, "
                         "sparsity: 0.5}\n    - {op: fc}\n";
  const TrainConfig config = load_train_config(path.string());
  fs::remove(path);
  const LayerSpec& mixed = config.architecture.layers[0];
  ASSERT_EQ(mixed.sublayer_count(), 3u);
  const uint32_t bits[] = {2, 8, 4};
  const double sparsity[] = {0.5, 0.0, 0.75};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(mixed.sublayer_bits_at(i), bits[i]) << i;
    EXPECT_EQ(mixed.sublayer_sparsity_at(i), sparsity[i]) << i;
  }
  // A scalar applies to every sub-layer; the depthwise stays dense.
  const LayerSpec& uniform = config.architecture.layers[1];
  ASSERT_EQ(uniform.sublayer_count(), 2u);
  EXPECT_EQ(uniform.sublayer_bits_at(0), 4u);
  EXPECT_EQ(uniform.sublayer_sparsity_at(0), 0.0);
  EXPECT_EQ(uniform.sublayer_sparsity_at(1), 0.5);

  const std::string layers = "model:\n  layers:\n    - {op: inverted_residual, out: 4, ";
  EXPECT_NE(error_for(layers + "expansion: 2, bits: [4, 8]}\n    - {op: fc}\n")
                .find("model.layers[0].bits: expected one bitwidth or 3 (one per sub-layer: "
                      "[expand, depthwise, project])"),
            std::string::npos);
  EXPECT_NE(error_for(layers + "expansion: 1, sparsity: [0.5, 0.5]}\n    - {op: fc}\n")
                .find("model.layers[0].sparsity: the depthwise sub-layer stays dense"),
            std::string::npos);
  EXPECT_NE(error_for(layers + "expansion: 2, bits: [4, 9, 4]}\n    - {op: fc}\n")
                .find("model.layers[0].bits"),
            std::string::npos);
}

namespace udc::search {
namespace {

/// Every parameter's text, in declaration order.
template <typename Spec>
std::vector<std::string> texts(const std::vector<common::Param<Spec>>& params, const Spec& spec) {
  std::vector<std::string> out;
  for (const auto& p : params) out.push_back(p.key + "=" + p.text(spec));
  return out;
}

/// Written as YAML and read back, every parameter keeps its value (what derived.yaml relies
/// on); and --set overrides reach the same fields as the file.
template <typename Spec>
void expect_round_trip(const std::vector<common::Param<Spec>>& params, const std::string& section,
                       const std::vector<std::string>& overrides) {
  Spec changed;
  EXPECT_TRUE(common::apply_param_overrides(params, changed, section, overrides, "test").empty());
  EXPECT_NE(texts(params, changed), texts(params, Spec{}));
  const std::string yaml = section + ":\n" + common::params_yaml(params, changed, 2);
  common::YamlSection root("test.yaml", YAML::Load(yaml), "");
  common::YamlSection s = root.section(section);
  Spec read;
  common::read_params(s, params, read);
  s.finish();
  root.finish();
  EXPECT_EQ(texts(params, read), texts(params, changed)) << yaml;
}

TEST(Params, TrainAndSearchSectionsRoundTrip) {
  expect_round_trip(train_params(), "train",
                    {"train.batch_size=64", "train.warmup.lr=0.0123",
                     "train.seed=4611686018427387903", "train.weight_budget_bytes=8192",
                     "train.distillation.temperature=2.5", "train.budget_bits=2,4,8"});
  expect_round_trip(search_params(), "search",
                    {"search.operators=sampled", "search.temperature.final=0.3",
                     "search.derivation.samples=3", "search.seed=12"});
  // Every declared key is read from the file: none is left for finish() to reject.
  TrainSpec spec;
  for (const auto& p : train_params()) {
    EXPECT_TRUE(common::apply_param_overrides(train_params(), spec, "train",
                                              {"train." + p.key + "=" + p.text(spec)}, "test")
                    .empty())
        << p.key;
  }
}

TEST(Params, OverridesAreCheckedAsTheFileIs) {
  TrainSpec spec;
  const auto error = [&](const std::string& assignment) {
    try {
      common::apply_param_overrides(train_params(), spec, "train", {assignment}, "--set");
    } catch (const common::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("train.nope=1").find("--set: train.nope: unknown parameter"), std::string::npos);
  EXPECT_NE(
      error("train.holdout_fraction=0.9").find("train.holdout_fraction: expected a number 0..0.5"),
      std::string::npos);
  EXPECT_NE(error("train.seed").find("expected KEY=VALUE"), std::string::npos);
  EXPECT_NE(error("train.budget_bits=2,9")
                .find("train.budget_bits: in '2,9': expected an integer "
                      "2..8, got '9'"),
            std::string::npos);
  EXPECT_NE(error("train.budget_bits=4,2").find("expected ascending bitwidths without repeats"),
            std::string::npos);
  EXPECT_NE(error("train.budget_bits=").find("expected bitwidths like 2,4,8"), std::string::npos);
  EXPECT_EQ(spec.budget_bits, std::vector<uint32_t>{8}) << "a refused value changed the spec";
  EXPECT_TRUE(
      common::apply_param_overrides(train_params(), spec, "train", {"train.budget_bits=3,4"}, "x")
          .empty());
  EXPECT_EQ(spec.budget_bits, std::vector<uint32_t>({3, 4}));
  // Keys of other sections are returned untouched, for the NPU.
  EXPECT_EQ(common::apply_param_overrides(train_params(), spec, "train",
                                          {"npu.cores=2", "train.seed=3"}, "--set"),
            std::vector<std::string>{"npu.cores=2"});
  EXPECT_EQ(spec.seed, 3u);
}

}  // namespace
}  // namespace udc::search
