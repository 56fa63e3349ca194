// Test runner for the SystemC-linked tests: SystemC owns the program and calls
// sc_main, which runs GoogleTest. Each test runs in its own process (ctest via
// gtest_discover_tests), and the simulator elaborates once per process.
#include <systemc>

#include <gtest/gtest.h>

#include <cstdlib>

int sc_main(int argc, char* argv[]) {
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

int main(int argc, char* argv[]) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  return sc_core::sc_elab_and_sim(argc, argv);
}
