// libFuzzer target: the TFLite reader and the importer must refuse anything they cannot
// read or run with an error (std::runtime_error naming the file and what is wrong), never
// crash, hang or read out of bounds; what the reader accepts has every tensor index and
// data size in range, and what the importer returns is a valid model.
#include <cstdlib>
#include <stdexcept>

#include "udc/firmware_model/tflite_file.hpp"
#include "udc/firmware_model/tflite_import.hpp"

// libsystemc needs one; never called (main is the fuzzer driver).
extern "C" int sc_main(int, char**) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fm = udc::firmware_model;
  fm::TfliteModel model;
  try {
    model = fm::parse_tflite(std::vector<uint8_t>(data, data + size), "fuzz.tflite");
  } catch (const std::runtime_error&) {
    return 0;
  }
  const size_t tensors = model.tensors.size();
  auto in_range = [&](int32_t t, bool optional) {
    return (optional && t == -1) || (t >= 0 && size_t(t) < tensors);
  };
  for (const fm::TfliteOperator& op : model.operators) {
    for (int32_t t : op.inputs) {
      if (!in_range(t, true)) std::abort();
    }
    for (int32_t t : op.outputs) {
      if (!in_range(t, false)) std::abort();
    }
  }
  for (int32_t t : model.inputs) {
    if (!in_range(t, false)) std::abort();
  }
  for (int32_t t : model.outputs) {
    if (!in_range(t, false)) std::abort();
  }
  // The importer refuses what udc cannot run with a runtime_error naming it; what it
  // returns is a valid model.
  try {
    const fm::ImportedModel imported = fm::import_tflite(model, "fuzz.tflite");
    if (!fm::validate(imported.model).empty()) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
