// The mapper: for one GEMM or convolution on the array, the mapping (loop order, M tile) that
// minimises a metric of the closed form's counts, found by trying every candidate (plain C++).
// The metric is a callback, so the cost pipeline can rank mappings by energy without sim knowing
// of energy tables.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "bitsim/sim/array_model.hpp"

namespace bitsim::sim {

using Metric = std::function<double(const ArrayStats&)>;
inline constexpr std::int64_t kMaxMapperTiles = std::int64_t(1) << 18;
double cycles_metric(const ArrayStats& s);      // s.cycles
double dram_bytes_metric(const ArrayStats& s);  // s.dram.total()

// The mappings the mapper tries, the fixed one first, no two alike once resolved.
//   ws: the six loop orders x M tiles of all of M, powers of two from 8 below M, whole output
//       rows (OW 2^j, convolutions), and the largest blocks whose partial sums fit the O buffer
//       one n-fold wide (Mt C) or all n-folds wide (Mt N); an M tile giving more than
//       kMaxMapperTiles tiles is left out;
//   os: m-folds outside n-folds (fixed) or inside.
std::vector<Mapping> candidate_mappings(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape,
                                        const ConvShape* conv = nullptr);

struct MappingChoice {
  Mapping mapping;          // the best candidate (of full ties the earliest, so the fixed one)
  ArrayStats stats;         // its counts
  double score = 0;         // metric(stats)
  ArrayStats fixed_stats;   // the fixed mapping's counts, for comparison
  double fixed_score = 0;
  std::int64_t candidates = 0;
};

// Ranks by metric, then cycles, then DRAM bytes. Throws what array_model / conv_model throw.
MappingChoice best_mapping(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape,
                           const Metric& metric = cycles_metric);
MappingChoice best_conv_mapping(const ArraySpec& spec, const OperandBits& bits, const ConvShape& shape,
                                const Metric& metric = cycles_metric);

}  // namespace bitsim::sim
