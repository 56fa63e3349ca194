#include "udc/search/search.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "collectives.hpp"
#include "derivation.hpp"
#include "hardware_tables.hpp"
#include "search_report.hpp"
#include "supernet.hpp"
#include "training.hpp"
#include "udc/common/file_io.hpp"
#include "udc/common/statistics.hpp"
#include "udc/common/svg_plot.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::search {

namespace fm = firmware_model;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Images on which the derivation ranks candidates when no training image is held out.
constexpr size_t kRankingImagesWithoutHoldout = 5000;

Limits limits_of(const Budgets& budgets, double clock_hz) {
  const double none = std::numeric_limits<double>::infinity();
  Limits l{none, none, none, none};
  if (budgets.weight_bytes) l[Weights] = double(*budgets.weight_bytes);
  if (budgets.flash_bytes) l[Flash] = double(*budgets.flash_bytes);
  if (budgets.sram_bytes) l[Sram] = double(*budgets.sram_bytes);
  if (budgets.cycles) l[Cycles] = *budgets.cycles;
  if (budgets.milliseconds)
    l[Cycles] = std::min(l[Cycles], *budgets.milliseconds * 1e-3 * clock_hz);
  return l;
}

std::string format_cost(Resource r, double value) {
  if (r == Cycles) return fmt::format("{:.0f} cycles", value);
  return fmt::format("{:.0f} B", value);
}

/// Lowest cost of each budgeted resource over the whole space (dynamic programming over the
/// blocks, the state being the current width); throws BudgetError when one exceeds its budget.
/// Without hardware tables only the weight bytes are checked, over every candidate, each
/// layer as one block (a lower bound).
void check_budgets_reachable(const Supernet& net, const Limits& limits, double clock_hz,
                             const std::vector<Resource>& resources) {
  const SearchSpace& space = net.space();
  const bool have_hardware = !net.hardware_tables().blocks.empty();
  for (Resource r : resources) {
    const bool weights = r == Weights || r == Flash;
    if (!std::isfinite(limits[r]) || (!weights && !have_hardware)) continue;
    std::vector<double> best{0.0};
    for (size_t k = 0; k < space.blocks.size(); ++k) {
      const BlockSpace& bs = space.blocks[k];
      const TableShape shape = table_shape(space, k);
      const BlockHardwareTable* hw = have_hardware ? &net.hardware_tables().blocks[k] : nullptr;
      std::vector<double> next(shape.out_widths, std::numeric_limits<double>::infinity());
      for (size_t o = 0; o < shape.ops; ++o) {
        if (bs.ops[o]->passes_input()) {
          for (size_t j = 0; j < shape.out_widths; ++j) next[j] = std::min(next[j], best[j]);
          continue;
        }
        const double inf = std::numeric_limits<double>::infinity();
        for (size_t i = 0; i < shape.in_widths; ++i) {
          for (size_t j = 0; j < shape.out_widths; ++j) {
            // The least cost of the block: the smallest arena, or the sum over its layers of
            // each layer's cheapest bits and sparsity.
            auto fits = [&](size_t b, size_t s) {
              return !hw || hw->fits[shape.uniform_index(o, i, j, b, s)];
            };
            double cost = r == Sram ? inf : 0.0;
            for (size_t l = 0; l < bs.ops[o]->layers().size(); ++l) {
              double least = inf;
              for (size_t b = 0; b < shape.bits; ++b) {
                for (size_t s = 0; s < shape.sparsity; ++s) {
                  if (!fits(b, s)) continue;
                  const size_t n = shape.index(o, l, i, j, b, s);
                  const double value = r == Weights ? net.weight_table()[k][n]
                                       : r == Flash ? net.flash_table()[k][n]
                                       : r == Sram
                                           ? hw->sram_bytes[shape.uniform_index(o, i, j, b, s)]
                                           : hw->cycles[n];
                  least = std::min(least, value);
                }
              }
              cost = r == Sram ? std::min(cost, least) : cost + least;
            }
            const double total = r == Sram ? std::max(best[i], cost) : best[i] + cost;
            next[j] = std::min(next[j], total);
          }
        }
      }
      best = next;
    }
    const double lowest = *std::min_element(best.begin(), best.end());
    if (lowest > limits[r]) {
      const std::string what = r == Weights ? "encoded weight streams"
                               : r == Flash ? "flash image (streams, scale records, alignment)"
                               : r == Sram  ? "activation SRAM"
                                            : fmt::format("latency ({:.4f} ms at {:.0f} MHz)",
                                                          lowest / clock_hz * 1e3, clock_hz / 1e6);
      throw BudgetError(fmt::format(
          "budget {} = {:.0f} cannot be met: the cheapest architecture of the search space "
          "needs {} of {} (narrowest widths, fewest bits, highest sparsity, skips); widen the "
          "budget or the space",
          kResourceNames[r], limits[r], format_cost(r, lowest), what));
    }
  }
}

/// A measurement's costs per resource: the arena when the model fits, else the SRAM it
/// would need.
Costs costs_of(const fm::ModelMeasurement& measured) {
  return {double(measured.weight_bytes), double(measured.flash_bytes),
          double(measured.fits() ? measured.arena_bytes : measured.sram_bytes), measured.cycles};
}

/// The limits as the budgets firmware_model checks a measurement against.
fm::MeasuredBudgets measured_budgets(const Limits& limits) {
  fm::MeasuredBudgets budgets;
  auto bytes = [&](Resource r, std::optional<uint64_t>& budget) {
    if (std::isfinite(limits[r])) budget = uint64_t(std::floor(limits[r]));
  };
  bytes(Weights, budgets.weight_bytes);
  bytes(Flash, budgets.flash_bytes);
  bytes(Sram, budgets.sram_bytes);
  if (std::isfinite(limits[Cycles])) budgets.cycles = limits[Cycles];
  return budgets;
}

/// The hardware a search may choose from: every candidate's NPU (the co-search's choices
/// applied onto the configured NPU; the NPU alone otherwise), its limits and its area.
struct HardwareCandidates {
  std::vector<npu_sim::NpuConfig> npus;
  /// Per candidate, the budgets in its terms: latency in its cycles (a milliseconds budget
  /// at its clock) and, in a co-search, the activation arena within the memory that holds
  /// it (its SRAM, or off-chip memory for dedicated_sram).
  std::vector<Limits> limits;
  std::vector<npu_sim::AreaBreakdown> area;  ///< by the config's area model [mm^2]
  bool co_search() const { return npus.size() > 1; }
  /// The NPU is a candidate of a `hardware:` space (a co-search, or `--hardware N`), not the
  /// configured file: the run writes it whole to npu.yaml, and the fine-tune names that.
  bool from_space = false;
};

/// The memory that holds the activation arena on `npu` [bytes].
double arena_capacity(const npu_sim::NpuConfig& npu) {
  return double(npu.feature_maps_offchip() ? npu.offchip.size_bytes : npu.sram.size_bytes);
}

HardwareCandidates hardware_candidates(const SearchConfig& config, const npu_sim::NpuConfig& npu) {
  HardwareCandidates hw;
  for (size_t h = 0; h < config.hardware.size(); ++h) {
    npu_sim::NpuConfig candidate = config.hardware.configure(npu, h);
    if (const std::string problem = npu_sim::check_consistency(candidate); !problem.empty()) {
      throw common::ConfigError(fmt::format("{}: hardware candidate {} ({}): {}", config.file, h,
                                            config.hardware.describe(h), problem));
    }
    Limits limits = limits_of(config.budgets, candidate.core_clock_hz);
    if (config.hardware.size() > 1) {
      limits[Sram] = std::min(limits[Sram], arena_capacity(candidate));
    }
    hw.limits.push_back(limits);
    hw.area.push_back(npu_sim::area_of(candidate, config.area));
    hw.npus.push_back(std::move(candidate));
  }
  hw.from_space = !config.hardware.choices.empty();
  return hw;
}

/// What every stage of the search shares: its inputs, its results folder and its log.
struct SearchContext {
  const SearchConfig& config;
  const npu_sim::NpuConfig& npu;  ///< the hardware candidate the stage works on
  const SearchOptions& options;
  fs::path out;   ///< options.output_dir
  Limits limits;  ///< the budgets per resource on `npu`, infinity where none
  const HardwareCandidates& hardware;
  /// The same context on hardware candidate `h` (its NPU and limits).
  SearchContext on_hardware(size_t h) const {
    return {config, hardware.npus.at(h), options, out, hardware.limits.at(h), hardware};
  }
  /// Data-parallel ranks (null: one process).
  Ranks* ranks() const { return options.ranks.get(); }
  /// This process logs and writes the results folder (rank 0, or the only process).
  bool primary() const { return !options.ranks || options.ranks->primary(); }
  /// The log of the process that logs; null on the others.
  std::ostream* log() const { return primary() ? options.log : nullptr; }
  void say(const std::string& line) const {
    if (std::ostream* to = log()) *to << line << std::endl;
  }
};

/// The measured costs of a trained model, per resource (training with an NPU always
/// measures).
Costs measured_costs(const TrainResult& t) {
  if (!t.hardware) throw std::logic_error("measured_costs: the model was not measured");
  return costs_of(*t.hardware);
}

/// A derived network made ready to train: weights inherited from the supernet, batch norm
/// re-estimated on training batches.
void prepare_derived(const SearchContext& ctx, const Supernet& supernet,
                     const data::ImageDataset& train_set, const ArchitectureChoice& c, QNet& net) {
  supernet.inherit(c, net);
  // The supernet's statistics were averaged over many sub-networks; new ones for the
  // masks the network will be exported with.
  for (const auto& layer : net.weighted()) layer->update_mask(layer->target_sparsity());
  recalibrate_batch_norm(net, train_set, ctx.config.data.normalization,
                         ctx.config.search.batch_size, ctx.config.search.seed,
                         kDerivedRecalibrationBatches, Mode::CompressedWeights, ctx.ranks());
}

/// The `udc train` config that fine-tunes a derived architecture: the search's data, its
/// fine-tune recipe and NPU. It keeps the measured weight and flash bytes inside their
/// budgets epoch by epoch, rather than leaving a drift to a coarse repair afterwards.
TrainConfig derived_train_config(const SearchContext& ctx, const Supernet& supernet,
                                 const ArchitectureChoice& choice) {
  const SearchConfig& config = ctx.config;
  TrainConfig train_config;
  train_config.file = config.file;
  train_config.architecture = supernet.derive(choice);
  train_config.data = config.data;
  train_config.train = config.finetune;
  auto hold = [&](Resource r, uint64_t& own) {
    if (!std::isfinite(ctx.limits[r])) return;
    const auto budget = uint64_t(std::floor(ctx.limits[r]));
    own = own == 0 ? budget : std::min(own, budget);
  };
  hold(Weights, train_config.train.weight_budget_bytes);
  hold(Flash, train_config.train.flash_budget_bytes);
  train_config.npu = config.npu;
  if (ctx.hardware.from_space) {
    // The pair's NPU, as derive_architecture wrote it.
    train_config.npu = common::ConfigSource{{fs::absolute(ctx.out / "npu.yaml").string()}, {}};
  }
  train_config.verify_images = config.verify_images;
  return train_config;
}

// ---------------------------------------------------------------- stage 1: cost tables

/// The supernet with its weight and hardware tables; impossible budgets are reported before
/// any data is read, the weight budgets before anything is simulated.
std::shared_ptr<Supernet> build_supernet(const SearchContext& ctx) {
  const SearchSpace& space = ctx.config.space;
  const HardwareCandidates& hw = ctx.hardware;
  const fs::path& out = ctx.out;
  auto say = [&](const std::string& line) { ctx.say(line); };
  std::vector<size_t> hardware_options;
  if (hw.co_search()) {
    for (const npu_sim::HardwareChoice& c : ctx.config.hardware.choices) {
      hardware_options.push_back(c.options.size());
    }
  }
  auto supernet = std::make_shared<Supernet>(space, hardware_options);
  supernet->refresh_weight_tables();
  // Weight and flash limits do not depend on the hardware.
  check_budgets_reachable(*supernet, ctx.limits, ctx.npu.core_clock_hz, {Weights, Flash});
  size_t candidates = 0;
  for (size_t k = 0; k < space.blocks.size(); ++k) candidates += table_shape(space, k).size();
  std::vector<HardwareTables> tables;
  for (size_t h = 0; h < hw.npus.size(); ++h) {
    // Rank 0 keeps the cache; the measurement is deterministic, so the others measure alike.
    const std::string cache = !ctx.primary() ? std::string()
                              : hw.co_search()
                                  ? (out / "hardware_tables" / fmt::format("{}.json", h)).string()
                                  : (out / "hardware_tables.json").string();
    if (hw.co_search() && ctx.primary()) fs::create_directories(out / "hardware_tables");
    tables.push_back(measure_hardware_tables(space, hw.npus[h], cache));
    const HardwareTables& t = tables.back();
    say(t.from_cache
            ? fmt::format("latency and SRAM tables of {} read from {}", hw.npus[h].npu_name, cache)
            : fmt::format("latency and SRAM tables of {} candidates measured on the simulator "
                          "({}{}, {:.1f} s)",
                          candidates, hw.npus[h].npu_name,
                          hw.co_search() ? fmt::format(", candidate {}: {}", h,
                                                       ctx.config.hardware.describe(h))
                                         : std::string(),
                          t.seconds));
  }
  supernet->set_candidate_tables(std::move(tables));
  const std::optional<double> area_budget = ctx.config.budgets.area_mm2;
  if (!hw.co_search()) {
    if (area_budget && hw.area[0].total() > *area_budget) {
      throw BudgetError(fmt::format(
          "budget area_mm2 = {:g} cannot be met: the NPU {} with its SRAM takes {:.4f} mm^2 "
          "by the area model",
          *area_budget, ctx.npu.npu_name, hw.area[0].total()));
    }
    check_budgets_reachable(*supernet, ctx.limits, ctx.npu.core_clock_hz,
                            {Weights, Flash, Sram, Cycles});
    return supernet;
  }
  // A co-search chooses among the candidates within the area budget on which every other
  // budget can be met.
  std::vector<bool> allowed(hw.npus.size(), true);
  std::string excluded;
  for (size_t h = 0; h < hw.npus.size(); ++h) {
    std::string why;
    if (area_budget && hw.area[h].total() > *area_budget) {
      why = fmt::format("{:.4f} mm^2", hw.area[h].total());
    } else {
      supernet->select_hardware(h);
      try {
        check_budgets_reachable(*supernet, hw.limits[h], hw.npus[h].core_clock_hz,
                                {Weights, Flash, Sram, Cycles});
      } catch (const BudgetError& e) {
        why = e.what();
      }
    }
    if (!why.empty()) {
      allowed[h] = false;
      excluded += fmt::format("\n  {}: {}", ctx.config.hardware.describe(h), why);
    }
  }
  supernet->select_hardware(0);
  const size_t kept = size_t(std::count(allowed.begin(), allowed.end(), true));
  if (kept == 0) {
    throw BudgetError(fmt::format(
        "no hardware candidate of {} meets the budgets{}{}", ctx.config.file,
        area_budget ? fmt::format(" (area_mm2 = {:g})", *area_budget) : std::string(), excluded));
  }
  supernet->set_hardware_allowed(allowed);
  say(fmt::format("co-search over {} hardware candidates, {} within the budgets{}", allowed.size(),
                  kept, excluded.empty() ? std::string() : "; left out:" + excluded));
  return supernet;
}

// ---------------------------------------------------------------- stage 2: data

/// Training images, and those held out of the supernet's training for the derivation.
struct SearchData {
  data::ImageDataset train_set, holdout;
  /// Bi-level search: the images of the architecture steps (the last of train_set's,
  /// moved out of it); empty: single-level.
  data::ImageDataset architecture_set;
};

/// The bi-level search's images, split off the end of the supernet's training images.
void split_architecture_set(const SearchConfig& config, SearchData& data) {
  const double fraction = config.search.architecture_fraction;
  if (fraction <= 0) return;
  const size_t total = data.train_set.size();
  data.architecture_set = data.train_set.split_off(size_t(std::llround(fraction * double(total))));
  if (data.architecture_set.size() == 0 || data.train_set.size() == 0) {
    throw std::runtime_error(fmt::format(
        "{}: search.architecture_fraction {} of {} training images keeps {} for the "
        "architecture and leaves {} for the weights; both must be at least one",
        config.file, fraction, total, data.architecture_set.size(), data.train_set.size()));
  }
}

/// A super-resolution search's patch pairs: the space's input side, its largest receptive
/// radius (every block present at its kernel).
SearchData load_search_patches(const SearchConfig& config) {
  const SearchSpace& space = config.space;
  if (space.width != space.height) {
    throw std::runtime_error(fmt::format("{}: input {}x{}: super-resolution patches are square",
                                         config.file, space.height, space.width));
  }
  uint32_t radius = 0;
  for (const BlockSpace& block : space.blocks) radius += block.kernel / 2;
  PatchPairs pairs =
      load_patch_pairs(config.data, space.height, radius, config.search.holdout_fraction,
                       {config.file, "search.derivation.holdout_fraction", "input"});
  if (pairs.train_set.channels != space.channels) {
    throw std::runtime_error(fmt::format("{}: input has {} channels but {} has {}", config.file,
                                         space.channels, pairs.train_set.name,
                                         pairs.train_set.channels));
  }
  SearchData data{std::move(pairs.train_set), std::move(pairs.holdout), {}};
  split_architecture_set(config, data);
  return data;
}

SearchData load_search_data(const SearchContext& ctx) {
  const SearchConfig& config = ctx.config;
  const SearchSpace& space = config.space;
  const SearchStageSpec& spec = config.search;
  if (config.data.super_resolution()) return load_search_patches(config);
  data::ImageDataset train_set = load_data(config.data, data::Split::Train);
  const data::ImageDataset test_set = load_data(config.data, data::Split::Test);
  if (train_set.height != space.height || train_set.width != space.width ||
      train_set.channels != space.channels || train_set.classes != space.classes) {
    throw std::runtime_error(fmt::format(
        "{}: input [{}, {}, {}] with {} classes, but {} images are {}x{}x{} in {} classes",
        config.file, space.height, space.width, space.channels, space.classes, train_set.name,
        train_set.height, train_set.width, train_set.channels, train_set.classes));
  }

  // Kept out of the supernet's training: the derivation ranks its candidates on these.
  data::ImageDataset holdout =
      train_set.split_off(size_t(std::llround(spec.holdout_fraction * double(train_set.size()))));
  if (train_set.size() == 0) {
    throw std::runtime_error(
        fmt::format("{}: search.derivation.holdout_fraction {} leaves no training image",
                    config.file, spec.holdout_fraction));
  }

  SearchData data{std::move(train_set), std::move(holdout), {}};
  split_architecture_set(config, data);
  return data;
}

// ---------------------------------------------------------------- stage 3: supernet training

/// Bi-level search: the architecture loader's epochs are numbered epoch x this + restarts,
/// so that they never repeat across the supernet's epochs (and a resumed run draws what an
/// uninterrupted one would).
constexpr uint64_t kArchitectureEpochsPerEpoch = 1000;

/// The supernet stage's state besides the networks: epochs done, the Lagrange
/// multipliers, the per-epoch history and the evolution of the probabilities, and (read
/// back only) the masks in force when it was saved.
struct SupernetState {
  uint32_t epochs_done = 0;
  std::array<double, kResourceCount> lambda{};
  nlohmann::json history = nlohmann::json::array(), evolution = nlohmann::json::array();
  std::vector<torch::Tensor> masks;
};

/// search_checkpoint.pt: supernet, both optimisers, the random generator, masks and state,
/// written whole (temporary and rename) after every epoch.
void save_search_checkpoint(const std::string& path, Supernet& supernet,
                            torch::optim::Optimizer& weight_optimizer,
                            torch::optim::Optimizer& arch_optimizer, const SupernetState& state) {
  torch::serialize::OutputArchive archive, net_archive, weights_archive, arch_archive;
  supernet.save(net_archive);
  weight_optimizer.save(weights_archive);
  arch_optimizer.save(arch_archive);
  archive.write("supernet", net_archive);
  archive.write("weight_optimizer", weights_archive);
  archive.write("arch_optimizer", arch_archive);
  archive.write("generator", torch_generator_state());
  const std::vector<torch::Tensor> masks = supernet.masks();
  archive.write("mask_count", torch::tensor(int64_t(masks.size())));
  for (size_t m = 0; m < masks.size(); ++m) archive.write(fmt::format("mask{}", m), masks[m]);
  archive.write("state", c10::IValue(nlohmann::json{{"epochs_done", state.epochs_done},
                                                    {"lambda", state.lambda},
                                                    {"history", state.history},
                                                    {"evolution", state.evolution}}
                                         .dump()));
  save_archive_atomically(archive, path);
}

/// Reads save_search_checkpoint()'s file `path` (its `bytes`) into the networks and
/// `state` (state.masks: the masks to set once the tables are refreshed); throws naming the
/// file.
void load_search_checkpoint(const std::string& path, const std::string& bytes, Supernet& supernet,
                            torch::optim::Optimizer& weight_optimizer,
                            torch::optim::Optimizer& arch_optimizer, SupernetState& state) {
  try {
    torch::serialize::InputArchive archive, net_archive, weights_archive, arch_archive;
    archive.load_from(bytes.data(), bytes.size());
    archive.read("supernet", net_archive);
    archive.read("weight_optimizer", weights_archive);
    archive.read("arch_optimizer", arch_archive);
    supernet.load(net_archive);
    weight_optimizer.load(weights_archive);
    arch_optimizer.load(arch_archive);
    torch::Tensor generator, mask_count;
    archive.read("generator", generator);
    archive.read("mask_count", mask_count);
    state.masks.resize(size_t(mask_count.item<int64_t>()));
    for (size_t m = 0; m < state.masks.size(); ++m)
      archive.read(fmt::format("mask{}", m), state.masks[m]);
    restore_torch_generator_state(generator);
    c10::IValue value;
    archive.read("state", value);
    const nlohmann::json saved = nlohmann::json::parse(value.toStringRef());
    state.epochs_done = saved.at("epochs_done");
    state.lambda = saved.at("lambda").get<std::array<double, kResourceCount>>();
    state.history = saved.at("history");
    state.evolution = saved.at("evolution");
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format(
        "{}: unreadable search checkpoint ({}); use --restart to start over", path, e.what()));
  }
}

/// One epoch's entry of the evolution: expected costs, multipliers, the most probable
/// architecture and its table costs, and every choice's probabilities.
nlohmann::json evolution_record(const Supernet& net, uint32_t epoch, double temperature,
                                const ExpectedCosts& expected,
                                const std::array<double, kResourceCount>& lambda) {
  const ArchitectureChoice best = net.most_probable();
  const TableCosts t = net.table_costs(best);
  nlohmann::json blocks = nlohmann::json::array();
  for (size_t k = 0; k < net.space().blocks.size(); ++k) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t o = 0; o < net.space().blocks[k].ops.size(); ++o) {
      const SearchOperator& op = *net.space().blocks[k].ops[o];
      for (size_t l = 0; l < op.layers().size(); ++l) {
        nlohmann::json layer = {{"op", op.name()},
                                {"layer", op.layers().at(l).role},
                                {"bits", net.probabilities(k, "bits", o, l)}};
        if (op.prunable(l)) {
          layer["sparsity"] = net.probabilities(k, "sparsity", o, l);
        }
        layers.push_back(layer);
      }
    }
    blocks.push_back({{"block", net.space().blocks[k].name},
                      {"op", net.probabilities(k, "op")},
                      {"width", net.probabilities(k, "width")},
                      {"layers", layers}});
  }
  nlohmann::json record(
      {{"epoch", epoch},
       {"temperature", temperature},
       {"expected",
        {expected.weight_bytes.item<double>(), expected.flash_bytes.item<double>(),
         expected.sram_bytes.item<double>(), expected.cycles.item<double>()}},
       {"lambda", lambda},
       {"most_probable", net.describe(best)},
       {"most_probable_costs", costs_of(t)},
       {"probabilities", blocks}});
  if (net.hardware_count() > 1) {
    // The table costs above are on the selected (most probable) hardware candidate.
    torch::NoGradGuard no_grad;
    const torch::Tensor p = net.hardware_probabilities();
    record["hardware"] = {{"most_probable", net.selected_hardware()},
                          {"probabilities", std::vector<double>(p.data_ptr<double>(),
                                                                p.data_ptr<double>() + p.numel())}};
  }
  return record;
}

/// What the supernet's training leaves for the report.
struct SupernetRecord {
  nlohmann::json history, evolution;
  double seconds = 0;  ///< over all epochs, resumed ones included
};

/// Warm-up and search epochs of the supernet, resumed from and checkpointed to
/// search_checkpoint.pt after every epoch.
/// The optimisers of the supernet: AdamW on the shared weights, Adam on the choice logits.
struct SupernetOptimizers {
  std::unique_ptr<torch::optim::AdamW> weights;
  std::unique_ptr<torch::optim::Adam> architecture;
};

/// Which parameters a supernet step moves: both (single-level), or one of them (bi-level).
enum class StepTarget { Both, Weights, Architecture };

/// One training step of the supernet on `batch`: task loss plus, while searching, each
/// budget's cost relative to its target times its Lagrange multiplier, which then grows
/// while the expected cost exceeds the target. Returns the task loss x images and adds the
/// outputs to `tally`; `expected` receives the expected costs.
/// Data-parallel (sampling.ranks): the batch is this rank's share; the loss is scaled by the
/// share and the gradients summed over the ranks, so every rank takes the same step.
/// A co-search's cost relative to each candidate's own limit is mixed over the hardware
/// distribution (the expected excess of the pair), so the hardware logits learn which NPU
/// the architecture distribution fits best. `limits`: per hardware candidate.
double supernet_step(const SearchStageSpec& spec, const std::vector<Limits>& limits,
                     Supernet& supernet, SupernetOptimizers& optimizers, data::Batch& batch,
                     const SamplingSettings& sampling, bool searching,
                     std::array<double, kResourceCount>& lambda, ExpectedCosts& expected,
                     ScoreTally& tally, StepTarget target = StepTarget::Both) {
  const torch::Tensor logits = supernet.forward(images_tensor(batch), sampling);
  const torch::Tensor task_loss = batch_loss(logits, batch, {}, {});
  torch::Tensor loss = task_loss;
  const ExpectedCosts each = supernet.expected_costs_per_hardware();
  const torch::Tensor p = supernet.hardware_probabilities();
  expected = supernet.mixed(each);
  const std::array<torch::Tensor, kResourceCount> cost_terms{each.weight_bytes, each.flash_bytes,
                                                             each.sram_bytes, each.cycles};
  // The random control never moves the choice logits: no budget terms, no steps.
  searching &= spec.strategy == SearchStageSpec::Strategy::Dnas;
  searching &= target != StepTarget::Weights;
  if (searching) {
    for (size_t r = 0; r < kResourceCount; ++r) {
      std::vector<double> targets;  // per candidate; infinity (a term of 0) where none
      for (const Limits& l : limits) targets.push_back(l[r] * (1.0 - spec.budget_margin));
      if (std::none_of(targets.begin(), targets.end(), [](double t) { return std::isfinite(t); }))
        continue;
      const torch::Tensor relative =
          (p * (cost_terms[r] / torch::tensor(targets, torch::kDouble))).sum();
      loss = loss + lambda[r] * relative.to(torch::kFloat);
      lambda[r] = std::max(0.0, lambda[r] + spec.lagrange_rate * (relative.item<double>() - 1.0));
    }
  }
  optimizers.weights->zero_grad();
  optimizers.architecture->zero_grad();
  Ranks* ranks = sampling.ranks;
  (several(ranks) ? loss * loss_share(batch, ranks) : loss).backward();
  reduce_gradients(ranks, supernet.parameters());
  if (target != StepTarget::Architecture) optimizers.weights->step();
  if (searching) optimizers.architecture->step();
  if (target != StepTarget::Architecture) tally.add({logits, {}}, batch);
  return task_loss.item<double>() * batch.size;
}

/// The epoch's line of progress: loss, expected costs, multipliers, the most probable
/// architecture with its table costs, time and ETA.
std::string supernet_epoch_line(Metric metric, const nlohmann::json& history_entry,
                                const nlohmann::json& e,
                                const std::array<double, kResourceCount>& lambda,
                                uint32_t total_epochs, double eta_seconds) {
  return fmt::format(
      "epoch {}/{} [{}]: loss {:.4f}, train {}, E[weights] {:.0f} B, E[flash] {:.0f} B, "
      "E[SRAM] {:.0f} B, E[cycles] {:.0f}, lambda {:.3g}/{:.3g}/{:.3g}/{:.3g}; most probable: "
      "{} ({:.0f} B weights, {:.0f} B flash, {:.0f} B SRAM, {:.0f} cycles); {}, ETA {}",
      history_entry["epoch"].get<uint32_t>(), total_epochs,
      history_entry["phase"].get<std::string>(), history_entry["loss"].get<double>(),
      format_score(metric, history_entry[score_key(metric, "train")].get<double>()),
      e["expected"][Weights].get<double>(), e["expected"][Flash].get<double>(),
      e["expected"][Sram].get<double>(), e["expected"][Cycles].get<double>(), lambda[Weights],
      lambda[Flash], lambda[Sram], lambda[Cycles], e["most_probable"].get<std::string>(),
      e["most_probable_costs"][Weights].get<double>(),
      e["most_probable_costs"][Flash].get<double>(), e["most_probable_costs"][Sram].get<double>(),
      e["most_probable_costs"][Cycles].get<double>(),
      format_duration(history_entry["seconds"].get<double>()), format_duration(eta_seconds));
}

/// The supernet, its optimisers and the stage's state as the checkpoint left them, with
/// the masks in force then and the cost tables measured again on the restored weights.
void resume_supernet(const SearchContext& ctx, const std::string& checkpoint_path,
                     const std::string& bytes, Supernet& supernet, SupernetOptimizers& optimizers,
                     SupernetState& state) {
  load_search_checkpoint(checkpoint_path, bytes, supernet, *optimizers.weights,
                         *optimizers.architecture, state);
  // The masks in force at the checkpoint came from the weights of their last refresh, not
  // the final ones.
  supernet.refresh_masks();
  try {
    supernet.set_masks(state.masks);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("{}: {}; use --restart to start over", checkpoint_path, e.what()));
  }
  supernet.refresh_weight_tables();
  if (state.epochs_done > ctx.config.search.warmup.epochs) {
    supernet.refresh_cycles_tables(ctx.hardware.npus);
  }
  ctx.say(fmt::format("resuming the search from {} after epoch {}", checkpoint_path,
                      state.epochs_done));
}

SupernetRecord train_supernet(const SearchContext& ctx, const std::shared_ptr<Supernet>& supernet,
                              const data::ImageDataset& train_set,
                              const data::ImageDataset& architecture_set) {
  const SearchConfig& config = ctx.config;
  const SearchStageSpec& spec = config.search;
  const SearchSpace& space = config.space;
  const SearchOptions& options = ctx.options;
  const Limits& limits = ctx.limits;
  const fs::path& out = ctx.out;
  std::ostream* log = ctx.log();
  auto say = [&](const std::string& line) { ctx.say(line); };
  const std::string checkpoint_path = (out / "search_checkpoint.pt").string();
  SupernetOptimizers optimizers{
      std::make_unique<torch::optim::AdamW>(
          supernet->weight_parameters(),
          torch::optim::AdamWOptions(spec.warmup.learning_rate).weight_decay(spec.weight_decay)),
      std::make_unique<torch::optim::Adam>(
          supernet->architecture_parameters(),
          torch::optim::AdamOptions(spec.architecture_learning_rate).betas({0.5, 0.999}))};
  torch::optim::AdamW& weight_optimizer = *optimizers.weights;
  torch::optim::Adam& arch_optimizer = *optimizers.architecture;
  SupernetState state;
  std::array<double, kResourceCount>& lambda = state.lambda;
  nlohmann::json& history = state.history;
  nlohmann::json& evolution = state.evolution;
  if (!options.restart) {
    if (const auto bytes = read_on_primary(ctx.ranks(), checkpoint_path)) {
      resume_supernet(ctx, checkpoint_path, *bytes, *supernet, optimizers, state);
    }
  }

  Ranks* ranks = ctx.ranks();
  data::BatchLoader::Options batches{spec.batch_size, true, true, spec.seed, 2};
  if (ranks) batches.rank = ranks->rank(), batches.world_size = ranks->size();
  data::BatchLoader loader(train_set, config.data.normalization, config.data.augmentation, batches);
  const size_t steps_per_epoch = checked_steps_per_epoch(
      loader, spec.max_steps_per_epoch, config.file, train_set.size(), spec.batch_size);
  const uint32_t total_epochs = spec.warmup.epochs + spec.search.epochs;
  const Metric metric = metric_of(config.data);
  // Bi-level: the architecture steps' batches, as many per epoch as the weights'.
  std::unique_ptr<data::BatchLoader> architecture_loader;
  if (architecture_set.size() > 0) {
    data::BatchLoader::Options architecture_batches{spec.batch_size, true, false,
                                                    spec.seed ^ 0xa5c4u, 2};
    if (ranks) {
      architecture_batches.rank = ranks->rank();
      architecture_batches.world_size = ranks->size();
    }
    architecture_loader =
        std::make_unique<data::BatchLoader>(architecture_set, config.data.normalization,
                                            config.data.augmentation, architecture_batches);
  }
  const size_t search_steps = size_t(spec.search.epochs) * steps_per_epoch;
  say(fmt::format(
      "search {}: {} blocks, {} training images{}, {} warm-up + {} search epochs of {} steps; "
      "budgets: {}",
      space.name, space.blocks.size(), train_set.size(),
      architecture_set.size() > 0
          ? fmt::format(" (bi-level: {} more for the architecture steps)", architecture_set.size())
          : std::string(),
      spec.warmup.epochs, spec.search.epochs, steps_per_epoch, [&] {
        // A co-search's limits differ by candidate (latency at its clock, the arena within
        // its SRAM): the budgets as configured.
        const Limits shown =
            ctx.hardware.co_search() ? limits_of(config.budgets, ctx.npu.core_clock_hz) : limits;
        std::string b;
        for (size_t r = 0; r < kResourceCount; ++r) {
          if (std::isfinite(shown[r])) {
            b += (b.empty() ? "" : ", ") + format_cost(Resource(r), shown[r]);
          }
        }
        if (ctx.hardware.co_search()) {
          if (config.budgets.milliseconds)
            b += fmt::format(" ({:g} ms)", *config.budgets.milliseconds);
          b += ", the arena within each candidate's SRAM";
          if (config.budgets.area_mm2) b += fmt::format(", {:g} mm^2", *config.budgets.area_mm2);
        }
        return b;
      }()));

  const Clock::time_point search_start = Clock::now();
  const uint32_t first_epoch = state.epochs_done;  ///< epochs before this process (resume)
  for (uint32_t epoch = state.epochs_done; epoch < total_epochs; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    const bool searching = epoch >= spec.warmup.epochs;
    const PhaseSpec& phase = searching ? spec.search : spec.warmup;
    const size_t phase_step0 =
        size_t(epoch - (searching ? spec.warmup.epochs : 0)) * steps_per_epoch;
    supernet->train();
    loader.start_epoch(epoch);
    data::Batch batch, architecture_batch;
    uint64_t architecture_restarts = 0;
    if (architecture_loader) {
      architecture_loader->start_epoch(uint64_t(epoch) * kArchitectureEpochsPerEpoch);
    }
    double loss_sum = 0, temperature = spec.temperature_initial;
    size_t seen = 0, step = 0;
    ScoreTally tally(config.data.normalization, Mode::Float);
    ExpectedCosts expected;
    for (; step < steps_per_epoch && loader.next(batch); ++step) {
      const size_t phase_step = phase_step0 + step;
      const double progress =
          searching ? double(phase_step) / double(std::max<size_t>(1, search_steps - 1)) : 0.0;
      temperature = spec.temperature_initial *
                    std::pow(spec.temperature_final / spec.temperature_initial, progress);
      const double noise =
          searching ? spec.noise_initial + (spec.noise_final - spec.noise_initial) * progress : 1.0;
      for (auto& group : weight_optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options())
            .lr(cosine_rate(phase.learning_rate, phase_step,
                            size_t(phase.epochs) * steps_per_epoch));
      }
      if (phase_step % spec.prune_interval == 0) supernet->refresh_masks();
      if (searching && phase_step % spec.flash_refresh_steps == 0)
        supernet->refresh_weight_tables();

      // Widths, bitwidths and sparsity are noisy mixtures (in the warm-up near uniform:
      // one-hot samples of all four stall the shared weights, as most draws are 2-bit or
      // 90 % sparse); operators as configured.
      const SamplingSettings sampling{
          temperature, noise, false, spec.operators == SearchStageSpec::OperatorRelaxation::Sampled,
          nullptr,     ranks};
      const bool bilevel = searching && architecture_set.size() > 0;
      loss_sum += supernet_step(spec, ctx.hardware.limits, *supernet, optimizers, batch, sampling,
                                searching, lambda, expected, tally,
                                bilevel ? StepTarget::Weights : StepTarget::Both);
      if (bilevel) {
        // The architecture's own batch; its loader restarts (epochs numbered on) when spent.
        if (!architecture_loader->next(architecture_batch)) {
          architecture_loader->start_epoch(uint64_t(epoch) * kArchitectureEpochsPerEpoch +
                                           ++architecture_restarts);
          architecture_loader->next(architecture_batch);
        }
        ScoreTally unused(config.data.normalization, Mode::Float);
        supernet_step(spec, ctx.hardware.limits, *supernet, optimizers, architecture_batch,
                      sampling, true, lambda, expected, unused, StepTarget::Architecture);
      }
      seen += batch.size;
      if (log && (step + 1) % std::max<size_t>(1, steps_per_epoch / 4) == 0 &&
          step + 1 < steps_per_epoch) {
        const double per_step = seconds_since(epoch_start) / double(step + 1);
        say(fmt::format(
            "  epoch {}/{} [{}] step {}/{}: loss {:.4f}, train {}, E[weights] {:.0f} B, "
            "E[flash] {:.0f} B, E[SRAM] {:.0f} B, E[cycles] {:.0f}, temperature {:.2f}, {:.0f} "
            "ms/step, ETA {}",
            epoch + 1, total_epochs, searching ? "search" : "warmup", step + 1, steps_per_epoch,
            loss_sum / double(seen), format_score(metric, tally.score()),
            expected.weight_bytes.item<double>(), expected.flash_bytes.item<double>(),
            expected.sram_bytes.item<double>(), expected.cycles.item<double>(), temperature,
            1e3 * per_step,
            format_duration(per_step *
                            double((total_epochs - epoch) * steps_per_epoch - (step + 1)))));
      }
    }
    if (several(ranks)) {
      std::vector<torch::Tensor> tensors = supernet->parameters();
      for (const auto& b : supernet->buffers()) tensors.push_back(b);
      check_same_on_ranks(ranks, tensors, "supernet after the epoch's steps");
      torch::Tensor totals = torch::tensor({loss_sum, double(seen)}, torch::kDouble);
      sum_over_ranks(ranks, {totals}, "training losses");
      loss_sum = totals[0].item<double>();
      seen = size_t(std::llround(totals[1].item<double>()));
      tally.sum_over_ranks(ranks);
    }
    supernet->refresh_weight_tables();
    if (searching) {
      // Latency follows the weights' streams: measure the cycles tables on them again.
      const double table_seconds = supernet->refresh_cycles_tables(ctx.hardware.npus);
      say(fmt::format("  epoch {}: cycles tables measured on the current weights in {:.1f} s",
                      epoch + 1, table_seconds));
    }
    torch::NoGradGuard no_grad;
    expected = supernet->expected_costs();
    supernet->select_hardware(supernet->most_probable_hardware());
    evolution.push_back(evolution_record(*supernet, epoch + 1, temperature, expected, lambda));
    const nlohmann::json& e = evolution.back();
    history.push_back({{"epoch", epoch + 1},
                       {"phase", searching ? "search" : "warmup"},
                       {"loss", loss_sum / double(std::max<size_t>(seen, 1))},
                       {score_key(metric, "train"), tally.score()},
                       {"seconds", seconds_since(epoch_start)}});
    state.epochs_done = epoch + 1;
    if (ctx.primary()) {
      save_search_checkpoint(checkpoint_path, *supernet, weight_optimizer, arch_optimizer, state);
    }
    const double elapsed = seconds_since(search_start);
    say(supernet_epoch_line(
        metric, history.back(), e, lambda, total_epochs,
        elapsed / double(epoch + 1 - first_epoch) * double(total_epochs - epoch - 1)));
    if (ctx.hardware.co_search()) {
      const size_t h = supernet->selected_hardware();
      say(fmt::format("  most probable hardware: {} (p = {:.3f}, {:.4f} mm^2)",
                      config.hardware.describe(h), e["hardware"]["probabilities"][h].get<double>(),
                      ctx.hardware.area[h].total()));
    }
  }

  SupernetRecord record{history, evolution, 0};
  for (const auto& h : history) record.seconds += h["seconds"].get<double>();
  return record;
}

// ---------------------------------------------------------------- stage 4: derivation

/// The derived architecture, the hardware candidate it was derived for, and its record
/// (derivation.json, also the stage's checkpoint).
struct Derivation {
  ArchitectureChoice choice;
  size_t hardware = 0;
  nlohmann::json json;
};

/// A derivation candidate: an architecture fitted to the budgets of one hardware candidate.
struct Candidate {
  size_t hardware = 0;
  ArchitectureChoice choice;
};

/// The derived network as it would be exported now: inherited, masks at their targets,
/// quantisation calibrated.
void prepare_inherited(const SearchContext& ctx, const Supernet& supernet,
                       const data::ImageDataset& train_set, const ArchitectureChoice& c,
                       QNet& net) {
  const SearchConfig& config = ctx.config;
  prepare_derived(ctx, supernet, train_set, c, net);
  prepare_quantization(net, train_set, config.data.normalization, config.search.batch_size,
                       config.search.seed, ctx.ranks());
}

/// The derivation's candidates ranked by accuracy, with inherited weights, quantised and
/// masked as they will be exported, on the held-out images (the first training images when
/// none are held out).
struct Ranking {
  Candidate best;
  nlohmann::json json = nlohmann::json::array();  ///< every candidate, its costs, accuracy
  std::string set_name;                           ///< what they were ranked on
};

/// A co-search's candidates are pairs: an architecture scored once however many hardware
/// candidates it was derived for; among equal scores the smaller hardware, then the faster
/// pair, wins.
Ranking rank_candidates(const SearchContext& ctx, Supernet& supernet,
                        const data::ImageDataset& train_set, const data::ImageDataset& holdout,
                        const std::vector<Candidate>& candidates) {
  const data::Normalization& normalization = ctx.config.data.normalization;
  data::ImageDataset first_training_images;
  if (holdout.size() == 0) {
    first_training_images = train_set;
    first_training_images.truncate(kRankingImagesWithoutHoldout);
  }
  const data::ImageDataset& ranking_set = holdout.size() > 0 ? holdout : first_training_images;
  Ranking ranking;
  ranking.set_name = ranking_set.name;
  const Metric metric = metric_of(ctx.config.data);
  const HardwareCandidates& hw = ctx.hardware;
  std::map<std::string, double> scored;  ///< by architecture
  double best_score = -1e300, best_area = 0, best_ms = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const ArchitectureChoice& c = candidates[i].choice;
    const size_t h = candidates[i].hardware;
    supernet.select_hardware(h);
    const std::string architecture = supernet.describe(c);
    auto known = scored.find(architecture);
    if (known == scored.end()) {
      QNet net(supernet.derive(c), normalization);
      prepare_inherited(ctx, supernet, train_set, c, net);
      const double score =
          evaluate(net, ranking_set, normalization, Mode::Quantized, 256, 0, ctx.ranks()).score;
      known = scored.emplace(architecture, score).first;
    }
    const double score = known->second;
    const Costs table = costs_of(supernet.table_costs(c));
    nlohmann::json entry = {{"architecture", architecture},
                            {"table", table},
                            {"log_probability", supernet.log_probability(c)},
                            {score_key(metric, "holdout"), score}};
    const double area = hw.area[h].total();
    const double ms = table[Cycles] / hw.npus[h].core_clock_hz * 1e3;
    std::string on;
    if (hw.co_search()) {
      entry["hardware"] = h;
      entry["hardware_choices"] = ctx.config.hardware.describe(h);
      entry["area_mm2"] = area;
      entry["milliseconds"] = ms;
      on =
          fmt::format(" on {} ({:.4f} mm^2, {:.4f} ms)", ctx.config.hardware.describe(h), area, ms);
    }
    ranking.json.push_back(entry);
    ctx.say(fmt::format(
        "  candidate {}/{}: {}{}: {} on {} ({:.0f} B weights, {:.0f} B flash by the tables)", i + 1,
        candidates.size(), architecture, on, format_score(metric, score), ranking_set.name,
        table[Weights], table[Flash]));
    const bool better =
        score > best_score ||
        (score == best_score && (area < best_area || (area == best_area && ms < best_ms)));
    if (better) {
      best_score = score;
      best_area = area;
      best_ms = ms;
      ranking.best = candidates[i];
    }
  }
  if (hw.co_search()) {
    // The pairs no other pair beats in score, latency and area at once.
    const std::string key = score_key(metric, "holdout");
    std::vector<std::vector<double>> costs;
    for (const nlohmann::json& a : ranking.json) {
      costs.push_back(
          {-a[key].get<double>(), a["milliseconds"].get<double>(), a["area_mm2"].get<double>()});
    }
    const std::vector<bool> front = common::pareto_front(costs);
    for (size_t i = 0; i < front.size(); ++i) ranking.json[i]["pareto"] = bool(front[i]);
  }
  supernet.select_hardware(ranking.best.hardware);
  return ranking;
}

/// The fine-tune recipe cut to its first `epochs` epochs, taken phase by phase (float
/// warm-up, compress, fine-tune).
TrainSpec first_epochs_of(TrainSpec recipe, uint32_t epochs) {
  for (PhaseSpec* phase : {&recipe.warmup, &recipe.compress, &recipe.finetune}) {
    phase->epochs = std::min(phase->epochs, epochs);
    epochs -= phase->epochs;
  }
  return recipe;
}

/// search.derivation.finetune_epochs: every candidate trained from its inherited weights
/// with the fine-tune recipe cut to that many epochs, in candidates/N/ (resumable), and
/// scored as exported on the same held-out images the inherited ranking used (the trainer
/// holds out the same last training images). The candidate best there becomes
/// `ranking.best`; each candidate's entry gains its scores after the fine-tune (the test
/// score recorded, never used), and the result is the rank correlations of the inherited
/// scores with them.
nlohmann::json finetune_candidates(const SearchContext& ctx, const Supernet& supernet,
                                   const data::ImageDataset& train_set,
                                   const std::vector<ArchitectureChoice>& candidates,
                                   Ranking& ranking) {
  const SearchConfig& config = ctx.config;
  const SearchStageSpec& spec = config.search;
  const uint32_t epochs = spec.derivation_finetune_epochs;
  const TrainSpec recipe = first_epochs_of(config.finetune, epochs);
  if (recipe.compress.epochs + recipe.finetune.epochs == 0) {
    throw std::runtime_error(fmt::format(
        "{}: search.derivation.finetune_epochs {} ends within the fine-tune's {} float warm-up "
        "epochs; the candidates must end quantised to be ranked as exported",
        config.file, epochs, config.finetune.warmup.epochs));
  }
  if (spec.holdout_fraction <= 0) {
    throw std::runtime_error(
        fmt::format("{}: search.derivation.finetune_epochs needs held-out images to rank on "
                    "(search.derivation.holdout_fraction is 0)",
                    config.file));
  }
  const Metric metric = metric_of(config.data);
  const std::string inherited_key = score_key(metric, "holdout");
  std::vector<double> inherited, finetuned, tested;
  double best = -1e300;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const ArchitectureChoice& c = candidates[i];
    TrainConfig train_config = derived_train_config(ctx, supernet, c);
    train_config.train = first_epochs_of(train_config.train, epochs);
    train_config.train.holdout_fraction = spec.holdout_fraction;
    train_config.verify_images = 0;
    const TrainOptions options{(ctx.out / "candidates" / std::to_string(i + 1)).string(),
                               ctx.options.restart, ctx.options.log, ctx.options.ranks};
    ctx.say(fmt::format("candidate {}/{}: {}: {} epochs of the fine-tune ({})", i + 1,
                        candidates.size(), supernet.describe(c), epochs, options.output_dir));
    const TrainResult trained = train_network(train_config, ctx.npu, options, [&](QNet& net) {
      prepare_derived(ctx, supernet, train_set, c, net);
    });
    const size_t exported =
        trained.selected_epoch >= 0 ? size_t(trained.selected_epoch) : trained.history.size() - 1;
    const double score = trained.history.at(exported).holdout_score;
    nlohmann::json by_epoch = nlohmann::json::array();
    for (const EpochRecord& record : trained.history) by_epoch.push_back(record.holdout_score);
    nlohmann::json& entry = ranking.json.at(i);
    entry["finetuned"] = {{"epochs", epochs},
                          {inherited_key, score},
                          {"holdout_by_epoch", by_epoch},
                          {score_key(metric, "test"), trained.test_score},
                          {"weight_bytes", measured_costs(trained)[Weights]},
                          {"flash_bytes", measured_costs(trained)[Flash]},
                          {"within_budgets", trained.within_budgets}};
    inherited.push_back(entry.at(inherited_key).get<double>());
    finetuned.push_back(score);
    tested.push_back(trained.test_score);
    ctx.say(fmt::format("candidate {}/{}: {} held out with inherited weights, {} after {} epochs",
                        i + 1, candidates.size(), format_score(metric, inherited.back()),
                        format_score(metric, score), epochs));
    if (score > best) {
      best = score;
      ranking.best = {0, c};
    }
  }
  // JSON has no NaN: an undefined correlation (fewer than two candidates, or ties all
  // round) is written as null.
  auto correlation = [](const std::vector<double>& a, const std::vector<double>& b) {
    const double rho = common::spearman_correlation(a, b);
    return std::isnan(rho) ? nlohmann::json(nullptr) : nlohmann::json(rho);
  };
  const nlohmann::json correlations = {
      {"candidates", candidates.size()},
      {"finetune_epochs", epochs},
      {"inherited_vs_finetuned_holdout", correlation(inherited, finetuned)},
      {"inherited_vs_finetuned_test", correlation(inherited, tested)},
      {"finetuned_holdout_vs_test", correlation(finetuned, tested)}};
  ctx.say(fmt::format(
      "derivation check: Spearman rank correlation of the inherited ranking with "
      "the held-out score after {} epochs of fine-tuning: {} ({} candidates)",
      epochs, correlations["inherited_vs_finetuned_holdout"].dump(), candidates.size()));
  return correlations;
}

/// An architecture the real encoder, compiler and simulator say fits, with what they
/// measured and the steps that led there.
struct Repaired {
  ArchitectureChoice choice;
  Costs measured{};
  nlohmann::json steps = nlohmann::json::array();
};

/// Repairs `choice` by the tables until they say it fits within `fraction` of the limits,
/// then measures the exported network with inherited weights; where the tables
/// under-estimated, they are corrected by the measured ratio and the repair goes on.
/// Throws BudgetError when no cheaper choice helps.
Repaired repair_until_measured_fit(const SearchContext& ctx, const Supernet& supernet,
                                   const data::ImageDataset& train_set, ArchitectureChoice choice,
                                   double fraction) {
  const Limits& limits = ctx.limits;
  Repaired repaired;
  Costs scale;
  scale.fill(1.0);
  for (int round = 0;; ++round) {
    if (round > 200) throw BudgetError("derivation: no fitting architecture after 200 repairs");
    const TableCosts estimate = supernet.table_costs(choice);
    Costs scaled = costs_of(estimate);
    for (size_t r = 0; r < kResourceCount; ++r) scaled[r] *= scale[r];
    if (estimate.fits && within(scaled, limits, fraction)) {
      // Measure the real thing: the derived network with inherited weights, exported.
      QNet net(supernet.derive(choice), ctx.config.data.normalization);
      prepare_inherited(ctx, supernet, train_set, choice, net);
      const fm::ModelMeasurement m = fm::measure_model(net.export_model(), ctx.npu);
      const Costs measured = costs_of(m);
      repaired.steps.push_back({{"architecture", supernet.describe(choice)},
                                {"table", costs_of(estimate)},
                                {"measured", measured},
                                {"compiles", m.fits()}});
      if (m.fits() && within(measured, limits, fraction)) {
        repaired.choice = choice;
        repaired.measured = measured;
        return repaired;
      }
      // The tables under-estimated: correct them by the measured ratio and go on.
      for (size_t r = 0; r < kResourceCount; ++r) {
        const double table = costs_of(estimate)[r];
        if (table > 0 && measured[r] > limits[r] * fraction) {
          scale[r] = std::max(scale[r] * 1.02, measured[r] / table);
        }
      }
      if (!m.fits()) scale[Sram] *= 1.1;
    }
    const std::optional<ArchitectureChoice> next =
        best_repair(supernet, choice, limits, scale, fraction, false);
    if (!next) {
      throw BudgetError(
          fmt::format("derivation: {} does not fit the budgets and no cheaper choice helps",
                      supernet.describe(choice)));
    }
    repaired.steps.push_back({{"repair", supernet.describe(*next)}});
    choice = *next;
  }
}

/// Candidates ranked on held-out images with inherited weights, the best repaired until
/// the real encoder, compiler and simulator say it fits; read back from derivation.json on
/// resume.
Derivation derive_architecture(const SearchContext& ctx, const std::shared_ptr<Supernet>& supernet,
                               const data::ImageDataset& train_set,
                               const data::ImageDataset& holdout) {
  const SearchConfig& config = ctx.config;
  const SearchStageSpec& spec = config.search;
  const SearchSpace& space = config.space;
  const SearchOptions& options = ctx.options;
  const fs::path& out = ctx.out;
  auto say = [&](const std::string& line) { ctx.say(line); };
  const std::string derivation_path = (out / "derivation.json").string();
  Derivation result;
  ArchitectureChoice& choice = result.choice;
  nlohmann::json& derivation = result.json;
  Costs derived_costs{};
  const std::optional<std::string> saved =
      options.restart ? std::nullopt : read_on_primary(ctx.ranks(), derivation_path);
  if (saved) {
    try {
      derivation = nlohmann::json::parse(*saved);
      choice = choice_from_json(derivation.at("indices"));
      if (choice.size() != space.blocks.size()) throw std::runtime_error("wrong number of blocks");
      if (derivation.contains("hardware")) {
        result.hardware = derivation.at("hardware").at("index").get<size_t>();
        if (result.hardware >= ctx.hardware.npus.size()) {
          throw std::runtime_error("no such hardware candidate");
        }
      }
      supernet->select_hardware(result.hardware);
      supernet->table_costs(choice);  // checks every index against the space
    } catch (const std::exception& e) {
      throw std::runtime_error(
          fmt::format("{}: unreadable derivation ({}); use --restart to start over",
                      derivation_path, e.what()));
    }
    say("derivation read from " + derivation_path);
  } else {
    const Clock::time_point derive_start = Clock::now();
    supernet->refresh_weight_tables();
    const std::string initial = supernet->describe(supernet->most_probable());
    const double fraction = 1.0 - spec.budget_margin / 2;
    // Rank the candidates by their held-out accuracy with inherited weights, quantised
    // and masked as they will be exported.
    const bool random = spec.strategy == SearchStageSpec::Strategy::Random;
    // The hardware candidates to derive for: the most probable ones (the random control:
    // drawn uniformly), within the budgets.
    std::vector<size_t> hardware;
    for (size_t h = 0; h < ctx.hardware.npus.size(); ++h) {
      if (supernet->hardware_allowed(h)) hardware.push_back(h);
    }
    if (random) {
      std::mt19937_64 rng(spec.seed ^ 0x4857u);
      std::shuffle(hardware.begin(), hardware.end(), rng);
    } else {
      torch::NoGradGuard no_grad;
      const torch::Tensor p = supernet->hardware_probabilities();
      std::stable_sort(hardware.begin(), hardware.end(), [&](size_t a, size_t b) {
        return p[int64_t(a)].item<double>() > p[int64_t(b)].item<double>();
      });
    }
    if (ctx.hardware.co_search() && hardware.size() > spec.derivation_hardware) {
      hardware.resize(spec.derivation_hardware);
    }
    std::vector<Candidate> candidates;
    for (size_t h : hardware) {
      supernet->select_hardware(h);
      for (ArchitectureChoice& c :
           derivation_candidates(*supernet, ctx.hardware.limits[h], fraction,
                                 spec.derivation_samples, spec.seed, !random)) {
        candidates.push_back({h, std::move(c)});
      }
    }
    if (candidates.empty()) {
      throw BudgetError(fmt::format(
          "derivation: {} does not fit the budgets and no cheaper choice helps", initial));
    }
    Ranking ranking = rank_candidates(ctx, *supernet, train_set, holdout, candidates);
    nlohmann::json rank_correlation;
    if (spec.derivation_finetune_epochs > 0) {
      std::vector<ArchitectureChoice> choices;
      for (const Candidate& c : candidates) choices.push_back(c.choice);
      rank_correlation = finetune_candidates(ctx, *supernet, train_set, choices, ranking);
    }
    result.hardware = ranking.best.hardware;
    supernet->select_hardware(result.hardware);
    const Repaired repaired = repair_until_measured_fit(ctx.on_hardware(result.hardware), *supernet,
                                                        train_set, ranking.best.choice, fraction);
    choice = repaired.choice;
    derived_costs = repaired.measured;
    const nlohmann::json& ranked = ranking.json;
    const nlohmann::json& steps = repaired.steps;
    derivation = {{"most_probable", initial},
                  {"derived", supernet->describe(choice)},
                  {"candidates", ranked},
                  {"ranked_on", ranking.set_name},
                  {"ranked_by", spec.derivation_finetune_epochs > 0
                                    ? fmt::format("held-out score after {} fine-tune epochs",
                                                  spec.derivation_finetune_epochs)
                                    : std::string("held-out score with inherited weights")},
                  {"rank_correlation", rank_correlation},
                  {"indices", choice_indices_json(choice)},
                  {"choices", choice_json(*supernet, choice)},
                  {"log_probability", supernet->log_probability(choice)},
                  {"measured_with_inherited_weights", derived_costs},
                  {"steps", steps},
                  {"seconds", seconds_since(derive_start)}};
    if (ctx.hardware.co_search()) {
      const size_t h = result.hardware;
      const npu_sim::AreaBreakdown& area = ctx.hardware.area[h];
      torch::NoGradGuard no_grad;
      derivation["hardware"] = {
          {"index", h},
          {"choices", ctx.config.hardware.describe(h)},
          {"npu", ctx.hardware.npus[h].npu_name},
          {"probability", supernet->hardware_probabilities()[int64_t(h)].item<double>()},
          {"area_mm2",
           {{"total", area.total()},
            {"npu", area.npu()},
            {"macs", area.macs},
            {"shared_buffer", area.shared_buffer},
            {"decoders", area.decoders},
            {"fixed", area.fixed},
            {"sram", area.sram}}},
          {"derived_for", hardware}};
    }
    if (ctx.primary()) common::write_file_atomically(derivation_path, derivation.dump(2) + "\n");
    say(
        fmt::format("derived {} (most probable: {}); with inherited weights {:.0f} B weights, "
                    "{:.0f} B flash, {:.0f} B SRAM, {:.0f} cycles",
                    supernet->describe(choice), initial, derived_costs[Weights],
                    derived_costs[Flash], derived_costs[Sram], derived_costs[Cycles]));
    if (ctx.hardware.co_search()) {
      say(fmt::format("  on hardware {} ({:.4f} mm^2)",
                      ctx.config.hardware.describe(result.hardware),
                      ctx.hardware.area[result.hardware].total()));
    }
  }
  if (ctx.hardware.from_space && ctx.primary()) {
    // The found NPU, whole: the fine-tune, the report and the user's `udc run` read it.
    common::write_file_atomically(
        (out / "npu.yaml").string(),
        fmt::format(
            "# {} from {} ({}).\n{}",
            ctx.hardware.co_search() ? "Found by udc search" : "Chosen by udc search --hardware",
            config.file, config.hardware.describe(result.hardware),
            npu_sim::npu_config_yaml(ctx.hardware.npus[result.hardware])));
  }

  return result;
}

// ---------------------------------------------------------------- stage 5: fine-tune and repair

/// The fine-tuned model and the architecture it ended with (repairs may change it).
struct FineTuned {
  TrainResult trained;
  ArchitectureChoice choice;
  nlohmann::json repairs = nlohmann::json::array();
  double seconds = 0;
};

/// The derived model fine-tuned (as udc train, weights inherited, budgets held), exported
/// and verified; repaired with a short fine-tune while a measured budget is exceeded.
/// Resumes through the trainer's own checkpoints in finetune/ and repairN/.
FineTuned finetune_and_repair(const SearchContext& ctx, const std::shared_ptr<Supernet>& supernet,
                              const data::ImageDataset& train_set, ArchitectureChoice choice) {
  const SearchConfig& config = ctx.config;
  const SearchStageSpec& spec = config.search;
  const npu_sim::NpuConfig& npu = ctx.npu;
  const SearchOptions& options = ctx.options;
  const Limits& limits = ctx.limits;
  const fs::path& out = ctx.out;
  std::ostream* log = options.log;
  auto say = [&](const std::string& line) { ctx.say(line); };
  FineTuned result;
  TrainConfig train_config = derived_train_config(ctx, *supernet, choice);
  if (ctx.primary()) {
    common::write_file_atomically((out / "derived.yaml").string(), train_config_yaml(train_config));
  }
  TrainOptions train_options{(out / "finetune").string(), options.restart, log, options.ranks};
  const Clock::time_point finetune_start = Clock::now();
  say("fine-tuning the derived model (" + train_options.output_dir + ")");
  TrainResult trained = train_network(train_config, npu, train_options, [&](QNet& net) {
    prepare_derived(ctx, *supernet, train_set, choice, net);
  });
  // Fine-tuning moves the weights and so the compressed size: repair what still exceeds a
  // budget by raising sparsity or lowering bits, with a short fine-tune each time.
  nlohmann::json repairs = nlohmann::json::array();
  for (int round = 1; !within(measured_costs(trained), limits, 1.0); ++round) {
    if (round > 4) {
      throw BudgetError(fmt::format(
          "the fine-tuned model exceeds its budgets after {} repairs: {:.0f} B weights, {:.0f} B "
          "flash, {:.0f} B SRAM, {:.0f} cycles (the last one is {})",
          round - 1, measured_costs(trained)[Weights], measured_costs(trained)[Flash],
          measured_costs(trained)[Sram], measured_costs(trained)[Cycles], trained.model_path));
    }
    Costs scale;
    scale.fill(1.0);
    const Costs table = costs_of(supernet->table_costs(choice));
    for (size_t r = 0; r < kResourceCount; ++r) {
      if (table[r] > 0) scale[r] = measured_costs(trained)[r] / table[r];
    }
    ArchitectureChoice repaired = choice;
    while (!within(
        [&] {
          Costs c = costs_of(supernet->table_costs(repaired));
          for (size_t r = 0; r < kResourceCount; ++r) c[r] *= scale[r];
          return c;
        }(),
        limits, 1.0 - spec.budget_margin / 2)) {
      const auto next =
          best_repair(*supernet, repaired, limits, scale, 1.0 - spec.budget_margin / 2,
                      /*shapes_fixed=*/true);
      if (!next)
        throw BudgetError("the fine-tuned model exceeds its budgets and cannot be repaired");
      repaired = *next;
    }
    say(fmt::format("repair {}: the fine-tuned model exceeds a budget; {} with a short fine-tune",
                    round, supernet->describe(repaired)));
    const std::string previous = train_options.output_dir;
    choice = repaired;
    train_config.architecture = supernet->derive(choice);
    train_config.train.warmup.epochs = 0;
    // No float warm-up, so no float teacher to distil from.
    train_config.train.distillation.weight = 0;
    train_config.train.compress.epochs = 1;
    train_config.train.finetune.epochs = 1;
    train_options.output_dir = (out / fmt::format("repair{}", round)).string();
    trained = train_network(train_config, npu, train_options, [&](QNet& net) {
      load_exported_network(previous, net, metric_of(config.data), ctx.ranks());
    });
    repairs.push_back(
        {{"architecture", supernet->describe(choice)}, {"measured", measured_costs(trained)}});
    if (ctx.primary()) {
      common::write_file_atomically((out / "derived.yaml").string(),
                                    train_config_yaml(train_config));
    }
  }
  result.seconds = seconds_since(finetune_start);

  result.trained = std::move(trained);
  result.choice = choice;
  result.repairs = std::move(repairs);
  return result;
}

// ---------------------------------------------------------------- stage 6: results

/// A co-search's visited pairs (the derivation's candidates: an architecture fitted to one
/// hardware candidate, scored on the held-out images with inherited weights, costed by the
/// tables) as pairs.csv, and their held-out score against latency as pareto.svg, the
/// pairs no other beats in score, latency and area at once in red.
void write_pairs(const SearchContext& ctx, const nlohmann::json& derivation,
                 const SearchResult& result) {
  const Metric metric = result.metric;
  const std::string key = score_key(metric, "holdout");
  std::string csv = "hardware,hardware_choices,architecture," + key +
                    ",milliseconds,area_mm2,weight_bytes,flash_bytes,sram_bytes,cycles,pareto\n";
  common::PlotSeries others{"other pairs", "#999", 3, false, false, {}};
  common::PlotSeries front{"Pareto front (score, latency, area)", "#d62728", 5, false, true, {}};
  for (const nlohmann::json& c : derivation.at("candidates")) {
    const nlohmann::json& table = c.at("table");
    const bool pareto = c.value("pareto", false);
    csv += fmt::format("{},\"{}\",\"{}\",{},{},{},{},{},{},{},{}\n", c.at("hardware").get<size_t>(),
                       c.at("hardware_choices").get<std::string>(),
                       c.at("architecture").get<std::string>(), c.at(key).get<double>(),
                       c.at("milliseconds").get<double>(), c.at("area_mm2").get<double>(),
                       table[Weights].get<double>(), table[Flash].get<double>(),
                       table[Sram].get<double>(), table[Cycles].get<double>(), pareto ? 1 : 0);
    const double score =
        metric == Metric::Top1 ? 100 * c.at(key).get<double>() : c.at(key).get<double>();
    (pareto ? front : others)
        .points.push_back({c.at("milliseconds").get<double>(), score,
                           fmt::format("{:.3f} mm^2", c.at("area_mm2").get<double>())});
  }
  common::write_file_atomically(result.pairs_path, csv);
  common::PlotSpec plot;
  plot.title = fmt::format("{}: pairs visited by the co-search", ctx.config.space.name);
  plot.x_label = "latency by the tables [ms]";
  plot.y_label = metric == Metric::Top1 ? "held-out accuracy, inherited weights [%]"
                                        : "held-out PSNR, inherited weights [dB]";
  plot.series = {others, front};
  plot.y_from_zero = false;
  common::write_file_atomically(result.pareto_plot_path, common::svg_scatter_plot(plot));
}

/// The found model, report.json (with every stage's record), evolution.csv and the
/// accuracy-versus-size plot; the budget verdict on the fine-tuned model's measurement.
SearchResult write_results(const SearchContext& ctx, const Supernet& net,
                           const SupernetRecord& supernet_record, const Derivation& derived,
                           const FineTuned& finetuned, Clock::time_point run_start) {
  const SearchConfig& config = ctx.config;
  const SearchSpace& space = config.space;
  const fs::path& out = ctx.out;
  // The found model answers to the search's budgets and to tighter ones of the fine-tune
  // (a sequential control searches int8 under a loose budget and compresses to the target
  // in the fine-tune).
  Limits limits = ctx.limits;
  const TrainSpec& finetune = config.finetune;
  if (finetune.weight_budget_bytes > 0)
    limits[Weights] = std::min(limits[Weights], double(finetune.weight_budget_bytes));
  if (finetune.flash_budget_bytes > 0)
    limits[Flash] = std::min(limits[Flash], double(finetune.flash_budget_bytes));
  std::ostream* log = ctx.log();
  auto say = [&](const std::string& line) { ctx.say(line); };
  const nlohmann::json& history = supernet_record.history;
  const nlohmann::json& evolution = supernet_record.evolution;
  const double search_seconds = supernet_record.seconds;
  const nlohmann::json& derivation = derived.json;
  const TrainResult& trained = finetuned.trained;
  const ArchitectureChoice& choice = finetuned.choice;
  const nlohmann::json& repairs = finetuned.repairs;
  const double finetune_seconds = finetuned.seconds;
  SearchResult result;
  result.architecture = net.describe(choice);
  result.metric = trained.metric;
  result.test_score = trained.test_score;
  if (!trained.hardware)
    throw std::logic_error("run_search: the fine-tuned model was not measured");
  result.hardware = *trained.hardware;
  result.budget_violations = fm::budget_violations(result.hardware, measured_budgets(limits));
  const npu_sim::AreaBreakdown area = npu_sim::area_of(ctx.npu, config.area);
  result.area_mm2 = area.total();
  if (config.budgets.area_mm2 && result.area_mm2 > *config.budgets.area_mm2) {
    result.budget_violations.push_back(
        fmt::format("area {:.4f} mm^2 > {:g} mm^2", result.area_mm2, *config.budgets.area_mm2));
  }
  result.within_budgets = result.budget_violations.empty();
  if (ctx.hardware.from_space) result.npu_path = (out / "npu.yaml").string();
  if (ctx.hardware.co_search()) {
    result.pairs_path = (out / "pairs.csv").string();
    result.pareto_plot_path = (out / "pareto.svg").string();
  }
  result.model_path = (out / "model.udcm").string();
  result.report_path = (out / "report.json").string();
  result.plot_path = (out / "accuracy_vs_size.svg").string();
  result.evolution_path = (out / "evolution.csv").string();
  result.tflite_path = (out / "model.tflite").string();
  // Rank 0 writes; the others return the same result.
  if (!ctx.primary()) return result;
  for (const auto& [from, to] : {std::pair{trained.model_path, result.model_path},
                                 std::pair{trained.tflite_path, result.tflite_path}}) {
    const std::vector<uint8_t> bytes = common::read_file(from);
    common::write_file_atomically(to, bytes.data(), bytes.size());
  }

  common::write_file_atomically(result.evolution_path, evolution_csv(space, evolution));

  nlohmann::json budgets = nlohmann::json::object();
  const Costs final_costs = measured_costs(trained);
  for (size_t r = 0; r < kResourceCount; ++r) {
    if (!std::isfinite(limits[r])) continue;
    budgets[kResourceNames[r]] = {
        {"budget", limits[r]}, {"measured", final_costs[r]}, {"fits", final_costs[r] <= limits[r]}};
  }
  if (config.budgets.area_mm2) {
    budgets["area_mm2"] = {{"budget", *config.budgets.area_mm2},
                           {"measured", result.area_mm2},
                           {"fits", result.area_mm2 <= *config.budgets.area_mm2}};
  }
  if (config.budgets.milliseconds) {
    const double milliseconds = result.hardware.milliseconds;
    budgets["milliseconds"] = {{"budget", *config.budgets.milliseconds},
                               {"measured", milliseconds},
                               {"fits", milliseconds <= *config.budgets.milliseconds}};
  }
  const std::vector<uint8_t> train_report_bytes = common::read_file(trained.report_path);
  const nlohmann::json train_report =
      nlohmann::json::parse(train_report_bytes.begin(), train_report_bytes.end());
  const nlohmann::json report = {
      {"config", config.file},
      {"space", space.name},
      {"strategy", config.search.strategy == SearchStageSpec::Strategy::Random ? "random" : "dnas"},
      {"npu_config", ctx.hardware.from_space ? result.npu_path : config.npu.describe()},
      {score_key(result.metric, "test"), result.test_score},
      {"architecture", result.architecture},
      {"choices", choice_json(net, choice)},
      {"budgets", budgets},
      {"fits", result.within_budgets},
      {"weight_bytes", result.hardware.weight_bytes},
      {"flash_bytes", result.hardware.flash_bytes},
      {"sram_peak_bytes", result.hardware.arena_bytes},
      {"cycles", result.hardware.cycles},
      {"milliseconds", result.hardware.milliseconds},
      {"verified_images", trained.verified_images},
      {"layers", train_report.at("layers")},
      {"search_history", history},
      {"evolution", evolution},
      {"derivation", derivation},
      {"repairs", repairs},
      {"finetune_history", train_report.at("history")},
      {"seconds",
       {{"search", search_seconds},
        {"finetune", finetune_seconds},
        {"total_this_run", seconds_since(run_start)}}}};
  nlohmann::json full_report = report;
  if (ctx.hardware.co_search()) {
    full_report["hardware"] = derivation.at("hardware");
    full_report["hardware"]["npu_file"] = result.npu_path;
    write_pairs(ctx, derivation, result);
  }
  common::write_file_atomically(result.report_path, full_report.dump(2) + "\n");
  common::write_file_atomically(result.plot_path, accuracy_plot_svg(config, result, log));
  say(
      fmt::format("found {}: test {}, {} B of weight streams, {} B flash image, {} B SRAM, "
                  "{:.0f} cycles = {:.3f} ms; budgets {}",
                  result.architecture, format_score(result.metric, result.test_score),
                  result.hardware.weight_bytes, result.hardware.flash_bytes,
                  result.hardware.arena_bytes, result.hardware.cycles, result.hardware.milliseconds,
                  result.within_budgets ? "met" : "NOT met (below)"));
  say(fmt::format("wrote {}, {}, {}, {}, {}", result.model_path, result.tflite_path,
                  result.report_path, result.plot_path, result.evolution_path));
  if (ctx.hardware.co_search()) {
    say(fmt::format("found hardware {} ({}, {:.4f} mm^2 by the {} area model): wrote {}, {}, {}",
                    config.hardware.describe(derived.hardware), ctx.npu.npu_name, result.area_mm2,
                    config.area.technology, result.npu_path, result.pairs_path,
                    result.pareto_plot_path));
  }
  return result;
}

}  // namespace

SearchResult run_search(const SearchConfig& config, const npu_sim::NpuConfig npu,
                        const SearchOptions& options) {
  const Clock::time_point run_start = Clock::now();
  use_training_threads(config.search.threads);
  torch::manual_seed(config.search.seed);
  if (!options.ranks || options.ranks->primary()) {
    fs::create_directories(options.output_dir);
    // What a killed run was writing when it died (its checkpoints and outputs are whole).
    common::remove_stale_temporaries(options.output_dir);
  }
  const HardwareCandidates hardware = hardware_candidates(config, npu);
  if (hardware.co_search() && config.search.derivation_finetune_epochs > 0) {
    throw common::ConfigError(config.file +
                              ": search.derivation.finetune_epochs: not available in a co-search "
                              "(hardware:); rank the pairs with inherited weights");
  }
  const SearchContext ctx{
      config,  hardware.npus[0], options, fs::path(options.output_dir), hardware.limits[0],
      hardware};
  // The stages in order; each resumes from what it wrote before (search_checkpoint.pt,
  // derivation.json, the trainer's checkpoints) unless --restart.
  const std::shared_ptr<Supernet> supernet = build_supernet(ctx);
  const SearchData data = load_search_data(ctx);
  const SupernetRecord supernet_record =
      train_supernet(ctx, supernet, data.train_set, data.architecture_set);
  const Derivation derived = derive_architecture(ctx, supernet, data.train_set, data.holdout);
  // From here on, on the hardware the derivation chose (the one NPU without a co-search).
  const SearchContext chosen = ctx.on_hardware(derived.hardware);
  supernet->select_hardware(derived.hardware);
  const FineTuned finetuned = finetune_and_repair(chosen, supernet, data.train_set, derived.choice);
  return write_results(chosen, *supernet, supernet_record, derived, finetuned, run_start);
}

}  // namespace udc::search
