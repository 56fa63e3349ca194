// `udc launch`: what torchrun --standalone does, for udc: starts N copies of a `udc` command
// on this host with the rendezvous variables set (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), waits for all, and exits with the first failing rank's status. The ranks
// themselves end each other on a failure (ranks.hpp), so the launcher only waits.
#include "launch_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "udc/common/local_port.hpp"

namespace udc::tool {
namespace {

struct LaunchFlags {
  unsigned ranks = 2;
  unsigned port = 0;  ///< 0: a free one
  CLI::App* command = nullptr;
};

[[noreturn]] void exec_rank(const std::vector<std::string>& args, unsigned rank, unsigned world,
                            unsigned port) {
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  std::vector<char*> argv;
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  std::vector<std::string> copies = args;
  for (std::string& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(self.c_str(), argv.data());
  fmt::print(stderr, "udc launch: rank {}: cannot run udc: {}\n", rank, std::strerror(errno));
  _exit(127);
}

void run_launch(const LaunchFlags& f) {
  const std::vector<std::string> args = f.command->remaining();
  if (args.empty()) {
    throw std::invalid_argument("launch: no command (e.g. udc launch -n 2 train --config C.yaml)");
  }
  if (args[0] != "train" && args[0] != "search") {
    throw std::invalid_argument("launch: '" + args[0] +
                                "' does not run data-parallel (train and search do)");
  }
  const unsigned port = f.port ? f.port : common::free_loopback_port();
  fmt::print("udc launch: {} ranks of `udc {}` on this host, store on 127.0.0.1:{}\n", f.ranks,
             fmt::join(args, " "), port);
  std::fflush(stdout);
  std::vector<pid_t> pids;
  for (unsigned r = 0; r < f.ranks; ++r) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("launch: cannot start a rank");
    if (pid == 0) exec_rank(args, r, f.ranks, port);
    pids.push_back(pid);
  }
  int first_failure = 0;
  for (size_t done = 0; done < pids.size(); ++done) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) break;
    const size_t rank = size_t(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0) {
      fmt::print(stderr, "udc launch: rank {} of {} {} {}\n", rank, f.ranks,
                 WIFEXITED(status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? code : WTERMSIG(status));
      if (first_failure == 0) first_failure = code;
    }
  }
  if (first_failure != 0) std::exit(first_failure);
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto flags = std::make_shared<LaunchFlags>();
  CLI::App* launch = app.add_subcommand(
      "launch",
      "Run a data-parallel `udc train` or `udc search` as N ranks on this host (sets RANK, "
      "WORLD_SIZE, MASTER_ADDR, MASTER_PORT); e.g. udc launch -n 2 train --config C.yaml");
  launch->add_option("-n,--ranks", flags->ranks, "ranks (processes) to start")
      ->check(CLI::Range(1u, 1024u));
  launch->add_option("--port", flags->port, "TCP port of the rendezvous store (default: a free one)")
      ->check(CLI::Range(1u, 65535u));
  launch->prefix_command();
  flags->command = launch;
  launch->callback([flags] { run_launch(*flags); });
}

}  // namespace udc::tool
