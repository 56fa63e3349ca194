#include "npu_options.hpp"

namespace udc::tool {

void add_npu_options(CLI::App* command, NpuOptions& options) {
  command
      ->add_option("--npu", options.files,
                   "NPU/system YAML file(s), applied in order (e.g. an NPU file then a system "
                   "file); default: built-in Ethos-U55-128 on the deep-embedded system")
      ->check(CLI::ExistingFile);
  command->add_option("--set", options.overrides, "override a parameter: KEY=VALUE (repeatable)");
}

npu_sim::NpuConfig load_config(const NpuOptions& options) {
  npu_sim::NpuConfig config =
      options.files.empty() ? npu_sim::NpuConfig{} : npu_sim::load_npu_config(options.files);
  npu_sim::apply_overrides(config, options.overrides, "--set");
  return config;
}

}  // namespace udc::tool
