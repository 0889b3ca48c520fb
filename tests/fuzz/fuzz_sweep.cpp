// Fuzzes the sweep-file loader sweep::Plan::load and, for small sweeps, Plan::validate against a
// fixed experiment file beside it ("tiny.toml"). Rejection must be SweepError; the expansion must
// keep its invariants (one point per configuration and seed, ids in order, every setting present).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "bitsim/sweep/plan.hpp"
#include "fuzz_check.hpp"

namespace {

const std::filesystem::path kDir = [] {
  const std::filesystem::path d = fuzz_scratch_path("sweep");
  std::filesystem::create_directories(d);
  std::ofstream(d / "tiny.toml") << "name = \"tiny\"\n[data]\ndataset = \"synthetic\"\nsynthetic_train = 64\n"
                                    "synthetic_test = 32\n[model]\nlayers = [ { type = \"flatten\" }, { type = \"linear\", "
                                    "out = 10 } ]\n[train]\nepochs = 1\nbatch = 32\n[hardware]\narray = \"8x8\"\n";
  return d;
}();
const std::string kPath = (kDir / "sweep.toml").string();
const bool kVerbose = std::getenv("BITSIM_FUZZ_VERBOSE") != nullptr;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(kPath, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    const bitsim::sweep::Plan p = bitsim::sweep::Plan::load(kPath);
    const std::size_t replicas = p.seeds.empty() ? 1 : p.seeds.size();
    FUZZ_CHECK(p.points.size() == p.configs * replicas, "%zu points, %zu configurations", p.points.size(), p.configs);
    std::size_t keys = 0;
    for (const auto& d : p.dims) keys += d.keys.size();
    for (std::size_t i = 0; i < p.points.size(); ++i) {
      const auto& pt = p.points[i];
      FUZZ_CHECK(pt.index == i && (i == 0 || p.points[i - 1].id < pt.id), "point %zu out of order", i);
      FUZZ_CHECK(pt.settings.size() == p.set.size() + keys + (p.seeds.empty() ? 0 : 1), "point %zu has %zu settings", i,
                 pt.settings.size());
      FUZZ_CHECK(pt.config < p.configs, "point %zu: configuration %zu", i, pt.config);
    }
    FUZZ_CHECK(p.objectives.size() >= 2, "%zu objectives", p.objectives.size());
    (void)p.to_json().dump();
    if (p.points.size() <= 16) p.validate();
  } catch (const bitsim::sweep::SweepError& e) {
    if (kVerbose) std::fprintf(stderr, "SweepError: %s\n", e.what());
  }
  return 0;
}
