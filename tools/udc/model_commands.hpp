// `udc model`, `udc compile`, `udc run`, `udc verify`: inspect and generate integer
// models, lower them to command streams, run them on the simulated NPU and prove the
// NPU's outputs equal to the reference interpreter's.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

void add_model_commands(CLI::App& app);

}  // namespace udc::tool
