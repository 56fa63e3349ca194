// The budget guard: holds a trained network's weights within weight-stream and flash budgets,
// as the compiler lays them out, by pruning a little more (internal; includes Torch).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "qnet.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::search {

/// The budgets a trained model is held to, and the NPU they are measured on.
struct WeightBudgets {
  uint64_t weight_bytes = 0, flash_bytes = 0;  ///< 0: none [bytes]
  const npu_sim::NpuConfig* npu = nullptr;
  /// Bytes by which `m` exceeds the budgets, summed (0: within them).
  uint64_t excess(const firmware_model::ModelMeasurement& m) const {
    auto over = [](uint64_t value, uint64_t budget) {
      return budget > 0 && value > budget ? value - budget : 0;
    };
    return over(m.weight_bytes, weight_bytes) + over(m.flash_bytes, flash_bytes);
  }
};

struct BudgetGuard {
  firmware_model::ModelMeasurement before, after;  ///< weights and image as compiled
  uint64_t pruned = 0;                             ///< weights the guard pruned
  uint32_t bits_lowered = 0;                       ///< steps that lowered a layer's bitwidth
  bool fits = true;
};

/// Extra zeros per output channel that one step of the guard tries on a layer with
/// `available` more weights it may zero: 1, 2, 3, then about x1.5 each time, and
/// `available` itself last.
std::vector<int64_t> guard_step_sizes(int64_t available);

/// Damage of a mask change: over output channels (dimension 0), the mean fraction of the
/// channel's kept squared weight that the new mask removes.
double pruning_damage(const torch::Tensor& weights, const torch::Tensor& kept,
                      const torch::Tensor& trial);

/// Damage of requantising a channel's weights from `from_bits` to `to_bits`, each at its
/// initial step (initial_weight_step by `rule`): over output channels (dimension 0), the rise in
/// squared quantisation error as a fraction of the channel's squared weight. The unit of
/// pruning_damage, where zeroing a weight adds its square to the error, so that the guard
/// can weigh a bit against a zero.
double requantization_damage(const torch::Tensor& masked_weights, uint32_t from_bits,
                             uint32_t to_bits, WeightStepRule rule);

/// Holds the weights within the budgets, as compiled for the NPU, by pruning a little
/// more, one step at a time: a step prunes k more weights (k from guard_step_sizes) in
/// every output channel of one layer, and the step taken is the one that removes the most
/// bytes of excess per unit of pruning_damage (bytes beyond the excess earn nothing, so the
/// smallest sufficient step wins), so that a layer with few weights a channel (the stem, the
/// classifier) is spared while a wide one can give. Depthwise layers stay dense (k*k weights
/// a channel) and every channel keeps one weight. Masks must be at their targets when called.
/// A step may instead lower one layer's bitwidth to any of `lower_bits` below its own
/// (depthwise layers included), scored by requantization_damage; its step then starts
/// afresh (initialize_step). Bitwidths only fall; with lower bits given, steps must be at
/// their initial values, as when the compress phase starts.
BudgetGuard hold_budgets(QNet& net, const WeightBudgets& budgets,
                         const std::vector<uint32_t>& lower_bits = {});

}  // namespace udc::search
