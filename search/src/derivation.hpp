// Derivation of one architecture from the supernet's learnt distribution: repairs that make
// a choice fit the budgets by the cost tables, growth back towards them, and the candidate
// set that the search ranks by held-out accuracy (internal; includes Torch via supernet.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "supernet.hpp"

namespace udc::search {

/// The resources, in this order everywhere: encoded weight streams, the flash image
/// (streams, scale records, alignment), the activation arena, latency.
enum Resource { Weights = 0, Flash = 1, Sram = 2, Cycles = 3 };
inline constexpr size_t kResourceCount = 4;
inline constexpr const char* kResourceNames[kResourceCount] = {"weight_bytes", "flash_bytes",
                                                               "sram_bytes", "cycles"};
using Costs = std::array<double, kResourceCount>;  ///< [B], [B], [B], [cycles]
/// Budget per resource; infinity where none is set.
using Limits = std::array<double, kResourceCount>;

/// Whether every cost is at most `fraction` of its limit.
bool within(const Costs& costs, const Limits& limits, double fraction);
/// Sum of relative excesses of costs * scale over fraction * limits (0: fits).
double excess(const Costs& costs, const Limits& limits, const Costs& scale, double fraction);
Costs costs_of(const TableCosts& t);

/// The cheapest repair, one step cheaper in one layer (sparser, fewer bits) or, unless
/// `shapes_fixed`, in one block (narrower, another operator), in lost log-probability per unit of
/// excess removed (table costs times `scale`); nullopt when no move reduces the excess.
std::optional<ArchitectureChoice> best_repair(const Supernet& net, const ArchitectureChoice& choice,
                                              const Limits& limits, const Costs& scale,
                                              double fraction, bool shapes_fixed);

/// A choice repaired until its table costs fit `fraction` of the limits; nullopt when no
/// cheaper choice helps.
std::optional<ArchitectureChoice> fit_by_tables(const Supernet& net, ArchitectureChoice choice,
                                                const Limits& limits, double fraction);

/// A fitting choice grown back towards the budgets: while a block can take one more step
/// of width, or a layer one more of bits or density, within `fraction` of the limits (table costs),
/// the step that loses least log-probability per unit of added relative cost is taken. The most
/// probable choices under-use the budget that the search spent as a mixture; this spends it where
/// the learnt distribution objects least.
ArchitectureChoice grow_to_budget(const Supernet& net, ArchitectureChoice choice,
                                  const Limits& limits, double fraction);

/// The derivation's candidates, distinct: the most probable architecture (when
/// `most_probable`) and `samples` drawn from the learnt distributions (seeded), each fitted
/// to the budgets by the tables, as fitted and as grown. Empty when none can be fitted.
std::vector<ArchitectureChoice> derivation_candidates(const Supernet& net, const Limits& limits,
                                                      double fraction, uint32_t samples,
                                                      uint64_t seed, bool most_probable = true);

}  // namespace udc::search
