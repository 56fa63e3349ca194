#include "udc/search/hardware_comparison.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "udc/common/file_io.hpp"
#include "udc/common/statistics.hpp"
#include "udc/common/yaml_section.hpp"

namespace udc::search {
namespace {

namespace fs = std::filesystem;

/// One figure of every seed of a way, where measured.
common::Spread spread_over(const SeedsResult& seeds,
                           const std::function<std::optional<double>(const SeedRun&)>& value) {
  std::vector<double> values;
  for (const SeedRun& run : seeds.runs) {
    if (const std::optional<double> v = value(run)) values.push_back(*v);
  }
  return common::spread_of(values);
}

common::Spread score_of(const SeedsResult& seeds) {
  return spread_over(seeds, [&](const SeedRun& r) {
    return std::optional<double>(r.test_score * score_scale(r.metric));
  });
}

double total_seconds(const SeedsResult& seeds) {
  double seconds = 0;
  for (const SeedRun& run : seeds.runs) seconds += run.seconds;
  return seconds;
}

/// The figures of one way, as comparison.json and the table give them.
nlohmann::json way_json(const ComparedWay& way) {
  auto spread = [](const common::Spread& s) {
    return nlohmann::json{{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
  };
  nlohmann::json seeds = nlohmann::json::array();
  for (const SeedRun& run : way.seeds.runs) {
    nlohmann::json j{{"seed", run.seed},
                     {"output_dir", run.output_dir},
                     {"score", run.test_score * score_scale(run.metric)},
                     {"within_budgets", run.within_budgets},
                     {"seconds", run.seconds}};
    if (run.area_mm2 >= 0) j["area_mm2"] = run.area_mm2;
    if (!run.npu_file.empty()) j["npu_file"] = run.npu_file;
    if (run.hardware) {
      j["cycles"] = run.hardware->cycles;
      j["weight_bytes"] = run.hardware->weight_bytes;
    }
    if (const std::optional<double> ms = measured_milliseconds(run)) j["milliseconds"] = *ms;
    seeds.push_back(std::move(j));
  }
  nlohmann::json j{{"way", way.candidate ? "network alone" : "co-search"},
                   {"hardware", way.hardware},
                   {"score", spread(score_of(way.seeds))},
                   {"area_mm2", spread(spread_over(way.seeds,
                                                   [](const SeedRun& r) {
                                                     return r.area_mm2 < 0
                                                                ? std::nullopt
                                                                : std::optional<double>(r.area_mm2);
                                                   }))},
                   {"milliseconds", spread(spread_over(way.seeds, measured_milliseconds))},
                   {"seconds", total_seconds(way.seeds)},
                   {"runs", seeds}};
  if (way.candidate) j["candidate"] = *way.candidate;
  return j;
}

}  // namespace

HardwareComparison compare_with_network_alone(const SearchConfig& config,
                                              const npu_sim::NpuConfig& npu,
                                              const SearchOptions& options,
                                              const std::vector<size_t>& candidates,
                                              const std::vector<uint64_t>& seeds) {
  const size_t size = config.hardware.size();
  if (size < 2) {
    throw common::ConfigError(config.file +
                              ": a comparison with the network alone needs a hardware: space of "
                              "two or more candidates");
  }
  if (candidates.empty()) {
    throw common::ConfigError(config.file +
                              ": no hardware candidate to search the network alone on");
  }
  for (const size_t c : candidates) {
    if (c >= size) {
      throw common::ConfigError(fmt::format("{}: hardware candidate {} does not exist (0 to {})",
                                            config.file, c, size - 1));
    }
  }
  const fs::path out(options.output_dir);
  HardwareComparison comparison;
  SearchOptions way_options = options;
  for (const size_t c : candidates) {
    SearchConfig alone = config;
    alone.hardware = config.hardware.only(c);
    way_options.output_dir = (out / fmt::format("hardware-{}", c)).string();
    comparison.alone.push_back(
        {c, config.hardware.describe(c), search_seeds(alone, npu, way_options, seeds)});
  }
  way_options.output_dir = (out / "co-search").string();
  comparison.co_search = {std::nullopt, "every candidate",
                          search_seeds(config, npu, way_options, seeds)};

  // The seeds every way has: folders may hold more, finished by earlier invocations.
  std::vector<ComparedWay*> compared{&comparison.co_search};
  for (ComparedWay& way : comparison.alone) compared.push_back(&way);
  for (const SeedRun& run : comparison.co_search.seeds.runs) {
    const bool everywhere =
        std::all_of(compared.begin(), compared.end(), [&](const ComparedWay* way) {
          return std::any_of(way->seeds.runs.begin(), way->seeds.runs.end(),
                             [&](const SeedRun& r) { return r.seed == run.seed; });
        });
    if (everywhere) comparison.seeds.push_back(run.seed);
  }
  for (ComparedWay* way : compared) {
    std::vector<SeedRun>& runs = way->seeds.runs;
    runs.erase(std::remove_if(runs.begin(), runs.end(),
                              [&](const SeedRun& r) {
                                return std::find(comparison.seeds.begin(), comparison.seeds.end(),
                                                 r.seed) == comparison.seeds.end();
                              }),
               runs.end());
  }

  for (size_t k = 1; k < comparison.alone.size(); ++k) {
    if (score_of(comparison.alone[k].seeds).mean >
        score_of(comparison.alone[comparison.best_alone].seeds).mean) {
      comparison.best_alone = k;
    }
  }
  comparison.co_search_seconds = total_seconds(comparison.co_search.seeds);
  for (const ComparedWay& way : comparison.alone)
    comparison.alone_seconds += total_seconds(way.seeds);

  if (!options.ranks || options.ranks->primary()) {
    const ComparedWay& best = comparison.alone[comparison.best_alone];
    const common::Spread co = score_of(comparison.co_search.seeds);
    const common::Spread sequential = score_of(best.seeds);
    nlohmann::json ways = nlohmann::json::array({way_json(comparison.co_search)});
    for (const ComparedWay& way : comparison.alone) ways.push_back(way_json(way));
    const nlohmann::json root{
        {"config", config.file},
        {"seeds", comparison.seeds},
        {"score_unit", score_unit(comparison.co_search.seeds.metric)},
        {"ways", ways},
        {"sequential_pick",
         {{"candidate", *best.candidate},
          {"hardware", best.hardware},
          {"chosen_by",
           "mean test score (no held-out images after the fine-tune): favours "
           "the sequential way"}}},
        {"co_search_minus_sequential", co.mean - sequential.mean},
        {"co_search_seconds", comparison.co_search_seconds},
        {"sequential_seconds", comparison.alone_seconds}};
    comparison.json_path = (out / "comparison.json").string();
    common::write_file_atomically(comparison.json_path, root.dump(2) + "\n");
    std::string csv =
        "way,candidate,hardware,seed,score,area_mm2,milliseconds,weight_bytes,seconds\n";
    auto rows = [&](const ComparedWay& way) {
      for (const SeedRun& run : way.seeds.runs) {
        csv += fmt::format(
            "{},{},\"{}\",{},{},{},{},{},{}\n", way.candidate ? "network alone" : "co-search",
            way.candidate ? std::to_string(*way.candidate) : std::string(), way.hardware, run.seed,
            run.test_score * score_scale(run.metric),
            run.area_mm2 >= 0 ? fmt::format("{}", run.area_mm2) : std::string(),
            measured_milliseconds(run) ? fmt::format("{}", *measured_milliseconds(run))
                                       : std::string(),
            run.hardware ? std::to_string(run.hardware->weight_bytes) : std::string(), run.seconds);
      }
    };
    rows(comparison.co_search);
    for (const ComparedWay& way : comparison.alone) rows(way);
    comparison.csv_path = (out / "comparison.csv").string();
    common::write_file_atomically(comparison.csv_path, csv);
  }
  return comparison;
}

std::string format_comparison(const HardwareComparison& comparison) {
  const Metric metric = comparison.co_search.seeds.metric;
  const char* unit = metric == Metric::Top1 ? "%" : "dB";
  std::string text = fmt::format("{:<16} {:<58} {:>16} {:>16} {:>18} {:>8}\n", "way", "hardware",
                                 fmt::format("test {}", unit), "area mm^2", "latency ms", "min");
  auto row = [&](const ComparedWay& way, const std::string& mark) {
    const nlohmann::json j = way_json(way);
    auto cell = [&](const char* key, int decimals) {
      const nlohmann::json& s = j.at(key);
      if (s.at("n").get<size_t>() == 0) return std::string("-");
      return common::format_spread(
          {s.at("mean").get<double>(), s.at("std").get<double>(), s.at("n").get<size_t>()},
          decimals);
    };
    text += fmt::format("{:<16} {:<58} {:>16} {:>16} {:>18} {:>8.1f}\n",
                        way.candidate ? fmt::format("alone on {}{}", *way.candidate, mark)
                                      : std::string("co-search"),
                        way.hardware, cell("score", 2), cell("area_mm2", 4),
                        cell("milliseconds", 3), total_seconds(way.seeds) / 60);
  };
  row(comparison.co_search, "");
  for (size_t k = 0; k < comparison.alone.size(); ++k) {
    row(comparison.alone[k], k == comparison.best_alone ? " *" : "");
  }
  const double co = score_of(comparison.co_search.seeds).mean;
  const double sequential = score_of(comparison.alone[comparison.best_alone].seeds).mean;
  text += fmt::format(
      "* the sequential way's pick (best mean test score: favours it). Co-search {:+.2f} {} "
      "against it, in {:.1f} min against {:.1f} min for the network alone on every "
      "candidate.\n",
      co - sequential, unit, comparison.co_search_seconds / 60, comparison.alone_seconds / 60);
  return text;
}

}  // namespace udc::search
