#include "udc/firmware_model/sweep.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "udc/common/params.hpp"
#include "udc/common/statistics.hpp"
#include "udc/common/svg_plot.hpp"
#include "udc/common/yaml_section.hpp"
#include "udc/firmware_model/measurement.hpp"

namespace udc::firmware_model {
namespace {

/// Runs in a worker process: compile and a timing-only run, as one result line. Never
/// throws: errors become the line.
std::string evaluate(const Model& model, const npu_sim::NpuConfig& config,
                     const CompileOptions& options) {
  try {
    MeasureOptions measure;
    measure.compile = options;
    const ModelMeasurement m = measure_model(model, config, measure);
    if (!m.fits()) return "nofit\t" + m.does_not_fit->reason;
    return fmt::format("ok\t{}\t{}\t{}\t{}\t{}\t{}", m.cycles, m.milliseconds, m.mac_utilisation,
                       m.sram_bytes, m.weight_bytes, m.flash_bytes);
  } catch (const std::exception& e) {
    return std::string("error\t") + e.what();
  }
}

/// The worker's result line into the point.
void parse_result(const std::string& line, SweepPoint& p) {
  p.measured = line;
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

/// FNV-1a over what defines the grid: the model, every point's axis values and its whole
/// configuration. Shards of one sweep agree on it; a shard of another grid, model or base
/// configuration does not.
uint64_t grid_fingerprint(const Model& model, const std::vector<SweepPoint>& points) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](const std::string& text) {
    for (unsigned char c : text) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  add(model.name);
  add(std::to_string(model.operations.size()));
  add(std::to_string(points.size()));
  for (const SweepPoint& p : points) {
    for (const std::string& v : p.values) add(v);
    add(npu_sim::config_fingerprint(p.config));
  }
  return h;
}

}  // namespace

void mark_pareto_front(std::vector<SweepPoint>& points) {
  std::vector<SweepPoint*> fitting;
  std::vector<std::vector<double>> costs;
  for (SweepPoint& p : points) {
    p.pareto = false;
    if (!p.fits) continue;
    fitting.push_back(&p);
    costs.push_back({p.size, p.milliseconds});
  }
  const std::vector<bool> front = common::pareto_front(costs);
  for (size_t i = 0; i < fitting.size(); ++i) fitting[i]->pareto = front[i];
}

SweepSpace read_sweep_space(const std::string& path) {
  common::YamlSection root(path, common::load_yaml_file(path), "");
  SweepSpace space;
  space.file = path;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (const std::string& file : root.strings("npu", {})) {
    space.base_files.push_back((dir / file).string());
  }
  common::YamlSection axes = root.section("parameters");
  space.grid = npu_sim::read_hardware_space(axes);
  if (space.grid.choices.empty()) {
    root.fail("parameters", "missing (required): a map of PARAMETER: [values...]");
  }
  common::YamlSection size = root.section("hardware_size");
  for (const std::string& key : size.keys()) {
    const common::Param<npu_sim::NpuConfig>* param = common::find_param(npu_sim::npu_params(), key);
    if (!param || !param->number) size.fail(key, "not a numeric NPU parameter");
    space.size_weights.emplace_back(key, size.number(key, 0, -1e12, 1e12));
  }
  size.finish();
  common::YamlSection area = root.section("area");
  space.area = npu_sim::read_area_model(area);
  const std::string placement = root.choice("weights", "auto", {"auto", "stream", "prefetch"});
  space.weights = placement == "stream"     ? WeightPlacement::Stream
                  : placement == "prefetch" ? WeightPlacement::Prefetch
                                            : WeightPlacement::Auto;
  root.finish();
  return space;
}

std::vector<SweepPoint> sweep_grid(const SweepSpace& space, const npu_sim::NpuConfig& base) {
  std::vector<SweepPoint> points(space.grid.size());
  for (size_t i = 0; i < points.size(); ++i) {
    SweepPoint& p = points[i];
    const std::vector<size_t> options = space.grid.options_of(i);
    for (size_t c = 0; c < options.size(); ++c) {
      p.values.push_back(space.grid.choices[c].options[options[c]].label);
    }
    p.config = space.grid.configure(base, i);
    p.area_mm2 = npu_sim::area_of(p.config, space.area).total();
    if (space.size_weights.empty()) {
      p.size = p.area_mm2;
    } else {
      for (const auto& [key, weight] : space.size_weights) {
        p.size += weight * npu_sim::param_value(p.config, key);
      }
    }
  }
  return points;
}

void measure_sweep(const Model& model, const SweepSpace& space, std::vector<SweepPoint>& points,
                   unsigned jobs, const SweepProgress& progress) {
  measure_points(model, space, points, shard_points(points.size(), {}), jobs, progress);
  mark_pareto_front(points);
}

void measure_points(const Model& model, const SweepSpace& space, std::vector<SweepPoint>& points,
                    const std::vector<size_t>& which, unsigned jobs,
                    const SweepProgress& progress) {
  if (jobs == 0) jobs = std::max(1u, std::thread::hardware_concurrency());
  CompileOptions options;
  options.weights = space.weights;
  struct Worker {
    pid_t pid;
    int fd;  ///< read end of the pipe the worker writes its result line to
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
    if (progress) {
      progress(done, which.size(), points[w.index],
               elapsed / double(done) * double(which.size() - done));
    }
  };
  while (done < which.size()) {
    while (running.size() < jobs && next < which.size()) {
      int fds[2];
      if (::pipe(fds) != 0) throw std::runtime_error("sweep: cannot create a pipe");
      std::fflush(stdout);  // a forked child must not repeat buffered output
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("sweep: cannot start a worker process");
      if (pid == 0) {
        ::close(fds[0]);
        const std::string result = evaluate(model, points[which[next]].config, options);
        const ssize_t written = ::write(fds[1], result.data(), result.size());
        ::_exit(written == ssize_t(result.size()) ? 0 : 1);
      }
      ::close(fds[1]);
      running.push_back({pid, fds[0], which[next++]});
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
}

SweepShard parse_sweep_shard(const std::string& text) {
  const size_t slash = text.find('/');
  SweepShard shard;
  try {
    size_t used_index = 0, used_count = 0;
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    const std::string index = text.substr(0, slash), count = text.substr(slash + 1);
    const unsigned long i = std::stoul(index, &used_index), n = std::stoul(count, &used_count);
    if (used_index != index.size() || used_count != count.size() || n == 0 || i >= n ||
        n > (1ul << 24)) {
      throw std::invalid_argument("out of range");
    }
    shard = {uint32_t(i), uint32_t(n)};
  } catch (const std::exception&) {
    throw std::invalid_argument("shard '" + text +
                                "': expected I/N with 0 <= I < N (part I of N, from 0)");
  }
  return shard;
}

std::vector<size_t> shard_points(size_t total, SweepShard shard) {
  std::vector<size_t> which;
  for (size_t i = shard.index; i < total; i += shard.count) which.push_back(i);
  return which;
}

namespace {
constexpr const char* kShardMagic = "udc-sweep-shard 1";
}  // namespace

std::string sweep_shard_text(const Model& model, const std::vector<SweepPoint>& points,
                             const std::vector<size_t>& which, SweepShard shard) {
  std::string text =
      fmt::format("{}\tgrid {:016x}\tpoints {}\tshard {}/{}\n", kShardMagic,
                  grid_fingerprint(model, points), points.size(), shard.index, shard.count);
  for (size_t i : which) {
    if (points.at(i).measured.empty()) {
      throw std::logic_error("sweep_shard_text: point " + std::to_string(i) + " not measured");
    }
    std::string line = points[i].measured;
    std::replace(line.begin(), line.end(), '\n', ' ');
    text += fmt::format("{}\t{}\n", i, line);
  }
  return text;
}

void merge_sweep_shards(const Model& model, std::vector<SweepPoint>& points,
                        const std::vector<std::pair<std::string, std::string>>& shards) {
  const std::string grid = fmt::format("{:016x}", grid_fingerprint(model, points));
  std::vector<std::string> from(points.size());
  for (const auto& [name, text] : shards) {
    size_t line_number = 0, start = 0;
    auto bad = [&](const std::string& what) {
      return std::runtime_error(fmt::format("{}: line {}: {}", name, line_number, what));
    };
    while (start < text.size()) {
      const size_t end = std::min(text.find('\n', start), text.size());
      const std::string line = text.substr(start, end - start);
      start = end + 1;
      ++line_number;
      if (line_number == 1) {
        if (line.rfind(kShardMagic, 0) != 0) {
          throw bad(
              fmt::format("not a sweep shard (expected a first line '{} ...', as `udc "
                          "sweep --shard I/N --shard-out FILE` writes)",
                          kShardMagic));
        }
        if (line.find("\tgrid " + grid + "\t") == std::string::npos ||
            line.find(fmt::format("\tpoints {}\t", points.size())) == std::string::npos) {
          throw bad(fmt::format(
              "a shard of another sweep (its grid, model or base configuration differ from this "
              "one's: {} points, grid {})",
              points.size(), grid));
        }
        continue;
      }
      if (line.empty()) continue;
      const size_t tab = line.find('\t');
      size_t used = 0;
      unsigned long index = 0;
      try {
        index = std::stoul(line.substr(0, tab), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (tab == std::string::npos || used != tab || index >= points.size()) {
        throw bad(
            fmt::format("expected a point index below {}, a tab and its result", points.size()));
      }
      if (!from[index].empty()) {
        throw bad(fmt::format("point {} again (already in {})", index, from[index]));
      }
      from[index] = name;
      parse_result(line.substr(tab + 1), points[index]);
    }
    if (line_number == 0) throw bad("empty (not a sweep shard)");
  }
  std::vector<size_t> missing;
  for (size_t i = 0; i < points.size(); ++i) {
    if (from[i].empty()) missing.push_back(i);
  }
  if (!missing.empty()) {
    constexpr size_t kNamed = 8;  ///< missing points named in the message
    const size_t missing_count = missing.size();
    missing.resize(std::min(missing_count, kNamed));
    throw std::runtime_error(fmt::format(
        "the shards hold {} of the sweep's {} points; missing: {}{} (a shard not given, or "
        "one that did not finish)",
        points.size() - missing_count, points.size(), fmt::join(missing, ", "),
        missing_count > kNamed ? ", ..." : ""));
  }
  mark_pareto_front(points);
}

std::string sweep_csv(const SweepSpace& space, const std::vector<SweepPoint>& points) {
  std::string csv;
  for (const npu_sim::HardwareChoice& axis : space.grid.choices) csv += csv_field(axis.name) + ",";
  csv +=
      "hardware_size,area_mm2,fits,cycles,milliseconds,inferences_per_second,mac_utilisation,sram_"
      "bytes,"
      "weight_bytes,flash_bytes,pareto,note\n";
  for (const SweepPoint& p : points) {
    for (const std::string& v : p.values) csv += csv_field(v) + ",";
    csv += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{}\n", p.size, p.area_mm2, p.fits ? 1 : 0, p.cycles,
        p.milliseconds, p.fits && p.milliseconds > 0 ? 1e3 / p.milliseconds : 0.0, p.utilisation,
        p.sram_bytes, p.weight_bytes, p.flash_bytes, p.pareto ? 1 : 0, csv_field(p.note));
  }
  return csv;
}

std::string sweep_svg(const SweepSpace& space, const std::vector<SweepPoint>& points,
                      const std::string& model_name) {
  std::string size_label = "hardware size: ";
  if (space.size_weights.empty()) {
    size_label = fmt::format("area [mm^2]: NPU and SRAM ({} area model)", space.area.technology);
  } else {
    for (size_t i = 0; i < space.size_weights.size(); ++i) {
      size_label += fmt::format("{}{:g} x {}", i ? " + " : "", space.size_weights[i].second,
                                space.size_weights[i].first);
    }
  }
  common::PlotSeries others{"other fitting configurations", "#999", 3, false, false, {}};
  common::PlotSeries front{"", "#d62728", 5, true, false, {}};
  for (const SweepPoint& p : points) {
    if (!p.fits) continue;
    (p.pareto ? front : others)
        .points.push_back(
            {p.size, p.milliseconds, fmt::format("{} ms, size {}", p.milliseconds, p.size)});
  }
  front.name = fmt::format("Pareto front ({} of {} fitting configurations)", front.points.size(),
                           front.points.size() + others.points.size());
  return common::svg_scatter_plot({fmt::format("{}: latency vs hardware size", model_name),
                                   size_label,
                                   "latency (ms)",
                                   {others, front},
                                   true});
}

}  // namespace udc::firmware_model
