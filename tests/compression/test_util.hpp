// Helpers shared by the codec tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "udc/compression/decoder.hpp"

namespace udc::compression::test {

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string data_path(const std::string& name) {
  return std::string(UDC_TEST_DATA_DIR) + "/mlw/" + name;
}

/// Names of the reference vectors: NAME.bin with NAME.mlw beside it.
inline std::vector<std::string> reference_vector_names() {
  return {"const_1_s1",          "const_4096_s4",        "gauss2_50_65536_s11", "gauss4_0_65536_s9",
          "gauss4_70_65536_s10", "gauss4_85_100000_s14", "gauss8_0_65536_s6",   "gauss8_20_33_s15",
          "gauss8_50_65536_s7",  "gauss8_90_65536_s8",   "pal4x_65536_s13",     "runs_65536_s12",
          "uniform8_4096_s5",    "uniform8_7_s2",        "zeros_4096_s3"};
}

template <class Weight>
bool same_weights(const std::vector<int16_t>& decoded, const std::vector<Weight>& expected) {
  return decoded.size() == expected.size() &&
         std::equal(expected.begin(), expected.end(), decoded.begin(),
                    [](Weight a, int16_t b) { return static_cast<int16_t>(a) == b; });
}

/// Sum of the decoder's per-slice bit counts: the stream's payload as the decoder saw it.
inline uint64_t decoded_payload_bits(const std::vector<uint8_t>& stream) {
  DecodeOptions options;
  options.record_slices = true;
  const DecodeResult result = decode_stream(stream.data(), stream.size(), options);
  uint64_t bits = 0;
  for (const SliceInfo& slice : result.slices) bits += slice.bits;
  return bits;
}

}  // namespace udc::compression::test
