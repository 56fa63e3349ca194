#include "udc/firmware_model/tflite_export.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "udc/common/file_io.hpp"
#include "udc/firmware_model/tflite_generated.h"

namespace udc::firmware_model {
namespace fb = udc::tflite;

std::optional<float> weight_scale_for(int32_t multiplier, int32_t shift, float input_scale,
                                      float output_scale) {
  const double ratio = double(output_scale) / double(input_scale);
  // multiplier 0: any scale below TFLite's smallest step (2^-32 of the ratio) gives it.
  const double real =
      multiplier == 0 ? std::ldexp(1.0, -40) : std::ldexp(double(multiplier), shift - 31);
  const float start = float(real * ratio);
  if (!(start > 0.0f) || !std::isfinite(start)) return std::nullopt;
  // The float nearest the exact scale, or a neighbour: the product and quotient in double
  // move the real multiplier by less than a float step either way.
  constexpr int kNeighbours = 4;
  float below = start, above = start;
  for (int step = 0; step <= kNeighbours; ++step) {
    for (const float candidate : {below, above}) {
      if (int8::channel_multiplier(input_scale, candidate, output_scale) ==
          std::pair<int32_t, int32_t>{multiplier, shift}) {
        return candidate;
      }
    }
    below = std::nextafter(below, 0.0f);
    above = std::nextafter(above, INFINITY);
  }
  return std::nullopt;
}

namespace {

/// TFLite operator versions for int8 kernels with per-channel weights (what converters
/// write for these operators; Vela and TFLite Micro accept them).
struct BuiltinChoice {
  fb::BuiltinOperator code;
  int32_t version;
};
BuiltinChoice builtin_for(OpType type) {
  switch (type) {
    case OpType::Conv2d:
      return {fb::BuiltinOperator::CONV_2D, 3};
    case OpType::DepthwiseConv2d:
      return {fb::BuiltinOperator::DEPTHWISE_CONV_2D, 3};
    case OpType::FullyConnected:
      return {fb::BuiltinOperator::FULLY_CONNECTED, 4};
    case OpType::Add:
      return {fb::BuiltinOperator::ADD, 2};
    case OpType::MaxPool:
      return {fb::BuiltinOperator::MAX_POOL_2D, 2};
    case OpType::AvgPool:
    case OpType::GlobalAvgPool:
      return {fb::BuiltinOperator::AVERAGE_POOL_2D, 2};
    case OpType::Reshape:
      return {fb::BuiltinOperator::RESHAPE, 1};
    case OpType::DepthToSpace:
      return {fb::BuiltinOperator::DEPTH_TO_SPACE, 2};
    case OpType::Mean:
      return {fb::BuiltinOperator::MEAN, 2};
  }
  throw std::invalid_argument("unknown operation type");
}

/// How a fully connected layer is written. Vela takes per-channel weight scales only on
/// convolutions, so a layer whose channels share one multiplier is a FULLY_CONNECTED with
/// one scale (what converters write); otherwise it is a CONV_2D whose window is its whole
/// input (the same sums: its filters [n][h][w][c] are the layer's rows), within Vela's
/// window limits (height 64, area 4096); beyond them, a per-channel FULLY_CONNECTED that
/// Vela leaves to the CPU.
enum class FcForm { PerTensor, Convolution, PerChannel };
FcForm fc_form(const Model& model, const Operation& op) {
  bool uniform = true;
  for (size_t c = 1; c < op.multiplier.size(); ++c) {
    uniform &= op.multiplier[c] == op.multiplier[0] && op.shift[c] == op.shift[0];
  }
  if (uniform) return FcForm::PerTensor;
  const Shape& in = model.tensors[size_t(op.inputs[0])].shape;
  return in[0] <= 64 && in[1] <= 64 && in[0] * in[1] <= 4096 ? FcForm::Convolution
                                                             : FcForm::PerChannel;
}

fb::ActivationFunctionType fused_activation(Activation activation) {
  switch (activation) {
    case Activation::Relu:
      return fb::ActivationFunctionType::RELU;
    case Activation::Relu6:
      return fb::ActivationFunctionType::RELU6;
    case Activation::None:
      break;
  }
  return fb::ActivationFunctionType::NONE;
}

fb::Padding padding_of(const Operation& op) {
  return op.padding == Padding::Same ? fb::Padding::SAME : fb::Padding::VALID;
}

/// Builds the flatbuffer: tensors and buffers as they are added, operators in order.
class Writer {
 public:
  Writer(const Model& model, std::vector<std::string>* notes) : model_(model), notes_(notes) {
    buffers_.push_back(fb::CreateBuffer(fbb_));  // buffer 0: the format's empty sentinel
  }

  std::vector<uint8_t> write() {
    for (size_t t = 0; t < model_.tensors.size(); ++t) add_activation(t);
    for (size_t i = 0; i < model_.operations.size(); ++i) add_operation(i);
    const std::vector<int32_t> inputs(model_.inputs), outputs(model_.outputs);
    const auto graph = fb::CreateSubGraphDirect(fbb_, &tensors_, &inputs, &outputs, &operators_,
                                                model_.name.c_str());
    const std::vector<flatbuffers::Offset<fb::SubGraph>> graphs{graph};
    const std::string json = metadata_json();
    const uint32_t metadata_buffer = add_buffer(json.data(), json.size());
    const std::vector<flatbuffers::Offset<fb::Metadata>> metadata{
        fb::CreateMetadataDirect(fbb_, kTfliteMetadataName, metadata_buffer)};
    const std::string description = "udc export of " + model_.name;
    const auto root = fb::CreateModelDirect(fbb_, 3, &codes_, &graphs, description.c_str(),
                                            &buffers_, nullptr, &metadata);
    fb::FinishModelBuffer(fbb_, root);
    return std::vector<uint8_t>(fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize());
  }

 private:
  std::string where(size_t index) const {
    return fmt::format("operation {} ({})", index, model_.operations[index].name);
  }

  uint32_t add_buffer(const void* data, size_t bytes) {
    const auto* begin = static_cast<const uint8_t*>(data);
    const std::vector<uint8_t> copy(begin, begin + bytes);
    buffers_.push_back(fb::CreateBufferDirect(fbb_, &copy));
    return uint32_t(buffers_.size() - 1);
  }

  int32_t add_tensor(const std::string& name, const std::vector<int32_t>& shape,
                     fb::TensorType type, uint32_t buffer, const std::vector<float>* scales,
                     const std::vector<int64_t>* zero_points, int32_t quantized_dimension) {
    flatbuffers::Offset<fb::QuantizationParameters> quant = 0;
    if (scales) {
      quant = fb::CreateQuantizationParametersDirect(fbb_, nullptr, nullptr, scales, zero_points,
                                                     fb::QuantizationDetails::NONE, 0,
                                                     quantized_dimension);
    }
    tensors_.push_back(fb::CreateTensorDirect(fbb_, &shape, type, buffer, name.c_str(), quant));
    return int32_t(tensors_.size() - 1);
  }

  void note(const std::string& text) {
    if (notes_) notes_->push_back(text);
  }

  /// Activation tensors keep their .udcm index: [1, H, W, C], except the output of a
  /// FULLY_CONNECTED, which TFLite shapes [1, N].
  void add_activation(size_t t) {
    const TensorInfo& info = model_.tensors[t];
    bool flat = false;
    for (const Operation& op : model_.operations) {
      if (op.output == int32_t(t)) {
        flat = op.type == OpType::FullyConnected && fc_form(model_, op) != FcForm::Convolution;
      }
    }
    const std::vector<int32_t> shape =
        flat ? std::vector<int32_t>{1, int32_t(info.shape[2])}
             : std::vector<int32_t>{1, int32_t(info.shape[0]), int32_t(info.shape[1]),
                                    int32_t(info.shape[2])};
    const std::vector<float> scales{info.scale};
    const std::vector<int64_t> zero_points{info.zero_point};
    add_tensor(info.name, shape, fb::TensorType::INT8, 0, &scales, &zero_points, 0);
  }

  uint32_t opcode_index(const BuiltinChoice& choice) {
    const auto found = opcode_of_.find(choice.code);
    if (found != opcode_of_.end()) return found->second;
    codes_.push_back(fb::CreateOperatorCode(fbb_, int8_t(std::min(int32_t(choice.code), 127)), 0,
                                            choice.version, choice.code));
    opcode_of_[choice.code] = uint32_t(codes_.size() - 1);
    return opcode_of_[choice.code];
  }

  /// The clamp must be what TFLite derives from the fused activation and the output's
  /// quantisation: the file cannot state a clamp of its own.
  void check_clamp(size_t index) const {
    const Operation& op = model_.operations[index];
    const TensorInfo& out = model_.tensors[size_t(op.output)];
    const auto [lo, hi] = activation_range(op.activation, out.scale, out.zero_point);
    if (lo != op.activation_min || hi != op.activation_max) {
      throw std::invalid_argument(fmt::format(
          "{}: clamp [{}, {}] is not the {} clamp [{}, {}] of its output quantisation; TFLite "
          "cannot state it",
          where(index), op.activation_min, op.activation_max, activation_name(op.activation), lo,
          hi));
    }
  }

  /// Weights, the scales found from the multipliers (per channel, or one for all when
  /// `per_tensor`), and the int32 bias; returns the weight and bias tensor indices.
  /// `as_convolution`: a fully connected layer's rows as filters over its whole input.
  std::pair<int32_t, int32_t> add_weights(size_t index, bool per_tensor, bool as_convolution) {
    const Operation& op = model_.operations[index];
    const TensorInfo& in = model_.tensors[size_t(op.inputs[0])];
    const TensorInfo& out = model_.tensors[size_t(op.output)];
    const uint32_t channels = out.shape[2];
    std::vector<float> weight_scales, bias_scales;
    for (uint32_t c = 0; c < channels; ++c) {
      const std::optional<float> scale =
          weight_scale_for(op.multiplier[c], op.shift[c], in.scale, out.scale);
      if (!scale) {
        throw std::invalid_argument(fmt::format(
            "{}: channel {}: multiplier {} shift {} has no float32 weight scale between input "
            "scale {} and output scale {}, so TFLite cannot express it",
            where(index), c, op.multiplier[c], op.shift[c], in.scale, out.scale));
      }
      weight_scales.push_back(*scale);
      bias_scales.push_back(in.scale * *scale);
      if (per_tensor) break;
    }
    const std::vector<int64_t> zeros(weight_scales.size(), 0);
    std::vector<int32_t> shape;
    std::vector<int8_t> weights = op.weights;
    int32_t quantized_dimension = 0;
    switch (op.type) {
      case OpType::Conv2d:
        shape = {int32_t(channels), int32_t(op.kernel_h), int32_t(op.kernel_w),
                 int32_t(in.shape[2])};
        break;
      case OpType::DepthwiseConv2d: {
        // [c][kh][kw] here, [1][kh][kw][c] in TFLite.
        const uint32_t taps = op.kernel_h * op.kernel_w;
        for (uint32_t c = 0; c < channels; ++c) {
          for (uint32_t t = 0; t < taps; ++t)
            weights[size_t(t) * channels + c] = op.weights[c * taps + t];
        }
        shape = {1, int32_t(op.kernel_h), int32_t(op.kernel_w), int32_t(channels)};
        quantized_dimension = 3;
        break;
      }
      default:  // FullyConnected
        shape = as_convolution ? std::vector<int32_t>{int32_t(channels), int32_t(in.shape[0]),
                                                      int32_t(in.shape[1]), int32_t(in.shape[2])}
                               : std::vector<int32_t>{int32_t(channels), int32_t(in.elements())};
        break;
    }
    const int32_t w = add_tensor(op.name + "/weights", shape, fb::TensorType::INT8,
                                 add_buffer(weights.data(), weights.size()), &weight_scales, &zeros,
                                 quantized_dimension);
    const int32_t b = add_tensor(op.name + "/bias", {int32_t(channels)}, fb::TensorType::INT32,
                                 add_buffer(op.bias.data(), op.bias.size() * sizeof(int32_t)),
                                 &bias_scales, &zeros, 0);
    return {w, b};
  }

  /// One operator being written: its code, its inputs (the operation's, then constants
  /// added for it) and its options table.
  struct Operator {
    BuiltinChoice builtin;
    std::vector<int32_t> inputs;
    fb::BuiltinOptions options_type = fb::BuiltinOptions::NONE;
    flatbuffers::Offset<void> options = 0;
  };

  void add_operation(size_t index) {
    const Operation& op = model_.operations[index];
    check_clamp(index);
    const fb::ActivationFunctionType activation = fused_activation(op.activation);
    Operator o{builtin_for(op.type), std::vector<int32_t>(op.inputs.begin(), op.inputs.end())};
    switch (op.type) {
      case OpType::Conv2d:
      case OpType::DepthwiseConv2d:
      case OpType::FullyConnected:
        weighted_layer(index, activation, o);
        break;
      case OpType::Add:
        check_add(index);
        o.options_type = fb::BuiltinOptions::AddOptions;
        o.options = fb::CreateAddOptions(fbb_, activation).Union();
        break;
      case OpType::MaxPool:
      case OpType::AvgPool:
      case OpType::GlobalAvgPool:
        o.options_type = fb::BuiltinOptions::Pool2DOptions;
        o.options =
            fb::CreatePool2DOptions(
                fbb_, op.type == OpType::GlobalAvgPool ? fb::Padding::VALID : padding_of(op),
                int32_t(op.stride_w), int32_t(op.stride_h), int32_t(op.kernel_w),
                int32_t(op.kernel_h), activation)
                .Union();
        break;
      case OpType::Reshape: {
        const Shape& s = model_.tensors[size_t(op.output)].shape;
        const std::vector<int32_t> shape{1, int32_t(s[0]), int32_t(s[1]), int32_t(s[2])};
        o.inputs.push_back(int32_constant(op.name + "/shape", shape));
        o.options_type = fb::BuiltinOptions::ReshapeOptions;
        o.options = fb::CreateReshapeOptionsDirect(fbb_, &shape).Union();
        break;
      }
      case OpType::Mean:
        check_mean(index);
        // Axes 1 and 2 with the dimensions kept: TFLite's integer MEAN kernel.
        o.inputs.push_back(int32_constant(op.name + "/axes", {1, 2}));
        o.options_type = fb::BuiltinOptions::ReducerOptions;
        o.options = fb::CreateReducerOptions(fbb_, true).Union();
        break;
      case OpType::DepthToSpace:
        note(where(index) +
             ": DEPTH_TO_SPACE is not among Vela's NPU operators; Vela runs it "
             "on the CPU");
        o.options_type = fb::BuiltinOptions::DepthToSpaceOptions;
        o.options = fb::CreateDepthToSpaceOptions(fbb_, int32_t(op.block_size)).Union();
        break;
    }
    const std::vector<int32_t> outputs{op.output};
    operators_.push_back(fb::CreateOperatorDirect(fbb_, opcode_index(o.builtin), &o.inputs,
                                                  &outputs, o.options_type, o.options));
  }

  /// A constant int32 vector tensor (shapes, axes).
  int32_t int32_constant(const std::string& name, const std::vector<int32_t>& values) {
    return add_tensor(name, {int32_t(values.size())}, fb::TensorType::INT32,
                      add_buffer(values.data(), values.size() * sizeof(int32_t)), nullptr, nullptr,
                      0);
  }

  /// A convolution, depthwise convolution or fully connected layer: weights, bias and
  /// options, a fully connected layer in the form fc_form() chooses.
  void weighted_layer(size_t index, fb::ActivationFunctionType activation, Operator& o) {
    const Operation& op = model_.operations[index];
    const FcForm form =
        op.type == OpType::FullyConnected ? fc_form(model_, op) : FcForm::PerChannel;
    const bool as_convolution = form == FcForm::Convolution;
    const auto [w, b] = add_weights(index, form == FcForm::PerTensor, as_convolution);
    o.inputs.push_back(w);
    o.inputs.push_back(b);
    if (op.type == OpType::Conv2d || as_convolution) {
      o.builtin = builtin_for(OpType::Conv2d);
      o.options_type = fb::BuiltinOptions::Conv2DOptions;
      // As a convolution, a fully connected layer's window is its whole input.
      o.options = as_convolution
                      ? fb::CreateConv2DOptions(fbb_, fb::Padding::VALID, 1, 1, activation).Union()
                      : fb::CreateConv2DOptions(fbb_, padding_of(op), int32_t(op.stride_w),
                                                int32_t(op.stride_h), activation)
                            .Union();
      if (as_convolution) {
        note(where(index) +
             ": per-channel scales: written as a CONV_2D over its whole input (Vela takes "
             "per-channel scales only on convolutions)");
      }
    } else if (op.type == OpType::DepthwiseConv2d) {
      o.options_type = fb::BuiltinOptions::DepthwiseConv2DOptions;
      o.options = fb::CreateDepthwiseConv2DOptions(fbb_, padding_of(op), int32_t(op.stride_w),
                                                   int32_t(op.stride_h), 1, activation)
                      .Union();
    } else {
      o.options_type = fb::BuiltinOptions::FullyConnectedOptions;
      o.options = fb::CreateFullyConnectedOptions(fbb_, activation).Union();
      if (form == FcForm::PerChannel) {
        note(where(index) +
             ": per-channel FULLY_CONNECTED (its input exceeds a convolution window); Vela "
             "runs it on the CPU");
      }
    }
  }

  /// TFLite derives ADD's parameters from the scales; the operation must hold exactly those.
  void check_add(size_t index) const {
    const Operation& op = model_.operations[index];
    const int8::AddParams expected = int8::add_params(model_.tensors[size_t(op.inputs[0])].scale,
                                                      model_.tensors[size_t(op.inputs[1])].scale,
                                                      model_.tensors[size_t(op.output)].scale);
    if (std::memcmp(&expected, &op.add, sizeof(expected)) != 0) {
      throw std::invalid_argument(where(index) +
                                  ": add parameters differ from TFLite's for its input and "
                                  "output scales, so TFLite cannot express them");
    }
  }

  /// Likewise MEAN's scaling (input scale over output scale).
  void check_mean(size_t index) const {
    const Operation& op = model_.operations[index];
    const double ratio = double(model_.tensors[size_t(op.inputs[0])].scale) /
                         double(model_.tensors[size_t(op.output)].scale);
    if (int8::quantize_multiplier(ratio) !=
        std::pair<int32_t, int32_t>{op.multiplier[0], op.shift[0]}) {
      throw std::invalid_argument(where(index) +
                                  ": mean scaling differs from TFLite's for its input and "
                                  "output scales, so TFLite cannot express it");
    }
  }

  /// What TFLite cannot say, per operation in order: its name, its type where TFLite's
  /// operator stands for two of ours (a global average pool), its weights' bit width.
  std::string metadata_json() const {
    nlohmann::json ops = nlohmann::json::array();
    for (const Operation& op : model_.operations) {
      nlohmann::json entry{{"name", op.name}, {"type", op_type_name(op.type)}};
      if (has_weights(op.type)) entry["weight_bits"] = op.weight_bits;
      ops.push_back(std::move(entry));
    }
    const nlohmann::json root{
        {"format", "udc"}, {"version", 1}, {"model", model_.name}, {"operations", ops}};
    return root.dump();
  }

  const Model& model_;
  std::vector<std::string>* notes_;  ///< where notes go; null: dropped
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers_;
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors_;
  std::vector<flatbuffers::Offset<fb::Operator>> operators_;
  std::vector<flatbuffers::Offset<fb::OperatorCode>> codes_;
  std::map<fb::BuiltinOperator, uint32_t> opcode_of_;
};

}  // namespace

std::vector<uint8_t> export_tflite(const Model& model, std::vector<std::string>* notes) {
  const std::string problem = validate(model);
  if (!problem.empty()) throw std::invalid_argument("model " + model.name + ": " + problem);
  try {
    return Writer(model, notes).write();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("model " + model.name + ": " + e.what());
  }
}

void write_tflite(const Model& model, const std::string& path, std::vector<std::string>* notes) {
  const std::vector<uint8_t> bytes = export_tflite(model, notes);
  common::write_file_atomically(path, bytes.data(), bytes.size());
}

}  // namespace udc::firmware_model
