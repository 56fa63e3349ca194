// udc: command-line front end of the suite.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <exception>

#include "codec_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"udc: co-design of compressible tiny neural networks and the NPU that runs them"};
  app.require_subcommand(1);
  udc::tool::add_codec_command(app);
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
