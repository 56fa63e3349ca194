#include "udc/npu_sim/command_stream.hpp"

#include "udc/common/file_io.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace udc::npu_sim {

using nlohmann::json;

const char* memory_name(MemoryId id) {
  return id == MemoryId::Sram ? "sram" : "offchip";
}

namespace {
constexpr bool traits_in_kind_order() {
  for (size_t k = 0; k < kCommandTraits.size(); ++k) {
    if (static_cast<size_t>(kCommandTraits[k].kind) != k) return false;
  }
  return true;
}
static_assert(traits_in_kind_order(), "kCommandTraits must list the kinds in enum order");
}  // namespace

uint64_t TensorRef::end_address() const {
  if (elements() == 0) return address;
  return address + (shape[0] - 1) * row_step() + (shape[1] - 1) * col_step() + shape[2];
}

uint32_t Command::block_channels(uint32_t block) const {
  const uint32_t first = block * ofm_block_depth;
  return std::min(ofm_block_depth, ofm.shape[2] - first);
}

uint64_t Command::weights_per_channel() const {
  switch (kind) {
    case CommandKind::Conv2d:
      return uint64_t{kernel_h} * kernel_w * ifm.shape[2];
    case CommandKind::DepthwiseConv2d:
      return uint64_t{kernel_h} * kernel_w;
    case CommandKind::FullyConnected:
      return ifm.elements();
    default:
      return 0;
  }
}

uint64_t Command::macs() const {
  const uint64_t outputs = ofm.elements();
  switch (kind) {
    case CommandKind::Conv2d:
    case CommandKind::DepthwiseConv2d:
    case CommandKind::FullyConnected:
      return outputs * weights_per_channel();
    case CommandKind::Add:
      return outputs;
    case CommandKind::MaxPool:
    case CommandKind::AvgPool:
    case CommandKind::Mean:
      return outputs * kernel_h * kernel_w;
    default:
      return 0;
  }
}

ChannelScale read_scale_record(const uint8_t* r) {
  auto le32 = [](const uint8_t* p) {
    return static_cast<int32_t>(uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 |
                                uint32_t{p[3]} << 24);
  };
  return ChannelScale{le32(r), le32(r + 4), static_cast<int8_t>(r[8])};
}

void write_scale_record(const ChannelScale& s, uint8_t* r) {
  for (int i = 0; i < 4; ++i) {
    r[i] = static_cast<uint8_t>(static_cast<uint32_t>(s.bias) >> (8 * i));
    r[4 + i] = static_cast<uint8_t>(static_cast<uint32_t>(s.multiplier) >> (8 * i));
  }
  r[8] = static_cast<uint8_t>(static_cast<int8_t>(s.shift));
  r[9] = 0;
}

namespace {

constexpr const char* kFormatName = "udc-command-stream";
constexpr int kFormatVersion = 1;

/// Error context: "<file>: command 3 (conv2d): ifm.shape".
struct Where {
  std::string prefix;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(prefix + key + ": " + what);
  }
};

/// A required member of a JSON object; fails naming the command and key.
const json& member(const json& object, const char* key, const Where& where) {
  if (!object.is_object()) where.fail(key, "expected an object holding it");
  auto it = object.find(key);
  if (it == object.end()) where.fail(key, "missing");
  return *it;
}

template <typename T>
T integer(const json& value, const std::string& key, const Where& where) {
  if (!value.is_number_integer()) where.fail(key, "expected an integer, found " + value.dump());
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) where.fail(key, "out of range");
    return static_cast<T>(v);
  }
  const int64_t v = value.get<int64_t>();
  if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
    where.fail(key, "out of range: " + std::to_string(v));
  }
  return static_cast<T>(v);
}

template <typename T>
void optional(const json& object, const char* key, T& out, const Where& where) {
  auto it = object.find(key);
  if (it != object.end()) out = integer<T>(*it, key, where);
}

MemoryId memory_id(const json& value, const std::string& key, const Where& where) {
  if (value == "sram") return MemoryId::Sram;
  if (value == "offchip") return MemoryId::Offchip;
  where.fail(key, "expected \"sram\" or \"offchip\", found " + value.dump());
}

/// Rejects keys a command kind does not read, so that a misspelt field is an error and
/// not a silent default.
void check_keys(const json& object, std::initializer_list<const char*> allowed,
                const Where& where) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = false;
    for (const char* key : allowed) known |= it.key() == key;
    if (!known) where.fail(it.key(), "unknown key");
  }
}

/// A tensor reference {memory, address, shape[, row_stride, column_stride]}.
TensorRef tensor_from(const json& value, const std::string& name, const Where& outer) {
  const Where where{outer.prefix + name + "."};
  if (!value.is_object()) outer.fail(name, "expected a tensor object");
  check_keys(value, {"memory", "address", "shape", "row_stride", "column_stride"}, where);
  TensorRef t;
  t.memory = memory_id(member(value, "memory", where), "memory", where);
  t.address = integer<uint64_t>(member(value, "address", where), "address", where);
  const json& shape = member(value, "shape", where);
  if (!shape.is_array() || shape.size() != 3)
    where.fail("shape", "expected [height, width, channels]");
  for (int i = 0; i < 3; ++i) t.shape[i] = integer<uint32_t>(shape[i], "shape", where);
  optional(value, "row_stride", t.row_stride, where);
  optional(value, "column_stride", t.column_stride, where);
  return t;
}

json tensor_to(const TensorRef& t) {
  json j{{"memory", memory_name(t.memory)},
         {"address", t.address},
         {"shape", {t.shape[0], t.shape[1], t.shape[2]}}};
  if (t.row_stride) j["row_stride"] = t.row_stride;
  if (t.column_stride) j["column_stride"] = t.column_stride;
  return j;
}

/// The kind named by "op", from kCommandTraits; fails listing every name.
CommandKind kind_from(const json& value, const Where& where) {
  std::string names;
  for (const CommandTraits& t : kCommandTraits) {
    if (value == t.name) return t.kind;
    names += (names.empty() ? "" : ", ") + std::string(t.name);
  }
  where.fail("op", "unknown operation " + value.dump() + " (expected one of: " + names + ")");
}

/// One command from its JSON object, fields by kind (COMMANDS.md); ranges and consistency
/// are left to validate(), which checks commands built in C++ the same way.
Command command_from(const json& j, const Where& outer) {
  if (!j.is_object()) outer.fail("", "expected an object");
  Command c;
  c.kind = kind_from(member(j, "op", outer), outer);
  const Where where{outer.prefix.substr(0, outer.prefix.size() - 2) + " (" + command_name(c.kind) +
                    "): "};
  if (c.kind == CommandKind::Dma) {
    check_keys(j, {"op", "src", "dst", "bytes"}, where);
    const json& src = member(j, "src", where);
    const json& dst = member(j, "dst", where);
    c.dma_src_memory = memory_id(member(src, "memory", where), "src.memory", where);
    c.dma_src_address = integer<uint64_t>(member(src, "address", where), "src.address", where);
    c.dma_dst_memory = memory_id(member(dst, "memory", where), "dst.memory", where);
    c.dma_dst_address = integer<uint64_t>(member(dst, "address", where), "dst.address", where);
    c.dma_bytes = integer<uint64_t>(member(j, "bytes", where), "bytes", where);
    return c;
  }
  if (c.kind == CommandKind::WaitDma) {
    check_keys(j, {"op", "max_pending"}, where);
    optional(j, "max_pending", c.max_pending_dma, where);
    return c;
  }
  check_keys(j,
             {"op", "ifm", "ifm2", "ofm", "kernel", "stride", "padding", "input_zero_point",
              "input2_zero_point", "output_zero_point", "activation", "ofm_block_depth",
              "ofm_block", "weights", "scales", "add_scaling", "mean_scaling"},
             where);
  c.ifm = tensor_from(member(j, "ifm", where), "ifm", where);
  c.ofm = tensor_from(member(j, "ofm", where), "ofm", where);
  if (traits(c.kind).second_input) c.ifm2 = tensor_from(member(j, "ifm2", where), "ifm2", where);
  auto pair = [&](const char* key, uint32_t& a, uint32_t& b) {
    auto it = j.find(key);
    if (it == j.end()) return;
    if (!it->is_array() || it->size() != 2) where.fail(key, "expected [height, width]");
    a = integer<uint32_t>((*it)[0], key, where);
    b = integer<uint32_t>((*it)[1], key, where);
  };
  pair("kernel", c.kernel_h, c.kernel_w);
  pair("stride", c.stride_h, c.stride_w);
  if (auto it = j.find("padding"); it != j.end()) {
    if (!it->is_array() || it->size() != 4)
      where.fail("padding", "expected [top, bottom, left, right]");
    c.pad_top = integer<uint32_t>((*it)[0], "padding", where);
    c.pad_bottom = integer<uint32_t>((*it)[1], "padding", where);
    c.pad_left = integer<uint32_t>((*it)[2], "padding", where);
    c.pad_right = integer<uint32_t>((*it)[3], "padding", where);
  }
  optional(j, "input_zero_point", c.input_zero_point, where);
  optional(j, "input2_zero_point", c.input2_zero_point, where);
  optional(j, "output_zero_point", c.output_zero_point, where);
  if (auto it = j.find("activation"); it != j.end()) {
    if (!it->is_array() || it->size() != 2) where.fail("activation", "expected [min, max]");
    c.activation_min = integer<int32_t>((*it)[0], "activation", where);
    c.activation_max = integer<int32_t>((*it)[1], "activation", where);
  }
  optional(j, "ofm_block_depth", c.ofm_block_depth, where);
  pair("ofm_block", c.ofm_block_height, c.ofm_block_width);
  if (has_weights(c.kind)) {
    const json& weights = member(j, "weights", where);
    const Where wwhere{where.prefix + "weights."};
    check_keys(weights, {"memory", "streams"}, wwhere);
    c.weight_memory = memory_id(member(weights, "memory", wwhere), "memory", wwhere);
    const json& streams = member(weights, "streams", wwhere);
    if (!streams.is_array()) wwhere.fail("streams", "expected an array of [address, bytes]");
    for (const json& s : streams) {
      if (!s.is_array() || (s.size() != 2 && s.size() != 5)) {
        wwhere.fail("streams",
                    "expected [address, bytes] or [address, bytes, slices, symbols, "
                    "payload bits]");
      }
      WeightStreamRef ref{integer<uint64_t>(s[0], "streams", wwhere),
                          integer<uint32_t>(s[1], "streams", wwhere)};
      if (s.size() == 5) {
        ref.slices = integer<uint32_t>(s[2], "streams", wwhere);
        ref.symbols = integer<uint64_t>(s[3], "streams", wwhere);
        ref.payload_bits = integer<uint64_t>(s[4], "streams", wwhere);
      }
      c.weight_streams.push_back(ref);
    }
    c.scale_address = integer<uint64_t>(member(j, "scales", where), "scales", where);
  }
  if (c.kind == CommandKind::Add) {
    const json& s = member(j, "add_scaling", where);
    const Where swhere{where.prefix + "add_scaling."};
    check_keys(s,
               {"input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
                "output_multiplier", "output_shift", "left_shift"},
               swhere);
    optional(s, "input1_multiplier", c.add.input1_multiplier, swhere);
    optional(s, "input1_shift", c.add.input1_shift, swhere);
    optional(s, "input2_multiplier", c.add.input2_multiplier, swhere);
    optional(s, "input2_shift", c.add.input2_shift, swhere);
    optional(s, "output_multiplier", c.add.output_multiplier, swhere);
    optional(s, "output_shift", c.add.output_shift, swhere);
    optional(s, "left_shift", c.add.left_shift, swhere);
  }
  if (c.kind == CommandKind::Mean) {
    const json& s = member(j, "mean_scaling", where);
    const Where swhere{where.prefix + "mean_scaling."};
    check_keys(s, {"multiplier", "shift"}, swhere);
    c.mean_multiplier = integer<int32_t>(member(s, "multiplier", swhere), "multiplier", swhere);
    c.mean_shift = integer<int32_t>(member(s, "shift", swhere), "shift", swhere);
  }
  return c;
}

/// The inverse of command_from(): only the fields the kind uses.
json command_to(const Command& c) {
  json j{{"op", command_name(c.kind)}};
  if (c.kind == CommandKind::Dma) {
    j["src"] = {{"memory", memory_name(c.dma_src_memory)}, {"address", c.dma_src_address}};
    j["dst"] = {{"memory", memory_name(c.dma_dst_memory)}, {"address", c.dma_dst_address}};
    j["bytes"] = c.dma_bytes;
    return j;
  }
  if (c.kind == CommandKind::WaitDma) {
    j["max_pending"] = c.max_pending_dma;
    return j;
  }
  j["ifm"] = tensor_to(c.ifm);
  if (traits(c.kind).second_input) j["ifm2"] = tensor_to(c.ifm2);
  j["ofm"] = tensor_to(c.ofm);
  j["kernel"] = {c.kernel_h, c.kernel_w};
  j["stride"] = {c.stride_h, c.stride_w};
  j["padding"] = {c.pad_top, c.pad_bottom, c.pad_left, c.pad_right};
  j["input_zero_point"] = c.input_zero_point;
  if (traits(c.kind).second_input) j["input2_zero_point"] = c.input2_zero_point;
  j["output_zero_point"] = c.output_zero_point;
  j["activation"] = {c.activation_min, c.activation_max};
  j["ofm_block_depth"] = c.ofm_block_depth;
  if (c.ofm_block_height || c.ofm_block_width) {
    j["ofm_block"] = {c.ofm_block_height, c.ofm_block_width};
  }
  if (has_weights(c.kind)) {
    json streams = json::array();
    for (const WeightStreamRef& s : c.weight_streams) {
      if (s.symbols) {
        streams.push_back({s.address, s.bytes, s.slices, s.symbols, s.payload_bits});
      } else {
        streams.push_back({s.address, s.bytes});
      }
    }
    j["weights"] = {{"memory", memory_name(c.weight_memory)}, {"streams", streams}};
    j["scales"] = c.scale_address;
  }
  if (c.kind == CommandKind::Add) {
    j["add_scaling"] = {{"input1_multiplier", c.add.input1_multiplier},
                        {"input1_shift", c.add.input1_shift},
                        {"input2_multiplier", c.add.input2_multiplier},
                        {"input2_shift", c.add.input2_shift},
                        {"output_multiplier", c.add.output_multiplier},
                        {"output_shift", c.add.output_shift},
                        {"left_shift", c.add.left_shift}};
  }
  if (c.kind == CommandKind::Mean) {
    j["mean_scaling"] = {{"multiplier", c.mean_multiplier}, {"shift", c.mean_shift}};
  }
  return j;
}

std::string to_hex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

/// Inline image bytes, two hex digits each; fails naming the key on odd length or a
/// non-hex digit.
std::vector<uint8_t> from_hex(const std::string& text, const std::string& key, const Where& where) {
  if (text.size() % 2) where.fail(key, "odd number of hex digits");
  std::vector<uint8_t> out(text.size() / 2);
  auto digit = [&](char ch, size_t pos) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    where.fail(key, "not a hex digit at character " + std::to_string(pos));
  };
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] =
        static_cast<uint8_t>(digit(text[2 * i], 2 * i) * 16 + digit(text[2 * i + 1], 2 * i + 1));
  }
  return out;
}

}  // namespace

CommandStream read_command_stream(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open command stream");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(path + ": malformed JSON at byte " + std::to_string(e.byte) + ": " +
                             e.what());
  }
  const Where top{path + ": "};
  if (!root.is_object()) top.fail("", "expected a JSON object");
  check_keys(root, {"format", "version", "images", "commands", "outputs"}, top);
  if (member(root, "format", top) != kFormatName)
    top.fail("format", "expected \"udc-command-stream\"");
  if (integer<int>(member(root, "version", top), "version", top) != kFormatVersion) {
    top.fail("version", "unsupported version (this build reads version 1)");
  }
  CommandStream stream;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (auto it = root.find("images"); it != root.end()) {
    if (!it->is_array()) top.fail("images", "expected an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& image = (*it)[i];
      const Where where{path + ": images[" + std::to_string(i) + "]."};
      check_keys(image, {"memory", "address", "hex", "file"}, where);
      MemoryImage m;
      m.memory = memory_id(member(image, "memory", where), "memory", where);
      m.address = integer<uint64_t>(member(image, "address", where), "address", where);
      if (auto hex = image.find("hex"); hex != image.end()) {
        if (!hex->is_string()) where.fail("hex", "expected a string of hex digits");
        m.bytes = from_hex(hex->get<std::string>(), "hex", where);
      } else if (auto file = image.find("file"); file != image.end()) {
        if (!file->is_string()) where.fail("file", "expected a path");
        try {
          m.bytes = common::read_file((dir / file->get<std::string>()).string());
        } catch (const std::runtime_error& e) {
          where.fail("file", e.what());
        }
      } else {
        where.fail("hex", "an image needs hex or file");
      }
      stream.images.push_back(std::move(m));
    }
  }
  const json& commands = member(root, "commands", top);
  if (!commands.is_array()) top.fail("commands", "expected an array");
  for (size_t i = 0; i < commands.size(); ++i) {
    stream.commands.push_back(
        command_from(commands[i], Where{path + ": command " + std::to_string(i) + ": "}));
  }
  if (auto it = root.find("outputs"); it != root.end()) {
    if (!it->is_array()) top.fail("outputs", "expected an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& o = (*it)[i];
      const Where where{path + ": outputs[" + std::to_string(i) + "]."};
      check_keys(o, {"name", "memory", "address", "bytes"}, where);
      OutputRegion r;
      const json& name = member(o, "name", where);
      if (!name.is_string()) where.fail("name", "expected a string");
      r.name = name.get<std::string>();
      r.memory = memory_id(member(o, "memory", where), "memory", where);
      r.address = integer<uint64_t>(member(o, "address", where), "address", where);
      r.bytes = integer<uint64_t>(member(o, "bytes", where), "bytes", where);
      stream.outputs.push_back(r);
    }
  }
  if (const std::string problem = validate(stream); !problem.empty()) {
    throw std::runtime_error(path + ": " + problem);
  }
  return stream;
}

void write_command_stream(const CommandStream& stream, const std::string& path,
                          size_t inline_limit) {
  json root{{"format", kFormatName}, {"version", kFormatVersion}};
  json images = json::array();
  const std::filesystem::path target(path);
  std::vector<std::pair<std::string, const std::vector<uint8_t>*>> files;
  for (size_t i = 0; i < stream.images.size(); ++i) {
    const MemoryImage& m = stream.images[i];
    json image{{"memory", memory_name(m.memory)}, {"address", m.address}};
    if (m.bytes.size() <= inline_limit) {
      image["hex"] = to_hex(m.bytes);
    } else {
      const std::string name = target.stem().string() + ".image" + std::to_string(i) + ".bin";
      image["file"] = name;
      files.emplace_back((target.parent_path() / name).string(), &m.bytes);
    }
    images.push_back(image);
  }
  root["images"] = images;
  json commands = json::array();
  for (const Command& c : stream.commands) commands.push_back(command_to(c));
  root["commands"] = commands;
  json outputs = json::array();
  for (const OutputRegion& r : stream.outputs) {
    outputs.push_back({{"name", r.name},
                       {"memory", memory_name(r.memory)},
                       {"address", r.address},
                       {"bytes", r.bytes}});
  }
  root["outputs"] = outputs;
  for (const auto& [file, bytes] : files) {
    common::write_file_atomically(file, bytes->data(), bytes->size());
  }
  common::write_file_atomically(path, root.dump(1) + "\n");
}

namespace {

// Bounds that keep every address and size computation inside 64 bits (and the kernels'
// 32-bit loop counters and padded sizes from wrapping), whatever a stream file holds.
constexpr uint64_t kMaxTensorDimension = 65536;  ///< the NPU's 16-bit shape registers
constexpr uint64_t kMaxAddress = 1ull << 40;     ///< the largest memory a config declares
constexpr uint64_t kMaxStride = 1ull << 32;      ///< [bytes]
constexpr uint32_t kMaxStride2d = 64;            ///< window stride [elements]

/// The first problem of a tensor's geometry, or empty.
std::string tensor_problem(const TensorRef& t, const char* name) {
  for (uint32_t d : t.shape) {
    if (d > kMaxTensorDimension) {
      return std::string(name) + ".shape: " + std::to_string(d) + " exceeds " +
             std::to_string(kMaxTensorDimension) + " per dimension";
    }
  }
  if (t.address > kMaxAddress) {
    return std::string(name) + ".address: " + std::to_string(t.address) + " exceeds 2^40";
  }
  if (t.row_stride > kMaxStride || t.column_stride > kMaxStride) {
    return std::string(name) + ".row_stride/column_stride: exceeds 2^32 bytes";
  }
  return {};
}

}  // namespace

std::string validate(const CommandStream& stream) {
  for (size_t i = 0; i < stream.commands.size(); ++i) {
    const Command& c = stream.commands[i];
    const std::string where = "command " + std::to_string(i) + " (" + command_name(c.kind) + "): ";
    if (c.kind == CommandKind::Dma) {
      if (c.dma_src_address > kMaxAddress || c.dma_dst_address > kMaxAddress ||
          c.dma_bytes > kMaxAddress) {
        return where + "src.address, dst.address and bytes must not exceed 2^40";
      }
      continue;
    }
    if (c.kind == CommandKind::WaitDma) continue;
    for (const auto& [tensor, name] : {std::pair<const TensorRef*, const char*>{&c.ifm, "ifm"},
                                       {&c.ifm2, "ifm2"},
                                       {&c.ofm, "ofm"}}) {
      if (std::string problem = tensor_problem(*tensor, name); !problem.empty()) {
        return where + problem;
      }
    }
    if (c.stride_h > kMaxStride2d || c.stride_w > kMaxStride2d) {
      return where + "stride must be at most " + std::to_string(kMaxStride2d);
    }
    if (c.scale_address > kMaxAddress) return where + "scales: address exceeds 2^40";
    for (const WeightStreamRef& w : c.weight_streams) {
      if (w.address > kMaxAddress) return where + "weights.streams: address exceeds 2^40";
    }
    auto empty = [](const TensorRef& t) { return t.elements() == 0; };
    if (empty(c.ifm) || empty(c.ofm)) return where + "ifm and ofm shapes must be non-zero";
    if (c.kernel_h == 0 || c.kernel_w == 0 || c.stride_h == 0 || c.stride_w == 0) {
      return where + "kernel and stride must be at least 1";
    }
    if (c.kernel_h > 64 || c.kernel_w > 64 || c.pad_top >= c.kernel_h + 64 ||
        c.pad_left >= c.kernel_w + 64 || c.pad_bottom >= c.kernel_h + 64 ||
        c.pad_right >= c.kernel_w + 64) {
      return where + "kernel larger than 64 or padding out of range";
    }
    if (c.activation_min > c.activation_max || c.activation_min < -128 || c.activation_max > 127) {
      return where + "activation must satisfy -128 <= min <= max <= 127";
    }
    if (c.input_zero_point < -128 || c.input_zero_point > 127 || c.output_zero_point < -128 ||
        c.output_zero_point > 127 || c.input2_zero_point < -128 || c.input2_zero_point > 127) {
      return where + "zero points must be in -128..127";
    }
    if (c.ofm_block_depth == 0) return where + "ofm_block_depth must be at least 1";
    if (traits(c.kind).windowed) {
      const int64_t padded_h = int64_t{c.ifm.shape[0]} + c.pad_top + c.pad_bottom;
      const int64_t padded_w = int64_t{c.ifm.shape[1]} + c.pad_left + c.pad_right;
      if (padded_h < c.kernel_h || padded_w < c.kernel_w) {
        return where + "kernel larger than the padded input";
      }
      const uint32_t out_h = static_cast<uint32_t>((padded_h - c.kernel_h) / c.stride_h + 1);
      const uint32_t out_w = static_cast<uint32_t>((padded_w - c.kernel_w) / c.stride_w + 1);
      if (out_h != c.ofm.shape[0] || out_w != c.ofm.shape[1]) {
        return where + "ofm is " + std::to_string(c.ofm.shape[0]) + "x" +
               std::to_string(c.ofm.shape[1]) + " but the input, kernel, stride and padding give " +
               std::to_string(out_h) + "x" + std::to_string(out_w);
      }
      if (c.kind != CommandKind::Conv2d && c.ifm.shape[2] != c.ofm.shape[2]) {
        return where + "input and output depths differ";
      }
    }
    if (c.kind == CommandKind::FullyConnected && (c.ofm.shape[0] != 1 || c.ofm.shape[1] != 1)) {
      return where + "ofm of fully_connected must be 1x1xN";
    }
    if (c.kind == CommandKind::Add && (c.ifm.shape != c.ofm.shape || c.ifm2.shape != c.ofm.shape)) {
      return where + "add needs equal input and output shapes";
    }
    if (c.kind == CommandKind::Add && (c.add.left_shift < 0 || c.add.left_shift > 20)) {
      return where + "add_scaling.left_shift must be in 0..20";
    }
    if ((c.kind == CommandKind::AvgPool || c.kind == CommandKind::Mean) &&
        uint64_t{c.kernel_h} * c.kernel_w > 65536) {
      return where + command_name(c.kind) + " window too large";
    }
    if (c.kind == CommandKind::Mean &&
        (c.mean_multiplier < 0 || c.mean_shift < -31 || c.mean_shift > 30)) {
      return where + "mean_scaling: multiplier must be >= 0 and shift in -31..30";
    }
    if (has_weights(c.kind) && c.weight_streams.size() != c.ofm_blocks()) {
      return where + "has " + std::to_string(c.weight_streams.size()) +
             " weight streams, expected " + std::to_string(c.ofm_blocks()) + " (one per block of " +
             std::to_string(c.ofm_block_depth) + " output channels)";
    }
  }
  return {};
}

}  // namespace udc::npu_sim
