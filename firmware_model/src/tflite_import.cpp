#include "udc/firmware_model/tflite_import.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "udc/common/file_io.hpp"
#include "udc/firmware_model/model_io.hpp"
#include "udc/firmware_model/tflite_export.hpp"

namespace udc::firmware_model {
namespace {

/// TFLite BuiltinOperator codes the importer dispatches on (values as in the format).
enum Builtin : int32_t {
  kAdd = 0,
  kAveragePool = 1,
  kConv = 3,
  kDepthwise = 4,
  kDepthToSpace = 5,
  kDequantize = 6,
  kFullyConnected = 9,
  kLogistic = 14,
  kMaxPool = 17,
  kReshape = 22,
  kSoftmax = 25,
  kTanh = 28,
  kPad = 34,
  kMean = 40,
  kSqueeze = 43,
  kArgMax = 56,
  kQuantize = 114,
};

/// The operators the NPU runs (PAD only folded into the window of the layer it feeds).
bool runs_on_npu(int32_t code) {
  switch (code) {
    case kAdd:
    case kAveragePool:
    case kConv:
    case kDepthwise:
    case kDepthToSpace:
    case kFullyConnected:
    case kMaxPool:
    case kReshape:
    case kSqueeze:
    case kPad:
    case kMean:
      return true;
    default:
      return false;
  }
}

/// What the CPU beside the NPU spends on the operators it takes over (CMSIS-NN kernels),
/// or null for operators the CPU fallback does not know.
const char* cpu_cost_class(int32_t code) {
  switch (code) {
    case kSoftmax:
      return "per element: exponent, sum and division";
    case kLogistic:
    case kTanh:
      return "per element: table lookup";
    case kQuantize:
      return "per element: rescale (format conversion)";
    case kDequantize:
      return "per element: conversion to float";
    case kArgMax:
      return "per element: compare";
    default:
      return nullptr;
  }
}

/// The udc operation type names a file operator turns into, for checking that udc's
/// metadata describes this file's operators.
bool metadata_type_matches(int32_t code, const std::string& type) {
  switch (code) {
    case kConv:  // a fully connected layer may be written as a convolution over its input
      return type == "conv2d" || type == "fully_connected";
    case kDepthwise:
      return type == "depthwise_conv2d";
    case kFullyConnected:
      return type == "fully_connected";
    case kAdd:
      return type == "add";
    case kMaxPool:
      return type == "max_pool";
    case kAveragePool:
      return type == "avg_pool" || type == "global_avg_pool";
    case kReshape:
    case kSqueeze:
      return type == "reshape";
    case kDepthToSpace:
      return type == "depth_to_space";
    case kMean:
      return type == "mean";
    default:
      return false;
  }
}

/// Where a tensor of the file comes from, for placing CPU operators around the NPU region.
enum class Source { Computed, GraphInput, Constant, Npu, CpuBefore, CpuAfter };

/// One udc operation's entry of the file's udc metadata.
struct MetadataEntry {
  std::string name, type;
  uint32_t weight_bits = 0;  ///< 0: not given
};

/// A PAD whose output awaits the convolution that will take its padding as SAME padding.
struct PendingPad {
  size_t op = 0;       ///< the PAD's operator index
  int32_t input = -1;  ///< the file tensor it pads
  uint32_t top = 0, bottom = 0, left = 0, right = 0;
};

/// The smallest bit width 2..8 whose symmetric range holds every weight.
uint32_t bits_for_range(const std::vector<int8_t>& weights) {
  int largest = 0;
  for (int8_t w : weights) largest = std::max(largest, std::abs(int(w)));
  uint32_t bits = 2;
  while ((1 << (bits - 1)) - 1 < largest) ++bits;
  return bits;
}

class Importer {
 public:
  Importer(const TfliteModel& file, const std::string& origin)
      : file_(file), origin_(origin), model_tensor_(file.tensors.size(), -1) {}

  ImportedModel run() {
    result_.model.name = std::filesystem::path(origin_).stem().string();
    read_metadata();
    place_operators();
    for (int32_t t : npu_inputs_) result_.model.inputs.push_back(model_tensor(t));
    for (size_t i = 0; i < file_.operators.size(); ++i) {
      const TfliteOperator& op = file_.operators[i];
      if (sources_[i] == Source::Npu) convert(i, op);
    }
    for (int32_t t : npu_outputs_) result_.model.outputs.push_back(model_tensor(t));
    for (const auto& [tensor, pad] : pads_) {
      if (std::find(folded_.begin(), folded_.end(), tensor) == folded_.end()) {
        fail(pad.op, "its output is read by no operator it can be folded into");
      }
    }
    const std::string problem = validate(result_.model);
    if (!problem.empty()) throw std::runtime_error(origin_ + ": " + problem);
    return std::move(result_);
  }

 private:
  // --- errors and names ---

  std::string where(size_t op) const {
    return fmt::format("{}: operator {} ({})", origin_, op,
                       tflite_operator_name(file_.operators[op].builtin_code));
  }
  std::string tensor_where(int32_t t) const {
    return fmt::format("{}: tensor {} ({})", origin_, t, file_.tensors[size_t(t)].name);
  }
  [[noreturn]] void fail(size_t op, const std::string& problem) const {
    throw std::runtime_error(where(op) + ": " + problem);
  }

  // --- metadata ---

  /// The udc metadata's model name and per-operation entries, if the file has them and
  /// they describe this file's operators one to one; otherwise a note says why not.
  void read_metadata() {
    for (const auto& [name, bytes] : file_.metadata) {
      if (name != kTfliteMetadataName) continue;
      const nlohmann::json root = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
      if (!root.is_object() || root.value("format", "") != "udc" || !root.contains("operations") ||
          !root["operations"].is_array()) {
        result_.notes.push_back("metadata 'udc' is not udc's: ignored");
        return;
      }
      std::vector<MetadataEntry> entries;
      for (const nlohmann::json& op : root["operations"]) {
        if (!op.is_object()) return;
        MetadataEntry entry;
        entry.name = op.value("name", "");
        entry.type = op.value("type", "");
        entry.weight_bits = op.value("weight_bits", 0u);
        entries.push_back(entry);
      }
      std::vector<size_t> lowered;  // operators that become one udc operation each
      for (size_t i = 0; i < file_.operators.size(); ++i) {
        const int32_t code = file_.operators[i].builtin_code;
        if (runs_on_npu(code) && code != kPad) lowered.push_back(i);
      }
      bool matches = lowered.size() == entries.size();
      for (size_t k = 0; matches && k < lowered.size(); ++k) {
        matches = metadata_type_matches(file_.operators[lowered[k]].builtin_code, entries[k].type);
      }
      if (!matches) {
        result_.notes.push_back(
            "metadata 'udc' describes other operators than the file's: names and bit widths "
            "taken from the file");
        return;
      }
      for (size_t k = 0; k < lowered.size(); ++k) metadata_[lowered[k]] = entries[k];
      const std::string model = root.value("model", "");
      if (!model.empty()) result_.model.name = model;
    }
  }

  // --- regions ---

  /// Places every operator on the NPU or the CPU, before or after the NPU region, and
  /// finds the region's inputs and outputs. Refuses operators neither side runs and CPU
  /// operators between NPU operators.
  void place_operators() {
    tensor_source_.assign(file_.tensors.size(), Source::Computed);
    writer_.assign(file_.tensors.size(), 0);
    for (size_t t = 0; t < file_.tensors.size(); ++t) {
      if (!file_.tensors[t].data.empty()) tensor_source_[t] = Source::Constant;
    }
    for (int32_t t : file_.inputs) tensor_source_[size_t(t)] = Source::GraphInput;
    std::vector<int32_t> read_before;  // tensors from the inputs side that NPU operators read
    for (size_t i = 0; i < file_.operators.size(); ++i) {
      const TfliteOperator& op = file_.operators[i];
      Source placed;
      if (runs_on_npu(op.builtin_code)) {
        placed = Source::Npu;
        for (int32_t t : op.inputs) {
          if (t < 0) continue;
          const Source s = tensor_source_[size_t(t)];
          if (s == Source::CpuAfter) refuse_cpu_input(i, t);
          if ((s == Source::GraphInput || s == Source::CpuBefore) &&
              std::find(read_before.begin(), read_before.end(), t) == read_before.end()) {
            read_before.push_back(t);
          }
        }
      } else if (const char* cost = cpu_cost_class(op.builtin_code)) {
        placed = place_on_cpu(i, cost);
      } else {
        const std::string name = op.custom_code.empty()
                                     ? tflite_operator_name(op.builtin_code)
                                     : "custom operator '" + op.custom_code + "'";
        throw std::runtime_error(
            fmt::format("{}: operator {} ({}): neither the NPU model nor the CPU fallback runs it",
                        origin_, i, name));
      }
      sources_.push_back(placed);
      for (int32_t t : op.outputs) {
        tensor_source_[size_t(t)] = placed;
        writer_[size_t(t)] = i;
      }
    }
    bound_npu_region(read_before);
  }

  [[noreturn]] void refuse_cpu_input(size_t i, int32_t t) const {
    const size_t w = writer_[size_t(t)];
    fail(i, fmt::format("reads tensor {} ({}) that operator {} ({}) computes on the CPU; udc "
                        "simulates one NPU region, so CPU operators must come before or after "
                        "every NPU operator",
                        t, file_.tensors[size_t(t)].name, w,
                        tflite_operator_name(file_.operators[w].builtin_code)));
  }

  /// A CPU operator: before the NPU region when it reads only the graph's inputs,
  /// constants and other such operators' outputs, else after it. Recorded for the report.
  Source place_on_cpu(size_t i, const char* cost) {
    const TfliteOperator& op = file_.operators[i];
    bool on_inputs = true;
    for (int32_t t : op.inputs) {
      if (t < 0) continue;
      const Source s = tensor_source_[size_t(t)];
      on_inputs &= s == Source::GraphInput || s == Source::CpuBefore || s == Source::Constant;
    }
    CpuOperator cpu;
    cpu.index = i;
    cpu.name = tflite_operator_name(op.builtin_code);
    cpu.output = op.outputs.empty() ? "" : file_.tensors[size_t(op.outputs[0])].name;
    cpu.cost_class = cost;
    cpu.before_npu = on_inputs;
    result_.cpu_operators.push_back(cpu);
    return on_inputs ? Source::CpuBefore : Source::CpuAfter;
  }

  /// The NPU region's inputs (the graph's own first, in their order, then tensors made by
  /// CPU operators before it) and outputs (NPU tensors the graph returns, then those CPU
  /// operators after it read).
  void bound_npu_region(const std::vector<int32_t>& read_before) {
    for (int32_t t : file_.inputs) {
      if (std::find(read_before.begin(), read_before.end(), t) != read_before.end()) {
        npu_inputs_.push_back(t);
      }
    }
    for (int32_t t : read_before) {
      if (tensor_source_[size_t(t)] == Source::CpuBefore) npu_inputs_.push_back(t);
    }
    auto add_output = [&](int32_t t) {
      if (tensor_source_[size_t(t)] == Source::Npu &&
          std::find(npu_outputs_.begin(), npu_outputs_.end(), t) == npu_outputs_.end()) {
        npu_outputs_.push_back(t);
      }
    };
    for (int32_t t : file_.outputs) add_output(t);
    for (size_t i = 0; i < file_.operators.size(); ++i) {
      if (sources_[i] != Source::CpuAfter) continue;
      for (int32_t t : file_.operators[i].inputs) {
        if (t >= 0) add_output(t);
      }
    }
    if (npu_inputs_.empty() || npu_outputs_.empty()) {
      throw std::runtime_error(origin_ + ": no operator of the file runs on the NPU");
    }
  }

  // --- tensors ---

  /// A feature map's height, width and channels from its TFLite shape (batch 1).
  Shape feature_shape(int32_t t) const {
    const std::vector<int32_t>& s = file_.tensors[size_t(t)].shape;
    auto u = [](int32_t v) { return uint32_t(v); };
    if (s.size() == 4 && s[0] == 1) return Shape{u(s[1]), u(s[2]), u(s[3])};
    if (s.size() == 3 && s[0] == 1) return Shape{1, u(s[1]), u(s[2])};
    if (s.size() == 2 && s[0] == 1) return Shape{1, 1, u(s[1])};
    if (s.size() == 1) return Shape{1, 1, u(s[0])};
    throw std::runtime_error(tensor_where(t) + ": shape of rank " + std::to_string(s.size()) +
                             " (expected batch 1: [1,H,W,C], [1,N] or [N])");
  }

  /// The model tensor of a file tensor, made on first use: int8, one scale and zero point.
  int32_t model_tensor(int32_t t) {
    if (model_tensor_[size_t(t)] >= 0) return model_tensor_[size_t(t)];
    const auto pad = pads_.find(t);
    if (pad != pads_.end()) {
      fail(pad->second.op,
           "its output is read other than as the input of a CONV_2D or DEPTHWISE_CONV_2D, so "
           "it cannot be folded into a window's SAME padding");
    }
    const TfliteTensor& in = file_.tensors[size_t(t)];
    if (in.type != int8_t(TfliteType::Int8)) {
      throw std::runtime_error(
          fmt::format("{}: type {} (expected int8 activations; other types only at a CPU QUANTIZE)",
                      tensor_where(t), int(in.type)));
    }
    if (in.scales.size() != 1 || !(in.scales[0] > 0.0f) || !std::isfinite(in.scales[0]) ||
        in.zero_points[0] < -128 || in.zero_points[0] > 127) {
      throw std::runtime_error(tensor_where(t) +
                               ": expected one positive scale and a zero point in -128..127");
    }
    TensorInfo info;
    info.name = in.name;
    info.shape = feature_shape(t);
    info.scale = in.scales[0];
    info.zero_point = int32_t(in.zero_points[0]);
    result_.model.tensors.push_back(info);
    model_tensor_[size_t(t)] = int32_t(result_.model.tensors.size() - 1);
    return model_tensor_[size_t(t)];
  }
  const TensorInfo& info(int32_t model_index) const {
    return result_.model.tensors[size_t(model_index)];
  }

  /// A constant input of operator `i`, checked for type and rank.
  const TfliteTensor& constant(size_t i, size_t input, TfliteType type, size_t rank,
                               const char* role) const {
    const TfliteOperator& op = file_.operators[i];
    if (input >= op.inputs.size() || op.inputs[input] < 0) fail(i, fmt::format("no {}", role));
    const TfliteTensor& t = file_.tensors[size_t(op.inputs[input])];
    if (t.data.empty() || t.type != int8_t(type) || t.shape.size() != rank) {
      fail(i, fmt::format("{} (tensor {}) must be a constant {}-d tensor of type {}", role,
                          op.inputs[input], rank, int(type)));
    }
    return t;
  }

  // --- operators ---

  Operation start(size_t i, OpType type) {
    const TfliteOperator& op = file_.operators[i];
    if (op.outputs.size() != 1) fail(i, "expected one output");
    Operation out;
    out.type = type;
    const auto meta = metadata_.find(i);
    out.name = meta != metadata_.end() && !meta->second.name.empty()
                   ? meta->second.name
                   : file_.tensors[size_t(op.outputs[0])].name;
    return out;
  }

  void set_activation(size_t i, Operation& op) {
    const TensorInfo& out = info(op.output);
    switch (file_.operators[i].options.activation) {
      case 0:
        op.activation = Activation::None;
        break;
      case 1:
        op.activation = Activation::Relu;
        break;
      case 3:
        op.activation = Activation::Relu6;
        break;
      default:
        fail(i, fmt::format("fused activation {} (udc fuses NONE, RELU and RELU6)",
                            int(file_.operators[i].options.activation)));
    }
    std::tie(op.activation_min, op.activation_max) =
        activation_range(op.activation, out.scale, out.zero_point);
  }

  void push(Operation op) { result_.model.operations.push_back(std::move(op)); }

  /// Output of a quantisation-keeping operator: same scale and zero point as its input.
  void require_same_quantization(size_t i, int32_t in, int32_t out) const {
    if (info(in).scale != info(out).scale || info(in).zero_point != info(out).zero_point) {
      fail(i, "output quantisation differs from the input's (this operator keeps it)");
    }
  }

  void convert(size_t i, const TfliteOperator& op) {
    switch (op.builtin_code) {
      case kConv:
      case kDepthwise:
        return convert_convolution(i, op);
      case kFullyConnected:
        return convert_fully_connected(i, op);
      case kAdd:
        return convert_add(i, op);
      case kMaxPool:
      case kAveragePool:
        return convert_pool(i, op);
      case kReshape:
      case kSqueeze:
      case kDepthToSpace:
        return convert_data_movement(i, op);
      case kPad:
        return record_pad(i, op);
      case kMean:
        return convert_mean(i, op);
      default:
        fail(i, "not an NPU operator");
    }
  }

  /// Weights of a layer: int8 symmetric, one scale for all or one per output channel;
  /// the per-channel requantisation TFLite derives from the scales; the bit width from
  /// the metadata or the value range.
  void set_weights(size_t i, Operation& op, std::vector<int8_t> weights, const TfliteTensor& w,
                   size_t channel_dimension, uint32_t channels) {
    if (w.scales.empty()) fail(i, "weights are not quantised");
    if (w.scales.size() != 1 &&
        (w.scales.size() != channels || size_t(w.quantized_dimension) != channel_dimension)) {
      fail(i, fmt::format("{} weight scales along dimension {} (expected 1, or {} along {})",
                          w.scales.size(), w.quantized_dimension, channels, channel_dimension));
    }
    for (int64_t z : w.zero_points) {
      if (z != 0) fail(i, "weight zero point is not 0 (int8 weights are symmetric)");
    }
    for (int8_t v : weights) {
      if (v == -128) fail(i, "a weight is -128 (int8 weights are symmetric: -127..127)");
    }
    const TfliteOperator& file_op = file_.operators[i];
    op.bias.assign(channels, 0);
    if (file_op.inputs.size() > 2 && file_op.inputs[2] >= 0) {
      const TfliteTensor& bias = constant(i, 2, TfliteType::Int32, 1, "bias");
      if (bias.shape[0] != int32_t(channels)) fail(i, "bias length differs from the channels");
      std::memcpy(op.bias.data(), bias.data.data(), channels * sizeof(int32_t));
    }
    const float in_scale = info(op.inputs[0]).scale, out_scale = info(op.output).scale;
    for (uint32_t c = 0; c < channels; ++c) {
      const float scale = w.scales[w.scales.size() == 1 ? 0 : c];
      if (!(scale > 0.0f) || !std::isfinite(scale)) fail(i, "a weight scale is not positive");
      try {
        const auto [m, s] = int8::channel_multiplier(in_scale, scale, out_scale);
        op.multiplier.push_back(m);
        op.shift.push_back(s);
      } catch (const std::invalid_argument& e) {
        fail(i, fmt::format("channel {}: {}", c, e.what()));
      }
    }
    op.weight_bits = bits_for_range(weights);
    const auto meta = metadata_.find(i);
    if (meta != metadata_.end() && meta->second.weight_bits >= op.weight_bits &&
        meta->second.weight_bits <= 8) {
      op.weight_bits = meta->second.weight_bits;
    }
    op.weights = std::move(weights);
  }

  /// The input of a windowed layer, with a PAD before it folded into SAME padding when
  /// the PAD's amounts are exactly SAME's for this window.
  int32_t windowed_input(size_t i, Operation& op, bool same) {
    const int32_t t = file_.operators[i].inputs[0];
    const auto pad = pads_.find(t);
    if (pad == pads_.end()) {
      op.padding = same ? Padding::Same : Padding::Valid;
      return t;
    }
    const PendingPad p = pad->second;
    const Shape s = feature_shape(p.input);
    const WindowAxis y = window_axis(s[0], op.kernel_h, op.stride_h, Padding::Same);
    const WindowAxis x = window_axis(s[1], op.kernel_w, op.stride_w, Padding::Same);
    if (same || y.pad_before != p.top || y.pad_after != p.bottom || x.pad_before != p.left ||
        x.pad_after != p.right) {
      fail(p.op, fmt::format("padding (top {}, bottom {}, left {}, right {}) is not the SAME "
                             "padding of operator {}, so it cannot be folded into it",
                             p.top, p.bottom, p.left, p.right, i));
    }
    op.padding = Padding::Same;
    result_.notes.push_back(
        fmt::format("operator {} (PAD) folded into operator {} as SAME padding", p.op, i));
    folded_.push_back(t);
    return p.input;
  }

  void check_window_output(size_t i, const Operation& op) const {
    const Shape in = info(op.inputs[0]).shape, out = info(op.output).shape;
    const WindowAxis y = window_axis(in[0], op.kernel_h, op.stride_h, op.padding);
    const WindowAxis x = window_axis(in[1], op.kernel_w, op.stride_w, op.padding);
    if (out[0] != y.out || out[1] != x.out) {
      fail(i, fmt::format("output {}x{} differs from the window arithmetic's {}x{}", out[0], out[1],
                          y.out, x.out));
    }
  }

  void set_window(size_t i, Operation& op, uint32_t kernel_h, uint32_t kernel_w) {
    const TfliteOptions& o = file_.operators[i].options;
    if (o.dilation_h != 1 || o.dilation_w != 1) {
      fail(i, fmt::format("dilation {}x{} (udc runs dilation 1)", o.dilation_h, o.dilation_w));
    }
    if (o.stride_h < 1 || o.stride_w < 1) fail(i, "stride below 1");
    op.kernel_h = kernel_h;
    op.kernel_w = kernel_w;
    op.stride_h = uint32_t(o.stride_h);
    op.stride_w = uint32_t(o.stride_w);
  }

  void convert_convolution(size_t i, const TfliteOperator& file_op) {
    const bool depthwise = file_op.builtin_code == kDepthwise;
    const TfliteTensor& w = constant(i, 1, TfliteType::Int8, 4, "filter");
    Operation op = start(i, depthwise ? OpType::DepthwiseConv2d : OpType::Conv2d);
    set_window(i, op, uint32_t(w.shape[1]), uint32_t(w.shape[2]));
    op.inputs = {model_tensor(windowed_input(i, op, file_op.options.same_padding))};
    op.output = model_tensor(file_op.outputs[0]);
    const uint32_t in_c = info(op.inputs[0]).shape[2], out_c = info(op.output).shape[2];
    const uint32_t taps = op.kernel_h * op.kernel_w;
    const std::vector<int8_t> filter(w.data.begin(), w.data.end());
    std::vector<int8_t> weights;
    size_t channel_dimension = 0;
    if (!depthwise) {
      if (uint32_t(w.shape[0]) != out_c || uint32_t(w.shape[3]) != in_c) {
        fail(i, fmt::format("filter [{}, {}, {}, {}] for {} input and {} output channels",
                            w.shape[0], w.shape[1], w.shape[2], w.shape[3], in_c, out_c));
      }
      weights = filter;
    } else {
      channel_dimension = 3;
      if (w.shape[0] != 1 || uint32_t(w.shape[3]) != out_c || out_c % in_c != 0) {
        fail(i, fmt::format("filter [{}, {}, {}, {}] for {} input and {} output channels",
                            w.shape[0], w.shape[1], w.shape[2], w.shape[3], in_c, out_c));
      }
      const uint32_t multiplier = out_c / in_c;
      if (multiplier == 1) {  // [1][kh][kw][c] there, [c][kh][kw] here
        weights.resize(filter.size());
        for (uint32_t c = 0; c < out_c; ++c) {
          for (uint32_t t = 0; t < taps; ++t) weights[c * taps + t] = filter[size_t(t) * out_c + c];
        }
      } else {
        // Output channel o reads input channel o / multiplier only: a convolution whose
        // other weights are exact zeros, which the codec stores as zero runs.
        constexpr uint64_t kMaxExpandedWeights = uint64_t{1} << 26;
        if (uint64_t{out_c} * taps * in_c > kMaxExpandedWeights) {
          fail(i,
               fmt::format("depth multiplier {} over {} channels would need {} weights as a "
                           "convolution (at most {})",
                           multiplier, in_c, uint64_t{out_c} * taps * in_c, kMaxExpandedWeights));
        }
        op.type = OpType::Conv2d;
        weights.assign(size_t(out_c) * taps * in_c, 0);
        for (uint32_t o = 0; o < out_c; ++o) {
          for (uint32_t t = 0; t < taps; ++t) {
            weights[(size_t(o) * taps + t) * in_c + o / multiplier] = filter[size_t(t) * out_c + o];
          }
        }
        result_.notes.push_back(fmt::format(
            "operator {} (DEPTHWISE_CONV_2D, depth multiplier {}) runs as a convolution with "
            "{} of {} weights zero",
            i, multiplier, weights.size() - filter.size(), weights.size()));
      }
    }
    set_weights(i, op, std::move(weights), w, channel_dimension, out_c);
    check_window_output(i, op);
    set_activation(i, op);
    // udc's exporter writes a fully connected layer with per-channel scales as a
    // convolution over its whole input (the same sums, filters laid out as its rows).
    const auto meta = metadata_.find(i);
    const Shape in = info(op.inputs[0]).shape;
    if (meta != metadata_.end() && meta->second.type == "fully_connected" &&
        op.type == OpType::Conv2d && op.padding == Padding::Valid && op.kernel_h == in[0] &&
        op.kernel_w == in[1]) {
      op.type = OpType::FullyConnected;
      op.kernel_h = op.kernel_w = op.stride_h = op.stride_w = 1;
    }
    push(std::move(op));
  }

  void convert_fully_connected(size_t i, const TfliteOperator& file_op) {
    if (file_op.options.weights_format != 0) {
      fail(i, "shuffled weights format (expected the default)");
    }
    const TfliteTensor& w = constant(i, 1, TfliteType::Int8, 2, "weights");
    Operation op = start(i, OpType::FullyConnected);
    op.inputs = {model_tensor(file_op.inputs[0])};
    op.output = model_tensor(file_op.outputs[0]);
    const uint32_t outputs = uint32_t(w.shape[0]);
    if (uint64_t(w.shape[1]) != info(op.inputs[0]).elements()) {
      fail(i, fmt::format("weights take {} inputs but the input has {} elements (udc's fully "
                          "connected layer reads the whole input, batch 1)",
                          w.shape[1], info(op.inputs[0]).elements()));
    }
    if (info(op.output).shape != Shape{1, 1, outputs}) {
      fail(i, fmt::format("output is not {} values", outputs));
    }
    set_weights(i, op, std::vector<int8_t>(w.data.begin(), w.data.end()), w, 0, outputs);
    set_activation(i, op);
    push(std::move(op));
  }

  void convert_add(size_t i, const TfliteOperator& file_op) {
    if (file_op.inputs.size() != 2) fail(i, "expected two inputs");
    for (int32_t t : file_op.inputs) {
      if (t < 0 || !file_.tensors[size_t(t)].data.empty()) {
        fail(i, "an input is constant (udc adds two computed tensors)");
      }
    }
    Operation op = start(i, OpType::Add);
    op.inputs = {model_tensor(file_op.inputs[0]), model_tensor(file_op.inputs[1])};
    op.output = model_tensor(file_op.outputs[0]);
    const Shape out = info(op.output).shape;
    if (info(op.inputs[0]).shape != out || info(op.inputs[1]).shape != out) {
      fail(i, "input shapes differ from the output's (udc adds without broadcasting)");
    }
    try {
      op.add = int8::add_params(info(op.inputs[0]).scale, info(op.inputs[1]).scale,
                                info(op.output).scale);
    } catch (const std::invalid_argument& e) {
      fail(i, e.what());
    }
    set_activation(i, op);
    push(std::move(op));
  }

  void convert_pool(size_t i, const TfliteOperator& file_op) {
    const TfliteOptions& o = file_op.options;
    const bool average = file_op.builtin_code == kAveragePool;
    Operation op = start(i, average ? OpType::AvgPool : OpType::MaxPool);
    if (o.filter_h < 1 || o.filter_w < 1) fail(i, "filter size below 1");
    set_window(i, op, uint32_t(o.filter_h), uint32_t(o.filter_w));
    op.inputs = {model_tensor(windowed_input(i, op, o.same_padding))};
    op.output = model_tensor(file_op.outputs[0]);
    require_same_quantization(i, op.inputs[0], op.output);
    check_window_output(i, op);
    const Shape in = info(op.inputs[0]).shape;
    const auto meta = metadata_.find(i);
    if (average && meta != metadata_.end() && meta->second.type == "global_avg_pool" &&
        !o.same_padding && op.kernel_h == in[0] && op.kernel_w == in[1]) {
      op.type = OpType::GlobalAvgPool;
    }
    set_activation(i, op);
    push(std::move(op));
  }

  void convert_data_movement(size_t i, const TfliteOperator& file_op) {
    const bool to_space = file_op.builtin_code == kDepthToSpace;
    Operation op = start(i, to_space ? OpType::DepthToSpace : OpType::Reshape);
    op.inputs = {model_tensor(file_op.inputs[0])};
    op.output = model_tensor(file_op.outputs[0]);
    require_same_quantization(i, op.inputs[0], op.output);
    if (to_space) {
      if (file_op.options.block_size < 2) fail(i, "block size below 2");
      op.block_size = uint32_t(file_op.options.block_size);
    }
    push(std::move(op));
  }

  /// MEAN over height and width (axes 1 and 2 of a 4-d input, kept or not) as TFLite's
  /// integer kernel computes it.
  void convert_mean(size_t i, const TfliteOperator& file_op) {
    if (file_op.inputs.size() != 2) fail(i, "expected an input and an axes tensor");
    const TfliteTensor& axes = constant(i, 1, TfliteType::Int32, 1, "axes");
    std::vector<int32_t> axis(size_t(axes.shape[0]));
    std::memcpy(axis.data(), axes.data.data(), axis.size() * sizeof(int32_t));
    std::sort(axis.begin(), axis.end());
    if (file_.tensors[size_t(file_op.inputs[0])].shape.size() != 4 ||
        axis != std::vector<int32_t>{1, 2}) {
      fail(i, "udc takes MEAN over height and width (axes 1 and 2 of a 4-d input) only");
    }
    Operation op = start(i, OpType::Mean);
    op.inputs = {model_tensor(file_op.inputs[0])};
    op.output = model_tensor(file_op.outputs[0]);
    const TensorInfo& in = info(op.inputs[0]);
    if (info(op.output).shape != Shape{1, 1, in.shape[2]}) fail(i, "output is not 1x1xC");
    op.kernel_h = in.shape[0];
    op.kernel_w = in.shape[1];
    try {
      const auto [m, s] =
          int8::quantize_multiplier(double(in.scale) / double(info(op.output).scale));
      op.bias = {0};
      op.multiplier = {m};
      op.shift = {s};
    } catch (const std::invalid_argument& e) {
      fail(i, e.what());
    }
    push(std::move(op));
  }

  void record_pad(size_t i, const TfliteOperator& file_op) {
    if (file_op.inputs.size() != 2) fail(i, "expected an input and a paddings tensor");
    const TfliteTensor& paddings = constant(i, 1, TfliteType::Int32, 2, "paddings");
    if (file_.tensors[size_t(file_op.inputs[0])].shape.size() != 4 || paddings.shape[0] != 4 ||
        paddings.shape[1] != 2) {
      fail(i, "expected a 4-d input and paddings of shape [4, 2]");
    }
    std::vector<int32_t> p(8);
    std::memcpy(p.data(), paddings.data.data(), 8 * sizeof(int32_t));
    if (p[0] != 0 || p[1] != 0 || p[6] != 0 || p[7] != 0) fail(i, "pads the batch or the channels");
    for (int32_t v : p) {
      if (v < 0 || v > 64) fail(i, "padding outside 0..64");
    }
    const int32_t in_t = model_tensor(file_op.inputs[0]);
    const TfliteTensor& out = file_.tensors[size_t(file_op.outputs[0])];
    if (out.scales.size() != 1 || out.scales[0] != info(in_t).scale ||
        out.zero_points[0] != info(in_t).zero_point) {
      fail(i, "output quantisation differs from the input's");
    }
    pads_[file_op.outputs[0]] = PendingPad{
        i, file_op.inputs[0], uint32_t(p[2]), uint32_t(p[3]), uint32_t(p[4]), uint32_t(p[5])};
  }

  const TfliteModel& file_;
  std::string origin_;
  ImportedModel result_;
  std::vector<Source> sources_;        ///< per operator: Npu, CpuBefore or CpuAfter
  std::vector<Source> tensor_source_;  ///< per file tensor, as placement reaches it
  std::vector<size_t> writer_;         ///< per file tensor: the operator writing it
  std::vector<int32_t> model_tensor_;  ///< per file tensor: the model's tensor, -1 none yet
  std::vector<int32_t> npu_inputs_, npu_outputs_;  ///< file tensors bounding the NPU region
  std::map<size_t, MetadataEntry> metadata_;       ///< per file operator
  std::map<int32_t, PendingPad> pads_;             ///< per padded file tensor
  std::vector<int32_t> folded_;                    ///< padded tensors taken by a window
};

}  // namespace

ImportedModel import_tflite(const TfliteModel& file, const std::string& origin) {
  return Importer(file, origin).run();
}

std::string format_cpu_operators(const std::vector<CpuOperator>& operators) {
  if (operators.empty()) return {};
  std::string text =
      fmt::format("CPU operators ({}, not simulated: the Cortex-M beside the NPU runs them):\n",
                  operators.size());
  for (const CpuOperator& op : operators) {
    text += fmt::format("  operator {:<3} {:<12} '{}'  {} the NPU; {}\n", op.index, op.name,
                        op.output, op.before_npu ? "before" : "after", op.cost_class);
  }
  return text;
}

ImportedModel load_model_file(const std::string& path) {
  const std::vector<uint8_t> bytes = common::read_file(path);
  if (bytes.size() >= 8 && std::memcmp(bytes.data() + 4, "TFL3", 4) == 0) {
    return import_tflite(parse_tflite(bytes, path), path);
  }
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), kModelMagic, 4) == 0) {
    ImportedModel loaded;
    loaded.model = deserialize_model(bytes.data(), bytes.size(), path);
    return loaded;
  }
  throw std::runtime_error(path +
                           ": neither a .udcm model (magic 'UDCM' at offset 0) nor a TFLite file "
                           "(identifier 'TFL3' at offset 4)");
}

}  // namespace udc::firmware_model
