#include "eval_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include "cli.hpp"
#include "model_commands.hpp"
#include "udc/data/batch_loader.hpp"
#include "udc/data/dataset.hpp"
#include "udc/data/super_resolution.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/upscale.hpp"

namespace udc::tool {

namespace fm = firmware_model;

namespace {

/// The model, the data set (a name of data::dataset_registry(), its folder, split and
/// the first `limit` images), and where it runs (interpreter or simulator, on `npu`).
struct EvalArgs {
  std::string model, set = "fashion-mnist", dir, split = "test", on = "interpreter";
  size_t limit = 0;     ///< first N images; 0: all
  uint32_t side = 32;   ///< image-folder: images resized to side x side [pixels]
  int32_t margin = -1;  ///< super-resolution: tile overlap [input pixels]; -1: the model's
                        ///< receptive radius
  common::ConfigSource npu;
};

/// Index of the largest logit; ties go to the first (as the trainer's argmax).
size_t top1(const std::vector<int8_t>& logits) {
  return size_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

/// Where a model runs: the reference interpreter, or the simulated NPU with the model
/// compiled once (cycles summed over the runs).
struct Runner {
  Runner(const fm::Model& model, const EvalArgs& args)
      : model_(model), on_npu_(args.on == "simulator") {
    if (!on_npu_) return;
    config_ = npu_sim::load_npu_config(args.npu);
    fm::CompileResult result = fm::compile(model, config_);
    if (!result.fits()) {
      throw std::runtime_error(
          fmt::format("{}: does not fit: {}", args.model, result.does_not_fit->reason));
    }
    compiled_ = std::make_unique<fm::CompiledModel>(std::move(result.compiled));
  }
  /// The model's first output for one input.
  std::vector<int8_t> operator()(const std::vector<int8_t>& input) {
    ++runs;
    if (!on_npu_) return fm::run_reference(model_, {input})[size_t(model_.outputs[0])];
    fm::NpuRun run = fm::run_on_npu(model_, *compiled_, config_, {input});
    if (!run.job.error.empty()) throw std::runtime_error("simulation failed: " + run.job.error);
    cycles += run.job.total_cycles;
    return std::move(run.outputs.at(0));
  }
  bool on_npu() const { return on_npu_; }

  size_t runs = 0;
  double cycles = 0;  ///< NPU cycles of all runs

 private:
  const fm::Model& model_;
  bool on_npu_;
  npu_sim::NpuConfig config_;
  std::unique_ptr<fm::CompiledModel> compiled_;
};

/// PSNR of a super-resolution model on a super-resolution set's luminance photographs,
/// beside bicubic upscaling of the same inputs; the whole image through tiles of the
/// model's input size (firmware_model::upscale_image).
void run_super_resolution_eval(const EvalArgs& args, const fm::Model& model,
                               const data::SuperResolutionKind& kind) {
  const fm::UpscalerShape shape = fm::upscaler_shape(model);
  const std::string dir = args.dir.empty() ? std::string(kind.default_dir) : args.dir;
  if (dir.empty()) {
    throw std::runtime_error(
        fmt::format("data set '{}' has no default folder: name its --dir", kind.name));
  }
  data::SuperResolutionSet set =
      kind.load(dir, args.split == "train" ? data::Split::Train : data::Split::Test, shape.scale);
  const size_t count = args.limit == 0 ? set.high.size() : std::min(args.limit, set.high.size());
  const uint32_t radius = fm::receptive_radius(model);
  const uint32_t margin = args.margin >= 0 ? uint32_t(args.margin) : radius;
  fmt::print("eval {} on {}: {} (x{}), {} photographs, tiles of {}x{} with a margin of {}\n",
             args.model, args.on, set.name, shape.scale, count, shape.height, shape.width, margin);
  if (margin < radius) {
    fmt::print(
        "note: the margin is below the model's receptive radius ({}): tile edges differ "
        "from a whole-image run\n",
        radius);
  }
  Runner runner(model, args);
  const auto start = std::chrono::steady_clock::now();
  double model_sum = 0, bicubic_sum = 0;
  for (size_t i = 0; i < count; ++i) {
    const data::Image& low = set.low[i];
    const data::Image& high = set.high[i];
    data::Image up{high.height, high.width, 1,
                   fm::upscale_image(model, low.pixels.data(), low.height, low.width, margin,
                                     [&](const fm::TensorValues& tile) { return runner(tile); })};
    const double model_db = data::psnr(high, up, shape.scale);
    const double bicubic_db =
        data::psnr(high, data::resize_bicubic(low, high.height, high.width), shape.scale);
    model_sum += model_db;
    bicubic_sum += bicubic_db;
    fmt::print("  {:<24} {}x{}: {:6.2f} dB (bicubic {:6.2f} dB)\n",
               std::filesystem::path(set.files[i]).filename().string(), high.width, high.height,
               model_db, bicubic_db);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double n = double(std::max<size_t>(count, 1));
  fmt::print(
      "PSNR (luminance, {}-pixel border left out) {:.2f} dB, bicubic {:.2f} dB, "
      "over {} photographs in {:.1f} s",
      shape.scale, model_sum / n, bicubic_sum / n, count, seconds);
  if (runner.on_npu() && runner.runs > 0) {
    fmt::print("; {} tiles, {:.0f} NPU cycles per tile", runner.runs,
               runner.cycles / double(runner.runs));
  }
  fmt::print("\n");
}

/// Top-1 accuracy of an integer model on a data set, on the reference interpreter or the
/// simulator (the model compiled once for the NPU); the model's input and output must
/// match the images and classes, checked before any image runs.
void run_eval(const EvalArgs& args) {
  const fm::Model model = load_model(args.model);
  if (const data::SuperResolutionKind* kind = data::find_super_resolution_kind(args.set)) {
    run_super_resolution_eval(args, model, *kind);
    return;
  }
  const data::Split split = args.split == "train" ? data::Split::Train : data::Split::Test;
  data::ImageDataset set = data::load_dataset(
      {args.set, args.dir, args.side, model.tensors[size_t(model.inputs.at(0))].shape[2]}, split);
  set.truncate(args.limit);
  const fm::TensorInfo& input = model.tensors[size_t(model.inputs.at(0))];
  if (input.shape != fm::Shape{set.height, set.width, set.channels}) {
    throw std::runtime_error(fmt::format("{}: input {} is {}x{}x{}, but {} images are {}x{}x{}",
                                         args.model, input.name, input.shape[0], input.shape[1],
                                         input.shape[2], set.name, set.height, set.width,
                                         set.channels));
  }
  const fm::TensorInfo& output = model.tensors[size_t(model.outputs.at(0))];
  if (output.elements() != set.classes) {
    throw std::runtime_error(fmt::format("{}: output {} has {} values, but {} has {} classes",
                                         args.model, output.name, output.elements(), set.name,
                                         set.classes));
  }
  Runner runner(model, args);
  fmt::print("eval {} on {} ({} images of {})\n", args.model, args.on, set.size(), set.name);
  const auto start = std::chrono::steady_clock::now();
  size_t correct = 0;
  std::vector<size_t> class_total(set.classes, 0), class_correct(set.classes, 0);
  const size_t report_every = std::max<size_t>(1, set.size() / 10);
  for (size_t i = 0; i < set.size(); ++i) {
    std::vector<int8_t> pixels(set.image_bytes());
    const uint8_t* image = set.image(i);
    for (size_t k = 0; k < pixels.size(); ++k) pixels[k] = data::quantize_pixel(image[k]);
    const std::vector<int8_t> logits = runner(pixels);
    const size_t label = set.labels[i];
    ++class_total[label];
    if (top1(logits) == label) {
      ++correct;
      ++class_correct[label];
    }
    if ((i + 1) % report_every == 0 && i + 1 < set.size()) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print("  {}/{} images, top-1 {:.2f}%, ETA {:.0f} s\n", i + 1, set.size(),
                 100.0 * double(correct) / double(i + 1),
                 elapsed / double(i + 1) * double(set.size() - i - 1));
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (uint32_t c = 0; c < set.classes && set.classes <= 20; ++c) {
    if (class_total[c] == 0) continue;
    fmt::print("  class {:>2} {:<14} {:6.2f}% of {}\n", c,
               c < set.class_names.size() ? set.class_names[c] : "",
               100.0 * double(class_correct[c]) / double(class_total[c]), class_total[c]);
  }
  fmt::print("top-1 accuracy {:.2f}% ({} of {}) in {:.1f} s",
             set.size() ? 100.0 * double(correct) / double(set.size()) : 0.0, correct, set.size(),
             seconds);
  if (runner.on_npu() && set.size() > 0) {
    fmt::print("; {:.0f} NPU cycles per inference", runner.cycles / double(set.size()));
  }
  fmt::print("\n");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Top-1 accuracy (classification) or PSNR (super-resolution) of an integer model on a "
      "data set, on the interpreter or the simulator");
  cmd->add_option("model", args->model, "integer model (.udcm or .tflite)")->required();
  std::vector<std::string> sets = data::dataset_names();
  for (const std::string& name : data::super_resolution_names()) sets.push_back(name);
  cmd->add_option("--data", args->set,
                  "data set (sr-photos, div2k: PSNR of a super-resolution model)")
      ->check(CLI::IsMember(sets))
      ->capture_default_str();
  cmd->add_option(
      "--dir", args->dir,
      fmt::format("data directory (default for fashion-mnist: {})", data::kFashionMnistDir));
  cmd->add_option("--split", args->split, "split")
      ->check(CLI::IsMember({"test", "train"}))
      ->capture_default_str();
  cmd->add_option("--limit", args->limit, "first N images only (0: all)");
  cmd->add_option("--side", args->side, "image-folder: square side images are resized to")
      ->capture_default_str();
  cmd->add_option("--margin", args->margin,
                  "super-resolution: input pixels each tile overlaps its neighbours by (default: "
                  "the model's receptive radius)");
  cmd->add_option("--on", args->on, "where to run the model")
      ->check(CLI::IsMember({"interpreter", "simulator"}))
      ->capture_default_str();
  add_npu_options(cmd, args->npu);
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace udc::tool
