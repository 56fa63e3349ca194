// SystemC's coroutines under AddressSanitizer (internal to npu_sim).
#pragma once

namespace udc::npu_sim {

/// Records the calling thread's stack as the one SystemC's kernel returns to, for the
/// fiber annotations of sanitizer_fibers.cpp; call it on the thread that runs the
/// simulations before the first one. A no-op without AddressSanitizer.
void note_simulation_thread_stack();

}  // namespace udc::npu_sim
