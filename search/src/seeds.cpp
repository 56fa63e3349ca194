#include "udc/search/seeds.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "udc/common/file_io.hpp"
#include "udc/common/statistics.hpp"

namespace udc::search {

double score_scale(Metric metric) {
  return metric == Metric::Top1 ? 100 : 1;
}

const char* score_unit(Metric metric) {
  return metric == Metric::Top1 ? "percent" : "dB";
}

std::optional<double> measured_milliseconds(const SeedRun& run) {
  if (!run.hardware || run.hardware->milliseconds <= 0) return std::nullopt;
  return run.hardware->milliseconds;
}

namespace {

namespace fs = std::filesystem;

/// A figure of every run, as the summary lists it.
struct Figure {
  std::string name;
  double scale;  ///< applied for display and JSON (accuracy: percent)
  std::function<std::optional<double>(const SeedRun&)> value;  ///< none: not measured
  std::function<void(SeedRun&, double)> set;  ///< from an unscaled value (seeds.json / scale)
};

firmware_model::ModelMeasurement& hardware_of(SeedRun& r) {
  if (!r.hardware) r.hardware.emplace();
  return *r.hardware;
}

std::vector<Figure> figures(Metric metric) {
  return {
      {score_key(metric, "test"), score_scale(metric),
       [](const SeedRun& r) { return std::optional<double>(r.test_score); },
       [](SeedRun& r, double v) { r.test_score = v; }},
      {score_key(metric, "holdout"), score_scale(metric),
       [](const SeedRun& r) {
         return r.holdout_score < 0 ? std::nullopt : std::optional<double>(r.holdout_score);
       },
       [](SeedRun& r, double v) { r.holdout_score = v; }},
      {"weight_bytes", 1,
       [](const SeedRun& r) {
         return r.hardware ? std::optional<double>(double(r.hardware->weight_bytes)) : std::nullopt;
       },
       [](SeedRun& r, double v) { hardware_of(r).weight_bytes = uint64_t(v); }},
      {"flash_bytes", 1,
       [](const SeedRun& r) {
         return r.hardware ? std::optional<double>(double(r.hardware->flash_bytes)) : std::nullopt;
       },
       [](SeedRun& r, double v) { hardware_of(r).flash_bytes = uint64_t(v); }},
      {"sram_peak_bytes", 1,
       [](const SeedRun& r) {
         return r.hardware ? std::optional<double>(double(r.hardware->arena_bytes)) : std::nullopt;
       },
       [](SeedRun& r, double v) { hardware_of(r).arena_bytes = uint64_t(v); }},
      {"cycles", 1,
       [](const SeedRun& r) {
         return r.hardware ? std::optional<double>(r.hardware->cycles) : std::nullopt;
       },
       [](SeedRun& r, double v) { hardware_of(r).cycles = v; }},
      {"milliseconds", 1, measured_milliseconds,
       [](SeedRun& r, double v) { hardware_of(r).milliseconds = v; }},
      {"seconds", 1, [](const SeedRun& r) { return std::optional<double>(r.seconds); },
       [](SeedRun& r, double v) { r.seconds = v; }},
      {"area_mm2", 1,
       [](const SeedRun& r) {
         return r.area_mm2 < 0 ? std::nullopt : std::optional<double>(r.area_mm2);
       },
       [](SeedRun& r, double v) { r.area_mm2 = v; }},
  };
}

/// Each figure's values over the runs that measured it.
std::vector<double> values_of(const SeedsResult& result, const Figure& figure) {
  std::vector<double> values;
  for (const SeedRun& run : result.runs) {
    if (const std::optional<double> v = figure.value(run)) values.push_back(*v * figure.scale);
  }
  return values;
}

}  // namespace

std::vector<double> figure_values(const SeedsResult& result, const std::string& figure) {
  for (const Figure& f : figures(result.metric)) {
    if (f.name == figure) return values_of(result, f);
  }
  throw std::invalid_argument("figure_values: seeds.json has no figure \"" + figure + "\"");
}

SeedsResult read_seeds_summary(const std::string& path) {
  if (!fs::is_regular_file(path)) {
    throw std::runtime_error(
        fmt::format("{}: no such file (a seeds summary, written by --seeds)", path));
  }
  const std::vector<uint8_t> bytes = common::read_file(path);
  const nlohmann::json root = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  auto bad = [&](const std::string& what) {
    return std::runtime_error(fmt::format("{}: {}", path, what));
  };
  if (root.is_discarded() || !root.is_object() || !root.contains("runs") ||
      !root["runs"].is_array() || !root.contains("score_unit") || !root["score_unit"].is_string()) {
    throw bad("not a seeds summary (expected JSON with \"score_unit\" and \"runs\")");
  }
  if (root.contains("config") && !root["config"].is_string()) {
    throw bad("\"config\" is not a string");
  }
  SeedsResult result;
  result.summary_path = path;
  result.config_file = root.value("config", "");
  const std::string unit = root["score_unit"];
  if (unit == score_unit(Metric::Psnr)) {
    result.metric = Metric::Psnr;
  } else if (unit == score_unit(Metric::Top1)) {
    result.metric = Metric::Top1;
  } else {
    throw bad(fmt::format("\"score_unit\" is \"{}\" (expected \"{}\" or \"{}\")", unit,
                          score_unit(Metric::Top1), score_unit(Metric::Psnr)));
  }
  for (const nlohmann::json& j : root["runs"]) {
    if (!j.is_object() || !j.contains("seed") || !j["seed"].is_number_unsigned()) {
      throw bad("a run without a \"seed\"");
    }
    SeedRun r;
    r.seed = j["seed"].get<uint64_t>();
    r.metric = result.metric;
    r.output_dir = j.value("output_dir", "");
    r.within_budgets = j.value("within_budgets", true);
    r.npu_file = j.value("npu_file", "");
    for (const Figure& figure : figures(result.metric)) {
      if (!j.contains(figure.name)) continue;
      if (!j[figure.name].is_number())
        throw bad(fmt::format("seed {}: \"{}\" is not a number", r.seed, figure.name));
      figure.set(r, j[figure.name].get<double>() / figure.scale);
    }
    result.runs.push_back(std::move(r));
  }
  return result;
}

namespace {

/// The runs an earlier invocation recorded in `path` (seeds.json), so that seeds run in
/// several invocations into one folder are summarised together; none when there is no
/// such file. Throws naming the file when it is not a summary of `config_file`.
std::vector<SeedRun> read_earlier_runs(const std::string& path, const std::string& config_file) {
  if (!fs::exists(path)) return {};
  SeedsResult earlier;
  try {
    earlier = read_seeds_summary(path);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + "; remove it or choose another output folder");
  }
  std::error_code error;
  const bool same_config =
      earlier.config_file == config_file || (!earlier.config_file.empty() && !config_file.empty() &&
                                             fs::weakly_canonical(earlier.config_file, error) ==
                                                 fs::weakly_canonical(config_file, error));
  if (!same_config) {
    throw std::runtime_error(
        fmt::format("{}: summarises the seeds of {}, not of {}; remove it or choose another "
                    "output folder",
                    path, earlier.config_file, config_file));
  }
  return std::move(earlier.runs);
}

void write_summary(const std::string& config_file, SeedsResult& result,
                   const std::string& output_dir) {
  nlohmann::json runs = nlohmann::json::array();
  for (const SeedRun& run : result.runs) {
    nlohmann::json j{
        {"seed", run.seed}, {"output_dir", run.output_dir}, {"within_budgets", run.within_budgets}};
    if (!run.npu_file.empty()) j["npu_file"] = run.npu_file;
    for (const Figure& figure : figures(result.metric)) {
      if (const std::optional<double> v = figure.value(run)) j[figure.name] = *v * figure.scale;
    }
    runs.push_back(std::move(j));
  }
  nlohmann::json summary = nlohmann::json::object();
  for (const Figure& figure : figures(result.metric)) {
    const common::Spread s = common::spread_of(values_of(result, figure));
    if (s.n > 0) summary[figure.name] = {{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
  }
  result.summary_path = (fs::path(output_dir) / "seeds.json").string();
  result.config_file = config_file;
  const nlohmann::json root{{"config", config_file},
                            {"score_unit", score_unit(result.metric)},
                            {"runs", runs},
                            {"summary", summary}};
  common::write_file_atomically(result.summary_path, root.dump(2) + "\n");
}

/// Adds the runs `mine` (this invocation's) to seeds.json as it is now and writes it,
/// holding a lock on seeds.json.lock meanwhile: invocations that run other seeds into the
/// same folder at the same time (the shards of a grid on a shared disk) each add theirs,
/// none overwrites another's. result.runs becomes the merged runs, in seed order.
void merge_into_summary(const std::string& config_file, const std::vector<SeedRun>& mine,
                        SeedsResult& result, const std::string& output_dir) {
  fs::create_directories(output_dir);
  const std::string lock_path = (fs::path(output_dir) / "seeds.json.lock").string();
  const int lock = ::open(lock_path.c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
    if (lock >= 0) ::close(lock);
    throw std::runtime_error(lock_path + ": cannot lock (" + std::strerror(errno) + ")");
  }
  try {
    result.runs = mine;
    for (SeedRun& other :
         read_earlier_runs((fs::path(output_dir) / "seeds.json").string(), config_file)) {
      const bool ours = std::any_of(mine.begin(), mine.end(),
                                    [&](const SeedRun& r) { return r.seed == other.seed; });
      if (!ours) result.runs.push_back(std::move(other));
    }
    std::sort(result.runs.begin(), result.runs.end(),
              [](const SeedRun& a, const SeedRun& b) { return a.seed < b.seed; });
    write_summary(config_file, result, output_dir);
  } catch (...) {
    ::close(lock);  // releases the lock
    throw;
  }
  ::close(lock);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Seconds between two saves of a seed's wall time: a killed run loses at most this much.
constexpr auto kWallTimeSaveInterval = std::chrono::seconds(30);

/// The wall time one seed's run has taken over every invocation that worked on it, so that
/// a run stopped (killed, machine restarted) and resumed from its checkpoint counts both
/// parts, and running a finished seed again adds the moment it takes instead of replacing
/// the hours. Kept in <seed folder>/wall_seconds (a decimal number, seconds), which a
/// thread rewrites every kWallTimeSaveInterval while the run works and at the end.
class SeedWallTime {
 public:
  explicit SeedWallTime(const std::string& folder)
      : path_((fs::path(folder) / "wall_seconds").string()), earlier_(read_earlier(path_)) {
    fs::create_directories(folder);
    saver_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!cv_.wait_for(lock, kWallTimeSaveInterval, [this] { return stopped_; })) save();
    });
  }
  SeedWallTime(const SeedWallTime&) = delete;
  SeedWallTime& operator=(const SeedWallTime&) = delete;
  ~SeedWallTime() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
    saver_.join();
    try {
      save();
    } catch (...) {  // a destructor must not throw; the summary still has the figure
    }
  }

  /// Seconds of every invocation so far, this one included.
  double seconds() const { return earlier_ + seconds_since(start_); }

 private:
  /// 0 when there is no record yet (or an unreadable one: the figure is informative, and
  /// a damaged record must not stop a run of hours).
  static double read_earlier(const std::string& path) {
    if (!fs::exists(path)) return 0;
    const std::vector<uint8_t> bytes = common::read_file(path);
    try {
      const double seconds = std::stod(std::string(bytes.begin(), bytes.end()));
      return seconds >= 0 ? seconds : 0;
    } catch (const std::exception&) {
      return 0;
    }
  }
  void save() const { common::write_file_atomically(path_, fmt::format("{:.1f}\n", seconds())); }

  std::string path_;
  double earlier_;  ///< seconds of earlier invocations
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread saver_;
};

void say(std::ostream* log, const std::string& line) {
  if (log) *log << line << std::endl;
}

}  // namespace

namespace {

/// The loop both commands share: one run per seed in <output>/seed-<seed>, timed, then the
/// summary. `run(seed, folder)` runs one and fills its figures.
/// `ranks`: a data-parallel run's; rank 0 alone reads and writes the summary and logs.
SeedsResult run_seeds(const std::string& config_file, const std::string& output_dir,
                      std::ostream* log, const std::vector<uint64_t>& seeds, const Ranks* ranks,
                      const std::function<void(uint64_t, const std::string&, SeedRun&)>& run) {
  const bool primary = !ranks || ranks->primary();
  if (!primary) log = nullptr;
  SeedsResult result;
  std::vector<SeedRun> mine;  ///< the runs of this invocation
  // Seeds an earlier invocation finished into this folder stay in the summary; a seed run
  // again replaces its record. Read now so that a damaged summary stops the run before it
  // trains; merged again, under a lock, after every seed.
  for (SeedRun& earlier :
       primary ? read_earlier_runs((fs::path(output_dir) / "seeds.json").string(), config_file)
               : std::vector<SeedRun>{}) {
    if (std::find(seeds.begin(), seeds.end(), earlier.seed) == seeds.end()) {
      result.metric = earlier.metric;
      result.runs.push_back(std::move(earlier));
    }
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    SeedRun r;
    r.seed = seeds[i];
    r.output_dir = (fs::path(output_dir) / fmt::format("seed-{}", seeds[i])).string();
    say(log,
        fmt::format("=== seed {} ({} of {}): {}", seeds[i], i + 1, seeds.size(), r.output_dir));
    {
      const auto start = std::chrono::steady_clock::now();
      std::optional<SeedWallTime> wall_time;  // one writer of the record: the primary rank
      if (primary) wall_time.emplace(r.output_dir);
      run(seeds[i], r.output_dir, r);
      r.seconds = wall_time ? wall_time->seconds() : seconds_since(start);
    }
    result.metric = r.metric;
    mine.push_back(std::move(r));
    // After every seed, so that a run stopped later keeps the seeds it finished.
    if (primary) {
      merge_into_summary(config_file, mine, result, output_dir);
    } else {
      result.runs = mine;
    }
  }
  say(log, format_seeds_table(result));
  return result;
}

}  // namespace

SeedsResult train_seeds(const TrainConfig& config, const std::optional<npu_sim::NpuConfig>& npu,
                        const TrainOptions& options, const std::vector<uint64_t>& seeds) {
  return run_seeds(config.file, options.output_dir, options.log, seeds, options.ranks.get(),
                   [&](uint64_t seed, const std::string& folder, SeedRun& run) {
                     TrainConfig seeded = config;
                     seeded.train.seed = seed;
                     TrainOptions run_options = options;
                     run_options.output_dir = folder;
                     const TrainResult trained = train(seeded, npu, run_options);
                     run.metric = trained.metric;
                     run.test_score = trained.test_score;
                     const int64_t selected = trained.selected_epoch;
                     if (selected >= 0 && size_t(selected) < trained.history.size()) {
                       run.holdout_score = trained.history[size_t(selected)].holdout_score;
                     }
                     run.hardware = trained.hardware;
                     run.within_budgets = trained.within_budgets;
                   });
}

SeedsResult search_seeds(const SearchConfig& config, const npu_sim::NpuConfig& npu,
                         const SearchOptions& options, const std::vector<uint64_t>& seeds) {
  return run_seeds(config.file, options.output_dir, options.log, seeds, options.ranks.get(),
                   [&](uint64_t seed, const std::string& folder, SeedRun& run) {
                     SearchConfig seeded = config;
                     seeded.search.seed = seed;
                     seeded.finetune.seed = seed;
                     SearchOptions run_options = options;
                     run_options.output_dir = folder;
                     const SearchResult found = run_search(seeded, npu, run_options);
                     run.metric = found.metric;
                     run.test_score = found.test_score;
                     run.hardware = found.hardware;
                     run.within_budgets = found.within_budgets;
                     run.area_mm2 = found.area_mm2;
                     run.npu_file = found.npu_path;
                   });
}

std::string format_seeds_table(const SeedsResult& result) {
  const char* unit = result.metric == Metric::Top1 ? "%" : "dB";
  std::string text = fmt::format("{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>8} {:>7}\n",
                                 "seed", fmt::format("test {}", unit), fmt::format("held {}", unit),
                                 "weights", "flash", "SRAM", "cycles", "ms", "s", "mm^2");
  auto cell = [](const std::optional<double>& v, double scale, int decimals, int width) {
    return v ? fmt::format("{:>{}.{}f}", *v * scale, width, decimals)
             : fmt::format("{:>{}}", "-", width);
  };
  const std::vector<Figure> f = figures(result.metric);
  const int decimals[] = {2, 2, 0, 0, 0, 0, 3, 0, 4};
  const int widths[] = {9, 9, 9, 9, 9, 10, 7, 8, 7};
  static_assert(std::size(decimals) == std::size(widths));
  if (f.size() != std::size(widths))
    throw std::logic_error("format_seeds_table: a figure without a column");
  for (const SeedRun& run : result.runs) {
    std::string row = fmt::format("{:<8}", run.seed);
    for (size_t k = 0; k < f.size(); ++k) {
      row += " " + cell(f[k].value(run), f[k].scale, decimals[k], widths[k]);
    }
    text += row + (run.within_budgets ? "" : "  over budget") + "\n";
  }
  std::string mean = fmt::format("{:<8}", "mean"), spread = fmt::format("{:<8}", "± std");
  for (size_t k = 0; k < f.size(); ++k) {
    const common::Spread s = common::spread_of(values_of(result, f[k]));
    mean += " " + (s.n ? fmt::format("{:>{}.{}f}", s.mean, widths[k], decimals[k])
                       : fmt::format("{:>{}}", "-", widths[k]));
    spread += " " + (s.n ? fmt::format("{:>{}.{}f}", s.std, widths[k], decimals[k])
                         : fmt::format("{:>{}}", "-", widths[k]));
  }
  return text + mean + "\n" + spread + "\n";
}

}  // namespace udc::search
