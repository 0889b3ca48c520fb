// Mapping search over the closed form, leaving candidates that cannot win (docs/sim.md, "Mapper").
#include "bitsim/sim/mapper.hpp"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "array_model_internal.hpp"

namespace bitsim::sim {

double cycles_metric(const ArrayStats& s) { return double(s.cycles); }
double dram_bytes_metric(const ArrayStats& s) { return double(s.dram.total()); }

std::vector<Mapping> candidate_mappings(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s,
                                        const ConvShape* conv) {
  spec.validate();
  bits.validate();
  if (spec.dataflow == Dataflow::InputStationary) {  // the transposed weight-stationary problem's, renamed
    std::vector<Mapping> out;
    for (const Mapping& m : candidate_mappings(detail::transposed(spec), detail::transposed(bits), detail::transposed(s), nullptr))
      out.push_back(detail::transposed(m));
    return out;
  }
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
  const std::vector<Mapping> candidates = candidate_mappings(spec, bits, s, conv);
  using Rank = std::tuple<double, std::int64_t, std::int64_t>;  // metric, cycles, DRAM bytes
  auto rank = [&](const ArrayStats& st) { return Rank{metric(st), st.cycles, st.dram.total()}; };
  detail::MappingCounts counts(spec, bits, s, conv);
  MappingChoice best;
  best.candidates = std::int64_t(candidates.size());
  best.mapping = candidates[0], best.stats = best.fixed_stats = *counts(candidates[0]);
  best.score = best.fixed_score = metric(best.stats);
  Rank best_rank = rank(best.stats);
  std::size_t best_at = 0;  // the index in candidates, which decides full ties
  // The others in the order of their known counts, so that the likely winners, counted first,
  // rule out the rest before or early in their walk; the same rank, in the order of candidates.
  std::vector<std::pair<Rank, std::size_t>> order;
  for (std::size_t i = 1; i < candidates.size(); ++i) order.emplace_back(rank(counts.known(candidates[i])), i);
  std::sort(order.begin(), order.end());
  // Counts at least `lower` rank no better than it (metric, cycles and DRAM bytes never decrease as
  // counts grow): once it ranks strictly after the best, they lose, full ties included.
  const detail::GiveUp give_up = [&](const ArrayStats& lower) { return rank(lower) > best_rank; };
  for (const auto& [known_rank, i] : order) {
    const ArrayStats* st = counts(candidates[i], give_up);
    if (!st) {
      ++best.ruled_out;
      continue;
    }
    const Rank r = rank(*st);
    if (std::tie(r, i) < std::tie(best_rank, best_at))
      best.mapping = candidates[i], best.stats = *st, best.score = std::get<0>(r), best_rank = r, best_at = i;
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
