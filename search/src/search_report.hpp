// What the search writes besides the model: the chosen architecture as JSON (by name and
// by index, the latter read back on resume), the derived model as a `udc train` config, the
// evolution of every choice's probabilities as CSV, and the accuracy-against-size plot.
// Internal to the search (includes Torch through supernet.hpp).
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "supernet.hpp"
#include "udc/search/search.hpp"
#include "udc/search/train_config.hpp"

namespace udc::search {

/// Per block: operator, width and each layer's bits and sparsity, by value.
nlohmann::json choice_json(const Supernet& net, const ArchitectureChoice& choice);
/// The same by index into the space (derivation.json's "indices").
nlohmann::json choice_indices_json(const ArchitectureChoice& choice);
/// Reads choice_indices_json(); throws nlohmann::json errors on a malformed one (the caller
/// checks the indices against the space).
ArchitectureChoice choice_from_json(const nlohmann::json& j);

/// `udc train` configuration text of a derived architecture, so a user can train it again:
/// every key the trainer reads, with the values of `c`.
std::string train_config_yaml(const TrainConfig& c);

/// evolution.csv: one row per epoch, block, choice (op, width, per-layer bits and sparsity)
/// and option, with its probability; `evolution` as the search records it.
std::string evolution_csv(const SearchSpace& space, const nlohmann::json& evolution);

/// The found model against the baselines of config.baselines (a warning on `log` when they
/// cannot be read): test accuracy against encoded weight bytes.
std::string accuracy_plot_svg(const SearchConfig& config, const SearchResult& found,
                              std::ostream* log);

}  // namespace udc::search
