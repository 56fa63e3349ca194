// The configuration of `udc search`: the search space (blocks with operator, width, weight
// bitwidth and sparsity choices), the hardware budgets, the search schedule and the
// fine-tuning of the derived model. Torch-free, so that the CLI and tests read and check
// configs without LibTorch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/npu_sim/area.hpp"
#include "udc/npu_sim/hardware_space.hpp"
#include "udc/search/search_operator.hpp"
#include "udc/search/train_config.hpp"

namespace udc::search {

/// One block of the supernet. The block's output width is one of `widths`; its input width
/// is the previous block's output width (the image channels for the first block).
struct BlockSpace {
  std::string name;
  std::vector<OperatorPtr> ops;  ///< operator choices (search_operator.hpp)
  std::vector<uint32_t> widths;  ///< output channel choices, ascending
  uint32_t kernel = 3;           ///< [pixels]
  uint32_t stride = 1;
};

struct SearchSpace {
  std::string name = "dnas";
  uint32_t height = 28, width = 28, channels = 1;  ///< input [pixels, pixels, channels]
  uint32_t classes = 10;                           ///< classification; 0 for super-resolution
  /// Super-resolution (data: a super-resolution set): the output pixels per input pixel
  /// along each axis, the last block being the upscaler; 0: classification, the last
  /// block the classifier.
  uint32_t scale = 0;
  bool batch_statistics = true;          ///< ArchitectureSpec::batch_statistics (false with scale)
  AnchorKind anchor = AnchorKind::None;  ///< ArchitectureSpec::anchor (only with scale)
  /// ArchitectureSpec::weight_step: the supernet's fake quantisation and cost tables and
  /// the derived network's quantisers (YAML `weight_step`)
  WeightStepRule weight_step = WeightStepRule::Lsq;
  std::vector<uint32_t> bits{2, 4, 8};   ///< weight bitwidth choices, every block
  std::vector<double> sparsity{0.0, 0.5, 0.75, 0.9};  ///< sparsity choices, every block
  /// Searchable blocks in order, then the classifier or upscaler block (appended by the
  /// reader).
  std::vector<BlockSpace> blocks;
};

/// Hard limits on the found model, each optional, each measured on the model as compiled for
/// the NPU (firmware_model::measure_model): weight_bytes the encoded weight streams (the
/// paper's compressed model size), flash_bytes the weight image (streams, scale records,
/// alignment), sram_bytes the activation arena, latency from the simulator.
struct Budgets {
  std::optional<uint64_t> weight_bytes;
  std::optional<uint64_t> flash_bytes;
  std::optional<uint64_t> sram_bytes;
  std::optional<double> cycles;
  std::optional<double> milliseconds;  ///< converted to cycles at the NPU's clock
  /// Silicon area of the NPU and its SRAM by the area model [mm^2]: hardware candidates
  /// over it are never chosen (SearchConfig::area).
  std::optional<double> area_mm2;
  bool any() const {
    return weight_bytes || flash_bytes || sram_bytes || cycles || milliseconds || area_mm2;
  }
};

/// The supernet's training: warm-up of the shared weights under uniformly sampled
/// architectures, then the joint search of weights and architecture.
struct SearchStageSpec {
  uint32_t batch_size = 128;
  PhaseSpec warmup{1, 3e-3}, search{2, 2e-3};
  double architecture_learning_rate = 1e-2;  ///< Adam on the choice logits
  double weight_decay = 1e-4;
  /// Gumbel-softmax temperature, exponential from initial to final over the search stage.
  double temperature_initial = 5.0, temperature_final = 0.5;
  /// Scale of the Gumbel noise, linear from initial to final over the search: 1 samples
  /// architectures from the distribution (exploration), 0 always follows the current
  /// probabilities (exploitation).
  double noise_initial = 1.0, noise_final = 0.2;
  /// How a block's operator is relaxed. Mixed: every operator runs and the outputs are
  /// weighted by the relaxed probabilities (FBNet-style; the shared weights of each
  /// operator always see consistent inputs, at the cost of running them all). Sampled:
  /// one operator per step, straight-through (GDAS-style; cheaper, but the weights learn
  /// much more slowly because every downstream layer sees a different operator each step).
  enum class OperatorRelaxation { Mixed, Sampled } operators = OperatorRelaxation::Mixed;
  /// Dnas: the choice logits learn (task loss plus budget terms). Random, the control:
  /// they stay uniform, so the shared weights train on uniformly drawn paths and the
  /// derivation ranks uniformly drawn architectures (no most-probable start), then repairs
  /// and fine-tunes the best exactly as for the DNAS.
  enum class Strategy { Dnas, Random } strategy = Strategy::Dnas;
  double lagrange_rate = 0.05;  ///< multiplier growth per step per unit of relative excess
  /// The search aims below each budget by this fraction, so that the derived model fits
  /// after fine-tuning moves its weights.
  double budget_margin = 0.05;
  /// Derivation candidates: the most probable architecture and this many architectures
  /// sampled from the learnt distribution, each repaired to fit the budgets and also grown
  /// back towards them by the tables; the one most accurate on the held-out images, with
  /// inherited weights and quantised, is fine-tuned.
  uint32_t derivation_samples = 8;
  /// 0: the candidates are ranked by their held-out score with inherited weights. N: each
  /// is first trained from its inherited weights with the fine-tune recipe cut to its
  /// first N epochs, then ranked by its held-out score as exported; derivation.json gets
  /// the rank correlation of the two rankings (N = the whole recipe checks the inherited
  /// ranking against accuracy after fine-tuning).
  uint32_t derivation_finetune_epochs = 0;
  /// Co-search: the derivation derives candidates for this many of the most probable
  /// hardware candidates (within the area budget) and ranks the pairs together.
  uint32_t derivation_hardware = 3;
  /// Part of the training images kept out of the supernet's training, on which the
  /// derivation ranks its candidates (0: ranked on the first training images instead). The
  /// fine-tune trains on every training image.
  double holdout_fraction = 0.1;
  /// Bi-level search (DARTS): this part of the supernet's training images (those it trains
  /// on after the derivation's are held out) is kept for the architecture steps, which then
  /// take their own batches of it while the weights step on the rest, each step on one
  /// loss. 0: single-level, weights and architecture step together on the same batches.
  double architecture_fraction = 0.0;
  uint32_t flash_refresh_steps = 100;  ///< re-measure the flash table every N search steps
  uint32_t prune_interval = 50;        ///< steps between magnitude-mask updates
  uint64_t seed = 1;
  uint32_t threads = 2;
  size_t max_steps_per_epoch = 0;  ///< 0: whole epochs (tests use a few)
};

struct SearchConfig {
  std::string file;  ///< where it was read from
  SearchSpace space;
  Budgets budgets;
  DataSpec data;
  SearchStageSpec search;
  TrainSpec finetune;  ///< phases of the derived model's training (weights inherited)
  /// The NPU whose costs the search measures (`npu:`, `npu_set:`; required); the command
  /// line's --npu and --set change it.
  common::ConfigSource npu;
  /// Co-search (`hardware:`): choices over NPU and system parameters applied onto `npu`,
  /// learnt with the network; none: the NPU is fixed.
  npu_sim::HardwareSpace hardware;
  npu_sim::AreaModel area;  ///< `area:`: prices the NPU for budgets.area_mm2 and reports
  uint32_t verify_images = 100;
  std::string baselines;  ///< JSON file of baseline results for the plot; empty: none
};

/// Reads and checks a search configuration; throws common::ConfigError naming the file,
/// line and key.
/// The `search:` section's parameters, declared once (see train_params()).
const std::vector<common::Param<SearchStageSpec>>& search_params();

SearchConfig load_search_config(const std::string& path);

}  // namespace udc::search
