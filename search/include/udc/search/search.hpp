// `udc search`: the unified DNAS. Warm-up of the supernet's shared weights, joint search of
// weights and architecture under the hardware budgets (expected costs from the codec and
// simulator tables, Lagrange multipliers), derivation of the most probable architecture
// repaired until the real codec, compiler and simulator say it fits, fine-tuning with the
// weights inherited (the `udc train` machinery), export and verification. Torch-free
// interface.
#pragma once

#include <iosfwd>
#include <memory>
#include <stdexcept>
#include <string>

#include "udc/firmware_model/measurement.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/search/ranks.hpp"
#include "udc/search/search_config.hpp"

namespace udc::search {

/// A budget that no architecture of the space can meet, or a derivation that cannot be
/// repaired into one that fits; what() names the budget and the numbers.
class BudgetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SearchOptions {
  std::string output_dir;       ///< results folder (see README: model, report, plot, ...)
  bool restart = false;         ///< ignore existing checkpoints in the folder
  std::ostream* log = nullptr;  ///< progress; nullptr: silent
  /// Data-parallel over these ranks (ranks.hpp; TrainOptions::ranks). Null: one process.
  std::shared_ptr<Ranks> ranks;
};

struct SearchResult {
  std::string model_path, tflite_path, report_path, plot_path, evolution_path;
  std::string architecture;  ///< short description of the found model
  Metric metric = Metric::Top1;
  double test_score = 0;  ///< the integer model on the test set (Metric)
  /// The found model as compiled and simulated on the NPU (firmware_model::measure_model).
  firmware_model::ModelMeasurement hardware;
  /// Every budget met by `hardware`; else `budget_violations` says which and by how much.
  bool within_budgets = false;
  std::vector<std::string> budget_violations;
  /// Co-search: the found NPU (a whole configuration file, udc run --npu reads it), its
  /// area by the config's area model [mm^2], and the visited pairs (pairs.csv, pareto.svg);
  /// empty paths and 0 without one.
  std::string npu_path, pairs_path, pareto_plot_path;
  double area_mm2 = 0;
};

/// Runs the whole search. Throws BudgetError for impossible budgets (before any training)
/// and std::runtime_error for data, config and verification errors.
/// `npu`: the NPU whose costs are searched against, passed by value so that the command
/// line's --npu and --set reach it (npu_sim::load_npu_config(config.npu) for the config's).
SearchResult run_search(const SearchConfig& config, npu_sim::NpuConfig npu,
                        const SearchOptions& options);

}  // namespace udc::search
