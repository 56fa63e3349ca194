// Writing an integer model as a TensorFlow Lite file (.tflite) for Vela and TFLite Micro.
//
// Every operation maps to one TFLite builtin with int8 tensors and the requantisation
// TFLite derives from float32 scales, so the file computes what the reference interpreter
// computes. What TFLite cannot say (operation names, each layer's weight bit width, which
// average pool was global) travels in a metadata entry named kTfliteMetadataName, so that
// importing the file gives back the same .udcm byte for byte (tflite_import.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "udc/firmware_model/model.hpp"

namespace udc::firmware_model {

/// The name of the metadata entry udc writes and reads (JSON, see tflite_export.cpp).
inline constexpr const char* kTfliteMetadataName = "udc";

/// The float32 weight scale from which TFLite's rule (int8::channel_multiplier) gives exactly
/// (multiplier, shift) between the two activation scales, or none: a 31-bit multiplier is
/// finer than a float32 scale can steer, so only multipliers that came from float scales
/// (the search's exporter, TFLite converters) have one. multiplier 0 gives a scale below
/// TFLite's smallest step.
std::optional<float> weight_scale_for(int32_t multiplier, int32_t shift, float input_scale,
                                      float output_scale);

/// The .tflite file of a valid model. Throws std::invalid_argument naming the operation
/// when a part of it has no TFLite form: a multiplier without a float32 weight scale, ADD
/// or MEAN parameters other than TFLite's for its scales, a clamp other than its fused
/// activation's. A fully connected layer with per-channel scales is written as a CONV_2D
/// over its whole input, which Vela runs on the NPU (it takes per-channel scales only on
/// convolutions). `notes` (if given) receives such choices and the operators Vela would
/// leave to the CPU (DEPTH_TO_SPACE).
std::vector<uint8_t> export_tflite(const Model& model, std::vector<std::string>* notes = nullptr);
/// export_tflite() written through a temporary file and a rename.
void write_tflite(const Model& model, const std::string& path,
                  std::vector<std::string>* notes = nullptr);

}  // namespace udc::firmware_model
