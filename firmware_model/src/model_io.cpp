#include "udc/firmware_model/model_io.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <stdexcept>

#include "udc/common/file_io.hpp"

namespace udc::firmware_model {

/// CRC-32 (IEEE 802.3, reflected, as zlib) of the payload: a flipped bit in a flashed
/// model is reported as corruption instead of running as a different network.
uint32_t crc32(const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

namespace {

constexpr uint32_t kMaxNameBytes = 4096;

class Writer {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) { raw(v, 2); }
  void u32(uint32_t v) { raw(v, 4); }
  void i32(int32_t v) { raw(uint32_t(v), 4); }
  void u64(uint64_t v) { raw(v, 8); }
  void f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    u32(bits);
  }
  void str(const std::string& s) {
    u32(uint32_t(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void i32s(const std::vector<int32_t>& v) {
    for (int32_t x : v) i32(x);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  void raw(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

/// Bounded little-endian reader; every failure names the offset and what was expected.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, size_t base, std::string origin)
      : data_(data), size_(size), base_(base), origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: offset {}: {}", origin_, base_ + pos_, what));
  }
  void need(size_t n, const char* what) const {
    if (size_ - pos_ < n) {
      fail(fmt::format("truncated: {} needs {} bytes, {} left", what, n, size_ - pos_));
    }
  }
  uint64_t raw(int n, const char* what) {
    need(size_t(n), what);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{data_[pos_ + size_t(i)]} << (8 * i);
    pos_ += size_t(n);
    return v;
  }
  uint8_t u8(const char* what) { return uint8_t(raw(1, what)); }
  uint32_t u32(const char* what) { return uint32_t(raw(4, what)); }
  int32_t i32(const char* what) { return int32_t(uint32_t(raw(4, what))); }
  float f32(const char* what) {
    const uint32_t bits = u32(what);
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  /// A count of items of `item_bytes` each that must fit in what is left.
  uint32_t count(const char* what, size_t item_bytes) {
    const size_t at = pos_;
    const uint32_t n = u32(what);
    if (item_bytes > 0 && uint64_t{n} * item_bytes > size_ - pos_) {
      pos_ = at;
      fail(fmt::format("{} is {}, but only {} bytes follow", what, n, size_ - at - 4));
    }
    return n;
  }
  std::string str(const char* what) {
    const uint32_t n = count(what, 1);
    if (n > kMaxNameBytes) fail(fmt::format("{} of {} bytes (at most {})", what, n, kMaxNameBytes));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<int32_t> i32s(uint32_t n, const char* what) {
    std::vector<int32_t> v(n);
    for (int32_t& x : v) x = i32(what);
    return v;
  }
  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }
  void skip(size_t n) { pos_ += n; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t base_;
  std::string origin_;
  size_t pos_ = 0;
};

/// The payload in FORMAT.md order: tensors, graph inputs and outputs, operations.
void write_payload(const Model& model, Writer& w) {
  w.str(model.name);
  w.u32(uint32_t(model.tensors.size()));
  for (const TensorInfo& t : model.tensors) {
    w.str(t.name);
    for (uint32_t d : t.shape) w.u32(d);
    w.f32(t.scale);
    w.i32(t.zero_point);
  }
  w.u32(uint32_t(model.inputs.size()));
  w.i32s(model.inputs);
  w.u32(uint32_t(model.outputs.size()));
  w.i32s(model.outputs);
  w.u32(uint32_t(model.operations.size()));
  for (const Operation& op : model.operations) {
    w.u8(uint8_t(op.type));
    w.str(op.name);
    w.u32(uint32_t(op.inputs.size()));
    w.i32s(op.inputs);
    w.i32(op.output);
    for (uint32_t v : {op.kernel_h, op.kernel_w, op.stride_h, op.stride_w}) w.u32(v);
    w.u8(uint8_t(op.padding));
    w.u32(op.block_size);
    w.u8(uint8_t(op.activation));
    w.i32(op.activation_min);
    w.i32(op.activation_max);
    w.u32(op.weight_bits);
    w.u32(uint32_t(op.weights.size()));
    for (int8_t v : op.weights) w.u8(uint8_t(v));
    w.u32(uint32_t(op.bias.size()));
    w.i32s(op.bias);
    w.i32s(op.multiplier);
    w.i32s(op.shift);
    const int8::AddParams& a = op.add;
    for (int32_t v : {a.input1_multiplier, a.input1_shift, a.input2_multiplier, a.input2_shift,
                      a.output_multiplier, a.output_shift, a.left_shift}) {
      w.i32(v);
    }
  }
}

/// The inverse of write_payload(). Every count is bounded before anything is allocated
/// and every field is checked as read, so a corrupt file fails with the offset and the
/// field instead of allocating or reading out of bounds; validate() then checks the graph.
Model read_payload(Reader& r) {
  Model model;
  model.name = r.str("model name length");
  const uint32_t tensors = r.count("tensor count", 24);
  model.tensors.resize(tensors);
  for (TensorInfo& t : model.tensors) {
    t.name = r.str("tensor name length");
    for (uint32_t& d : t.shape) d = r.u32("tensor shape");
    t.scale = r.f32("tensor scale");
    t.zero_point = r.i32("tensor zero point");
  }
  model.inputs = r.i32s(r.count("input count", 4), "input tensor index");
  model.outputs = r.i32s(r.count("output count", 4), "output tensor index");
  const uint32_t operations = r.count("operation count", 60);
  model.operations.resize(operations);
  for (Operation& op : model.operations) {
    const size_t at = r.position();
    const uint8_t type = r.u8("operation type");
    if (!is_op_type(type)) {
      throw std::runtime_error(fmt::format("offset {}: unknown operation type {} (expected 1..{})",
                                           kModelHeaderBytes + at, type, kOpTraits.size()));
    }
    op.type = OpType(type);
    op.name = r.str("operation name length");
    op.inputs = r.i32s(r.count("operation input count", 4), "operation input index");
    op.output = r.i32("operation output index");
    op.kernel_h = r.u32("kernel height");
    op.kernel_w = r.u32("kernel width");
    op.stride_h = r.u32("stride height");
    op.stride_w = r.u32("stride width");
    const uint8_t padding = r.u8("padding");
    if (padding > 1) r.fail(fmt::format("padding {} (expected 0 valid or 1 same)", padding));
    op.padding = Padding(padding);
    op.block_size = r.u32("block size");
    const uint8_t activation = r.u8("activation");
    if (activation > 2) r.fail(fmt::format("activation {} (expected 0..2)", activation));
    op.activation = Activation(activation);
    op.activation_min = r.i32("activation min");
    op.activation_max = r.i32("activation max");
    op.weight_bits = r.u32("weight bits");
    const uint32_t weights = r.count("weight count", 1);
    op.weights.assign(reinterpret_cast<const int8_t*>(r.here()),
                      reinterpret_cast<const int8_t*>(r.here()) + weights);
    r.skip(weights);
    const uint32_t channels = r.count("channel count", 12);
    op.bias = r.i32s(channels, "bias");
    op.multiplier = r.i32s(channels, "multiplier");
    op.shift = r.i32s(channels, "shift");
    int8::AddParams& a = op.add;
    for (int32_t* v : {&a.input1_multiplier, &a.input1_shift, &a.input2_multiplier, &a.input2_shift,
                       &a.output_multiplier, &a.output_shift, &a.left_shift}) {
      *v = r.i32("add parameters");
    }
  }
  if (r.remaining() != 0) r.fail(fmt::format("{} unexpected bytes after the model", r.remaining()));
  return model;
}

}  // namespace

std::vector<uint8_t> serialize_model(const Model& model) {
  const std::string problem = validate(model);
  if (!problem.empty()) throw std::invalid_argument("model " + model.name + ": " + problem);
  Writer payload;
  write_payload(model, payload);
  Writer file;
  for (char c : kModelMagic) file.u8(uint8_t(c));
  file.u16(kModelVersion);
  file.u16(0);
  file.u64(payload.bytes().size());
  file.u32(crc32(payload.bytes().data(), payload.bytes().size()));
  file.u32(0);
  file.bytes().insert(file.bytes().end(), payload.bytes().begin(), payload.bytes().end());
  return std::move(file.bytes());
}

Model deserialize_model(const uint8_t* data, size_t size, const std::string& origin) {
  Reader header(data, size, 0, origin);
  header.need(kModelHeaderBytes, "the header");
  if (std::memcmp(data, kModelMagic, 4) != 0) header.fail("not a .udcm model (magic is not UDCM)");
  header.skip(4);
  const uint16_t version = uint16_t(header.raw(2, "version"));
  if (version != kModelVersion) {
    header.fail(fmt::format("unsupported version {} (this build reads version {})", version,
                            kModelVersion));
  }
  header.skip(2);
  const uint64_t payload_bytes = header.raw(8, "payload size");
  const uint32_t stored_crc = header.u32("checksum");
  header.skip(4);
  if (payload_bytes != size - kModelHeaderBytes) {
    Reader at(data, size, 8, origin);
    at.fail(fmt::format("header says {} payload bytes, the file has {} (truncated or extended)",
                        payload_bytes, size - kModelHeaderBytes));
  }
  const uint8_t* payload = data + kModelHeaderBytes;
  const uint32_t crc = crc32(payload, payload_bytes);
  if (crc != stored_crc) {
    throw std::runtime_error(fmt::format(
        "{}: offset 16: checksum mismatch (stored {:08x}, computed {:08x}): the file is corrupt",
        origin, stored_crc, crc));
  }
  Reader body(payload, payload_bytes, kModelHeaderBytes, origin);
  Model model;
  try {
    model = read_payload(body);
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    if (what.rfind(origin, 0) == 0) throw;
    throw std::runtime_error(origin + ": " + what);
  }
  const std::string problem = validate(model);
  if (!problem.empty()) throw std::runtime_error(origin + ": " + problem);
  return model;
}

void write_model(const Model& model, const std::string& path) {
  const std::vector<uint8_t> bytes = serialize_model(model);
  common::write_file_atomically(path, bytes.data(), bytes.size());
}

Model read_model(const std::string& path) {
  const std::vector<uint8_t> bytes = common::read_file(path);
  return deserialize_model(bytes.data(), bytes.size(), path);
}

}  // namespace udc::firmware_model
