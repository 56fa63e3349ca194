// `udc calibrate`: runs a Vela-format calibration file through the compiler and the
// simulator and compares cycles with Vela's, per layer and per configuration.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

void add_calibrate_command(CLI::App& app);

}  // namespace udc::tool
