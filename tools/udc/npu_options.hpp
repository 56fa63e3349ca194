// The NPU options every command that compiles or simulates takes: --npu files and --set
// overrides, a common::ConfigSource resolved by npu_sim::load_npu_config everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include "udc/common/config_source.hpp"

namespace udc::tool {

void add_npu_options(CLI::App* command, common::ConfigSource& npu);

}  // namespace udc::tool
