#include "udc/firmware_model/tflite_file.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "udc/common/file_io.hpp"
#include "udc/firmware_model/tflite_generated.h"

namespace udc::firmware_model {
namespace {

namespace fb = udc::tflite;

/// Bytes of `count` elements of TensorType `type`; -1 for types whose size is not fixed
/// (strings, resources) or that udc does not know.
int64_t data_bytes(int8_t type, uint64_t count) {
  switch (type) {
    case 0:   // FLOAT32
    case 2:   // INT32
    case 15:  // UINT32
      return int64_t(count * 4);
    case 1:   // FLOAT16
    case 7:   // INT16
    case 16:  // UINT16
      return int64_t(count * 2);
    case 3:  // UINT8
    case 6:  // BOOL
    case 9:  // INT8
      return int64_t(count);
    case 4:   // INT64
    case 10:  // FLOAT64
    case 12:  // UINT64
      return int64_t(count * 8);
    case 17:  // INT4, two per byte
      return int64_t((count + 1) / 2);
    default:
      return -1;
  }
}

template <typename T>
std::vector<T> to_vector(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

/// The operator's options, from whichever options table it carries.
TfliteOptions read_options(const fb::Operator& op) {
  TfliteOptions o;
  o.options_type = uint8_t(op.builtin_options_type());
  if (const fb::Conv2DOptions* c = op.builtin_options_as_Conv2DOptions()) {
    o.same_padding = c->padding() == fb::Padding::SAME;
    o.stride_w = c->stride_w();
    o.stride_h = c->stride_h();
    o.dilation_w = c->dilation_w_factor();
    o.dilation_h = c->dilation_h_factor();
    o.activation = int8_t(c->fused_activation_function());
  } else if (const fb::DepthwiseConv2DOptions* d = op.builtin_options_as_DepthwiseConv2DOptions()) {
    o.same_padding = d->padding() == fb::Padding::SAME;
    o.stride_w = d->stride_w();
    o.stride_h = d->stride_h();
    o.dilation_w = d->dilation_w_factor();
    o.dilation_h = d->dilation_h_factor();
    o.depth_multiplier = d->depth_multiplier();
    o.activation = int8_t(d->fused_activation_function());
  } else if (const fb::Pool2DOptions* p = op.builtin_options_as_Pool2DOptions()) {
    o.same_padding = p->padding() == fb::Padding::SAME;
    o.stride_w = p->stride_w();
    o.stride_h = p->stride_h();
    o.filter_w = p->filter_width();
    o.filter_h = p->filter_height();
    o.activation = int8_t(p->fused_activation_function());
  } else if (const fb::FullyConnectedOptions* f = op.builtin_options_as_FullyConnectedOptions()) {
    o.activation = int8_t(f->fused_activation_function());
    o.weights_format = f->weights_format();
  } else if (const fb::AddOptions* a = op.builtin_options_as_AddOptions()) {
    o.activation = int8_t(a->fused_activation_function());
  } else if (const fb::MulOptions* m = op.builtin_options_as_MulOptions()) {
    o.activation = int8_t(m->fused_activation_function());
  } else if (const fb::ConcatenationOptions* c2 = op.builtin_options_as_ConcatenationOptions()) {
    o.activation = int8_t(c2->fused_activation_function());
  } else if (const fb::ReshapeOptions* r = op.builtin_options_as_ReshapeOptions()) {
    o.new_shape = to_vector(r->new_shape());
  } else if (const fb::SqueezeOptions* s = op.builtin_options_as_SqueezeOptions()) {
    o.squeeze_dims = to_vector(s->squeeze_dims());
  } else if (const fb::ReducerOptions* red = op.builtin_options_as_ReducerOptions()) {
    o.keep_dims = red->keep_dims();
  } else if (const fb::DepthToSpaceOptions* b = op.builtin_options_as_DepthToSpaceOptions()) {
    o.block_size = b->block_size();
  }
  return o;
}

/// The tensor indices of `list`, each checked to name a tensor (or -1 where `optional`).
std::vector<int32_t> checked_indices(const flatbuffers::Vector<int32_t>* list, size_t tensors,
                                     bool optional, const std::string& where) {
  std::vector<int32_t> indices = to_vector(list);
  for (size_t i = 0; i < indices.size(); ++i) {
    const int32_t t = indices[i];
    if ((t == -1 && optional) || (t >= 0 && size_t(t) < tensors)) continue;
    throw std::runtime_error(fmt::format("{} [{}]: tensor index {} (the subgraph has {} tensors)",
                                         where, i, t, tensors));
  }
  return indices;
}

/// Tensor `t` of the first subgraph with its quantisation and constant data, each checked:
/// dimensions, per-channel scales against the shape, the buffer index, the data size.
TfliteTensor read_tensor(const fb::Tensor& in, size_t t,
                         const flatbuffers::Vector<flatbuffers::Offset<fb::Buffer>>* buffers,
                         const std::string& origin) {
  const size_t buffer_count = buffers ? buffers->size() : 0;
  TfliteTensor tensor;
  tensor.name = in.name() ? in.name()->str() : fmt::format("tensor{}", t);
  const std::string where = fmt::format("{}: tensor {} ({})", origin, t, tensor.name);
  tensor.shape = to_vector(in.shape());
  uint64_t elements = 1;
  for (int32_t d : tensor.shape) {
    if (d < 1 || d > (1 << 24)) {
      throw std::runtime_error(fmt::format("{}: dimension {} (expected 1..2^24)", where, d));
    }
    elements *= uint64_t(d);
    if (elements > (uint64_t{1} << 31))
      throw std::runtime_error(where + ": more than 2^31 elements");
  }
  tensor.type = int8_t(in.type());
  if (const fb::QuantizationParameters* q = in.quantization()) {
    if (q->details_type() != fb::QuantizationDetails::NONE) {
      throw std::runtime_error(where + ": custom quantisation is not supported");
    }
    tensor.scales = to_vector(q->scale());
    tensor.zero_points = to_vector(q->zero_point());
    tensor.quantized_dimension = q->quantized_dimension();
    if (tensor.scales.size() != tensor.zero_points.size()) {
      throw std::runtime_error(fmt::format("{}: {} scales but {} zero points", where,
                                           tensor.scales.size(), tensor.zero_points.size()));
    }
    if (tensor.scales.size() > 1 &&
        (tensor.quantized_dimension < 0 ||
         size_t(tensor.quantized_dimension) >= tensor.shape.size() ||
         size_t(tensor.shape[size_t(tensor.quantized_dimension)]) != tensor.scales.size())) {
      throw std::runtime_error(
          fmt::format("{}: {} per-channel scales do not match dimension {} of its shape", where,
                      tensor.scales.size(), tensor.quantized_dimension));
    }
  }
  if (in.buffer() >= buffer_count && in.buffer() != 0) {
    throw std::runtime_error(
        fmt::format("{}: buffer {} (the file has {} buffers)", where, in.buffer(), buffer_count));
  }
  if (in.buffer() != 0) {
    const fb::Buffer& buffer = *buffers->Get(in.buffer());
    if (buffer.offset() > 1) {
      throw std::runtime_error(where +
                               ": data stored outside the flatbuffer (files over 2 GB) "
                               "is not supported");
    }
    tensor.data = to_vector(buffer.data());
    const int64_t expected = data_bytes(tensor.type, elements);
    if (!tensor.data.empty() && expected >= 0 && uint64_t(expected) != tensor.data.size()) {
      throw std::runtime_error(fmt::format("{}: {} bytes of data, its shape and type need {}",
                                           where, tensor.data.size(), expected));
    }
  }
  return tensor;
}

}  // namespace

std::string tflite_operator_name(int32_t code) {
  if (code >= 0) {
    const auto op = static_cast<fb::BuiltinOperator>(code);
    for (const fb::BuiltinOperator known : fb::EnumValuesBuiltinOperator()) {
      if (known == op) return fb::EnumNameBuiltinOperator(op);
    }
  }
  return fmt::format("BUILTIN_{}", code);
}

TfliteModel parse_tflite(const std::vector<uint8_t>& bytes, const std::string& origin) {
  if (bytes.size() < 8 || !fb::ModelBufferHasIdentifier(bytes.data())) {
    throw std::runtime_error(origin + ": not a TFLite file (expected the identifier 'TFL3' at " +
                             "offset 4)");
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!fb::VerifyModelBuffer(verifier)) {
    throw std::runtime_error(fmt::format(
        "{}: corrupt TFLite flatbuffer ({} bytes): an offset, size or table points outside the "
        "file",
        origin, bytes.size()));
  }
  const fb::Model& file = *fb::GetModel(bytes.data());
  TfliteModel model;
  model.schema_version = file.version();
  if (file.description()) model.description = file.description()->str();
  const auto* subgraphs = file.subgraphs();
  if (!subgraphs || subgraphs->size() == 0) throw std::runtime_error(origin + ": no subgraph");
  model.subgraphs = subgraphs->size();
  const fb::SubGraph& graph = *subgraphs->Get(0);
  const auto* buffers = file.buffers();
  const size_t buffer_count = buffers ? buffers->size() : 0;

  const auto* tensors = graph.tensors();
  const size_t tensor_count = tensors ? tensors->size() : 0;
  for (size_t t = 0; t < tensor_count; ++t) {
    model.tensors.push_back(
        read_tensor(*tensors->Get(flatbuffers::uoffset_t(t)), t, file.buffers(), origin));
  }
  model.inputs = checked_indices(graph.inputs(), tensor_count, false, origin + ": inputs");
  model.outputs = checked_indices(graph.outputs(), tensor_count, false, origin + ": outputs");

  if (const auto* metadata = file.metadata()) {
    for (size_t i = 0; i < metadata->size(); ++i) {
      const fb::Metadata& entry = *metadata->Get(flatbuffers::uoffset_t(i));
      if (entry.buffer() >= buffer_count) {
        throw std::runtime_error(fmt::format("{}: metadata {}: buffer {} (the file has {} buffers)",
                                             origin, i, entry.buffer(), buffer_count));
      }
      model.metadata.emplace_back(entry.name() ? entry.name()->str() : std::string(),
                                  to_vector(buffers->Get(entry.buffer())->data()));
    }
  }

  const auto* codes = file.operator_codes();
  const size_t code_count = codes ? codes->size() : 0;
  const auto* operators = graph.operators();
  for (size_t i = 0; operators && i < operators->size(); ++i) {
    const fb::Operator& in = *operators->Get(flatbuffers::uoffset_t(i));
    const std::string where = fmt::format("{}: operator {}", origin, i);
    if (in.opcode_index() >= code_count) {
      throw std::runtime_error(fmt::format("{}: operator code {} (the file has {})", where,
                                           in.opcode_index(), code_count));
    }
    const fb::OperatorCode& code = *codes->Get(in.opcode_index());
    TfliteOperator op;
    // Codes past 127 live only in builtin_code; older files fill only the byte field.
    op.builtin_code =
        std::max(int32_t(code.deprecated_builtin_code()), int32_t(code.builtin_code()));
    if (code.custom_code()) op.custom_code = code.custom_code()->str();
    op.version = code.version();
    op.inputs = checked_indices(in.inputs(), tensor_count, true, where + " inputs");
    op.outputs = checked_indices(in.outputs(), tensor_count, false, where + " outputs");
    op.options = read_options(in);
    model.operators.push_back(std::move(op));
  }
  return model;
}

TfliteModel read_tflite(const std::string& path) {
  return parse_tflite(common::read_file(path), path);
}

}  // namespace udc::firmware_model
