#include "udc/search/results_summary.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iterator>
#include <stdexcept>

#include "udc/common/svg_plot.hpp"
#include "udc/search/seeds.hpp"

namespace udc::search {

namespace {

namespace fs = std::filesystem;

const char* score_column(Metric metric) {
  return metric == Metric::Top1 ? "test accuracy [%]" : "PSNR [dB]";
}

/// Whether a folder has both figures of the front and the plot: a score and weight bytes.
bool on_both_axes(const ResultSummary& r) {
  return r.score.n > 0 && r.weight_bytes.n > 0;
}

std::string spread_or_dash(const common::Spread& s, int decimals) {
  return s.n ? common::format_spread(s, decimals) : "-";
}

}  // namespace

std::vector<ResultSummary> summarise_results(const std::vector<std::string>& folders) {
  std::vector<ResultSummary> results;
  for (const std::string& folder : folders) {
    const bool is_file = fs::path(folder).filename() == "seeds.json";
    const fs::path file = is_file ? fs::path(folder) : fs::path(folder) / "seeds.json";
    const SeedsResult seeds = read_seeds_summary(file.string());
    ResultSummary r;
    r.folder = folder;
    r.name = file.parent_path().filename().string();
    if (r.name.empty() || r.name == ".")
      r.name = fs::weakly_canonical(file).parent_path().filename().string();
    r.config_file = seeds.config_file;
    r.metric = seeds.metric;
    if (!results.empty() && results.front().metric != r.metric) {
      throw std::runtime_error(fmt::format(
          "{}: its scores are {} and those of {} are {}; summarise them apart", file.string(),
          score_unit(r.metric), results.front().folder, score_unit(results.front().metric)));
    }
    for (const SeedRun& run : seeds.runs) {
      r.seeds.push_back(run.seed);
      if (!run.within_budgets) ++r.over_budget;
    }
    // The figures as seeds.json's summary takes them, each over the runs that measured it.
    r.scores = figure_values(seeds, score_key(seeds.metric, "test"));
    r.score = common::spread_of(r.scores);
    r.weight_bytes = common::spread_of(figure_values(seeds, "weight_bytes"));
    r.flash_bytes = common::spread_of(figure_values(seeds, "flash_bytes"));
    r.seconds = common::spread_of(figure_values(seeds, "seconds"));
    results.push_back(std::move(r));
  }
  // The front among the folders with both figures: more score and fewer bytes are better.
  std::vector<size_t> measured;
  std::vector<std::vector<double>> costs;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!on_both_axes(results[i])) continue;
    measured.push_back(i);
    costs.push_back({-results[i].score.mean, results[i].weight_bytes.mean});
  }
  const std::vector<bool> front = common::pareto_front(costs);
  for (size_t k = 0; k < measured.size(); ++k) results[measured[k]].pareto = front[k];
  return results;
}

std::string results_markdown_table(const std::vector<ResultSummary>& results) {
  const Metric metric = results.empty() ? Metric::Top1 : results.front().metric;
  std::string text = fmt::format(
      "| folder | seeds | {} | per seed | weight streams [B] | flash image [B] | wall time a "
      "seed [min] | Pareto |\n|---|---|---|---|---|---|---|---|\n",
      score_column(metric));
  for (const ResultSummary& r : results) {
    std::string seeds, per_seed;
    for (size_t i = 0; i < r.seeds.size(); ++i) {
      seeds += fmt::format("{}{}", i ? ", " : "", r.seeds[i]);
      per_seed += fmt::format("{}{:.2f}", i ? ", " : "", r.scores[i]);
    }
    const common::Spread minutes{r.seconds.mean / 60, r.seconds.std / 60, r.seconds.n};
    text +=
        fmt::format("| `{}` | {} | {}{} | {} | {} | {} | {} | {} |\n", r.name, seeds,
                    spread_or_dash(r.score, 2),
                    r.over_budget ? fmt::format(" ({} over budget)", r.over_budget) : "", per_seed,
                    spread_or_dash(r.weight_bytes, 0), spread_or_dash(r.flash_bytes, 0),
                    spread_or_dash(minutes, 1), r.pareto ? "yes" : "");
  }
  return text;
}

std::string results_csv(const std::vector<ResultSummary>& results) {
  std::string text =
      "folder,config,metric,seeds,score_mean,score_std,weight_bytes_mean,weight_bytes_std,"
      "flash_bytes_mean,flash_bytes_std,seconds_mean,seconds_std,over_budget,pareto\n";
  auto number = [](const common::Spread& s, double v) {
    return s.n ? fmt::format("{:.6g}", v) : std::string();
  };
  for (const ResultSummary& r : results) {
    text += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", r.name, r.config_file,
                        score_unit(r.metric), r.seeds.size(), number(r.score, r.score.mean),
                        number(r.score, r.score.std), number(r.weight_bytes, r.weight_bytes.mean),
                        number(r.weight_bytes, r.weight_bytes.std),
                        number(r.flash_bytes, r.flash_bytes.mean),
                        number(r.flash_bytes, r.flash_bytes.std), number(r.seconds, r.seconds.mean),
                        number(r.seconds, r.seconds.std), r.over_budget, r.pareto ? 1 : 0);
  }
  return text;
}

std::string results_plot_svg(const std::vector<ResultSummary>& results, const std::string& title) {
  const Metric metric = results.empty() ? Metric::Top1 : results.front().metric;
  // A colour and a legend entry a folder: their points sit close together (runs to one
  // budget), where labels beside the points would overlap.
  static const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
                                         "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000"};
  common::PlotSpec spec{title, "compressed weight streams [B]", score_column(metric), {}, false};
  spec.legend_at_bottom = true;
  common::PlotSeries front{"Pareto front", "#d62728", 0, true, false, {}};
  size_t plotted = 0;
  for (const ResultSummary& r : results) {
    if (!on_both_axes(r)) continue;
    common::PlotPoint p{
        r.weight_bytes.mean, r.score.mean,
        fmt::format("{} ({} seeds): {} at {} B", r.name, r.seeds.size(),
                    common::format_spread(r.score, 2), common::format_spread(r.weight_bytes, 0)),
        r.weight_bytes.std, r.score.std};
    if (r.pareto) front.points.push_back(p);
    common::PlotSeries series{
        fmt::format("{} ({} seeds){}", r.name, r.seeds.size(), r.pareto ? ", on the front" : ""),
        kPalette[plotted++ % std::size(kPalette)],
        5,
        false,
        false,
        {p}};
    spec.series.push_back(std::move(series));
  }
  spec.series.insert(spec.series.begin(), std::move(front));
  return common::svg_scatter_plot(spec);
}

}  // namespace udc::search
