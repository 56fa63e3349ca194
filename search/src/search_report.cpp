#include "search_report.hpp"

#include <filesystem>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "udc/common/file_io.hpp"
#include "udc/common/svg_plot.hpp"

namespace udc::search {

namespace fs = std::filesystem;

nlohmann::json choice_json(const Supernet& net, const ArchitectureChoice& choice) {
  nlohmann::json blocks = nlohmann::json::array();
  const SearchSpace& space = net.space();
  for (size_t k = 0; k < choice.size(); ++k) {
    const BlockSpace& bs = space.blocks[k];
    const BlockChoice& c = choice[k];
    const SearchOperator& op = *bs.ops[c.op];
    nlohmann::json b = {{"block", bs.name}, {"op", op.name()}};
    if (!op.passes_input()) {
      b["width"] = bs.widths[c.width];
      nlohmann::json layers = nlohmann::json::array();
      for (size_t l = 0; l < c.layers.size(); ++l) {
        layers.push_back(
            {{"layer", op.layers().at(l).role},
             {"bits", space.bits[c.layers[l].bits]},
             {"sparsity", op.prunable(l) ? space.sparsity[c.layers[l].sparsity] : 0.0}});
      }
      b["layers"] = layers;
    }
    blocks.push_back(b);
  }
  return blocks;
}

ArchitectureChoice choice_from_json(const nlohmann::json& j) {
  ArchitectureChoice choice;
  for (const auto& b : j) {
    BlockChoice c{b.at("op").get<size_t>(), b.at("width").get<size_t>(), {}};
    for (const auto& l : b.at("layers")) {
      c.layers.push_back({l.at("bits").get<size_t>(), l.at("sparsity").get<size_t>()});
    }
    choice.push_back(std::move(c));
  }
  return choice;
}

nlohmann::json choice_indices_json(const ArchitectureChoice& choice) {
  nlohmann::json j = nlohmann::json::array();
  for (const BlockChoice& c : choice) {
    nlohmann::json layers = nlohmann::json::array();
    for (const LayerChoice& l : c.layers) {
      layers.push_back({{"bits", l.bits}, {"sparsity", l.sparsity}});
    }
    j.push_back({{"op", c.op}, {"width", c.width}, {"layers", layers}});
  }
  return j;
}

/// `udc train` configuration text of a derived architecture, so a user can train it again.
std::string train_config_yaml(const TrainConfig& c) {
  const std::string weight_step =  // written only when not the default
      c.architecture.weight_step == WeightStepRule::Lsq
          ? ""
          : fmt::format("  weight_step: {}\n", weight_step_rule_name(c.architecture.weight_step));
  std::string y = fmt::format(
      "# Derived by udc search from {}.\nmodel:\n  name: {}\n  input: [{}, {}, {}]\n{}{}  "
      "layers:\n",
      c.file, c.architecture.name, c.architecture.height, c.architecture.width,
      c.architecture.channels,
      c.data.super_resolution()
          ? fmt::format("  anchor: {}\n", anchor_kind_name(c.architecture.anchor))
          : fmt::format("  classes: {}\n", c.architecture.classes),
      weight_step);
  for (const LayerSpec& l : c.architecture.layers) {
    y += fmt::format("    - {{op: {}, name: {}", layer_kind_name(l.kind), l.name);
    if (l.kind == LayerKind::Conv || l.kind == LayerKind::InvertedResidual ||
        l.kind == LayerKind::FullyConnected) {
      y += fmt::format(", out: {}", l.out_channels);
    }
    if (l.kind == LayerKind::Conv || l.kind == LayerKind::Depthwise ||
        l.kind == LayerKind::InvertedResidual) {
      y += fmt::format(", kernel: {}, stride: {}", l.kernel, l.stride);
    }
    if (l.kind == LayerKind::InvertedResidual) y += fmt::format(", expansion: {}", l.expansion);
    if (l.kind == LayerKind::DepthToSpace) y += fmt::format(", block: {}", l.kernel);
    const bool weightless = l.kind == LayerKind::GlobalAvgPool || l.kind == LayerKind::DepthToSpace;
    if (l.kind == LayerKind::InvertedResidual && !l.sublayer_bits.empty()) {
      y += fmt::format(", bits: [{}]", fmt::join(l.sublayer_bits, ", "));
    } else if (!weightless) {
      y += fmt::format(", bits: {}", l.weight_bits);
    }
    if (l.kind == LayerKind::InvertedResidual && !l.sublayer_sparsity.empty()) {
      y += fmt::format(", sparsity: [{}]", fmt::join(l.sublayer_sparsity, ", "));
    } else if (!weightless) {
      y += fmt::format(", sparsity: {}", l.sparsity);
    }
    // Written where it is not the reader's default (ReLU after convolutions, none after fc).
    const ActivationKind usual =
        l.kind == LayerKind::FullyConnected ? ActivationKind::None : ActivationKind::Relu;
    if (!weightless && l.kind != LayerKind::MaxPool && l.kind != LayerKind::AvgPool &&
        l.activation != usual) {
      const char* names[] = {"none", "relu", "relu6"};
      y += fmt::format(", activation: {}", names[int(l.activation)]);
    }
    y += "}\n";
  }
  const DataSpec& d = c.data;
  y += fmt::format(
      "data:\n  set: {}\n  dir: {}\n  image_side: {}\n  train_subset: {}\n  test_subset: {}\n"
      "  normalize: {{mean: {}, std: {}}}\n  augment: {{crop_padding: {}, flip: {}}}\n",
      d.set, fs::absolute(d.dir).string(), d.image_side, d.train_subset, d.test_subset,
      d.normalization.mean, d.normalization.std, d.augmentation.crop_padding,
      d.augmentation.horizontal_flip);
  if (d.super_resolution()) {
    y += fmt::format("  scale: {}\n  patch_stride: {}\n", d.scale, d.patch_stride);
  }
  y += "train:\n" + common::params_yaml(train_params(), c.train, 2);
  std::vector<std::string> npu_files;
  for (const std::string& file : c.npu.files) npu_files.push_back(fs::absolute(file).string());
  y += npu_files.size() == 1 ? fmt::format("npu: {}\n", npu_files[0])
                             : fmt::format("npu: [{}]\n", fmt::join(npu_files, ", "));
  if (!c.npu.overrides.empty()) {
    y += fmt::format("npu_set: [\"{}\"]\n", fmt::join(c.npu.overrides, "\", \""));
  }
  y += fmt::format("verify_images: {}\n", c.verify_images);
  return y;
}

std::string accuracy_plot_svg(const SearchConfig& config, const SearchResult& found,
                              std::ostream* log) {
  const bool psnr = found.metric == Metric::Psnr;
  const double shown = psnr ? 1.0 : 100.0;  // PSNR in dB, accuracy in %
  common::PlotSeries baselines{"baselines (udc train)", "#1f77b4", 5, false, true, {}};
  if (!config.baselines.empty()) {
    try {
      const std::vector<uint8_t> bytes = common::read_file(config.baselines);
      const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
      for (const auto& b : j.at("baselines")) {
        // weight_bytes as compiled; older files carry one stream per layer instead.
        const double weight_bytes = b.contains("weight_bytes")
                                        ? b.at("weight_bytes").get<double>()
                                        : b.at("compressed_weight_bytes").get<double>();
        baselines.points.push_back({weight_bytes / 1024.0,
                                    shown * b.at(score_key(found.metric, "test")).get<double>(),
                                    b.at("name").get<std::string>()});
      }
    } catch (const std::exception& e) {
      if (log)
        *log << "warning: baselines not plotted: " << config.baselines << ": " << e.what() << "\n";
    }
  }
  common::PlotSeries model{"found by udc search", "#d62728", 6, false, true, {}};
  model.points.push_back(
      {double(found.hardware.weight_bytes) / 1024.0, shown * found.test_score, config.space.name});
  common::PlotSpec spec{fmt::format("{}: test {} against compressed weights", config.space.name,
                                    psnr ? "PSNR" : "accuracy"),
                        "encoded weight streams as compiled (KiB)",
                        psnr ? "PSNR on luminance (dB)" : "top-1 test accuracy (%)",
                        {baselines, model},
                        false};
  return common::svg_scatter_plot(spec);
}

std::string evolution_csv(const SearchSpace& space, const nlohmann::json& evolution) {
  std::string csv = "epoch,block,choice,option,probability\n";
  for (const auto& e : evolution) {
    for (const auto& b : e["probabilities"]) {
      const std::string block = b["block"];
      const size_t k = size_t(&b - &e["probabilities"][0]);
      const BlockSpace& bs = space.blocks.at(k);
      auto rows = [&](const std::string& kind, const nlohmann::json& p,
                      const std::vector<std::string>& names) {
        for (size_t i = 0; i < names.size(); ++i) {
          csv += fmt::format("{},{},{},{},{:.6f}\n", e["epoch"].get<int>(), block, kind, names[i],
                             p[i].get<double>());
        }
      };
      std::vector<std::string> ops, widths, bits, sparsity;
      for (const OperatorPtr& o : bs.ops) ops.push_back(o->name());
      for (uint32_t w : bs.widths) widths.push_back(std::to_string(w));
      for (uint32_t w : space.bits) bits.push_back(std::to_string(w));
      for (double s : space.sparsity) sparsity.push_back(fmt::format("{}", s));
      rows("op", b["op"], ops);
      rows("width", b["width"], widths);
      // Per layer: "ir2_expand_bits", "ir2_expand_sparsity", ...
      for (const auto& layer : b["layers"]) {
        const std::string name =
            layer["op"].get<std::string>() + "_" + layer["layer"].get<std::string>();
        rows(name + "_bits", layer["bits"], bits);
        if (layer.contains("sparsity")) rows(name + "_sparsity", layer["sparsity"], sparsity);
      }
    }
  }
  return csv;
}

}  // namespace udc::search
