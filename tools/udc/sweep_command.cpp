#include "sweep_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "cli.hpp"
#include "model_commands.hpp"
#include "mpi_world.hpp"
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
  std::string shard;               ///< "I/N": measure part I of N only
  std::string shard_out;           ///< where that part's results go
  std::vector<std::string> merge;  ///< shard files to merge instead of measuring
};

/// The CSV, the plot and the Pareto front of a grid whose every point is measured.
void write_sweep(const SweepFlags& f, const fm::SweepSpace& space,
                 const std::vector<fm::SweepPoint>& points, const std::string& model_name) {
  common::write_file_atomically(f.csv, fm::sweep_csv(space, points));
  common::write_file_atomically(f.plot, fm::sweep_svg(space, points, model_name));
  fmt::print("Pareto front (hardware size, ms):");
  for (const fm::SweepPoint& p : points) {
    if (p.pareto)
      fmt::print(" [{}: {:g}, {:.3f}]", fmt::join(p.values, " "), p.size, p.milliseconds);
  }
  fmt::print("\nwrote {} and {}\n", f.csv, f.plot);
}

/// `udc sweep`: the grid of firmware_model/sweep.hpp over the model, with progress per
/// configuration; the CSV and the plot are written whole at the end. Split over machines:
/// `--shard I/N --shard-out FILE` measures part I, `--merge FILES` writes the CSV and plot
/// of the parts; under mpirun each rank measures its part and rank 0 writes.
void run_sweep(const SweepFlags& f) {
  const fm::Model model = load_model(f.model);
  const fm::SweepSpace space = fm::read_sweep_space(f.space);
  // The command line's --npu replaces the sweep file's base; --set applies on top.
  const common::ConfigSource base = common::ConfigSource{space.base_files, {}}.overridden_by(f.npu);
  std::vector<fm::SweepPoint> points = fm::sweep_grid(space, npu_sim::load_npu_config(base));
  if (!f.merge.empty()) {
    std::vector<std::pair<std::string, std::string>> shards;
    for (const std::string& file : f.merge) {
      const std::vector<uint8_t> bytes = common::read_file(file);
      shards.emplace_back(file, std::string(bytes.begin(), bytes.end()));
    }
    fm::merge_sweep_shards(model, points, shards);
    fmt::print("merged {} shards: {} configurations of {}\n", shards.size(), points.size(),
               model.name);
    write_sweep(f, space, points, model.name);
    return;
  }
  const std::optional<MpiPlace> mpi = mpi_place_from_environment();
  if (mpi && !f.shard.empty()) {
    throw std::invalid_argument("--shard: under mpirun every rank measures its own part");
  }
  fm::SweepShard shard;
  if (mpi) shard = {mpi->rank, mpi->size};
  if (!f.shard.empty()) shard = fm::parse_sweep_shard(f.shard);
  if (!f.shard.empty() && f.shard_out.empty()) {
    throw std::invalid_argument("--shard needs --shard-out FILE for the part's results");
  }
  const std::vector<size_t> which = fm::shard_points(points.size(), shard);
  const unsigned jobs = f.jobs ? f.jobs : std::max(1u, std::thread::hardware_concurrency());
  const std::string part = shard.count > 1 ? fmt::format(" (part {} of {}: {})", shard.index,
                                                         shard.count, mpi ? "MPI rank" : "shard")
                                           : std::string();
  fmt::print("sweeping {} of {} configurations of {}{} with {} processes\n", which.size(),
             points.size(), model.name, part, jobs);
  fm::measure_points(
      model, space, points, which, jobs,
      [](size_t done, size_t total, const fm::SweepPoint& p, double eta_seconds) {
        fmt::print(
            "[{}/{}] {}: {} (ETA {:.0f} s)\n", done, total, fmt::join(p.values, " "),
            p.fits ? fmt::format("{:.0f} cycles, {:.3f} ms", p.cycles, p.milliseconds) : p.note,
            eta_seconds);
      });
  if (mpi) {
    // Rank 0 merges every rank's part as it would merge shard files.
    const std::vector<std::string> parts =
        gather_on_rank0(fm::sweep_shard_text(model, points, which, shard));
    if (mpi->rank != 0) return;
    std::vector<std::pair<std::string, std::string>> shards;
    for (size_t r = 0; r < parts.size(); ++r) {
      shards.emplace_back(fmt::format("MPI rank {}", r), parts[r]);
    }
    fm::merge_sweep_shards(model, points, shards);
    write_sweep(f, space, points, model.name);
    return;
  }
  if (!f.shard.empty()) {
    common::write_file_atomically(f.shard_out, fm::sweep_shard_text(model, points, which, shard));
    fmt::print("wrote {} (merge the parts with --merge)\n", f.shard_out);
    return;
  }
  fm::mark_pareto_front(points);
  write_sweep(f, space, points, model.name);
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
  s->add_option("--shard", flags->shard,
                "I/N: measure only part I (from 0) of N, for a sweep split over machines "
                "(e.g. a cluster job array); needs --shard-out. Under mpirun each rank takes "
                "its own part and rank 0 writes the CSV and plot");
  s->add_option("--shard-out", flags->shard_out, "file for --shard's results");
  s->add_option("--merge", flags->merge,
                "shard files (--shard-out) to merge into the CSV and plot, instead of "
                "measuring: the same as one process measuring the whole grid")
      ->expected(1, -1);
  s->callback([flags] { run_sweep(*flags); });
}

}  // namespace udc::tool
