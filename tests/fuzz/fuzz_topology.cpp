// Fuzzes nn::parse_topology, the reader of SCALE-Sim topology files (`bitsim cost network`), and
// the records topology_records builds from what it accepts. Rejection must be one line of
// TopologyError; an accepted file has layers whose shapes agree with SCALE-Sim's formula, within
// the documented limits, and records with the shapes the cost pipeline will be given.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "bitsim/nn/cost.hpp"
#include "bitsim/nn/topology.hpp"
#include "fuzz_check.hpp"

using namespace bitsim::nn;

namespace {
const bool kVerbose = std::getenv("BITSIM_FUZZ_VERBOSE") != nullptr;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Topology t;
  try {
    t = parse_topology(text, "fuzz.csv");
  } catch (const TopologyError& e) {
    const std::string what = e.what();
    FUZZ_CHECK(what.find('\n') == std::string::npos, "a multi-line error: %s", what.c_str());
    FUZZ_CHECK(what.rfind("fuzz.csv:", 0) == 0, "an error not naming the file: %s", what.c_str());
    if (kVerbose) std::fprintf(stderr, "TopologyError: %s\n", what.c_str());
    return 0;
  }
  FUZZ_CHECK(!t.layers.empty(), "accepted with no layers");
  std::int64_t sum = 0;
  for (const TopologyLayer& l : t.layers) {
    FUZZ_CHECK(!l.name.empty() && l.line >= 2, "layer without a name or line");
    FUZZ_CHECK(l.gemm.m >= 1 && l.gemm.k >= 1 && l.gemm.n >= 1 && l.repeat >= 1, "an empty layer %s", l.name.c_str());
    FUZZ_CHECK(l.macs() <= kMaxTopologyLayerMacs, "layer %s over the MAC limit", l.name.c_str());
    FUZZ_CHECK(l.is_conv == (t.kind == TopologyKind::Conv), "a layer of the wrong kind");
    if (l.is_conv) {
      const bitsim::sim::ConvShape& c = l.conv;
      const bitsim::sim::GemmShape g = c.gemm();
      FUZZ_CHECK(g.m == l.gemm.m && g.k == l.gemm.k && g.n == l.gemm.n, "conv %s lowers to another GEMM", l.name.c_str());
      // SCALE-Sim: ceil((IFMAP - filter + stride) / stride) output pixels a side.
      FUZZ_CHECK(c.out_height() == (l.ifmap_h - c.kernel_h + c.stride + c.stride - 1) / c.stride &&
                     c.out_width() == (l.ifmap_w - c.kernel_w + c.stride + c.stride - 1) / c.stride,
                 "OFMAP of %s", l.name.c_str());
      FUZZ_CHECK(l.depthwise == (l.name.find("DP") != std::string::npos), "depthwise flag of %s", l.name.c_str());
    }
    sum += l.macs();
  }
  FUZZ_CHECK(sum == t.macs(), "total MACs");
  Experiment x;
  x.numerics.weights.format = x.numerics.activations.format = "int<8>";
  x.numerics.accumulator.format = "int<32>";
  const Experiment y = topology_experiment(x, t);
  const auto records = topology_records(y, t, 3);
  FUZZ_CHECK(records.size() == t.layers.size(), "one record per layer");
  for (std::size_t i = 0; i < records.size(); ++i) {
    FUZZ_CHECK(records[i].m == 3 * t.layers[i].gemm.m && records[i].k == t.layers[i].gemm.k, "record %zu shape", i);
    FUZZ_CHECK(records[i].conv.has_value() == t.layers[i].is_conv, "record %zu conv", i);
  }
  return 0;
}
