// Importing a TensorFlow Lite file (.tflite) as an integer model, and loading either kind of
// model file by its content.
//
// The int8 operators the NPU runs become operations of one Model; operators it does not
// run but a Cortex-M beside it would (SOFTMAX, LOGISTIC, format conversions) are kept out
// of the model and reported as the CPU's part, the way Vela reports operators it leaves to
// the CPU. udc simulates one NPU region, so CPU operators may come before it (on the
// inputs) or after it (on its outputs), not between NPU operators. Anything else is
// refused with the operator's index and name.
#pragma once

#include <string>
#include <vector>

#include "udc/firmware_model/model.hpp"
#include "udc/firmware_model/tflite_file.hpp"

namespace udc::firmware_model {

/// An operator left to the CPU.
struct CpuOperator {
  size_t index = 0;         ///< in the file's operator list
  std::string name;         ///< TFLite's operator name, "SOFTMAX"
  std::string output;       ///< its first output tensor's name
  std::string cost_class;   ///< what the CPU spends on it, in words ("per element, exp and sum")
  bool before_npu = false;  ///< runs on the model's inputs (else on the NPU's outputs)
};

struct ImportedModel {
  Model model;
  std::vector<CpuOperator> cpu_operators;
  /// How operators were lowered where it is worth knowing (folded PADs, depthwise layers
  /// with a multiplier, inferred weight bit widths).
  std::vector<std::string> notes;
};

/// The model of a parsed file; `origin` names it in errors, which read
/// "origin: operator N (NAME): problem" or "origin: tensor N (name): problem". Weight bit
/// widths come from the file's udc metadata where present and consistent, else from each
/// layer's value range; operation names likewise, else each output tensor's name.
ImportedModel import_tflite(const TfliteModel& file, const std::string& origin);

/// The CPU operators as a report ("CPU operators: ..."), empty when there are none.
std::string format_cpu_operators(const std::vector<CpuOperator>& operators);

/// A .udcm or .tflite file, told apart by content (the UDCM magic, the TFL3 identifier).
/// A .udcm has no CPU operators or notes. Throws std::runtime_error naming the file.
ImportedModel load_model_file(const std::string& path);

}  // namespace udc::firmware_model
