// What the fuzz targets share: an invariant check that stops the fuzzer with a message, since a
// broken invariant is a finding just as a crash is, and where the file-reading targets write.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

// A file path unique to this process in memory-backed /dev/shm when there is one: rewriting a file
// on ext4 for every input (truncate, write, close) forces a disk write each time and made the
// loaders' targets 10 times slower on a busy machine.
inline std::string fuzz_scratch_path(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path shm = "/dev/shm";
  const auto dir = std::filesystem::is_directory(shm, ec) && ::access(shm.c_str(), W_OK) == 0
                       ? shm
                       : std::filesystem::temp_directory_path();
  return (dir / ("bitsim-fuzz-" + std::to_string(::getpid()) + "-" + name)).string();
}

#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fputc('\n', stderr);                                                \
      std::abort();                                                            \
    }                                                                          \
  } while (0)
