#include "model_commands.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <random>
#include <stdexcept>

#include "cli.hpp"
#include "udc/common/file_io.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/tflite_export.hpp"
#include "udc/firmware_model/tflite_import.hpp"

namespace udc::tool {
namespace {

namespace fm = udc::firmware_model;

/// --weights, --block-depth, --weight-buffer, --stripe-rows: fm::CompileOptions as typed.
struct CompileFlags {
  std::string weights = "auto";      ///< auto | stream | prefetch
  uint32_t block_depth = 0;          ///< output channels per block; 0: the compiler's choice
  uint64_t weight_buffer_bytes = 0;  ///< each prefetch buffer [bytes]; 0: the largest layer's need
  uint32_t stripe_rows = 0;          ///< output rows per stripe; 0: the compiler's choice
};

/// The compiler options `compile`, `run` and `verify` share (weight placement, output
/// block depth, weight buffer, stripes), so that the three commands lay a model out the
/// same way.
void add_compile_flags(CLI::App* command, CompileFlags& flags) {
  command
      ->add_option("--weights", flags.weights,
                   "how weights reach the decoders: auto, stream (read in place) or prefetch "
                   "(DMA into two SRAM buffers ahead of use)")
      ->check(CLI::IsMember({"auto", "stream", "prefetch"}));
  command->add_option("--block-depth", flags.block_depth,
                      "output channels per weight block (0: chosen per layer)");
  command->add_option("--weight-buffer", flags.weight_buffer_bytes,
                      "bytes of each prefetch buffer (0: as large as the largest layer needs)");
  command->add_option("--stripe-rows", flags.stripe_rows,
                      "output rows per stripe of windowed layers (0: where it saves cycles)");
}

fm::CompileOptions compile_options(const CompileFlags& flags) {
  fm::CompileOptions options;
  options.weights = flags.weights == "stream"     ? fm::WeightPlacement::Stream
                    : flags.weights == "prefetch" ? fm::WeightPlacement::Prefetch
                                                  : fm::WeightPlacement::Auto;
  options.ofm_block_depth = flags.block_depth;
  options.weight_buffer_bytes = flags.weight_buffer_bytes;
  options.stripe_rows = flags.stripe_rows;
  return options;
}

/// Compiles or throws "does not fit" with the reason, naming the model and the NPU.
fm::CompiledModel compile_or_fail(const std::string& path, const fm::Model& model,
                                  const npu_sim::NpuConfig& config,
                                  const fm::CompileOptions& options) {
  fm::CompileResult result = fm::compile(model, config, options);
  if (!result.fits()) {
    throw std::runtime_error(fmt::format("{}: does not fit {} + {}: {}: {}", path, config.npu_name,
                                         config.system_name, result.does_not_fit->resource,
                                         result.does_not_fit->reason));
  }
  return std::move(result.compiled);
}

/// Reproducible pseudo-random inputs (seeded), one per model input.
std::vector<fm::TensorValues> random_inputs(const fm::Model& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<fm::TensorValues> inputs;
  for (int32_t t : model.inputs) {
    fm::TensorValues v(model.tensors[size_t(t)].elements());
    for (int8_t& x : v) x = int8_t(int(rng() % 256) - 128);
    inputs.push_back(std::move(v));
  }
  return inputs;
}

/// A raw int8 NHWC file for a single-input model.
std::vector<fm::TensorValues> read_input(const std::string& path, const fm::Model& model) {
  if (model.inputs.size() != 1) {
    throw std::runtime_error(path + ": --input needs a model with one input, this one has " +
                             std::to_string(model.inputs.size()));
  }
  const std::vector<uint8_t> bytes = common::read_file(path);
  const fm::TensorInfo& info = model.tensors[size_t(model.inputs[0])];
  if (bytes.size() != info.elements()) {
    throw std::runtime_error(fmt::format(
        "{}: {} bytes, but input {} is {}x{}x{} = {} int8 values (raw NHWC expected)", path,
        bytes.size(), info.name, info.shape[0], info.shape[1], info.shape[2], info.elements()));
  }
  return {fm::TensorValues(bytes.begin(), bytes.end())};
}

// --- udc model ---

/// `udc model FILE`, or `udc model --generate KIND -o FILE` with the generator's shape,
/// weight bits and sparsity.
struct ModelFlags {
  std::string path;      ///< .udcm or .tflite to summarise
  std::string generate;  ///< generator name (mobilenet, espcn, random); empty: summarise `path`
  std::string output;    ///< where the generated model goes
  uint32_t side = 96, bits = 8, seed = 1, classes = 10;  ///< input side [pixels], weight bits
  double sparsity = 0.0;  ///< fraction of generated weights that are zero
};

/// `udc model`: a summary of a .udcm or .tflite file, or a generated model written to -o.
void run_model(const ModelFlags& f) {
  if (!f.generate.empty()) {
    if (f.output.empty()) throw std::runtime_error("model --generate needs -o FILE.udcm");
    fm::Model model;
    if (f.generate == "espcn") {
      fm::EspcnOptions options;
      options.input_side = f.side;
      options.weight_bits = f.bits;
      options.sparsity = f.sparsity;
      options.seed = f.seed;
      model = fm::espcn_like(options);
    } else if (f.generate == "mobilenet") {
      fm::MobileNetOptions options;
      options.input_side = f.side;
      options.weight_bits = f.bits;
      options.sparsity = f.sparsity;
      options.seed = f.seed;
      options.classes = f.classes;
      model = fm::mobilenet_like(options);
    } else {
      std::mt19937 rng(f.seed);
      model = fm::random_model(rng);
    }
    fm::write_model(model, f.output);
    fmt::print("wrote {}\n", f.output);
    fmt::print("{}", fm::format_summary(model, fm::summarize(model)));
    return;
  }
  if (f.path.empty()) throw std::runtime_error("model: a model file or --generate is required");
  const fm::Model model = load_model(f.path);
  fmt::print("{}", fm::format_summary(model, fm::summarize(model)));
}

// --- udc import, udc export ---

/// `udc import IN -o OUT.udcm` and `udc export IN -o OUT.tflite`: IN is either format.
struct ConvertFlags {
  std::string input, output;
};

/// `udc import`: a .tflite file as a .udcm model, with its summary and CPU operators.
void run_import(const ConvertFlags& f) {
  const fm::Model model = load_model(f.input);
  fm::write_model(model, f.output);
  fmt::print("wrote {}\n{}", f.output, fm::format_summary(model, fm::summarize(model)));
}

/// `udc export`: a model as a .tflite file for Vela and TFLite Micro.
void run_export(const ConvertFlags& f) {
  const fm::Model model = load_model(f.input);
  std::vector<std::string> notes;
  fm::write_tflite(model, f.output, &notes);
  for (const std::string& note : notes) fmt::print("note: {}\n", note);
  fmt::print("wrote {} ({} operators, int8; compile with: vela {})\n", f.output,
             model.operations.size(), f.output);
}

// --- udc compile ---

struct CompileCommandFlags {
  std::string model;
  common::ConfigSource npu;
  CompileFlags compile;
  std::string output;  ///< command stream JSON for `udc sim`; empty: plan only
  std::string input;   ///< raw int8 input placed in the stream; empty: random, seeded
};

/// `udc compile`: the memory plan, and the command stream for `udc sim` with -o.
void run_compile(const CompileCommandFlags& f) {
  const fm::Model model = load_model(f.model);
  const npu_sim::NpuConfig config = npu_sim::load_npu_config(f.npu);
  const fm::CompiledModel compiled =
      compile_or_fail(f.model, model, config, compile_options(f.compile));
  fmt::print("{} for {} + {}\n", model.name, config.npu_name, config.system_name);
  fmt::print("{}", fm::format_memory_plan(model, compiled));
  fmt::print("{} commands\n", compiled.stream.commands.size());
  if (!f.output.empty()) {
    const std::vector<fm::TensorValues> inputs =
        f.input.empty() ? random_inputs(model, 0) : read_input(f.input, model);
    npu_sim::write_command_stream(fm::stream_with_inputs(model, compiled, inputs), f.output);
    fmt::print("wrote {} (weights and {} input in its images)\n", f.output,
               f.input.empty() ? "a seeded random" : "the given");
  }
}

// --- udc run ---

struct RunFlags {
  std::string model;
  common::ConfigSource npu;
  CompileFlags compile;
  /// Raw int8 input (empty: random, seeded), Perfetto trace, JSON report and the folder
  /// for the outputs (NAME.bin); empty: not written.
  std::string input, trace, json, output;
  bool timing_only = false;  ///< skip the arithmetic: same cycles, no outputs
};

/// `udc run`: compile, simulate on the given or random inputs, print the per-layer
/// report; the JSON report, trace and outputs are written only after the run succeeded.
void run_run(const RunFlags& f) {
  const fm::Model model = load_model(f.model);
  const npu_sim::NpuConfig config = npu_sim::load_npu_config(f.npu);
  const fm::CompiledModel compiled =
      compile_or_fail(f.model, model, config, compile_options(f.compile));
  const std::vector<fm::TensorValues> inputs =
      f.input.empty() ? random_inputs(model, 0) : read_input(f.input, model);
  npu_sim::RunOptions options;
  options.trace = !f.trace.empty();
  options.timing_only = f.timing_only;
  const fm::NpuRun run = fm::run_on_npu(model, compiled, config, inputs, options);
  fmt::print("{}", fm::format_layer_report(model, compiled, config, run));
  if (!f.json.empty()) {
    common::write_file_atomically(f.json,
                                  fm::layer_report_json(model, compiled, config, run) + "\n");
  }
  if (!f.trace.empty()) common::write_file_atomically(f.trace, npu_sim::to_chrome_trace(run.job));
  if (!f.output.empty() && !f.timing_only) {
    std::filesystem::create_directories(f.output);
    for (size_t i = 0; i < run.outputs.size(); ++i) {
      const std::string path =
          (std::filesystem::path(f.output) / (compiled.stream.outputs[i].name + ".bin")).string();
      common::write_file_atomically(path, reinterpret_cast<const uint8_t*>(run.outputs[i].data()),
                                    run.outputs[i].size());
    }
  }
}

// --- udc verify ---

struct VerifyFlags {
  std::string model;
  common::ConfigSource npu;
  CompileFlags compile;
  uint32_t inputs = 3;  ///< random inputs to compare on, when no --data
  std::string data;     ///< folder of raw int8 inputs, each compared
  uint32_t seed = 0;    ///< of the first random input (then seed + 1, ...)
};

/// `udc verify`: interpreter against simulator on every input (firmware_model::
/// verify_on_npu); the first difference stops it with layer and position.
void run_verify(const VerifyFlags& f) {
  const fm::Model model = load_model(f.model);
  const npu_sim::NpuConfig config = npu_sim::load_npu_config(f.npu);
  fm::CompileOptions options = compile_options(f.compile);
  const fm::CompiledModel compiled = compile_or_fail(f.model, model, config, options);
  std::vector<std::vector<fm::TensorValues>> cases;
  std::vector<std::string> names;
  if (!f.data.empty()) {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(f.data)) {
      if (entry.is_regular_file()) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw std::runtime_error(f.data + ": no input files (raw int8 NHWC)");
    for (const std::string& file : files) {
      cases.push_back(read_input(file, model));
      names.push_back(file);
    }
  } else {
    for (uint32_t i = 0; i < f.inputs; ++i) {
      cases.push_back(random_inputs(model, f.seed + i));
      names.push_back(fmt::format("random input {} (seed {})", i, f.seed + i));
    }
  }
  uint64_t compared = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const fm::Verification verification =
        fm::verify_on_npu(model, compiled, config, cases[i], options);
    if (!verification.difference.empty()) {
      throw std::runtime_error(
          fmt::format("{}: MISMATCH on {}: {}", f.model, names[i], verification.difference));
    }
    const fm::NpuRun& run = verification.run;
    for (const fm::TensorValues& v : run.outputs) compared += v.size();
    fmt::print("{}: {} equal ({:.0f} cycles)\n", names[i],
               run.outputs.size() == 1 ? "output" : "outputs", run.job.total_cycles);
  }
  fmt::print("verified {} on {} + {}: {} inputs, {} output bytes, all equal to the reference\n",
             f.model, config.npu_name, config.system_name, cases.size(), compared);
}

}  // namespace

fm::Model load_model(const std::string& path) {
  fm::ImportedModel loaded = fm::load_model_file(path);
  fmt::print("{}", fm::format_cpu_operators(loaded.cpu_operators));
  for (const std::string& note : loaded.notes) fmt::print("note: {}\n", note);
  return std::move(loaded.model);
}

void add_model_commands(CLI::App& app) {
  auto model = std::make_shared<ModelFlags>();
  CLI::App* m =
      app.add_subcommand("model", "Print a model's summary (.udcm or .tflite), or generate one");
  m->add_option("model", model->path, "model file (.udcm or .tflite)");
  m->add_option("--generate", model->generate,
                "generate a model: mobilenet, espcn (x2 super-resolution) or random")
      ->check(CLI::IsMember({"mobilenet", "espcn", "random"}));
  m->add_option("-o,--output", model->output, "where --generate writes the model");
  m->add_option("--side", model->side, "mobilenet, espcn: input height and width [pixels]")
      ->check(CLI::Range(8u, 1024u));
  m->add_option("--bits", model->bits, "mobilenet, espcn: weight bits of all layers but the first")
      ->check(CLI::Range(2u, 8u));
  m->add_option("--sparsity", model->sparsity, "mobilenet, espcn: fraction of zero weights")
      ->check(CLI::Range(0.0, 0.99));
  m->add_option("--classes", model->classes, "mobilenet: classifier outputs")
      ->check(CLI::Range(1u, 10000u));
  m->add_option("--seed", model->seed, "random seed of the weights (or of the random model)");
  m->callback([model] { run_model(*model); });

  auto import = std::make_shared<ConvertFlags>();
  CLI::App* im = app.add_subcommand(
      "import", "Convert a TFLite int8 model (.tflite) to a .udcm model, reporting CPU operators");
  im->add_option("model", import->input, ".tflite (or .udcm) model file")->required();
  im->add_option("-o,--output", import->output, "the .udcm file to write")->required();
  im->callback([import] { run_import(*import); });

  auto exported = std::make_shared<ConvertFlags>();
  CLI::App* ex = app.add_subcommand(
      "export", "Write a model as a TFLite int8 file (.tflite) for Vela and TFLite Micro");
  ex->add_option("model", exported->input, ".udcm (or .tflite) model file")->required();
  ex->add_option("-o,--output", exported->output, "the .tflite file to write")->required();
  ex->callback([exported] { run_export(*exported); });

  auto compile = std::make_shared<CompileCommandFlags>();
  CLI::App* c = app.add_subcommand(
      "compile", "Lower a model to a command stream for an NPU and print the memory plan");
  c->add_option("model", compile->model, "model file (.udcm or .tflite)")->required();
  add_npu_options(c, compile->npu);
  add_compile_flags(c, compile->compile);
  c->add_option("-o,--output", compile->output,
                "write the command stream (JSON, for `udc sim`) with weights and an input");
  c->add_option("--input", compile->input, "raw int8 NHWC input placed in the stream");
  c->callback([compile] { run_compile(*compile); });

  auto run = std::make_shared<RunFlags>();
  CLI::App* r = app.add_subcommand(
      "run", "Compile and run a model on the simulated NPU; print the per-layer report");
  r->add_option("model", run->model, "model file (.udcm or .tflite)")->required();
  add_npu_options(r, run->npu);
  add_compile_flags(r, run->compile);
  r->add_option("--input", run->input, "raw int8 NHWC input (default: seeded random)");
  r->add_option("--trace", run->trace, "write a Chrome trace-event timeline (Perfetto)");
  r->add_option("--json", run->json, "write the per-layer report as JSON");
  r->add_option("--outputs", run->output, "write the model outputs to DIR/NAME.bin");
  r->add_flag("--timing-only", run->timing_only, "skip the arithmetic (same cycles, faster)");
  r->callback([run] { run_run(*run); });

  auto verify = std::make_shared<VerifyFlags>();
  CLI::App* v = app.add_subcommand(
      "verify",
      "Run reference interpreter and simulated NPU on the same inputs; fail on the "
      "first differing byte, naming layer and position");
  v->add_option("model", verify->model, "model file (.udcm or .tflite)")->required();
  add_npu_options(v, verify->npu);
  add_compile_flags(v, verify->compile);
  v->add_option("--inputs", verify->inputs, "number of seeded random inputs")
      ->check(CLI::Range(1u, 100000u));
  v->add_option("--data", verify->data, "folder of raw int8 NHWC input files instead")
      ->check(CLI::ExistingDirectory);
  v->add_option("--seed", verify->seed, "seed of the first random input");
  v->callback([verify] { run_verify(*verify); });
}

}  // namespace udc::tool
