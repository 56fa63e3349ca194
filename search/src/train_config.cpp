#include "udc/search/train_config.hpp"

#include <filesystem>
#include <set>

#include <fmt/format.h>

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
  }
  return "?";
}

namespace {

LayerKind parse_kind(YamlSection& layer) {
  const std::string op = layer.choice(
      "op", "",
      {"conv", "depthwise", "inverted_residual", "max_pool", "avg_pool", "global_avg_pool", "fc"});
  for (LayerKind kind :
       {LayerKind::Conv, LayerKind::Depthwise, LayerKind::InvertedResidual, LayerKind::MaxPool,
        LayerKind::AvgPool, LayerKind::GlobalAvgPool, LayerKind::FullyConnected}) {
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

void read_architecture(YamlSection model, ArchitectureSpec& arch) {
  arch.name = model.string("name", arch.name);
  const std::vector<int64_t> input = model.integers("input", {28, 28, 1}, 1, 4096);
  if (input.size() != 3) model.fail("input", "expected [height, width, channels]");
  arch.height = uint32_t(input[0]);
  arch.width = uint32_t(input[1]);
  arch.channels = uint32_t(input[2]);
  arch.classes = uint32_t(model.integer("classes", arch.classes, 2, 100000));
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
    const bool weighted = spec.kind == LayerKind::Conv || spec.kind == LayerKind::Depthwise ||
                          spec.kind == LayerKind::InvertedResidual ||
                          spec.kind == LayerKind::FullyConnected;
    const bool windowed =
        spec.kind != LayerKind::GlobalAvgPool && spec.kind != LayerKind::FullyConnected;
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
  if (arch.layers.back().kind != LayerKind::FullyConnected ||
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

void read_phase(YamlSection phase, PhaseSpec& spec) {
  spec.epochs = uint32_t(phase.integer("epochs", spec.epochs, 0, 10000));
  spec.learning_rate = phase.number("lr", spec.learning_rate, 0.0, 10.0);
  phase.finish();
}

DataSpec read_data_spec(YamlSection data) {
  DataSpec d;
  d.set = data.choice("set", d.set, data::dataset_names());
  d.dir = resolve_path(data.file(), data.string("dir", data::dataset_kind(d.set).default_dir));
  if (d.dir.empty()) data.fail("dir", "missing (required for " + d.set + ")");
  d.image_side = uint32_t(data.integer("image_side", d.image_side, 4, 1024));
  d.train_subset = size_t(data.integer("train_subset", 0, 0, int64_t{1} << 40));
  d.test_subset = size_t(data.integer("test_subset", 0, 0, int64_t{1} << 40));
  YamlSection normalize = data.section("normalize");
  d.normalization.mean = float(normalize.number("mean", d.normalization.mean, 0.0, 1.0));
  d.normalization.std = float(normalize.number("std", d.normalization.std, 1e-3, 10.0));
  normalize.finish();
  YamlSection augment = data.section("augment");
  d.augmentation.crop_padding = uint32_t(augment.integer("crop_padding", 0, 0, 64));
  d.augmentation.horizontal_flip = augment.boolean("flip", false);
  augment.finish();
  data.finish();
  return d;
}

TrainSpec read_train_spec(YamlSection train) {
  TrainSpec t;
  t.batch_size = uint32_t(train.integer("batch_size", t.batch_size, 1, 65536));
  read_phase(train.section("warmup"), t.warmup);
  read_phase(train.section("compress"), t.compress);
  read_phase(train.section("finetune"), t.finetune);
  t.weight_decay = train.number("weight_decay", t.weight_decay, 0.0, 1.0);
  t.seed = uint64_t(train.integer("seed", int64_t(t.seed), 0, int64_t{1} << 62));
  t.threads = uint32_t(train.integer("threads", t.threads, 1, 256));
  t.prune_interval = uint32_t(train.integer("prune_interval", t.prune_interval, 1, 1000000));
  t.ramp_fraction = train.number("ramp_fraction", t.ramp_fraction, 0.0, 1.0);
  t.activation_momentum = train.number("activation_momentum", t.activation_momentum, 0.0, 0.999999);
  t.max_steps_per_epoch = size_t(train.integer("max_steps_per_epoch", 0, 0, int64_t{1} << 40));
  t.weight_budget_bytes = uint64_t(train.integer("weight_budget_bytes", 0, 0, int64_t{1} << 40));
  t.flash_budget_bytes = uint64_t(train.integer("flash_budget_bytes", 0, 0, int64_t{1} << 40));
  t.holdout_fraction = train.number("holdout_fraction", t.holdout_fraction, 0.0, 0.5);
  YamlSection distillation = train.section("distillation");
  t.distillation.weight = distillation.number("weight", t.distillation.weight, 0.0, 1.0);
  t.distillation.temperature =
      distillation.number("temperature", t.distillation.temperature, 0.1, 100.0);
  distillation.finish();
  if (t.distillation.enabled() && t.warmup.epochs == 0) {
    distillation.fail("weight",
                      "distillation learns from the float warm-up's network, but warmup.epochs "
                      "is 0 (give the warm-up at least one epoch, or set the weight to 0)");
  }
  train.finish();
  return t;
}

TrainConfig load_train_config(const std::string& path) {
  TrainConfig config;
  config.file = path;
  YamlSection root(path, common::load_yaml_file(path), "");
  read_architecture(root.section("model"), config.architecture);
  config.data = read_data_spec(root.section("data"));
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

data::ImageDataset load_data(const DataSpec& spec, data::Split split) {
  data::ImageDataset set =
      data::load_dataset({spec.set, spec.dir, spec.image_side, /*channels=*/3}, split);
  set.truncate(split == data::Split::Train ? spec.train_subset : spec.test_subset);
  return set;
}

}  // namespace udc::search
