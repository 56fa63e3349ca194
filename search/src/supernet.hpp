// The DNAS supernet (internal to search/: includes Torch).
//
// Every block holds one set of weights per operator at its widest shape; narrower widths,
// lower bitwidths and sparsity levels are views of those weights (channel masks, fake
// quantisation, magnitude masks), so the supernet costs one network's memory per operator.
// Each block chooses its operator and output width, and every weighted layer of every
// operator its own bitwidth and (unless depthwise) sparsity; each choice is a vector of
// logits relaxed with Gumbel-softmax. By default every operator runs and the outputs are
// mixed by the relaxed operator probabilities (FBNet); `operators: sampled` runs one
// operator per step, the gradient reaching all logits through the straight-through softmax
// (GDAS). Width, bitwidths and sparsities are always soft mixtures, cheap because they only
// mix weights and channel masks. The operators themselves are search_operator.hpp's: the
// supernet builds and runs the layers each describes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hardware_tables.hpp"
#include "qnet.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/search/search_config.hpp"

namespace udc::search {

/// The bitwidth and sparsity of one weighted layer: indices into the space's bits and
/// sparsity. A depthwise layer's sparsity index is always 0 (it stays dense).
struct LayerChoice {
  size_t bits = 0, sparsity = 0;
  bool operator==(const LayerChoice& o) const { return bits == o.bits && sparsity == o.sparsity; }
};
/// One candidate per block: indices into its ops and widths, and one LayerChoice per
/// weighted layer of the operator, in execution order (SearchOperator::layers(); none for a
/// skip).
struct BlockChoice {
  size_t op = 0, width = 0;
  std::vector<LayerChoice> layers;
};
using ArchitectureChoice = std::vector<BlockChoice>;

/// How choices are drawn in a forward pass.
struct SamplingSettings {
  double temperature = 1.0;  ///< Gumbel-softmax temperature
  double noise = 1.0;        ///< scale of the Gumbel noise (0: the plain softmax)
  bool hard = false;         ///< every choice one-hot; else see sample_operator
  /// The operator is drawn one-hot (straight-through) rather than every operator run and
  /// mixed by its relaxed probability.
  bool sample_operator = false;
  /// A fixed architecture instead of sampling (one-hot everywhere).
  const ArchitectureChoice* fixed = nullptr;
  /// Data-parallel: the images are this rank's share of a global batch, and batch norm
  /// normalises by the whole batch's statistics (ForwardContext::ranks). Null: one process.
  Ranks* ranks = nullptr;
};

/// Expected costs under the architecture distribution (differentiable): scalars from
/// expected_costs() (mixed over the hardware distribution), or one entry per hardware
/// candidate from expected_costs_per_hardware().
struct ExpectedCosts {
  torch::Tensor weight_bytes, flash_bytes, sram_bytes, cycles;
};

/// The cost tables of one hardware candidate (one NPU configuration of a co-search; the
/// only one otherwise).
struct CandidateCostTables {
  HardwareTables hardware;  ///< cycles, SRAM, fit and block depths measured on its NPU
  /// Per block, TableShape::index layout: encoded streams [B]; streams, scale records and
  /// alignment in the weight image [B], laid out in the block depths `hardware` recorded.
  std::vector<std::vector<double>> weight, flash;
};

/// Exact costs of one architecture from the tables.
struct TableCosts {
  double weight_bytes = 0, flash_bytes = 0, sram_bytes = 0, cycles = 0;
  bool fits = true;  ///< every candidate fits the NPU on its own
};

/// A convolution, depthwise convolution or fully connected layer at its widest shape, with
/// batch norm (convolutions) or bias (fully connected).
class SharedLayer : public torch::nn::Module {
 public:
  enum class Kind { Conv, Depthwise, FullyConnected };
  SharedLayer(Kind kind, uint32_t in_channels, uint32_t out_channels, uint32_t kernel,
              uint32_t stride, uint32_t in_height, uint32_t in_width, bool relu);
  /// Batch norm on its frozen statistics from now on (ArchitectureSpec::batch_statistics).
  void freeze_batch_statistics() { batch_statistics_ = false; }
  /// The quantiser's step rule (SearchSpace::weight_step) and the bitwidths forward() is
  /// given; takes effect at the next refresh_masks().
  void set_weight_step_rule(WeightStepRule rule, std::vector<uint32_t> bit_choices);

  /// y = activation(bn(op(x, mixed weights))). The weights are mixed over the active input
  /// widths (probabilities `input_widths`, aligned with set_input_widths), the sparsity
  /// levels (`sparsity`) and the bitwidths (`bits`); each term is masked and fake-quantised
  /// as the derived layer of that input width would be (mask and step computed on the
  /// slice), so a one-hot choice computes exactly what the derived network computes.
  /// `ranks`: batch norm over every rank's share of the batch (SamplingSettings::ranks).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& input_widths,
                        const torch::Tensor& bits, const torch::Tensor& sparsity,
                        const std::vector<uint32_t>& bit_choices, Ranks* ranks = nullptr);
  /// The possible numbers of active input channels [channels], indexed like the input
  /// width probabilities that forward() receives. Depthwise layers take one entry (their
  /// weights do not depend on the input width). Default: the full width only.
  void set_input_widths(std::vector<int64_t> widths);
  /// Magnitude masks of the slice of each input width, for each sparsity level; with
  /// WeightStepRule::LeastError also the step fractions (least_error_step_fraction) of each
  /// masked slice and bitwidth, which forward() applies to the current weights' range
  /// until the next refresh.
  void refresh_masks(const std::vector<double>& levels);
  /// Folded (batch norm, running statistics) weights of the first `out` outputs and `in`
  /// inputs, as QWeighted folds them.
  torch::Tensor folded_slice(int64_t out, int64_t in) const;
  /// The slice at `bits` and `sparsity`, with the integers QWeighted would export (mask and
  /// LSQ initial step on the slice), encoded and laid out as the compiler does in blocks of
  /// `block_depth` output channels (0: one block).
  firmware_model::WeightLayout layout(int64_t out, int64_t in, uint32_t bits, double sparsity,
                                      uint32_t block_depth) const;
  /// The slice's integer weights as layout() encodes them, in the model's layout.
  std::vector<int8_t> integer_weights(int64_t out, int64_t in, uint32_t bits,
                                      double sparsity) const;
  /// Copies the slice into a derived layer.
  void copy_to(QWeighted& layer, int64_t out, int64_t in) const;
  /// The masks in force ([input width][sparsity level]), for a checkpoint: they were
  /// computed from the weights of the last refresh, not from the current ones.
  const std::vector<std::vector<torch::Tensor>>& masks() const { return masks_; }
  void set_masks(std::vector<std::vector<torch::Tensor>> masks) { masks_ = std::move(masks); }
  /// The step fractions in force ([input width][sparsity level][bitwidth]; empty under
  /// LSQ's rule), for a checkpoint like masks().
  const std::vector<std::vector<std::vector<torch::Tensor>>>& step_fractions() const {
    return step_fractions_;
  }
  void set_step_fractions(std::vector<std::vector<std::vector<torch::Tensor>>> fractions) {
    step_fractions_ = std::move(fractions);
  }

  Kind kind() const { return kind_; }
  /// Whether the search's sparsity choice applies: depthwise layers stay dense (few weights
  /// per channel; pruning them silences channels for a few bytes).
  bool prunable() const { return kind_ != Kind::Depthwise; }

 private:
  Kind kind_;
  uint32_t in_channels_, out_channels_, kernel_, stride_;
  bool relu_;
  int64_t pad_top_ = 0, pad_bottom_ = 0, pad_left_ = 0, pad_right_ = 0;
  torch::Tensor weight_, bias_;
  torch::nn::BatchNorm2d batch_norm_{nullptr};
  bool batch_statistics_ = true;       ///< ArchitectureSpec::batch_statistics
  std::vector<int64_t> input_widths_;  ///< see set_input_widths [channels]
  /// [input width][sparsity level]: full-size masks, 1 outside the slice; not module
  /// state (a search checkpoint keeps them through Supernet::masks()).
  std::vector<std::vector<torch::Tensor>> masks_;
  WeightStepRule weight_step_rule_ = WeightStepRule::Lsq;
  std::vector<uint32_t> bit_choices_;  ///< set_weight_step_rule
  /// [input width][sparsity level][bitwidth], LeastError only (refresh_masks)
  std::vector<std::vector<std::vector<torch::Tensor>>> step_fractions_;
};

/// A block's tensors between blocks: values at the widest width, the soft channel mask
/// and the probabilities of the width choices (over the producing block's widths).
struct SuperTensor {
  torch::Tensor x, mask, width_probabilities;
};

class Supernet : public torch::nn::Module {
 public:
  /// `hardware_options`: a co-search's option count per hardware choice
  /// (npu_sim::HardwareSpace), each choice getting its logits; empty: one fixed NPU.
  explicit Supernet(const SearchSpace& space, std::vector<size_t> hardware_options = {});

  /// Logits [N, classes] of `images` (NCHW) under sampled (or fixed) choices.
  torch::Tensor forward(const torch::Tensor& images, const SamplingSettings& settings);

  /// Re-measures the weight and flash tables (bytes per candidate) on the current weights,
  /// each layer encoded and laid out as the compiler does (firmware_model::layout_weights),
  /// in output-channel blocks of the depth the hardware tables recorded (one block before
  /// they are set: a lower bound of the streams' bytes); every hardware candidate's, those
  /// with the same block depths encoded once.
  void refresh_weight_tables();
  /// Measures the cycles tables again with the current weights (quantised and pruned as
  /// for the flash table): the decoder's time follows the streams' content. Seconds spent.
  double refresh_cycles_table(const npu_sim::NpuConfig& npu);
  /// The same for every hardware candidate, `npus[h]` being candidate h's NPU.
  double refresh_cycles_tables(const std::vector<npu_sim::NpuConfig>& npus);
  void refresh_masks();
  /// Every layer's masks in force, then its step fractions (WeightStepRule::LeastError),
  /// flattened in a fixed order (checkpoints), and back; set_masks throws
  /// std::runtime_error when they do not match this supernet.
  std::vector<torch::Tensor> masks() const;
  void set_masks(const std::vector<torch::Tensor>& masks);
  /// The selected hardware candidate's tables (select_hardware).
  const std::vector<std::vector<double>>& weight_table() const { return selected().weight; }
  const std::vector<std::vector<double>>& flash_table() const { return selected().flash; }
  const HardwareTables& hardware_tables() const { return selected().hardware; }
  /// Sets the measured tables of the one NPU, and lays the weight tables out again in the
  /// block depths they recorded.
  void set_hardware_tables(HardwareTables tables) { set_candidate_tables({std::move(tables)}); }
  /// A co-search's tables, one per hardware candidate (as many as the product of the
  /// hardware option counts; candidate order as npu_sim::HardwareSpace numbers them).
  void set_candidate_tables(std::vector<HardwareTables> tables);

  /// Hardware candidates (1 without a co-search).
  size_t hardware_count() const { return candidates_.size(); }
  /// The candidate whose tables weight_table(), hardware_tables(), table_costs() and the
  /// derivation read.
  void select_hardware(size_t h);
  size_t selected_hardware() const { return selected_; }
  /// Candidates the co-search may choose (false: over the area budget, or a budget cannot
  /// be met on them); their probability is 0 and the others' renormalised. Default: all.
  void set_hardware_allowed(std::vector<bool> allowed);
  bool hardware_allowed(size_t h) const { return allowed_.at(h); }
  /// [H] probabilities of the hardware candidates: the product of each choice's softmax,
  /// restricted to the allowed ones; differentiable in the hardware logits. {1} without a
  /// co-search.
  torch::Tensor hardware_probabilities() const;
  /// The allowed candidate of highest probability.
  size_t most_probable_hardware() const;
  /// The hardware logits, one tensor per hardware choice (none without a co-search; they
  /// are also the last of architecture_parameters()).
  const std::vector<torch::Tensor>& hardware_parameters() const { return hardware_logits_; }

  /// Expected costs under softmax(logits) (no noise), differentiable in the logits: each
  /// hardware candidate's [H].
  ExpectedCosts expected_costs_per_hardware() const;
  /// The same mixed over the hardware distribution (scalars): exactly the one NPU's costs
  /// without a co-search.
  ExpectedCosts expected_costs() const { return mixed(expected_costs_per_hardware()); }
  /// Per-hardware costs `each` mixed over the hardware distribution (scalars).
  ExpectedCosts mixed(const ExpectedCosts& each) const;
  /// Costs of one architecture from the selected hardware candidate's tables.
  TableCosts table_costs(const ArchitectureChoice& choice) const;
  /// The most probable candidate of every block.
  ArchitectureChoice most_probable() const;
  /// The most probable bits and sparsity of each weighted layer of operator `op` of block k.
  std::vector<LayerChoice> most_probable_layers(size_t block, size_t op) const;
  /// log-probability of a choice under the current distribution.
  double log_probability(const ArchitectureChoice& choice) const;
  /// Logits of a choice of block k: "op", "width", or "bits" / "sparsity" of weighted
  /// layer `layer` of operator `op`; undefined for the sparsity of a depthwise layer.
  torch::Tensor logits(size_t block, const std::string& kind, size_t op = 0,
                       size_t layer = 0) const;
  /// softmax(logits(...)); {1} where the logits are undefined (a single fixed option).
  std::vector<double> probabilities(size_t block, const std::string& kind, size_t op = 0,
                                    size_t layer = 0) const;

  /// The fixed architecture of a choice, named after the space.
  ArchitectureSpec derive(const ArchitectureChoice& choice) const;
  /// Copies the chosen slices of the shared weights into `net` (built from derive(choice)).
  void inherit(const ArchitectureChoice& choice, QNet& net) const;
  /// Short text of a choice: "stem:conv/16/w4/s50 b1:skip ...".
  std::string describe(const ArchitectureChoice& choice) const;

  /// The weights (not the architecture logits).
  std::vector<torch::Tensor> weight_parameters() const;
  std::vector<torch::Tensor> architecture_parameters() const;
  const SearchSpace& space() const { return space_; }

 private:
  struct Block {
    std::vector<std::vector<std::shared_ptr<SharedLayer>>> op_layers;  ///< layers per op
    torch::Tensor op_logits, width_logits;
    /// [op][layer]: each weighted layer's bitwidth and sparsity logits (sparsity undefined
    /// where the layer is depthwise).
    std::vector<std::vector<torch::Tensor>> bits_logits, sparsity_logits;
  };
  SuperTensor run_block(size_t k, const SuperTensor& in, const SamplingSettings& settings);
  /// Output of operator `o` of block k (not gated) under the width probabilities and the
  /// layers' bits and sparsity drawn as `settings` says.
  SuperTensor run_operator(size_t k, size_t o, const SuperTensor& in, const torch::Tensor& width_p,
                           const SamplingSettings& settings);
  /// Effective input width index of each block under `choice` (skips pass widths on).
  std::vector<size_t> input_width_indices(const ArchitectureChoice& choice) const;

  const CandidateCostTables& selected() const { return candidates_.at(selected_); }
  /// Encoded layer slices: block, operator, layer, outputs, inputs, bits index, sparsity
  /// index, block depth.
  using WeightLayoutCache =
      std::map<std::tuple<size_t, size_t, size_t, int64_t, int64_t, size_t, size_t, uint32_t>,
               firmware_model::WeightLayout>;
  /// A candidate's weight and flash tables, encoded in the block depths its hardware tables
  /// recorded (one block per layer before they are set); slices in `encoded` are not
  /// encoded again.
  void encode_weight_tables(CandidateCostTables& tables, WeightLayoutCache& encoded) const;
  /// A candidate's cycles measured again on `npu` with the current weights; seconds spent.
  double remeasure_candidate_cycles(HardwareTables& hardware, const npu_sim::NpuConfig& npu) const;

  SearchSpace space_;
  std::vector<BlockGeometry> geometry_;
  std::vector<Block> blocks_;
  /// Per hardware candidate (one without a co-search); before set_candidate_tables, one
  /// whose hardware tables are empty.
  std::vector<CandidateCostTables> candidates_;
  size_t selected_ = 0;
  std::vector<bool> allowed_;
  std::vector<size_t> hardware_options_;        ///< option count per hardware choice
  std::vector<torch::Tensor> hardware_logits_;  ///< per hardware choice
  /// A super-resolution space's anchor as a float filter [scale^2 x channels, channels, k,
  /// k] (anchor_filter); undefined without one. Fixed: built once, not a parameter.
  torch::Tensor anchor_filter_;
};

}  // namespace udc::search
