// Data-parallel training's foundations: the rendezvous read from torchrun's and OpenMPI's
// variables, and the collectives' contract, checked against one process: rank_probe
// processes on loopback (2 and 3 ranks, unequal shares) sum their gradients, batch-norm
// statistics and activation ranges into exactly what one process computes on the whole
// batch.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "rank_probe.hpp"
#include "udc/common/local_port.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace udc::search;

namespace {

using Variables = std::map<std::string, std::string>;

Rendezvous rendezvous_of(const Variables& variables) {
  return rendezvous_from_environment([&](const std::string& name) -> std::optional<std::string> {
    auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  });
}

/// Runs rank_probe as `world` ranks on loopback; returns what rank 0 saved. Fails the test
/// when a rank exits non-zero or they take over a minute.
std::vector<torch::Tensor> run_probe_ranks(uint32_t world) {
  const fs::path output = fs::temp_directory_path() / fmt::format("rank_probe_{}.pt", getpid());
  const uint16_t port = udc::common::free_loopback_port();
  std::vector<pid_t> children;
  for (uint32_t r = 0; r < world; ++r) {
    std::vector<std::string> variables;
    for (char** e = environ; *e != nullptr; ++e) variables.emplace_back(*e);
    variables.push_back(fmt::format("RANK={}", r));
    variables.push_back(fmt::format("WORLD_SIZE={}", world));
    variables.push_back("MASTER_ADDR=127.0.0.1");
    variables.push_back(fmt::format("MASTER_PORT={}", port));
    variables.push_back("UDC_RANK_TIMEOUT=60");
    std::vector<char*> envp;
    for (auto& v : variables) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::string program = UDC_RANK_PROBE, path = output.string();
    char* argv[] = {program.data(), path.data(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv, envp.data()) != 0) {
      throw std::runtime_error("cannot start " + program);
    }
    children.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (pid_t pid : children) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (pid_t p : children) kill(p, SIGKILL);
        ADD_FAILURE() << "rank_probe ranks did not finish within a minute";
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a rank_probe rank failed";
  }
  std::vector<torch::Tensor> values;
  if (fs::exists(output)) {
    torch::load(values, output.string());
    fs::remove(output);
  }
  return values;
}

}  // namespace

TEST(Rendezvous, ReadsTorchrunAndOpenMpiVariables) {
  const Rendezvous none = rendezvous_of({});
  EXPECT_EQ(none.world_size, 1u);
  EXPECT_EQ(none.rank, 0u);

  const Rendezvous torchrun = rendezvous_of(
      {{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(torchrun.rank, 3u);
  EXPECT_EQ(torchrun.world_size, 4u);
  EXPECT_EQ(torchrun.address, "node7");
  EXPECT_EQ(torchrun.port, 29400);
  EXPECT_EQ(torchrun.source, "torchrun variables");

  // mpirun on one host: the store defaults to loopback and torchrun's default port.
  const Rendezvous local_mpi = rendezvous_of({{"OMPI_COMM_WORLD_RANK", "1"},
                                              {"OMPI_COMM_WORLD_SIZE", "2"},
                                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                              {"UDC_RANK_TIMEOUT", "42"}});
  EXPECT_EQ(local_mpi.rank, 1u);
  EXPECT_EQ(local_mpi.world_size, 2u);
  EXPECT_EQ(local_mpi.address, "127.0.0.1");
  EXPECT_EQ(local_mpi.port, kDefaultRendezvousPort);
  EXPECT_EQ(local_mpi.timeout.count(), 42);
}

TEST(Rendezvous, MalformedOrMissingVariablesAreNamed) {
  auto error_of = [](const Variables& variables) {
    try {
      rendezvous_of(variables);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}})
          .find("RANK='2'"),
      std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "two"}}).find("WORLD_SIZE='two'"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}).find("MASTER_ADDR"),
      std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
          .find("MASTER_PORT='70000'"),
      std::string::npos);
  // mpirun over several hosts cannot guess rank 0's host.
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "0"},
                      {"OMPI_COMM_WORLD_SIZE", "4"},
                      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}})
                .find("MASTER_ADDR"),
            std::string::npos);
  EXPECT_NE(error_of({{"UDC_RANK_TIMEOUT", "0"}}).find("UDC_RANK_TIMEOUT"), std::string::npos);
}

TEST(Ranks, RanksSumToTheGradientOfTheWholeBatchOnOneProcess) {
  // One process, the whole batch: plain batch norm, no collectives.
  const auto net = probe::probe_network();
  const std::vector<torch::Tensor> expected = probe::probe_steps(*net, nullptr);
  ASSERT_FALSE(expected.empty());
  for (uint32_t world : {2u, 3u}) {
    const std::vector<torch::Tensor> got = run_probe_ranks(world);
    ASSERT_EQ(got.size(), expected.size()) << world << " ranks";
    for (size_t i = 0; i < got.size(); ++i) {
      // Float tolerance, relative to each tensor's largest entry: the ranks add in another
      // order, and the synchronised batch norm's statistics (summed in double) differ from
      // LibTorch's in the last float bits, which the quantised step's rounding of the folded
      // weights can turn into a slightly different gradient (1e-3 of the largest seen).
      const torch::Tensor a = got[i].to(torch::kDouble), b = expected[i].to(torch::kDouble);
      const double difference = (a - b).abs().max().item<double>();
      const double scale = b.abs().max().item<double>();
      EXPECT_LE(difference, 1e-3 * scale + 1e-7)
          << world << " ranks, tensor " << i << " of " << got.size() << ", largest entry " << scale;
    }
  }
}

TEST(Ranks, OneProcessNeedsNoStoreAndItsCollectivesChangeNothing) {
  const std::shared_ptr<Ranks> one =
      Ranks::join(rendezvous_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  EXPECT_EQ(one->size(), 1u);
  EXPECT_TRUE(one->primary());
  EXPECT_EQ(one->label(), "");
  one->barrier("nothing");
  EXPECT_EQ(one->broadcast_value(7, "seven"), 7);
  EXPECT_EQ(one->broadcast_bytes("abc", "bytes"), "abc");
  torch::Tensor t = torch::arange(5).to(torch::kFloat);
  sum_over_ranks(one.get(), {t}, "t");
  EXPECT_TRUE(torch::equal(t, torch::arange(5).to(torch::kFloat)));
}
