// libFuzzer target: the command-stream reader (JSON, `udc sim`) must reject malformed
// files with an error naming the command and key, and validate() must bound every
// address, shape, stride and padding so that what it accepts cannot wrap an address
// computation: every tensor's end lies at or after its start.
#include <cstdlib>
#include <stdexcept>

#include "fuzz_file.hpp"
#include "udc/npu_sim/command_stream.hpp"

// libsystemc needs one; never called (main is the fuzzer driver).
extern "C" int sc_main(int, char**) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace udc::npu_sim;
  CommandStream stream;
  try {
    stream = read_command_stream(udc::fuzz::input_file(data, size, ".json"));
  } catch (const std::exception&) {
    return 0;
  }
  if (!validate(stream).empty()) return 0;
  for (const Command& c : stream.commands) {
    for (const TensorRef* t : {&c.ifm, &c.ifm2, &c.ofm}) {
      if (t->elements() > 0 && t->end_address() < t->address) std::abort();
    }
  }
  return 0;
}
