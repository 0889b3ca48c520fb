#include "bitsim/nn/files.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <stdexcept>

namespace bitsim::nn {

void write_atomic(const std::filesystem::path& path, const std::function<void(std::ofstream&)>& body, bool binary) {
  const std::filesystem::path tmp = fmt::format("{}.tmp-{}", path.string(), getpid());
  try {
    {
      std::ofstream out(tmp, binary ? std::ios::binary : std::ios::out);
      if (!out) throw std::runtime_error(fmt::format("cannot write {}", tmp.string()));
      body(out);
      out.flush();
      if (!out) throw std::runtime_error(fmt::format("error writing {}", tmp.string()));
    }
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace bitsim::nn
