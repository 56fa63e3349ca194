// The integer model: int8 NHWC activations, int8 weights of 2..8 significant bits (pruned
// weights are exact zeros), int32 biases and per-channel fixed-point requantisation, in
// the TFLite int8 scheme (DESIGN.md section 4). Stored as .udcm (FORMAT.md), built with
// ModelBuilder, executed by the reference interpreter and lowered by the compiler.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "udc/int8/fixed_point.hpp"
#include "udc/npu_sim/command_stream.hpp"

namespace udc::firmware_model {

/// Height, width, channels [elements].
using Shape = std::array<uint32_t, 3>;

/// An int8 activation tensor. real = scale * (q - zero_point).
struct TensorInfo {
  std::string name;
  Shape shape{1, 1, 1};
  float scale = 1.0f;      ///< quantisation step [real units per integer step]
  int32_t zero_point = 0;  ///< -128..127

  uint64_t elements() const { return uint64_t{shape[0]} * shape[1] * shape[2]; }
  uint64_t bytes() const { return elements(); }
};

/// Operation types. The numeric values are the .udcm encoding: never renumber.
enum class OpType : uint8_t {
  Conv2d = 1,           ///< weights [oc][kh][kw][ic]
  DepthwiseConv2d = 2,  ///< multiplier 1; weights [c][kh][kw]
  FullyConnected = 3,   ///< input flattened in HWC order; output 1x1xN; weights [n_out][n_in]
  Add = 4,              ///< elementwise, TFLite int8 ADD requantisation
  MaxPool = 5,
  AvgPool = 6,        ///< padding not counted; round half away from zero
  GlobalAvgPool = 7,  ///< average over the whole plane; output 1x1xC
  Reshape = 8,        ///< same bytes, new shape
  DepthToSpace = 9,   ///< block b: out[y*b+i][x*b+j][c] = in[y][x][(i*b+j)*C+c]
  /// TFLite's int8 MEAN over height and width, output 1x1xC: the plane's sum of
  /// (in - zp_in) times multiplier[0], shift[0] (the input-to-output scale ratio), divided
  /// by H*W rounding half away from zero, plus zp_out (bias[0] is 0).
  Mean = 10,
};

/// What an operation type is, said once: its name, and the properties that validation,
/// the interpreter, the compiler and the summaries dispatch on. A new type is one row
/// here, its shape rule in validate(), its interpreter kernel and its lowering.
struct OpTraits {
  OpType type;
  const char* name;
  bool weights;             ///< carries int8 weights and per-channel requantisation
  bool windowed;            ///< a kernel window with stride and padding
  uint32_t inputs;          ///< input tensors
  bool keeps_quantization;  ///< output has the input's scale and zero point
  /// The NPU command it lowers to; none for data movement that the compiler lays out as
  /// an alias or an address pattern (Reshape, DepthToSpace).
  bool lowers_to_command;
  npu_sim::CommandKind command;
};
// clang-format off
inline constexpr std::array<OpTraits, 10> kOpTraits{{
    // type                  name                weights window inputs keeps_q command? command
    {OpType::Conv2d,          "conv2d",           true,  true,  1, false, true,  npu_sim::CommandKind::Conv2d},
    {OpType::DepthwiseConv2d, "depthwise_conv2d", true,  true,  1, false, true,  npu_sim::CommandKind::DepthwiseConv2d},
    {OpType::FullyConnected,  "fully_connected",  true,  false, 1, false, true,  npu_sim::CommandKind::FullyConnected},
    {OpType::Add,             "add",              false, false, 2, false, true,  npu_sim::CommandKind::Add},
    {OpType::MaxPool,         "max_pool",         false, true,  1, true,  true,  npu_sim::CommandKind::MaxPool},
    {OpType::AvgPool,         "avg_pool",         false, true,  1, true,  true,  npu_sim::CommandKind::AvgPool},
    {OpType::GlobalAvgPool,   "global_avg_pool",  false, false, 1, true,  true,  npu_sim::CommandKind::AvgPool},
    {OpType::Reshape,         "reshape",          false, false, 1, true,  false, npu_sim::CommandKind::Dma},
    {OpType::DepthToSpace,    "depth_to_space",   false, false, 1, true,  false, npu_sim::CommandKind::Dma},
    {OpType::Mean,            "mean",             false, false, 1, false, true,  npu_sim::CommandKind::Mean},
}};
// clang-format on
/// The traits of a valid type (1..kOpTraits.size(); see is_op_type()).
constexpr const OpTraits& traits(OpType type) {
  return kOpTraits[static_cast<size_t>(type) - 1];
}
/// Whether a .udcm type byte names an operation type.
constexpr bool is_op_type(uint8_t value) {
  return value >= 1 && value <= kOpTraits.size();
}
constexpr const char* op_type_name(OpType type) {
  return traits(type).name;
}
constexpr bool has_weights(OpType type) {
  return traits(type).weights;
}
/// Types whose window is the whole input plane (output 1x1xC).
constexpr bool pools_whole_plane(OpType type) {
  return type == OpType::GlobalAvgPool || type == OpType::Mean;
}

enum class Padding : uint8_t { Valid = 0, Same = 1 };  ///< TFLite semantics
/// Fused activation, for display; the clamp itself is activation_min/max.
enum class Activation : uint8_t { None = 0, Relu = 1, Relu6 = 2 };
const char* activation_name(Activation activation);

/// One operation. Fields not used by a type keep their defaults.
struct Operation {
  OpType type = OpType::Conv2d;
  std::string name;
  std::vector<int32_t> inputs;  ///< tensor indices (Add: two)
  int32_t output = -1;          ///< tensor index

  uint32_t kernel_h = 1, kernel_w = 1;  ///< window [elements]
  uint32_t stride_h = 1, stride_w = 1;
  Padding padding = Padding::Valid;
  uint32_t block_size = 1;  ///< DepthToSpace
  Activation activation = Activation::None;
  int32_t activation_min = -128, activation_max = 127;  ///< fused clamp, output integers

  /// Weight-carrying ops: int8 weights in the layout of OpType, each within
  /// +-(2^(weight_bits-1) - 1); exact zeros are pruned weights.
  std::vector<int8_t> weights;
  uint32_t weight_bits = 8;  ///< 2..8
  /// Per output channel: out = clamp(zp_out + mbqm(acc + bias, multiplier, shift)).
  std::vector<int32_t> bias, multiplier, shift;  ///< shift > 0: left; -31..30
  int8::AddParams add;

  uint64_t weight_count() const { return weights.size(); }
  uint64_t nonzero_weights() const;
};

/// A network: tensors, operations in execution order, graph inputs and outputs.
struct Model {
  std::string name;
  std::vector<TensorInfo> tensors;
  std::vector<Operation> operations;
  std::vector<int32_t> inputs;   ///< tensor indices fed by the caller
  std::vector<int32_t> outputs;  ///< tensor indices read back
};

/// Output shape and padding of a windowed operation along one axis.
struct WindowAxis {
  uint32_t out = 0;
  uint32_t pad_before = 0, pad_after = 0;
};
WindowAxis window_axis(uint32_t in, uint32_t kernel, uint32_t stride, Padding padding);

/// Checks everything the interpreter and the compiler rely on: indices, execution order,
/// shapes, weight counts and ranges, requantisation ranges. Returns the first problem as
/// "operation N (name): ..." or empty.
std::string validate(const Model& model);

/// Multiply-accumulates of one operation (pooling and Add: one per input element read).
uint64_t op_macs(const Model& model, const Operation& op);

/// The clamp of a fused activation for an output tensor's quantisation.
std::pair<int32_t, int32_t> activation_range(Activation activation, float scale,
                                             int32_t zero_point);

/// Builds models with consistent shapes; used by tests, the exporter and generators.
/// Every add_* returns the output tensor's index. Weights and requantisation are passed
/// in; shapes, padding and clamps are derived.
class ModelBuilder {
 public:
  explicit ModelBuilder(std::string name) { model_.name = std::move(name); }

  int32_t add_input(const std::string& name, Shape shape, float scale, int32_t zero_point);
  /// Per-channel requantisation for a weight-carrying op.
  struct Requant {
    std::vector<int32_t> bias, multiplier, shift;
  };
  struct Quant {
    float scale = 1.0f;
    int32_t zero_point = 0;
  };

  int32_t conv2d(const std::string& name, int32_t input, uint32_t out_channels, uint32_t kernel,
                 uint32_t stride, Padding padding, std::vector<int8_t> weights,
                 uint32_t weight_bits, Requant requant, Quant out, Activation activation);
  int32_t depthwise_conv2d(const std::string& name, int32_t input, uint32_t kernel, uint32_t stride,
                           Padding padding, std::vector<int8_t> weights, uint32_t weight_bits,
                           Requant requant, Quant out, Activation activation);
  int32_t fully_connected(const std::string& name, int32_t input, uint32_t outputs,
                          std::vector<int8_t> weights, uint32_t weight_bits, Requant requant,
                          Quant out, Activation activation);
  int32_t add(const std::string& name, int32_t a, int32_t b, const int8::AddParams& params,
              Quant out, Activation activation);
  int32_t max_pool(const std::string& name, int32_t input, uint32_t kernel, uint32_t stride,
                   Padding padding);
  int32_t avg_pool(const std::string& name, int32_t input, uint32_t kernel, uint32_t stride,
                   Padding padding);
  int32_t global_avg_pool(const std::string& name, int32_t input);
  /// TFLite's MEAN over height and width into `out`'s quantisation.
  int32_t mean(const std::string& name, int32_t input, Quant out);
  int32_t reshape(const std::string& name, int32_t input, Shape shape);
  int32_t depth_to_space(const std::string& name, int32_t input, uint32_t block_size);
  void mark_output(int32_t tensor) { model_.outputs.push_back(tensor); }

  const Model& model() const { return model_; }
  const TensorInfo& tensor(int32_t index) const { return model_.tensors.at(size_t(index)); }
  /// Validates and returns the model; throws std::invalid_argument naming the problem.
  Model finish() const;

 private:
  int32_t add_tensor(const std::string& name, Shape shape, Quant quant);
  int32_t windowed(OpType type, const std::string& name, int32_t input, uint32_t out_channels,
                   uint32_t kernel, uint32_t stride, Padding padding, Quant out);
  /// An operation over the whole input plane (global average pool, mean) into 1x1xC.
  int32_t whole_plane(OpType type, const std::string& name, int32_t input, Quant out);
  Model model_;
};

/// Per-model figures for `udc model` and the search: layers, parameters, MACs, bits,
/// sparsity and the exact compressed size of every weight tensor (one Ethos-U stream
/// per layer, the codec's exact size).
struct LayerSummary {
  std::string name;
  OpType type;
  Shape output;
  uint64_t macs = 0;
  uint64_t weights = 0, nonzero = 0;
  uint32_t weight_bits = 0;
  uint64_t compressed_bytes = 0;  ///< weight stream only; scale records excluded
};
struct ModelSummary {
  std::vector<LayerSummary> layers;
  uint64_t macs = 0, weights = 0, nonzero = 0, compressed_bytes = 0;
  uint64_t bias_and_scale_bytes = 0;  ///< 10 bytes per output channel
};
ModelSummary summarize(const Model& model);
std::string format_summary(const Model& model, const ModelSummary& summary);

}  // namespace udc::firmware_model
