// The golden model: straightforward integer execution of a Model, written apart from the
// simulator's kernels. It shares only the specification of the rounding helpers
// (int8/include/udc/int8/fixed_point.hpp, DESIGN.md section 4).
#pragma once

#include <cstdint>
#include <vector>

#include "udc/firmware_model/model.hpp"

namespace udc::firmware_model {

/// int8 NHWC values, one vector per tensor.
using TensorValues = std::vector<int8_t>;

/// Runs `model` on `inputs` (one per model input, in order, NHWC). Returns the values of
/// every tensor, indexed like model.tensors. Throws std::invalid_argument if an input has
/// the wrong size.
std::vector<TensorValues> run_reference(const Model& model,
                                        const std::vector<TensorValues>& inputs);

}  // namespace udc::firmware_model
