#include "npu_options.hpp"

namespace udc::tool {

void add_npu_options(CLI::App* command, common::ConfigSource& npu) {
  command
      ->add_option("--npu", npu.files,
                   "NPU/system YAML file(s), applied in order (e.g. an NPU file then a system "
                   "file); default: built-in Ethos-U55-128 on the deep-embedded system")
      ->check(CLI::ExistingFile);
  command->add_option("--set", npu.overrides, "override a parameter: KEY=VALUE (repeatable)");
}

}  // namespace udc::tool
