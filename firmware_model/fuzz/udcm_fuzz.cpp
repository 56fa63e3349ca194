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
  // Most mutations break the payload size or the checksum, which the reader checks first:
  // an input whose reserved header byte 20 is even (the files the writer makes) is resealed
  // (its payload's size and checksum written into its header), so that the fuzzer reaches
  // the parser behind those checks; an odd one is read as it is.
  std::vector<uint8_t> bytes(data, data + size);
  if (size > fm::kModelHeaderBytes && (data[20] & 1) == 0) {
    const uint64_t payload = size - fm::kModelHeaderBytes;
    const uint32_t crc = fm::crc32(bytes.data() + fm::kModelHeaderBytes, payload);
    for (int i = 0; i < 8; ++i) bytes[size_t(8 + i)] = uint8_t(payload >> (8 * i));
    for (int i = 0; i < 4; ++i) bytes[size_t(16 + i)] = uint8_t(crc >> (8 * i));
  }
  fm::Model model;
  try {
    model = fm::deserialize_model(bytes.data(), bytes.size(), "fuzz.udcm");
  } catch (const std::runtime_error&) {
    return 0;
  }
  if (!fm::validate(model).empty()) std::abort();
  const std::vector<uint8_t> again = fm::serialize_model(model);
  const fm::Model reread = fm::deserialize_model(again.data(), again.size(), "again.udcm");
  if (fm::serialize_model(reread) != again) std::abort();
  return 0;
}
