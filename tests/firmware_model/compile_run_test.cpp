// End to end: random valid models compile, run on the simulated NPU and match the
// reference interpreter bit for bit, under every NPU configuration the project ships and
// with every weight placement.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/driver.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/timing.hpp"

namespace udc::firmware_model {
namespace {

std::vector<TensorValues> random_inputs(const Model& model, std::mt19937& rng) {
  std::vector<TensorValues> inputs;
  std::uniform_int_distribution<int> byte(-128, 127);
  for (int32_t t : model.inputs) {
    TensorValues v(model.tensors[size_t(t)].elements());
    for (int8_t& x : v) x = int8_t(byte(rng));
    inputs.push_back(std::move(v));
  }
  return inputs;
}

std::vector<std::string> shipped_configs() {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(UDC_CONFIG_DIR "/npu")) {
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

/// Compiles, runs and compares every model output; returns the run for further checks.
NpuRun expect_matches_reference(const Model& model, const npu_sim::NpuConfig& config,
                                const CompileOptions& options, std::mt19937& rng,
                                const std::string& label) {
  const CompileResult result = compile(model, config, options);
  EXPECT_TRUE(result.fits()) << label << ": " << result.does_not_fit->reason;
  if (!result.fits()) return {};
  const std::vector<TensorValues> inputs = random_inputs(model, rng);
  const std::vector<TensorValues> expected = run_reference(model, inputs);
  NpuRun run = run_on_npu(model, result.compiled, config, inputs);
  EXPECT_EQ(run.outputs.size(), result.compiled.output_tensors.size());
  for (size_t i = 0; i < run.outputs.size(); ++i) {
    const int32_t t = result.compiled.output_tensors[i];
    const TensorValues& want = expected[size_t(t)];
    const TensorValues& got = run.outputs[i];
    EXPECT_EQ(got.size(), want.size());
    const auto diff = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    EXPECT_TRUE(diff.first == got.end())
        << label << ": tensor " << model.tensors[size_t(t)].name << " differs at byte "
        << (diff.first - got.begin()) << ": npu " << int(*diff.first) << ", reference "
        << int(*diff.second);
  }
  return run;
}

TEST(CompileRun, RandomModelsMatchReferenceOnEveryShippedConfig) {
  const std::vector<std::string> configs = shipped_configs();
  ASSERT_GE(configs.size(), 9u);
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 20; ++trial) {
    const Model model = random_model(rng);
    for (const std::string& path : configs) {
      const npu_sim::NpuConfig config = npu_sim::load_npu_config(path);
      expect_matches_reference(model, config, {}, rng,
                               "trial " + std::to_string(trial) + " on " + path);
    }
  }
}

TEST(CompileRun, MeanMatchesReferenceOnEveryShippedConfig) {
  // The MobileNet's global pool as TFLite's MEAN into another quantisation (as imported
  // Keras models have it): zero points applied, rescaled, averaged.
  MobileNetOptions options;
  options.input_side = 32;
  Model model = mobilenet_like(options);
  Operation& pool = model.operations[model.operations.size() - 2];
  ASSERT_EQ(pool.type, OpType::GlobalAvgPool);
  TensorInfo& out = model.tensors[size_t(pool.output)];
  out.scale *= 0.7f;
  out.zero_point = -90;
  pool.type = OpType::Mean;
  const auto [multiplier, shift] = int8::quantize_multiplier(
      double(model.tensors[size_t(pool.inputs[0])].scale) / double(out.scale));
  pool.bias = {0};
  pool.multiplier = {multiplier};
  pool.shift = {shift};
  ASSERT_EQ(validate(model), "");
  std::mt19937 rng(7);
  for (const std::string& path : shipped_configs()) {
    expect_matches_reference(model, npu_sim::load_npu_config(path), {}, rng, path);
  }
}

TEST(CompileRun, EveryPlacementAndTilingMatchesReference) {
  std::mt19937 rng(7);
  npu_sim::NpuConfig config;
  for (int trial = 0; trial < 16; ++trial) {
    const Model model = random_model(rng);
    const std::string label = "trial " + std::to_string(trial);
    CompileOptions stream;
    stream.weights = WeightPlacement::Stream;
    expect_matches_reference(model, config, stream, rng, label + " stream");
    CompileOptions prefetch;
    prefetch.weights = WeightPlacement::Prefetch;
    expect_matches_reference(model, config, prefetch, rng, label + " prefetch");
    // Blocks of 3 channels and buffers that hold about one block force many tiles.
    CompileOptions small_blocks = stream;
    small_blocks.ofm_block_depth = 3;
    const CompileResult probe = compile(model, config, small_blocks);
    uint64_t largest_block = 0;
    for (const npu_sim::Command& c : probe.compiled.stream.commands) {
      for (uint32_t block = 0; block < c.weight_streams.size(); ++block) {
        largest_block = std::max<uint64_t>(
            largest_block,
            (c.weight_streams[block].bytes + 15) / 16 * 16 +
                (c.block_channels(block) * npu_sim::kScaleRecordBytes + 15) / 16 * 16);
      }
    }
    if (largest_block > 0) {
      CompileOptions tiled = prefetch;
      tiled.ofm_block_depth = 3;
      tiled.weight_buffer_bytes = largest_block;
      tiled.stripe_rows = 2;  // stripes inside each prefetched tile
      expect_matches_reference(model, config, tiled, rng, label + " tiled");
      uint32_t most_tiles = 0;
      for (const LayerCommands& layer : compile(model, config, tiled).compiled.layers) {
        most_tiles = std::max(most_tiles, layer.tiles);
      }
      bool multi_block = false;
      for (const Operation& op : model.operations) {
        multi_block |= has_weights(op.type) && model.tensors[size_t(op.output)].shape[2] > 3;
      }
      if (multi_block) {
        EXPECT_GT(most_tiles, 1u) << label;
      }
    }
    CompileOptions striped = stream;
    striped.stripe_rows = 1 + uint32_t(trial % 3);
    expect_matches_reference(model, config, striped, rng, label + " striped");
    CompileOptions separate = stream;
    separate.reuse_memory = false;
    expect_matches_reference(model, config, separate, rng, label + " separate tensors");
    npu_sim::NpuConfig in_sram = config;
    in_sram.memory_mode = "sram_only";
    expect_matches_reference(model, in_sram, {}, rng, label + " weights in sram");
    npu_sim::NpuConfig dedicated = config;
    dedicated.memory_mode = "dedicated_sram";
    expect_matches_reference(model, dedicated, {}, rng, label + " feature maps off-chip");
    CompileOptions prefetch_dedicated = stream;
    prefetch_dedicated.weights = WeightPlacement::Prefetch;
    expect_matches_reference(model, dedicated, prefetch_dedicated, rng,
                             label + " feature maps off-chip, weights prefetched");
  }
}

TEST(CompileRun, MobileNetMatchesReference) {
  std::mt19937 rng(1);
  MobileNetOptions options;
  options.input_side = 32;
  options.weight_bits = 4;
  options.sparsity = 0.5;
  const Model model = mobilenet_like(options);
  expect_matches_reference(model, npu_sim::NpuConfig{}, {}, rng, "mobilenet 32x32");
}

TEST(CompileRun, DoesNotFitIsAValueWithTheNumbers) {
  const Model model = mobilenet_like();  // 96x96x3 input: 147,456-byte first activation
  npu_sim::NpuConfig small_sram;
  small_sram.sram.size_bytes = 64 * 1024;
  CompileResult r = compile(model, small_sram);
  ASSERT_FALSE(r.fits());
  EXPECT_EQ(r.does_not_fit->resource, "sram");
  EXPECT_GT(r.does_not_fit->needed, r.does_not_fit->available);
  EXPECT_EQ(r.does_not_fit->available, 64u * 1024);
  EXPECT_NE(r.does_not_fit->reason.find("64.0 KiB available"), std::string::npos)
      << r.does_not_fit->reason;

  npu_sim::NpuConfig small_flash;
  small_flash.offchip.size_bytes = 4096;
  CompileOptions stream;
  stream.weights = WeightPlacement::Stream;
  r = compile(model, small_flash, stream);
  ASSERT_FALSE(r.fits());
  EXPECT_EQ(r.does_not_fit->resource, "flash");
  EXPECT_GT(r.does_not_fit->needed, 4096u);

  // Prefetch demanded where the arena leaves too little SRAM for two buffers.
  npu_sim::NpuConfig tight = npu_sim::NpuConfig{};
  CompileOptions prefetch;
  prefetch.weights = WeightPlacement::Prefetch;
  const uint64_t arena = compile(model, tight, stream).compiled.plan.arena_bytes;
  tight.sram.size_bytes = arena + 64;
  r = compile(model, tight, prefetch);
  ASSERT_FALSE(r.fits());
  EXPECT_EQ(r.does_not_fit->resource, "weight buffer");
  // Auto streams from flash, which needs no buffers.
  r = compile(model, tight, {});
  ASSERT_TRUE(r.fits());
  EXPECT_EQ(r.compiled.weights, WeightPlacement::Stream);

  ModelBuilder b("wide_pool");
  const int32_t x = b.add_input("in", Shape{80, 80, 4}, 0.1f, 0);
  b.mark_output(b.global_avg_pool("gap", x));
  r = compile(b.finish(), npu_sim::NpuConfig{});
  ASSERT_FALSE(r.fits());
  EXPECT_EQ(r.does_not_fit->resource, "operation");
}

/// Weight stream bytes and simulated cycles of the MobileNet-like model with weights
/// streamed from the deep-embedded system's flash (0.5 bytes per cycle).
std::pair<uint64_t, double> stream_bytes_and_cycles(uint32_t bits, double sparsity) {
  MobileNetOptions options;
  options.weight_bits = bits;
  options.sparsity = sparsity;
  options.input_side = 48;
  const Model model = mobilenet_like(options);
  CompileOptions stream;
  stream.weights = WeightPlacement::Stream;
  const npu_sim::NpuConfig config;
  const CompileResult r = compile(model, config, stream);
  uint64_t bytes = 0;
  for (const LayerCommands& l : r.compiled.layers) bytes += l.weight_stream_bytes;
  std::vector<TensorValues> inputs{TensorValues(model.tensors[0].elements(), 0)};
  npu_sim::RunOptions timing;
  timing.timing_only = true;
  return {bytes, run_on_npu(model, r.compiled, config, inputs, timing).job.total_cycles};
}

TEST(CompileRun, SparseAndLowBitWeightsShrinkStreamsAndWeightBoundCycles) {
  const auto [dense8, dense8_cycles] = stream_bytes_and_cycles(8, 0.0);
  const auto [dense4, dense4_cycles] = stream_bytes_and_cycles(4, 0.0);
  const auto [sparse8, sparse8_cycles] = stream_bytes_and_cycles(8, 0.75);
  const auto [low2, low2_cycles] = stream_bytes_and_cycles(2, 0.5);
  // Streams shrink about in proportion to the information per weight (the first layer
  // stays 8-bit and dense): 4 of 8 bits, a quarter of the weights left.
  EXPECT_LT(double(dense4) / double(dense8), 0.6);
  EXPECT_GT(double(dense4) / double(dense8), 0.35);
  EXPECT_LT(double(sparse8) / double(dense8), 0.45);
  EXPECT_LT(low2, sparse8);
  // Streaming from flash is weight-fetch bound here, so fewer bytes mean fewer cycles.
  EXPECT_LT(dense4_cycles, dense8_cycles * 0.8);
  EXPECT_LT(sparse8_cycles, dense8_cycles * 0.7);
  EXPECT_LT(low2_cycles, dense4_cycles);
}

TEST(CompileRun, OutputBlocksFitTheSharedBufferAndStripesChangeNoResult) {
  const Model model = mobilenet_like();  // 48x48x16 inputs exceed U55-128's 24 KiB buffer
  for (const char* name : {"u55-128-deep-embedded", "u65-512-mid-end"}) {
    const npu_sim::NpuConfig config =
        npu_sim::load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/" + name + ".yaml");
    const CompileResult whole = compile(model, config);
    ASSERT_TRUE(whole.fits()) << name;
    bool cut = false;
    for (const npu_sim::Command& c : whole.compiled.stream.commands) {
      if (c.kind == npu_sim::CommandKind::Dma || c.kind == npu_sim::CommandKind::WaitDma) continue;
      const npu_sim::BlockShape b = npu_sim::ofm_block_shape(c);
      // Reserved banks, two input blocks and two accumulator blocks, recounted here.
      EXPECT_TRUE(npu_sim::fits_shared_buffer(c, b, config))
          << name << " " << npu_sim::command_name(c.kind);
      cut |= b.h < c.ofm.shape[0] || b.w < c.ofm.shape[1];
    }
    EXPECT_TRUE(cut) << name << ": the first layers' outputs exceed the buffer and are cut";
    CompileOptions striped;
    striped.stripe_rows = 3;
    const CompileResult stripes = compile(model, config, striped);
    ASSERT_TRUE(stripes.fits());
    const std::vector<TensorValues> inputs{TensorValues(model.tensors[0].elements(), 3)};
    const NpuRun a = run_on_npu(model, whole.compiled, config, inputs);
    const NpuRun b = run_on_npu(model, stripes.compiled, config, inputs);
    EXPECT_EQ(a.outputs, b.outputs) << name;
    EXPECT_EQ(a.outputs.at(0), run_reference(model, inputs).at(size_t(model.outputs[0]))) << name;
  }
}

}  // namespace
}  // namespace udc::firmware_model
