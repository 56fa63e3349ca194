// Timing checks on hand-built command streams: exact DMA and compute costs, bounds on
// a layer's cycles, monotonicity in bandwidth, MACs and decoders, determinism across
// jobs in one process, and timing-only mode agreeing with functional mode.
#include <gtest/gtest.h>

#include <cmath>

#include "job_builder.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"
#include "udc/npu_sim/timing.hpp"

namespace udc::npu_sim::test {
namespace {

NpuConfig default_config() {
  return load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/u55-128-deep-embedded.yaml");
}

TEST(NpuTiming, DmaCostsLatencyPlusBurstsAtBandwidth) {
  const NpuConfig config = default_config();
  for (uint64_t bytes : {1ull, 128ull, 1000ull, 4096ull, 100000ull}) {
    CommandStream stream;
    stream.commands.push_back(dma(MemoryId::Offchip, 0, MemoryId::Sram, 0, bytes));
    const JobReport report = Simulator::instance().run(stream, config);
    ASSERT_EQ(report.error, "");
    // Flash is the slower side (0.5 B/cycle, 128-byte bursts): whole bursts at its
    // bandwidth, plus flash read latency and SRAM write latency.
    const double bursts = std::ceil(double(bytes) / config.offchip.burst_bytes);
    const double expected = bursts * config.offchip.burst_bytes / config.offchip.bytes_per_cycle +
                            config.offchip.read_latency_cycles + config.sram.write_latency_cycles;
    const CommandReport& r = report.commands[0];
    EXPECT_DOUBLE_EQ(r.end_cycle - config.command_cycles, expected) << bytes << " bytes";
    EXPECT_DOUBLE_EQ(report.total_cycles, config.command_cycles + expected);
    EXPECT_EQ(report.traffic[1].read_bytes, bytes);
    EXPECT_EQ(report.traffic[0].write_bytes, bytes);
  }
}

TEST(NpuTiming, DmaCopiesDataAndWaitBlocksOnIt) {
  NpuConfig config = default_config();
  CommandStream stream;
  stream.images.push_back({MemoryId::Offchip, 64, {1, 2, 3, 4, 5}});
  stream.commands.push_back(dma(MemoryId::Offchip, 64, MemoryId::Sram, 10, 5));
  Command wait;
  wait.kind = CommandKind::WaitDma;
  stream.commands.push_back(wait);
  stream.outputs.push_back({"copy", MemoryId::Sram, 10, 5});
  const JobReport report = Simulator::instance().run(stream, config);
  EXPECT_EQ(report.outputs.at(0), (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  // The wait ends exactly when the DMA lands.
  EXPECT_DOUBLE_EQ(report.commands[1].end_cycle, report.commands[0].end_cycle);
  EXPECT_GT(report.commands[1].dma_wait_cycles, 0);
}

TEST(NpuTiming, ComputeBoundConvCostsMacsOverMacRate) {
  NpuConfig config = default_config();
  config.decoder_weights_per_cycle = 64;
  config.offchip = config.sram;  // weights as fast as activations
  std::mt19937 rng(7);
  {
    const ConvJob job = make_conv(8, 8, 32, 32, 3, 0.0, 16, rng);
    const JobReport report = Simulator::instance().run(job.stream, config);
    ASSERT_EQ(report.error, "");
    const CommandReport& r = report.commands[0];
    // Every dimension fills the micro-block: compute = MACs / 128.
    EXPECT_EQ(r.macs, uint64_t(8 * 8 * 32 * 9 * 32));
    EXPECT_DOUBLE_EQ(r.compute_cycles, double(r.macs) / 128);
    EXPECT_EQ(r.bottleneck(), "compute");
    EXPECT_GT(r.mac_utilisation, 0.6);
  }
  {
    // 7x7x12 outputs over 2x1x8 micro-blocks, 12 input channels over steps of 8:
    // utilisation (7*7*12*12) / (8*7*16*16) of the MAC-rate figure.
    const ConvJob job = make_conv(7, 7, 12, 12, 3, 0.0, 12, rng);
    const JobReport report = Simulator::instance().run(job.stream, config);
    const CommandReport& r = report.commands[0];
    EXPECT_DOUBLE_EQ(r.compute_cycles, 4.0 * 7 * 2 * 9 * 2);
    EXPECT_DOUBLE_EQ(double(r.macs) / 128 / r.compute_cycles,
                     (7.0 * 7 * 12 * 12) / (8 * 7 * 16 * 16));
  }
}

/// Lower and upper bounds of a kernel command from its parts (independent of the
/// pipeline): never below the largest of compute, weight fetch and decode; never above
/// their sum plus input reads, output writes, latencies and fixed overheads.
void check_bounds(const Command& c, const CommandReport& r, const NpuConfig& config) {
  double compute = 0, fetch = 0, decode = 0, output = 0;
  const MemoryConfig& wm = c.weight_memory == MemoryId::Sram ? config.sram : config.offchip;
  std::vector<double> per_engine(config.cores * config.weight_decoders, 0.0);
  for (uint32_t b = 0; b < c.ofm_blocks(); ++b) {
    compute += double(compute_cycles(c, b, config));
    if (has_weights(c.kind)) {
      const uint64_t bytes =
          c.weight_streams[b].bytes + uint64_t(c.block_channels(b)) * kScaleRecordBytes;
      fetch += data_cycles(wm, bytes) + wm.read_latency_cycles;
      per_engine[b % per_engine.size()] +=
          double(c.block_channels(b) * c.weights_per_channel()) / config.decoder_weights_per_cycle;
    }
    output +=
        data_cycles(config.sram, uint64_t(c.ofm.shape[0]) * c.ofm.shape[1] * c.block_channels(b));
  }
  for (double e : per_engine) decode = std::max(decode, e);
  double decode_sum = 0;
  for (double e : per_engine) decode_sum += e;
  const bool fits = ifm_bytes(c) <= config.shared_buffer_bytes;
  const double input = (fits ? 1 : c.ofm_blocks()) * (data_cycles(config.sram, c.ifm.elements()) +
                                                      config.sram.read_latency_cycles);
  const double overhead =
      config.command_cycles + config.op_setup_cycles + config.sram.write_latency_cycles;
  const double lower = std::max({compute, fetch - wm.read_latency_cycles * c.ofm_blocks(), decode});
  const double upper = compute + fetch + decode_sum + input + output + overhead;
  EXPECT_GE(r.cycles(), lower);
  EXPECT_LE(r.cycles(), upper);
  for (double part : {r.compute_cycles, r.weight_wait_cycles, r.input_wait_cycles,
                      r.output_wait_cycles, r.overhead_cycles, r.dma_wait_cycles, r.start_cycle}) {
    EXPECT_GE(part, 0);
  }
  // The MAC array's account adds up to the command's cycles.
  EXPECT_NEAR(r.overhead_cycles + r.compute_cycles + r.weight_wait_cycles + r.input_wait_cycles +
                  r.output_wait_cycles,
              r.cycles(), 1e-6);
}

TEST(NpuTiming, LayerCyclesLieBetweenTheirBounds) {
  std::mt19937 rng(8);
  const std::string dir = std::string(UDC_CONFIG_DIR) + "/npu/";
  for (const char* name :
       {"u55-128-deep-embedded", "u55-256-high-end-embedded", "u65-512-mid-end"}) {
    NpuConfig config = load_npu_config(dir + name + ".yaml");
    for (int trial = 0; trial < 12; ++trial) {
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      config.weight_decoders = uint32_t(pick(1, 3));
      config.shared_buffer_bytes = trial % 3 == 0 ? 1024 : 49152;
      const int out_c = pick(4, 48);
      const ConvJob job =
          make_conv(pick(1, 12), pick(1, 12), pick(1, 48), out_c, 1 + 2 * pick(0, 1),
                    0.1 * pick(0, 9), uint32_t(pick(1, out_c)), rng, pick(1, 2));
      for (bool timing_only : {false, true}) {
        RunOptions options;
        options.timing_only = timing_only;
        const JobReport report = Simulator::instance().run(job.stream, config, options);
        ASSERT_EQ(report.error, "");
        SCOPED_TRACE(std::string(name) + " trial " + std::to_string(trial));
        check_bounds(job.command, report.commands[0], config);
      }
    }
  }
}

TEST(NpuTiming, MoreHardwareNeverMakesAJobSlower) {
  std::mt19937 rng(9);
  const CommandStream stream = example_network(rng);
  RunOptions timing;
  timing.timing_only = true;
  const NpuConfig base = default_config();
  auto cycles = [&](const NpuConfig& config) {
    const JobReport report = Simulator::instance().run(stream, config, timing);
    EXPECT_EQ(report.error, "");
    return report.total_cycles;
  };
  const double base_cycles = cycles(base);
  NpuConfig c = base;
  for (double bw : {1.0, 2.0, 8.0}) {  // off-chip bandwidth up
    NpuConfig more = c;
    more.offchip.bytes_per_cycle = bw;
    EXPECT_LE(cycles(more), cycles(c)) << "offchip " << bw;
    c = more;
  }
  c = base;
  for (double bw : {16.0, 32.0}) {
    NpuConfig more = c;
    more.sram.bytes_per_cycle = bw;
    EXPECT_LE(cycles(more), cycles(c)) << "sram " << bw;
    c = more;
  }
  c = base;
  for (uint32_t macs : {256u, 512u}) {
    NpuConfig more = c;
    more.macs_per_cycle = macs;
    EXPECT_LE(cycles(more), cycles(c)) << macs << " MACs";
    c = more;
  }
  c = base;
  for (uint32_t engines : {2u, 3u, 4u}) {
    NpuConfig more = c;
    more.weight_decoders = engines;
    EXPECT_LE(cycles(more), cycles(c)) << engines << " decoders";
    c = more;
  }
  c = base;
  for (double rate : {2.0, 4.0}) {
    NpuConfig more = c;
    more.decoder_weights_per_cycle = rate;
    EXPECT_LE(cycles(more), cycles(c)) << rate << " weights/cycle";
    c = more;
  }
  EXPECT_GT(base_cycles, 0);
}

TEST(NpuTiming, OneProcessRunsManyJobsDeterministically) {
  std::mt19937 rng(10);
  const CommandStream stream = example_network(rng);
  NpuConfig fast = default_config();
  fast.macs_per_cycle = 256;
  fast.micro_block = {2, 2, 8};
  fast.weight_decoders = 2;
  const JobReport first = Simulator::instance().run(stream, default_config());
  const JobReport other = Simulator::instance().run(stream, fast);
  const JobReport again = Simulator::instance().run(stream, default_config());
  RunOptions timing;
  timing.timing_only = true;
  const JobReport timed = Simulator::instance().run(stream, default_config(), timing);
  EXPECT_EQ(first.error, "");
  EXPECT_LT(other.total_cycles, first.total_cycles);
  EXPECT_EQ(first.total_cycles, again.total_cycles);
  EXPECT_EQ(first.outputs, again.outputs);
  EXPECT_EQ(first.outputs, other.outputs);  // hardware changes timing, never results
  EXPECT_EQ(timed.total_cycles, first.total_cycles);
  ASSERT_EQ(first.commands.size(), timed.commands.size());
  for (size_t i = 0; i < first.commands.size(); ++i) {
    EXPECT_EQ(first.commands[i].end_cycle, timed.commands[i].end_cycle) << "command " << i;
  }
}

TEST(NpuTiming, SparseLowBitWeightsFetchFewerBytesAndFinishSooner) {
  // A weight-fetch-bound fully connected layer on the flash system: sparser, lower-bit
  // weights give shorter streams and fewer cycles.
  std::mt19937 rng(11);
  NpuConfig config = default_config();
  config.decoder_weights_per_cycle = 8;
  double previous_cycles = 1e300;
  uint64_t previous_bytes = ~0ull;
  for (auto [limit, sparsity] : {std::pair{127, 0.0}, {7, 0.0}, {7, 0.75}, {1, 0.9}}) {
    const Tensor input = random_tensor(1, 1, 256, rng);
    CommandStream stream;
    Command fc;
    fc.kind = CommandKind::FullyConnected;
    fc.ifm = tensor_ref(kIfmAddress, input);
    fc.ofm = tensor_ref(kOfmAddress, Tensor(1, 1, 64));
    fc.ofm_block_depth = 16;
    attach_weights(stream, fc, random_weights(64 * 256, limit, sparsity, rng),
                   random_quant(64, rng));
    place_input(stream, kIfmAddress, input);
    stream.commands.push_back(fc);
    const JobReport report = Simulator::instance().run(stream, config);
    const CommandReport& r = report.commands[0];
    EXPECT_EQ(r.bottleneck(), "weights");
    EXPECT_LT(r.weight_stream_bytes, previous_bytes);
    EXPECT_LT(r.cycles(), previous_cycles);
    previous_bytes = r.weight_stream_bytes;
    previous_cycles = r.cycles();
  }
}

TEST(NpuErrors, CorruptWeightStreamNamesCommandAndBlock) {
  std::mt19937 rng(12);
  ConvJob job = make_conv(4, 4, 8, 16, 3, 0.0, 8, rng);
  // Overwrite block 1's stream header with a reserved ZDIV value (4).
  MemoryImage& weights = job.stream.images[0];
  weights.bytes[job.command.weight_streams[1].address] = 0x04;
  const JobReport report = Simulator::instance().run(job.stream, default_config());
  EXPECT_NE(report.error.find("command 0 (conv2d)"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("block 1"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("ZDIV"), std::string::npos) << report.error;
}

TEST(NpuErrors, AddressesOutsideAMemoryAreRejected) {
  CommandStream stream;
  stream.commands.push_back(dma(MemoryId::Offchip, 0, MemoryId::Sram, (4u << 20) - 10, 64));
  const JobReport report = Simulator::instance().run(stream, default_config());
  EXPECT_NE(report.error.find("command 0 (dma): destination"), std::string::npos) << report.error;
  CommandStream image_too_big;
  image_too_big.images.push_back({MemoryId::Sram, 4u << 20, {1}});
  EXPECT_THROW(Simulator::instance().run(image_too_big, default_config()), std::invalid_argument);
}

}  // namespace
}  // namespace udc::npu_sim::test
