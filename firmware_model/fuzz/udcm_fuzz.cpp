// libFuzzer target: the .udcm reader must reject anything but a valid model with an error
// (std::runtime_error naming the offset or the tensor/operation); a model it accepts
// passes validate(), and writes back to a file that reads as the same model.
#include <cstdlib>
#include <stdexcept>

#include "udc/firmware_model/model.hpp"
#include "udc/firmware_model/model_io.hpp"

// libsystemc needs one; never called (main is the fuzzer driver).
extern "C" int sc_main(int, char**) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fm = udc::firmware_model;
  fm::Model model;
  try {
    model = fm::deserialize_model(data, size, "fuzz.udcm");
  } catch (const std::runtime_error&) {
    return 0;
  }
  if (!fm::validate(model).empty()) std::abort();
  const std::vector<uint8_t> again = fm::serialize_model(model);
  const fm::Model reread = fm::deserialize_model(again.data(), again.size(), "again.udcm");
  if (fm::serialize_model(reread) != again) std::abort();
  return 0;
}
