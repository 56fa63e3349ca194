// What every udc command shares: the NPU options of the commands that compile or simulate
// (--npu files and --set overrides, a common::ConfigSource resolved by
// npu_sim::load_npu_config everywhere), and how a command line is run.
#pragma once

#include <CLI/CLI.hpp>

#include "udc/common/config_source.hpp"

namespace udc::tool {

void add_npu_options(CLI::App* command, common::ConfigSource& npu);

/// Parses the command line and runs the chosen command: 0 on success; on bad input, a
/// failed check or any other error, "udc: error: WHAT" on stderr and 1 (CLI11's own exit
/// code for usage errors).
int run_cli(CLI::App& app, int argc, char* argv[]);

}  // namespace udc::tool
