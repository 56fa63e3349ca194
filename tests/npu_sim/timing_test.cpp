// Timing checks on hand-built command streams: exact DMA and compute costs, bounds on
// a layer's cycles, monotonicity in bandwidth, MACs and decoders, determinism across
// jobs in one process, and timing-only mode agreeing with functional mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

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
  config.decoder_symbols_per_cycle = 64;
  config.offchip = config.sram;  // weights as fast as activations
  std::mt19937 rng(7);
  {
    // 32 input channels: depth-first, every dimension fills the micro-block and the
    // step: compute = MACs / 128.
    const ConvJob job = make_conv(8, 8, 32, 32, 3, 0.0, 16, rng);
    ASSERT_FALSE(part_kernel_first(job.command));
    const JobReport report = Simulator::instance().run(job.stream, config);
    ASSERT_EQ(report.error, "");
    const CommandReport& r = report.commands[0];
    EXPECT_EQ(r.macs, uint64_t(8 * 8 * 32 * 9 * 32));
    EXPECT_DOUBLE_EQ(r.compute_cycles, double(r.macs) / 128);
    EXPECT_EQ(r.bottleneck(), "compute");
    EXPECT_GT(r.mac_utilisation, 0.6);
  }
  {
    // 7x7x12 outputs, 12 input channels, 3x3: part-kernel-first (12*9 of 16*12 step slots
    // used, against 12 of 32 depth-first). Per block of 12 channels: 3 steps of 4 kernel
    // positions x 2 groups of 8 channels x 2 micro-blocks of depth, each step 4 cycles for
    // each of the 4x7 micro-blocks of 2x1.
    const ConvJob job = make_conv(7, 7, 12, 12, 3, 0.0, 12, rng);
    ASSERT_TRUE(part_kernel_first(job.command));
    const JobReport report = Simulator::instance().run(job.stream, config);
    const CommandReport& r = report.commands[0];
    EXPECT_DOUBLE_EQ(r.compute_cycles, 3.0 * 2 * 2 * (4 * 28));
  }
}

TEST(NpuTiming, FullyConnectedIsBoundByTheMacArraysWeightIntake) {
  // One output position: every weight loaded serves one micro-block, so the MAC array
  // takes 8 weights a cycle whatever its MAC count (Vela's figure for every Ethos-U55).
  std::mt19937 rng(12);
  for (const char* npu : {"ethos-u55-64", "ethos-u55-128", "ethos-u55-256"}) {
    NpuConfig config = load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/" + npu + ".yaml");
    config.memory_mode = "sram_only";
    const ConvJob job = make_fc(1024, 256, 32, 127, 0.0, rng);
    const JobReport report = Simulator::instance().run(job.stream, config);
    ASSERT_EQ(report.error, "");
    EXPECT_DOUBLE_EQ(report.commands[0].compute_cycles, 256.0 * 1024 / 8) << npu;
  }
}

TEST(NpuTiming, DecoderTimeFollowsTheStreamContent) {
  // Same layer, same weight count: a 90 % sparse 2-bit stream has far fewer symbols and
  // bits than a dense int8 one, so a slow decoder finishes it sooner.
  std::mt19937 rng(13);
  NpuConfig config = default_config();
  config.memory_mode = "sram_only";
  config.decoder_symbols_per_cycle = 0.5;
  double dense_cycles = 0;
  for (auto [limit, sparsity] : {std::pair{127, 0.0}, {1, 0.9}}) {
    const ConvJob job = make_fc(256, 64, 16, limit, sparsity, rng);
    const JobReport report = Simulator::instance().run(job.stream, config);
    const CommandReport& r = report.commands[0];
    ASSERT_EQ(report.error, "");
    EXPECT_EQ(r.bottleneck(), "weights");
    // Independent: the symbols the reference decoder reports, at the configured rate.
    double symbols = 0;
    for (const WeightStreamRef& s : job.command.weight_streams) symbols += double(s.symbols);
    const double decode = symbols / config.decoder_symbols_per_cycle;
    EXPECT_GE(r.cycles(), decode);
    if (sparsity == 0.0) {
      EXPECT_EQ(symbols, 64.0 * 256);  // dense: one symbol per weight, no zero runs
      dense_cycles = r.cycles();
    } else {
      EXPECT_LT(symbols, 0.3 * 64 * 256);
      EXPECT_LT(r.cycles(), 0.4 * dense_cycles);
    }
  }
}

/// Lower and upper bounds of a kernel command from its parts (independent of the
/// pipeline): never below the largest of compute and per-engine decode; never above the
/// sum of compute, weight fetches, decode, input reads, output writes, latencies and fixed
/// overheads.
void check_bounds(const Command& c, const CommandReport& r, const NpuConfig& config) {
  const MemoryConfig& wm = c.weight_memory == MemoryId::Sram ? config.sram : config.offchip;
  const BlockShape shape = ofm_block_shape(c);
  std::vector<double> per_engine(config.cores * config.weight_decoders, 0.0);
  double compute = 0, fetch = 0, decode_sum = 0, input = 0, output = 0;
  uint32_t block = 0;
  for (uint32_t row = 0; row < c.ofm.shape[0]; row += shape.h) {
    for (uint32_t col = 0; col < c.ofm.shape[1]; col += shape.w) {
      for (uint32_t k = 0; k < c.ofm_blocks(); ++k, ++block) {
        const BlockShape part{std::min(shape.h, c.ofm.shape[0] - row),
                              std::min(shape.w, c.ofm.shape[1] - col), c.block_channels(k)};
        compute += block_compute_cycles(c, part, config);
        if (has_weights(c.kind)) {
          fetch +=
              data_cycles(wm, c.weight_streams[k].bytes + uint64_t(part.d) * kScaleRecordBytes) +
              wm.read_latency_cycles;
          const double d =
              decode_cycles(c.weight_streams[k], part.d * c.weights_per_channel(), config);
          per_engine[block % per_engine.size()] += d;
          decode_sum += d;
        }
        const Access in = input_block_access(c, c.ifm, row, col, part);
        input += double(in.runs) * data_cycles(config.sram, in.run_bytes) +
                 config.sram.read_latency_cycles;
        const Access out = output_block_access(c, part, config);
        output += std::max(double(out.runs) * data_cycles(config.sram, out.run_bytes),
                           block_output_cycles(c, part, config));
      }
    }
  }
  const double decode = *std::max_element(per_engine.begin(), per_engine.end());
  const double overhead =
      config.command_cycles + config.op_setup_cycles + config.sram.write_latency_cycles;
  const double lower = std::max(compute, decode);
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
      // The smallest shared buffer the configuration allows, or a large one.
      const uint64_t smallest = (config.shared_buffer_reserved_banks + config.input_bank_granule +
                                 config.accumulator_bank_granule) *
                                kSharedBufferBankBytes;
      config.shared_buffer_bytes = trial % 3 == 0 ? smallest : 49152;
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
  for (double rate : {16.0, 32.0}) {
    NpuConfig more = c;
    more.decoder_symbols_per_cycle = rate;
    EXPECT_LE(cycles(more), cycles(c)) << rate << " symbols/cycle";
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
  double previous_cycles = 1e300;
  uint64_t previous_bytes = ~0ull;
  for (auto [limit, sparsity] : {std::pair{127, 0.0}, {7, 0.0}, {7, 0.75}, {1, 0.9}}) {
    const ConvJob job = make_fc(256, 64, 16, limit, sparsity, rng);
    const JobReport report = Simulator::instance().run(job.stream, config);
    const CommandReport& r = report.commands[0];
    // Dense int8 waits on flash; the sparsest stream comes close to the MAC array's weight
    // intake (64 x 256 weights at 8 a cycle), which bounds it from below.
    if (sparsity == 0.0) {
      EXPECT_EQ(r.bottleneck(), "weights");
    }
    EXPECT_GE(r.cycles(), 64.0 * 256 / config.mac_weights_per_cycle);
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

namespace {

/// Throws from a few frames down, each with locals ASan guards with redzones.
[[noreturn]] void throw_from_depth(int depth) {
  volatile char frame[256] = {};
  frame[depth % 256] = char(depth);
  if (depth == 0) throw std::runtime_error("deep error " + std::to_string(frame[0]));
  throw_from_depth(depth - 1);
}

}  // namespace

// Errors thrown after a simulation must unwind as any other: SystemC's coroutines switch
// stacks, and a wrong annotation of the switch back (npu_sim/src/sanitizer_fibers.cpp)
// made AddressSanitizer warn and then misreport such throws. ctest runs this test again
// as udc_sanitizer_fibers, failing on any AddressSanitizer message.
TEST(NpuErrors, ErrorsThrownAfterASimulationUnwindCleanly) {
  CommandStream stream;
  stream.commands.push_back(dma(MemoryId::Offchip, 0, MemoryId::Sram, 0, 64));
  ASSERT_EQ(Simulator::instance().run(stream, default_config()).error, "");
  for (int depth : {0, 3, 40}) {
    try {
      throw_from_depth(depth);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "deep error 0");
    }
  }
  try {
    load_npu_config("/nonexistent/npu.yaml");
    ADD_FAILURE() << "expected an error for a missing config";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/npu.yaml"), std::string::npos) << e.what();
  }
  // And a second job after the unwinding runs as the first did.
  EXPECT_EQ(Simulator::instance().run(stream, default_config()).error, "");
}

TEST(NpuErrors, GeometryThatWouldWrapAddressesIsRejected) {
  std::mt19937 rng(14);
  const ConvJob job = make_conv(3, 3, 8, 8, 3, 0.0, 8, rng);
  ASSERT_EQ(validate(job.stream), "");
  // A row stride of 2^63 over 3 rows wraps end_address() to just past the start, so the
  // bounds check alone would let the kernels read 2^64 bytes away.
  CommandStream wide = job.stream;
  Command& conv = wide.commands.back();
  conv.ifm.row_stride = 1ull << 63;
  ASSERT_LT(conv.ifm.end_address(), conv.ifm.address + 4096);
  EXPECT_NE(validate(wide).find("ifm.row_stride"), std::string::npos) << validate(wide);
  CommandStream padded = job.stream;
  padded.commands.back().pad_bottom = 0xFFFFFFF0u;  // wraps the kernels' padded height
  EXPECT_NE(validate(padded).find("padding out of range"), std::string::npos);
  CommandStream deep = job.stream;
  deep.commands.back().ofm.shape[2] = 1u << 20;
  EXPECT_NE(validate(deep).find("ofm.shape"), std::string::npos);
  CommandStream strided = job.stream;
  strided.commands.back().stride_w = 1000;
  EXPECT_NE(validate(strided).find("stride must be at most 64"), std::string::npos);
  CommandStream far;
  far.commands.push_back(dma(MemoryId::Offchip, ~0ull - 8, MemoryId::Sram, 0, 64));
  EXPECT_NE(validate(far).find("must not exceed 2^40"), std::string::npos);
}

}  // namespace
}  // namespace udc::npu_sim::test
