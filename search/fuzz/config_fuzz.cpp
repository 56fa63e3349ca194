// libFuzzer target: the `udc train` and `udc search` configuration readers (YAML) must
// reject malformed files, unknown keys and out-of-range values with an error naming the
// file and key (common::ConfigError, or the data and path errors they raise), never crash.
// The input's first byte chooses the reader.
#include <stdexcept>

#include "fuzz_file.hpp"
#include "udc/search/search_config.hpp"
#include "udc/search/train_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string path = udc::fuzz::input_file(data + 1, size - 1, ".yaml");
  try {
    if (data[0] & 1) {
      udc::search::load_search_config(path);
    } else {
      udc::search::load_train_config(path);
    }
  } catch (const std::exception&) {
  }
  return 0;
}
