// Reading TensorFlow Lite files (.tflite): the flatbuffer is verified, then its first subgraph
// is copied into plain structs with every index checked against the file's own tables, so
// that what reads them next (the importer to the integer model) works on values that are
// known to be in range. The schema subset is firmware_model/schema/tflite.fbs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace udc::firmware_model {

/// TFLite's tensor element types that udc handles (values as in the format).
enum class TfliteType : int8_t {
  Float32 = 0,
  Int32 = 2,
  UInt8 = 3,
  Int64 = 4,
  Int16 = 7,
  Int8 = 9
};

struct TfliteTensor {
  std::string name;
  std::vector<int32_t> shape;  ///< as stored (NHWC for feature maps), every dimension >= 1
  int8_t type = 0;             ///< TensorType code in the file (TfliteType for known ones)
  /// Quantisation: real = scale * (q - zero_point), one entry per channel along
  /// `quantized_dimension` or one for the whole tensor; empty: not quantised.
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
  int32_t quantized_dimension = 0;
  /// Constant data (weights, biases, shapes), little-endian; empty for activations.
  std::vector<uint8_t> data;
};

/// The options of an operator, whichever table the file holds, with the format's defaults
/// for what it leaves out.
struct TfliteOptions {
  bool same_padding = false;  ///< Padding SAME (else VALID)
  int32_t stride_w = 1, stride_h = 1;
  int32_t dilation_w = 1, dilation_h = 1;
  int32_t filter_w = 0, filter_h = 0;  ///< pooling window
  int32_t depth_multiplier = 0;        ///< depthwise (0: not given)
  /// Fused activation: 0 none, 1 ReLU, 2 ReLU-N1-to-1, 3 ReLU6, 4 tanh, 5 sign bit.
  int8_t activation = 0;
  int32_t block_size = 0;          ///< DEPTH_TO_SPACE
  std::vector<int32_t> new_shape;  ///< RESHAPE
  std::vector<int32_t> squeeze_dims;
  bool keep_dims = false;     ///< MEAN and other reductions
  int8_t weights_format = 0;  ///< FULLY_CONNECTED: 0 the plain [out, in] layout
  uint8_t options_type = 0;   ///< BuiltinOptions member in the file (0: none)
};

struct TfliteOperator {
  int32_t builtin_code = 0;  ///< BuiltinOperator (the larger of the two fields the format has)
  std::string custom_code;   ///< custom operators (builtin_code 32)
  int32_t version = 1;
  std::vector<int32_t> inputs;  ///< tensor indices; -1: an optional input left out
  std::vector<int32_t> outputs;
  TfliteOptions options;
};

struct TfliteModel {
  std::string description;
  uint32_t schema_version = 0;
  size_t subgraphs = 0;  ///< in the file; only the first is read
  std::vector<TfliteTensor> tensors;
  std::vector<TfliteOperator> operators;
  std::vector<int32_t> inputs, outputs;  ///< tensor indices of the first subgraph
  /// Named metadata buffers (Model.metadata), in file order.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> metadata;
};

/// The name TFLite gives builtin operator `code` ("CONV_2D"), or "BUILTIN_<code>" for codes
/// this reader has no name for.
std::string tflite_operator_name(int32_t code);

/// Parses `bytes` (a whole .tflite file). Throws std::runtime_error naming `origin` and what
/// is wrong: not a TFLite file (identifier), a flatbuffer that fails verification, no
/// subgraph, an index out of range (naming the tensor or operator), a constant whose data
/// size does not match its shape and type, data stored outside the flatbuffer.
TfliteModel parse_tflite(const std::vector<uint8_t>& bytes, const std::string& origin);
/// parse_tflite() of the file at `path`.
TfliteModel read_tflite(const std::string& path);

}  // namespace udc::firmware_model
