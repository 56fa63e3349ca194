// Training pieces shared by `udc train` and the search (internal; includes Torch).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qnet.hpp"
#include "udc/data/batch_loader.hpp"
#include "udc/search/trainer.hpp"

namespace udc::search {

/// Before the first quantised step: LSQ steps from the weights, activation ranges
/// calibrated on a few training batches.
void prepare_quantization(QNet& net, const data::ImageDataset& train_set,
                          const data::Normalization& normalization, uint32_t batch_size,
                          uint64_t seed);

struct Evaluation {
  double accuracy = 0;                      ///< top-1 [fraction]
  std::vector<std::vector<int8_t>> logits;  ///< integer logits of the first images (Quantized)
};
/// Top-1 accuracy on `set` in `mode`; keeps the integer logits of the first `keep_logits`.
Evaluation evaluate(QNet& net, const data::ImageDataset& set,
                    const data::Normalization& normalization, Mode mode, size_t batch_size,
                    size_t keep_logits);

/// Sets up a freshly built network before its first epoch (e.g. weights inherited from the
/// supernet); not called when training resumes from a checkpoint.
using NetInitializer = std::function<void(QNet&)>;
/// train() with an initializer.
TrainResult train_network(const TrainConfig& config, std::optional<npu_sim::NpuConfig> npu,
                          const TrainOptions& options, const NetInitializer& initialize);

/// Loads into `net` (of the trained architecture) the network that train_network() wrote
/// to `output_dir` and exported: the kept epoch's when one was chosen on held-out images.
/// Parameters and buffers (masks included) only: `net` keeps its own target sparsities.
void load_exported_network(const std::string& output_dir, QNet& net);

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
