#pragma once

#include <CLI/CLI.hpp>

namespace udc::tool {

/// `udc launch -n N COMMAND ARGS...`: N local ranks of a data-parallel `udc` command.
void add_launch_command(CLI::App& app);

}  // namespace udc::tool
