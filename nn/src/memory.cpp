// Physical memory and the up-front check of large requests.
#include "bitsim/nn/memory.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace bitsim::nn {

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int i = 0;
  while (bytes >= 1024 && i < 6) bytes /= 1024, ++i;
  return fmt::format("{:.3g} {}", bytes, units[i]);
}

void require_memory(double bytes, std::string_view what) {
  const double have = physical_memory_bytes();
  if (have > 0 && !(bytes <= have))
    throw MemoryError(fmt::format("{} need {}; this machine has {}", what, format_bytes(bytes), format_bytes(have)));
}

}  // namespace bitsim::nn
