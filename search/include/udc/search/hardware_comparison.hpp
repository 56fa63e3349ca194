// The co-search against the sequential way (issue 27): the network searched alone on each
// of a list of hardware candidates (`udc search --hardware N` each), the best of those
// pairs kept, beside the co-search of network and hardware, every way over the same seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/npu_sim/config.hpp"
#include "udc/search/search.hpp"
#include "udc/search/seeds.hpp"

namespace udc::search {

/// One way's runs: the co-search, or the network alone on one candidate.
struct ComparedWay {
  std::optional<size_t> candidate;  ///< the hardware candidate; none for the co-search
  std::string hardware;             ///< its choices ("mac_array=... npu.weight_decoders=1")
  /// The runs compared, in <output>/<folder>/seed-N: those of the seeds every way has.
  SeedsResult seeds;
};

struct HardwareComparison {
  ComparedWay co_search;
  std::vector<ComparedWay> alone;  ///< in the order of the candidates asked for
  /// The sequential way's pick: the candidate whose network scored best on average. The
  /// search keeps no held-out images after its fine-tune, so this choice is made on the
  /// test score, which favours the sequential way (an upper bound of what it would pick).
  size_t best_alone = 0;
  std::vector<uint64_t> seeds;   ///< the seeds compared, ascending
  double co_search_seconds = 0;  ///< the co-search's wall time, summed over seeds [s]
  double alone_seconds = 0;      ///< every network-alone search's, summed [s]
  std::string json_path;         ///< <output>/comparison.json
  std::string csv_path;          ///< <output>/comparison.csv
};

/// Runs (or resumes) the co-search in <output>/co-search and the network alone on each of
/// `candidates` in <output>/hardware-N, over `seeds`, and writes comparison.json and
/// comparison.csv. Like for like: the ways are compared over the seeds that all of them
/// have, `seeds` and those earlier invocations finished into every folder; a seed that
/// only some folders hold stays in their seeds.json and out of the comparison. Throws ConfigError
/// when the config has fewer than two hardware candidates or a candidate is out of range (before
/// any training).
HardwareComparison compare_with_network_alone(const SearchConfig& config,
                                              const npu_sim::NpuConfig& npu,
                                              const SearchOptions& options,
                                              const std::vector<size_t>& candidates,
                                              const std::vector<uint64_t>& seeds);

/// The comparison as a table: each way's score, area, latency and wall time (mean ± std
/// over seeds), the sequential way's pick and the two ways' totals.
std::string format_comparison(const HardwareComparison& comparison);

}  // namespace udc::search
