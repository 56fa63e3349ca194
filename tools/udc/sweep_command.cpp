#include "sweep_command.hpp"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <thread>

#include "npu_options.hpp"
#include "udc/common/file_io.hpp"
#include "udc/common/svg_plot.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_io.hpp"

namespace udc::tool {
namespace {

namespace fm = udc::firmware_model;

struct SweepFlags {
  std::string model, space, csv = "sweep.csv", plot = "sweep.svg";
  common::ConfigSource npu;
  unsigned jobs = 0;
};

/// A sweep file: base configuration files, the grid and the hardware-size weights.
struct SweepSpace {
  std::vector<std::string> base_files;
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  ///< key, values
  std::vector<std::pair<std::string, double>> size_weights;            ///< key, weight
  std::string weights = "auto";
};

[[noreturn]] void fail_at(const std::string& path, const YAML::Node& node,
                          const std::string& what) {
  throw std::runtime_error(fmt::format("{}:{}: {}", path, node.Mark().line + 1, what));
}

SweepSpace read_space(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::runtime_error(path + ": cannot open sweep file");
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(
        fmt::format("{}:{}: malformed YAML: {}", path, e.mark.line + 1, e.msg));
  }
  if (!root.IsMap()) throw std::runtime_error(path + ": expected a map with parameters:");
  SweepSpace space;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::map<std::string, const npu_sim::ParamInfo*> known;
  for (const npu_sim::ParamInfo& p : npu_sim::npu_params()) known[p.key] = &p;
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (key == "npu") {
      const YAML::Node list =
          value.IsSequence() ? value : YAML::Node(std::vector<YAML::Node>{value});
      for (const YAML::Node& file : list) {
        if (!file.IsScalar()) fail_at(path, file, "npu: expected a file path or a list of them");
        space.base_files.push_back((dir / file.as<std::string>()).string());
      }
    } else if (key == "parameters") {
      if (!value.IsMap() || value.size() == 0) {
        fail_at(path, value, "parameters: expected a map of PARAMETER: [values...]");
      }
      for (const auto& axis : value) {
        const std::string name = axis.first.as<std::string>();
        if (!known.count(name)) {
          fail_at(path, axis.first,
                  "parameters: unknown NPU parameter '" + name + "' (see `udc sim --list-params`)");
        }
        if (!axis.second.IsSequence() || axis.second.size() == 0) {
          fail_at(path, axis.second, "parameters." + name + ": expected a non-empty list");
        }
        std::vector<std::string> values;
        for (const YAML::Node& v : axis.second) {
          if (!v.IsScalar()) fail_at(path, v, "parameters." + name + ": expected scalar values");
          values.push_back(v.as<std::string>());
        }
        space.axes.emplace_back(name, values);
      }
    } else if (key == "hardware_size") {
      if (!value.IsMap())
        fail_at(path, value, "hardware_size: expected a map of PARAMETER: weight");
      for (const auto& term : value) {
        const std::string name = term.first.as<std::string>();
        if (!known.count(name) || known[name]->kind == npu_sim::ParamKind::Text) {
          fail_at(path, term.first, "hardware_size: '" + name + "' is not a numeric NPU parameter");
        }
        try {
          space.size_weights.emplace_back(name, term.second.as<double>());
        } catch (const YAML::Exception&) {
          fail_at(path, term.second, "hardware_size." + name + ": expected a number");
        }
      }
    } else if (key == "weights") {
      space.weights = value.as<std::string>();
      if (space.weights != "auto" && space.weights != "stream" && space.weights != "prefetch") {
        fail_at(path, value, "weights: expected auto, stream or prefetch");
      }
    } else {
      fail_at(path, entry.first,
              "unknown key '" + key + "' (expected npu, parameters, hardware_size, weights)");
    }
  }
  if (space.axes.empty()) throw std::runtime_error(path + ": parameters: missing");
  return space;
}

/// One evaluated point of the grid.
struct Point {
  std::vector<std::string> values;  ///< per axis
  double size = 0;
  bool fits = false;
  double cycles = 0, milliseconds = 0, utilisation = 0;
  uint64_t sram_bytes = 0, weight_bytes = 0, flash_bytes = 0;
  std::string note;  ///< why it does not fit, or the error
  bool pareto = false;
};

/// Runs in the child process: compile and a timing run. Never throws.
std::string evaluate(const fm::Model& model, const npu_sim::NpuConfig& config,
                     const fm::CompileOptions& options) {
  try {
    fm::MeasureOptions measure;
    measure.compile = options;
    const fm::ModelMeasurement m = fm::measure_model(model, config, measure);
    if (!m.fits()) return "nofit\t" + m.does_not_fit->reason;
    return fmt::format("ok\t{}\t{}\t{}\t{}\t{}\t{}", m.cycles, m.milliseconds, m.mac_utilisation,
                       m.sram_bytes, m.weight_bytes, m.flash_bytes);
  } catch (const std::exception& e) {
    return std::string("error\t") + e.what();
  }
}

void parse_result(const std::string& line, Point& p) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
    fields.push_back(line.substr(start, tab - start));
  }
  fields.push_back(line.substr(start));
  if (fields[0] == "ok" && fields.size() == 7) {
    p.fits = true;
    p.cycles = std::stod(fields[1]);
    p.milliseconds = std::stod(fields[2]);
    p.utilisation = std::stod(fields[3]);
    p.sram_bytes = std::stoull(fields[4]);
    p.weight_bytes = std::stoull(fields[5]);
    p.flash_bytes = std::stoull(fields[6]);
  } else {
    p.note = fields.size() > 1 ? fields[1] : "worker process failed";
    if (fields[0] == "error") p.note = "error: " + p.note;
  }
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void mark_pareto(std::vector<Point>& points) {
  for (Point& p : points) {
    if (!p.fits) continue;
    p.pareto = std::none_of(points.begin(), points.end(), [&](const Point& q) {
      return q.fits && q.size <= p.size && q.milliseconds <= p.milliseconds &&
             (q.size < p.size || q.milliseconds < p.milliseconds);
    });
  }
}

/// A scatter plot of latency against hardware size, the Pareto front joined.
std::string svg_plot(const std::vector<Point>& points, const std::string& title,
                     const std::string& size_label) {
  common::PlotSeries others{"other fitting configurations", "#999", 3, false, false, {}};
  common::PlotSeries front{"", "#d62728", 5, true, false, {}};
  for (const Point& p : points) {
    if (!p.fits) continue;
    (p.pareto ? front : others)
        .points.push_back(
            {p.size, p.milliseconds, fmt::format("{} ms, size {}", p.milliseconds, p.size)});
  }
  front.name = fmt::format("Pareto front ({} of {} fitting configurations)", front.points.size(),
                           front.points.size() + others.points.size());
  return common::svg_scatter_plot({title, size_label, "latency (ms)", {others, front}, true});
}

void run_sweep(const SweepFlags& f) {
  const fm::Model model = fm::read_model(f.model);
  const SweepSpace space = read_space(f.space);
  common::ConfigSource base = f.npu;
  if (base.files.empty()) base.files = space.base_files;
  const npu_sim::NpuConfig base_config = npu_sim::load_npu_config(base);
  fm::CompileOptions options;
  options.weights = space.weights == "stream"     ? fm::WeightPlacement::Stream
                    : space.weights == "prefetch" ? fm::WeightPlacement::Prefetch
                                                  : fm::WeightPlacement::Auto;
  // The grid, last axis fastest.
  std::vector<Point> points(1);
  for (const auto& [key, values] : space.axes) {
    std::vector<Point> next;
    for (const Point& p : points) {
      for (const std::string& v : values) {
        Point q = p;
        q.values.push_back(v);
        next.push_back(q);
      }
    }
    points = std::move(next);
  }
  std::vector<npu_sim::NpuConfig> configs;
  for (Point& p : points) {
    npu_sim::NpuConfig config = base_config;
    std::vector<std::string> overrides;
    for (size_t a = 0; a < space.axes.size(); ++a) {
      overrides.push_back(space.axes[a].first + "=" + p.values[a]);
    }
    npu_sim::apply_overrides(config, overrides, f.space);
    if (space.size_weights.empty()) {
      p.size = double(config.total_macs_per_cycle());
    } else {
      for (const auto& [key, weight] : space.size_weights) {
        p.size += weight * npu_sim::param_value(config, key);
      }
    }
    configs.push_back(config);
  }
  const unsigned jobs = f.jobs ? f.jobs : std::max(1u, std::thread::hardware_concurrency());
  fmt::print("sweeping {} configurations of {} with {} processes\n", points.size(), model.name,
             jobs);
  // One process per configuration: SystemC elaborates once per process, and a crash in
  // one configuration cannot take the sweep down.
  struct Worker {
    pid_t pid;
    int fd;
    size_t index;
  };
  std::vector<Worker> running;
  size_t next = 0, done = 0;
  const auto start = std::chrono::steady_clock::now();
  // Reads a finished worker's result line (already waited for, with `status`).
  auto record = [&](const Worker& w, int status) {
    std::string line;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(w.fd, buffer, sizeof buffer)) > 0) line.append(buffer, size_t(n));
    ::close(w.fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) line = "error\tworker process failed";
    parse_result(line, points[w.index]);
    ++done;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Point& p = points[w.index];
    fmt::print("[{}/{}] {}: {} (ETA {:.0f} s)\n", done, points.size(), fmt::join(p.values, " "),
               p.fits ? fmt::format("{:.0f} cycles, {:.3f} ms", p.cycles, p.milliseconds) : p.note,
               elapsed / double(done) * double(points.size() - done));
  };
  while (done < points.size()) {
    while (running.size() < jobs && next < points.size()) {
      int fds[2];
      if (::pipe(fds) != 0) throw std::runtime_error("sweep: cannot create a pipe");
      std::fflush(stdout);
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("sweep: cannot start a worker process");
      if (pid == 0) {
        ::close(fds[0]);
        const std::string result = evaluate(model, configs[next], options);
        const ssize_t written = ::write(fds[1], result.data(), result.size());
        ::_exit(written == ssize_t(result.size()) ? 0 : 1);
      }
      ::close(fds[1]);
      running.push_back({pid, fds[0], next++});
    }
    // Reap whichever worker finishes first.
    int status = 0;
    const pid_t finished = ::waitpid(-1, &status, WNOHANG);
    auto it = std::find_if(running.begin(), running.end(),
                           [&](const Worker& w) { return w.pid == finished; });
    if (finished <= 0 || it == running.end()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    const Worker w = *it;
    running.erase(it);
    record(w, status);
  }
  mark_pareto(points);

  std::string csv;
  for (const auto& [key, values] : space.axes) csv += key + ",";
  csv +=
      "hardware_size,fits,cycles,milliseconds,inferences_per_second,mac_utilisation,sram_bytes,"
      "weight_bytes,flash_bytes,pareto,note\n";
  for (const Point& p : points) {
    for (const std::string& v : p.values) csv += csv_field(v) + ",";
    csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", p.size, p.fits ? 1 : 0, p.cycles,
                       p.milliseconds, p.fits && p.milliseconds > 0 ? 1e3 / p.milliseconds : 0.0,
                       p.utilisation, p.sram_bytes, p.weight_bytes, p.flash_bytes, p.pareto ? 1 : 0,
                       csv_field(p.note));
  }
  common::write_file_atomically(f.csv, csv);
  std::string size_label = "hardware size: ";
  if (space.size_weights.empty()) {
    size_label += "MACs per cycle";
  } else {
    for (size_t i = 0; i < space.size_weights.size(); ++i) {
      size_label += fmt::format("{}{:g} x {}", i ? " + " : "", space.size_weights[i].second,
                                space.size_weights[i].first);
    }
  }
  common::write_file_atomically(
      f.plot,
      svg_plot(points, fmt::format("{}: latency vs hardware size", model.name), size_label));
  fmt::print("Pareto front (hardware size, ms):");
  for (const Point& p : points) {
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
  s->add_option("model", flags->model, ".udcm model file")->required();
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
