#include "udc/firmware_model/reference_interpreter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "udc/int8/fixed_point.hpp"

namespace udc::firmware_model {
namespace {

int8_t clamp_to(int32_t value, const Operation& op) {
  return int8_t(std::min(std::max(value, op.activation_min), op.activation_max));
}

/// Element (y, x, c) of an HWC tensor of shape s.
size_t at(const Shape& s, uint32_t y, uint32_t x, uint32_t c) {
  return (size_t(y) * s[1] + x) * s[2] + c;
}

/// Conv2d and depthwise: the accumulator loops of the TFLite reference kernels.
void convolution(const Model& model, const Operation& op, const TensorValues& in,
                 TensorValues& out) {
  const TensorInfo& ti = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& to = model.tensors[size_t(op.output)];
  const bool depthwise = op.type == OpType::DepthwiseConv2d;
  const uint32_t ih = ti.shape[0], iw = ti.shape[1], ic = ti.shape[2];
  const uint32_t oc = to.shape[2];
  const int32_t pad_top = int32_t(window_axis(ih, op.kernel_h, op.stride_h, op.padding).pad_before);
  const int32_t pad_left =
      int32_t(window_axis(iw, op.kernel_w, op.stride_w, op.padding).pad_before);
  const int32_t input_offset = -ti.zero_point;
  for (uint32_t oy = 0; oy < to.shape[0]; ++oy) {
    for (uint32_t ox = 0; ox < to.shape[1]; ++ox) {
      for (uint32_t o = 0; o < oc; ++o) {
        int32_t acc = 0;
        for (uint32_t ky = 0; ky < op.kernel_h; ++ky) {
          const int32_t y = int32_t(oy * op.stride_h + ky) - pad_top;
          if (y < 0 || y >= int32_t(ih)) continue;
          for (uint32_t kx = 0; kx < op.kernel_w; ++kx) {
            const int32_t x = int32_t(ox * op.stride_w + kx) - pad_left;
            if (x < 0 || x >= int32_t(iw)) continue;
            if (depthwise) {
              const int32_t w = op.weights[(size_t(o) * op.kernel_h + ky) * op.kernel_w + kx];
              acc += (in[at(ti.shape, uint32_t(y), uint32_t(x), o)] + input_offset) * w;
            } else {
              const size_t wbase = ((size_t(o) * op.kernel_h + ky) * op.kernel_w + kx) * ic;
              for (uint32_t i = 0; i < ic; ++i) {
                acc += (in[at(ti.shape, uint32_t(y), uint32_t(x), i)] + input_offset) *
                       op.weights[wbase + i];
              }
            }
          }
        }
        out[at(to.shape, oy, ox, o)] =
            int8_t(int8::requantize(acc + op.bias[o], op.multiplier[o], op.shift[o], to.zero_point,
                                    op.activation_min, op.activation_max));
      }
    }
  }
}

void fully_connected(const Model& model, const Operation& op, const TensorValues& in,
                     TensorValues& out) {
  const TensorInfo& ti = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& to = model.tensors[size_t(op.output)];
  const size_t n = in.size();
  for (uint32_t o = 0; o < to.shape[2]; ++o) {
    int32_t acc = 0;
    for (size_t i = 0; i < n; ++i) acc += (in[i] - ti.zero_point) * op.weights[o * n + i];
    out[o] = int8_t(int8::requantize(acc + op.bias[o], op.multiplier[o], op.shift[o], to.zero_point,
                                     op.activation_min, op.activation_max));
  }
}

void add(const Model& model, const Operation& op, const TensorValues& a, const TensorValues& b,
         TensorValues& out) {
  const int32_t za = model.tensors[size_t(op.inputs[0])].zero_point;
  const int32_t zb = model.tensors[size_t(op.inputs[1])].zero_point;
  const int32_t zo = model.tensors[size_t(op.output)].zero_point;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] =
        int8_t(int8::add(a[i], za, b[i], zb, op.add, zo, op.activation_min, op.activation_max));
  }
}

/// Max and average pooling over windows clipped to the input (padding never counts).
void pool(const Model& model, const Operation& op, const TensorValues& in, TensorValues& out) {
  const TensorInfo& ti = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& to = model.tensors[size_t(op.output)];
  const bool global = pools_whole_plane(op.type);
  const uint32_t kh = global ? ti.shape[0] : op.kernel_h, kw = global ? ti.shape[1] : op.kernel_w;
  const int32_t pad_top =
      global ? 0 : int32_t(window_axis(ti.shape[0], kh, op.stride_h, op.padding).pad_before);
  const int32_t pad_left =
      global ? 0 : int32_t(window_axis(ti.shape[1], kw, op.stride_w, op.padding).pad_before);
  for (uint32_t oy = 0; oy < to.shape[0]; ++oy) {
    const int32_t y0 = int32_t(oy * op.stride_h) - pad_top;
    const int32_t y_begin = std::max(y0, 0),
                  y_end = std::min(y0 + int32_t(kh), int32_t(ti.shape[0]));
    for (uint32_t ox = 0; ox < to.shape[1]; ++ox) {
      const int32_t x0 = int32_t(ox * op.stride_w) - pad_left;
      const int32_t x_begin = std::max(x0, 0),
                    x_end = std::min(x0 + int32_t(kw), int32_t(ti.shape[1]));
      for (uint32_t c = 0; c < to.shape[2]; ++c) {
        int32_t best = -128, sum = 0;
        for (int32_t y = y_begin; y < y_end; ++y) {
          for (int32_t x = x_begin; x < x_end; ++x) {
            const int32_t v = in[at(ti.shape, uint32_t(y), uint32_t(x), c)];
            best = std::max(best, v);
            sum += v;
          }
        }
        int32_t value = best;
        if (op.type != OpType::MaxPool) {
          const int32_t count = (y_end - y_begin) * (x_end - x_begin);
          if (op.type == OpType::Mean) {  // TFLite's MEAN: offsets first, rescaled
            sum = int8::multiply_by_quantized_multiplier(sum - count * ti.zero_point,
                                                         op.multiplier[0], op.shift[0]);
          }
          // Round half away from zero, as TFLite's integer average pool.
          value = count == 0 ? 0 : sum >= 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
          if (op.type == OpType::Mean) value += to.zero_point;
        }
        out[at(to.shape, oy, ox, c)] = clamp_to(value, op);
      }
    }
  }
}

void depth_to_space(const Model& model, const Operation& op, const TensorValues& in,
                    TensorValues& out) {
  const TensorInfo& ti = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& to = model.tensors[size_t(op.output)];
  const uint32_t b = op.block_size;
  for (uint32_t y = 0; y < to.shape[0]; ++y) {
    for (uint32_t x = 0; x < to.shape[1]; ++x) {
      for (uint32_t c = 0; c < to.shape[2]; ++c) {
        const uint32_t source_channel = ((y % b) * b + (x % b)) * to.shape[2] + c;
        out[at(to.shape, y, x, c)] = in[at(ti.shape, y / b, x / b, source_channel)];
      }
    }
  }
}

}  // namespace

std::vector<TensorValues> run_reference(const Model& model,
                                        const std::vector<TensorValues>& inputs) {
  if (inputs.size() != model.inputs.size()) {
    throw std::invalid_argument(fmt::format("model {} takes {} inputs, {} given", model.name,
                                            model.inputs.size(), inputs.size()));
  }
  std::vector<TensorValues> values(model.tensors.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& t = model.tensors[size_t(model.inputs[i])];
    if (inputs[i].size() != t.elements()) {
      throw std::invalid_argument(fmt::format("input {} ({}) has {} bytes, expected {}", i, t.name,
                                              inputs[i].size(), t.elements()));
    }
    values[size_t(model.inputs[i])] = inputs[i];
  }
  for (const Operation& op : model.operations) {
    const TensorValues& in = values[size_t(op.inputs[0])];
    TensorValues& out = values[size_t(op.output)];
    out.assign(model.tensors[size_t(op.output)].elements(), 0);
    switch (op.type) {
      case OpType::Conv2d:
      case OpType::DepthwiseConv2d:
        convolution(model, op, in, out);
        break;
      case OpType::FullyConnected:
        fully_connected(model, op, in, out);
        break;
      case OpType::Add:
        add(model, op, in, values[size_t(op.inputs[1])], out);
        break;
      case OpType::MaxPool:
      case OpType::AvgPool:
      case OpType::GlobalAvgPool:
      case OpType::Mean:
        pool(model, op, in, out);
        break;
      case OpType::Reshape:
        out = in;
        break;
      case OpType::DepthToSpace:
        depth_to_space(model, op, in, out);
        break;
    }
  }
  return values;
}

}  // namespace udc::firmware_model
