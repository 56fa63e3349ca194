// Builds small TFLite files for tests with flatbuffers' own builder and the schema subset:
// tensors and operators are added one by one, the file is finished with the graph's
// inputs and outputs.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "udc/firmware_model/tflite_generated.h"

namespace udc::firmware_model::testing {

namespace fb = udc::tflite;

class TfliteBuilder {
 public:
  TfliteBuilder() { buffers_.push_back(fb::CreateBuffer(fbb_)); }

  flatbuffers::FlatBufferBuilder& fbb() { return fbb_; }

  /// A tensor without data; type int8 unless given.
  int32_t activation(const std::string& name, std::vector<int32_t> shape, float scale,
                     int64_t zero_point, fb::TensorType type = fb::TensorType::INT8) {
    return tensor(name, std::move(shape), type, 0, {scale}, {zero_point}, 0);
  }
  /// A float tensor without quantisation.
  int32_t float_tensor(const std::string& name, std::vector<int32_t> shape) {
    std::vector<int32_t> s = std::move(shape);
    tensors_.push_back(fb::CreateTensorDirect(fbb_, &s, fb::TensorType::FLOAT32, 0, name.c_str()));
    return int32_t(tensors_.size() - 1);
  }
  /// Constant int8 weights with per-tensor (one scale) or per-channel scales along `axis`.
  int32_t weights(const std::string& name, std::vector<int32_t> shape,
                  const std::vector<int8_t>& values, std::vector<float> scales, int32_t axis,
                  int64_t zero_point = 0) {
    return tensor(name, std::move(shape), fb::TensorType::INT8,
                  buffer(values.data(), values.size()), scales,
                  std::vector<int64_t>(scales.size(), zero_point), axis);
  }
  /// A constant int32 tensor (biases, shapes, paddings), without quantisation.
  int32_t int32_constant(const std::string& name, std::vector<int32_t> shape,
                         const std::vector<int32_t>& values) {
    std::vector<int32_t> s = std::move(shape);
    const uint32_t b = buffer(values.data(), values.size() * 4);
    tensors_.push_back(fb::CreateTensorDirect(fbb_, &s, fb::TensorType::INT32, b, name.c_str()));
    return int32_t(tensors_.size() - 1);
  }

  /// An operator; options built on fbb() beforehand.
  void op(fb::BuiltinOperator code, std::vector<int32_t> inputs, std::vector<int32_t> outputs,
          fb::BuiltinOptions options_type = fb::BuiltinOptions::NONE,
          flatbuffers::Offset<void> options = 0) {
    uint32_t index = 0;
    while (index < codes_used_.size() && codes_used_[index] != code) ++index;
    if (index == codes_used_.size()) {
      codes_used_.push_back(code);
      codes_.push_back(
          fb::CreateOperatorCode(fbb_, int8_t(std::min(int32_t(code), 127)), 0, 1, code));
    }
    operators_.push_back(
        fb::CreateOperatorDirect(fbb_, index, &inputs, &outputs, options_type, options));
  }

  std::vector<uint8_t> finish(std::vector<int32_t> inputs, std::vector<int32_t> outputs) {
    const auto graph = fb::CreateSubGraphDirect(fbb_, &tensors_, &inputs, &outputs, &operators_);
    const std::vector<flatbuffers::Offset<fb::SubGraph>> graphs{graph};
    fbb_.Finish(fb::CreateModelDirect(fbb_, 3, &codes_, &graphs, "test", &buffers_),
                fb::ModelIdentifier());
    return {fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize()};
  }

 private:
  uint32_t buffer(const void* data, size_t bytes) {
    std::vector<uint8_t> copy(bytes);
    std::memcpy(copy.data(), data, bytes);
    buffers_.push_back(fb::CreateBufferDirect(fbb_, &copy));
    return uint32_t(buffers_.size() - 1);
  }
  int32_t tensor(const std::string& name, std::vector<int32_t> shape, fb::TensorType type,
                 uint32_t buffer_index, std::vector<float> scales, std::vector<int64_t> zero_points,
                 int32_t axis) {
    const auto quant = fb::CreateQuantizationParametersDirect(
        fbb_, nullptr, nullptr, &scales, &zero_points, fb::QuantizationDetails::NONE, 0, axis);
    tensors_.push_back(
        fb::CreateTensorDirect(fbb_, &shape, type, buffer_index, name.c_str(), quant));
    return int32_t(tensors_.size() - 1);
  }

  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers_;
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors_;
  std::vector<flatbuffers::Offset<fb::Operator>> operators_;
  std::vector<flatbuffers::Offset<fb::OperatorCode>> codes_;
  std::vector<fb::BuiltinOperator> codes_used_;
};

}  // namespace udc::firmware_model::testing
