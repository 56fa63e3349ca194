// The example command stream shipped in npu_sim/examples (used by the README and the
// CLI test) is the one the job builder makes; run with UDC_REGENERATE_EXAMPLES=1 to
// rewrite it after a deliberate change.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "job_builder.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::npu_sim::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(ExampleStream, ShippedFileIsTheBuilderOutputAndRuns) {
  std::mt19937 rng(9);
  const CommandStream stream = example_network(rng);
  const std::string shipped = std::string(UDC_SOURCE_DIR) + "/npu_sim/examples/small_network.json";
  if (std::getenv("UDC_REGENERATE_EXAMPLES")) write_command_stream(stream, shipped);
  const std::string fresh = ::testing::TempDir() + "small_network.json";
  write_command_stream(stream, fresh);
  EXPECT_EQ(slurp(fresh), slurp(shipped)) << "regenerate with UDC_REGENERATE_EXAMPLES=1";
  const CommandStream read_back = read_command_stream(shipped);
  const NpuConfig config =
      load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/u55-128-deep-embedded.yaml");
  const JobReport a = Simulator::instance().run(stream, config);
  const JobReport b = Simulator::instance().run(read_back, config);
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.total_cycles, b.total_cycles);
}

}  // namespace
}  // namespace udc::npu_sim::test
