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

// Smaller is better. A metric must not decrease when any field of ArrayStats grows: the mapper
// also scores lower bounds of a candidate's counts (each field at most its final value) and
// leaves the candidate as soon as one ranks strictly after the best so far. Cycles, DRAM bytes,
// sums of counts with non-negative weights (the cost pipeline's energy) and their products
// (energy x cycles) all qualify.
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
  std::int64_t candidates = 0;  // candidate_mappings().size()
  std::int64_t ruled_out = 0;   // of them, left before they were counted in full (see best_mapping)
};

// Ranks by metric, then cycles, then DRAM bytes; the result is that of counting and scoring every
// candidate in full. The fixed mapping is counted first and in full; the others follow in the
// order of what is known of their counts before their tiles are walked, the most promising first,
// and a candidate is left as soon as (metric, cycles, DRAM bytes) of a lower bound of its counts
// rank strictly after the best so far's: it cannot win, not even a full tie. Throws what
// array_model / conv_model throw for the fixed mapping (a candidate left is not counted to the end,
// so one that would need more than 2^62 cycles on a slow channel may be left without a throw).
MappingChoice best_mapping(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape,
                           const Metric& metric = cycles_metric);
MappingChoice best_conv_mapping(const ArraySpec& spec, const OperandBits& bits, const ConvShape& shape,
                                const Metric& metric = cycles_metric);

}  // namespace bitsim::sim
