#include "derivation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace udc::search {

namespace {

/// Candidate repairs of a choice: one step cheaper in one layer (sparser, fewer bits) or,
/// unless `shapes_fixed`, in one block (narrower, or another operator with its layers'
/// most probable bits and sparsity).
std::vector<ArchitectureChoice> repair_moves(const Supernet& net, const ArchitectureChoice& choice,
                                             bool shapes_fixed) {
  const SearchSpace& space = net.space();
  std::vector<ArchitectureChoice> moves;
  for (size_t k = 0; k < choice.size(); ++k) {
    const BlockChoice& c = choice[k];
    const SearchOperator& op = *space.blocks[k].ops[c.op];
    if (op.passes_input()) continue;
    auto add = [&](auto change) {
      ArchitectureChoice m = choice;
      change(m[k]);
      moves.push_back(m);
    };
    for (size_t l = 0; l < c.layers.size(); ++l) {
      if (op.prunable(l) && c.layers[l].sparsity + 1 < space.sparsity.size()) {
        add([l](BlockChoice& b) { ++b.layers[l].sparsity; });
      }
      if (c.layers[l].bits > 0) add([l](BlockChoice& b) { --b.layers[l].bits; });
    }
    if (shapes_fixed) continue;
    if (c.width > 0) add([](BlockChoice& b) { --b.width; });
    for (size_t o = 0; o < space.blocks[k].ops.size(); ++o) {
      if (o != c.op) {
        add([&, o](BlockChoice& b) {
          b.op = o;
          b.layers = net.most_probable_layers(k, o);
        });
      }
    }
  }
  return moves;
}

/// Sum of the budgeted costs relative to their limits.
double relative_cost(const Costs& costs, const Limits& limits) {
  double total = 0;
  for (size_t r = 0; r < kResourceCount; ++r) {
    if (std::isfinite(limits[r])) total += costs[r] / limits[r];
  }
  return total;
}

/// One architecture drawn from the learnt per-choice distributions.
ArchitectureChoice sample_choice(const Supernet& net, std::mt19937_64& rng) {
  ArchitectureChoice choice(net.space().blocks.size());
  auto draw = [&](size_t k, const char* kind) {
    const std::vector<double> p = net.probabilities(k, kind);
    return size_t(std::discrete_distribution<size_t>(p.begin(), p.end())(rng));
  };
  for (size_t k = 0; k < choice.size(); ++k) {
    const size_t op = draw(k, "op");
    choice[k] = {op, draw(k, "width"), {}};
    const SearchOperator& o = *net.space().blocks[k].ops[op];
    for (size_t l = 0; l < o.layers().size(); ++l) {
      auto draw_layer = [&](const char* kind) {
        const std::vector<double> p = net.probabilities(k, kind, op, l);
        return size_t(std::discrete_distribution<size_t>(p.begin(), p.end())(rng));
      };
      const size_t bits = draw_layer("bits");
      choice[k].layers.push_back({bits, o.prunable(l) ? draw_layer("sparsity") : 0});
    }
  }
  return choice;
}

}  // namespace

bool within(const Costs& costs, const Limits& limits, double fraction) {
  for (size_t r = 0; r < kResourceCount; ++r) {
    if (costs[r] > limits[r] * fraction) return false;
  }
  return true;
}

double excess(const Costs& costs, const Limits& limits, const Costs& scale, double fraction) {
  double total = 0;
  for (size_t r = 0; r < kResourceCount; ++r) {
    if (!std::isfinite(limits[r])) continue;
    total += std::max(0.0, costs[r] * scale[r] / (limits[r] * fraction) - 1.0);
  }
  return total;
}

Costs costs_of(const TableCosts& t) {
  return {t.weight_bytes, t.flash_bytes, t.sram_bytes, t.cycles};
}

std::optional<ArchitectureChoice> best_repair(const Supernet& net, const ArchitectureChoice& choice,
                                              const Limits& limits, const Costs& scale,
                                              double fraction, bool shapes_fixed) {
  const TableCosts now = net.table_costs(choice);
  const double before = excess(costs_of(now), limits, scale, fraction) + (now.fits ? 0 : 1e6);
  const double log_p = net.log_probability(choice);
  std::optional<ArchitectureChoice> best;
  double best_score = 0;
  for (const ArchitectureChoice& m : repair_moves(net, choice, shapes_fixed)) {
    const TableCosts t = net.table_costs(m);
    const double after = excess(costs_of(t), limits, scale, fraction) + (t.fits ? 0 : 1e6);
    const double gain = before - after;
    if (gain <= 1e-12) continue;
    const double score = gain / std::max(1e-3, log_p - net.log_probability(m));
    if (score > best_score) {
      best_score = score;
      best = m;
    }
  }
  return best;
}

std::optional<ArchitectureChoice> fit_by_tables(const Supernet& net, ArchitectureChoice choice,
                                                const Limits& limits, double fraction) {
  const Costs unit{1.0, 1.0, 1.0};
  for (int round = 0; round <= 200; ++round) {
    const TableCosts t = net.table_costs(choice);
    if (t.fits && within(costs_of(t), limits, fraction)) return choice;
    const std::optional<ArchitectureChoice> next =
        best_repair(net, choice, limits, unit, fraction, false);
    if (!next) return std::nullopt;
    choice = *next;
  }
  return std::nullopt;
}

ArchitectureChoice grow_to_budget(const Supernet& net, ArchitectureChoice choice,
                                  const Limits& limits, double fraction) {
  const SearchSpace& space = net.space();
  for (;;) {
    const double cost = relative_cost(costs_of(net.table_costs(choice)), limits);
    const double log_p = net.log_probability(choice);
    std::optional<ArchitectureChoice> best;
    double best_score = -std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < choice.size(); ++k) {
      const BlockSpace& bs = space.blocks[k];
      if (bs.ops[choice[k].op]->passes_input()) continue;
      auto consider = [&](auto change) {
        ArchitectureChoice m = choice;
        change(m[k]);
        const TableCosts t = net.table_costs(m);
        if (!t.fits || !within(costs_of(t), limits, fraction)) return;
        const double added = std::max(1e-9, relative_cost(costs_of(t), limits) - cost);
        const double score = (net.log_probability(m) - log_p) / added;
        if (score > best_score) {
          best_score = score;
          best = m;
        }
      };
      if (choice[k].width + 1 < bs.widths.size()) consider([](BlockChoice& b) { ++b.width; });
      for (size_t l = 0; l < choice[k].layers.size(); ++l) {
        const LayerChoice& lc = choice[k].layers[l];
        if (lc.bits + 1 < space.bits.size()) consider([l](BlockChoice& b) { ++b.layers[l].bits; });
        if (bs.ops[choice[k].op]->prunable(l) && lc.sparsity > 0) {
          consider([l](BlockChoice& b) { --b.layers[l].sparsity; });
        }
      }
    }
    if (!best) return choice;
    choice = *best;
  }
}

std::vector<ArchitectureChoice> derivation_candidates(const Supernet& net, const Limits& limits,
                                                      double fraction, uint32_t samples,
                                                      uint64_t seed, bool most_probable) {
  std::vector<ArchitectureChoice> starts;
  if (most_probable) starts.push_back(net.most_probable());
  std::mt19937_64 rng(seed ^ 0xde51u);
  for (uint32_t i = 0; i < samples; ++i) starts.push_back(sample_choice(net, rng));
  std::vector<ArchitectureChoice> candidates;
  auto add = [&](const ArchitectureChoice& c) {
    // Equal descriptions are equal networks (a skipped block's other choices do not count).
    for (const ArchitectureChoice& known : candidates) {
      if (net.describe(known) == net.describe(c)) return;
    }
    candidates.push_back(c);
  };
  for (const ArchitectureChoice& start : starts) {
    const std::optional<ArchitectureChoice> fitted = fit_by_tables(net, start, limits, fraction);
    if (!fitted) continue;
    add(*fitted);
    add(grow_to_budget(net, *fitted, limits, fraction));
  }
  return candidates;
}

}  // namespace udc::search
