// The one measurement of a model on an NPU against the compiler's own numbers and the
// codec run independently, and its does-not-fit path.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "udc/compression/encoder.hpp"
#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/measurement.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::firmware_model {
namespace {

npu_sim::NpuConfig deep_embedded() {
  return npu_sim::load_npu_config(UDC_CONFIG_DIR "/npu/u55-128-deep-embedded.yaml");
}

Model sparse_mobilenet() {
  MobileNetOptions options;
  options.weight_bits = 4;
  options.sparsity = 0.5;
  return mobilenet_like(options);
}

}  // namespace

TEST(Measurement, BytesAreTheCompilersAndTheCodecsPerBlock) {
  const Model model = sparse_mobilenet();
  const npu_sim::NpuConfig npu = deep_embedded();
  const ModelMeasurement m = measure_model(model, npu);
  ASSERT_TRUE(m.fits());
  const CompileResult compiled = compile(model, npu);
  ASSERT_TRUE(compiled.fits());
  EXPECT_EQ(m.flash_bytes, compiled.compiled.plan.flash_bytes);
  EXPECT_EQ(m.sram_bytes, compiled.compiled.plan.sram_bytes);
  EXPECT_EQ(m.arena_bytes, compiled.compiled.plan.arena_bytes);
  EXPECT_GT(m.cycles, 0.0);
  // Each layer's streams re-encoded here block by block in the compiler's block depth.
  uint64_t streams = 0, images = 0;
  for (const LayerBytes& layer : m.layers) {
    const Operation& op = model.operations[layer.operation];
    const uint32_t channels = model.tensors[size_t(op.output)].shape[2];
    const LayerCommands& commands = compiled.compiled.layers[layer.operation];
    const uint64_t per_channel = op.weights.size() / channels;
    uint64_t expected = 0;
    for (uint32_t first = 0; first < channels; first += commands.block_depth) {
      const uint32_t count = std::min(commands.block_depth, channels - first);
      expected += compression::encode_weights(op.weights.data() + first * per_channel,
                                              size_t(count) * per_channel)
                      .size();
    }
    EXPECT_EQ(layer.weight_bytes, expected) << op.name;
    EXPECT_GE(layer.image_bytes, expected + uint64_t{channels} * npu_sim::kScaleRecordBytes)
        << op.name;
    streams += layer.weight_bytes;
    images += layer.image_bytes;
  }
  EXPECT_EQ(streams, m.weight_bytes);
  EXPECT_EQ(images, m.flash_bytes);
  EXPECT_TRUE(
      budget_violations(m, {m.weight_bytes, m.flash_bytes, m.arena_bytes, m.cycles}).empty());
  const std::vector<std::string> over = budget_violations(m, {m.weight_bytes - 1, {}, {}, {}});
  ASSERT_EQ(over.size(), 1u);
  EXPECT_EQ(over[0], "weight_bytes: " + std::to_string(m.weight_bytes) + " B measured, budget " +
                         std::to_string(m.weight_bytes - 1) + " B");
}

TEST(Measurement, AModelThatDoesNotFitStillHasItsWeightBytes) {
  const Model model = sparse_mobilenet();
  npu_sim::NpuConfig small = deep_embedded();
  small.sram.size_bytes = 16 * 1024;  // the arena alone needs about 110 KiB
  const ModelMeasurement m = measure_model(model, small);
  ASSERT_FALSE(m.fits());
  EXPECT_EQ(m.does_not_fit->resource, "sram");
  EXPECT_GT(m.sram_bytes, small.sram.size_bytes);
  EXPECT_EQ(m.cycles, 0.0);
  // The streams do not depend on the SRAM: the same as on the shipped system.
  EXPECT_EQ(m.weight_bytes, measure_model(model, deep_embedded(), {false, {}}).weight_bytes);
  const std::vector<std::string> lines = budget_violations(m, {});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("does not fit: ", 0), 0u) << lines[0];
}

}  // namespace udc::firmware_model
