// Quantisation-aware network of fixed architecture (internal to search/: includes Torch).
//
// Every layer runs in one of two modes. Float: plain convolutions with batch norm (the
// warm-up). Quantized: batch norm folded into the weights, weights fake-quantised per output
// channel with a learned step (LSQ) and masked to their sparsity, activations quantised to
// int8 with ranges calibrated by a moving min/max. In quantised mode the value of every
// layer's output is computed by the integer pipeline itself (int8 inputs, integer weights,
// int32 accumulators and bias, TFLite fixed-point requantisation, clamps) and the float
// computation only carries the gradient (straight-through): the values LibTorch sees are
// exactly the integers the exported .udcm model produces on the reference interpreter and
// the simulator.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "udc/firmware_model/model.hpp"
#include "udc/search/ranks.hpp"
#include "udc/search/train_config.hpp"

namespace udc::search {

/// Asymmetric int8 quantisation of an activation: real = scale * (q - zero_point).
struct ActQuant {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

/// int8 quantisation of the range [lo, hi] widened to contain 0 (so that 0 is exact).
ActQuant act_quant_from_range(double lo, double hi);
/// Integers q of a tensor holding exactly representable reals (as floats).
torch::Tensor recover_integers(const torch::Tensor& real, ActQuant quant);
torch::Tensor dequantize(const torch::Tensor& q, ActQuant quant);
/// `differentiable` in the backward pass, `value` in the forward pass.
torch::Tensor straight_through(const torch::Tensor& differentiable, const torch::Tensor& value);
/// TFLite's DEPTH_TO_SPACE on NCHW: channel (i*block + j)*C + c of pixel (y, x) goes to
/// pixel (y*block + i, x*block + j), channel c.
torch::Tensor depth_to_space(const torch::Tensor& x, int64_t block);
/// A convolution's batch norm: by the batch's statistics while training when
/// `batch_statistics` (BatchNorm2d::forward), else always on its running statistics, which
/// then stay as they are (ArchitectureSpec::batch_statistics). The batch's statistics are
/// those of every rank's share when `ranks` has several (synchronized_batch_norm).
torch::Tensor channel_norm(torch::nn::BatchNorm2d& norm, const torch::Tensor& y,
                           bool batch_statistics, Ranks* ranks = nullptr);

/// Output integers of a weighted layer: clamp(zero_point + MultiplyByQuantizedMultiplier(
/// acc + bias[c], multiplier[c], shift[c])) for accumulators `accumulators` (integer values
/// in a float or double tensor, channel dimension 1). Runs the specification itself
/// (int8/include/udc/int8/fixed_point.hpp) over the elements, in parallel over the batch.
torch::Tensor requantize(const torch::Tensor& accumulators, const std::vector<int32_t>& bias,
                         const std::vector<int32_t>& multiplier, const std::vector<int32_t>& shift,
                         int32_t zero_point, int32_t clamp_min, int32_t clamp_max);
/// TFLite int8 ADD of integer tensors `a` and `b` (float dtype) with zero points za, zb.
torch::Tensor add_integers(const torch::Tensor& a, int32_t za, const torch::Tensor& b, int32_t zb,
                           const int8::AddParams& params, int32_t zero_point);
/// sum / count rounded half away from zero, as the integer average pool (int64 in and out).
torch::Tensor rounded_average(const torch::Tensor& sum, int64_t count);

/// Largest weight magnitude of a b-bit layer: 2^(b-1) - 1.
int32_t weight_limit(uint32_t bits);
/// The initial per-output-channel step of b-bit weights (dimension 0: output channels) by
/// `rule` (WeightStepRule).
torch::Tensor initial_weight_step(const torch::Tensor& masked_weights, uint32_t bits,
                                  WeightStepRule rule);
/// WeightStepRule::LeastError's step per output channel as a fraction of max|w| / Q: the
/// grid's step that rounds the channel with the least squared error (the largest of equal
/// ones); 1 for 8 bits. Invariant under scaling a channel, so the supernet keeps these
/// fractions between its mask refreshes and applies them to its current weights.
torch::Tensor least_error_step_fraction(const torch::Tensor& masked_weights, uint32_t bits);
/// max|w| / Q per output channel [weight units per integer step].
torch::Tensor range_step(const torch::Tensor& masked_weights, uint32_t bits);
/// clamp(round(w / step[c]), +-(2^(b-1) - 1)): the integer weights (float dtype).
torch::Tensor weight_integers(const torch::Tensor& masked_weights, const torch::Tensor& step,
                              uint32_t bits);
/// The weights rounded to b bits at their initial step: weight_integers at
/// initial_weight_step, times that step (float weights, the input's shape).
torch::Tensor rounded_at_initial_step(const torch::Tensor& masked_weights, uint32_t bits,
                                      WeightStepRule rule);
/// Mask of `weights` with, in each output channel (dimension 0), exactly round(sparsity *
/// weights per channel) zeros at its smallest magnitudes, but never the whole channel (its
/// largest weight stays). Per channel, so that the mask
/// does not change when channels are scaled (batch-norm folding) or when output channels
/// are sliced off (the supernet's width choices share one weight tensor).
torch::Tensor magnitude_mask(const torch::Tensor& weights, double sparsity);

/// Float: float weights and activations, batch norm on the batch (training) or running
/// statistics. CompressedWeights: as Float, but every weight masked and fake-quantised at
/// its initial per-channel step, before batch norm: what the supernet computes, so that an
/// inherited network's batch-norm statistics can be re-estimated for its compressed
/// weights. MaskedFloat: as Float, every weight masked (the pruned network's statistics,
/// for batch-norm recalibration in the compress phase, where the initial steps would
/// misdescribe trained ones). Quantized: folded, fake-quantised weights and the exact
/// integer forward.
enum class Mode { Float, CompressedWeights, MaskedFloat, Quantized };
struct ForwardContext {
  Mode mode = Mode::Float;
  bool observe = false;  ///< Quantized: update activation ranges from this batch
  double momentum = 0.99;
  /// Data-parallel: the batch is this rank's share of a global batch, and batch-norm
  /// statistics and observed ranges are those of the global batch. Null: one process.
  Ranks* ranks = nullptr;
};

/// A tensor between layers: NCHW values and, in quantised mode, their quantisation.
struct QTensor {
  torch::Tensor x;
  ActQuant quant;
};

/// Integer form of a weighted layer for a given input quantisation: what the exact path
/// computes with and what export writes.
struct LayerIntegers {
  torch::Tensor weights;  ///< integers (float dtype), Torch layout
  std::vector<int32_t> bias, multiplier, shift;
  ActQuant out;
  int32_t clamp_min = -128, clamp_max = 127;
};

/// A tensor index in a ModelBuilder with its quantisation (for export).
struct ExportedTensor {
  int32_t index = -1;
  ActQuant quant;
};

/// One layer or block of the network.
class QLayer : public torch::nn::Module {
 public:
  virtual QTensor forward(const QTensor& input, const ForwardContext& context) = 0;
  virtual ExportedTensor export_to(firmware_model::ModelBuilder& builder,
                                   const ExportedTensor& input) = 0;
};

/// Running min/max of an activation in module buffers (so checkpoints carry it).
class RangeObserver {
 public:
  explicit RangeObserver(torch::nn::Module& owner, const std::string& name);
  /// Moves the range towards the min and max of `values` (over every rank's share when
  /// `ranks` has several).
  void observe(const torch::Tensor& values, double momentum, Ranks* ranks = nullptr);
  bool initialized() const;
  ActQuant quant() const;

 private:
  torch::Tensor range_;  ///< [lo, hi, initialised]
};

/// Conv, depthwise conv or fully connected, with folded batch norm (conv kinds) or bias (fc),
/// LSQ weight quantiser, magnitude mask and output range observer.
class QWeighted : public QLayer {
 public:
  enum class Kind { Conv, Depthwise, FullyConnected };
  /// Input [in_channels, in_height, in_width]; "same" padding for convolutions.
  QWeighted(std::string name, Kind kind, uint32_t in_channels, uint32_t in_height,
            uint32_t in_width, uint32_t out_channels, uint32_t kernel, uint32_t stride,
            uint32_t bits, double sparsity, ActivationKind activation);
  /// Batch norm on its frozen statistics from now on (ArchitectureSpec::batch_statistics).
  void freeze_batch_statistics() { batch_statistics_ = false; }
  /// How initialize_step() (and the CompressedWeights mode) set the step; default LSQ's.
  void set_weight_step_rule(WeightStepRule rule) { weight_step_rule_ = rule; }
  WeightStepRule weight_step_rule() const { return weight_step_rule_; }

  QTensor forward(const QTensor& input, const ForwardContext& context) override;
  ExportedTensor export_to(firmware_model::ModelBuilder& builder,
                           const ExportedTensor& input) override;

  /// Folded weight and bias: batch norm's running statistics folded in (conv kinds).
  std::pair<torch::Tensor, torch::Tensor> folded() const;
  /// Per output channel, the factor folding multiplies the weights by: batch norm's
  /// weight / sqrt(running variance + eps); ones for a fully connected layer.
  torch::Tensor fold_scale() const;
  /// After the batch-norm statistics moved from those that gave `old_fold_scale`: scales
  /// the weight step with the folded weights, so that the integer weights stay as they were.
  void keep_integers_across_fold_change(const torch::Tensor& old_fold_scale);
  /// Sets the mask to `sparsity` of the folded weights' smallest magnitudes.
  void update_mask(double sparsity);
  /// Step initialisation (weight_step_rule()) from the current folded, masked weights.
  void initialize_step();
  LayerIntegers integers(ActQuant input) const;
  /// Float weights and batch norm (its first `channels` channels) or bias (fully connected)
  /// from another network, e.g. the supernet a searched architecture inherits from.
  void assign_float_state(const torch::Tensor& weight, const torch::Tensor& bias,
                          const torch::nn::BatchNorm2d& batch_norm, int64_t channels);

  const std::string& layer_name() const { return name_; }
  double target_sparsity() const { return sparsity_; }
  /// A new target (the flash budget raises it); the mask follows at the next update_mask().
  void set_target_sparsity(double sparsity) { sparsity_ = sparsity; }
  /// Puts back a mask taken from mask() (a trial of another sparsity undone).
  void restore_mask(const torch::Tensor& mask) { mask_.copy_(mask); }
  Kind kind() const { return kind_; }
  /// Weight bitwidth: integers within +-(2^(bits-1) - 1). Kept in a buffer, so that
  /// checkpoints and snapshots carry a bitwidth the budget guard lowered.
  uint32_t bits() const { return uint32_t(std::lround(weight_bits_.item<float>())); }
  /// A new bitwidth; the step stays as it is (initialize_step() starts it afresh for it).
  void set_bits(uint32_t bits);
  /// The LSQ step per output channel [weight units per integer step].
  const torch::Tensor& step() const { return step_; }
  /// Puts back a step taken from step() (a trial of another bitwidth undone).
  void restore_step(const torch::Tensor& step);
  const torch::Tensor& mask() const { return mask_; }
  uint32_t out_channels() const { return out_channels_; }
  uint32_t out_height() const { return out_height_; }
  uint32_t out_width() const { return out_width_; }
  /// Parameters that take weight decay.
  std::vector<torch::Tensor> decayed_parameters() const { return {weight_}; }

 private:
  WeightStepRule weight_step_rule_ = WeightStepRule::Lsq;
  torch::Tensor padded(const torch::Tensor& x) const;
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& w) const;
  torch::Tensor activation(const torch::Tensor& x) const;
  torch::Tensor effective_step() const;

  std::string name_;
  Kind kind_;
  uint32_t in_channels_, out_channels_, kernel_, stride_;
  double sparsity_;
  ActivationKind activation_;
  uint32_t out_height_ = 1, out_width_ = 1;
  int64_t pad_top_ = 0, pad_bottom_ = 0, pad_left_ = 0, pad_right_ = 0;
  torch::Tensor weight_, bias_, step_, mask_;
  torch::Tensor weight_bits_;  ///< scalar buffer: the bitwidth (bits())
  torch::nn::BatchNorm2d batch_norm_{nullptr};
  bool batch_statistics_ = true;  ///< ArchitectureSpec::batch_statistics
  std::unique_ptr<RangeObserver> output_range_;
};

/// Max or average pooling (valid padding) or global average pooling: output quantisation
/// equals the input's.
class QPool : public QLayer {
 public:
  enum class Kind { Max, Average, GlobalAverage };
  QPool(std::string name, Kind kind, uint32_t kernel, uint32_t stride);
  QTensor forward(const QTensor& input, const ForwardContext& context) override;
  ExportedTensor export_to(firmware_model::ModelBuilder& builder,
                           const ExportedTensor& input) override;

 private:
  std::string name_;
  Kind kind_;
  uint32_t kernel_, stride_;
};

/// Depth-to-space by `block`, TFLite's channel order (firmware_model::OpType::DepthToSpace):
/// data movement, so both modes are exact and the quantisation is kept.
class QDepthToSpace : public QLayer {
 public:
  QDepthToSpace(std::string name, uint32_t block) : name_(std::move(name)), block_(block) {}
  QTensor forward(const QTensor& input, const ForwardContext& context) override;
  ExportedTensor export_to(firmware_model::ModelBuilder& builder,
                           const ExportedTensor& input) override;

 private:
  std::string name_;
  uint32_t block_;
};

/// MobileNetV2 block: optional 1x1 expansion, kxk depthwise, 1x1 projection, and the
/// residual add when the stride is 1 and the width unchanged.
class QInvertedResidual : public QLayer {
 public:
  QInvertedResidual(const LayerSpec& spec, uint32_t in_channels, uint32_t in_height,
                    uint32_t in_width);
  QTensor forward(const QTensor& input, const ForwardContext& context) override;
  ExportedTensor export_to(firmware_model::ModelBuilder& builder,
                           const ExportedTensor& input) override;
  std::vector<std::shared_ptr<QWeighted>> weighted() const;
  uint32_t out_height() const { return project_->out_height(); }
  uint32_t out_width() const { return project_->out_width(); }

 private:
  std::string name_;
  std::shared_ptr<QWeighted> expand_, depthwise_, project_;
  bool residual_ = false;
  std::unique_ptr<RangeObserver> sum_range_;
};

/// The fixed filter of an anchor (AnchorKind, not None) for depth_to_space by `block` of
/// `channels` channels: [block^2 * channels, channels, k, k] float, output channel
/// (i*block + j)*channels + c reading input channel c (depth_to_space's order). Nearest:
/// 1x1, weight 1. Bicubic: 5x5, the Catmull-Rom weights of sub-pixel (i, j) at
/// centre-aligned positions (i + 0.5) / block - 0.5 (stb's resize, data::resize_bicubic),
/// zero padding at the borders in place of its edge clamp.
torch::Tensor anchor_filter(AnchorKind kind, uint32_t block, uint32_t channels);

/// `a` + `b` as TFLite's int8 ADD computes it in quantised mode (output range observed by
/// `range`), the float sum otherwise: the residual adds of blocks and of the anchor.
QTensor quantized_add(const QTensor& a, const QTensor& b, RangeObserver& range,
                      const ForwardContext& context);
/// The ADD of exported tensors `a` and `b` into the range `range` observed.
ExportedTensor export_add(firmware_model::ModelBuilder& builder, const std::string& name,
                          const ExportedTensor& a, const ExportedTensor& b,
                          const RangeObserver& range);

/// The network of an ArchitectureSpec. forward() returns logits [N, classes] (and their
/// quantisation in quantised mode).
class QNet : public torch::nn::Module {
 public:
  QNet(const ArchitectureSpec& spec, const data::Normalization& normalization);
  QTensor forward(const torch::Tensor& images, const ForwardContext& context);
  /// Every weighted layer, blocks expanded, in execution order.
  const std::vector<std::shared_ptr<QWeighted>>& weighted() const { return weighted_; }
  /// The integer model (weights, requantisation, activation quantisation) as of now.
  firmware_model::Model export_model() const;
  ActQuant input_quant() const { return input_quant_; }

 private:
  /// ArchitectureSpec::anchor: `residual` (the upscaler's output) plus the anchor filter
  /// applied to the input (in quantised mode as the exported integer convolution).
  QTensor add_anchor(const QTensor& input, const QTensor& residual, const ForwardContext& context);
  ExportedTensor export_anchor(firmware_model::ModelBuilder& builder, const ExportedTensor& input,
                               const ExportedTensor& residual) const;

  ArchitectureSpec spec_;
  ActQuant input_quant_;
  std::vector<std::shared_ptr<QLayer>> layers_;
  std::vector<std::shared_ptr<QWeighted>> weighted_;
  /// ArchitectureSpec::anchor as exported: integer weights (float dtype, Torch layout),
  /// their per-output-channel scale and requantisation into the input's quantisation.
  /// Undefined without an anchor.
  torch::Tensor anchor_weights_, anchor_scales_;
  std::vector<int32_t> anchor_multiplier_, anchor_shift_;
  std::unique_ptr<RangeObserver> anchor_sum_range_;
};

}  // namespace udc::search
