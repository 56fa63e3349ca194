// Repeating a training or a search over seeds (`udc train --seeds`, `udc search --seeds`):
// each seed is an ordinary run in its own folder (resumable like one), and the figures
// are summarised as mean ± sample standard deviation, so that a difference is called real
// only beside its spread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/firmware_model/measurement.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/search/search.hpp"
#include "udc/search/trainer.hpp"

namespace udc::search {

/// One seed's run: where it went and what it measured.
struct SeedRun {
  uint64_t seed = 0;
  std::string output_dir;  ///< <output>/seed-<seed>
  Metric metric = Metric::Top1;
  double test_score = 0;  ///< Metric: [fraction] or [dB]
  /// The exported epoch's score on the held-out training images; negative when none were
  /// held out (or for a search).
  double holdout_score = -1;
  std::optional<firmware_model::ModelMeasurement> hardware;  ///< none without an NPU
  bool within_budgets = true;
  double seconds = 0;  ///< wall time of the run, over every invocation that resumed it
  /// A search's NPU with its SRAM by the config's area model [mm^2]; negative for training.
  double area_mm2 = -1;
  /// A search's npu.yaml when it chose the NPU from a `hardware:` space; empty otherwise.
  std::string npu_file;
};

struct SeedsResult {
  Metric metric = Metric::Top1;  ///< what the runs' scores are
  std::vector<SeedRun> runs;     ///< in seed order, earlier invocations' included
  std::string summary_path;      ///< <output>/seeds.json
  std::string config_file;       ///< the config the runs came from (seeds.json's "config")
};

/// Trains `config` once per seed (train.seed), each in options.output_dir/seed-<seed>,
/// rewriting seeds.json (each run and the mean ± std of every figure) after each seed, and
/// returns the runs. Runs of other seeds that an earlier invocation recorded in that
/// seeds.json (of the same config file) stay in it and in the result, in seed order, so
/// that seeds run at different times into one folder are summarised together; a corrupt
/// seeds.json or another config's is an error that names it. A run over its budgets is recorded as
/// such and the others still run.
SeedsResult train_seeds(const TrainConfig& config, const std::optional<npu_sim::NpuConfig>& npu,
                        const TrainOptions& options, const std::vector<uint64_t>& seeds);
/// The same for a search: search.seed and finetune.seed both set to the seed.
SeedsResult search_seeds(const SearchConfig& config, const npu_sim::NpuConfig& npu,
                         const SearchOptions& options, const std::vector<uint64_t>& seeds);

/// A seeds.json as train_seeds / search_seeds wrote it: its runs, metric and config. Throws
/// naming the file when it is missing or not such a summary (and the field that is wrong).
SeedsResult read_seeds_summary(const std::string& path);

/// One figure of seeds.json ("test_accuracy", "weight_bytes", "seconds"...) over the runs
/// that measured it, in seeds.json's units (accuracy in percent), as its summary averages
/// them. Throws std::invalid_argument for a name seeds.json does not have.
std::vector<double> figure_values(const SeedsResult& result, const std::string& figure);

/// The run's latency on its NPU [ms]; none without an NPU, or for a record of seeds.json
/// written before it kept milliseconds (its cycles alone: the clock is the NPU's).
std::optional<double> measured_milliseconds(const SeedRun& run);

/// A score as seeds.json and the tables give it: accuracy in percent (100), PSNR in dB (1).
double score_scale(Metric metric);
/// seeds.json's "score_unit" for a metric's figures, as score_scale gives them.
const char* score_unit(Metric metric);

/// The runs as a table with a mean ± std row (accuracy in % or PSNR in dB, bytes, cycles,
/// seconds).
std::string format_seeds_table(const SeedsResult& result);

}  // namespace udc::search
