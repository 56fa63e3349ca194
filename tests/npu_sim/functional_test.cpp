// Every kernel operation of the simulator against the scalar reference, on random
// shapes and parameters: odd channel counts, padding on all sides, strides 1 and 2,
// blocks of every depth, saturating requantisation, clamps, several NPU configs.
#include <gtest/gtest.h>

#include "job_builder.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/simulator.hpp"

namespace udc::npu_sim::test {
namespace {

NpuConfig config_named(const std::string& name) {
  return load_npu_config(std::string(UDC_CONFIG_DIR) + "/npu/" + name + ".yaml");
}

std::vector<NpuConfig> test_configs() {
  NpuConfig many_decoders = config_named("u65-512-mid-end");
  many_decoders.weight_decoders = 3;
  return {config_named("u55-128-deep-embedded"), config_named("ethos-u55-32"), many_decoders};
}

JobReport run(const CommandStream& stream, const NpuConfig& config) {
  JobReport report = Simulator::instance().run(stream, config);
  EXPECT_EQ(report.error, "");
  return report;
}

struct WindowCase {
  Tensor input;
  RefWindow win;
  int pad_bottom = 0, pad_right = 0;
};

WindowCase random_window(std::mt19937& rng, int max_c) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  WindowCase w;
  w.win.kh = pick(1, 4);
  w.win.kw = pick(1, 4);
  w.win.sh = pick(1, 2);
  w.win.sw = pick(1, 2);
  w.win.pad_top = pick(0, w.win.kh - 1);
  w.win.pad_left = pick(0, w.win.kw - 1);
  w.pad_bottom = pick(0, w.win.kh - 1);
  w.pad_right = pick(0, w.win.kw - 1);
  const int h = pick(std::max(1, w.win.kh - w.win.pad_top - w.pad_bottom), 9);
  const int wd = pick(std::max(1, w.win.kw - w.win.pad_left - w.pad_right), 9);
  w.input = random_tensor(h, wd, pick(1, max_c), rng);
  w.win.out_h = (h + w.win.pad_top + w.pad_bottom - w.win.kh) / w.win.sh + 1;
  w.win.out_w = (wd + w.win.pad_left + w.pad_right - w.win.kw) / w.win.sw + 1;
  return w;
}

Command window_command(CommandKind kind, const WindowCase& w, int out_c, std::mt19937& rng) {
  Command c;
  c.kind = kind;
  set_window(c, w.win, w.pad_bottom, w.pad_right);
  c.ifm = tensor_ref(kIfmAddress, w.input);
  c.ofm = tensor_ref(kOfmAddress, Tensor(w.win.out_h, w.win.out_w, out_c));
  c.ofm_block_depth = uint32_t(std::uniform_int_distribution<int>(1, out_c)(rng));
  return c;
}

void set_quant(Command& c, const RefQuant& q) {
  c.input_zero_point = q.input_zp;
  c.output_zero_point = q.output_zp;
  c.activation_min = q.act_min;
  c.activation_max = q.act_max;
}

void random_activation(RefQuant& q, std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
    case 0:
      break;  // none
    case 1:
      q.act_min = std::max(q.output_zp, -128);
      break;  // ReLU
    default:
      q.act_min = std::max(q.output_zp, -128);  // ReLU6-like window
      q.act_max = std::min(q.output_zp + 60, 127);
  }
}

TEST(NpuFunctional, Conv2dMatchesScalarReference) {
  std::mt19937 rng(1);
  for (const NpuConfig& config : test_configs()) {
    for (int trial = 0; trial < 25; ++trial) {
      WindowCase w = random_window(rng, 19);
      const int out_c = std::uniform_int_distribution<int>(1, 21)(rng);
      RefQuant q = random_quant(out_c, rng);
      random_activation(q, rng);
      const auto weights =
          random_weights(size_t(out_c) * w.win.kh * w.win.kw * w.input.c,
                         std::uniform_int_distribution<int>(1, 127)(rng), 0.3, rng);
      CommandStream stream;
      Command c = window_command(CommandKind::Conv2d, w, out_c, rng);
      set_quant(c, q);
      attach_weights(stream, c, weights, q);
      place_input(stream, kIfmAddress, w.input);
      stream.commands.push_back(c);
      stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
      const JobReport report = run(stream, config);
      const Tensor expected = ref_conv(w.input, weights, out_c, w.win, q);
      ASSERT_EQ(report.outputs.at(0),
                std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
          << config.npu_name << " trial " << trial;
    }
  }
}

TEST(NpuFunctional, MemoriesOfATebibyteCostOnlyWhatTheJobTouches) {
  // A configured size is a bound, not an allocation: SRAM and off-chip memory of 2^40
  // bytes each (the largest a config may give) run a small job with the same result as
  // the shipped sizes. Allocating and zeroing the configured sizes per job would need
  // 2 TiB here.
  std::mt19937 rng(12);
  NpuConfig huge = config_named("u55-128-deep-embedded");
  huge.sram.size_bytes = huge.offchip.size_bytes = uint64_t{1} << 40;
  WindowCase w = random_window(rng, 7);
  const int out_c = 5;
  const RefQuant q = random_quant(out_c, rng);
  const auto weights =
      random_weights(size_t(out_c) * w.win.kh * w.win.kw * w.input.c, 60, 0.3, rng);
  CommandStream stream;
  Command c = window_command(CommandKind::Conv2d, w, out_c, rng);
  set_quant(c, q);
  attach_weights(stream, c, weights, q);
  place_input(stream, kIfmAddress, w.input);
  stream.commands.push_back(c);
  stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
  const Tensor expected = ref_conv(w.input, weights, out_c, w.win, q);
  EXPECT_EQ(run(stream, huge).outputs.at(0),
            std::vector<uint8_t>(expected.data.begin(), expected.data.end()));
}

TEST(NpuFunctional, DepthwiseMatchesScalarReference) {
  std::mt19937 rng(2);
  for (const NpuConfig& config : test_configs()) {
    for (int trial = 0; trial < 25; ++trial) {
      WindowCase w = random_window(rng, 37);
      RefQuant q = random_quant(w.input.c, rng);
      random_activation(q, rng);
      const auto weights = random_weights(size_t(w.input.c) * w.win.kh * w.win.kw, 127, 0.5, rng);
      CommandStream stream;
      Command c = window_command(CommandKind::DepthwiseConv2d, w, w.input.c, rng);
      set_quant(c, q);
      attach_weights(stream, c, weights, q);
      place_input(stream, kIfmAddress, w.input);
      stream.commands.push_back(c);
      stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
      const JobReport report = run(stream, config);
      const Tensor expected = ref_depthwise(w.input, weights, w.win, q);
      ASSERT_EQ(report.outputs.at(0),
                std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
          << config.npu_name << " trial " << trial;
    }
  }
}

TEST(NpuFunctional, FullyConnectedMatchesScalarReference) {
  std::mt19937 rng(3);
  for (const NpuConfig& config : test_configs()) {
    for (int trial = 0; trial < 20; ++trial) {
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      const Tensor input = random_tensor(pick(1, 3), pick(1, 3), pick(1, 40), rng);
      const int out_c = pick(1, 33);
      RefQuant q = random_quant(out_c, rng);
      const auto weights = random_weights(size_t(out_c) * input.data.size(), 127, 0.2, rng);
      CommandStream stream;
      Command c;
      c.kind = CommandKind::FullyConnected;
      c.ifm = tensor_ref(kIfmAddress, input);
      c.ofm = tensor_ref(kOfmAddress, Tensor(1, 1, out_c));
      c.ofm_block_depth = uint32_t(pick(1, out_c));
      set_quant(c, q);
      attach_weights(stream, c, weights, q);
      place_input(stream, kIfmAddress, input);
      stream.commands.push_back(c);
      stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, uint64_t(out_c)});
      const JobReport report = run(stream, config);
      const Tensor expected = ref_fully_connected(input, weights, out_c, q);
      ASSERT_EQ(report.outputs.at(0),
                std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
          << config.npu_name << " trial " << trial;
    }
  }
}

TEST(NpuFunctional, AddMatchesScalarReference) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 40; ++trial) {
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int h = pick(1, 6), w = pick(1, 6), ch = pick(1, 19);
    const Tensor a = random_tensor(h, w, ch, rng), b = random_tensor(h, w, ch, rng);
    RefAdd p;
    p.zp1 = pick(-128, 127);
    p.zp2 = pick(-128, 127);
    p.out_zp = pick(-128, 127);
    p.m1 = pick(1 << 30, INT32_MAX);
    p.m2 = pick(1 << 30, INT32_MAX);
    p.mo = pick(1 << 30, INT32_MAX);
    p.s1 = pick(-3, 0);
    p.s2 = pick(-3, 0);
    p.so = pick(-22, -15);  // some trials saturate
    if (trial % 3 == 0) p.act_min = p.out_zp;
    CommandStream stream;
    Command c;
    c.kind = CommandKind::Add;
    c.ifm = tensor_ref(kIfmAddress, a);
    c.ifm2 = tensor_ref(kIfm2Address, b);
    c.ofm = tensor_ref(kOfmAddress, a);
    c.ofm_block_depth = uint32_t(pick(1, ch));
    c.input_zero_point = p.zp1;
    c.input2_zero_point = p.zp2;
    c.output_zero_point = p.out_zp;
    c.activation_min = p.act_min;
    c.activation_max = p.act_max;
    c.add = int8::AddParams{p.m1, p.s1, p.m2, p.s2, p.mo, p.so, p.left_shift};
    place_input(stream, kIfmAddress, a);
    place_input(stream, kIfm2Address, b);
    stream.commands.push_back(c);
    stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
    const JobReport report = run(stream, config_named("u55-128-deep-embedded"));
    const Tensor expected = ref_add(a, b, p);
    ASSERT_EQ(report.outputs.at(0),
              std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
        << "trial " << trial;
  }
}

TEST(NpuFunctional, PoolingMatchesScalarReference) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    const bool max_pool = trial % 2 == 0;
    WindowCase w = random_window(rng, 13);
    int act_min = -128, act_max = 127;
    if (trial % 5 == 0) act_min = -20, act_max = 40;
    CommandStream stream;
    Command c =
        window_command(max_pool ? CommandKind::MaxPool : CommandKind::AvgPool, w, w.input.c, rng);
    c.activation_min = act_min;
    c.activation_max = act_max;
    place_input(stream, kIfmAddress, w.input);
    stream.commands.push_back(c);
    stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
    const JobReport report = run(stream, config_named("u55-128-deep-embedded"));
    const Tensor expected = ref_pool(w.input, max_pool, w.win, act_min, act_max);
    ASSERT_EQ(report.outputs.at(0),
              std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
        << "trial " << trial << (max_pool ? " max" : " avg");
  }
}

TEST(NpuFunctional, MeanMatchesScalarReference) {
  std::mt19937 rng(15);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 40; ++trial) {
    const Tensor input = random_tensor(pick(1, 9), pick(1, 9), pick(1, 20), rng);
    const int in_zp = pick(-128, 127), out_zp = pick(-40, 40);
    const int32_t multiplier = pick(1 << 30, INT32_MAX);
    const int shift = pick(-2, 2);
    const int act_min = trial % 4 == 0 ? out_zp : -128;
    CommandStream stream;
    Command c;
    c.kind = CommandKind::Mean;
    c.ifm = tensor_ref(kIfmAddress, input);
    c.ofm = tensor_ref(kOfmAddress, Tensor(1, 1, input.c));
    c.kernel_h = uint32_t(input.h);
    c.kernel_w = uint32_t(input.w);
    c.ofm_block_depth = uint32_t(pick(1, input.c));
    c.input_zero_point = in_zp;
    c.output_zero_point = out_zp;
    c.activation_min = act_min;
    c.mean_multiplier = multiplier;
    c.mean_shift = shift;
    place_input(stream, kIfmAddress, input);
    stream.commands.push_back(c);
    stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, c.ofm.elements()});
    // Through the JSON form too: what udc sim reads is what runs.
    const std::string path = ::testing::TempDir() + "mean_stream.json";
    write_command_stream(stream, path);
    const JobReport report = run(read_command_stream(path), config_named("u55-128-deep-embedded"));
    const Tensor expected = ref_mean(input, in_zp, multiplier, shift, out_zp, act_min, 127);
    ASSERT_EQ(report.outputs.at(0),
              std::vector<uint8_t>(expected.data.begin(), expected.data.end()))
        << "trial " << trial;
  }
}

TEST(NpuFunctional, SaturatingRequantisationAndStridedOutput) {
  // Left shifts and large biases drive the output unit into saturation; the ofm is
  // written with a column stride into a wider tensor, as a stripe of a concat would be.
  std::mt19937 rng(6);
  const Tensor input = random_tensor(5, 6, 7, rng);
  RefQuant q = random_quant(9, rng);
  for (int c = 0; c < 9; ++c) {
    q.shift[c] = c % 3;  // 0..2: left shifts
    q.bias[c] = (c % 2 ? 1 : -1) * 1000000;
  }
  const RefWindow win{3, 3, 2, 2, 1, 1, 3, 3};
  const auto weights = random_weights(9 * 3 * 3 * 7, 127, 0.0, rng);
  CommandStream stream;
  Command c;
  c.kind = CommandKind::Conv2d;
  set_window(c, win, 1, 1);
  c.ifm = tensor_ref(kIfmAddress, input);
  c.ofm = tensor_ref(kOfmAddress, Tensor(3, 3, 9));
  c.ofm.column_stride = 16;  // 9 channels inside a 16-channel tensor
  c.ofm_block_depth = 4;
  set_quant(c, q);
  attach_weights(stream, c, weights, q);
  place_input(stream, kIfmAddress, input);
  stream.commands.push_back(c);
  stream.outputs.push_back({"ofm", MemoryId::Sram, kOfmAddress, 3 * 3 * 16});
  const JobReport report = run(stream, config_named("u55-128-deep-embedded"));
  const Tensor expected = ref_conv(input, weights, 9, win, q);
  int saturated = 0;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x)
      for (int k = 0; k < 16; ++k) {
        const int8_t got = int8_t(report.outputs[0][(y * 3 + x) * 16 + k]);
        if (k < 9) {
          ASSERT_EQ(got, expected.at(y, x, k)) << y << "," << x << "," << k;
          saturated += got == 127 || got == -128;
        } else {
          ASSERT_EQ(got, 0) << "channels past the ofm must stay untouched";
        }
      }
  EXPECT_GT(saturated, 20);
}

}  // namespace
}  // namespace udc::npu_sim::test
