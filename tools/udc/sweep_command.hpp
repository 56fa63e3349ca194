// `udc sweep`: evaluates a model over a grid of NPU parameters, one process per
// configuration, and writes a CSV and an SVG plot of the latency / hardware-size Pareto
// front.
#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

void add_sweep_command(CLI::App& app);

}  // namespace udc::tool
