// The configuration of `udc train`: a fixed architecture with per-layer operator, width,
// weight bitwidth and sparsity, the data set, and the three training phases. Torch-free,
// so that the CLI and tests can read and check configs without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "udc/common/config_source.hpp"
#include "udc/common/params.hpp"
#include "udc/common/yaml_section.hpp"
#include "udc/data/batch_loader.hpp"
#include "udc/data/dataset.hpp"
#include "udc/data/super_resolution.hpp"

namespace udc::search {

/// Layer kinds of a fixed architecture. Conv, Depthwise and InvertedResidual carry batch
/// norm (folded before quantisation); FullyConnected has a bias.
enum class LayerKind {
  Conv,              ///< kxk convolution, "same" padding
  Depthwise,         ///< kxk depthwise convolution, "same" padding
  InvertedResidual,  ///< 1x1 expand (x expansion), kxk depthwise, 1x1 project, + input when
                     ///< stride 1 and width unchanged (MobileNetV2)
  MaxPool,           ///< kxk window, stride, valid padding
  AvgPool,           ///< kxk window, stride, valid padding
  GlobalAvgPool,
  FullyConnected,  ///< flattens its input (HWC order)
  /// Sub-pixel rearrangement by `block` (kernel field): channel (i*b + j)*C + c of pixel
  /// (y, x) goes to pixel (y*b + i, x*b + j), channel c; the output of super-resolution
  /// networks (ESPCN).
  DepthToSpace,
};
const char* layer_kind_name(LayerKind kind);

enum class ActivationKind { None, Relu, Relu6 };

/// What a super-resolution network's output is added to (ArchitectureSpec::anchor): none,
/// the input's nearest-neighbour upscale (the anchor of ABPN, Du et al. 2021) or its
/// bicubic upscale (the global residual of VDSR, Kim et al. 2016; Catmull-Rom, as
/// data::resize_bicubic and `udc eval`'s bicubic figure).
enum class AnchorKind { None, Nearest, Bicubic };
const char* anchor_kind_name(AnchorKind kind);
/// The YAML key `anchor` of a model or search space: none, nearest or bicubic; only a
/// super-resolution network (`super_resolution`) may have one.
AnchorKind read_anchor(common::YamlSection& section, bool super_resolution);

/// How a layer's weight quantiser sets its initial step per output channel, the step that
/// LSQ then learns in training and that the search's fake quantisation and cost tables use
/// throughout. Layers of 8 bits take max|w| / Q under both rules (Q = 2^(bits-1) - 1).
enum class WeightStepRule {
  /// LSQ's 2 E|w| / sqrt(Q) (Esser et al. 2020), the mean over every weight of the channel,
  /// pruned zeros included: at high sparsity the step shrinks with the kept fraction, and
  /// at 4 bits and 90 % sparsity every kept weight clips at Q steps.
  Lsq,
  /// The step that rounds the channel with the least squared error (zeros round exactly
  /// under any step, so the kept weights decide), the best of a grid of 40 steps from
  /// max|w| / Q down to 1/30 of it, each 2^(1/8) below the last.
  LeastError,
};
const char* weight_step_rule_name(WeightStepRule rule);
/// The YAML key `weight_step` of a model or search space: lsq (default) or least_error.
WeightStepRule read_weight_step_rule(common::YamlSection& section);

struct LayerSpec {
  LayerKind kind = LayerKind::Conv;
  std::string name;           ///< unique; derived ("conv0", ...) if not given
  uint32_t out_channels = 0;  ///< Conv, InvertedResidual, FullyConnected
  uint32_t kernel = 3;        ///< [pixels]; DepthToSpace: the block size
  uint32_t stride = 1;
  uint32_t expansion = 1;    ///< InvertedResidual: hidden width = expansion x input width
  uint32_t weight_bits = 8;  ///< 2..8, symmetric: +-(2^(bits-1) - 1)
  /// Fraction of weights pruned to exact zeros, 0..0.99. In an InvertedResidual it applies
  /// to the 1x1 expand and project; its depthwise stays dense (k*k weights per channel:
  /// pruning them saves few bytes and silences whole channels).
  double sparsity = 0.0;
  ActivationKind activation = ActivationKind::Relu;  ///< FullyConnected defaults to None
  /// InvertedResidual, optional: one bitwidth per weighted sub-layer, in order (expand when
  /// expansion > 1, depthwise, project); empty: weight_bits for all. YAML: `bits` as a list.
  std::vector<uint32_t> sublayer_bits;
  /// InvertedResidual, optional: one sparsity per weighted sub-layer, in the same order,
  /// the depthwise's 0; empty: `sparsity` for the 1x1s. YAML: `sparsity` as a list.
  std::vector<double> sublayer_sparsity;

  /// Weighted sub-layers of an InvertedResidual: 3 with an expansion, else 2.
  size_t sublayer_count() const { return expansion > 1 ? 3 : 2; }
  /// Bitwidth and sparsity of weighted sub-layer `i` of an InvertedResidual (the depthwise,
  /// i = sublayer_count() - 2, is dense).
  uint32_t sublayer_bits_at(size_t i) const {
    return sublayer_bits.empty() ? weight_bits : sublayer_bits.at(i);
  }
  double sublayer_sparsity_at(size_t i) const {
    if (i + 2 == sublayer_count()) return 0.0;
    return sublayer_sparsity.empty() ? sparsity : sublayer_sparsity.at(i);
  }
};

struct ArchitectureSpec {
  std::string name = "model";
  uint32_t height = 28, width = 28, channels = 1;  ///< input [pixels, pixels, channels]
  uint32_t classes = 10;
  std::vector<LayerSpec> layers;
  /// Convolutions' batch norm normalises by the batch's statistics while training. False:
  /// it stays a learnt per-channel scale and bias on frozen statistics, for super-resolution
  /// (EDSR, Lim et al. 2017: batch norm hurts it; here the float warm-up of an ESPCN
  /// reached 24 dB with it, the same network with frozen statistics 31 dB).
  bool batch_statistics = true;
  /// Super-resolution: the last convolution's output is added, before depth_to_space, to a
  /// fixed upscale of the input in the same sub-pixel layout, so that the network learns
  /// only the residual over it. Low-bit and pruned weights then perturb a small correction,
  /// not the whole image. Exported as a fixed int8 convolution of the input (1x1 for
  /// nearest, 5x5 for bicubic) and an ADD, which the budgets count like any layer.
  AnchorKind anchor = AnchorKind::None;
  /// How every weighted layer's quantiser starts its step (YAML `weight_step`).
  WeightStepRule weight_step = WeightStepRule::Lsq;
};

/// Where the images come from and how they are prepared.
///
/// A super-resolution set (data::super_resolution_registry(): sr-photos, div2k) makes the
/// task super-resolution: the network learns the high-resolution photographs from their
/// bicubic downscales by `scale`, trained on patch pairs (data::patch_pairs) of the model's
/// input size, scored by PSNR on the luminance of whole held-out photographs.
struct DataSpec {
  std::string set = "fashion-mnist";         ///< a data::dataset_registry() or SR set name
  std::string dir = data::kFashionMnistDir;  ///< required for the other sets
  uint32_t image_side = 32;                  ///< image-folder: images are resized to side x side
  size_t train_subset = 0;                   ///< first N training images (0: all)
  size_t test_subset = 0;                    ///< first N test images (0: all)
  data::Normalization normalization{0.286f, 0.353f};
  data::Augmentation augmentation;
  uint32_t scale = 2;  ///< super-resolution: output pixels per input pixel along each axis
  /// Super-resolution: step between training patches [low-resolution pixels]; 0: half the
  /// patch side.
  uint32_t patch_stride = 0;
  bool super_resolution() const;
};

/// What a trained network is scored by, larger being better: top-1 accuracy [fraction] for
/// classification, PSNR [dB] on luminance for super-resolution (DataSpec::super_resolution).
enum class Metric { Top1, Psnr };
Metric metric_of(const DataSpec& data);
/// A score as people read it: "88.37%" or "27.31 dB".
std::string format_score(Metric metric, double score);
/// The JSON key of a score measured on `where` ("test", "train", "holdout"):
/// "test_accuracy" [fraction] or "test_psnr_db" [dB].
std::string score_key(Metric metric, const std::string& where);

/// One training phase. Phases: warmup (float), compress (quantisation and pruning ramp),
/// finetune (masks and activation ranges frozen).
struct PhaseSpec {
  uint32_t epochs = 1;
  double learning_rate = 1e-3;  ///< initial; cosine decay to 5 % over the phase
};

/// Self-distillation: the quantised phases also learn the soft predictions of the network
/// as it stood at the end of the float warm-up (a frozen float teacher, batch norm on its
/// running statistics). Loss: (1 - weight) * cross-entropy(labels) + weight * temperature^2
/// * KL(teacher || student), both softened by `temperature` (Hinton et al. 2015).
struct DistillationSpec {
  double weight = 0.0;       ///< 0..1; 0: off
  double temperature = 4.0;  ///< softmax temperature of teacher and student, > 0
  bool enabled() const { return weight > 0; }
};

struct TrainSpec {
  uint32_t batch_size = 128;
  PhaseSpec warmup{2, 2e-3}, compress{2, 1e-3}, finetune{1, 2e-4};
  double weight_decay = 1e-4;  ///< decoupled (AdamW-style), weights only
  uint64_t seed = 1;
  uint32_t threads = 2;               ///< Torch intra-op threads
  uint32_t prune_interval = 50;       ///< steps between mask updates in the compress phase
  double ramp_fraction = 0.7;         ///< part of the compress phase over which sparsity ramps up
  /// Training batches on which batch-norm statistics are re-estimated (of the pruned float
  /// network) whenever masks move in the compress phase: the ramp, or the budget guard
  /// pruning. The folding follows, the integer weights stay. 0: the warm-up's statistics
  /// stay, though a layer that lost most of its weights no longer has the output mean and
  /// variance they describe [batches]
  uint32_t recalibration_batches = 0;
  double activation_momentum = 0.99;  ///< EMA of observed activation ranges [per step]
  size_t max_steps_per_epoch = 0;     ///< 0: whole epoch (tests use a few)
  /// Budgets the trained model must not exceed, measured as the compiler lays the model
  /// out for the config's NPU (firmware_model::measure_model; both need `npu`), 0: none.
  /// Training moves the weights and so their encoded size at fixed masks and bits; once
  /// the masks are at their targets, every epoch ends by measuring the model again and,
  /// when it is over, pruning a little more until it fits. A run that still ends over
  /// a budget writes `model.over-budget.udcm` instead of `model.udcm` and fails.
  /// Encoded weight streams, the paper's compressed model size [bytes]
  uint64_t weight_budget_bytes = 0;
  /// The weight image in flash: streams, scale records and alignment [bytes]
  uint64_t flash_budget_bytes = 0;
  /// When a network starts the compress phase over its budgets, the guard raises its
  /// layers' target sparsities until it fits; it may also lower a layer's weight bitwidth
  /// to any of these below its own, whichever step saves the most bytes per unit of damage
  /// (the sequential control's compression: an int8 dense network brought to the budget by
  /// greedy per-layer steps on the codec's bytes, over the joint space's bitwidths).
  /// Ascending; {8}: pruning only [bits]
  std::vector<uint32_t> budget_bits{8};
  bool has_budget() const { return weight_budget_bytes > 0 || flash_budget_bytes > 0; }
  /// Fraction of the training images (the last ones) kept out of training to choose the
  /// epoch that is exported: of the epochs whose model is final in form (quantised, masks
  /// at their targets, within the budgets), the one with the best held-out accuracy,
  /// the later on a tie. 0: the last epoch, no images held out. The test set is never used
  /// for this choice.
  double holdout_fraction = 0.0;
  /// Distillation from the float warm-up's network in the compress and fine-tune phases;
  /// needs a warm-up of at least one epoch.
  DistillationSpec distillation;
};

struct TrainConfig {
  std::string file;  ///< where it was read from
  ArchitectureSpec architecture;
  DataSpec data;
  TrainSpec train;
  /// The NPU the model is measured and verified on (`npu:` files, `npu_set:` overrides;
  /// the command line's --npu and --set change it); empty: none.
  common::ConfigSource npu;
  uint32_t verify_images = 100;  ///< test images also run on interpreter and simulator
};

/// Reads and checks a training configuration; throws common::ConfigError naming the file,
/// line and key. Relative paths in it are resolved against the file's directory.
TrainConfig load_train_config(const std::string& path);

/// Readers of the sections that `udc train` and `udc search` configs share.
DataSpec read_data_spec(common::YamlSection data);
TrainSpec read_train_spec(common::YamlSection train);
/// The `train:` section's parameters, declared once: read, written (derived.yaml),
/// listed (udc train --list-params) and set (--set train.KEY=VALUE) from this list.
const std::vector<common::Param<TrainSpec>>& train_params();
/// Checks across the train parameters (distillation needs a warm-up); the problem, or
/// empty.
std::string check_train_spec(const TrainSpec& t);
/// `path` relative to the directory of `file` (absolute and empty paths unchanged).
std::string resolve_path(const std::string& file, const std::string& path);
/// `npu:` (one path or a list, applied in order, relative to the config) and `npu_set:`
/// (KEY=VALUE overrides, as --set).
common::ConfigSource read_npu_source(common::YamlSection& root);

/// Loads the configured split (with its subset) of the configured data set. A
/// super-resolution set's split becomes patch pairs of `patch` x `patch` input pixels,
/// its subset counting photographs.
data::ImageDataset load_data(const DataSpec& spec, data::Split split, uint32_t patch = 0);
/// A super-resolution set's split (with its subset) as whole photographs.
data::SuperResolutionSet load_photographs(const DataSpec& spec, data::Split split);

}  // namespace udc::search
