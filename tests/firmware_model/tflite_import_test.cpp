// Import of TFLite files and export to them.
//
// Hand-built files for each operator and quantisation case run on the reference
// interpreter and are compared with TFLite's int8 arithmetic computed here directly on the
// file's own layouts (NHWC inputs, OHWI and [1,kh,kw,C*m] filters, float scales), not on
// the importer's converted weights. Round trips over the model generator must give back
// the same .udcm bytes; bad files are refused naming the operator or tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "firmware_model/tflite_builder.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"
#include "udc/firmware_model/tflite_export.hpp"
#include "udc/firmware_model/tflite_import.hpp"

namespace udc::firmware_model {
namespace {

using testing::TfliteBuilder;

std::vector<int8_t> random_int8(size_t n, std::mt19937& rng, int lo = -127, int hi = 127) {
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = int8_t(std::uniform_int_distribution<int>(lo, hi)(rng));
  return v;
}

ImportedModel import_bytes(const std::vector<uint8_t>& bytes) {
  return import_tflite(parse_tflite(bytes, "m.tflite"), "m.tflite");
}

/// The first output of `model` on `inputs`, by the reference interpreter.
std::vector<int8_t> output_of(const Model& model, const std::vector<std::vector<int8_t>>& inputs) {
  return run_reference(model, inputs)[size_t(model.outputs[0])];
}

std::string import_error(const std::vector<uint8_t>& bytes) {
  try {
    import_bytes(bytes);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

/// One output integer as TFLite's int8 kernels compute it: the accumulator scaled by the
/// multiplier TFLite derives from float scales, plus the zero point, clamped.
int8_t tflite_requantize(int64_t acc, float in_scale, float weight_scale, float out_scale,
                         int32_t out_zp, int32_t lo, int32_t hi) {
  const auto [m, s] =
      int8::quantize_multiplier(double(in_scale) * double(weight_scale) / double(out_scale));
  const int32_t v = int8::multiply_by_quantized_multiplier(int32_t(acc), m, s) + out_zp;
  return int8_t(std::clamp(v, lo, hi));
}

/// Geometry of a TFLite window along one axis.
struct Axis {
  int out = 0, pad = 0;
};
Axis tflite_axis(int in, int kernel, int stride, bool same) {
  if (!same) return {(in - kernel) / stride + 1, 0};
  const int out = (in + stride - 1) / stride;
  return {out, std::max((out - 1) * stride + kernel - in, 0) / 2};
}

/// A windowed int8 layer in TFLite's terms: weight(o, ky, kx, i) is the filter tap joining
/// input channel i to output channel o (0 where they are not joined).
struct WindowLayer {
  WindowLayer(int h_, int w_, int c_, int out_c_, int kh_, int kw_, int stride_, bool same_,
              int32_t in_zp_, int32_t out_zp_)
      : h(h_),
        w(w_),
        c(c_),
        out_c(out_c_),
        kh(kh_),
        kw(kw_),
        stride(stride_),
        same(same_),
        in_zp(in_zp_),
        out_zp(out_zp_) {}
  int h, w, c, out_c, kh, kw, stride;
  bool same;
  int32_t in_zp, out_zp, lo = -128, hi = 127;
  float in_scale = 1.0f, out_scale = 1.0f;
  std::vector<float> weight_scales;  ///< one, or one per output channel
  std::vector<int32_t> bias;
  std::function<int(int, int, int, int)> weight;

  std::vector<int8_t> run(const std::vector<int8_t>& in) const {
    const Axis y = tflite_axis(h, kh, stride, same), x = tflite_axis(w, kw, stride, same);
    std::vector<int8_t> out;
    for (int oy = 0; oy < y.out; ++oy) {
      for (int ox = 0; ox < x.out; ++ox) {
        for (int o = 0; o < out_c; ++o) {
          int64_t acc = bias.empty() ? 0 : bias[size_t(o)];
          for (int ky = 0; ky < kh; ++ky) {
            for (int kx = 0; kx < kw; ++kx) {
              const int iy = oy * stride - y.pad + ky, ix = ox * stride - x.pad + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (int i = 0; i < c; ++i) {
                acc += int64_t(in[size_t((iy * w + ix) * c + i)] - in_zp) * weight(o, ky, kx, i);
              }
            }
          }
          const float ws = weight_scales[weight_scales.size() == 1 ? 0 : size_t(o)];
          out.push_back(tflite_requantize(acc, in_scale, ws, out_scale, out_zp, lo, hi));
        }
      }
    }
    return out;
  }
};

TEST(TfliteImport, ConvolutionPerChannelMatchesTflite) {
  std::mt19937 rng(3);
  TfliteBuilder f;
  // 6x5x3 input, four 3x2 filters, stride 2, SAME, ReLU6, per-channel scales.
  const std::vector<int8_t> filter = random_int8(4 * 3 * 2 * 3, rng);
  const std::vector<float> scales{0.01f, 0.02f, 0.015f, 0.03f};
  const std::vector<int32_t> bias{100, -250, 0, 37};
  const int32_t in = f.activation("in", {1, 6, 5, 3}, 0.04f, -5);
  const int32_t w = f.weights("w", {4, 3, 2, 3}, filter, scales, 0);
  const int32_t b = f.int32_constant("b", {4}, bias);
  const int32_t out = f.activation("out", {1, 3, 3, 4}, 0.05f, -128);
  f.op(tflite::BuiltinOperator::CONV_2D, {in, w, b}, {out}, tflite::BuiltinOptions::Conv2DOptions,
       tflite::CreateConv2DOptions(f.fbb(), tflite::Padding::SAME, 2, 2,
                                   tflite::ActivationFunctionType::RELU6)
           .Union());
  const ImportedModel imported = import_bytes(f.finish({in}, {out}));
  ASSERT_EQ(imported.model.operations.size(), 1u);
  EXPECT_TRUE(imported.cpu_operators.empty());

  WindowLayer layer{6, 5, 3, 4, 3, 2, 2, true, -5, -128};
  layer.in_scale = 0.04f;
  layer.out_scale = 0.05f;
  layer.hi = -128 + int(std::lround(6.0 / 0.05));
  layer.lo = -128;
  layer.weight_scales = scales;
  layer.bias = bias;
  layer.weight = [&](int o, int ky, int kx, int i) {
    return int(filter[size_t(((o * 3 + ky) * 2 + kx) * 3 + i)]);
  };
  for (int trial = 0; trial < 5; ++trial) {
    const std::vector<int8_t> input = random_int8(6 * 5 * 3, rng, -128, 127);
    EXPECT_EQ(output_of(imported.model, {input}), layer.run(input)) << "trial " << trial;
  }
}

/// DEPTHWISE_CONV_2D with `channels` inputs and a depth multiplier, per-tensor scale.
void check_depthwise(int channels, int multiplier) {
  SCOPED_TRACE(::testing::Message() << channels << " channels, multiplier " << multiplier);
  std::mt19937 rng(uint32_t(channels * 10 + multiplier));
  const int out_c = channels * multiplier;
  TfliteBuilder f;
  const std::vector<int8_t> filter = random_int8(size_t(9 * out_c), rng, -7, 7);  // 4-bit values
  const int32_t in = f.activation("in", {1, 5, 5, channels}, 0.03f, 10);
  const int32_t w = f.weights("w", {1, 3, 3, out_c}, filter, {0.02f}, 3);
  const int32_t out = f.activation("out", {1, 3, 3, out_c}, 0.06f, 3);
  f.op(tflite::BuiltinOperator::DEPTHWISE_CONV_2D, {in, w, -1}, {out},
       tflite::BuiltinOptions::DepthwiseConv2DOptions,
       tflite::CreateDepthwiseConv2DOptions(f.fbb(), tflite::Padding::VALID, 1, 1, multiplier,
                                            tflite::ActivationFunctionType::RELU)
           .Union());
  const ImportedModel imported = import_bytes(f.finish({in}, {out}));
  ASSERT_EQ(imported.model.operations.size(), 1u);
  EXPECT_EQ(imported.model.operations[0].weight_bits, 4u);  // from the value range
  EXPECT_EQ(imported.model.operations[0].type,
            multiplier == 1 ? OpType::DepthwiseConv2d : OpType::Conv2d);

  WindowLayer layer{5, 5, channels, out_c, 3, 3, 1, false, 10, 3};
  layer.lo = 3;
  layer.in_scale = 0.03f;
  layer.out_scale = 0.06f;
  layer.weight_scales = {0.02f};
  layer.weight = [&](int o, int ky, int kx, int i) {
    return i == o / multiplier ? int(filter[size_t((ky * 3 + kx) * out_c + o)]) : 0;
  };
  const std::vector<int8_t> input = random_int8(size_t(25 * channels), rng, -128, 127);
  EXPECT_EQ(output_of(imported.model, {input}), layer.run(input));
}

TEST(TfliteImport, DepthwiseAnyMultiplierMatchesTflite) {
  check_depthwise(4, 1);
  check_depthwise(3, 2);
  check_depthwise(1, 3);
}

TEST(TfliteImport, FullyConnectedPerTensorMatchesTflite) {
  std::mt19937 rng(5);
  TfliteBuilder f;
  const std::vector<int8_t> weights = random_int8(5 * 12, rng);
  const std::vector<int32_t> bias{1, 2, 3, -400, 5};
  const int32_t in = f.activation("in", {1, 2, 2, 3}, 0.1f, 7);
  const int32_t w = f.weights("w", {5, 12}, weights, {0.004f}, 0);
  const int32_t b = f.int32_constant("b", {5}, bias);
  const int32_t out = f.activation("out", {1, 5}, 0.2f, -1);
  f.op(tflite::BuiltinOperator::FULLY_CONNECTED, {in, w, b}, {out},
       tflite::BuiltinOptions::FullyConnectedOptions,
       tflite::CreateFullyConnectedOptions(f.fbb()).Union());
  const ImportedModel imported = import_bytes(f.finish({in}, {out}));
  const std::vector<int8_t> input = random_int8(12, rng, -128, 127);
  std::vector<int8_t> expected;
  for (int o = 0; o < 5; ++o) {
    int64_t acc = bias[size_t(o)];
    for (int k = 0; k < 12; ++k) acc += int64_t(input[size_t(k)] - 7) * weights[size_t(o * 12 + k)];
    expected.push_back(tflite_requantize(acc, 0.1f, 0.004f, 0.2f, -1, -128, 127));
  }
  EXPECT_EQ(output_of(imported.model, {input}), expected);
}

TEST(TfliteImport, AddMatchesTfliteWithDifferentScales) {
  std::mt19937 rng(6);
  TfliteBuilder f;
  const int32_t a = f.activation("a", {1, 2, 3, 4}, 0.05f, -20);
  const int32_t b = f.activation("b", {1, 2, 3, 4}, 0.11f, 15);
  const int32_t out = f.activation("out", {1, 2, 3, 4}, 0.09f, -2);
  f.op(tflite::BuiltinOperator::ADD, {a, b}, {out}, tflite::BuiltinOptions::AddOptions,
       tflite::CreateAddOptions(f.fbb()).Union());
  const ImportedModel imported = import_bytes(f.finish({a, b}, {out}));
  const std::vector<int8_t> x = random_int8(24, rng, -128, 127),
                            y = random_int8(24, rng, -128, 127);
  // TFLite's int8 ADD: inputs rescaled to twice the larger input scale with 20 bits of
  // headroom, summed, rescaled to the output.
  const double twice_max = 2.0 * double(std::max(0.05f, 0.11f));
  const auto [m1, s1] = int8::quantize_multiplier(double(0.05f) / twice_max);
  const auto [m2, s2] = int8::quantize_multiplier(double(0.11f) / twice_max);
  const auto [mo, so] = int8::quantize_multiplier(twice_max / (double(1 << 20) * double(0.09f)));
  std::vector<int8_t> expected;
  for (size_t i = 0; i < 24; ++i) {
    const int32_t sa = int8::multiply_by_quantized_multiplier((x[i] + 20) * (1 << 20), m1, s1);
    const int32_t sb = int8::multiply_by_quantized_multiplier((y[i] - 15) * (1 << 20), m2, s2);
    const int32_t v = int8::multiply_by_quantized_multiplier(sa + sb, mo, so) - 2;
    expected.push_back(int8_t(std::clamp(v, -128, 127)));
  }
  EXPECT_EQ(output_of(imported.model, {x, y}), expected);
}

TEST(TfliteImport, PoolingDepthToSpaceAndSqueezeMatchTflite) {
  std::mt19937 rng(7);
  TfliteBuilder f;
  const int32_t in = f.activation("in", {1, 4, 6, 8}, 0.1f, 4);
  const int32_t pooled = f.activation("max", {1, 2, 3, 8}, 0.1f, 4);
  const int32_t averaged = f.activation("avg", {1, 2, 3, 8}, 0.1f, 4);
  const int32_t spread = f.activation("d2s", {1, 4, 6, 2}, 0.1f, 4);
  const int32_t flat = f.activation("flat", {1, 48}, 0.1f, 4);
  f.op(tflite::BuiltinOperator::MAX_POOL_2D, {in}, {pooled}, tflite::BuiltinOptions::Pool2DOptions,
       tflite::CreatePool2DOptions(f.fbb(), tflite::Padding::VALID, 2, 2, 2, 2).Union());
  f.op(tflite::BuiltinOperator::AVERAGE_POOL_2D, {pooled}, {averaged},
       tflite::BuiltinOptions::Pool2DOptions,
       tflite::CreatePool2DOptions(f.fbb(), tflite::Padding::SAME, 1, 1, 3, 3).Union());
  f.op(tflite::BuiltinOperator::DEPTH_TO_SPACE, {averaged}, {spread},
       tflite::BuiltinOptions::DepthToSpaceOptions,
       tflite::CreateDepthToSpaceOptions(f.fbb(), 2).Union());
  f.op(tflite::BuiltinOperator::SQUEEZE, {spread}, {flat});
  const ImportedModel imported = import_bytes(f.finish({in}, {flat}));
  const std::vector<int8_t> x = random_int8(4 * 6 * 8, rng, -128, 127);

  auto at = [](const std::vector<int8_t>& v, int w, int c, int y, int xx, int ch) {
    return int(v[size_t((y * w + xx) * c + ch)]);
  };
  std::vector<int8_t> max(2 * 3 * 8), avg(2 * 3 * 8), d2s;
  for (int y = 0; y < 2; ++y)
    for (int xx = 0; xx < 3; ++xx)
      for (int c = 0; c < 8; ++c) {
        int best = -128;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx)
            best = std::max(best, at(x, 6, 8, 2 * y + dy, 2 * xx + dx, c));
        max[size_t((y * 3 + xx) * 8 + c)] = int8_t(best);
      }
  for (int y = 0; y < 2; ++y)
    for (int xx = 0; xx < 3; ++xx)
      for (int c = 0; c < 8; ++c) {
        int sum = 0, count = 0;  // SAME 3x3, stride 1: one row and column of padding each side
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            if (y + dy < 0 || y + dy >= 2 || xx + dx < 0 || xx + dx >= 3) continue;
            sum += at(max, 3, 8, y + dy, xx + dx, c);
            ++count;
          }
        avg[size_t((y * 3 + xx) * 8 + c)] =
            int8_t(sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count);
      }
  for (int y = 0; y < 4; ++y)
    for (int xx = 0; xx < 6; ++xx)
      for (int c = 0; c < 2; ++c)
        d2s.push_back(int8_t(at(avg, 3, 8, y / 2, xx / 2, ((y % 2) * 2 + xx % 2) * 2 + c)));
  EXPECT_EQ(output_of(imported.model, {x}), d2s);
  EXPECT_EQ(imported.model.tensors[size_t(imported.model.outputs[0])].shape, (Shape{1, 1, 48}));
}

TEST(TfliteImport, MeanOverHeightAndWidthMatchesTflite) {
  std::mt19937 rng(9);
  TfliteBuilder f;
  const int32_t in = f.activation("in", {1, 5, 6, 7}, 0.05f, -128);
  const int32_t axes = f.int32_constant("axes", {2}, {2, 1});
  const int32_t out = f.activation("out", {1, 7}, 0.03f, 11);  // keep_dims false
  f.op(tflite::BuiltinOperator::MEAN, {in, axes}, {out}, tflite::BuiltinOptions::ReducerOptions,
       tflite::CreateReducerOptions(f.fbb(), false).Union());
  const ImportedModel imported = import_bytes(f.finish({in}, {out}));
  ASSERT_EQ(imported.model.operations.at(0).type, OpType::Mean);
  const std::vector<int8_t> x = random_int8(5 * 6 * 7, rng, -128, 127);
  // TFLite's integer MEAN: offsets summed, scaled by input/output scale, averaged with
  // ties away from zero, output zero point added.
  const auto [m, s] = int8::quantize_multiplier(double(0.05f) / double(0.03f));
  std::vector<int8_t> expected;
  for (int c = 0; c < 7; ++c) {
    int32_t acc = 0;
    for (int p = 0; p < 30; ++p) acc += x[size_t(p * 7 + c)] + 128;
    acc = int8::multiply_by_quantized_multiplier(acc, m, s);
    acc = acc > 0 ? (acc + 15) / 30 : (acc - 15) / 30;
    expected.push_back(int8_t(std::clamp(acc + 11, -128, 127)));
  }
  EXPECT_EQ(output_of(imported.model, {x}), expected);
}

/// PAD then a VALID 3x3 convolution; `pads` is [top, bottom, left, right].
std::vector<uint8_t> padded_conv_file(std::vector<int32_t> pads,
                                      const std::vector<int8_t>& filter) {
  TfliteBuilder f;
  const int32_t in = f.activation("in", {1, 4, 4, 2}, 0.1f, -7);
  const int32_t paddings =
      f.int32_constant("paddings", {4, 2}, {0, 0, pads[0], pads[1], pads[2], pads[3], 0, 0});
  const int32_t padded =
      f.activation("padded", {1, 4 + pads[0] + pads[1], 4 + pads[2] + pads[3], 2}, 0.1f, -7);
  const int32_t w = f.weights("w", {3, 3, 3, 2}, filter, {0.05f}, 0);
  const int32_t out =
      f.activation("out", {1, 2 + pads[0] + pads[1], 2 + pads[2] + pads[3], 3}, 0.2f, 0);
  f.op(tflite::BuiltinOperator::PAD, {in, paddings}, {padded});
  f.op(tflite::BuiltinOperator::CONV_2D, {padded, w, -1}, {out},
       tflite::BuiltinOptions::Conv2DOptions,
       tflite::CreateConv2DOptions(f.fbb(), tflite::Padding::VALID, 1, 1).Union());
  return f.finish({in}, {out});
}

TEST(TfliteImport, PadFoldsIntoSamePaddingOnlyWhenEqual) {
  std::mt19937 rng(8);
  const std::vector<int8_t> filter = random_int8(3 * 9 * 2, rng);
  const ImportedModel folded = import_bytes(padded_conv_file({1, 1, 1, 1}, filter));
  ASSERT_EQ(folded.model.operations.size(), 1u);
  EXPECT_EQ(folded.model.operations[0].padding, Padding::Same);
  ASSERT_EQ(folded.notes.size(), 1u);
  // PAD pads with the zero point, which the accumulator's offset turns into 0: the same
  // as TFLite's SAME convolution.
  WindowLayer layer{4, 4, 2, 3, 3, 3, 1, true, -7, 0};
  layer.in_scale = 0.1f;
  layer.out_scale = 0.2f;
  layer.weight_scales = {0.05f};
  layer.weight = [&](int o, int ky, int kx, int i) {
    return int(filter[size_t(((o * 3 + ky) * 3 + kx) * 2 + i)]);
  };
  const std::vector<int8_t> input = random_int8(32, rng, -128, 127);
  EXPECT_EQ(output_of(folded.model, {input}), layer.run(input));

  const std::string error = import_error(padded_conv_file({2, 0, 1, 1}, filter));
  EXPECT_NE(error.find("operator 0 (PAD)"), std::string::npos) << error;
  EXPECT_NE(error.find("SAME padding of operator 1"), std::string::npos) << error;
}

/// uint8 input -> QUANTIZE -> CONV_2D 1x1 -> SOFTMAX, or with `middle`, the SOFTMAX between
/// two convolutions.
std::vector<uint8_t> cpu_region_file(bool middle) {
  TfliteBuilder f;
  const int32_t raw = f.activation("raw", {1, 2, 2, 3}, 0.02f, 128, tflite::TensorType::UINT8);
  const int32_t in = f.activation("in", {1, 2, 2, 3}, 0.02f, 0);
  const int32_t w = f.weights("w", {3, 1, 1, 3}, std::vector<int8_t>(9, 3), {0.1f}, 0);
  const int32_t logits = f.activation("logits", {1, 2, 2, 3}, 0.05f, 1);
  const int32_t probs = f.activation("probs", {1, 2, 2, 3}, 1.0f / 256, -128);
  const auto conv_options = [&] {
    return tflite::CreateConv2DOptions(f.fbb(), tflite::Padding::VALID, 1, 1).Union();
  };
  f.op(tflite::BuiltinOperator::QUANTIZE, {raw}, {in});
  f.op(tflite::BuiltinOperator::CONV_2D, {in, w, -1}, {logits},
       tflite::BuiltinOptions::Conv2DOptions, conv_options());
  f.op(tflite::BuiltinOperator::SOFTMAX, {logits}, {probs});
  if (!middle) return f.finish({raw}, {probs});
  const int32_t again = f.activation("again", {1, 2, 2, 3}, 0.05f, 1);
  f.op(tflite::BuiltinOperator::CONV_2D, {probs, w, -1}, {again},
       tflite::BuiltinOptions::Conv2DOptions, conv_options());
  return f.finish({raw}, {again});
}

TEST(TfliteImport, CpuOperatorsBeforeAndAfterTheNpuAreReported) {
  const ImportedModel imported = import_bytes(cpu_region_file(false));
  ASSERT_EQ(imported.cpu_operators.size(), 2u);
  EXPECT_EQ(imported.cpu_operators[0].name, "QUANTIZE");
  EXPECT_EQ(imported.cpu_operators[0].index, 0u);
  EXPECT_TRUE(imported.cpu_operators[0].before_npu);
  EXPECT_EQ(imported.cpu_operators[1].name, "SOFTMAX");
  EXPECT_EQ(imported.cpu_operators[1].index, 2u);
  EXPECT_FALSE(imported.cpu_operators[1].before_npu);
  EXPECT_EQ(imported.cpu_operators[1].output, "probs");
  const Model& m = imported.model;
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.tensors[size_t(m.inputs[0])].name, "in");  // the int8 tensor QUANTIZE makes
  EXPECT_EQ(m.tensors[size_t(m.outputs[0])].name, "logits");
  const std::string report = format_cpu_operators(imported.cpu_operators);
  EXPECT_NE(report.find("operator 2   SOFTMAX"), std::string::npos) << report;

  const std::string error = import_error(cpu_region_file(true));
  EXPECT_NE(error.find("operator 3 (CONV_2D): reads tensor 4 (probs) that operator 2 (SOFTMAX)"),
            std::string::npos)
      << error;
}

TEST(TfliteImport, RefusesWhatItCannotRunNamingIt) {
  auto conv = [](auto&& change) {
    TfliteBuilder f;
    int64_t weight_zp = 0;
    int8_t first_weight = 1;
    tflite::TensorType in_type = tflite::TensorType::INT8;
    int32_t dilation = 1;
    tflite::BuiltinOperator code = tflite::BuiltinOperator::CONV_2D;
    change(weight_zp, first_weight, in_type, dilation, code);
    std::vector<int8_t> filter(2 * 2, 1);
    filter[0] = first_weight;
    const int32_t in = f.activation("in", {1, 3, 3, 2}, 0.1f, 0, in_type);
    const int32_t w = f.weights("w", {2, 1, 1, 2}, filter, {0.1f}, 0, weight_zp);
    const int32_t out = f.activation("out", {1, 3, 3, 2}, 0.1f, 0);
    f.op(code, {in, w, -1}, {out}, tflite::BuiltinOptions::Conv2DOptions,
         tflite::CreateConv2DOptions(f.fbb(), tflite::Padding::VALID, 1, 1,
                                     tflite::ActivationFunctionType::NONE, dilation, dilation)
             .Union());
    return import_error(f.finish({in}, {out}));
  };
  using T = tflite::TensorType;
  using B = tflite::BuiltinOperator;
  EXPECT_EQ(conv([](int64_t&, int8_t&, T&, int32_t&, B&) {}), "");
  EXPECT_NE(conv([](int64_t& zp, int8_t&, T&, int32_t&, B&) {
              zp = 3;
            }).find("operator 0 (CONV_2D): weight zero point is not 0"),
            std::string::npos);
  EXPECT_NE(conv([](int64_t&, int8_t& w, T&, int32_t&, B&) { w = -128; }).find("is -128"),
            std::string::npos);
  EXPECT_NE(conv([](int64_t&, int8_t&, T& t, int32_t&, B&) {
              t = T::INT16;
            }).find("tensor 0 (in): type 7"),
            std::string::npos);
  EXPECT_NE(conv([](int64_t&, int8_t&, T&, int32_t& d, B&) { d = 2; }).find("dilation 2x2"),
            std::string::npos);
  EXPECT_NE(conv([](int64_t&, int8_t&, T&, int32_t&, B& c) {
              c = B::MUL;
            }).find("operator 0 (MUL): neither the NPU model nor the CPU fallback runs it"),
            std::string::npos);
}

TEST(TfliteImport, CorruptedFilesAreRefusedOrGiveValidModels) {
  // Random byte changes in exported files: the reader or the importer refuses them with a
  // runtime_error (any other exception fails the test), or the model they give is valid.
  std::mt19937 rng(11);
  size_t refused = 0, imported = 0;
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937 model_rng(seed);
    const std::vector<uint8_t> file = export_tflite(random_model(model_rng));
    for (int trial = 0; trial < 100; ++trial) {
      std::vector<uint8_t> bytes = file;
      const int changes = 1 + int(rng() % 4);
      for (int k = 0; k < changes; ++k) bytes[rng() % bytes.size()] = uint8_t(rng());
      try {
        const ImportedModel m = import_tflite(parse_tflite(bytes, "bad.tflite"), "bad.tflite");
        EXPECT_EQ(validate(m.model), "");
        ++imported;
      } catch (const std::runtime_error&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(imported, 0u);  // many changes land in weights and stay importable
}

TEST(TfliteRoundTrip, GeneratedModelsComeBackByteIdentical) {
  size_t weight_layers = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const Model model = random_model(rng);
    const std::vector<uint8_t> file = export_tflite(model);
    const ImportedModel back = import_bytes(file);
    ASSERT_EQ(serialize_model(back.model), serialize_model(model)) << "seed " << seed;
    EXPECT_TRUE(back.cpu_operators.empty());
    for (const Operation& op : model.operations) weight_layers += has_weights(op.type);
  }
  EXPECT_GT(weight_layers, 300u);
  for (uint32_t bits : {2u, 4u, 8u}) {
    MobileNetOptions options;
    options.input_side = 32;
    options.weight_bits = bits;
    options.sparsity = 0.5;
    const Model model = mobilenet_like(options);
    EXPECT_EQ(serialize_model(import_bytes(export_tflite(model)).model), serialize_model(model))
        << bits << " bits";
  }
}

TEST(TfliteRoundTrip, MeanComesBackByteIdentical) {
  ModelBuilder b("mean");
  const int32_t x = b.add_input("in", Shape{4, 4, 8}, 0.05f, -128);
  const int32_t y = b.mean("mean", x, ModelBuilder::Quant{0.02f, 3});
  b.mark_output(y);
  const Model model = b.finish();
  EXPECT_EQ(serialize_model(import_bytes(export_tflite(model)).model), serialize_model(model));
}

TEST(TfliteRoundTrip, WithoutMetadataBitWidthsComeFromTheValues) {
  MobileNetOptions options;
  options.input_side = 16;
  options.weight_bits = 4;
  const Model model = mobilenet_like(options);
  TfliteModel file = parse_tflite(export_tflite(model), "m.tflite");
  file.metadata.clear();
  const Model back = import_tflite(file, "dir/plain.tflite").model;
  EXPECT_EQ(back.name, "plain");
  ASSERT_EQ(back.operations.size(), model.operations.size());
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = back.operations[i];
    EXPECT_EQ(op.name, back.tensors[size_t(op.output)].name);  // names from the tensors
    EXPECT_EQ(op.weights, model.operations[i].weights);
    EXPECT_EQ(op.multiplier, model.operations[i].multiplier);
    if (has_weights(op.type)) {
      EXPECT_LE(op.weight_bits, model.operations[i].weight_bits);
    }
  }
  // Same arithmetic: identical outputs.
  std::mt19937 rng(1);
  const std::vector<int8_t> input = random_int8(16 * 16 * 3, rng, -128, 127);
  EXPECT_EQ(run_reference(back, {input}), run_reference(model, {input}));
}

TEST(TfliteExport, FullyConnectedTakesTheFormVelaRunsOnTheNpu) {
  // The MobileNet's classifier has per-channel multipliers: Vela takes those only on
  // convolutions, so it is written as a CONV_2D over its 1x1x256 input; with one
  // multiplier for all channels it is a FULLY_CONNECTED with one scale.
  Model model = mobilenet_like(MobileNetOptions{});
  std::vector<std::string> notes;
  TfliteModel file = parse_tflite(export_tflite(model, &notes), "m.tflite");
  EXPECT_EQ(tflite_operator_name(file.operators.back().builtin_code), "CONV_2D");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("operation 13 (classifier)"), std::string::npos) << notes[0];
  Operation& classifier = model.operations.back();
  std::fill(classifier.multiplier.begin(), classifier.multiplier.end(), classifier.multiplier[0]);
  std::fill(classifier.shift.begin(), classifier.shift.end(), classifier.shift[0]);
  file = parse_tflite(export_tflite(model), "m.tflite");
  EXPECT_EQ(tflite_operator_name(file.operators.back().builtin_code), "FULLY_CONNECTED");
  EXPECT_EQ(file.tensors[size_t(file.operators.back().inputs[1])].scales.size(), 1u);
  EXPECT_EQ(serialize_model(import_tflite(file, "m.tflite").model), serialize_model(model));
}

TEST(TfliteExport, RefusesMultipliersNoFloatScaleGives) {
  std::mt19937 rng(2);
  Model model = mobilenet_like(MobileNetOptions{});
  Operation& op = model.operations[0];
  const float in = model.tensors[size_t(op.inputs[0])].scale;
  const float out = model.tensors[size_t(op.output)].scale;
  ASSERT_TRUE(weight_scale_for(op.multiplier[0], op.shift[0], in, out).has_value());
  op.multiplier[0] += 1;  // finer than a float32 scale can steer
  ASSERT_FALSE(weight_scale_for(op.multiplier[0], op.shift[0], in, out).has_value());
  try {
    export_tflite(model);
    FAIL() << "exported";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("operation 0 (conv0): channel 0"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace udc::firmware_model
