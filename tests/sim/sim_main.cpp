// main() of the sim test binaries: GoogleTest drives the simulations (each in a forked child).
#include <gtest/gtest.h>

#include <systemc>  // declares sc_main extern "C"

// libsystemc.so carries its own main() that calls sc_main(); this main wins the link, but the
// shared library's reference to sc_main must still resolve.
int sc_main(int, char*[]) { return 0; }

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Each simulation forks; "threadsafe" re-executes the binary for the child, which is also safe.
  GTEST_FLAG_SET(death_test_style, "fast");
  return RUN_ALL_TESTS();
}
