// What runs over seeds measured, across configurations (`udc results`): each folder's
// seeds.json summarised as mean ± sample std of its score and its compressed weight bytes,
// the Pareto front of score against bytes over the folders, as a Markdown table, a CSV and
// an SVG plot with error bars. The README's tables of found models, controls and baselines
// are made from it, so that they carry every seed and never a hand-copied figure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "udc/common/statistics.hpp"
#include "udc/search/train_config.hpp"

namespace udc::search {

/// One configuration's runs over seeds.
struct ResultSummary {
  std::string name;         ///< the folder's last path component
  std::string folder;       ///< as given
  std::string config_file;  ///< the config the runs came from (seeds.json's "config")
  Metric metric = Metric::Top1;
  std::vector<uint64_t> seeds;  ///< in seed order
  std::vector<double> scores;   ///< each seed's test score [percent] or [dB], as `seeds`
  common::Spread score;         ///< over `scores` [percent] or [dB]
  common::Spread weight_bytes;  ///< compressed weight streams as compiled [B]; n = 0: none
  common::Spread flash_bytes;   ///< the flash image [B]
  common::Spread seconds;       ///< wall time a seed [s]
  size_t over_budget = 0;       ///< runs that ended over their budgets
  /// No other folder has a mean score at least as high with mean weight bytes no larger, and
  /// one of the two strictly better. False for a folder without weight bytes.
  bool pareto = false;
};

/// Reads FOLDER/seeds.json of each folder (or the file itself when a folder is a
/// seeds.json), in the order given. Throws naming the file when one is missing or corrupt,
/// and naming both folders when their scores are of different metrics (accuracy and PSNR
/// do not share a table).
std::vector<ResultSummary> summarise_results(const std::vector<std::string>& folders);

/// A Markdown table: folder, seeds, score mean ± std with each seed's score, weight streams,
/// flash image, wall time a seed, Pareto membership.
std::string results_markdown_table(const std::vector<ResultSummary>& results);

/// The same figures as CSV (one line a folder, means and standard deviations apart).
std::string results_csv(const std::vector<ResultSummary>& results);

/// Score against compressed weight bytes, a point a folder (its own colour and legend entry)
/// at its means with its standard deviations as error bars, the Pareto front joined in red.
/// Folders without weight bytes are left out.
std::string results_plot_svg(const std::vector<ResultSummary>& results, const std::string& title);

}  // namespace udc::search
