#include "udc/common/weight_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "udc/common/file_io.hpp"

namespace udc::common {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicBytes = 6;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

/// Value of `key` in a .npy header dictionary, e.g. 'descr': '<i2' gives <i2.
std::string header_value(const std::string& path, const std::string& header,
                         const std::string& key) {
  const size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) fail(path, "npy header has no '" + key + "' entry");
  size_t begin = header.find(':', at);
  if (begin == std::string::npos) fail(path, "npy header entry '" + key + "' has no value");
  ++begin;
  while (begin < header.size() && header[begin] == ' ') ++begin;
  size_t end = begin;
  if (header[begin] == '(') {
    end = header.find(')', begin);
    if (end == std::string::npos) fail(path, "npy header entry 'shape' is not closed");
    return header.substr(begin + 1, end - begin - 1);
  }
  if (header[begin] == '\'') {
    end = header.find('\'', begin + 1);
    if (end == std::string::npos) fail(path, "npy header entry '" + key + "' is not closed");
    return header.substr(begin + 1, end - begin - 1);
  }
  end = header.find_first_of(",}", begin);
  return header.substr(begin, end - begin);
}

std::vector<uint8_t> to_npy(const std::vector<int16_t>& weights) {
  const bool fits_int8 =
      std::all_of(weights.begin(), weights.end(), [](int16_t w) { return w >= -128 && w <= 127; });
  std::string header = std::string("{'descr': '") + (fits_int8 ? "|i1" : "<i2") +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(weights.size()) +
                       ",), }";
  // Pad with spaces and a newline so that the data starts on a 64-byte boundary.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<uint8_t> out(kNpyMagic, kNpyMagic + kNpyMagicBytes);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<uint8_t>(header.size()));
  out.push_back(static_cast<uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  for (int16_t w : weights) {
    out.push_back(static_cast<uint8_t>(w));
    if (!fits_int8) out.push_back(static_cast<uint8_t>(static_cast<uint16_t>(w) >> 8));
  }
  return out;
}

}  // namespace

std::vector<int16_t> parse_npy(const std::string& path, const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kNpyMagic, kNpyMagicBytes) != 0) {
    fail(path, "not a .npy file (expected the magic \\x93NUMPY at offset 0)");
  }
  const int major = bytes[6];
  size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length = bytes[8] | (size_t{bytes[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "truncated .npy header at offset 8");
    header_length =
        bytes[8] | (size_t{bytes[9]} << 8) | (size_t{bytes[10]} << 16) | (size_t{bytes[11]} << 24);
    header_start = 12;
  } else {
    fail(path,
         "unsupported .npy version " + std::to_string(major) + " at offset 6 (expected 1, 2 or 3)");
  }
  if (header_start + header_length > bytes.size()) {
    fail(path,
         "truncated .npy header: " + std::to_string(header_length) + " bytes declared at offset 8");
  }
  const std::string header(bytes.begin() + static_cast<long>(header_start),
                           bytes.begin() + static_cast<long>(header_start + header_length));
  const std::string descr = header_value(path, header, "descr");
  const std::string fortran = header_value(path, header, "fortran_order");
  if (fortran.find("False") == std::string::npos)
    fail(path, "fortran_order arrays are not supported (expected False)");
  uint64_t elements = 1;
  const std::string shape = header_value(path, header, "shape");
  for (size_t pos = 0; pos < shape.size();) {
    const size_t next = shape.find(',', pos);
    const std::string dim =
        shape.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    const size_t first = dim.find_first_not_of(' ');
    if (first != std::string::npos) {
      const size_t last = dim.find_last_not_of(' ');
      const std::string digits = dim.substr(first, last - first + 1);
      if (digits.empty() || digits.size() > 19 ||
          digits.find_first_not_of("0123456789") != std::string::npos) {
        fail(path, "npy header 'shape' entry '" + digits + "' is not a dimension");
      }
      const uint64_t size = std::stoull(digits);
      // The file's size bounds any real array: a shape whose product passes it is corrupt.
      if (size != 0 && elements > bytes.size() / size) {
        fail(path, "npy header 'shape' (" + shape + ") holds more elements than the file's " +
                       std::to_string(bytes.size()) + " bytes");
      }
      elements *= size;
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  size_t element_bytes = 0;
  if (descr == "|i1" || descr == "i1") {
    element_bytes = 1;
  } else if (descr == "<i2") {
    element_bytes = 2;
  } else {
    fail(path, "dtype '" + descr +
                   "' is not supported (expected int8 '|i1' or little-endian int16 '<i2')");
  }
  const size_t data_start = header_start + header_length;
  if (bytes.size() - data_start != elements * element_bytes) {
    fail(path, "shape (" + shape + ") needs " + std::to_string(elements * element_bytes) +
                   " data bytes after offset " + std::to_string(data_start) +
                   " but the file holds " + std::to_string(bytes.size() - data_start));
  }
  std::vector<int16_t> weights(elements);
  for (size_t i = 0; i < elements; ++i) {
    const uint8_t* p = bytes.data() + data_start + i * element_bytes;
    weights[i] =
        element_bytes == 1 ? static_cast<int8_t>(p[0]) : static_cast<int16_t>(p[0] | (p[1] << 8));
  }
  return weights;
}

bool has_extension(const std::string& path, const std::string& extension) {
  return path.size() >= extension.size() &&
         path.compare(path.size() - extension.size(), extension.size(), extension) == 0;
}

std::vector<int16_t> read_weights(const std::string& path) {
  const std::vector<uint8_t> bytes = common::read_file(path);
  if (has_extension(path, ".npy")) return parse_npy(path, bytes);
  std::vector<int16_t> weights(bytes.size());
  std::transform(bytes.begin(), bytes.end(), weights.begin(),
                 [](uint8_t b) { return static_cast<int16_t>(static_cast<int8_t>(b)); });
  return weights;
}

void write_weights(const std::string& path, const std::vector<int16_t>& weights) {
  std::vector<uint8_t> bytes;
  if (has_extension(path, ".npy")) {
    bytes = to_npy(weights);
  } else {
    bytes.resize(weights.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] < -128 || weights[i] > 127) {
        fail(path, "weight " + std::to_string(i) + " is " + std::to_string(weights[i]) +
                       ", which a raw int8 file cannot hold (write a .npy file instead)");
      }
      bytes[i] = static_cast<uint8_t>(weights[i]);
    }
  }
  common::write_file_atomically(path, bytes.data(), bytes.size());
}

}  // namespace udc::common
