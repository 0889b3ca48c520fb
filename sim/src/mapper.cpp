// Exhaustive mapping search over the closed form (docs/sim.md, "Mapper").
#include "bitsim/sim/mapper.hpp"

#include <algorithm>
#include <set>
#include <tuple>

#include "array_model_internal.hpp"

namespace bitsim::sim {

double cycles_metric(const ArrayStats& s) { return double(s.cycles); }
double dram_bytes_metric(const ArrayStats& s) { return double(s.dram.total()); }

std::vector<Mapping> candidate_mappings(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s,
                                        const ConvShape* conv) {
  spec.validate();
  bits.validate();
  std::vector<Mapping> out{Mapping{}};
  std::set<std::pair<LoopOrder, std::int64_t>> seen;
  const Mapping fixed = resolve(Mapping{}, spec.dataflow, s);
  seen.insert({fixed.order, fixed.tile_m});
  auto add = [&](LoopOrder o, std::int64_t tile_m) {
    const Mapping m{o, tile_m};
    const Mapping r = resolve(m, spec.dataflow, s);
    if (seen.insert({r.order, r.tile_m}).second) out.push_back(r);
  };
  if (spec.dataflow == Dataflow::OutputStationary) {
    add(LoopOrder::NMK, 0);
    return out;
  }
  std::vector<std::int64_t> tiles{s.m};
  for (std::int64_t t = 8; t < s.m; t *= 2) tiles.push_back(t);
  if (conv)
    for (std::int64_t t = conv->out_width(); t < s.m; t *= 2) tiles.push_back(t);
  // The largest blocks whose partial sums fit the O buffer, C or N columns wide.
  for (const std::int64_t width : {std::min<std::int64_t>(spec.cols, s.n), s.n}) {
    const std::int64_t fit = spec.buffer_o_bytes * 8 / (width * bits.acc);
    if (fit >= 1 && fit < s.m) tiles.push_back(fit);
  }
  // M tiles that cut the GEMM into more than kMaxMapperTiles tiles are left out (but all of M never
  // is), so a search over a huge GEMM stays within seconds.
  const std::int64_t folds_kn = ((s.k + spec.rows - 1) / spec.rows) * ((s.n + spec.cols - 1) / spec.cols);
  std::erase_if(tiles, [&](std::int64_t t) { return t != s.m && (s.m + t - 1) / t * folds_kn > kMaxMapperTiles; });
  std::sort(tiles.begin(), tiles.end());
  for (LoopOrder o : {LoopOrder::NMK, LoopOrder::MNK, LoopOrder::MKN, LoopOrder::NKM, LoopOrder::KMN, LoopOrder::KNM})
    for (const std::int64_t t : tiles) add(o, t);
  return out;
}

namespace {

MappingChoice search(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const ConvShape* conv,
                     const Metric& metric) {
  MappingChoice best;
  bool first = true;
  detail::MappingCounts counts(spec, bits, s, conv);
  for (const Mapping& m : candidate_mappings(spec, bits, s, conv)) {
    const ArrayStats& st = *counts(m);
    const double score = metric(st);
    ++best.candidates;
    if (first) best.fixed_stats = st, best.fixed_score = score;
    if (first || std::make_tuple(score, st.cycles, st.dram.total()) <
                     std::make_tuple(best.score, best.stats.cycles, best.stats.dram.total())) {
      best.mapping = m, best.stats = st, best.score = score;
    }
    first = false;
  }
  return best;
}

}  // namespace

MappingChoice best_mapping(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape, const Metric& metric) {
  return search(spec, bits, shape, nullptr, metric);
}

MappingChoice best_conv_mapping(const ArraySpec& spec, const OperandBits& bits, const ConvShape& shape, const Metric& metric) {
  return search(spec, bits, shape.gemm(), &shape, metric);
}

}  // namespace bitsim::sim
