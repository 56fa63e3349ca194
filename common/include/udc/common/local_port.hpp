// A TCP port for processes that meet on this host (the store of local data-parallel ranks:
// `udc launch`, tests, benchmarks).
#pragma once

#include <cstdint>

namespace udc::common {

/// A TCP port free on this host's loopback now (the kernel's choice of an ephemeral one).
/// Another process may take it before it is used; local launches accept that small race.
/// Throws std::runtime_error when the kernel gives none.
uint16_t free_loopback_port();

}  // namespace udc::common
