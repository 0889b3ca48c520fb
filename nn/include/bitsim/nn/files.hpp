// Files a run writes: each appears whole or not at all.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>

namespace bitsim::nn {

// Writes through a temporary file beside `path` (named for this process) and renames it into
// place, so a reader (or a resumed run) never sees a half-written file. Throws std::runtime_error
// naming the file when it cannot be written.
void write_atomic(const std::filesystem::path& path, const std::function<void(std::ofstream&)>& body, bool binary = false);

}  // namespace bitsim::nn
