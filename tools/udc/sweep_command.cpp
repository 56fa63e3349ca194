#include "sweep_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <thread>

#include "cli.hpp"
#include "model_commands.hpp"
#include "udc/common/file_io.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/sweep.hpp"

namespace udc::tool {
namespace {

namespace fm = udc::firmware_model;

struct SweepFlags {
  std::string model, space, csv = "sweep.csv", plot = "sweep.svg";
  common::ConfigSource npu;
  unsigned jobs = 0;
};

/// `udc sweep`: the grid of firmware_model/sweep.hpp over the model, with progress per
/// configuration; the CSV and the plot are written whole at the end.
void run_sweep(const SweepFlags& f) {
  const fm::Model model = load_model(f.model);
  const fm::SweepSpace space = fm::read_sweep_space(f.space);
  // The command line's --npu replaces the sweep file's base; --set applies on top.
  const common::ConfigSource base = common::ConfigSource{space.base_files, {}}.overridden_by(f.npu);
  std::vector<fm::SweepPoint> points = fm::sweep_grid(space, npu_sim::load_npu_config(base));
  const unsigned jobs = f.jobs ? f.jobs : std::max(1u, std::thread::hardware_concurrency());
  fmt::print("sweeping {} configurations of {} with {} processes\n", points.size(), model.name,
             jobs);
  fm::measure_sweep(
      model, space, points, jobs,
      [](size_t done, size_t total, const fm::SweepPoint& p, double eta_seconds) {
        fmt::print(
            "[{}/{}] {}: {} (ETA {:.0f} s)\n", done, total, fmt::join(p.values, " "),
            p.fits ? fmt::format("{:.0f} cycles, {:.3f} ms", p.cycles, p.milliseconds) : p.note,
            eta_seconds);
      });
  common::write_file_atomically(f.csv, fm::sweep_csv(space, points));
  common::write_file_atomically(f.plot, fm::sweep_svg(space, points, model.name));
  fmt::print("Pareto front (hardware size, ms):");
  for (const fm::SweepPoint& p : points) {
    if (p.pareto)
      fmt::print(" [{}: {:g}, {:.3f}]", fmt::join(p.values, " "), p.size, p.milliseconds);
  }
  fmt::print("\nwrote {} and {}\n", f.csv, f.plot);
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto flags = std::make_shared<SweepFlags>();
  CLI::App* s = app.add_subcommand(
      "sweep",
      "Evaluate a model over a grid of NPU parameters (in parallel processes); write a "
      "CSV and a plot of the latency / hardware-size Pareto front");
  s->add_option("model", flags->model, "model file (.udcm or .tflite)")->required();
  s->add_option("--space", flags->space, "sweep YAML (see configs/sweeps/)")
      ->required()
      ->check(CLI::ExistingFile);
  add_npu_options(s, flags->npu);
  s->add_option("--csv", flags->csv, "CSV output (default sweep.csv)");
  s->add_option("--plot", flags->plot, "SVG plot output (default sweep.svg)");
  s->add_option("-j,--jobs", flags->jobs, "parallel processes (default: one per core)");
  s->callback([flags] { run_sweep(*flags); });
}

}  // namespace udc::tool
