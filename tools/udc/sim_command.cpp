#include "sim_command.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "cli.hpp"
#include "udc/common/file_io.hpp"
#include "udc/npu_sim/area.hpp"
#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::tool {
namespace {

struct SimOptions {
  std::string stream;  ///< command stream JSON (COMMANDS.md)
  common::ConfigSource npu;
  bool list_params = false;  ///< print the NPU parameters and exit
  bool timing_only = false;  ///< skip the arithmetic: same cycles, no outputs
  /// JSON report, Perfetto trace and the folder for the output regions; empty: not written.
  std::string json_path, trace_path, outputs_dir;
};

void write_text(const std::string& path, const std::string& text) {
  common::write_file_atomically(path, text);
}

/// `udc sim`: a command stream on the configured NPU, its report, and on request a JSON
/// report, a Perfetto trace and the output regions.
void run_sim(const SimOptions& options) {
  const npu_sim::NpuConfig config = npu_sim::load_npu_config(options.npu);
  if (options.list_params) {
    fmt::print("{}", npu_sim::npu_params_listing(config));
    const npu_sim::AreaModel area_model;
    fmt::print("\n{}", npu_sim::area_params_listing(area_model));
    const npu_sim::AreaBreakdown area = npu_sim::area_of(config, area_model);
    fmt::print(
        "area of this configuration: {:.4f} mm^2 = NPU {:.4f} (MACs {:.4f}, shared buffer {:.4f}, "
        "decoders {:.4f}, fixed {:.4f}) + SRAM {:.4f}\n",
        area.total(), area.npu(), area.macs, area.shared_buffer, area.decoders, area.fixed,
        area.sram);
    return;
  }
  if (options.stream.empty()) throw std::runtime_error("sim: a command stream file is required");
  const npu_sim::CommandStream stream = npu_sim::read_command_stream(options.stream);
  npu_sim::RunOptions run_options;
  run_options.timing_only = options.timing_only;
  run_options.trace = !options.trace_path.empty();
  const npu_sim::JobReport report = npu_sim::Simulator::instance().run(stream, config, run_options);
  fmt::print("{} on {} + {}\n", options.stream, config.npu_name, config.system_name);
  fmt::print("{}", npu_sim::format_table(report));
  if (!options.json_path.empty()) write_text(options.json_path, npu_sim::to_json(report) + "\n");
  if (!options.trace_path.empty()) write_text(options.trace_path, npu_sim::to_chrome_trace(report));
  if (!options.outputs_dir.empty() && report.error.empty()) {
    std::filesystem::create_directories(options.outputs_dir);
    for (size_t i = 0; i < stream.outputs.size() && i < report.outputs.size(); ++i) {
      const std::string path =
          (std::filesystem::path(options.outputs_dir) / (stream.outputs[i].name + ".bin")).string();
      common::write_file_atomically(path, report.outputs[i].data(), report.outputs[i].size());
    }
  }
  if (!report.error.empty()) throw std::runtime_error(options.stream + ": " + report.error);
}

}  // namespace

void add_sim_command(CLI::App& app) {
  auto options = std::make_shared<SimOptions>();
  CLI::App* sim = app.add_subcommand("sim", "Run a command stream on the simulated NPU");
  sim->add_option("stream", options->stream, "command stream (JSON, see npu_sim/COMMANDS.md)");
  add_npu_options(sim, options->npu);
  sim->add_flag("--list-params", options->list_params,
                "print every parameter with its value, unit, range and help, then exit");
  sim->add_flag("--timing-only", options->timing_only, "skip the arithmetic (fast cost query)");
  sim->add_option("--json", options->json_path, "write the report as JSON");
  sim->add_option("--trace", options->trace_path, "write a Chrome trace-event timeline (Perfetto)");
  sim->add_option("--outputs", options->outputs_dir, "write the stream's outputs to DIR/NAME.bin");
  sim->callback([options] { run_sim(*options); });
}

}  // namespace udc::tool
