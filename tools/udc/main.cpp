// udc: command-line front end of the suite. SystemC runs the program through sc_main();
// main() only silences SystemC's banner first (it prints before sc_main is called).
#include <systemc>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <exception>

#include "codec_command.hpp"
#include "model_commands.hpp"
#include "sim_command.hpp"
#include "sweep_command.hpp"

int sc_main(int argc, char* argv[]) {
  CLI::App app{"udc: co-design of compressible tiny neural networks and the NPU that runs them"};
  app.require_subcommand(1);
  udc::tool::add_codec_command(app);
  udc::tool::add_sim_command(app);
  udc::tool::add_model_commands(app);
  udc::tool::add_sweep_command(app);
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

int main(int argc, char* argv[]) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
