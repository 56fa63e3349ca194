#include "hardware_tables.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "udc/common/file_io.hpp"
#include "udc/compression/synthetic_weights.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/model.hpp"

namespace udc::search {

namespace fm = firmware_model;

std::vector<BlockGeometry> block_geometry(const SearchSpace& space) {
  std::vector<BlockGeometry> geometry;
  uint32_t h = space.height, w = space.width;
  std::vector<uint32_t> widths{space.channels};
  for (const BlockSpace& block : space.blocks) {
    BlockGeometry g;
    g.in_height = h;
    g.in_width = w;
    g.in_widths = widths;
    if (block.ops.front()->pools_globally()) {
      g.out_height = g.out_width = 1;
    } else {
      g.out_height = fm::window_axis(h, block.kernel, block.stride, fm::Padding::Same).out;
      g.out_width = fm::window_axis(w, block.kernel, block.stride, fm::Padding::Same).out;
    }
    geometry.push_back(g);
    h = g.out_height;
    w = g.out_width;
    widths = block.widths;
  }
  return geometry;
}

TableShape table_shape(const SearchSpace& space, size_t block) {
  const std::vector<BlockGeometry> geometry = block_geometry(space);
  const BlockSpace& bs = space.blocks[block];
  size_t layers = 0;
  for (const OperatorPtr& op : bs.ops) layers = std::max(layers, op->layers().size());
  return {bs.ops.size(),
          layers,
          geometry[block].in_widths.size(),
          bs.widths.size(),
          space.bits.size(),
          space.sparsity.size()};
}

namespace {

/// The weights of weighted layer `layer` of a candidate (in the model's layout), `count` of
/// them, pruned to the candidate's sparsity when `prunable`.
using LayerWeights = std::function<std::vector<int8_t>(size_t layer, size_t count, bool prunable)>;

/// Synthetic Gaussian weights of the candidate's bits and sparsity (seeded per layer).
LayerWeights synthetic_layer_weights(uint32_t bits, double sparsity) {
  return [bits, sparsity](size_t layer, size_t count, bool prunable) {
    const double level = prunable ? sparsity : 0.0;
    return compression::synthetic_weights(
        fmt::format("gauss{}_{}", bits, int(std::lround(100.0 * level))), count, layer + 1);
  };
}

/// A one-block model of candidate (op, in width, out width, bits), its weights from
/// `source`.
fm::Model candidate_model(const BlockSpace& block, const BlockGeometry& g, const SearchOperator& op,
                          uint32_t in_c, uint32_t out_c, uint32_t bits,
                          const LayerWeights& source) {
  // Depthwise layers stay dense whatever the block's sparsity (SharedLayer::prunable).
  size_t layer = 0;
  auto weights = [&](size_t count) { return source(layer++, count, true); };
  auto dense_weights = [&](size_t count) { return source(layer++, count, false); };
  const auto [multiplier, shift] = int8::quantize_multiplier(0.01);
  auto requant = [&, m = multiplier, s = shift](uint32_t channels) {
    return fm::ModelBuilder::Requant{std::vector<int32_t>(channels, 0),
                                     std::vector<int32_t>(channels, m),
                                     std::vector<int32_t>(channels, s)};
  };
  const fm::ModelBuilder::Quant quant{0.05f, -128};
  fm::ModelBuilder builder(block.name + "_" + op.name());
  const int32_t input = builder.add_input("input", {g.in_height, g.in_width, in_c}, 0.05f, -128);
  int32_t t = input;
  // The operator's weighted layers as it describes them, in order; a fully connected layer
  // follows global pooling, and an operator that adds its input does so when the shapes
  // match (stride 1, same width).
  using Shape = OperatorLayer::Shape;
  const uint32_t hidden = in_c * op.expansion();
  for (const OperatorLayer& l : op.layers()) {
    const uint32_t from = l.from_hidden ? hidden : in_c;
    const uint32_t to = l.shape == Shape::Depthwise ? from : l.to_hidden ? hidden : out_c;
    const uint32_t kernel = l.windowed ? block.kernel : 1;
    const uint32_t stride = l.windowed ? block.stride : 1;
    const fm::Activation activation = l.relu ? fm::Activation::Relu : fm::Activation::None;
    const size_t per_channel =
        l.shape == Shape::Depthwise ? size_t(kernel) * kernel : size_t(kernel) * kernel * from;
    std::vector<int8_t> w =
        l.prunable ? weights(size_t(to) * per_channel) : dense_weights(size_t(to) * per_channel);
    switch (l.shape) {
      case Shape::Conv:
        t = builder.conv2d(l.role, t, to, kernel, stride, fm::Padding::Same, std::move(w), bits,
                           requant(to), quant, activation);
        break;
      case Shape::Depthwise:
        t = builder.depthwise_conv2d(l.role, t, kernel, stride, fm::Padding::Same, std::move(w),
                                     bits, requant(to), quant, activation);
        break;
      case Shape::FullyConnected:
        t = builder.global_avg_pool("pool", t);
        t = builder.fully_connected(l.role, t, to, std::move(w), bits, requant(to), quant,
                                    activation);
        break;
    }
  }
  // The anchor (ArchitectureSpec::anchor: a fixed convolution of the network's input and
  // an ADD) is a cost outside every block's table; derivation and fine-tune measure the
  // whole exported network, so the budgets count it.
  if (op.upscales() > 0) t = builder.depth_to_space("shuffle", t, op.upscales());
  if (op.adds_input() && block.stride == 1 && in_c == out_c) {
    t = builder.add("add", input, t, int8::add_params(0.05, 0.05, 0.05), quant,
                    fm::Activation::None);
  }
  builder.mark_output(t);
  return builder.finish();
}

/// The block's cycles split over the model's weighted operations in proportion to the
/// time each ran (end - start cycle), a weightless operation counting with the weighted one
/// before it (the first weighted one when none is before): `slots` entries, unused ones 0.
std::vector<double> layer_shares(const fm::Model& model, const fm::NpuRun& run, size_t slots) {
  // The block's cycles: until its last command is done. The acknowledgment of its last
  // writes, which ends a one-block job, overlaps the next block in a network.
  double block_cycles = 0;
  for (const npu_sim::CommandReport& c : run.job.commands)
    block_cycles = std::max(block_cycles, c.end_cycle);
  std::vector<double> spans(slots, 0.0);
  size_t weighted_seen = 0;
  double pending = 0;  // weightless time before the first weighted operation
  for (size_t op = 0; op < model.operations.size() && op < run.layers.size(); ++op) {
    const double span = std::max(0.0, run.layers[op].end_cycle - run.layers[op].start_cycle);
    if (!model.operations[op].weights.empty()) {
      if (weighted_seen >= slots) throw std::logic_error("layer_shares: more weighted layers");
      spans[weighted_seen++] += span + pending;
      pending = 0;
    } else if (weighted_seen == 0) {
      pending += span;
    } else {
      spans[weighted_seen - 1] += span;
    }
  }
  double total_span = 0;
  for (double s : spans) total_span += s;
  std::vector<double> shares(slots, 0.0);
  for (size_t l = 0; l < weighted_seen; ++l) {
    shares[l] = total_span > 0 ? block_cycles * spans[l] / total_span
                               : block_cycles / double(weighted_seen);
  }
  return shares;
}

/// Identifies the NPU parameters and the space the tables were measured for.
std::string fingerprint(const SearchSpace& space, const npu_sim::NpuConfig& npu) {
  std::ostringstream text;
  text << "v6 " << npu_sim::config_fingerprint(npu) << " | " << space.height << 'x' << space.width
       << 'x' << space.channels << ' ' << space.classes << " x" << space.scale << " bits";
  for (uint32_t b : space.bits) text << ' ' << b;
  text << " sparsity";
  for (double s : space.sparsity) text << ' ' << s;
  for (const BlockSpace& b : space.blocks) {
    text << " | " << b.name << " k" << b.kernel << " s" << b.stride << " ops";
    for (const OperatorPtr& o : b.ops) text << ' ' << o->name();
    text << " widths";
    for (uint32_t w : b.widths) text << ' ' << w;
  }
  return text.str();
}

/// Chooses the weights of candidate (op, in width index, out width index, bits, sparsity).
using CandidateSource = std::function<LayerWeights(size_t op, size_t in_width, size_t out_width,
                                                   uint32_t bits, double sparsity)>;

/// Compiles and simulates every uniform candidate of block `k`: cycles split over its
/// layers, arena, and whether it fits.
BlockHardwareTable measure_block(const SearchSpace& space, const npu_sim::NpuConfig& npu, size_t k,
                                 const CandidateSource& source) {
  const BlockSpace& block = space.blocks[k];
  const BlockGeometry g = block_geometry(space)[k];
  const TableShape shape = table_shape(space, k);
  BlockHardwareTable t;
  t.cycles.assign(shape.size(), 0.0);
  t.block_depth.assign(shape.size(), 0);
  t.sram_bytes.assign(shape.uniform_size(), 0.0);
  t.fits.assign(shape.uniform_size(), 1);
  for (size_t o = 0; o < shape.ops; ++o) {
    if (block.ops[o]->passes_input()) continue;
    for (size_t i = 0; i < shape.in_widths; ++i) {
      for (size_t j = 0; j < shape.out_widths; ++j) {
        for (size_t b = 0; b < shape.bits; ++b) {
          for (size_t s = 0; s < shape.sparsity; ++s) {
            const size_t n = shape.uniform_index(o, i, j, b, s);
            const fm::Model model =
                candidate_model(block, g, *block.ops[o], g.in_widths[i], block.widths[j],
                                space.bits[b], source(o, i, j, space.bits[b], space.sparsity[s]));
            const fm::CompileResult compiled = fm::compile(model, npu);
            if (!compiled.fits()) {
              t.fits[n] = 0;
              t.sram_bytes[n] = double(compiled.does_not_fit->needed);
              continue;
            }
            const fm::NpuRun run = fm::run_timing_only(model, compiled.compiled, npu);
            t.sram_bytes[n] = double(compiled.compiled.plan.arena_bytes);
            const std::vector<double> shares = layer_shares(model, run, shape.layers);
            for (size_t l = 0; l < shape.layers; ++l) {
              t.cycles[shape.index(o, l, i, j, b, s)] = shares[l];
            }
            size_t l = 0;
            for (const fm::LayerCommands& layer : compiled.compiled.layers) {
              if (model.operations[layer.operation].weights.empty()) continue;
              if (l < shape.layers)
                t.block_depth[shape.index(o, l++, i, j, b, s)] = layer.block_depth;
            }
          }
        }
      }
    }
  }
  return t;
}

}  // namespace

void remeasure_cycles(HardwareTables& tables, const SearchSpace& space,
                      const npu_sim::NpuConfig& npu, const CandidateWeights& weights) {
  if (tables.blocks.size() != space.blocks.size()) {
    throw std::logic_error("remeasure_cycles: tables of another space");
  }
  const auto start = std::chrono::steady_clock::now();
  for (size_t k = 0; k < space.blocks.size(); ++k) {
    const BlockHardwareTable t = measure_block(
        space, npu, k, [&](size_t o, size_t i, size_t j, uint32_t bits, double sparsity) {
          return LayerWeights([&, k, o, i, j, bits, sparsity](size_t layer, size_t, bool prunable) {
            return weights(k, o, layer, i, j, bits, prunable ? sparsity : 0.0);
          });
        });
    tables.blocks[k].cycles = t.cycles;
  }
  tables.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

HardwareTables measure_hardware_tables(const SearchSpace& space, const npu_sim::NpuConfig& npu,
                                       const std::string& cache_path) {
  const std::string key = fingerprint(space, npu);
  HardwareTables tables;
  tables.core_clock_hz = npu.core_clock_hz;
  if (!cache_path.empty() && std::filesystem::exists(cache_path)) {
    try {
      const std::vector<uint8_t> bytes = common::read_file(cache_path);
      const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
      if (j.at("fingerprint") == key) {
        for (const auto& b : j.at("blocks")) {
          BlockHardwareTable t;
          t.cycles = b.at("cycles").get<std::vector<double>>();
          t.block_depth = b.at("block_depth").get<std::vector<uint32_t>>();
          t.sram_bytes = b.at("sram_bytes").get<std::vector<double>>();
          t.fits = b.at("fits").get<std::vector<uint8_t>>();
          tables.blocks.push_back(std::move(t));
        }
        bool complete = tables.blocks.size() == space.blocks.size();
        for (size_t k = 0; complete && k < tables.blocks.size(); ++k) {
          const TableShape shape = table_shape(space, k);
          const size_t n = shape.uniform_size();
          complete = tables.blocks[k].cycles.size() == shape.size() &&
                     tables.blocks[k].block_depth.size() == shape.size() &&
                     tables.blocks[k].sram_bytes.size() == n && tables.blocks[k].fits.size() == n;
        }
        if (complete) {
          tables.from_cache = true;
          return tables;
        }
      }
    } catch (const std::exception&) {
      // A stale or damaged cache is measured again and overwritten.
    }
    tables.blocks.clear();
  }

  const auto start = std::chrono::steady_clock::now();
  for (size_t k = 0; k < space.blocks.size(); ++k) {
    tables.blocks.push_back(
        measure_block(space, npu, k, [&](size_t, size_t, size_t, uint32_t bits, double sparsity) {
          return synthetic_layer_weights(bits, sparsity);
        }));
  }
  tables.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!cache_path.empty()) {
    nlohmann::json blocks = nlohmann::json::array();
    for (const BlockHardwareTable& t : tables.blocks) {
      blocks.push_back({{"cycles", t.cycles},
                        {"block_depth", t.block_depth},
                        {"sram_bytes", t.sram_bytes},
                        {"fits", t.fits}});
    }
    common::write_file_atomically(cache_path,
                                  nlohmann::json{{"fingerprint", key}, {"blocks", blocks}}.dump());
  }
  return tables;
}

}  // namespace udc::search
