// One measurement of a model on an NPU, the one that `udc run`, `udc train`, `udc search`,
// `udc sweep` and their reports use and that every budget is checked against: what the
// compiler lays out (weight streams, the weight image, SRAM) and what the simulator counts
// (cycles). "Does not fit" is a value, not an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/model.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {

/// A weighted operation's bytes as compiled.
struct LayerBytes {
  size_t operation = 0;
  uint64_t weight_bytes = 0;  ///< its encoded streams [bytes]
  uint64_t image_bytes = 0;   ///< its streams and scale records, aligned, in the image [bytes]
};

struct ModelMeasurement {
  /// Encoded weight streams, one per output-channel block as the compiler splits them; no
  /// scale records, no alignment: the paper's compressed model size [bytes]
  uint64_t weight_bytes = 0;
  /// The weight image as laid out: streams, 10-byte scale records per channel and 16-byte
  /// alignment; in flash, or in SRAM in the sram_only memory mode [bytes]
  uint64_t flash_bytes = 0;
  uint64_t arena_bytes = 0;  ///< activations in SRAM at their peak [bytes]
  /// Everything placed in SRAM: the arena, the prefetch buffers, weights (sram_only) [bytes]
  uint64_t sram_bytes = 0;
  double cycles = 0;               ///< one inference, timing-only simulation (0: not simulated)
  double milliseconds = 0;         ///< cycles at the NPU's clock
  double mac_utilisation = 0;      ///< MACs done over what the array could do in that time
  std::vector<LayerBytes> layers;  ///< weighted operations, in model order
  /// Set when the model cannot be compiled for the NPU. The byte counts then come from a
  /// layout with unlimited SRAM and off-chip memory (0 if even that fails), SRAM holds what
  /// was needed, and nothing was simulated.
  std::optional<DoesNotFit> does_not_fit;
  bool fits() const { return !does_not_fit.has_value(); }
};

struct MeasureOptions {
  bool simulate = true;    ///< false: layout only (cycles stay 0), for guards run per step
  CompileOptions compile;  ///< how to compile (weight placement, ...; `udc sweep`)
};

/// Compiles `model` (valid) for `npu`, and simulates one inference on zero inputs in
/// timing-only mode.
ModelMeasurement measure_model(const Model& model, const npu_sim::NpuConfig& npu,
                               const MeasureOptions& options = {});

/// Which measured quantities a run must stay within; unset: no bound.
struct MeasuredBudgets {
  std::optional<uint64_t> weight_bytes;  ///< on ModelMeasurement::weight_bytes
  std::optional<uint64_t> flash_bytes;   ///< on ModelMeasurement::flash_bytes
  std::optional<uint64_t> sram_bytes;    ///< on ModelMeasurement::arena_bytes (activations)
  std::optional<double> cycles;          ///< on ModelMeasurement::cycles
  bool any() const { return weight_bytes || flash_bytes || sram_bytes || cycles; }
};

/// One line per budget the measurement breaks ("flash_bytes: 8,288 B measured, budget
/// 8,192 B"), and one for a model that does not fit; empty when within every budget.
std::vector<std::string> budget_violations(const ModelMeasurement& measured,
                                           const MeasuredBudgets& budgets);

}  // namespace udc::firmware_model
