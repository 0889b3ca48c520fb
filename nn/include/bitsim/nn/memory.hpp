// Memory the machine has, and the check that turns a request it cannot hold into one clear error
// (what needs how much) before anything is allocated, instead of std::bad_alloc or the OOM killer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bitsim::nn {

struct MemoryError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Physical memory of this machine in bytes.
double physical_memory_bytes();
// "12.3 GiB", "512 MiB", ...
std::string format_bytes(double bytes);
// Throws MemoryError ("<what> need(s) N GiB; this machine has M GiB") when `bytes` exceed the
// machine's physical memory.
void require_memory(double bytes, std::string_view what);

}  // namespace bitsim::nn
