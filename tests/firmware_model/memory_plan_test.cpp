// The arena plan against a brute-force liveness computation written here from the model
// alone: regions of tensors live at the same step never overlap, the arena is never
// below the peak of live bytes, and on chains of layers it meets that peak exactly.
#include <gtest/gtest.h>

#include <random>

#include "udc/firmware_model/compiler.hpp"
#include "udc/firmware_model/model_generator.hpp"

namespace udc::firmware_model {
namespace {

uint64_t aligned(uint64_t bytes) {
  return (bytes + 15) / 16 * 16;
}

struct BruteForce {
  std::vector<int32_t> root;            ///< storage owner of each tensor
  std::vector<std::vector<bool>> live;  ///< [step][root]
  uint64_t peak = 0;                    ///< max over steps of live aligned bytes
};

BruteForce brute_force(const Model& model) {
  BruteForce b;
  const size_t n = model.tensors.size(), steps = std::max<size_t>(model.operations.size(), 1);
  b.root.resize(n);
  for (size_t t = 0; t < n; ++t) b.root[t] = int32_t(t);
  for (const Operation& op : model.operations) {
    if (op.type == OpType::Reshape) b.root[size_t(op.output)] = b.root[size_t(op.inputs[0])];
  }
  b.live.assign(steps, std::vector<bool>(n, false));
  for (size_t s = 0; s < steps; ++s) {
    for (size_t t = 0; t < n; ++t) {
      // Defined at or before s, and read at or after s (or an output).
      bool defined =
          std::find(model.inputs.begin(), model.inputs.end(), int32_t(t)) != model.inputs.end();
      bool needed =
          std::find(model.outputs.begin(), model.outputs.end(), int32_t(t)) != model.outputs.end();
      for (size_t i = 0; i < model.operations.size(); ++i) {
        const Operation& op = model.operations[i];
        if (op.output == int32_t(t) && i <= s) defined = true;
        if (op.output == int32_t(t) && i == s) needed = true;
        for (int32_t in : op.inputs) {
          if (in == int32_t(t) && i >= s) needed = true;
        }
      }
      if (defined && needed) b.live[s][size_t(b.root[t])] = true;
    }
    uint64_t bytes = 0;
    for (size_t t = 0; t < n; ++t) {
      if (b.live[s][t]) bytes += aligned(model.tensors[t].bytes());
    }
    b.peak = std::max(b.peak, bytes);
  }
  return b;
}

void expect_valid_plan(const Model& model, const MemoryPlan& plan, const BruteForce& b,
                       const std::string& label) {
  for (size_t t = 0; t < model.tensors.size(); ++t) {
    EXPECT_EQ(plan.tensors[t].address, plan.tensors[size_t(b.root[t])].address) << label;
    EXPECT_LE(plan.tensors[t].address + aligned(model.tensors[t].bytes()), plan.arena_bytes)
        << label;
  }
  for (size_t s = 0; s < b.live.size(); ++s) {
    for (size_t x = 0; x < model.tensors.size(); ++x) {
      for (size_t y = x + 1; y < model.tensors.size(); ++y) {
        if (!b.live[s][x] || !b.live[s][y]) continue;
        const uint64_t xa = plan.tensors[x].address, ya = plan.tensors[y].address;
        const bool apart = xa + aligned(model.tensors[x].bytes()) <= ya ||
                           ya + aligned(model.tensors[y].bytes()) <= xa;
        EXPECT_TRUE(apart) << label << ": tensors " << x << " and " << y
                           << " overlap while both live at step " << s;
      }
    }
  }
  EXPECT_GE(plan.arena_bytes, b.peak) << label;
}

TEST(MemoryPlan, RandomModelsNeverOverlapLiveTensors) {
  std::mt19937 rng(99);
  npu_sim::NpuConfig config;
  double worst_ratio = 1.0;
  for (int trial = 0; trial < 200; ++trial) {
    const Model model = random_model(rng, RandomModelOptions{10, 16, 32});
    const CompileResult result = compile(model, config);
    ASSERT_TRUE(result.fits());
    const BruteForce b = brute_force(model);
    expect_valid_plan(model, result.compiled.plan, b, "trial " + std::to_string(trial));
    worst_ratio = std::max(worst_ratio, double(result.compiled.plan.arena_bytes) / double(b.peak));
  }
  // Residual branches can force gaps; the best of the planner's strategies stays close.
  EXPECT_LE(worst_ratio, 1.5);
  RecordProperty("worst_arena_over_bound", std::to_string(worst_ratio));
}

TEST(MemoryPlan, ChainsMeetTheLivenessBoundExactly) {
  std::mt19937 rng(5);
  npu_sim::NpuConfig config;
  for (int trial = 0; trial < 100; ++trial) {
    // A chain of convolutions with random widths and strides.
    ModelBuilder builder("chain");
    int32_t x = builder.add_input("in", Shape{16, 16, 1 + uint32_t(rng() % 24)}, 0.05f, 0);
    const int layers = 2 + int(rng() % 6);
    for (int l = 0; l < layers; ++l) {
      const uint32_t ic = builder.tensor(x).shape[2], oc = 1 + uint32_t(rng() % 48);
      ModelBuilder::Requant r{std::vector<int32_t>(oc, 0), std::vector<int32_t>(oc, 1 << 30),
                              std::vector<int32_t>(oc, -4)};
      x = builder.conv2d("conv" + std::to_string(l), x, oc, 1, 1 + uint32_t(rng() % 2),
                         Padding::Same, std::vector<int8_t>(size_t(oc) * ic, 1), 8, r,
                         ModelBuilder::Quant{0.05f, 0}, Activation::None);
    }
    builder.mark_output(x);
    const Model model = builder.finish();
    const CompileResult result = compile(model, config);
    ASSERT_TRUE(result.fits());
    const BruteForce b = brute_force(model);
    expect_valid_plan(model, result.compiled.plan, b, "chain " + std::to_string(trial));
    EXPECT_EQ(result.compiled.plan.arena_bytes, b.peak) << "chain " << trial;
    EXPECT_EQ(*std::max_element(result.compiled.plan.live_bytes.begin(),
                                result.compiled.plan.live_bytes.end()),
              b.peak);
  }
}

TEST(MemoryPlan, SeparateTensorsWhenReuseIsOff) {
  std::mt19937 rng(3);
  const Model model = random_model(rng);
  CompileOptions options;
  options.reuse_memory = false;
  const CompileResult result = compile(model, npu_sim::NpuConfig{}, options);
  ASSERT_TRUE(result.fits());
  const BruteForce b = brute_force(model);
  const MemoryPlan& plan = result.compiled.plan;
  for (size_t x = 0; x < model.tensors.size(); ++x) {
    for (size_t y = x + 1; y < model.tensors.size(); ++y) {
      if (b.root[x] == b.root[y]) continue;
      EXPECT_TRUE(plan.tensors[x].address + model.tensors[x].bytes() <= plan.tensors[y].address ||
                  plan.tensors[y].address + model.tensors[y].bytes() <= plan.tensors[x].address);
    }
  }
  EXPECT_EQ(result.compiled.output_tensors.size(), model.tensors.size());
}

}  // namespace
}  // namespace udc::firmware_model
