// The TFLite reader against files built here with flatbuffers' own builder from the schema
// subset: what the builder wrote is what the reader returns, and every corruption or bad
// index is refused naming what is wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "udc/firmware_model/tflite_file.hpp"
#include "udc/firmware_model/tflite_generated.h"

namespace udc::firmware_model {
namespace {

namespace fb = udc::tflite;

/// What to change in the one-convolution file the builder writes.
struct Variant {
  uint32_t weight_buffer = 2;           ///< the weights' buffer index
  size_t weight_bytes = 2 * 3 * 3 * 4;  ///< bytes in that buffer
  int32_t conv_input = 0;               ///< the convolution's first input
  uint32_t opcode_index = 0;
  bool code_in_deprecated_field = false;  ///< an old file: the code only in the byte field
  size_t weight_scales = 2;               ///< per-channel scales of the weights
};

/// A model: input [1,5,5,4] int8 -> CONV_2D (2 filters 3x3, per-channel, int32 bias,
/// stride 2, SAME, ReLU6) -> output [1,3,3,2], then RESHAPE to [1,18].
std::vector<uint8_t> conv_file(const Variant& v = {}) {
  flatbuffers::FlatBufferBuilder b;
  auto quant = [&](std::vector<float> scales, std::vector<int64_t> zero_points, int32_t axis) {
    return fb::CreateQuantizationParametersDirect(b, nullptr, nullptr, &scales, &zero_points,
                                                  fb::QuantizationDetails::NONE, 0, axis);
  };
  std::vector<int32_t> in_shape{1, 5, 5, 4}, w_shape{2, 3, 3, 4}, b_shape{2}, out_shape{1, 3, 3, 2},
      flat_shape{1, 18};
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors{
      fb::CreateTensorDirect(b, &in_shape, fb::TensorType::INT8, 0, "input",
                             quant({0.05f}, {-3}, 0)),
      fb::CreateTensorDirect(b, &w_shape, fb::TensorType::INT8, v.weight_buffer, "weights",
                             quant(std::vector<float>(v.weight_scales, 0.01f),
                                   std::vector<int64_t>(v.weight_scales, 0), 0)),
      fb::CreateTensorDirect(b, &b_shape, fb::TensorType::INT32, 3, "bias",
                             quant({0.0005f, 0.0005f}, {0, 0}, 0)),
      fb::CreateTensorDirect(b, &out_shape, fb::TensorType::INT8, 0, "conv",
                             quant({0.1f}, {-128}, 0)),
      fb::CreateTensorDirect(b, &flat_shape, fb::TensorType::INT8, 0, "output",
                             quant({0.1f}, {-128}, 0)),
  };
  const auto conv_options =
      fb::CreateConv2DOptions(b, fb::Padding::SAME, 2, 2, fb::ActivationFunctionType::RELU6);
  std::vector<int32_t> new_shape{1, 18};
  const auto reshape_options = fb::CreateReshapeOptionsDirect(b, &new_shape);
  std::vector<int32_t> conv_in{v.conv_input, 1, 2}, conv_out{3}, reshape_in{3, -1}, reshape_out{4};
  std::vector<flatbuffers::Offset<fb::Operator>> operators{
      fb::CreateOperatorDirect(b, v.opcode_index, &conv_in, &conv_out,
                               fb::BuiltinOptions::Conv2DOptions, conv_options.Union()),
      fb::CreateOperatorDirect(b, 1, &reshape_in, &reshape_out, fb::BuiltinOptions::ReshapeOptions,
                               reshape_options.Union()),
  };
  std::vector<int32_t> inputs{0}, outputs{4};
  std::vector<flatbuffers::Offset<fb::SubGraph>> subgraphs{
      fb::CreateSubGraphDirect(b, &tensors, &inputs, &outputs, &operators, "main")};
  std::vector<flatbuffers::Offset<fb::OperatorCode>> codes{
      fb::CreateOperatorCode(
          b, 3, 0, 1,
          v.code_in_deprecated_field ? fb::BuiltinOperator::ADD : fb::BuiltinOperator::CONV_2D),
      fb::CreateOperatorCode(b, 0, 0, 1, fb::BuiltinOperator::RESHAPE)};
  std::vector<uint8_t> weights(v.weight_bytes);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = uint8_t(i * 7 - 30);
  std::vector<uint8_t> bias(2 * 4, 0);
  bias[0] = 100;  // 100 and -1, little-endian int32
  std::memset(bias.data() + 4, 0xff, 4);
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers{
      fb::CreateBufferDirect(b), fb::CreateBufferDirect(b), fb::CreateBufferDirect(b, &weights),
      fb::CreateBufferDirect(b, &bias)};
  b.Finish(fb::CreateModelDirect(b, 3, &codes, &subgraphs, "built by the test", &buffers),
           fb::ModelIdentifier());
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

/// The default variant with `change` applied.
Variant changed(const std::function<void(Variant&)>& change) {
  Variant v;
  change(v);
  return v;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    parse_tflite(bytes, "m.tflite");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(TfliteFile, ReadsWhatTheBuilderWrote) {
  const TfliteModel m = parse_tflite(conv_file(), "m.tflite");
  EXPECT_EQ(m.description, "built by the test");
  EXPECT_EQ(m.schema_version, 3u);
  EXPECT_EQ(m.subgraphs, 1u);
  ASSERT_EQ(m.tensors.size(), 5u);
  EXPECT_EQ(m.inputs, std::vector<int32_t>{0});
  EXPECT_EQ(m.outputs, std::vector<int32_t>{4});
  const TfliteTensor& input = m.tensors[0];
  EXPECT_EQ(input.name, "input");
  EXPECT_EQ(input.shape, (std::vector<int32_t>{1, 5, 5, 4}));
  EXPECT_EQ(input.type, int8_t(TfliteType::Int8));
  EXPECT_EQ(input.scales, std::vector<float>{0.05f});
  EXPECT_EQ(input.zero_points, std::vector<int64_t>{-3});
  EXPECT_TRUE(input.data.empty());
  const TfliteTensor& weights = m.tensors[1];
  ASSERT_EQ(weights.data.size(), 72u);
  EXPECT_EQ(weights.data[5], uint8_t(5 * 7 - 30));
  EXPECT_EQ(weights.scales.size(), 2u);
  const TfliteTensor& bias = m.tensors[2];
  EXPECT_EQ(bias.type, int8_t(TfliteType::Int32));
  int32_t second = 0;
  std::memcpy(&second, bias.data.data() + 4, 4);
  EXPECT_EQ(second, -1);

  ASSERT_EQ(m.operators.size(), 2u);
  const TfliteOperator& conv = m.operators[0];
  EXPECT_EQ(tflite_operator_name(conv.builtin_code), "CONV_2D");
  EXPECT_EQ(conv.inputs, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(conv.outputs, std::vector<int32_t>{3});
  EXPECT_TRUE(conv.options.same_padding);
  EXPECT_EQ(conv.options.stride_w, 2);
  EXPECT_EQ(conv.options.stride_h, 2);
  EXPECT_EQ(conv.options.dilation_w, 1);  // the format's default, not written
  EXPECT_EQ(conv.options.activation, 3);  // RELU6
  const TfliteOperator& reshape = m.operators[1];
  EXPECT_EQ(tflite_operator_name(reshape.builtin_code), "RESHAPE");
  EXPECT_EQ(reshape.inputs, (std::vector<int32_t>{3, -1}));  // an optional input left out
  EXPECT_EQ(reshape.options.new_shape, (std::vector<int32_t>{1, 18}));
}

TEST(TfliteFile, OldFilesKeepTheCodeInTheByteField) {
  // The byte field says CONV_2D (3); the int32 field holds ADD (0), its default.
  const TfliteModel m = parse_tflite(
      conv_file(changed([](Variant& v) { v.code_in_deprecated_field = true; })), "old");
  EXPECT_EQ(tflite_operator_name(m.operators[0].builtin_code), "CONV_2D");
  EXPECT_EQ(tflite_operator_name(300), "BUILTIN_300");
}

TEST(TfliteFile, CorruptFilesAndBadIndicesAreRefusedNamingWhat) {
  std::vector<uint8_t> bytes = conv_file();
  // Not a TFLite file: the identifier.
  std::vector<uint8_t> renamed = bytes;
  renamed[4] = 'X';
  EXPECT_NE(error_of(renamed).find("m.tflite: not a TFLite file"), std::string::npos);
  EXPECT_NE(error_of({1, 2, 3}).find("not a TFLite file"), std::string::npos);
  // Truncated at every length: never accepted, never a crash.
  for (size_t n = 0; n < bytes.size(); n += 7) {
    EXPECT_FALSE(error_of({bytes.begin(), bytes.begin() + long(n)}).empty()) << n << " bytes";
  }
  // An offset that points past the end.
  std::vector<uint8_t> broken = bytes;
  broken[0] = 0xff;
  broken[1] = 0xff;
  EXPECT_NE(error_of(broken).find("corrupt TFLite flatbuffer"), std::string::npos);
  // Indices out of range name the tensor or operator.
  EXPECT_NE(error_of(conv_file(changed([](Variant& v) {
              v.weight_buffer = 9;
            }))).find("tensor 1 (weights): buffer 9 (the file has 4 buffers)"),
            std::string::npos);
  EXPECT_NE(error_of(conv_file(changed([](Variant& v) {
              v.conv_input = 7;
            }))).find("operator 0 inputs [0]: tensor index 7 (the subgraph has 5 tensors)"),
            std::string::npos);
  EXPECT_NE(error_of(conv_file(changed([](Variant& v) {
              v.opcode_index = 5;
            }))).find("operator 0: operator code 5"),
            std::string::npos);
  EXPECT_NE(error_of(conv_file(changed([](Variant& v) {
              v.weight_bytes = 71;
            }))).find("tensor 1 (weights): 71 bytes of data, its shape and type need 72"),
            std::string::npos);
  EXPECT_NE(error_of(conv_file(changed([](Variant& v) {
              v.weight_scales = 3;
            }))).find("3 per-channel scales"),
            std::string::npos);
}

}  // namespace
}  // namespace udc::firmware_model
