#include "udc/firmware_model/model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "udc/compression/encoder.hpp"

namespace udc::firmware_model {

namespace {
constexpr bool traits_in_type_order() {
  for (size_t t = 0; t < kOpTraits.size(); ++t) {
    if (static_cast<size_t>(kOpTraits[t].type) != t + 1) return false;
  }
  return true;
}
static_assert(traits_in_type_order(), "kOpTraits must list the types in .udcm order from 1");
}  // namespace

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::None:
      return "none";
    case Activation::Relu:
      return "relu";
    case Activation::Relu6:
      return "relu6";
  }
  return "unknown";
}

uint64_t Operation::nonzero_weights() const {
  return uint64_t(std::count_if(weights.begin(), weights.end(), [](int8_t w) { return w != 0; }));
}

WindowAxis window_axis(uint32_t in, uint32_t kernel, uint32_t stride, Padding padding) {
  WindowAxis axis;
  if (stride == 0 || kernel == 0) return axis;
  if (padding == Padding::Valid) {
    axis.out = in >= kernel ? (in - kernel) / stride + 1 : 0;
    return axis;
  }
  axis.out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>(int64_t{axis.out - 1} * stride + kernel - in, 0);
  axis.pad_before = uint32_t(total / 2);
  axis.pad_after = uint32_t(total - total / 2);
  return axis;
}

std::pair<int32_t, int32_t> activation_range(Activation activation, float scale,
                                             int32_t zero_point) {
  switch (activation) {
    case Activation::None:
      return {-128, 127};
    case Activation::Relu:
      return {std::max(-128, zero_point), 127};
    case Activation::Relu6: {
      const long six = std::lround(6.0 / double(scale)) + zero_point;
      return {std::max(-128, zero_point), int32_t(std::clamp<long>(six, -128, 127))};
    }
  }
  return {-128, 127};
}

uint64_t op_macs(const Model& model, const Operation& op) {
  const TensorInfo& out = model.tensors[size_t(op.output)];
  const TensorInfo& in = model.tensors[size_t(op.inputs[0])];
  switch (op.type) {
    case OpType::Conv2d:
      return out.elements() * op.kernel_h * op.kernel_w * in.shape[2];
    case OpType::DepthwiseConv2d:
    case OpType::MaxPool:
    case OpType::AvgPool:
      return out.elements() * op.kernel_h * op.kernel_w;
    case OpType::FullyConnected:
      return out.elements() * in.elements();
    case OpType::Add:
    case OpType::GlobalAvgPool:
    case OpType::Mean:
      return in.elements();
    case OpType::Reshape:
    case OpType::DepthToSpace:
      return 0;
  }
  return 0;
}

namespace {

/// "HxWxC", as messages write shapes.
std::string shape_text(const Shape& s) {
  return fmt::format("{}x{}x{}", s[0], s[1], s[2]);
}

/// Per-output-channel requantisation: one bias, multiplier and shift per channel, the
/// multiplier non-negative and the shift within what int8::requantize() takes (-31..30).
std::string check_requant(const Operation& op, uint32_t channels) {
  if (op.bias.size() != channels || op.multiplier.size() != channels ||
      op.shift.size() != channels) {
    return fmt::format("needs {} bias, multiplier and shift values (has {}, {}, {})", channels,
                       op.bias.size(), op.multiplier.size(), op.shift.size());
  }
  for (uint32_t c = 0; c < channels; ++c) {
    if (op.multiplier[c] < 0) return fmt::format("multiplier of channel {} is negative", c);
    if (op.shift[c] < -31 || op.shift[c] > 30) {
      return fmt::format("shift of channel {} is {} (expected -31..30)", c, op.shift[c]);
    }
  }
  return {};
}

/// The weights of a weighted operation: `expected` of them (the layout's count), each within
/// the symmetric range of its bitwidth (+-(2^(bits-1) - 1), the range the codec and the
/// NPU's weight decoder take). Returns the first problem, empty if none.
std::string check_weights(const Operation& op, uint64_t expected) {
  if (op.weight_bits < 2 || op.weight_bits > 8) {
    return fmt::format("weight_bits is {} (expected 2..8)", op.weight_bits);
  }
  if (op.weights.size() != expected) {
    return fmt::format("has {} weights (expected {})", op.weights.size(), expected);
  }
  const int limit = (1 << (op.weight_bits - 1)) - 1;
  for (size_t i = 0; i < op.weights.size(); ++i) {
    if (op.weights[i] < -limit || op.weights[i] > limit) {
      return fmt::format("weight {} is {}, outside +-{} for {}-bit weights", i, op.weights[i],
                         limit, op.weight_bits);
    }
  }
  return {};
}

/// Whether every int32 accumulation of a valid operation stays in range on every input:
/// a weighted layer's channel sums (input - zero point) x weight over its window and adds
/// its bias; a pooling sums a window of int8 values. Kernels on the host and the NPU
/// accumulate in int32, where an overflow is undefined behaviour.
std::string check_accumulator(const Model& model, const Operation& op) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const TensorInfo& in = model.tensors[size_t(op.inputs[0])];
  if (pools_whole_plane(op.type) || op.type == OpType::AvgPool) {
    const uint64_t window = pools_whole_plane(op.type) ? uint64_t{in.shape[0]} * in.shape[1]
                                                       : uint64_t{op.kernel_h} * op.kernel_w;
    // A mean sums (input - zero point): up to 255 per value.
    if (window * 255 > uint64_t(kMax)) {
      return fmt::format("pooling window of {} values can sum beyond int32 (at most {})", window,
                         kMax / 128);
    }
    return {};
  }
  if (!has_weights(op.type)) return {};
  // The largest |input - zero point| an int8 input can give.
  const int64_t input_span = std::max(127 - in.zero_point, in.zero_point + 128);
  const uint32_t channels = model.tensors[size_t(op.output)].shape[2];
  const size_t per_channel = op.weights.size() / channels;
  for (uint32_t c = 0; c < channels; ++c) {
    int64_t magnitude = 0;  // at most 2^31 weights of |w| <= 127: fits
    for (size_t k = 0; k < per_channel; ++k)
      magnitude += std::abs(int64_t{op.weights[c * per_channel + k]});
    // Both the sum itself and the sum with the bias must fit.
    const int64_t worst = magnitude * input_span;
    if (worst > kMax || worst + std::abs(int64_t{op.bias[c]}) > kMax) {
      return fmt::format(
          "channel {}: worst-case accumulator {} x {} + |bias {}| exceeds int32 "
          "({}); the layer cannot run exactly on int32 kernels",
          c, magnitude, input_span, op.bias[c], kMax);
    }
  }
  return {};
}

/// One operation against its type's rules, given that its tensors exist: the input count
/// and clamp every operation shares, the window's geometry (windowed types: kernel and
/// stride bounded so that address arithmetic cannot wrap, output shape equal to the
/// window's), the zero point of types that keep their input's quantisation, then the
/// type's own shape, weight and requantisation rules. Returns the first problem, empty if
/// none; validate() prefixes the operation's index and name.
std::string check_operation(const Model& model, const Operation& op) {
  const size_t wanted_inputs = traits(op.type).inputs;
  if (op.inputs.size() != wanted_inputs) {
    return fmt::format("has {} inputs (expected {})", op.inputs.size(), wanted_inputs);
  }
  const TensorInfo& in = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& out = model.tensors[size_t(op.output)];
  if (op.activation_min < -128 || op.activation_max > 127 ||
      op.activation_min > op.activation_max) {
    return fmt::format("activation clamp [{}, {}] (expected -128 <= min <= max <= 127)",
                       op.activation_min, op.activation_max);
  }
  if (traits(op.type).windowed) {
    if (op.kernel_h < 1 || op.kernel_w < 1 || op.kernel_h > 64 || op.kernel_w > 64) {
      return fmt::format("kernel {}x{} (expected 1..64)", op.kernel_h, op.kernel_w);
    }
    if (op.stride_h < 1 || op.stride_w < 1 || op.stride_h > 64 || op.stride_w > 64) {
      return fmt::format("stride {}x{} (expected 1..64)", op.stride_h, op.stride_w);
    }
    const WindowAxis y = window_axis(in.shape[0], op.kernel_h, op.stride_h, op.padding);
    const WindowAxis x = window_axis(in.shape[1], op.kernel_w, op.stride_w, op.padding);
    if (y.out == 0 || x.out == 0 || out.shape[0] != y.out || out.shape[1] != x.out) {
      return fmt::format("output {} does not match the window over input {} (expected {}x{})",
                         shape_text(out.shape), shape_text(in.shape), y.out, x.out);
    }
  }
  if (traits(op.type).keeps_quantization && out.zero_point != in.zero_point) {
    return fmt::format("output zero point {} differs from the input's {}", out.zero_point,
                       in.zero_point);
  }
  std::string problem;
  switch (op.type) {
    case OpType::Conv2d:
      problem = check_weights(op, uint64_t{out.shape[2]} * op.kernel_h * op.kernel_w * in.shape[2]);
      if (problem.empty()) problem = check_requant(op, out.shape[2]);
      break;
    case OpType::DepthwiseConv2d:
      if (out.shape[2] != in.shape[2]) return "depthwise output depth differs from the input's";
      problem = check_weights(op, uint64_t{out.shape[2]} * op.kernel_h * op.kernel_w);
      if (problem.empty()) problem = check_requant(op, out.shape[2]);
      break;
    case OpType::FullyConnected:
      if (out.shape[0] != 1 || out.shape[1] != 1) return "fully_connected output must be 1x1xN";
      problem = check_weights(op, uint64_t{out.shape[2]} * in.elements());
      if (problem.empty()) problem = check_requant(op, out.shape[2]);
      break;
    case OpType::Add: {
      const TensorInfo& in2 = model.tensors[size_t(op.inputs[1])];
      if (in.shape != out.shape || in2.shape != out.shape) {
        return fmt::format("add of {} and {} into {} (expected equal shapes)", shape_text(in.shape),
                           shape_text(in2.shape), shape_text(out.shape));
      }
      const int8::AddParams& a = op.add;
      if (a.left_shift < 0 || a.left_shift > 20) return "add left_shift outside 0..20";
      for (int32_t s : {a.input1_shift, a.input2_shift, a.output_shift}) {
        if (s < -31 || s > 30) return fmt::format("add shift {} outside -31..30", s);
      }
      for (int32_t m : {a.input1_multiplier, a.input2_multiplier, a.output_multiplier}) {
        if (m < 0) return "add multiplier is negative";
      }
      break;
    }
    case OpType::MaxPool:
    case OpType::AvgPool:
      if (out.shape[2] != in.shape[2]) return "pooling changes the depth";
      break;
    case OpType::GlobalAvgPool:
    case OpType::Mean:
      if (out.shape != Shape{1, 1, in.shape[2]}) {
        return fmt::format("{} output {} (expected 1x1x{})", op_type_name(op.type),
                           shape_text(out.shape), in.shape[2]);
      }
      if (op.type == OpType::Mean) {
        problem = check_requant(op, 1);
        if (problem.empty() && op.bias[0] != 0) problem = "mean bias must be 0";
      }
      break;
    case OpType::Reshape:
      if (out.elements() != in.elements()) {
        return fmt::format("reshape of {} to {} changes the element count", shape_text(in.shape),
                           shape_text(out.shape));
      }
      break;
    case OpType::DepthToSpace: {
      const uint32_t b = op.block_size;
      if (b < 2 || b > 8 || in.shape[2] % (b * b) != 0) {
        return fmt::format("block_size {} with input depth {} (expected 2..8 dividing it twice)", b,
                           in.shape[2]);
      }
      const Shape expected{in.shape[0] * b, in.shape[1] * b, in.shape[2] / (b * b)};
      if (out.shape != expected) {
        return fmt::format("output {} (expected {})", shape_text(out.shape), shape_text(expected));
      }
      break;
    }
    default:
      return fmt::format("unknown operation type {}", int(op.type));
  }
  if (!has_weights(op.type) && !op.weights.empty()) return "has weights but its type takes none";
  return problem;
}

}  // namespace

std::string validate(const Model& model) {
  const size_t n = model.tensors.size();
  for (size_t t = 0; t < n; ++t) {
    const TensorInfo& info = model.tensors[t];
    // Checked factor by factor: elements() of three 32-bit dimensions can wrap 64 bits
    // (2^22 x 2^22 x 2^20 is 0) and would pass a check of the product.
    constexpr uint64_t kMaxElements = uint64_t{1} << 31;
    const uint64_t h = info.shape[0], w = info.shape[1], c = info.shape[2];
    if (h == 0 || w == 0 || c == 0 || h > kMaxElements || w > kMaxElements / h ||
        c > kMaxElements / (h * w)) {
      return fmt::format("tensor {} ({}): shape {} (expected 1..2^31 elements)", t, info.name,
                         shape_text(info.shape));
    }
    if (info.zero_point < -128 || info.zero_point > 127) {
      return fmt::format("tensor {} ({}): zero point {} (expected -128..127)", t, info.name,
                         info.zero_point);
    }
    if (!(info.scale > 0.0f) || !std::isfinite(info.scale)) {
      return fmt::format("tensor {} ({}): scale must be positive and finite", t, info.name);
    }
  }
  if (model.inputs.empty()) return "model has no inputs";
  if (model.outputs.empty()) return "model has no outputs";
  std::vector<int> state(n, 0);  // 0: not yet available, 1: model input, 2: produced
  for (int32_t t : model.inputs) {
    if (t < 0 || size_t(t) >= n) return fmt::format("model input {} is not a tensor", t);
    if (state[size_t(t)] != 0) return fmt::format("tensor {} is listed twice as an input", t);
    state[size_t(t)] = 1;
  }
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    const std::string where = fmt::format("operation {} ({}): ", i, op.name);
    for (int32_t t : op.inputs) {
      if (t < 0 || size_t(t) >= n) return where + fmt::format("input {} is not a tensor", t);
      if (state[size_t(t)] == 0) {
        return where + fmt::format("input tensor {} ({}) is not computed before it", t,
                                   model.tensors[size_t(t)].name);
      }
    }
    if (op.output < 0 || size_t(op.output) >= n) {
      return where + fmt::format("output {} is not a tensor", op.output);
    }
    if (state[size_t(op.output)] != 0) {
      return where + fmt::format("output tensor {} is already defined", op.output);
    }
    if (op.inputs.empty()) return where + "has no inputs";
    std::string problem = check_operation(model, op);
    if (problem.empty()) problem = check_accumulator(model, op);
    if (!problem.empty()) return where + problem;
    state[size_t(op.output)] = 2;
  }
  for (int32_t t : model.outputs) {
    if (t < 0 || size_t(t) >= n || state[size_t(t)] == 0) {
      return fmt::format("model output {} is not a computed tensor", t);
    }
  }
  return {};
}

// --- ModelBuilder ---

int32_t ModelBuilder::add_tensor(const std::string& name, Shape shape, Quant quant) {
  model_.tensors.push_back(TensorInfo{name, shape, quant.scale, quant.zero_point});
  return int32_t(model_.tensors.size() - 1);
}

int32_t ModelBuilder::add_input(const std::string& name, Shape shape, float scale,
                                int32_t zero_point) {
  const int32_t t = add_tensor(name, shape, Quant{scale, zero_point});
  model_.inputs.push_back(t);
  return t;
}

int32_t ModelBuilder::windowed(OpType type, const std::string& name, int32_t input,
                               uint32_t out_channels, uint32_t kernel, uint32_t stride,
                               Padding padding, Quant out) {
  const Shape in = tensor(input).shape;
  const WindowAxis y = window_axis(in[0], kernel, stride, padding);
  const WindowAxis x = window_axis(in[1], kernel, stride, padding);
  const int32_t output = add_tensor(name, Shape{y.out, x.out, out_channels}, out);
  Operation op;
  op.type = type;
  op.name = name;
  op.inputs = {input};
  op.output = output;
  op.kernel_h = op.kernel_w = kernel;
  op.stride_h = op.stride_w = stride;
  op.padding = padding;
  model_.operations.push_back(std::move(op));
  return output;
}

namespace {
void set_weights(Operation& op, std::vector<int8_t> weights, uint32_t bits,
                 ModelBuilder::Requant requant, Activation activation,
                 const ModelBuilder::Quant& out) {
  op.weights = std::move(weights);
  op.weight_bits = bits;
  op.bias = std::move(requant.bias);
  op.multiplier = std::move(requant.multiplier);
  op.shift = std::move(requant.shift);
  op.activation = activation;
  std::tie(op.activation_min, op.activation_max) =
      activation_range(activation, out.scale, out.zero_point);
}
}  // namespace

int32_t ModelBuilder::conv2d(const std::string& name, int32_t input, uint32_t out_channels,
                             uint32_t kernel, uint32_t stride, Padding padding,
                             std::vector<int8_t> weights, uint32_t weight_bits, Requant requant,
                             Quant out, Activation activation) {
  const int32_t t =
      windowed(OpType::Conv2d, name, input, out_channels, kernel, stride, padding, out);
  set_weights(model_.operations.back(), std::move(weights), weight_bits, std::move(requant),
              activation, out);
  return t;
}

int32_t ModelBuilder::depthwise_conv2d(const std::string& name, int32_t input, uint32_t kernel,
                                       uint32_t stride, Padding padding,
                                       std::vector<int8_t> weights, uint32_t weight_bits,
                                       Requant requant, Quant out, Activation activation) {
  const int32_t t = windowed(OpType::DepthwiseConv2d, name, input, tensor(input).shape[2], kernel,
                             stride, padding, out);
  set_weights(model_.operations.back(), std::move(weights), weight_bits, std::move(requant),
              activation, out);
  return t;
}

int32_t ModelBuilder::fully_connected(const std::string& name, int32_t input, uint32_t outputs,
                                      std::vector<int8_t> weights, uint32_t weight_bits,
                                      Requant requant, Quant out, Activation activation) {
  const int32_t t = add_tensor(name, Shape{1, 1, outputs}, out);
  Operation op;
  op.type = OpType::FullyConnected;
  op.name = name;
  op.inputs = {input};
  op.output = t;
  set_weights(op, std::move(weights), weight_bits, std::move(requant), activation, out);
  model_.operations.push_back(std::move(op));
  return t;
}

int32_t ModelBuilder::add(const std::string& name, int32_t a, int32_t b,
                          const int8::AddParams& params, Quant out, Activation activation) {
  const int32_t t = add_tensor(name, tensor(a).shape, out);
  Operation op;
  op.type = OpType::Add;
  op.name = name;
  op.inputs = {a, b};
  op.output = t;
  op.add = params;
  op.activation = activation;
  std::tie(op.activation_min, op.activation_max) =
      activation_range(activation, out.scale, out.zero_point);
  model_.operations.push_back(std::move(op));
  return t;
}

int32_t ModelBuilder::max_pool(const std::string& name, int32_t input, uint32_t kernel,
                               uint32_t stride, Padding padding) {
  const TensorInfo& in = tensor(input);
  return windowed(OpType::MaxPool, name, input, in.shape[2], kernel, stride, padding,
                  Quant{in.scale, in.zero_point});
}

int32_t ModelBuilder::avg_pool(const std::string& name, int32_t input, uint32_t kernel,
                               uint32_t stride, Padding padding) {
  const TensorInfo& in = tensor(input);
  return windowed(OpType::AvgPool, name, input, in.shape[2], kernel, stride, padding,
                  Quant{in.scale, in.zero_point});
}

int32_t ModelBuilder::global_avg_pool(const std::string& name, int32_t input) {
  const TensorInfo& in = tensor(input);
  return whole_plane(OpType::GlobalAvgPool, name, input, Quant{in.scale, in.zero_point});
}

int32_t ModelBuilder::mean(const std::string& name, int32_t input, Quant out) {
  const double ratio = double(tensor(input).scale) / double(out.scale);
  const int32_t t = whole_plane(OpType::Mean, name, input, out);
  Operation& op = model_.operations.back();
  const auto [multiplier, shift] = int8::quantize_multiplier(ratio);
  op.bias = {0};
  op.multiplier = {multiplier};
  op.shift = {shift};
  return t;
}

int32_t ModelBuilder::whole_plane(OpType type, const std::string& name, int32_t input, Quant out) {
  const TensorInfo in = tensor(input);
  const int32_t t = add_tensor(name, Shape{1, 1, in.shape[2]}, out);
  Operation op;
  op.type = type;
  op.name = name;
  op.inputs = {input};
  op.output = t;
  op.kernel_h = in.shape[0];
  op.kernel_w = in.shape[1];
  model_.operations.push_back(std::move(op));
  return t;
}

int32_t ModelBuilder::reshape(const std::string& name, int32_t input, Shape shape) {
  const TensorInfo in = tensor(input);
  const int32_t t = add_tensor(name, shape, Quant{in.scale, in.zero_point});
  Operation op;
  op.type = OpType::Reshape;
  op.name = name;
  op.inputs = {input};
  op.output = t;
  model_.operations.push_back(std::move(op));
  return t;
}

int32_t ModelBuilder::depth_to_space(const std::string& name, int32_t input, uint32_t block_size) {
  const TensorInfo in = tensor(input);
  const uint32_t b = block_size;
  const int32_t t = add_tensor(name, Shape{in.shape[0] * b, in.shape[1] * b, in.shape[2] / (b * b)},
                               Quant{in.scale, in.zero_point});
  Operation op;
  op.type = OpType::DepthToSpace;
  op.name = name;
  op.inputs = {input};
  op.output = t;
  op.block_size = b;
  model_.operations.push_back(std::move(op));
  return t;
}

Model ModelBuilder::finish() const {
  const std::string problem = validate(model_);
  if (!problem.empty()) throw std::invalid_argument("model " + model_.name + ": " + problem);
  return model_;
}

// --- Summary ---

ModelSummary summarize(const Model& model) {
  ModelSummary summary;
  for (const Operation& op : model.operations) {
    LayerSummary layer;
    layer.name = op.name;
    layer.type = op.type;
    layer.output = model.tensors[size_t(op.output)].shape;
    layer.macs = op_macs(model, op);
    if (has_weights(op.type)) {
      layer.weights = op.weights.size();
      layer.nonzero = op.nonzero_weights();
      layer.weight_bits = op.weight_bits;
      layer.compressed_bytes =
          compression::encoded_size_bytes(op.weights.data(), op.weights.size());
      summary.bias_and_scale_bytes += uint64_t{layer.output[2]} * 10;
    }
    summary.macs += layer.macs;
    summary.weights += layer.weights;
    summary.nonzero += layer.nonzero;
    summary.compressed_bytes += layer.compressed_bytes;
    summary.layers.push_back(layer);
  }
  return summary;
}

std::string format_summary(const Model& model, const ModelSummary& summary) {
  std::string text = fmt::format("model {}: {} operations, {} tensors\n", model.name,
                                 model.operations.size(), model.tensors.size());
  for (int32_t t : model.inputs) {
    text += fmt::format("  input  {} {}\n", model.tensors[size_t(t)].name,
                        shape_text(model.tensors[size_t(t)].shape));
  }
  for (int32_t t : model.outputs) {
    text += fmt::format("  output {} {}\n", model.tensors[size_t(t)].name,
                        shape_text(model.tensors[size_t(t)].shape));
  }
  text += fmt::format("{:<4} {:<20} {:<17} {:>12} {:>11} {:>9} {:>5} {:>9} {:>11} {:>7}\n", "#",
                      "layer", "op", "output", "MACs", "weights", "bits", "sparsity", "compressed",
                      "bits/w");
  for (size_t i = 0; i < summary.layers.size(); ++i) {
    const LayerSummary& l = summary.layers[i];
    if (l.weights > 0) {
      text +=
          fmt::format("{:<4} {:<20} {:<17} {:>12} {:>11} {:>9} {:>5} {:>8.1f}% {:>11} {:>7.2f}\n",
                      i, l.name, op_type_name(l.type), shape_text(l.output), l.macs, l.weights,
                      l.weight_bits, 100.0 * double(l.weights - l.nonzero) / double(l.weights),
                      l.compressed_bytes, 8.0 * double(l.compressed_bytes) / double(l.weights));
    } else {
      text += fmt::format("{:<4} {:<20} {:<17} {:>12} {:>11}\n", i, l.name, op_type_name(l.type),
                          shape_text(l.output), l.macs);
    }
  }
  const double sparsity =
      summary.weights ? 100.0 * double(summary.weights - summary.nonzero) / double(summary.weights)
                      : 0.0;
  text += fmt::format(
      "total: {} MACs, {} weights ({:.1f}% zero), {} bytes of weight streams ({:.2f} bits per "
      "weight), {} bytes of bias and scale records\n",
      summary.macs, summary.weights, sparsity, summary.compressed_bytes,
      summary.weights ? 8.0 * double(summary.compressed_bytes) / double(summary.weights) : 0.0,
      summary.bias_and_scale_bytes);
  return text;
}

}  // namespace udc::firmware_model
