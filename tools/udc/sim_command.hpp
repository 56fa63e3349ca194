// `udc sim`: runs a command stream on the simulated NPU and reports cycles, traffic
// and utilisation.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

/// Adds the `sim` subcommand to `app`.
void add_sim_command(CLI::App& app);

}  // namespace udc::tool
