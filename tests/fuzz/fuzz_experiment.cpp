// Fuzzes the TOML experiment loader nn::Experiment::load: the input up to the first NUL byte is the
// file, each NUL-separated piece after it one "key.path=value" override. Rejection must be an
// exception the loader documents; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/nn/experiment.hpp"
#include "fuzz_check.hpp"

namespace {

// One file per process, written for every input and removed after it: libFuzzer often leaves a
// process without running destructors, and files left in /dev/shm would pile up in memory.
const std::string kPath = fuzz_scratch_path("experiment.toml");

// BITSIM_FUZZ_VERBOSE=1 prints why each input was rejected, to see how deep a corpus gets.
const bool kVerbose = std::getenv("BITSIM_FUZZ_VERBOSE") != nullptr;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = in.find('\0');
  const std::string_view file = in.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = in.substr(nul + 1);
    for (;;) {
      const std::size_t next = rest.find('\0');
      overrides.emplace_back(rest.substr(0, next));
      if (next == std::string_view::npos) break;
      rest.remove_prefix(next + 1);
    }
  }
  {
    std::ofstream out(kPath, std::ios::binary | std::ios::trunc);
    out.write(file.data(), std::streamsize(file.size()));
  }
  try {
    const auto e = bitsim::nn::Experiment::load(kPath, overrides);
    // What a run does next with a loaded experiment: every layer's numerics and its JSON echo.
    for (int i = 0; i < int(e.layers.size()); ++i) (void)e.layer(i);
    (void)e.classifier_bits();
    (void)e.to_json().dump();
  } catch (const bitsim::nn::ExperimentError& e) {
    if (kVerbose) std::fprintf(stderr, "ExperimentError: %s\n", e.what());
  } catch (const bitsim::arith::FormatError& e) {
    if (kVerbose) std::fprintf(stderr, "FormatError: %s\n", e.what());
  } catch (const std::invalid_argument& e) {
    if (kVerbose) std::fprintf(stderr, "invalid_argument: %s\n", e.what());
  } catch (const std::runtime_error& e) {
    if (kVerbose) std::fprintf(stderr, "runtime_error: %s\n", e.what());
  }
  std::filesystem::remove(kPath);
  return 0;
}
