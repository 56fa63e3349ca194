// udc-torch: the commands that need LibTorch (`udc train`, `udc search`), kept in their own binary
// so that the rest of `udc` starts without LibTorch's half-second of initialisation. `udc` hands
// these commands over with execv; the binary also runs on its own.
#include <systemc>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>

#include "udc/common/yaml_section.hpp"
#include "udc/search/search.hpp"
#include "udc/search/search_config.hpp"
#include "udc/search/train_config.hpp"
#include "udc/search/trainer.hpp"

namespace {

void add_train_command(CLI::App& app) {
  struct Args {
    std::string config, output_dir;
    bool restart = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a fixed architecture with per-layer bitwidth and sparsity (warm-up, compress, "
      "fine-tune), export it to .udcm and verify it on the interpreter and the simulator");
  cmd->add_option("--config", args->config, "training configuration (YAML, configs/train/)")
      ->required();
  cmd->add_option("-o,--output", args->output_dir,
                  "output folder: model.udcm, report.json, checkpoint.pt (default: "
                  "runs/<config name>)");
  cmd->add_flag("--restart", args->restart, "ignore an existing checkpoint and start over");
  cmd->callback([args] {
    const udc::search::TrainConfig config = udc::search::load_train_config(args->config);
    udc::search::TrainOptions options;
    options.output_dir =
        args->output_dir.empty()
            ? (std::filesystem::path("runs") / std::filesystem::path(args->config).stem()).string()
            : args->output_dir;
    options.restart = args->restart;
    options.log = &std::cout;
    udc::search::train(config, options);
  });
}

void add_search_command(CLI::App& app) {
  struct Args {
    std::string config, output_dir;
    bool restart = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "search",
      "Unified DNAS: search depth, operators, widths, per-layer bitwidth and sparsity under "
      "flash/SRAM/latency budgets measured by the codec, compiler and simulator; fine-tune, "
      "export and verify the found model");
  cmd->add_option("--config", args->config, "search configuration (YAML, configs/search/)")
      ->required();
  cmd->add_option("-o,--output", args->output_dir,
                  "results folder: model.udcm, report.json, accuracy_vs_size.svg, evolution.csv, "
                  "derived.yaml, checkpoints (default: runs/<config name>)");
  cmd->add_flag("--restart", args->restart, "ignore existing checkpoints and start over");
  cmd->callback([args] {
    const udc::search::SearchConfig config = udc::search::load_search_config(args->config);
    udc::search::SearchOptions options;
    options.output_dir =
        args->output_dir.empty()
            ? (std::filesystem::path("runs") / std::filesystem::path(args->config).stem()).string()
            : args->output_dir;
    options.restart = args->restart;
    options.log = &std::cout;
    const udc::search::SearchResult result = udc::search::run_search(config, options);
    if (!result.fits) throw std::runtime_error("the found model does not meet its budgets");
  });
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  CLI::App app{"udc (LibTorch commands)"};
  app.name("udc");
  app.require_subcommand(1);
  add_train_command(app);
  add_search_command(app);
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
