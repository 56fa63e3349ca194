// The reference interpreter against the separately written scalar operations of the
// simulator tests (npu_sim/scalar_reference.hpp), and against hand-made vectors for the
// data-movement operations.
#include <gtest/gtest.h>

#include <random>

#include "npu_sim/scalar_reference.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"

namespace udc::firmware_model {
namespace {

using npu_sim::test::RefQuant;
using npu_sim::test::RefWindow;
using npu_sim::test::Tensor;

Tensor as_tensor(const TensorInfo& info, const TensorValues& values) {
  Tensor t(int(info.shape[0]), int(info.shape[1]), int(info.shape[2]));
  t.data = values;
  return t;
}

TensorValues random_values(uint64_t n, std::mt19937& rng) {
  TensorValues v(n);
  for (int8_t& x : v) x = int8_t(int(rng() % 256) - 128);
  return v;
}

ModelBuilder::Requant random_requant(uint32_t channels, std::mt19937& rng) {
  ModelBuilder::Requant r;
  for (uint32_t c = 0; c < channels; ++c) {
    r.bias.push_back(int32_t(rng() % 20001) - 10000);
    r.multiplier.push_back(int32_t((1u << 30) + rng() % (1u << 30)));
    r.shift.push_back(-int32_t(4 + rng() % 8));
  }
  return r;
}

RefQuant ref_quant(const Model& m, const Operation& op) {
  RefQuant q;
  q.input_zp = m.tensors[size_t(op.inputs[0])].zero_point;
  q.output_zp = m.tensors[size_t(op.output)].zero_point;
  q.act_min = op.activation_min;
  q.act_max = op.activation_max;
  q.bias = op.bias;
  q.multiplier = op.multiplier;
  q.shift = op.shift;
  return q;
}

RefWindow ref_window(const Model& m, const Operation& op) {
  const Shape in = m.tensors[size_t(op.inputs[0])].shape;
  const WindowAxis y = window_axis(in[0], op.kernel_h, op.stride_h, op.padding);
  const WindowAxis x = window_axis(in[1], op.kernel_w, op.stride_w, op.padding);
  return RefWindow{int(op.kernel_h),  int(op.kernel_w),  int(op.stride_h), int(op.stride_w),
                   int(y.pad_before), int(x.pad_before), int(y.out),       int(x.out)};
}

TEST(ReferenceInterpreter, WeightedOperationsMatchScalarReference) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 60; ++trial) {
    const uint32_t h = 3 + rng() % 10, w = 3 + rng() % 10, c = 1 + rng() % 12;
    const uint32_t k = std::min<uint32_t>({uint32_t(1 + 2 * (rng() % 3)), h, w}),
                   stride = 1 + rng() % 2;
    const Padding padding = rng() % 2 ? Padding::Same : Padding::Valid;
    const int kind = int(trial % 3);
    ModelBuilder b("one");
    const int32_t x = b.add_input("in", Shape{h, w, c}, 0.1f, int32_t(rng() % 61) - 30);
    const ModelBuilder::Quant out{0.1f, int32_t(rng() % 61) - 30};
    const Activation act = Activation(rng() % 3);
    int32_t y;
    uint32_t oc = 1 + rng() % 16;
    if (kind == 0) {
      y = b.conv2d("c", x, oc, k, stride, padding, TensorValues(size_t(oc) * k * k * c, 0), 8,
                   random_requant(oc, rng), out, act);
    } else if (kind == 1) {
      oc = c;
      y = b.depthwise_conv2d("d", x, k, stride, padding, TensorValues(size_t(c) * k * k, 0), 8,
                             random_requant(c, rng), out, act);
    } else {
      y = b.fully_connected("f", x, oc, TensorValues(size_t(oc) * h * w * c, 0), 8,
                            random_requant(oc, rng), out, act);
    }
    b.mark_output(y);
    Model m = b.finish();
    Operation& op = m.operations[0];
    for (int8_t& v : op.weights) v = int8_t(int(rng() % 255) - 127);
    const TensorValues input = random_values(m.tensors[0].elements(), rng);
    const TensorValues got = run_reference(m, {input})[size_t(y)];
    const Tensor in = as_tensor(m.tensors[0], input);
    Tensor want;
    if (kind == 0) {
      want = npu_sim::test::ref_conv(in, op.weights, int(oc), ref_window(m, op), ref_quant(m, op));
    } else if (kind == 1) {
      want = npu_sim::test::ref_depthwise(in, op.weights, ref_window(m, op), ref_quant(m, op));
    } else {
      want = npu_sim::test::ref_fully_connected(in, op.weights, int(oc), ref_quant(m, op));
    }
    ASSERT_EQ(got, want.data) << "trial " << trial << " " << op_type_name(op.type);
  }
}

TEST(ReferenceInterpreter, AddAndPoolingMatchScalarReference) {
  std::mt19937 rng(23);
  for (int trial = 0; trial < 40; ++trial) {
    const uint32_t h = 2 + rng() % 9, w = 2 + rng() % 9, c = 1 + rng() % 9;
    ModelBuilder b("one");
    const int32_t x = b.add_input("a", Shape{h, w, c}, 0.05f + 0.01f * float(rng() % 5),
                                  int32_t(rng() % 61) - 30);
    const int32_t x2 = b.add_input("b", Shape{h, w, c}, 0.03f + 0.01f * float(rng() % 5),
                                   int32_t(rng() % 61) - 30);
    const uint32_t k = std::min<uint32_t>({uint32_t(2 + rng() % 2), h, w}), stride = 1 + rng() % 2;
    const Padding padding = rng() % 2 ? Padding::Same : Padding::Valid;
    const ModelBuilder::Quant out{0.07f, int32_t(rng() % 61) - 30};
    const int32_t sum =
        b.add("add", x, x2, int8::add_params(b.tensor(x).scale, b.tensor(x2).scale, out.scale), out,
              Activation(rng() % 3));
    const int32_t mp = b.max_pool("max", x, k, stride, padding);
    const int32_t ap = b.avg_pool("avg", x, k, stride, padding);
    const int32_t gp = b.global_avg_pool("gap", x2);
    for (int32_t t : {sum, mp, ap, gp}) b.mark_output(t);
    const Model m = b.finish();
    const TensorValues a = random_values(m.tensors[0].elements(), rng);
    const TensorValues bb = random_values(m.tensors[1].elements(), rng);
    const std::vector<TensorValues> got = run_reference(m, {a, bb});
    const Operation& add_op = m.operations[0];
    npu_sim::test::RefAdd p;
    p.zp1 = m.tensors[0].zero_point;
    p.zp2 = m.tensors[1].zero_point;
    p.out_zp = m.tensors[size_t(sum)].zero_point;
    p.act_min = add_op.activation_min;
    p.act_max = add_op.activation_max;
    p.left_shift = add_op.add.left_shift;
    p.m1 = add_op.add.input1_multiplier;
    p.s1 = add_op.add.input1_shift;
    p.m2 = add_op.add.input2_multiplier;
    p.s2 = add_op.add.input2_shift;
    p.mo = add_op.add.output_multiplier;
    p.so = add_op.add.output_shift;
    const Tensor ta = as_tensor(m.tensors[0], a), tb = as_tensor(m.tensors[1], bb);
    EXPECT_EQ(got[size_t(sum)], npu_sim::test::ref_add(ta, tb, p).data) << trial;
    EXPECT_EQ(got[size_t(mp)],
              npu_sim::test::ref_pool(ta, true, ref_window(m, m.operations[1]), -128, 127).data)
        << trial;
    EXPECT_EQ(got[size_t(ap)],
              npu_sim::test::ref_pool(ta, false, ref_window(m, m.operations[2]), -128, 127).data)
        << trial;
    const RefWindow whole{int(h), int(w), 1, 1, 0, 0, 1, 1};
    EXPECT_EQ(got[size_t(gp)], npu_sim::test::ref_pool(tb, false, whole, -128, 127).data) << trial;
  }
}

TEST(ReferenceInterpreter, MeanMatchesScalarReference) {
  std::mt19937 rng(21);
  for (int trial = 0; trial < 30; ++trial) {
    ModelBuilder b("mean");
    const uint32_t h = 1 + rng() % 8, w = 1 + rng() % 8, c = 1 + rng() % 12;
    const int32_t x = b.add_input("in", Shape{h, w, c}, 0.02f + 0.01f * float(rng() % 7),
                                  int32_t(rng() % 256) - 128);
    const int32_t y = b.mean(
        "mean", x, ModelBuilder::Quant{0.01f + 0.01f * float(rng() % 9), int32_t(rng() % 61) - 30});
    b.mark_output(y);
    const Model m = b.finish();
    const TensorValues input = random_values(m.tensors[0].elements(), rng);
    const Operation& op = m.operations[0];
    EXPECT_EQ(run_reference(m, {input})[size_t(y)],
              npu_sim::test::ref_mean(as_tensor(m.tensors[0], input), m.tensors[0].zero_point,
                                      op.multiplier[0], op.shift[0],
                                      m.tensors[size_t(y)].zero_point, -128, 127)
                  .data)
        << trial;
  }
}

TEST(ReferenceInterpreter, DepthToSpaceAndReshapeMoveBytesAsSpecified) {
  // 1x2 input with 8 channels, block 2: 2x4 output with 2 channels. Input channel
  // (i*2+j)*2+c of pixel x goes to output (i, 2x+j, c).
  ModelBuilder b("d2s");
  const int32_t x = b.add_input("in", Shape{1, 2, 8}, 0.1f, 0);
  const int32_t y = b.depth_to_space("d2s", x, 2);
  const int32_t z = b.reshape("flat", y, Shape{1, 1, 16});
  b.mark_output(z);
  const Model m = b.finish();
  TensorValues input(16);
  for (int i = 0; i < 16; ++i) input[size_t(i)] = int8_t(i);  // pixel 0: 0..7, pixel 1: 8..15
  const TensorValues out = run_reference(m, {input})[size_t(z)];
  const TensorValues expected{0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
  EXPECT_EQ(out, expected);
  EXPECT_THROW(run_reference(m, {TensorValues(15)}), std::invalid_argument);
  EXPECT_THROW(run_reference(m, {}), std::invalid_argument);
}

}  // namespace
}  // namespace udc::firmware_model
