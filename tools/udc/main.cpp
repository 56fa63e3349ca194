// udc: command-line front end of the suite. SystemC runs the program through sc_main();
// main() only silences SystemC's banner first (it prints before sc_main is called).
#include <systemc>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "calibrate_command.hpp"
#include "cli.hpp"
#include "codec_command.hpp"
#include "eval_command.hpp"
#include "launch_command.hpp"
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
  udc::tool::add_eval_command(app);
  udc::tool::add_calibrate_command(app);
  udc::tool::add_launch_command(app);
  // Listed for --help; main() hands them to udc-torch before sc_main runs.
  app.add_subcommand("train",
                     "Compression-aware training of a fixed architecture (see udc train --help)");
  app.add_subcommand(
      "search",
      "Hardware-aware DNAS under weight, flash, SRAM and latency budgets (see udc search --help)");
  app.add_subcommand("results",
                     "Summarise runs over seeds side by side: table, CSV, Pareto plot (see udc "
                     "results --help)");
  return udc::tool::run_cli(app, argc, argv);
}

namespace {

/// Commands that need LibTorch live in udc-torch, beside this binary (`results` reads the
/// seeds summaries that the search library writes, so it lives beside them).
bool is_torch_command(const char* name) {
  return std::strcmp(name, "train") == 0 || std::strcmp(name, "search") == 0 ||
         std::strcmp(name, "results") == 0;
}

[[noreturn]] void exec_torch_binary(char* argv[]) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path torch_binary =
      (error ? std::filesystem::path(argv[0]) : self).parent_path() / "udc-torch";
  std::vector<char*> args{const_cast<char*>(torch_binary.c_str())};
  for (char** a = argv + 1; *a != nullptr; ++a) args.push_back(*a);
  args.push_back(nullptr);
  execv(torch_binary.c_str(), args.data());
  fmt::print(stderr, "udc: error: cannot run {} for '{}': {}\n", torch_binary.string(), argv[1],
             std::strerror(errno));
  std::exit(1);
}

}  // namespace

int main(int argc, char* argv[]) {
  if (argc > 1 && is_torch_command(argv[1])) exec_torch_binary(argv);
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
