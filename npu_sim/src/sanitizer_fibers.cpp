// Debian's SystemC 2.3.4 tells AddressSanitizer about its coroutine switches (weak
// references to __sanitizer_start_switch_fiber), but announces the switch back to the
// main coroutine with a null stack of size 0. ASan then takes the main stack to end at
// address 0, warns "ASan is ignoring requested __asan_handle_no_return" at the next
// exception thrown on it and may report false errors afterwards (a stack overflow, seen
// in the trainer's tests). This definition, in the program itself, comes before the ASan
// runtime's in the dynamic lookup of libsystemc's reference: it puts the real bounds of
// the main stack in place of the null one and forwards to the runtime.
#include "sanitizer_fibers.hpp"

// Only with GCC's ASan runtime, a shared library whose definition this one can precede.
// Clang links its runtime into the program, where a second definition cannot link (the
// warning remains there; -shared-libasan would allow the same fix).
#if defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define UDC_ADDRESS_SANITIZER 1
#endif

#if UDC_ADDRESS_SANITIZER

#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

/// The simulation thread's stack: [bottom, bottom + size).
const void* g_stack_bottom = nullptr;
size_t g_stack_size = 0;

}  // namespace

namespace udc::npu_sim {

void note_simulation_thread_stack() {
  pthread_attr_t attributes;
  if (pthread_getattr_np(pthread_self(), &attributes) != 0) return;
  void* bottom = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attributes, &bottom, &size) == 0) {
    g_stack_bottom = bottom;
    g_stack_size = size;
  }
  pthread_attr_destroy(&attributes);
}

}  // namespace udc::npu_sim

extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom,
                                               size_t size) {
  using Function = void (*)(void**, const void*, size_t);
  static const Function runtime =
      reinterpret_cast<Function>(dlsym(RTLD_NEXT, "__sanitizer_start_switch_fiber"));
  if (bottom == nullptr && size == 0) {  // to SystemC's main coroutine
    bottom = g_stack_bottom;
    size = g_stack_size;
  }
  if (runtime != nullptr) runtime(fake_stack_save, bottom, size);
}

#else

namespace udc::npu_sim {

void note_simulation_thread_stack() {}

}  // namespace udc::npu_sim

#endif
