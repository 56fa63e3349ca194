// libFuzzer target: the .npy reader must reject any malformed header or size with an
// error (std::runtime_error), never read out of bounds or allocate what the file does not
// hold; what it accepts has exactly as many values as the file's payload holds.
#include <cstdlib>
#include <stdexcept>

#include "udc/common/weight_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const std::vector<int16_t> weights = udc::common::parse_npy("fuzz.npy", bytes);
    if (weights.size() > size) std::abort();  // at least one byte per value
  } catch (const std::runtime_error&) {
  }
  return 0;
}
