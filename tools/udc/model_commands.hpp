// `udc model`, `udc import`, `udc export`, `udc compile`, `udc run`, `udc verify`:
// inspect, generate and convert integer models (.udcm and .tflite), lower them to command
// streams, run them on the simulated NPU and prove the NPU's outputs equal to the
// reference interpreter's.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "udc/firmware_model/model.hpp"

namespace udc::tool {

void add_model_commands(CLI::App& app);

/// The model of a .udcm or .tflite file (told apart by content), for every command that
/// takes a model. For a .tflite, the operators left to the CPU and how others were lowered
/// are printed first.
firmware_model::Model load_model(const std::string& path);

}  // namespace udc::tool
