// The NPU configuration options every simulating subcommand takes: --npu files and --set
// overrides, resolved the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "udc/npu_sim/config.hpp"

namespace udc::tool {

struct NpuOptions {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
};

void add_npu_options(CLI::App* command, NpuOptions& options);
/// Built-in defaults (Ethos-U55-128 on the deep-embedded system), then the files in order,
/// then the overrides.
npu_sim::NpuConfig load_config(const NpuOptions& options);

}  // namespace udc::tool
