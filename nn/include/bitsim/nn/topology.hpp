// A network described by a SCALE-Sim topology file (convolution or GEMM CSV), read as SCALE-Sim
// v2 reads it (scalesim/topology_utils.py), strictly: the format is in docs/topologies.md.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bitsim/sim/array_model.hpp"

namespace bitsim::nn {

// One line: "FILE:LINE:COLUMN: what was found and what was expected" (COLUMN counts CSV fields from 1).
struct TopologyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class TopologyKind : std::uint8_t { Conv, Gemm };

struct TopologyLayer {
  std::string name;
  int line = 0;  // in the file, from 1
  // Convolution files: IFMAP, filter, channels, filters and stride. As SCALE-Sim (topology_utils.py,
  // topo_calc_hyperparams) there is no padding and OFMAP = ceil((IFMAP - filter + stride) / stride)
  // a side: when the stride does not divide IFMAP - filter, the last window runs past the IFMAP,
  // and `conv` extends the input at the bottom and right by those rows and columns (zeros), so
  // that its floor formula gives SCALE-Sim's OFMAP.
  // A layer whose name contains "DP" is depthwise as SCALE-Sim takes it: `repeat` = Channels
  // convolutions of one input channel each, every one with all Num Filter filters.
  // GEMM files ("Layer, M, N, K"): C[M x N] = A[M x K] W[K x N], and no convolution.
  bool is_conv = false;
  bool depthwise = false;
  std::int64_t ifmap_h = 0, ifmap_w = 0;  // as the file gives them
  sim::ConvShape conv;    // batch 1, no padding, the input extended as above
  sim::GemmShape gemm;    // of one image (conv: conv.gemm())
  std::int64_t repeat = 1;
  // MACs of the layer for one image (repeat included).
  std::int64_t macs() const { return gemm.m * gemm.k * gemm.n * repeat; }
};

struct Topology {
  std::string source;  // the file
  TopologyKind kind = TopologyKind::Conv;
  std::vector<TopologyLayer> layers;
  std::int64_t macs() const;
};

// Limits: far beyond any published network, small enough that a layer's MACs at the largest
// batch fit 63 bits.
inline constexpr std::int64_t kMaxTopologyDim = std::int64_t(1) << 24;     // any one field
inline constexpr std::int64_t kMaxTopologyLayerMacs = std::int64_t(1) << 44;  // per image
inline constexpr std::int64_t kMaxTopologyBatch = std::int64_t(1) << 16;
inline constexpr std::size_t kMaxTopologyLayers = 100000;
inline constexpr std::size_t kMaxTopologyBytes = std::size_t(16) << 20;

// Parses the text of a topology file; `source` names it in errors. Throws TopologyError.
Topology parse_topology(std::string_view text, const std::string& source);
// Reads and parses `path`; throws TopologyError (also when it cannot be read).
Topology load_topology(const std::string& path);

}  // namespace bitsim::nn
