// libFuzzer target: the decoder must survive any input, and whatever it decodes
// must survive our encoder and decode back to the same weights.
// Build: CXX=clang++ cmake -S . -B build-fuzz -DUDC_FUZZ=ON && cmake --build build-fuzz
// Run:   build-fuzz/compression/udc_decoder_fuzz -max_total_time=60 tests/data/mlw
#include <cstdlib>

#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace udc::compression;
  DecodeOptions options;
  options.max_weights = 1u << 20;
  const DecodeResult result = decode_stream(data, size, options);
  if (!result.ok()) return 0;
  const std::vector<uint8_t> stream = encode_weights(result.weights.data(), result.weights.size());
  const DecodeResult again = decode_stream(stream.data(), stream.size(), options);
  if (!again.ok() || again.weights != result.weights) std::abort();
  return 0;
}
