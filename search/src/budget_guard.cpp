#include "budget_guard.hpp"

#include <algorithm>
#include <memory>
#include <optional>

#include "udc/firmware_model/compiler.hpp"

namespace udc::search {

namespace fm = firmware_model;

// Why a ladder of steps up to every weight but one: bytes do not fall smoothly with
// zeros: the smallest weights already cost few bits in the codec's value stream, so a dense
// int8 layer may save nothing until enough zeros make zero runs pay (measured: 8 more zeros
// a channel of a 234-weight int8 channel saved no byte), and streams are padded to 16 bytes.
// A guard that tried only a few zeros a step found no saving in the wide layers and took
// every byte from the classifier and the stem (96 % and 78 % sparse: 89 % -> 50 %).
std::vector<int64_t> guard_step_sizes(int64_t available) {
  std::vector<int64_t> sizes;
  for (int64_t k = 1; k <= available; k = std::max(k + 1, k * 3 / 2)) sizes.push_back(k);
  if (available > 0 && sizes.back() != available) sizes.push_back(available);
  return sizes;
}

double pruning_damage(const torch::Tensor& weights, const torch::Tensor& kept,
                      const torch::Tensor& trial) {
  const torch::Tensor w2 = (weights * weights).flatten(1);
  const torch::Tensor before = (w2 * kept.flatten(1)).sum(1);
  const torch::Tensor removed = (w2 * (kept - trial).flatten(1)).sum(1);
  return (removed / before.clamp_min(1e-30)).mean().item<double>();
}

double requantization_damage(const torch::Tensor& masked_weights, uint32_t from_bits,
                             uint32_t to_bits, WeightStepRule rule) {
  torch::NoGradGuard no_grad;
  const torch::Tensor w = masked_weights.flatten(1);
  auto error = [&](uint32_t bits) {
    return (w - rounded_at_initial_step(w, bits, rule)).square().sum(1);
  };
  const torch::Tensor energy = w.square().sum(1).clamp_min(1e-30);
  return ((error(to_bits) - error(from_bits)) / energy).mean().item<double>();
}

BudgetGuard hold_budgets(QNet& net, const WeightBudgets& budgets,
                         const std::vector<uint32_t>& lower_bits) {
  torch::NoGradGuard no_grad;
  auto measured = [&] {
    return fm::measure_model(net.export_model(), *budgets.npu,
                             {/*simulate=*/false, /*compile=*/{}});
  };
  BudgetGuard guard;
  guard.before = guard.after = measured();
  uint64_t excess = budgets.excess(guard.after);
  while (excess > 0) {
    struct Step {
      std::shared_ptr<QWeighted> layer;
      double sparsity = 0, score = 0;
      uint64_t pruned = 0;
      uint32_t bits = 0;  ///< > 0: the step lowers the layer to this bitwidth instead
    };
    std::optional<Step> best;
    auto consider = [&](const Step& step, uint64_t trial, double damage) {
      if (trial >= excess) return;
      const double score = double(excess - trial) / std::max(damage, 1e-12);
      if (!best || score > best->score) {
        best = step;
        best->score = score;
      }
    };
    for (const auto& layer : net.weighted()) {
      const uint32_t bits = layer->bits();
      if (!lower_bits.empty() && lower_bits.front() < bits) {
        const torch::Tensor step = layer->step().clone();
        const torch::Tensor masked = layer->folded().first * layer->mask();
        for (const uint32_t lower : lower_bits) {
          if (lower >= bits) continue;
          layer->set_bits(lower);
          layer->initialize_step();
          const uint64_t trial = budgets.excess(measured());
          consider({layer, layer->target_sparsity(), 0, 0, lower}, trial,
                   requantization_damage(masked, bits, lower, layer->weight_step_rule()));
        }
        layer->set_bits(bits);
        layer->restore_step(step);
      }
      if (layer->kind() == QWeighted::Kind::Depthwise) continue;
      const int64_t channels = layer->mask().size(0);
      const int64_t per_channel = layer->mask().numel() / channels;
      const auto zeros = int64_t(std::lround(layer->target_sparsity() * double(per_channel)));
      const torch::Tensor kept = layer->mask().clone();
      const torch::Tensor weights = layer->folded().first;
      for (const int64_t k : guard_step_sizes(per_channel - 1 - zeros)) {
        const double sparsity = double(zeros + k) / double(per_channel);
        layer->update_mask(sparsity);
        const uint64_t trial = budgets.excess(measured());
        const double damage = pruning_damage(weights, kept, layer->mask());
        layer->restore_mask(kept);
        consider({layer, sparsity, 0, uint64_t(k * channels), 0}, trial, damage);
        if (trial == 0) break;  // larger steps on this layer save no more, at more damage
      }
    }
    if (!best) {
      guard.fits = false;
      break;
    }
    if (best->bits > 0) {
      best->layer->set_bits(best->bits);
      best->layer->initialize_step();
      ++guard.bits_lowered;
    } else {
      best->layer->set_target_sparsity(best->sparsity);
      best->layer->update_mask(best->sparsity);
      guard.pruned += best->pruned;
    }
    guard.after = measured();
    excess = budgets.excess(guard.after);
  }
  return guard;
}

}  // namespace udc::search
