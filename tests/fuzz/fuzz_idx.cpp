// Fuzzes the IDX reader nn::load_idx. The first byte picks what is written: bit 0 gzips the images
// file, bit 1 the labels file; the next two bytes (little endian) say how many of the remaining
// bytes go to the images file, the rest to the labels file. Rejection must be DataError (or one of
// the documented std exceptions); anything else is a finding.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bitsim/nn/data.hpp"
#include "fuzz_check.hpp"

namespace {

// Two files per process, written for every input and removed after it: libFuzzer often leaves a
// process without running destructors, and files left in /dev/shm would pile up in memory.
const std::string kImages = fuzz_scratch_path("idx-images");
const std::string kLabels = fuzz_scratch_path("idx-labels");

void remove_files() {
  std::filesystem::remove(kImages);
  std::filesystem::remove(kLabels);
}

void write(const std::string& path, std::string_view bytes, bool gzip) {
  if (!gzip) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    return;
  }
  gzFile f = gzopen(path.c_str(), "wb");
  FUZZ_CHECK(f != nullptr, "cannot write %s", path.c_str());
  if (!bytes.empty()) FUZZ_CHECK(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()), "gzwrite");
  FUZZ_CHECK(gzclose(f) == Z_OK, "gzclose");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const unsigned mode = data[0];
  const std::size_t split = std::min<std::size_t>(std::size_t(data[1]) | std::size_t(data[2]) << 8, size - 3);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 3, size - 3);
  write(kImages, rest.substr(0, split), mode & 1);
  write(kLabels, rest.substr(split), mode & 2);
  struct Cleanup {
    ~Cleanup() { remove_files(); }
  } cleanup;
  try {
    const auto d = bitsim::nn::load_idx(kImages, kLabels);
    // load_idx refuses images past 2^24 pixels, so image_size() cannot overflow.
    FUZZ_CHECK(d.height > 0 && d.width > 0 && d.height * d.width <= (std::int64_t(1) << 24), "an image of %lld x %lld loaded",
               (long long)d.height, (long long)d.width);
    FUZZ_CHECK(d.images.size() == std::size_t(d.n * d.image_size()), "images hold %zu values for n=%lld",
               d.images.size(), (long long)d.n);
    FUZZ_CHECK(d.labels.size() == std::size_t(d.n), "%zu labels for n=%lld", d.labels.size(), (long long)d.n);
    for (const float p : d.images) FUZZ_CHECK(p >= 0.0f && p <= 1.0f, "pixel %g outside [0,1]", double(p));
  } catch (const bitsim::nn::DataError&) {
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  }
  return 0;
}
