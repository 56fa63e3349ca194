#include "calibrate_command.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <stdexcept>

#include "udc/common/file_io.hpp"
#include "udc/firmware_model/calibration.hpp"

namespace udc::tool {
namespace {

namespace fm = udc::firmware_model;

struct CalibrateFlags {
  std::string path;                        ///< Vela's figures (single layers or whole networks)
  std::string config_dir = "configs/npu";  ///< where the rows' NPU and system files are
  std::vector<std::string> overrides;      ///< --set, applied to every row's NPU
  std::string json_path;                   ///< --json output; empty: none
  std::string layer;                       ///< only this row; empty: all
  bool details = false;                    ///< blocks, traversal and the per-layer report per row
};

/// --json: every row (both sides' cycles, ratio and bounds) and the summaries.
std::string to_json(const std::vector<fm::CalibrationRow>& rows,
                    const std::vector<fm::CalibrationSummary>& summaries) {
  nlohmann::json root;
  for (const fm::CalibrationRow& r : rows) {
    nlohmann::json row = {{"layer", r.layer},
                          {"config", r.config},
                          {"vela_cycles", r.vela_cycles},
                          {"udc_cycles", r.udc_cycles},
                          {"compute_cycles", r.compute_cycles},
                          {"weight_wait_cycles", r.weight_wait_cycles},
                          {"input_wait_cycles", r.input_wait_cycles},
                          {"output_wait_cycles", r.output_wait_cycles},
                          {"bound", r.bound},
                          {"vela_bound", r.vela_bound}};
    if (!r.error.empty()) row["error"] = r.error;
    root["rows"].push_back(row);
  }
  for (const fm::CalibrationSummary& s : summaries) {
    root["summary"].push_back({{"config", s.config},
                               {"layers", s.layers},
                               {"geomean_deviation", s.geomean_deviation},
                               {"within_15_percent", s.within_15_percent},
                               {"worst_ratio", s.worst_ratio}});
  }
  return root.dump(1) + "\n";
}

/// Reads the calibration file (single layers or whole networks), runs each row on the
/// simulator and prints the comparison with Vela; the work is firmware_model/calibration.
void run_calibrate(const CalibrateFlags& f) {
  const fm::CalibrationSet set = fm::read_calibration_set(f.path);
  const std::vector<fm::CalibrationRow> rows =
      fm::run_calibration(set, f.config_dir, f.overrides, f.layer, f.details);
  const std::vector<fm::CalibrationSummary> summaries = fm::summarize_calibration(rows);
  fmt::print("{}", fm::format_calibration(rows, summaries));
  if (!f.json_path.empty()) common::write_file_atomically(f.json_path, to_json(rows, summaries));
  for (const fm::CalibrationRow& r : rows) {
    if (!r.error.empty()) {
      throw std::runtime_error(fmt::format("{}: {} on {}: {}", f.path, r.layer, r.config, r.error));
    }
  }
}

}  // namespace

void add_calibrate_command(CLI::App& app) {
  auto flags = std::make_shared<CalibrateFlags>();
  CLI::App* command = app.add_subcommand(
      "calibrate",
      "Compare the simulator's cycles with Vela's estimates on a calibration file: single "
      "layers (specs, results, NAME.weights.npy beside it) or whole networks (.udcm beside it)");
  command
      ->add_option("file", flags->path,
                   "calibration JSON, e.g. tests/data/calibration/vela/vela_perf.json or "
                   "tests/data/calibration/vela_wholenet/results.json")
      ->required()
      ->check(CLI::ExistingFile);
  command
      ->add_option("--configs", flags->config_dir,
                   "folder of NPU files with systems/ beneath (default: configs/npu)")
      ->check(CLI::ExistingDirectory);
  command->add_option("--set", flags->overrides,
                      "override a parameter on every configuration: KEY=VALUE (repeatable)");
  command->add_option("--json", flags->json_path, "also write the rows and summaries as JSON");
  command->add_option("--layer", flags->layer, "run only this layer's rows");
  command->add_flag("--details", flags->details,
                    "print each row's commands (output block, traversal, weight memory) and "
                    "udc's per-layer report");
  command->callback([flags] { run_calibrate(*flags); });
}

}  // namespace udc::tool
