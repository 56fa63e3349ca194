#include "udc/search/train_config.hpp"

#include <filesystem>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "udc/common/yaml_section.hpp"

namespace udc::search {

using common::YamlSection;

const char* layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv:
      return "conv";
    case LayerKind::Depthwise:
      return "depthwise";
    case LayerKind::InvertedResidual:
      return "inverted_residual";
    case LayerKind::MaxPool:
      return "max_pool";
    case LayerKind::AvgPool:
      return "avg_pool";
    case LayerKind::GlobalAvgPool:
      return "global_avg_pool";
    case LayerKind::FullyConnected:
      return "fc";
    case LayerKind::DepthToSpace:
      return "depth_to_space";
  }
  return "?";
}

const char* anchor_kind_name(AnchorKind kind) {
  switch (kind) {
    case AnchorKind::None:
      return "none";
    case AnchorKind::Nearest:
      return "nearest";
    case AnchorKind::Bicubic:
      return "bicubic";
  }
  return "?";
}

AnchorKind read_anchor(YamlSection& section, bool super_resolution) {
  if (!super_resolution && section.has("anchor")) {
    section.fail("anchor", "only a super-resolution network (an upscaler's data.set) has one");
  }
  const std::string name = section.choice("anchor", "none", {"none", "nearest", "bicubic"});
  for (AnchorKind kind : {AnchorKind::None, AnchorKind::Nearest, AnchorKind::Bicubic}) {
    if (name == anchor_kind_name(kind)) return kind;
  }
  return AnchorKind::None;
}

const char* weight_step_rule_name(WeightStepRule rule) {
  switch (rule) {
    case WeightStepRule::Lsq:
      return "lsq";
    case WeightStepRule::LeastError:
      return "least_error";
  }
  return "?";
}

WeightStepRule read_weight_step_rule(YamlSection& section) {
  const std::string name = section.choice("weight_step", "lsq", {"lsq", "least_error"});
  return name == "least_error" ? WeightStepRule::LeastError : WeightStepRule::Lsq;
}

namespace {

LayerKind parse_kind(YamlSection& layer) {
  const std::string op = layer.choice("op", "",
                                      {"conv", "depthwise", "inverted_residual", "max_pool",
                                       "avg_pool", "global_avg_pool", "fc", "depth_to_space"});
  for (LayerKind kind : {LayerKind::Conv, LayerKind::Depthwise, LayerKind::InvertedResidual,
                         LayerKind::MaxPool, LayerKind::AvgPool, LayerKind::GlobalAvgPool,
                         LayerKind::FullyConnected, LayerKind::DepthToSpace}) {
    if (op == layer_kind_name(kind)) return kind;
  }
  layer.fail("op", "missing (required)");
}

ActivationKind parse_activation(YamlSection& layer, ActivationKind fallback) {
  const char* names[] = {"none", "relu", "relu6"};
  const std::string value =
      layer.choice("activation", names[int(fallback)], {"none", "relu", "relu6"});
  return value == "relu"    ? ActivationKind::Relu
         : value == "relu6" ? ActivationKind::Relu6
                            : ActivationKind::None;
}

/// `bits` and `sparsity` of an inverted residual: a scalar for every sub-layer, or a list
/// with one entry per weighted sub-layer (expand, depthwise, project), the depthwise's
/// sparsity 0.
void read_sublayer_choices(YamlSection& layer, uint32_t default_bits, double default_sparsity,
                           LayerSpec& spec) {
  const size_t count = spec.sublayer_count();
  const std::string order = count == 3 ? "[expand, depthwise, project]" : "[depthwise, project]";
  const std::vector<int64_t> bits = layer.integers("bits", {default_bits}, 2, 8);
  if (bits.size() == 1) {
    spec.weight_bits = uint32_t(bits[0]);
  } else if (bits.size() == count) {
    spec.weight_bits = uint32_t(bits.back());
    spec.sublayer_bits.assign(bits.begin(), bits.end());
  } else {
    layer.fail("bits",
               fmt::format("expected one bitwidth or {} (one per sub-layer: {})", count, order));
  }
  const std::vector<double> sparsity = layer.numbers("sparsity", {default_sparsity}, 0.0, 0.99);
  if (sparsity.size() == 1) {
    spec.sparsity = sparsity[0];
  } else if (sparsity.size() == count) {
    if (sparsity[count - 2] != 0.0) {
      layer.fail("sparsity", fmt::format("the depthwise sub-layer stays dense: expected 0 as "
                                         "entry {} of {}",
                                         count - 1, order));
    }
    spec.sparsity = sparsity.back();
    spec.sublayer_sparsity = sparsity;
  } else {
    layer.fail("sparsity",
               fmt::format("expected one sparsity or {} (one per sub-layer: {})", count, order));
  }
}

/// A super-resolution model ends in a convolution to scale^2 x input channels and a
/// depth_to_space by the scale, so that its output is the input upscaled.
void check_upscaler_layers(YamlSection& model, const DataSpec& data, const ArchitectureSpec& arch) {
  const std::vector<LayerSpec>& layers = arch.layers;
  const uint32_t s = data.scale;
  const std::string expected = fmt::format(
      "a super-resolution model (data.set {}, data.scale {}) must end in a conv with out = {} "
      "and a depth_to_space with block {}",
      data.set, s, s * s * arch.channels, s);
  if (layers.size() < 2 || layers.back().kind != LayerKind::DepthToSpace ||
      layers.back().kernel != s || layers[layers.size() - 2].kind != LayerKind::Conv ||
      layers[layers.size() - 2].out_channels != s * s * arch.channels) {
    model.fail("layers", expected);
  }
}

void read_architecture(YamlSection model, const DataSpec& data, ArchitectureSpec& arch) {
  arch.name = model.string("name", arch.name);
  const std::vector<int64_t> input = model.integers("input", {28, 28, 1}, 1, 4096);
  if (input.size() != 3) model.fail("input", "expected [height, width, channels]");
  arch.height = uint32_t(input[0]);
  arch.width = uint32_t(input[1]);
  arch.channels = uint32_t(input[2]);
  if (data.super_resolution()) {
    if (model.has("classes")) {
      model.fail("classes", "a super-resolution model (data.set " + data.set + ") has no classes");
    }
    arch.classes = 0;
    arch.batch_statistics = false;
  } else {
    arch.classes = uint32_t(model.integer("classes", arch.classes, 2, 100000));
  }
  arch.anchor = read_anchor(model, data.super_resolution());
  arch.weight_step = read_weight_step_rule(model);
  YamlSection defaults = model.section("defaults");
  const uint32_t default_bits = uint32_t(defaults.integer("bits", 8, 2, 8));
  const double default_sparsity = defaults.number("sparsity", 0.0, 0.0, 0.99);
  defaults.finish();
  std::vector<YamlSection> layers = model.sections("layers");
  if (layers.empty()) model.fail("layers", "expected a non-empty list of layers");
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    YamlSection& layer = layers[i];
    LayerSpec spec;
    spec.kind = parse_kind(layer);
    spec.name = layer.string("name", std::string(layer_kind_name(spec.kind)) + std::to_string(i));
    if (!names.insert(spec.name).second) layer.fail("name", "'" + spec.name + "' used twice");
    if (data.super_resolution() &&
        (spec.kind == LayerKind::MaxPool || spec.kind == LayerKind::AvgPool ||
         spec.kind == LayerKind::GlobalAvgPool || spec.kind == LayerKind::FullyConnected)) {
      layer.fail("op", fmt::format("{}: a super-resolution model keeps the resolution until its "
                                   "depth_to_space (no pooling, no fc)",
                                   layer_kind_name(spec.kind)));
    }
    const bool weighted = spec.kind == LayerKind::Conv || spec.kind == LayerKind::Depthwise ||
                          spec.kind == LayerKind::InvertedResidual ||
                          spec.kind == LayerKind::FullyConnected;
    const bool windowed = spec.kind != LayerKind::GlobalAvgPool &&
                          spec.kind != LayerKind::FullyConnected &&
                          spec.kind != LayerKind::DepthToSpace;
    if (spec.kind == LayerKind::DepthToSpace) {
      spec.kernel = uint32_t(layer.integer("block", 2, 2, 8));
      spec.stride = 1;
    }
    if (spec.kind == LayerKind::Conv || spec.kind == LayerKind::InvertedResidual ||
        spec.kind == LayerKind::FullyConnected) {
      const bool last = i + 1 == layers.size();
      const int64_t fallback = spec.kind == LayerKind::FullyConnected && last ? arch.classes : 0;
      spec.out_channels = uint32_t(layer.integer("out", fallback, 1, 65536));
      if (spec.out_channels == 0) layer.fail("out", "missing (required for this op)");
    }
    if (windowed) {
      const bool pool = spec.kind == LayerKind::MaxPool || spec.kind == LayerKind::AvgPool;
      spec.kernel = uint32_t(layer.integer("kernel", pool ? 2 : 3, 1, 15));
      spec.stride = uint32_t(layer.integer("stride", pool ? spec.kernel : 1, 1, 8));
    }
    if (data.super_resolution() && spec.stride != 1) {
      layer.fail("stride",
                 fmt::format("{}: a super-resolution model keeps the resolution until its "
                             "depth_to_space (stride 1)",
                             spec.stride));
    }
    if (spec.kind == LayerKind::InvertedResidual) {
      spec.expansion = uint32_t(layer.integer("expansion", 4, 1, 16));
    }
    if (spec.kind == LayerKind::InvertedResidual) {
      read_sublayer_choices(layer, default_bits, default_sparsity, spec);
    } else if (weighted) {
      spec.weight_bits = uint32_t(layer.integer("bits", default_bits, 2, 8));
      spec.sparsity = layer.number("sparsity", default_sparsity, 0.0, 0.99);
    }
    if (weighted) {
      spec.activation =
          parse_activation(layer, spec.kind == LayerKind::FullyConnected ? ActivationKind::None
                                                                         : ActivationKind::Relu);
    } else {
      spec.activation = ActivationKind::None;
    }
    layer.finish();
    arch.layers.push_back(spec);
  }
  if (data.super_resolution()) {
    check_upscaler_layers(model, data, arch);
  } else if (arch.layers.back().kind != LayerKind::FullyConnected ||
             arch.layers.back().out_channels != arch.classes) {
    model.fail("layers", "the last layer must be fc with out = classes (" +
                             std::to_string(arch.classes) + ")");
  }
  model.finish();
}

}  // namespace

std::string resolve_path(const std::string& file, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(file).parent_path() / path).lexically_normal().string();
}

bool DataSpec::super_resolution() const {
  return data::find_super_resolution_kind(set) != nullptr;
}

Metric metric_of(const DataSpec& data) {
  return data.super_resolution() ? Metric::Psnr : Metric::Top1;
}

std::string format_score(Metric metric, double score) {
  return metric == Metric::Psnr ? fmt::format("{:.2f} dB", score)
                                : fmt::format("{:.2f}%", 100 * score);
}

std::string score_key(Metric metric, const std::string& where) {
  return where + (metric == Metric::Psnr ? "_psnr_db" : "_accuracy");
}

DataSpec read_data_spec(YamlSection data) {
  DataSpec d;
  std::vector<std::string> sets = data::dataset_names();
  for (const std::string& name : data::super_resolution_names()) sets.push_back(name);
  d.set = data.choice("set", d.set, sets);
  const data::SuperResolutionKind* sr = data::find_super_resolution_kind(d.set);
  d.dir = resolve_path(data.file(), data.string("dir", sr ? sr->default_dir
                                                          : data::dataset_kind(d.set).default_dir));
  if (d.dir.empty()) data.fail("dir", "missing (required for " + d.set + ")");
  d.image_side = uint32_t(data.integer("image_side", d.image_side, 4, 1024));
  d.train_subset = size_t(data.integer("train_subset", 0, 0, int64_t{1} << 40));
  d.test_subset = size_t(data.integer("test_subset", 0, 0, int64_t{1} << 40));
  // A super-resolution model reads and writes pixels as v / 255 (firmware_model::upscale_image).
  if (sr) d.normalization = {0.0f, 1.0f};
  YamlSection normalize = data.section("normalize");
  d.normalization.mean = float(normalize.number("mean", d.normalization.mean, 0.0, 1.0));
  d.normalization.std = float(normalize.number("std", d.normalization.std, 1e-3, 10.0));
  if (sr && (d.normalization.mean != 0.0f || d.normalization.std != 1.0f)) {
    normalize.fail("mean",
                   "a super-resolution model reads and writes pixels as v / 255: "
                   "normalize must be {mean: 0, std: 1}");
  }
  normalize.finish();
  YamlSection augment = data.section("augment");
  d.augmentation.crop_padding = uint32_t(augment.integer("crop_padding", 0, 0, 64));
  if (sr && d.augmentation.crop_padding > 0) {
    augment.fail("crop_padding",
                 "not for super-resolution patches (their targets would not "
                 "follow); flip is");
  }
  d.augmentation.horizontal_flip = augment.boolean("flip", false);
  augment.finish();
  if (sr) {
    d.scale = uint32_t(data.integer("scale", d.scale, 2, 4));
    d.patch_stride = uint32_t(data.integer("patch_stride", 0, 0, 4096));
  }
  data.finish();
  return d;
}

/// TrainSpec::budget_bits as "2,4,8" (a YAML scalar, so that it reads, writes and --sets as
/// every other parameter does).
common::Param<TrainSpec> budget_bits_param() {
  common::Param<TrainSpec> p;
  p.key = "budget_bits";
  p.type = common::ParamType::Text;
  p.unit = "bits";
  p.help =
      "bitwidths, comma-separated and ascending, that a network over its budgets at the "
      "compress phase's start may have layers lowered to, besides pruning (8: pruning only)";
  p.text = [](const TrainSpec& s) { return fmt::format("{}", fmt::join(s.budget_bits, ",")); };
  p.set = [](TrainSpec& s, const std::string& text) {
    std::vector<uint32_t> widths;
    std::stringstream list(text);
    for (std::string item; std::getline(list, item, ',');) {
      int64_t bits = 0;
      if (std::string error = common::parse_integer_param(item, 2, 8, bits); !error.empty()) {
        return fmt::format("in '{}': {}", text, error);
      }
      if (!widths.empty() && uint32_t(bits) <= widths.back()) {
        return fmt::format("expected ascending bitwidths without repeats, got '{}'", text);
      }
      widths.push_back(uint32_t(bits));
    }
    if (widths.empty()) return fmt::format("expected bitwidths like 2,4,8, got '{}'", text);
    s.budget_bits = std::move(widths);
    return std::string();
  };
  return p;
}

const std::vector<common::Param<TrainSpec>>& train_params() {
  using common::number_param;
  constexpr double kMaxCount = double(int64_t{1} << 40);
  static const std::vector<common::Param<TrainSpec>> params{
      number_param<TrainSpec>(
          "batch_size", [](auto& s) -> auto& { return s.batch_size; }, 1, 65536, "images",
          "images per training step"),
      number_param<TrainSpec>(
          "warmup.epochs", [](auto& s) -> auto& { return s.warmup.epochs; }, 0, 10000, "epochs",
          "float warm-up"),
      number_param<TrainSpec>(
          "warmup.lr", [](auto& s) -> auto& { return s.warmup.learning_rate; }, 0.0, 10.0, "",
          "initial learning rate of the warm-up (cosine decay to 5 %)"),
      number_param<TrainSpec>(
          "compress.epochs", [](auto& s) -> auto& { return s.compress.epochs; }, 0, 10000, "epochs",
          "quantisation and pruning ramp"),
      number_param<TrainSpec>(
          "compress.lr", [](auto& s) -> auto& { return s.compress.learning_rate; }, 0.0, 10.0, "",
          "initial learning rate of the compress phase"),
      number_param<TrainSpec>(
          "finetune.epochs", [](auto& s) -> auto& { return s.finetune.epochs; }, 0, 10000, "epochs",
          "fine-tune with masks and activation ranges frozen"),
      number_param<TrainSpec>(
          "finetune.lr", [](auto& s) -> auto& { return s.finetune.learning_rate; }, 0.0, 10.0, "",
          "initial learning rate of the fine-tune"),
      number_param<TrainSpec>(
          "weight_decay", [](auto& s) -> auto& { return s.weight_decay; }, 0.0, 1.0, "",
          "decoupled weight decay (AdamW), weights only"),
      number_param<TrainSpec>(
          "seed", [](auto& s) -> auto& { return s.seed; }, 0, double(int64_t{1} << 62), "",
          "seed of initialisation, batch order and augmentation"),
      number_param<TrainSpec>(
          "threads", [](auto& s) -> auto& { return s.threads; }, 1, 256, "threads",
          "Torch intra-op threads"),
      number_param<TrainSpec>(
          "prune_interval", [](auto& s) -> auto& { return s.prune_interval; }, 1, 1000000, "steps",
          "steps between mask updates (and budget checks)"),
      number_param<TrainSpec>(
          "ramp_fraction", [](auto& s) -> auto& { return s.ramp_fraction; }, 0.0, 1.0, "",
          "part of the compress phase over which sparsity ramps up"),
      number_param<TrainSpec>(
          "recalibration_batches", [](auto& s) -> auto& { return s.recalibration_batches; }, 0,
          10000, "batches",
          "compress phase: batch-norm statistics re-estimated on this many training batches "
          "whenever masks move (ramp or budget guard), the integer weights kept (0: the "
          "warm-up's statistics stay)"),
      number_param<TrainSpec>(
          "activation_momentum", [](auto& s) -> auto& { return s.activation_momentum; }, 0.0,
          0.999999, "1/step", "EMA momentum of observed activation ranges"),
      number_param<TrainSpec>(
          "max_steps_per_epoch", [](auto& s) -> auto& { return s.max_steps_per_epoch; }, 0,
          kMaxCount, "steps", "cap on steps per epoch (0: whole epochs)"),
      number_param<TrainSpec>(
          "weight_budget_bytes", [](auto& s) -> auto& { return s.weight_budget_bytes; }, 0,
          kMaxCount, "bytes", "encoded weight streams as compiled (0: none; needs npu:)"),
      number_param<TrainSpec>(
          "flash_budget_bytes", [](auto& s) -> auto& { return s.flash_budget_bytes; }, 0, kMaxCount,
          "bytes", "weight image in flash as compiled (0: none; needs npu:)"),
      budget_bits_param(),
      number_param<TrainSpec>(
          "holdout_fraction", [](auto& s) -> auto& { return s.holdout_fraction; }, 0.0, 0.5, "",
          "training images held out to choose the exported epoch (0: the last epoch)"),
      number_param<TrainSpec>(
          "distillation.weight", [](auto& s) -> auto& { return s.distillation.weight; }, 0.0, 1.0,
          "", "weight of distillation from the float warm-up (0: off)"),
      number_param<TrainSpec>(
          "distillation.temperature", [](auto& s) -> auto& { return s.distillation.temperature; },
          0.1, 100.0, "", "softmax temperature of teacher and student"),
  };
  return params;
}

std::string check_train_spec(const TrainSpec& t) {
  if (t.distillation.enabled() && t.warmup.epochs == 0) {
    return "distillation learns from the float warm-up's network, but warmup.epochs is 0 "
           "(give the warm-up at least one epoch, or set the weight to 0)";
  }
  return {};
}

TrainSpec read_train_spec(YamlSection train) {
  TrainSpec t;
  common::read_params(train, train_params(), t);
  if (const std::string problem = check_train_spec(t); !problem.empty()) {
    train.fail("distillation.weight", problem);
  }
  train.finish();
  return t;
}

TrainConfig load_train_config(const std::string& path) {
  TrainConfig config;
  config.file = path;
  YamlSection root(path, common::load_yaml_file(path), "");
  config.data = read_data_spec(root.section("data"));
  read_architecture(root.section("model"), config.data, config.architecture);
  config.train = read_train_spec(root.section("train"));
  config.npu = read_npu_source(root);
  if (config.train.has_budget() && config.npu.empty()) {
    root.fail("npu",
              "train.weight_budget_bytes and train.flash_budget_bytes are measured as the "
              "compiler lays the model out for an NPU; name its config with npu:");
  }
  config.verify_images = uint32_t(root.integer("verify_images", config.verify_images, 0, 1 << 20));
  root.finish();
  return config;
}

common::ConfigSource read_npu_source(YamlSection& root) {
  common::ConfigSource source;
  for (const std::string& file : root.strings("npu", {})) {
    source.files.push_back(resolve_path(root.file(), file));
  }
  source.overrides = root.strings("npu_set", {});
  for (const std::string& assignment : source.overrides) {
    if (assignment.find('=') == std::string::npos) {
      root.fail("npu_set", "expected KEY=VALUE, got '" + assignment + "'");
    }
  }
  return source;
}

data::SuperResolutionSet load_photographs(const DataSpec& spec, data::Split split) {
  const data::SuperResolutionKind* kind = data::find_super_resolution_kind(spec.set);
  if (!kind) {
    throw std::invalid_argument("load_photographs: " + spec.set + " is not a super-resolution set");
  }
  data::SuperResolutionSet set = kind->load(spec.dir, split, spec.scale);
  const size_t subset = split == data::Split::Train ? spec.train_subset : spec.test_subset;
  if (subset > 0 && subset < set.high.size()) {
    set.files.resize(subset);
    set.high.resize(subset);
    set.low.resize(subset);
  }
  return set;
}

data::ImageDataset load_data(const DataSpec& spec, data::Split split, uint32_t patch) {
  if (spec.super_resolution()) {
    if (patch == 0) throw std::invalid_argument("load_data: super-resolution needs a patch size");
    return data::patch_pairs(load_photographs(spec, split), patch,
                             spec.patch_stride > 0 ? spec.patch_stride : std::max(patch / 2, 1u));
  }
  data::ImageDataset set =
      data::load_dataset({spec.set, spec.dir, spec.image_side, /*channels=*/3}, split);
  set.truncate(split == data::Split::Train ? spec.train_subset : spec.test_subset);
  return set;
}

}  // namespace udc::search
