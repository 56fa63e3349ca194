// udc-torch: the commands that need LibTorch (`udc train`, `udc search`), kept in their own binary
// so that the rest of `udc` starts without LibTorch's half-second of initialisation. `udc` hands
// these commands over with execv; the binary also runs on its own.
#include <systemc>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "udc/common/file_io.hpp"
#include "udc/common/yaml_section.hpp"
#include "udc/firmware_model/sweep.hpp"
#include "udc/search/hardware_comparison.hpp"
#include "udc/search/results_summary.hpp"
#include "udc/search/search.hpp"
#include "udc/search/search_config.hpp"
#include "udc/search/seeds.hpp"
#include "udc/search/train_config.hpp"
#include "udc/search/trainer.hpp"

namespace {

/// Where a command's options go: the config, the output folder, --restart and the NPU
/// options (--npu replaces the config's NPU, --set overrides parameters of it).
struct RunArguments {
  std::string config, output_dir;
  bool restart = false;
  bool list_params = false;
  udc::common::ConfigSource npu;
  /// Repeat the run once per seed, each in <output>/seed-<seed>, and summarise (seeds.hpp).
  std::vector<uint64_t> seeds;
  /// With seeds: "I/N" runs only every N-th of them from I (one part of a grid split over
  /// machines); "mpi": I and N from mpirun's rank and size.
  std::string shard;
  /// udc train: a search config whose fine-tune recipe (`finetune:`) replaces the `train:`
  /// section, budgets (and how they are met) excepted: a baseline trained exactly as the
  /// search's models are.
  std::string recipe;
  /// udc search: the network alone on this candidate of the config's `hardware:` space
  /// (-1: the whole space, a co-search when it has choices).
  int64_t hardware = -1;
  /// udc search: the co-search against the network alone on each of these candidates, each
  /// way over the seeds, in <output>/co-search and <output>/hardware-N (comparison.json).
  std::vector<size_t> compare_hardware;
  /// The output folder: as given, else runs/<config file stem>.
  std::string output() const {
    return output_dir.empty()
               ? (std::filesystem::path("runs") / std::filesystem::path(config).stem()).string()
               : output_dir;
  }
};

/// The seeds of part `shard` ("I/N" or "mpi", RunArguments::shard) of `seeds`.
std::vector<uint64_t> shard_of(const std::vector<uint64_t>& seeds, const std::string& shard) {
  std::string part = shard;
  if (shard == "mpi") {
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (!rank || !size) {
      throw std::runtime_error(
          "--shard mpi: OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE are not set (start with "
          "mpirun, or give --shard I/N)");
    }
    part = std::string(rank) + "/" + size;
  }
  const udc::firmware_model::SweepShard s = udc::firmware_model::parse_sweep_shard(part);
  std::vector<uint64_t> mine;
  for (size_t i : udc::firmware_model::shard_points(seeds.size(), s)) mine.push_back(seeds[i]);
  return mine;
}

/// The ranks a run trains on: none of its own for a part of a grid (--shard: every part
/// is one process, whatever mpirun says), else the data-parallel rendezvous of the
/// environment.
std::shared_ptr<udc::search::Ranks> run_ranks(const RunArguments& args) {
  return args.shard.empty() ? udc::search::Ranks::from_environment()
                            : udc::search::Ranks::single();
}

/// A command of the form `udc NAME --config FILE [-o DIR] [--restart]`.
void add_run_command(CLI::App& app, const std::string& name, const std::string& description,
                     const std::string& config_help, const std::string& output_help,
                     const std::string& restart_help, std::function<void(const RunArguments&)> run,
                     bool takes_recipe = false, bool takes_hardware = false) {
  auto args = std::make_shared<RunArguments>();
  CLI::App* cmd = app.add_subcommand(name, description);
  cmd->add_option("--config", args->config, config_help);
  cmd->add_option("-o,--output", args->output_dir, output_help);
  cmd->add_flag("--restart", args->restart, restart_help);
  cmd->add_option("--seeds", args->seeds,
                  "run once per seed (comma-separated), each in OUTPUT/seed-N, then write "
                  "OUTPUT/seeds.json and print mean ± std")
      ->delimiter(',');
  cmd->add_option("--shard", args->shard,
                  "with --seeds: I/N runs only every N-th seed from the I-th (from 0), one part "
                  "of a grid spread over machines or cluster job-array tasks; `mpi`: I and N "
                  "from mpirun's rank and size. Parts may run at once into one OUTPUT on a "
                  "shared disk: seeds.json gathers them (under a lock). A part runs on one "
                  "process, not data-parallel");
  if (takes_recipe) {
    cmd->add_option("--recipe", args->recipe,
                    "search config (configs/search/) whose finetune: section trains this model "
                    "in place of its train: section (its budgets and budget_bits kept; "
                    "--set still applies "
                    "after): a baseline with the found models' recipe");
  }
  if (takes_hardware) {
    cmd->add_option("--hardware", args->hardware,
                    "search the network alone on candidate N (from 0) of the config's hardware: "
                    "space, as a fixed NPU (the sequential way against which a co-search is "
                    "compared; the candidates are numbered in the log and pairs.csv)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--compare-hardware", args->compare_hardware,
                    "compare the co-search with the sequential way: the network searched alone "
                    "on each of these candidates (e.g. 7,13,19), every way over --seeds (default: "
                    "the config's seed); writes comparison.json and comparison.csv")
        ->delimiter(',')
        ->excludes("--hardware");
  }
  udc::tool::add_npu_options(cmd, args->npu);
  cmd->add_flag("--list-params", args->list_params,
                "list the parameters --set takes (the config's sections and the NPU's), with "
                "their values in --config when given, and exit");
  cmd->callback([args, run, name] {
    if (!args->list_params && args->config.empty()) {
      throw std::runtime_error(name + ": --config is required");
    }
    if (!args->shard.empty()) {
      if (args->seeds.empty()) throw std::runtime_error(name + ": --shard needs --seeds");
      args->seeds = shard_of(args->seeds, args->shard);
      if (args->seeds.empty()) {
        fmt::print("--shard {}: no seed falls to this part\n", args->shard);
        return;
      }
    }
    run(*args);
  });
}

/// A multi-seed run fails when any of its runs broke its budgets (each was still written).
void check_seed_runs(const udc::search::SeedsResult& result, const udc::search::Ranks& ranks) {
  std::string over;
  for (const udc::search::SeedRun& run : result.runs) {
    if (!run.within_budgets) over += fmt::format(" {}", run.seed);
  }
  if (!over.empty()) {
    throw std::runtime_error(
        fmt::format("seeds{}: the model breaks its budgets (see {})", over, result.summary_path));
  }
  if (ranks.primary()) fmt::print("wrote {}\n", result.summary_path);
}

void add_train_command(CLI::App& app) {
  add_run_command(
      app, "train",
      "Train a fixed architecture with per-layer bitwidth and sparsity (warm-up, compress, "
      "fine-tune), export it to .udcm and verify it on the interpreter and the simulator",
      "training configuration (YAML, configs/train/)",
      "output folder: model.udcm and model.tflite (model.over-budget.* when it breaks a budget), "
      "report.json, "
      "checkpoint.pt (default: runs/<config name>)",
      "ignore an existing checkpoint and start over",
      [](const RunArguments& args) {
        udc::search::TrainConfig config;
        if (!args.config.empty()) config = udc::search::load_train_config(args.config);
        if (!args.recipe.empty()) {
          udc::search::TrainSpec recipe = udc::search::load_search_config(args.recipe).finetune;
          recipe.weight_budget_bytes = config.train.weight_budget_bytes;
          recipe.flash_budget_bytes = config.train.flash_budget_bytes;
          recipe.budget_bits = config.train.budget_bits;  // how they are met
          config.train = recipe;
        }
        // --set: train.KEY to the training parameters, every other key to the NPU.
        udc::common::ConfigSource npu_changes = args.npu;
        npu_changes.overrides = udc::common::apply_param_overrides(
            udc::search::train_params(), config.train, "train", args.npu.overrides, "--set");
        if (!npu_changes.empty()) config.npu = config.npu.overridden_by(npu_changes);
        if (args.list_params) {
          fmt::print(
              "{}{}",
              udc::common::params_listing(udc::search::train_params(), config.train, "train"),
              udc::npu_sim::npu_params_listing(udc::npu_sim::load_npu_config(config.npu)));
          return;
        }
        if (const std::string problem = udc::search::check_train_spec(config.train);
            !problem.empty()) {
          throw std::runtime_error(args.config + ": train: " + problem);
        }
        if (config.train.has_budget() && config.npu.empty()) {
          throw std::runtime_error(args.config +
                                   ": train.weight_budget_bytes and train.flash_budget_bytes are "
                                   "measured on the compiled model: name an NPU (npu: or --npu)");
        }
        udc::search::TrainOptions options;
        options.output_dir = args.output();
        options.restart = args.restart;
        options.ranks = run_ranks(args);
        options.log = &std::cout;
        if (!args.seeds.empty()) {
          check_seed_runs(udc::search::train_seeds(config, udc::search::configured_npu(config),
                                                   options, args.seeds),
                          *options.ranks);
          return;
        }
        const udc::search::TrainResult result =
            udc::search::train(config, udc::search::configured_npu(config), options);
        if (!result.within_budgets) {
          std::string lines;
          for (const std::string& v : result.budget_violations) lines += "\n  " + v;
          throw std::runtime_error(
              fmt::format("{}: the trained model breaks its budgets; written as {}{}", args.config,
                          result.model_path, lines));
        }
      },
      /*takes_recipe=*/true);
}

void add_search_command(CLI::App& app) {
  add_run_command(
      app, "search",
      "Unified DNAS: search depth, operators, widths, per-layer bitwidth and sparsity under "
      "weight, flash, SRAM and latency budgets measured on the compiled model and the simulator; "
      "fine-tune, export and verify the found model",
      "search configuration (YAML, configs/search/)",
      "results folder: model.udcm, model.tflite, report.json, accuracy_vs_size.svg, evolution.csv, "
      "derived.yaml, checkpoints (default: runs/<config name>)",
      "ignore existing checkpoints and start over",
      [](const RunArguments& args) {
        udc::search::SearchConfig config;
        if (!args.config.empty()) config = udc::search::load_search_config(args.config);
        if (args.hardware >= 0) {
          if (size_t(args.hardware) >= config.hardware.size()) {
            throw std::runtime_error(
                fmt::format("--hardware {}: {} has {} hardware candidates (0 to {})", args.hardware,
                            args.config, config.hardware.size(), config.hardware.size() - 1));
          }
          config.hardware = config.hardware.only(size_t(args.hardware));
        }
        // --set: search.KEY to the supernet's training, finetune.KEY to the derived model's,
        // every other key to the NPU.
        udc::common::ConfigSource npu_changes = args.npu;
        npu_changes.overrides = udc::common::apply_param_overrides(
            udc::search::search_params(), config.search, "search", args.npu.overrides, "--set");
        npu_changes.overrides =
            udc::common::apply_param_overrides(udc::search::train_params(), config.finetune,
                                               "finetune", npu_changes.overrides, "--set");
        config.npu = config.npu.overridden_by(npu_changes);
        if (args.list_params) {
          fmt::print(
              "{}{}{}",
              udc::common::params_listing(udc::search::search_params(), config.search, "search"),
              udc::common::params_listing(udc::search::train_params(), config.finetune, "finetune"),
              udc::npu_sim::npu_params_listing(udc::npu_sim::load_npu_config(config.npu)));
          return;
        }
        if (const std::string problem = udc::search::check_train_spec(config.finetune);
            !problem.empty()) {
          throw std::runtime_error(args.config + ": finetune: " + problem);
        }
        udc::search::SearchOptions options;
        options.output_dir = args.output();
        options.restart = args.restart;
        options.ranks = run_ranks(args);
        options.log = &std::cout;
        if (!args.compare_hardware.empty()) {
          const udc::search::HardwareComparison comparison =
              udc::search::compare_with_network_alone(
                  config, udc::npu_sim::load_npu_config(config.npu), options, args.compare_hardware,
                  args.seeds.empty() ? std::vector<uint64_t>{config.search.seed} : args.seeds);
          if (options.ranks->primary()) {
            fmt::print("\n{}wrote {}, {}\n", udc::search::format_comparison(comparison),
                       comparison.json_path, comparison.csv_path);
          }
          check_seed_runs(comparison.co_search.seeds, *options.ranks);
          for (const auto& way : comparison.alone) check_seed_runs(way.seeds, *options.ranks);
          return;
        }
        if (!args.seeds.empty()) {
          check_seed_runs(
              udc::search::search_seeds(config, udc::npu_sim::load_npu_config(config.npu), options,
                                        args.seeds),
              *options.ranks);
          return;
        }
        const udc::search::SearchResult result =
            udc::search::run_search(config, udc::npu_sim::load_npu_config(config.npu), options);
        if (!result.within_budgets) {
          std::string lines;
          for (const std::string& v : result.budget_violations) lines += "\n  " + v;
          throw std::runtime_error("the found model does not meet its budgets:" + lines);
        }
      },
      /*takes_recipe=*/false, /*takes_hardware=*/true);
}

/// `udc results FOLDER...`: the seeds.json of several runs over seeds, side by side.
void add_results_command(CLI::App& app) {
  struct Arguments {
    std::vector<std::string> folders;
    std::string plot, csv, title = "test score against compressed weight streams";
  };
  auto args = std::make_shared<Arguments>();
  CLI::App* cmd = app.add_subcommand(
      "results",
      "Summarise runs over seeds (folders written with --seeds, e.g. results/*): a Markdown "
      "table of each folder's score and weight bytes, mean ± std, with the Pareto front; "
      "optionally a CSV and an SVG plot with error bars");
  cmd->add_option("folders", args->folders, "folders holding a seeds.json (or the files)")
      ->required();
  cmd->add_option("--plot", args->plot, "write the plot (SVG) here");
  cmd->add_option("--csv", args->csv, "write the figures (CSV) here");
  cmd->add_option("--title", args->title, "the plot's title");
  cmd->callback([args] {
    const std::vector<udc::search::ResultSummary> results =
        udc::search::summarise_results(args->folders);
    fmt::print("{}", udc::search::results_markdown_table(results));
    if (!args->csv.empty()) {
      udc::common::write_file_atomically(args->csv, udc::search::results_csv(results));
      fmt::print("wrote {}\n", args->csv);
    }
    if (!args->plot.empty()) {
      udc::common::write_file_atomically(args->plot,
                                         udc::search::results_plot_svg(results, args->title));
      fmt::print("wrote {}\n", args->plot);
    }
  });
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  CLI::App app{"udc (LibTorch commands)"};
  app.name("udc");
  app.require_subcommand(1);
  add_train_command(app);
  add_search_command(app);
  add_results_command(app);
  return udc::tool::run_cli(app, argc, argv);
}

int main(int argc, char* argv[]) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
