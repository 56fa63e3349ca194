// `udc train`: compression-aware training of a fixed architecture in three phases (float
// warm-up; quantisation with the pruning ramp; fine-tuning with masks and activation ranges
// frozen), checkpointed every epoch, then export to .udcm, verification on the reference
// interpreter and the simulator, and a JSON report. Torch-free interface.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "udc/firmware_model/measurement.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/search/ranks.hpp"
#include "udc/search/train_config.hpp"

namespace udc::search {

struct TrainOptions {
  std::string output_dir;       ///< model.udcm, report.json, checkpoint.pt
  bool restart = false;         ///< ignore an existing checkpoint
  std::ostream* log = nullptr;  ///< progress; nullptr: silent
  /// Data-parallel training over these ranks (ranks.hpp): each trains on its share of every
  /// batch, all hold the same network, rank 0 alone logs and writes (the output folder need
  /// not be shared: a checkpoint only rank 0 can read is sent to the others). Null: one
  /// process.
  std::shared_ptr<Ranks> ranks;
};

/// One finished epoch.
struct EpochRecord {
  uint32_t epoch = 0;                      ///< 0-based over all phases
  std::string phase;                       ///< warmup | compress | finetune
  double loss = 0;                         ///< mean training loss
  double train_score = 0, test_score = 0;  ///< Metric: [fraction] or [dB]
  /// Integer model on the held-out training images (Metric); negative: not evaluated (no
  /// images held out, or the epoch's model is not final in form).
  double holdout_score = -1;
  /// The integer model as compiled for the config's NPU (firmware_model::measure_model):
  /// encoded weight streams and the flash image [bytes] (0 in warm-up or without an NPU)
  uint64_t weight_bytes = 0, flash_bytes = 0;
  double seconds = 0;            ///< wall time of the epoch, evaluation included
  double step_milliseconds = 0;  ///< mean training step
};

struct TrainResult {
  /// model.udcm, the same model as model.tflite (for Vela and TFLite Micro) and report.json.
  std::string model_path, tflite_path, report_path;
  Metric metric = Metric::Top1;
  /// The integer model on the configured test set (Metric: [fraction] or [dB]; PSNR
  /// over whole photographs, as `udc eval` measures it)
  double test_score = 0;
  /// The exported model as compiled and simulated on the config's NPU
  /// (firmware_model::measure_model: weight streams, flash image, arena and SRAM, cycles);
  /// none without an NPU. Always fits: a model that does not is an error.
  std::optional<firmware_model::ModelMeasurement> hardware;
  /// Within train.weight_budget_bytes and train.flash_budget_bytes. When not, the model is
  /// written as model.over-budget.udcm and .tflite and `budget_violations` says how.
  bool within_budgets = true;
  std::vector<std::string> budget_violations;
  uint64_t verified_images = 0;  ///< equal on LibTorch, interpreter and simulator
  std::vector<EpochRecord> history;
  bool resumed = false;
  uint32_t first_epoch = 0;  ///< where this run started (after a resume)
  /// The epoch exported (0-based; TrainSpec::holdout_fraction), -1: the last one, no
  /// choice made.
  int64_t selected_epoch = -1;
  size_t holdout_images = 0;  ///< training images held out for that choice
};

/// Trains, exports and verifies. Throws std::runtime_error (data, config, does-not-fit and
/// verification errors with their reasons). A model over its budgets is returned with
/// within_budgets false, not thrown: the search repairs it.
/// `npu`: the NPU the model is measured and verified on (none: no hardware figures; the
/// budgets need one), passed by value so that the command line's --npu and --set reach it.
TrainResult train(const TrainConfig& config, std::optional<npu_sim::NpuConfig> npu,
                  const TrainOptions& options);
/// The NPU a config names (`npu:`, `npu_set:`), loaded; none when it names none.
std::optional<npu_sim::NpuConfig> configured_npu(const TrainConfig& config);

}  // namespace udc::search
