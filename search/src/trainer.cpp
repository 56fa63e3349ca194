#include "udc/search/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#if defined(__GLIBC__)
#include <malloc.h>  // mallopt
#endif

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "budget_guard.hpp"
#include "collectives.hpp"
#include "qnet.hpp"
#include "training.hpp"
#include "udc/common/file_io.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/tflite_export.hpp"
#include "udc/firmware_model/upscale.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::search {

namespace fm = firmware_model;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

/// Images per batch when a set is evaluated (no gradients: memory allows more than training).
constexpr size_t kEvaluationBatch = 500;

enum class Phase { Warmup, Compress, Finetune };
const char* phase_name(Phase phase) {
  return phase == Phase::Warmup ? "warmup" : phase == Phase::Compress ? "compress" : "finetune";
}

nlohmann::json epoch_json(const EpochRecord& r, Metric metric) {
  return {{"epoch", r.epoch},
          {"phase", r.phase},
          {"loss", r.loss},
          {score_key(metric, "train"), r.train_score},
          {score_key(metric, "test"), r.test_score},
          {"weight_bytes", r.weight_bytes},
          {"flash_bytes", r.flash_bytes},
          {"seconds", r.seconds},
          {"step_ms", r.step_milliseconds},
          {score_key(metric, "holdout"),
           r.holdout_score >= 0 ? nlohmann::json(r.holdout_score) : nlohmann::json()}};
}

EpochRecord epoch_from_json(const nlohmann::json& j, Metric metric) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.phase = j.at("phase");
  r.loss = j.at("loss");
  r.train_score = j.at(score_key(metric, "train"));
  r.test_score = j.at(score_key(metric, "test"));
  r.weight_bytes = j.value("weight_bytes", uint64_t{0});
  r.flash_bytes = j.value("flash_bytes", uint64_t{0});
  r.seconds = j.at("seconds");
  r.step_milliseconds = j.at("step_ms");
  const std::string holdout = score_key(metric, "holdout");
  if (j.contains(holdout) && j[holdout].is_number()) r.holdout_score = j[holdout];
  return r;
}

/// A copy of a network's state: its parameters and buffers (in Module order) and its
/// layers' target sparsities. What the held-out choice of epoch keeps.
struct NetSnapshot {
  std::vector<torch::Tensor> tensors;
  std::vector<double> target_sparsity;  ///< in QNet::weighted() order
  bool empty() const { return tensors.empty(); }
};

std::vector<torch::Tensor> state_tensors(QNet& net) {
  std::vector<torch::Tensor> tensors = net.parameters();
  for (const torch::Tensor& buffer : net.buffers()) tensors.push_back(buffer);
  return tensors;
}

NetSnapshot take_snapshot(QNet& net) {
  torch::NoGradGuard no_grad;
  NetSnapshot snapshot;
  for (const torch::Tensor& t : state_tensors(net)) snapshot.tensors.push_back(t.detach().clone());
  for (const auto& layer : net.weighted()) {
    snapshot.target_sparsity.push_back(layer->target_sparsity());
  }
  return snapshot;
}

/// Throws naming `source` when the snapshot was taken of another architecture.
void check_snapshot(QNet& net, const NetSnapshot& snapshot, const std::string& source) {
  const std::vector<torch::Tensor> tensors = state_tensors(net);
  bool same = tensors.size() == snapshot.tensors.size() &&
              snapshot.target_sparsity.size() == net.weighted().size();
  for (size_t i = 0; same && i < tensors.size(); ++i) {
    same = tensors[i].sizes() == snapshot.tensors[i].sizes() &&
           tensors[i].scalar_type() == snapshot.tensors[i].scalar_type();
  }
  if (!same) {
    throw std::runtime_error(fmt::format(
        "{}: the kept epoch's network does not match the model's architecture; use --restart",
        source));
  }
}

/// Puts the snapshot's tensors back, and its target sparsities unless `tensors_only`.
void restore_snapshot(QNet& net, const NetSnapshot& snapshot, const std::string& source,
                      bool tensors_only = false) {
  torch::NoGradGuard no_grad;
  check_snapshot(net, snapshot, source);
  std::vector<torch::Tensor> tensors = state_tensors(net);
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(snapshot.tensors[i]);
  if (tensors_only) return;
  for (size_t i = 0; i < net.weighted().size(); ++i) {
    net.weighted()[i]->set_target_sparsity(snapshot.target_sparsity[i]);
  }
}

void write_snapshot(torch::serialize::OutputArchive& archive, const NetSnapshot& snapshot) {
  for (size_t i = 0; i < snapshot.tensors.size(); ++i) {
    archive.write(fmt::format("t{}", i), snapshot.tensors[i], /*is_buffer=*/true);
  }
  archive.write("target_sparsity", torch::tensor(snapshot.target_sparsity, torch::kDouble),
                /*is_buffer=*/true);
}

NetSnapshot read_snapshot(torch::serialize::InputArchive& archive, size_t tensor_count) {
  NetSnapshot snapshot;
  snapshot.tensors.resize(tensor_count);
  for (size_t i = 0; i < tensor_count; ++i) {
    archive.read(fmt::format("t{}", i), snapshot.tensors[i], /*is_buffer=*/true);
  }
  torch::Tensor sparsity;
  archive.read("target_sparsity", sparsity, /*is_buffer=*/true);
  const torch::Tensor values = sparsity.to(torch::kDouble).contiguous();
  snapshot.target_sparsity.assign(values.data_ptr<double>(),
                                  values.data_ptr<double>() + values.numel());
  return snapshot;
}

/// Everything a resumed run needs besides the network: the epochs done and their records.
struct Checkpoint {
  Metric metric = Metric::Top1;  ///< what the history's scores are
  uint32_t epochs_done = 0;
  std::vector<EpochRecord> history;
  /// Target sparsity of every weighted layer, in QNet::weighted() order: the flash budget
  /// may have raised them above the architecture's.
  std::vector<double> target_sparsity;
  /// The epoch with the best held-out score so far (-1: none yet) and its network.
  int64_t best_epoch = -1;
  NetSnapshot best;
  /// The distillation teacher: the network at the end of the float warm-up (empty: none).
  NetSnapshot teacher;
};

void save_checkpoint(const std::string& path, QNet& net, torch::optim::Optimizer& optimizer,
                     const Checkpoint& state) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive net_archive, optimizer_archive;
  net.save(net_archive);
  optimizer.save(optimizer_archive);
  archive.write("net", net_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("generator", torch_generator_state());
  if (!state.best.empty()) {
    torch::serialize::OutputArchive best_archive;
    write_snapshot(best_archive, state.best);
    archive.write("best", best_archive);
  }
  if (!state.teacher.empty()) {
    torch::serialize::OutputArchive teacher_archive;
    write_snapshot(teacher_archive, state.teacher);
    archive.write("teacher", teacher_archive);
  }
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : state.history) history.push_back(epoch_json(r, state.metric));
  archive.write("state", c10::IValue(nlohmann::json{{"epochs_done", state.epochs_done},
                                                    {"history", history},
                                                    {"target_sparsity", state.target_sparsity},
                                                    {"best_epoch", state.best_epoch},
                                                    {"teacher", !state.teacher.empty()}}
                                         .dump()));
  save_archive_atomically(archive, path);
}

/// Reads the state and the kept epoch's network (of `net`'s architecture); the network and
/// optimizer themselves are read by the caller.
Checkpoint read_checkpoint_state(torch::serialize::InputArchive& archive, const std::string& path,
                                 QNet& net, Metric metric) {
  c10::IValue value;
  archive.read("state", value);
  if (!value.isString()) throw std::runtime_error(path + ": checkpoint without a state record");
  const nlohmann::json j = nlohmann::json::parse(value.toStringRef());
  Checkpoint state;
  state.metric = metric;
  state.epochs_done = j.at("epochs_done");
  try {
    for (const auto& r : j.at("history")) state.history.push_back(epoch_from_json(r, metric));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        fmt::format("{}: checkpoint history without the scores this task keeps ({}); use --restart",
                    path, e.what()));
  }
  if (j.contains("target_sparsity")) {
    state.target_sparsity = j.at("target_sparsity").get<std::vector<double>>();
  }
  state.best_epoch = j.value("best_epoch", int64_t{-1});
  if (state.best_epoch >= 0) {
    torch::serialize::InputArchive best_archive;
    if (!archive.try_read("best", best_archive)) {
      throw std::runtime_error(fmt::format(
          "{}: checkpoint names epoch {} as the best but lacks its network; use --restart", path,
          state.best_epoch + 1));
    }
    state.best = read_snapshot(best_archive, state_tensors(net).size());
    check_snapshot(net, state.best, path);
  }
  if (j.value("teacher", false)) {
    torch::serialize::InputArchive teacher_archive;
    if (!archive.try_read("teacher", teacher_archive)) {
      throw std::runtime_error(fmt::format(
          "{}: checkpoint says it holds a distillation teacher but lacks it; use --restart", path));
    }
    state.teacher = read_snapshot(teacher_archive, state_tensors(net).size());
    check_snapshot(net, state.teacher, path);
  }
  return state;
}

/// Sparsity reached at `progress` (0..1) of the compress phase: cubic ramp (Zhu & Gupta),
/// complete after `ramp_fraction` of the phase.
double ramp_sparsity(double target, double progress, double ramp_fraction) {
  const double t = ramp_fraction <= 0 ? 1.0 : std::min(1.0, progress / ramp_fraction);
  return target * (1.0 - std::pow(1.0 - t, 3.0));
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(QNet& net, double rate, double decay) {
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& item : net.named_parameters()) {
    const std::string& name = item.key();
    const bool weight = name.size() >= 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
                        name.find("batch_norm") == std::string::npos;
    (weight ? decayed : plain).push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(rate).weight_decay(decay)));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(rate).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(rate));
}

void set_rate(torch::optim::AdamW& optimizer, double rate) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(rate);
  }
}

}  // namespace

size_t checked_steps_per_epoch(const data::BatchLoader& loader, size_t max_steps,
                               const std::string& config_file, size_t images, uint32_t batch_size) {
  if (loader.batches_per_epoch() == 0) {
    throw std::runtime_error(fmt::format("{}: {} training images, fewer than one batch of {}",
                                         config_file, images, batch_size));
  }
  return max_steps == 0 ? loader.batches_per_epoch()
                        : std::min(loader.batches_per_epoch(), max_steps);
}

void use_training_threads(uint32_t threads) {
  torch::set_num_threads(int(threads));
#ifdef __GLIBC__
  static const bool retained = [] {
    // Blocks up to 256 MiB come from the heap; up to 1 GiB free at its top stays mapped,
    // and the heap grows by 64 MiB at a time. A fixed threshold also turns off glibc's
    // own dynamic one.
    constexpr int kMmapThreshold = 256 << 20, kTrimThreshold = 1 << 30, kTopPad = 64 << 20;
    return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
           mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1 && mallopt(M_TOP_PAD, kTopPad) == 1;
  }();
  (void)retained;
#endif
}

double cosine_rate(double base, size_t step, size_t steps) {
  const double t = steps <= 1 ? 0.0 : double(step) / double(steps - 1);
  return base * (0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * t)));
}

torch::Tensor training_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                            const torch::Tensor& teacher_logits,
                            const DistillationSpec& distillation) {
  const torch::Tensor hard = torch::cross_entropy_loss(logits, labels);
  if (!teacher_logits.defined()) return hard;
  const double t = distillation.temperature;
  const torch::Tensor teacher_log_p = torch::log_softmax(teacher_logits / t, 1);
  const torch::Tensor student_log_p = torch::log_softmax(logits / t, 1);
  const torch::Tensor kl = (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(1).mean();
  // t^2 keeps the soft term's gradient on the scale of the hard term's (Hinton et al.).
  return (1.0 - distillation.weight) * hard + distillation.weight * t * t * kl;
}

namespace {

/// A batch's targets as [N, C*H*W] (no copy: valid while `batch` lives).
torch::Tensor targets_tensor(const data::Batch& batch) {
  return torch::from_blob(const_cast<float*>(batch.targets.data()),
                          {int64_t(batch.size), int64_t(batch.targets.size() / batch.size)},
                          torch::kFloat);
}

/// A batch's target weights (data::Batch::target_weights) as [N, C*H*W].
torch::Tensor target_weights_tensor(const data::Batch& batch) {
  return torch::from_blob(const_cast<float*>(batch.target_weights.data()),
                          {int64_t(batch.size), int64_t(batch.target_weights.size() / batch.size)},
                          torch::kFloat);
}

/// Mean absolute difference of `a` and `b` over the pixels the batch's target weights count.
torch::Tensor weighted_l1(const torch::Tensor& a, const torch::Tensor& b,
                          const data::Batch& batch) {
  const torch::Tensor weights = target_weights_tensor(batch);
  return ((a - b).abs() * weights).sum() / weights.sum().clamp_min(1.0);
}

}  // namespace

torch::Tensor batch_loss(const torch::Tensor& output, data::Batch& batch,
                         const torch::Tensor& teacher_output,
                         const DistillationSpec& distillation) {
  if (batch.targets.empty()) {
    const torch::Tensor labels =
        torch::from_blob(batch.labels.data(), {int64_t(batch.size)}, torch::kLong);
    return training_loss(output, labels, teacher_output, distillation);
  }
  const torch::Tensor hard = weighted_l1(output, targets_tensor(batch), batch);
  if (!teacher_output.defined()) return hard;
  return (1.0 - distillation.weight) * hard +
         distillation.weight * weighted_l1(output, teacher_output, batch);
}

torch::Tensor output_pixels(const QTensor& output, Mode mode,
                            const data::Normalization& normalization) {
  const torch::Tensor x = output.x.detach();
  const torch::Tensor real =
      mode == Mode::Quantized
          ? (recover_integers(x, output.quant).to(torch::kDouble) - output.quant.zero_point) *
                double(output.quant.scale)
          : x.to(torch::kDouble);
  return (real * (255.0 * double(normalization.std)) + double(normalization.mean_level()) + 0.5)
      .floor()
      .clamp(0, 255);
}

void ScoreTally::add(const QTensor& output, const data::Batch& batch) {
  torch::NoGradGuard no_grad;
  if (batch.targets.empty()) {
    const torch::Tensor labels = torch::from_blob(const_cast<int64_t*>(batch.labels.data()),
                                                  {int64_t(batch.size)}, torch::kLong);
    // Ties go to the first class, as in `udc eval`.
    sum_ += double((output.x.argmax(1) == labels).sum().item<int64_t>());
    count_ += batch.size;
    return;
  }
  pixels_ = true;
  const torch::Tensor error =
      output_pixels(output, mode_, normalization_) -
      output_pixels({targets_tensor(batch), {}}, Mode::Float, normalization_);
  const torch::Tensor weights = target_weights_tensor(batch);
  sum_ += (error.square() * weights).sum().item<double>();
  count_ += size_t(weights.sum().item<double>());
}

void ScoreTally::sum_over_ranks(Ranks* ranks) {
  if (!several(ranks)) return;
  torch::Tensor totals = torch::tensor({sum_, double(count_), pixels_ ? 1.0 : 0.0}, torch::kDouble);
  udc::search::sum_over_ranks(ranks, {totals}, "scores");
  sum_ = totals[0].item<double>();
  count_ = size_t(std::llround(totals[1].item<double>()));
  pixels_ = totals[2].item<double>() > 0;
}

double loss_share(const data::Batch& batch, Ranks* ranks) {
  if (!several(ranks)) return 1.0;
  if (batch.targets.empty()) return double(batch.size) / double(batch.global_size);
  torch::Tensor counted = target_weights_tensor(batch).sum().to(torch::kDouble).reshape({1});
  const double here = counted.item<double>();
  udc::search::sum_over_ranks(ranks, {counted}, "counted target pixels");
  return here / std::max(1.0, counted.item<double>());
}

double ScoreTally::score() const {
  if (count_ == 0) return 0.0;
  if (!pixels_) return sum_ / double(count_);
  if (sum_ == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / (sum_ / double(count_)));
}

std::string format_duration(double seconds) {
  const long s = std::lround(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  common::write_file_atomically(path, bytes.str());
}

torch::Tensor torch_generator_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void restore_torch_generator_state(const torch::Tensor& state) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

torch::Tensor images_tensor(data::Batch& batch) {
  return torch::from_blob(
      batch.images.data(),
      {int64_t(batch.size), int64_t(batch.channels), int64_t(batch.height), int64_t(batch.width)},
      torch::kFloat);
}

// ---------------------------------------------------------------- shared with the search

void recalibrate_batch_norm(QNet& net, const data::ImageDataset& set,
                            const data::Normalization& normalization, uint32_t batch_size,
                            uint64_t seed, uint32_t batches, Mode mode, Ranks* ranks) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> old_scales;
  for (const auto& layer : net.weighted()) old_scales.push_back(layer->fold_scale().clone());
  const bool was_training = net.is_training();
  net.train();
  data::BatchLoader::Options options{batch_size, true, false, seed ^ 0xb7u, 2};
  if (ranks) options.rank = ranks->rank(), options.world_size = ranks->size();
  data::BatchLoader loader(set, normalization, {}, options);
  loader.start_epoch(0);
  data::Batch batch;
  for (uint32_t k = 0; k < batches && loader.next(batch); ++k) {
    net.forward(images_tensor(batch), {mode, false, 0.0, ranks});
  }
  net.train(was_training);
  for (size_t i = 0; i < old_scales.size(); ++i) {
    net.weighted()[i]->keep_integers_across_fold_change(old_scales[i]);
  }
}

void prepare_quantization(QNet& net, const data::ImageDataset& train_set,
                          const data::Normalization& normalization, uint32_t batch_size,
                          uint64_t seed, Ranks* ranks) {
  for (const auto& layer : net.weighted()) layer->initialize_step();
  // Calibrate the activation ranges on a few batches before the first quantised step.
  data::BatchLoader::Options options{batch_size, true, false, seed ^ 0xca1u, 2};
  if (ranks) options.rank = ranks->rank(), options.world_size = ranks->size();
  data::BatchLoader loader(train_set, normalization, {}, options);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  net.eval();
  data::Batch batch;
  ForwardContext context{Mode::Quantized, true, 0.9, ranks};
  for (int k = 0; k < 8 && loader.next(batch); ++k) net.forward(images_tensor(batch), context);
}

Evaluation evaluate(QNet& net, const data::ImageDataset& set,
                    const data::Normalization& normalization, Mode mode, size_t batch_size,
                    size_t keep_logits, Ranks* ranks) {
  torch::NoGradGuard no_grad;
  net.eval();
  data::BatchLoader::Options options{batch_size, false, false, 0, 2};
  // Outputs are kept of the first images, all of which only one process sees whole.
  const bool shared = several(ranks) && keep_logits == 0;
  if (shared) options.rank = ranks->rank(), options.world_size = ranks->size();
  data::BatchLoader loader(set, normalization, {}, options);
  loader.start_epoch(0);
  Evaluation result;
  ScoreTally tally(normalization, mode);
  data::Batch batch;
  while (loader.next(batch)) {
    const QTensor logits = net.forward(images_tensor(batch), {mode, false, 0.0});
    tally.add(logits, batch);
    if (mode == Mode::Quantized && result.logits.size() < keep_logits) {
      const torch::Tensor q =
          recover_integers(logits.x, logits.quant).to(torch::kInt8).contiguous();
      for (int64_t i = 0; i < q.size(0) && result.logits.size() < keep_logits; ++i) {
        const int8_t* row = q[i].data_ptr<int8_t>();
        result.logits.emplace_back(row, row + q.size(1));
      }
    }
  }
  if (shared) tally.sum_over_ranks(ranks);
  result.score = tally.score();
  return result;
}

double photograph_psnr(QNet& net, const data::SuperResolutionSet& photographs,
                       const data::Normalization& normalization, Mode mode) {
  torch::NoGradGuard no_grad;
  net.eval();
  double sum = 0;
  for (size_t i = 0; i < photographs.low.size(); ++i) {
    const data::Image& low = photographs.low[i];
    const data::Image& high = photographs.high[i];
    if (low.channels != 1) {
      throw std::invalid_argument(fmt::format("photograph_psnr: {} has {} channels, expected 1",
                                              photographs.files.at(i), low.channels));
    }
    // The network is convolutional up to its depth_to_space: it takes the whole photograph,
    // padded with real 0 as the integer model's SAME padding and udc eval's tiles are.
    std::vector<float> input(low.pixels.size());
    for (size_t k = 0; k < input.size(); ++k) input[k] = normalization.normalize(low.pixels[k]);
    const torch::Tensor images = torch::from_blob(
        input.data(), {1, 1, int64_t(low.height), int64_t(low.width)}, torch::kFloat);
    const torch::Tensor pixels =
        output_pixels(net.forward(images, {mode, false, 0.0}), mode, normalization)
            .to(torch::kUInt8)
            .contiguous();
    if (size_t(pixels.numel()) != high.pixels.size()) {
      throw std::invalid_argument(fmt::format("photograph_psnr: {} values out for a {}x{} target",
                                              pixels.numel(), high.width, high.height));
    }
    data::Image up{high.height, high.width, 1, {}};
    up.pixels.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
    sum += data::psnr(high, up, photographs.scale);
  }
  return photographs.low.empty() ? 0.0 : sum / double(photographs.low.size());
}

PatchPairs load_patch_pairs(const DataSpec& spec, uint32_t patch, uint32_t radius,
                            double holdout_fraction, const PatchPairsSource& source) {
  if (2 * radius >= patch) {
    throw std::runtime_error(fmt::format(
        "{}: {} {}x{} leaves no output that does not read the padding: the model's receptive "
        "radius is {} pixels; take patches larger than {}",
        source.file, source.patch_key, patch, patch, radius, 2 * radius));
  }
  data::SuperResolutionSet photographs = load_photographs(spec, data::Split::Train);
  const size_t total = photographs.high.size();
  const size_t kept =
      total - std::min(total, size_t(std::llround(holdout_fraction * double(total))));
  data::SuperResolutionSet held_out;
  held_out.name = photographs.name + "/held-out";
  held_out.scale = photographs.scale;
  for (size_t i = kept; i < total; ++i) {
    held_out.files.push_back(std::move(photographs.files[i]));
    held_out.high.push_back(std::move(photographs.high[i]));
    held_out.low.push_back(std::move(photographs.low[i]));
  }
  photographs.files.resize(kept);
  photographs.high.resize(kept);
  photographs.low.resize(kept);
  if (holdout_fraction > 0 && (held_out.high.empty() || photographs.high.empty())) {
    throw std::runtime_error(fmt::format(
        "{}: {} {} of {} training photographs holds out {} and leaves {}; both must be at "
        "least one",
        source.file, source.holdout_key, holdout_fraction, total, held_out.high.size(),
        photographs.high.size()));
  }
  const uint32_t stride = spec.patch_stride > 0 ? spec.patch_stride : std::max(patch / 2, 1u);
  PatchPairs pairs;
  pairs.train_set = data::patch_pairs(photographs, patch, stride);
  pairs.train_set.target_border = radius * spec.scale;
  if (!held_out.high.empty()) {
    pairs.holdout = data::patch_pairs(held_out, patch, stride);
    pairs.holdout.target_border = radius * spec.scale;
  }
  return pairs;
}

void load_exported_network(const std::string& output_dir, QNet& net, Metric metric, Ranks* ranks) {
  const std::string path = (fs::path(output_dir) / "checkpoint.pt").string();
  const std::optional<std::string> bytes = read_on_primary(ranks, path);
  if (!bytes) throw std::runtime_error(path + ": no such checkpoint");
  try {
    torch::serialize::InputArchive archive, net_archive;
    archive.load_from(bytes->data(), bytes->size());
    archive.read("net", net_archive);
    net.load(net_archive);
    const Checkpoint state = read_checkpoint_state(archive, path, net, metric);
    if (state.best_epoch >= 0) restore_snapshot(net, state.best, path, /*tensors_only=*/true);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        fmt::format("{}: unreadable checkpoint ({})", path, e.what_without_backtrace()));
  }
}

// ---------------------------------------------------------------- train

namespace {

/// Holds train.weight_budget_bytes and train.flash_budget_bytes during training
/// (hold_budgets on the compiled layout) and reports the guard's work once an epoch.
class EpochBudgetGuard {
 public:
  EpochBudgetGuard(const TrainSpec& spec, const npu_sim::NpuConfig* npu,
                   std::function<void(const std::string&)> say)
      : spec_(spec),
        budgets_{spec.weight_budget_bytes, spec.flash_budget_bytes, npu},
        say_(std::move(say)) {}

  /// Measures the network's export and prunes until it fits (or no step saves a byte);
  /// returns the weights it pruned.
  uint64_t hold(QNet& net) {
    const BudgetGuard guard = hold_budgets(net, budgets_);
    ++tally_.checks;
    tally_.after = guard.after;
    tally_.fits = guard.fits;
    if (budgets_.excess(guard.before) == 0) return 0;
    ++tally_.prunings;
    if (!tally_.largest || budgets_.excess(guard.before) > budgets_.excess(*tally_.largest))
      tally_.largest = guard.before;
    tally_.pruned += guard.pruned;
    return guard.pruned;
  }

  /// At the start of the compress phase: raises the layers' target sparsities (and lowers
  /// their bitwidths to those of TrainSpec::budget_bits) until the network, masked at its
  /// targets, fits its budgets (hold_budgets' steps), then puts the
  /// masks back where the ramp starts, so that the ramp prunes the excess gradually. Without
  /// it, a network trained dense far over its budget (the sequential control: an int8
  /// architecture found under 4x the budget) kept its targets through the ramp and the guard
  /// pruned the whole excess in one step at the ramp's end (2 KiB: 6,576 to 2,048 B, 77 % of
  /// the weights at once; 90.7 % fell to 10 % and never came back). A network whose targets
  /// fit already (a derived or a budgeted fixed one) is left as it is.
  void plan_targets(QNet& net, double ramp_fraction) {
    torch::NoGradGuard no_grad;
    for (const auto& layer : net.weighted()) layer->update_mask(layer->target_sparsity());
    std::vector<uint32_t> bits_before;
    for (const auto& layer : net.weighted()) bits_before.push_back(layer->bits());
    const BudgetGuard plan = hold_budgets(net, budgets_, spec_.budget_bits);
    if (budgets_.excess(plan.before) > 0) {
      std::string lowered;
      for (size_t i = 0; i < bits_before.size(); ++i) {
        const QWeighted& layer = *net.weighted()[i];
        if (layer.bits() != bits_before[i]) {
          lowered += fmt::format("{}{} {}->{}", lowered.empty() ? "" : ", ", layer.layer_name(),
                                 bits_before[i], layer.bits());
        }
      }
      say_(fmt::format(
          "  budgets: {} at the targets; targets raised before the compress ramp ({} more "
          "weights to prune{}{}): {}",
          budget_text(plan.before), plan.pruned,
          lowered.empty() ? "" : fmt::format("; bits lowered: {}", lowered),
          plan.fits ? "" : ", and no further step saves a byte", budget_text(plan.after)));
    }
    for (size_t i = 0; i < bits_before.size(); ++i) {
      const auto& layer = net.weighted()[i];
      layer->update_mask(ramp_sparsity(layer->target_sparsity(), 0.0, ramp_fraction));
      // Steps at the ramp's first masks, as prepare_quantization set the others.
      if (layer->bits() != bits_before[i]) layer->initialize_step();
    }
  }

  /// Says what the guard did since the last report, if it pruned, and starts a new tally.
  void report() {
    if (tally_.prunings > 0) {
      say_(fmt::format("  budgets: grew to {}, at {} of {} checks; {} more weights pruned{}: {}",
                       budget_text(*tally_.largest), tally_.prunings, tally_.checks, tally_.pruned,
                       tally_.fits ? "" : " (no further step saves a byte)",
                       budget_text(tally_.after)));
    }
    tally_ = Tally{};
  }

 private:
  std::string budget_text(const fm::ModelMeasurement& m) const {
    std::string text;
    if (spec_.weight_budget_bytes > 0)
      text += fmt::format("weights {} of {} B", m.weight_bytes, spec_.weight_budget_bytes);
    if (spec_.flash_budget_bytes > 0) {
      text += fmt::format("{}flash image {} of {} B", text.empty() ? "" : ", ", m.flash_bytes,
                          spec_.flash_budget_bytes);
    }
    return text;
  }
  /// The guard's work over an epoch.
  struct Tally {
    std::optional<fm::ModelMeasurement> largest;  ///< the largest excess found
    fm::ModelMeasurement after;                   ///< now
    uint64_t pruned = 0;                          ///< weights pruned
    uint32_t checks = 0, prunings = 0;
    bool fits = true;
  };
  const TrainSpec& spec_;
  const WeightBudgets budgets_;
  std::function<void(const std::string&)> say_;
  Tally tally_;
};

/// The configured training and test images and the training images held out to choose
/// the exported epoch; throws when they do not suit the model. Super-resolution: patch
/// pairs, the held-out ones from whole photographs kept out, and the test photographs.
struct TrainingData {
  data::ImageDataset train_set, test_set, holdout;
  /// Super-resolution: the test photographs the score is measured on; test_set holds
  /// patches of them that do not overlap (the images verified on interpreter and simulator).
  std::optional<data::SuperResolutionSet> test_photographs;
};

/// `fraction` of `count` things, rounded.
size_t fraction_of(double fraction, size_t count) {
  return size_t(std::llround(fraction * double(count)));
}

TrainingData load_super_resolution_data(const TrainConfig& config) {
  const ArchitectureSpec& arch = config.architecture;
  if (arch.width != arch.height) {
    throw std::runtime_error(
        fmt::format("{}: model.input {}x{}: super-resolution patches are square", config.file,
                    arch.height, arch.width));
  }
  // Outputs near a patch's edge read the padding; udc eval discards them from its tiles.
  const uint32_t radius =
      fm::receptive_radius(QNet(arch, config.data.normalization).export_model());
  PatchPairs pairs =
      load_patch_pairs(config.data, arch.height, radius, config.train.holdout_fraction,
                       {config.file, "train.holdout_fraction", "model.input"});
  TrainingData data;
  data.train_set = std::move(pairs.train_set);
  data.holdout = std::move(pairs.holdout);
  data.test_photographs = load_photographs(config.data, data::Split::Test);
  data.test_set = data::patch_pairs(*data.test_photographs, arch.height, arch.height);
  if (data.train_set.channels != arch.channels) {
    throw std::runtime_error(fmt::format("{}: model.input has {} channels but {} has {}",
                                         config.file, arch.channels, data.train_set.name,
                                         data.train_set.channels));
  }
  return data;
}

TrainingData load_training_data(const TrainConfig& config) {
  const TrainSpec& spec = config.train;
  const ArchitectureSpec& arch = config.architecture;
  if (config.data.super_resolution()) return load_super_resolution_data(config);
  data::ImageDataset train_set = load_data(config.data, data::Split::Train);
  data::ImageDataset test_set = load_data(config.data, data::Split::Test);
  // Chooses the exported epoch; the last images, as the search's derivation holds out, so
  // that a fine-tune after a search never trains on the images it is judged by.
  data::ImageDataset holdout =
      train_set.split_off(fraction_of(spec.holdout_fraction, train_set.size()));
  if (spec.holdout_fraction > 0 && (holdout.size() == 0 || train_set.size() == 0)) {
    throw std::runtime_error(fmt::format(
        "{}: train.holdout_fraction {} of {} training images holds out {} and leaves {}; both "
        "must be at least one",
        config.file, spec.holdout_fraction, train_set.size() + holdout.size(), holdout.size(),
        train_set.size()));
  }
  if (train_set.height != arch.height || train_set.width != arch.width ||
      train_set.channels != arch.channels) {
    throw std::runtime_error(fmt::format("{}: model.input is {}x{}x{} but {} images are {}x{}x{}",
                                         config.file, arch.height, arch.width, arch.channels,
                                         train_set.name, train_set.height, train_set.width,
                                         train_set.channels));
  }
  if (train_set.classes != arch.classes) {
    throw std::runtime_error(fmt::format("{}: model.classes is {} but {} has {} classes",
                                         config.file, arch.classes, train_set.name,
                                         train_set.classes));
  }

  return {std::move(train_set), std::move(test_set), std::move(holdout), std::nullopt};
}

/// Reads checkpoint.pt (when there is one) into the network and `state`, and the random
/// generator; `archive` keeps the optimiser's state for the epoch that resumes. False
/// when there is no checkpoint. Throws naming the file when it does not suit the config.
bool resume_training(const std::string& checkpoint_path, uint32_t total_epochs, QNet& net,
                     Checkpoint& state, torch::serialize::InputArchive& resume_archive,
                     Ranks* ranks) {
  // Rank 0's disk decides; its bytes go to the others, whose disks need not hold them.
  if (const std::optional<std::string> bytes = read_on_primary(ranks, checkpoint_path)) {
    try {
      resume_archive.load_from(bytes->data(), bytes->size());
      state = read_checkpoint_state(resume_archive, checkpoint_path, net, state.metric);
      torch::serialize::InputArchive net_archive;
      resume_archive.read("net", net_archive);
      net.load(net_archive);
    } catch (const c10::Error& e) {
      throw std::runtime_error(
          fmt::format("{}: unreadable checkpoint ({}); use --restart to "
                      "start over",
                      checkpoint_path, e.what_without_backtrace()));
    }
    if (state.epochs_done > total_epochs) {
      throw std::runtime_error(
          fmt::format("{}: checkpoint has {} epochs, the config only {}; use "
                      "--restart",
                      checkpoint_path, state.epochs_done, total_epochs));
    }
    if (!state.target_sparsity.empty()) {
      if (state.target_sparsity.size() != net.weighted().size()) {
        throw std::runtime_error(fmt::format(
            "{}: checkpoint has {} layer sparsities, the model {} weighted layers; use --restart",
            checkpoint_path, state.target_sparsity.size(), net.weighted().size()));
      }
      for (size_t i = 0; i < state.target_sparsity.size(); ++i) {
        net.weighted()[i]->set_target_sparsity(state.target_sparsity[i]);
      }
    }
    if (torch::Tensor generator; resume_archive.try_read("generator", generator)) {
      restore_torch_generator_state(generator);
    }
    return true;
  }
  return false;
}

/// The trained network exported, measured on the NPU (when there is one) and verified:
/// the integer model's logits on `config.verify_images` test images equal LibTorch's on
/// the reference interpreter and, with an NPU, the simulator's. Fills the result's
/// accuracy, measurements, budget verdict and verified count; throws on a mismatch or a
/// model that does not fit.
struct Exported {
  fm::Model model;
  fm::ModelSummary summary;
  bool simulated = false;  ///< verified on the simulator too
};

Exported export_and_verify(const TrainConfig& config, const std::optional<npu_sim::NpuConfig>& npu,
                           QNet& net, const TrainingData& data, TrainResult& result) {
  const data::ImageDataset& test_set = data.test_set;
  const TrainSpec& spec = config.train;
  Exported exported;
  exported.model = net.export_model();
  const fm::Model& model = exported.model;
  const Evaluation final_eval = evaluate(net, test_set, config.data.normalization, Mode::Quantized,
                                         kEvaluationBatch, config.verify_images);
  result.metric = metric_of(config.data);
  result.test_score =
      data.test_photographs
          ? photograph_psnr(net, *data.test_photographs, config.data.normalization, Mode::Quantized)
          : final_eval.score;
  exported.summary = fm::summarize(model);

  // The same integers on the reference interpreter and on the simulator.
  std::optional<fm::CompiledModel> compiled;
  std::optional<fm::ModelMeasurement>& measured = result.hardware;
  if (npu) {
    measured = fm::measure_model(model, *npu);
    if (!measured->fits()) {
      throw std::runtime_error(fmt::format("{}: the trained model does not fit {}: {}", config.file,
                                           config.npu.describe(), measured->does_not_fit->reason));
    }
    compiled = fm::compile(model, *npu).compiled;
    fm::MeasuredBudgets bounds;
    if (spec.weight_budget_bytes > 0) bounds.weight_bytes = spec.weight_budget_bytes;
    if (spec.flash_budget_bytes > 0) bounds.flash_bytes = spec.flash_budget_bytes;
    result.budget_violations = fm::budget_violations(*measured, bounds);
    result.within_budgets = result.budget_violations.empty();
  }
  for (size_t i = 0; i < final_eval.logits.size(); ++i) {
    std::vector<int8_t> input(test_set.image_bytes());
    const uint8_t* image = test_set.image(i);
    for (size_t k = 0; k < input.size(); ++k) input[k] = data::quantize_pixel(image[k]);
    // Interpreter and simulator together where there is an NPU, else the interpreter.
    const std::optional<fm::Verification> on_npu =
        compiled ? std::optional(fm::verify_on_npu(model, *compiled, *npu, {input})) : std::nullopt;
    const std::vector<fm::TensorValues> values =
        on_npu ? on_npu->reference : fm::run_reference(model, {input});
    if (values[size_t(model.outputs[0])] != final_eval.logits[i]) {
      throw std::runtime_error(fmt::format(
          "verification failed: test image {}: the reference interpreter's outputs differ from "
          "LibTorch's integer forward pass",
          i));
    }
    if (on_npu && !on_npu->difference.empty()) {
      throw std::runtime_error(fmt::format(
          "verification failed: test image {}: the simulator differs from the reference "
          "interpreter: {}",
          i, on_npu->difference));
    }
    ++result.verified_images;
  }

  exported.simulated = compiled.has_value();
  return exported;
}

/// report.json of a training run: data, accuracy, sizes, hardware figures, the epoch
/// chosen, budgets, per-layer figures and the history.
nlohmann::json train_report_json(const TrainConfig& config, const TrainingData& data,
                                 const Exported& exported, const TrainResult& result) {
  const TrainSpec& spec = config.train;
  const ArchitectureSpec& arch = config.architecture;
  const fm::ModelSummary& summary = exported.summary;
  const std::optional<fm::ModelMeasurement>& measured = result.hardware;
  const data::ImageDataset& train_set = data.train_set;
  const data::ImageDataset& test_set = data.test_set;
  nlohmann::json layers = nlohmann::json::array();
  for (size_t op = 0; op < summary.layers.size(); ++op) {
    const fm::LayerSummary& l = summary.layers[op];
    if (l.weights == 0) continue;
    nlohmann::json layer = {
        {"name", l.name},        {"op", fm::op_type_name(l.type)},
        {"bits", l.weight_bits}, {"weights", l.weights},
        {"nonzero", l.nonzero},  {"sparsity", 1.0 - double(l.nonzero) / double(l.weights)}};
    if (measured) {
      for (const fm::LayerBytes& b : measured->layers) {
        if (b.operation != op) continue;
        layer["weight_bytes"] = b.weight_bytes;
        layer["flash_bytes"] = b.image_bytes;
      }
    }
    layers.push_back(layer);
  }
  nlohmann::json hardware = nullptr;
  if (measured) {
    hardware = {{"npu_config", config.npu.describe()},   {"weight_bytes", measured->weight_bytes},
                {"flash_bytes", measured->flash_bytes},  {"sram_peak_bytes", measured->arena_bytes},
                {"sram_bytes", measured->sram_bytes},    {"cycles", measured->cycles},
                {"milliseconds", measured->milliseconds}};
  }
  double wall = 0, step_ms_sum = 0;
  size_t step_epochs = 0;
  for (const EpochRecord& r : result.history) {
    wall += r.seconds;
    if (r.phase != "warmup") continue;
    step_ms_sum += r.step_milliseconds;
    ++step_epochs;
  }
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : result.history) history.push_back(epoch_json(r, result.metric));
  return {
      {"config", config.file},
      {"model", arch.name},
      {"data",
       {{"set", config.data.set},
        {"train_images", train_set.size()},
        {"test_images", test_set.size()},
        {"test_photographs",
         data.test_photographs ? nlohmann::json(data.test_photographs->files) : nlohmann::json()}}},
      {score_key(result.metric, "test"), result.test_score},
      {"weights", summary.weights},
      {"nonzero_weights", summary.nonzero},
      {"macs", summary.macs},
      {"bias_and_scale_bytes", summary.bias_and_scale_bytes},
      {"hardware", hardware},
      {"selection",
       result.selected_epoch < 0
           ? nlohmann::json()
           : nlohmann::
                 json{{"holdout_images", result.holdout_images},
                      {"epoch", result.selected_epoch},
                      {score_key(result.metric, "holdout"),
                       result.history.at(size_t(result.selected_epoch)).holdout_score},
                      {"rule",
                       "best held-out score of the epochs whose model is final in form; later "
                       "on ties"}}},
      {"budgets",
       {{"weight_bytes", spec.weight_budget_bytes > 0 ? nlohmann::json(spec.weight_budget_bytes)
                                                      : nlohmann::json()},
        {"flash_bytes",
         spec.flash_budget_bytes > 0 ? nlohmann::json(spec.flash_budget_bytes) : nlohmann::json()},
        {"within", result.within_budgets},
        {"violations", result.budget_violations}}},
      {"verified_images", result.verified_images},
      {"layers", layers},
      {"history", history},
      {"training_seconds", wall},
      {"float_step_ms", step_epochs ? step_ms_sum / double(step_epochs) : 0.0}};
}

/// Whether the masks are at their targets after the mask update of `phase_step` (or the
/// last one before it): only then does the encoded size mean what the exported model holds.
bool masks_at_target_after(const TrainSpec& spec, Phase phase, size_t phase_step,
                           size_t phase_steps) {
  if (phase != Phase::Compress) return phase == Phase::Finetune;
  const size_t last_update =
      phase_step + 1 == phase_steps ? phase_step : phase_step - phase_step % spec.prune_interval;
  return ramp_sparsity(1.0, double(last_update + 1) / double(phase_steps), spec.ramp_fraction) >=
         1.0;
}

/// What one epoch's training steps need: the network, its optimiser and distillation
/// teacher, the batches, the budget guard, the phase and where the epoch stands in it.
struct EpochSteps {
  const TrainSpec& spec;
  QNet& net;
  torch::optim::AdamW& optimizer;
  QNet* teacher;  ///< null: no distillation (or not begun)
  data::BatchLoader& loader;
  EpochBudgetGuard& guard;
  Phase phase;
  const PhaseSpec& ps;
  ForwardContext context;
  size_t steps_per_epoch, phase_step0, phase_steps;  ///< [steps]
  uint32_t epoch, total_epochs;
  std::ostream* log;  ///< progress four times an epoch; null: silent
  const data::Normalization& normalization;
  Metric metric;
  const data::ImageDataset& train_set;  ///< the training images (batch-norm recalibration)
};

/// What the steps add up to.
struct StepTotals {
  double loss_sum = 0;  ///< training loss x images
  double score = 0;     ///< ScoreTally::score of the training batches
  size_t seen = 0, steps = 0;
  double step_milliseconds = 0;  ///< mean wall time of a step
};

/// One epoch of training steps: the learning-rate schedule, the compress phase's mask
/// ramp, the budget held as often as the masks move, and the (distilled) loss.
StepTotals run_epoch_steps(const EpochSteps& e) {
  const TrainSpec& spec = e.spec;
  QNet& net = e.net;
  torch::optim::AdamW& optimizer = e.optimizer;
  data::BatchLoader& loader = e.loader;
  const Phase phase = e.phase;
  const PhaseSpec& ps = e.ps;
  const ForwardContext& context = e.context;
  const size_t steps_per_epoch = e.steps_per_epoch, phase_step0 = e.phase_step0,
               phase_steps = e.phase_steps;
  const uint32_t epoch = e.epoch, total_epochs = e.total_epochs;
  std::ostream* log = e.log;
  auto say = [&](const std::string& line) {
    if (log) *log << line << std::endl;
  };
  QNet* teacher = e.teacher;
  net.train();
  loader.start_epoch(epoch);
  data::Batch batch;
  double loss_sum = 0;
  size_t seen = 0;
  ScoreTally tally(e.normalization, context.mode);
  const Clock::time_point steps_start = Clock::now();
  size_t step = 0;
  for (; step < steps_per_epoch && loader.next(batch); ++step) {
    const size_t phase_step = phase_step0 + step;
    set_rate(optimizer, cosine_rate(ps.learning_rate, phase_step, phase_steps));
    bool masks_moved = false;
    if (phase == Phase::Compress &&
        (phase_step % spec.prune_interval == 0 || phase_step + 1 == phase_steps)) {
      const double progress = double(phase_step + 1) / double(phase_steps);
      for (const auto& layer : net.weighted()) {
        layer->update_mask(ramp_sparsity(layer->target_sparsity(), progress, spec.ramp_fraction));
      }
      masks_moved = true;
    }
    // Training moves the weights and with them the encoded size; holding the budget as
    // often as the masks move prunes a few weights at a time, with steps to recover in
    // between, rather than many at the end of an epoch, just before it is evaluated.
    if (spec.has_budget() && phase_step % spec.prune_interval == 0 &&
        masks_at_target_after(spec, phase, phase_step, phase_steps)) {
      masks_moved = e.guard.hold(net) > 0 || masks_moved;
    }
    // Not in the fine-tune: its activation ranges are frozen, and new statistics would move
    // the outputs they quantise.
    if (masks_moved && phase == Phase::Compress && spec.recalibration_batches > 0) {
      recalibrate_batch_norm(net, e.train_set, e.normalization, spec.batch_size, spec.seed,
                             spec.recalibration_batches, Mode::MaskedFloat, context.ranks);
    }
    const torch::Tensor images = images_tensor(batch);
    torch::Tensor teacher_logits;
    if (teacher && phase != Phase::Warmup) {
      torch::NoGradGuard no_grad;
      teacher_logits = teacher->forward(images, {Mode::Float, false, 0.0}).x;
    }
    const QTensor logits = net.forward(images, context);
    const torch::Tensor loss = batch_loss(logits.x, batch, teacher_logits, spec.distillation);
    optimizer.zero_grad();
    (several(context.ranks) ? loss * loss_share(batch, context.ranks) : loss).backward();
    reduce_gradients(context.ranks, net.parameters());
    optimizer.step();
    loss_sum += loss.item<double>() * batch.size;
    tally.add(logits, batch);
    seen += batch.size;
    if (log && (step + 1) % std::max<size_t>(1, steps_per_epoch / 4) == 0 &&
        step + 1 < steps_per_epoch) {
      const double per_step =
          std::chrono::duration<double>(Clock::now() - steps_start).count() / double(step + 1);
      const double remaining =
          per_step * double((total_epochs - epoch) * steps_per_epoch - (step + 1));
      say(
          fmt::format("  epoch {}/{} [{}] step {}/{}: loss {:.4f}, train {}, "
                      "{:.0f} ms/step, ETA {}",
                      epoch + 1, total_epochs, phase_name(phase), step + 1, steps_per_epoch,
                      loss_sum / double(seen), format_score(e.metric, tally.score()),
                      1e3 * per_step, format_duration(remaining)));
    }
  }
  const double step_milliseconds =
      1e3 * std::chrono::duration<double>(Clock::now() - steps_start).count() / double(step);
  if (several(context.ranks)) {
    torch::Tensor totals = torch::tensor({loss_sum, double(seen)}, torch::kDouble);
    sum_over_ranks(context.ranks, {totals}, "training losses");
    loss_sum = totals[0].item<double>();
    seen = size_t(std::llround(totals[1].item<double>()));
    tally.sum_over_ranks(context.ranks);
  }
  return {loss_sum, tally.score(), seen, step, step_milliseconds};
}

}  // namespace

TrainResult train(const TrainConfig& config, std::optional<npu_sim::NpuConfig> npu,
                  const TrainOptions& options) {
  return train_network(config, std::move(npu), options, {});
}

std::optional<npu_sim::NpuConfig> configured_npu(const TrainConfig& config) {
  if (config.npu.empty()) return std::nullopt;
  return npu_sim::load_npu_config(config.npu);
}

namespace {

/// The three phases laid out over the run's epochs: warm-up [0, warmup_end), compress
/// [warmup_end, compress_end), fine-tune [compress_end, total).
struct PhaseSchedule {
  explicit PhaseSchedule(const TrainSpec& train)
      : spec(train),
        warmup_end(train.warmup.epochs),
        compress_end(warmup_end + train.compress.epochs),
        total(compress_end + train.finetune.epochs) {}
  Phase phase_of(uint32_t epoch) const {
    return epoch < warmup_end     ? Phase::Warmup
           : epoch < compress_end ? Phase::Compress
                                  : Phase::Finetune;
  }
  const PhaseSpec& spec_of(Phase phase) const {
    return phase == Phase::Warmup     ? spec.warmup
           : phase == Phase::Compress ? spec.compress
                                      : spec.finetune;
  }
  uint32_t first_epoch(Phase phase) const {
    return phase == Phase::Warmup ? 0u : phase == Phase::Compress ? warmup_end : compress_end;
  }

  const TrainSpec& spec;
  const uint32_t warmup_end, compress_end, total;  ///< [epochs]
};

/// The frozen float teacher of distillation, from the checkpoint's snapshot.
std::shared_ptr<QNet> make_teacher(const TrainConfig& config, const NetSnapshot& snapshot,
                                   const std::string& checkpoint_path) {
  auto teacher = std::make_shared<QNet>(config.architecture, config.data.normalization);
  restore_snapshot(*teacher, snapshot, checkpoint_path);
  teacher->eval();
  return teacher;
}

/// What changes when a compress or fine-tune phase begins: the teacher is frozen (first
/// phase after the warm-up, with distillation), quantisation is calibrated (compress, or a
/// fine-tune without one), and the fine-tune fixes the masks at their targets.
void begin_phase(const TrainConfig& config, const PhaseSchedule& schedule, Phase phase,
                 uint32_t epoch, const std::string& checkpoint_path, QNet& net,
                 data::ImageDataset& train_set, Checkpoint& state, std::shared_ptr<QNet>& teacher,
                 Ranks* ranks) {
  const TrainSpec& spec = config.train;
  if (spec.distillation.enabled() && !teacher) {
    if (epoch != schedule.warmup_end) {
      throw std::runtime_error(fmt::format(
          "{}: distillation is on but the checkpoint, past the warm-up, holds no teacher (it "
          "was written without distillation); use --restart",
          checkpoint_path));
    }
    state.teacher = take_snapshot(net);
    teacher = make_teacher(config, state.teacher, checkpoint_path);
  }
  if (phase == Phase::Compress || spec.compress.epochs == 0) {
    prepare_quantization(net, train_set, config.data.normalization, spec.batch_size, spec.seed,
                         ranks);
  }
  if (phase == Phase::Finetune) {
    for (const auto& layer : net.weighted()) layer->update_mask(layer->target_sparsity());
  }
}

/// The epoch's record after its steps: the budgets held once the masks are at their
/// targets, test accuracy, held-out accuracy (the best held-out epoch's weights kept in
/// `state` for export; `best_so_far` says whether this one is), the compiled bytes outside
/// the warm-up. Timing is left to the caller.
EpochRecord record_epoch(const TrainConfig& config, const TrainingData& data,
                         const std::optional<npu_sim::NpuConfig>& npu, QNet& net,
                         EpochBudgetGuard& guard, Checkpoint& state, uint32_t epoch, Phase phase,
                         const StepTotals& totals, bool masks_at_target, bool& best_so_far,
                         Ranks* ranks) {
  const data::Normalization& normalization = config.data.normalization;
  EpochRecord record;
  record.epoch = epoch;
  record.phase = phase_name(phase);
  record.loss = totals.loss_sum / double(std::max<size_t>(totals.seen, 1));
  record.train_score = totals.score;
  if (config.train.has_budget() && masks_at_target) guard.hold(net);
  guard.report();
  const Mode mode = phase == Phase::Warmup ? Mode::Float : Mode::Quantized;
  record.test_score =
      data.test_photographs
          ? photograph_psnr(net, *data.test_photographs, normalization, mode)
          : evaluate(net, data.test_set, normalization, mode, kEvaluationBatch, 0, ranks).score;
  best_so_far = false;
  if (data.holdout.size() > 0 && phase != Phase::Warmup && masks_at_target) {
    record.holdout_score =
        evaluate(net, data.holdout, normalization, Mode::Quantized, kEvaluationBatch, 0, ranks)
            .score;
    const double best_score =
        state.best_epoch < 0 ? -1e300 : state.history.at(size_t(state.best_epoch)).holdout_score;
    if (record.holdout_score >= best_score) {
      state.best_epoch = epoch;
      state.best = take_snapshot(net);
      best_so_far = true;
    }
  }
  if (phase != Phase::Warmup && npu) {
    const fm::ModelMeasurement m =
        fm::measure_model(net.export_model(), *npu, {/*simulate=*/false, /*compile=*/{}});
    record.weight_bytes = m.weight_bytes;
    record.flash_bytes = m.flash_bytes;
  }
  return record;
}

/// The epoch's line of progress: loss, scores, bytes, speed, ETA.
std::string epoch_line(const EpochRecord& record, Metric metric, uint32_t total_epochs,
                       bool best_so_far, bool measured, double step_ms, double eta_seconds) {
  return fmt::format(
      "epoch {}/{} [{}]: loss {:.4f}, train {}, test {}{}{}, {:.0f} ms/step, {}, ETA {}",
      record.epoch + 1, total_epochs, record.phase, record.loss,
      format_score(metric, record.train_score), format_score(metric, record.test_score),
      record.holdout_score < 0
          ? std::string()
          : fmt::format(", held-out {}{}", format_score(metric, record.holdout_score),
                        best_so_far ? " (best)" : ""),
      measured ? fmt::format(", weights {} B, flash {} B", record.weight_bytes, record.flash_bytes)
               : std::string(),
      step_ms, format_duration(record.seconds), format_duration(eta_seconds));
}

/// Writes model.udcm and model.tflite (or model.over-budget.*, the other names removed: a
/// model that breaks a budget is never left under the name a user flashes) and
/// report.json, and says what was written.
void write_trained_model(const TrainOptions& options, const Exported& exported,
                         const nlohmann::json& report, const std::optional<npu_sim::NpuConfig>& npu,
                         TrainResult& result, const std::function<void(const std::string&)>& say,
                         bool write) {
  const fs::path in_budget = fs::path(options.output_dir) / "model";
  const fs::path over_budget = fs::path(options.output_dir) / "model.over-budget";
  const fs::path stem = result.within_budgets ? in_budget : over_budget;
  result.model_path = stem.string() + ".udcm";
  result.tflite_path = stem.string() + ".tflite";
  result.report_path = (fs::path(options.output_dir) / "report.json").string();
  if (!write) return;
  for (const char* extension : {".udcm", ".tflite"}) {
    fs::remove((result.within_budgets ? over_budget : in_budget).string() + extension);
  }
  fm::write_model(exported.model, result.model_path);
  std::vector<std::string> tflite_notes;
  fm::write_tflite(exported.model, result.tflite_path, &tflite_notes);
  for (const std::string& note : tflite_notes) say("model.tflite: " + note);
  common::write_file_atomically(result.report_path, report.dump(2) + "\n");
  const fm::ModelSummary& summary = exported.summary;
  const std::optional<fm::ModelMeasurement>& measured = result.hardware;
  say(fmt::format(
      "test {} (integer model), {} weights, {} non-zero{}; {} test images equal on "
      "LibTorch, interpreter{}",
      format_score(result.metric, result.test_score), summary.weights, summary.nonzero,
      measured ? fmt::format(" ({} B of weight streams, {} B flash image on {}), SRAM peak {} B, "
                             "{:.0f} cycles = {:.3f} ms",
                             measured->weight_bytes, measured->flash_bytes, npu->npu_name,
                             measured->arena_bytes, measured->cycles, measured->milliseconds)
               : std::string(),
      result.verified_images, exported.simulated ? " and simulator" : ""));
  for (const std::string& v : result.budget_violations) say("over budget: " + v);
  say("wrote " + result.model_path + ", " + result.tflite_path + " and " + result.report_path);
}

}  // namespace

TrainResult train_network(const TrainConfig& config, std::optional<npu_sim::NpuConfig> npu,
                          const TrainOptions& options, const NetInitializer& initialize) {
  Ranks* ranks = options.ranks.get();
  const bool primary = !ranks || ranks->primary();
  std::ostream* log = primary ? options.log : nullptr;
  const std::function<void(const std::string&)> say = [&](const std::string& line) {
    if (log) *log << line << std::endl;
  };
  const TrainSpec& spec = config.train;
  const ArchitectureSpec& arch = config.architecture;
  // Budgets need an NPU to measure on (a config read from a file is checked when read, one
  // built in code here).
  if (spec.has_budget() && !npu) {
    throw std::runtime_error(fmt::format(
        "{}: train.weight_budget_bytes and train.flash_budget_bytes need an NPU (npu:) to "
        "measure the compiled model on",
        config.file));
  }
  EpochBudgetGuard guard(spec, npu ? &*npu : nullptr, say);
  use_training_threads(spec.threads);
  torch::manual_seed(spec.seed);

  TrainingData data = load_training_data(config);
  data::ImageDataset& train_set = data.train_set;
  const data::ImageDataset& test_set = data.test_set;
  const data::ImageDataset& holdout = data.holdout;

  if (primary) {
    fs::create_directories(options.output_dir);
    // What a killed run was writing when it died (its checkpoint and outputs are whole).
    common::remove_stale_temporaries(options.output_dir);
  }
  const std::string checkpoint_path = (fs::path(options.output_dir) / "checkpoint.pt").string();
  const std::string warmup_checkpoint_path =
      (fs::path(options.output_dir) / "warmup-checkpoint.pt").string();
  auto net = std::make_shared<QNet>(arch, config.data.normalization);
  const PhaseSchedule schedule(spec);
  const uint32_t total_epochs = schedule.total;

  TrainResult result;
  Checkpoint state;
  state.metric = metric_of(config.data);
  std::unique_ptr<torch::optim::AdamW> optimizer;
  bool load_optimizer = false;
  torch::serialize::InputArchive resume_archive;
  if (!options.restart &&
      resume_training(checkpoint_path, total_epochs, *net, state, resume_archive, ranks)) {
    result.resumed = true;
    load_optimizer = true;
    say(fmt::format("resuming from {} after epoch {}/{}", checkpoint_path, state.epochs_done,
                    total_epochs));
  }
  result.first_epoch = state.epochs_done;
  if (!result.resumed && initialize) initialize(*net);
  // The frozen float teacher of distillation (null: distillation off or not begun).
  std::shared_ptr<QNet> teacher;
  if (!state.teacher.empty()) teacher = make_teacher(config, state.teacher, checkpoint_path);

  data::BatchLoader::Options batches{spec.batch_size, true, true, spec.seed, 2};
  if (ranks) batches.rank = ranks->rank(), batches.world_size = ranks->size();
  data::BatchLoader loader(train_set, config.data.normalization, config.data.augmentation, batches);
  const size_t steps_per_epoch = checked_steps_per_epoch(
      loader, spec.max_steps_per_epoch, config.file, train_set.size(), spec.batch_size);
  say(
      fmt::format("train {}: {} layers, {} training and {} test images of {}, {} epochs ({} "
                  "warm-up, {} compress, {} fine-tune) of {} steps at batch {}{}",
                  arch.name, arch.layers.size(), train_set.size(), test_set.size(), train_set.name,
                  total_epochs, spec.warmup.epochs, spec.compress.epochs, spec.finetune.epochs,
                  steps_per_epoch, spec.batch_size,
                  several(ranks) ? fmt::format(", data-parallel on {} ranks ({})", ranks->size(),
                                               ranks->rendezvous().source)
                                 : std::string()));

  const Clock::time_point run_start = Clock::now();
  for (uint32_t epoch = state.epochs_done; epoch < total_epochs; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    const Phase phase = schedule.phase_of(epoch);
    const PhaseSpec& ps = schedule.spec_of(phase);
    const bool phase_start = epoch == schedule.first_epoch(phase);
    if (phase_start && phase != Phase::Warmup) {
      begin_phase(config, schedule, phase, epoch, checkpoint_path, *net, train_set, state, teacher,
                  ranks);
      if (phase == Phase::Compress && spec.has_budget()) {
        guard.plan_targets(*net, spec.ramp_fraction);
      }
    }
    if (!optimizer || phase_start) {
      optimizer = make_optimizer(*net, ps.learning_rate, spec.weight_decay);
      if (load_optimizer && !phase_start) {
        torch::serialize::InputArchive optimizer_archive;
        resume_archive.read("optimizer", optimizer_archive);
        optimizer->load(optimizer_archive);
      }
      load_optimizer = false;
    }

    const size_t phase_steps = size_t(ps.epochs) * steps_per_epoch;
    const size_t phase_step0 = size_t(epoch - schedule.first_epoch(phase)) * steps_per_epoch;
    const ForwardContext context{phase == Phase::Warmup ? Mode::Float : Mode::Quantized,
                                 phase == Phase::Compress, spec.activation_momentum, ranks};
    const StepTotals totals =
        run_epoch_steps({spec, *net, *optimizer, teacher.get(), loader, guard, phase, ps, context,
                         steps_per_epoch, phase_step0, phase_steps, epoch, total_epochs, log,
                         config.data.normalization, state.metric, train_set});

    check_same_on_ranks(ranks, state_tensors(*net), "network after the epoch's steps");
    const bool masks_at_target =
        totals.steps > 0
            ? masks_at_target_after(spec, phase, phase_step0 + totals.steps - 1, phase_steps)
            : phase == Phase::Finetune;
    bool best_so_far = false;
    EpochRecord record = record_epoch(config, data, npu, *net, guard, state, epoch, phase, totals,
                                      masks_at_target, best_so_far, ranks);
    record.step_milliseconds = totals.step_milliseconds;
    record.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    state.history.push_back(record);
    state.epochs_done = epoch + 1;
    state.target_sparsity.clear();
    for (const auto& layer : net->weighted())
      state.target_sparsity.push_back(layer->target_sparsity());
    if (primary) {
      save_checkpoint(checkpoint_path, *net, *optimizer, state);
      // Kept apart from the rolling checkpoint: a run resumed from it (copied to
      // checkpoint.pt of another output folder) tries another compress or fine-tune schedule
      // without repeating the float warm-up, which is most of a long fine-tune's time.
      if (epoch + 1 == schedule.warmup_end && total_epochs > schedule.warmup_end)
        save_checkpoint(warmup_checkpoint_path, *net, *optimizer, state);
    }
    const double run_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
    const double eta =
        run_seconds / double(epoch + 1 - result.first_epoch) * double(total_epochs - epoch - 1);
    say(epoch_line(record, state.metric, total_epochs, best_so_far, phase != Phase::Warmup && npu,
                   totals.step_milliseconds, eta));
  }
  if (spec.compress.epochs == 0 && spec.finetune.epochs == 0) {
    // Post-training quantisation only.
    prepare_quantization(*net, train_set, config.data.normalization, spec.batch_size, spec.seed,
                         ranks);
    for (const auto& layer : net->weighted()) layer->update_mask(layer->target_sparsity());
    if (spec.has_budget()) guard.hold(*net);
    guard.report();
  }

  result.holdout_images = holdout.size();
  if (state.best_epoch >= 0) {
    result.selected_epoch = state.best_epoch;
    const EpochRecord& best = state.history.at(size_t(state.best_epoch));
    if (size_t(state.best_epoch) + 1 < state.history.size()) {
      restore_snapshot(*net, state.best, checkpoint_path);
    }
    say(fmt::format(
        "exporting epoch {}: held-out {} on {} training images kept "
        "out of training (the last epoch: {})",
        state.best_epoch + 1, format_score(state.metric, best.holdout_score), holdout.size(),
        format_score(state.metric, state.history.back().holdout_score)));
  }

  result.history = state.history;
  // Every rank exports and verifies (the same network, so the same result everywhere, and
  // no rank idles at a barrier through it); rank 0 writes.
  const Exported exported = export_and_verify(config, npu, *net, data, result);
  const nlohmann::json report = train_report_json(config, data, exported, result);
  write_trained_model(options, exported, report, npu, result, say, primary);
  if (ranks) ranks->barrier("rank 0 writing " + result.model_path);
  return result;
}

}  // namespace udc::search
