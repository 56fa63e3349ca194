// libFuzzer target: the NPU configuration reader (YAML) must reject malformed files,
// unknown keys and out-of-range values with an error naming the file and key; a config
// it accepts is consistent.
#include <cstdlib>
#include <stdexcept>

#include "fuzz_file.hpp"
#include "udc/npu_sim/config.hpp"

// libsystemc needs one; never called (main is the fuzzer driver).
extern "C" int sc_main(int, char**) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace udc::npu_sim;
  NpuConfig config;
  try {
    config = load_npu_config(udc::fuzz::input_file(data, size, ".yaml"));
  } catch (const std::exception&) {
    return 0;
  }
  if (!check_consistency(config).empty()) std::abort();
  return 0;
}
