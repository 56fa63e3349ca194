#include "cli.hpp"

#include <fmt/format.h>

#include <exception>

namespace udc::tool {

void add_npu_options(CLI::App* command, common::ConfigSource& npu) {
  command
      ->add_option("--npu", npu.files,
                   "NPU/system YAML file(s), applied in order (e.g. an NPU file then a system "
                   "file); default: built-in Ethos-U55-128 on the deep-embedded system")
      ->check(CLI::ExistingFile);
  command->add_option("--set", npu.overrides, "override a parameter: KEY=VALUE (repeatable)");
}

int run_cli(CLI::App& app, int argc, char* argv[]) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "udc: error: {}\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace udc::tool
