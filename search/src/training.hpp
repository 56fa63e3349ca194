// Training pieces shared by `udc train` and the search (internal; includes Torch).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qnet.hpp"
#include "udc/data/batch_loader.hpp"
#include "udc/data/super_resolution.hpp"
#include "udc/search/trainer.hpp"

namespace udc::search {

/// Sets LibTorch's intra-op threads for training and, once per process, keeps the memory
/// that freed tensors leave in glibc's heap instead of returning it to the kernel: a
/// training step allocates and frees the same large activation buffers every time, and
/// with glibc's default thresholds (mmap above 128 KiB, trim above 128 KiB free) each of
/// them was page-faulted in again on every step, which took half the step time of the
/// 8 KiB preset's supernet (455 -> 208 ms/step at 2 threads). The heap then stays at the
/// peak of one step.
void use_training_threads(uint32_t threads);

/// Before the first quantised step: LSQ steps from the weights, activation ranges
/// calibrated on a few training batches (each rank's share of them, with `ranks`).
void prepare_quantization(QNet& net, const data::ImageDataset& train_set,
                          const data::Normalization& normalization, uint32_t batch_size,
                          uint64_t seed, Ranks* ranks = nullptr);

/// Batch-norm statistics re-estimated on `batches` training batches of a network forwarded
/// in `mode` (CompressedWeights: as the supernet computes; MaskedFloat: pruned, not
/// quantised), with the masks as they are (per channel, so folding the new statistics does
/// not move them), and the LSQ
/// steps scaled with the folding, so that the integer weights stay. Used on a derived network (the
/// supernet's statistics were averaged over many sub-networks) and, in the compress phase, after
/// masks move (the warm-up's statistics no longer describe a layer that lost most of its weights).
void recalibrate_batch_norm(QNet& net, const data::ImageDataset& set,
                            const data::Normalization& normalization, uint32_t batch_size,
                            uint64_t seed, uint32_t batches, Mode mode, Ranks* ranks = nullptr);
/// Batches a derived network's statistics are re-estimated on [batches].
constexpr uint32_t kDerivedRecalibrationBatches = 20;

/// This rank's share of the loss of a global batch, by which its loss is scaled before
/// backward() and the gradients are summed over the ranks (reduce_gradients): its images over the
/// batch's for a loss that is a mean over images (labels); for super-resolution, whose L1 is a mean
/// over the counted target pixels, its counted pixels over all ranks' (one collective).
/// 1 for one process.
double loss_share(const data::Batch& batch, Ranks* ranks);

/// What the outputs of batches score, summed over the batches: top-1 hits among the images
/// (a set with labels), or squared errors among the pixels (a set with targets; outputs
/// turned into 8-bit pixels as the integer model's are).
class ScoreTally {
 public:
  /// Outputs of a network forwarded in `mode`.
  ScoreTally(const data::Normalization& normalization, Mode mode)
      : normalization_(normalization), mode_(mode) {}
  /// `output` [N, ...], flattened as QNet::forward returns it.
  void add(const QTensor& output, const data::Batch& batch);
  /// Top-1 accuracy [fraction] or PSNR [dB] of what was added; 0 before anything.
  double score() const;
  /// Adds up what every rank added (data-parallel: each saw its share of the images).
  void sum_over_ranks(Ranks* ranks);

 private:
  data::Normalization normalization_;
  Mode mode_;
  bool pixels_ = false;  ///< targets: sums are squared pixel errors
  double sum_ = 0;       ///< hits, or squared pixel errors
  size_t count_ = 0;     ///< images, or pixels
};

/// A network's output [N, C*H*W] forwarded in `mode` as 8-bit pixels (in a double tensor),
/// as firmware_model::upscale_image maps the integer model's output to pixels: the real
/// value (from the integers in Quantized mode, in double) x 255 x std + the mean level,
/// rounded half up and clamped to 0..255.
torch::Tensor output_pixels(const QTensor& output, Mode mode,
                            const data::Normalization& normalization);

struct Evaluation {
  double score = 0;  ///< ScoreTally::score: top-1 [fraction] or PSNR [dB]
  /// Integer outputs (logits, or output pixels) of the first images (Quantized)
  std::vector<std::vector<int8_t>> logits;
};
/// The score on `set` in `mode`; keeps the integer outputs of the first `keep_logits`.
/// With several `ranks` (and no outputs kept), each rank scores its share of every batch and
/// the tallies are summed: the same score on every rank, in a fraction of the time.
Evaluation evaluate(QNet& net, const data::ImageDataset& set,
                    const data::Normalization& normalization, Mode mode, size_t batch_size,
                    size_t keep_logits, Ranks* ranks = nullptr);
/// PSNR [dB] of a super-resolution network on whole photographs, the mean over them of
/// data::psnr with a border of the scale, as `udc eval` measures the exported model.
double photograph_psnr(QNet& net, const data::SuperResolutionSet& photographs,
                       const data::Normalization& normalization, Mode mode);

/// Sets up a freshly built network before its first epoch (e.g. weights inherited from the
/// supernet); not called when training resumes from a checkpoint.
using NetInitializer = std::function<void(QNet&)>;
/// train() with an initializer.
TrainResult train_network(const TrainConfig& config, std::optional<npu_sim::NpuConfig> npu,
                          const TrainOptions& options, const NetInitializer& initialize);

/// Loads into `net` (of the trained architecture) the network that train_network() wrote
/// to `output_dir` and exported: the kept epoch's when one was chosen on held-out images.
/// Parameters and buffers (masks included) only: `net` keeps its own target sparsities.
/// `ranks`: rank 0's file, on every rank (read_on_primary).
void load_exported_network(const std::string& output_dir, QNet& net, Metric metric,
                           Ranks* ranks = nullptr);

/// Super-resolution training material: patch pairs of `patch` x `patch` input pixels
/// (data::patch_pairs at DataSpec::patch_stride) from the training photographs, those of the
/// last `holdout_fraction` of the photographs apart, with a target border of `radius` x the
/// scale (ImageDataset::target_border; `radius`: the network's receptive radius [input
/// pixels]). Throws naming the config when the patch is no larger than twice the radius or
/// the fraction leaves no photograph on a side.
struct PatchPairs {
  data::ImageDataset train_set, holdout;
};
/// Where the settings came from, for errors: the config file and its keys.
struct PatchPairsSource {
  std::string file;
  const char* holdout_key;
  const char* patch_key;
};
PatchPairs load_patch_pairs(const DataSpec& spec, uint32_t patch, uint32_t radius,
                            double holdout_fraction, const PatchPairsSource& source);

/// Writes a checkpoint archive through a temporary file and a rename.
void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);

/// The state of Torch's default CPU random generator (Gumbel noise, sampling), for a
/// checkpoint, and its restoration: a resumed run then draws what an uninterrupted one
/// would have drawn from there on.
torch::Tensor torch_generator_state();
void restore_torch_generator_state(const torch::Tensor& state);
/// Batch images as an NCHW tensor (no copy: valid while `batch` lives).
torch::Tensor images_tensor(data::Batch& batch);
std::string format_duration(double seconds);
/// Learning rate at `step` of `steps` in a phase: cosine from `base` to 5 % of it.
double cosine_rate(double base, size_t step, size_t steps);

/// Loss of a training step on `batch`: training_loss() on its labels, or for a batch with
/// targets the mean absolute error of `output` against them (EDSR's L1), mixed with the
/// L1 distance to `teacher_output` when that is defined (weight: distillation.weight).
torch::Tensor batch_loss(const torch::Tensor& output, data::Batch& batch,
                         const torch::Tensor& teacher_output, const DistillationSpec& distillation);
/// Loss of a training step: cross-entropy of `logits` [N, classes] on `labels`, mixed with
/// the softened KL divergence from `teacher_logits` when that is defined (DistillationSpec).
torch::Tensor training_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                            const torch::Tensor& teacher_logits,
                            const DistillationSpec& distillation);

/// Steps per epoch of `loader` (capped by `max_steps`, 0: no cap); throws naming
/// `config_file` when the set holds less than one batch.
size_t checked_steps_per_epoch(const data::BatchLoader& loader, size_t max_steps,
                               const std::string& config_file, size_t images, uint32_t batch_size);

}  // namespace udc::search
