// The closed-form array model's internals (sim/src/array_model_internal.hpp) against the plain
// implementations they replaced, kept here as oracles: the LRU buffer as a std::list with a hash
// map of its ids, the rows a convolution's im2col block reads as one id per (output row, k),
// sorted. The mapper's sharing of counts between mappings against the closed form per mapping,
// its lower bounds of counts against the final counts, and its search, which rules candidates out
// on those bounds, against an exhaustive one. Plain C++, no SystemC.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <list>
#include <string>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bitsim/sim/mapper.hpp"
#include "sim/src/array_model_internal.hpp"

namespace {

using namespace bitsim::sim;

// The LRU buffer as it was first written: a hit moves the block to the front; a miss keeps the
// block, evicting from the back, unless it is larger than the buffer.
class ListLru {
 public:
  explicit ListLru(std::int64_t capacity) : cap_(capacity) {}
  bool access(std::int64_t id, std::int64_t bytes) {
    if (const auto it = where_.find(id); it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    if (bytes > cap_) return false;
    while (used_ + bytes > cap_) {
      used_ -= order_.back().second;
      where_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(id, bytes);
    where_[id] = order_.begin();
    used_ += bytes;
    return false;
  }

 private:
  std::int64_t cap_, used_ = 0;
  std::list<std::pair<std::int64_t, std::int64_t>> order_;
  std::unordered_map<std::int64_t, std::list<std::pair<std::int64_t, std::int64_t>>::iterator> where_;
};

// Random capacities (zero included) and block sizes (some larger than the buffer), accesses drawn
// from a small window that drifts so that hits, evictions and refetches all occur; one trial in five
// has room for every block at once (nothing is evicted, the hit path that leaves the list alone).
TEST(SimArrayModel, LruBufferMatchesTheListOracle) {
  std::mt19937_64 rng(7);
  auto uni = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  std::int64_t hits = 0, misses = 0, streamed = 0, roomy = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const std::int64_t ids = uni(1, 300);
    std::int64_t cap = trial % 10 == 0 ? 0 : uni(1, 400);
    std::vector<std::int64_t> bytes(std::size_t(ids), 0);
    for (auto& b : bytes) b = uni(1, 10) == 1 ? cap + uni(1, 50) : uni(1, std::max<std::int64_t>(1, cap / uni(1, 8)));
    const std::int64_t largest = *std::max_element(bytes.begin(), bytes.end());
    if (trial % 5 == 1) cap = ids * largest + uni(0, 3), ++roomy;
    detail::LruBuffer lru(cap, ids, largest);
    ListLru want(cap);
    const std::int64_t window = uni(1, ids);
    for (int i = 0; i < 3000; ++i) {
      const std::int64_t lo = std::min(ids - window, std::int64_t(i) * ids / 3000);
      const std::int64_t id = lo + uni(0, window - 1);
      const std::int64_t b = bytes[std::size_t(id)];
      const bool hit = want.access(id, b);
      ASSERT_EQ(lru.access(id, b), hit) << "trial " << trial << " access " << i << " id " << id;
      hits += hit, misses += !hit, streamed += b > cap;
    }
  }
  EXPECT_GT(hits, 100000);
  EXPECT_GT(misses, 100000);
  EXPECT_GT(streamed, 10000);
  EXPECT_EQ(roomy, 80);
}

// Input coordinate of output coordinate o at kernel offset f, or -1 in the padding.
std::int64_t input_at(const ConvShape& cv, std::int64_t o, std::int64_t f, std::int64_t size) {
  const std::int64_t x = o * cv.stride + f - cv.padding;
  return x >= 0 && x < size ? x : -1;
}

// Whether kernel offset f reads the input for some output coordinate in [o0, o1), by trying each.
bool offset_reads_input(const ConvShape& cv, std::int64_t f, std::int64_t o0, std::int64_t o1, std::int64_t size) {
  for (std::int64_t o = o0; o < o1; ++o)
    if (input_at(cv, o, f, size) >= 0) return true;
  return false;
}

// The rows as first written: for each output-row segment of the block and each k, the row of
// (c, ry) when some output column of the segment puts a real column under sx; sorted, unique.
std::vector<std::int64_t> sorted_conv_rows(const ConvShape& cv, std::int64_t m0, std::int64_t m1, std::int64_t k0,
                                           std::int64_t k1) {
  const std::int64_t OW = cv.out_width(), OH = cv.out_height();
  std::vector<std::int64_t> rows;
  for (std::int64_t m = m0; m < m1;) {
    const std::int64_t b = m / (OH * OW), oy = (m / OW) % OH, ox0 = m % OW;
    const std::int64_t ox1 = std::min(OW, ox0 + (m1 - m));
    for (std::int64_t k = k0; k < k1; ++k) {
      const std::int64_t c = k / (cv.kernel_h * cv.kernel_w), ry = (k / cv.kernel_w) % cv.kernel_h, sx = k % cv.kernel_w;
      const std::int64_t y = input_at(cv, oy, ry, cv.height);
      if (y >= 0 && offset_reads_input(cv, sx, ox0, ox1, cv.width)) rows.push_back((b * cv.in_channels + c) * cv.height + y);
    }
    m += ox1 - ox0;
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// Random shapes (batch 1-4, channels 1-8, sizes 1-20, kernels 1-5, stride 1-3, padding 0-3:
// windows wholly in the padding, strides that skip rows and columns) and random blocks, some a
// single pixel or a single k, some all of M or K, the rest tiles of the mapper's sizes.
TEST(SimArrayModel, ConvRowsMatchTheSortedOracle) {
  std::mt19937_64 rng(11);
  auto uni = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  std::int64_t blocks = 0, rows = 0, skipped_rows = 0;
  for (int shape = 0; shape < 3000; ++shape) {
    ConvShape cv{uni(1, 4), uni(1, 8), uni(1, 20), uni(1, 20), 1, uni(1, 5), uni(1, 5), uni(1, 3), uni(0, 3)};
    if (cv.height + 2 * cv.padding < cv.kernel_h || cv.width + 2 * cv.padding < cv.kernel_w) continue;
    const GemmShape g = cv.gemm();
    detail::ConvRows conv_rows(cv);
    auto check = [&](std::int64_t m0, std::int64_t m1, std::int64_t k0, std::int64_t k1) {
      const std::vector<std::int64_t> want = sorted_conv_rows(cv, m0, m1, k0, k1);
      ASSERT_EQ(conv_rows(m0, m1, k0, k1), want)
          << "batch " << cv.batch << " C " << cv.in_channels << " " << cv.height << "x" << cv.width << " kernel "
          << cv.kernel_h << "x" << cv.kernel_w << " stride " << cv.stride << " padding " << cv.padding << " m [" << m0
          << ", " << m1 << ") k [" << k0 << ", " << k1 << ")";
      ++blocks, rows += std::int64_t(want.size());
    };
    for (int i = 0; i < 40; ++i) {
      const std::int64_t m0 = uni(0, g.m - 1), k0 = uni(0, g.k - 1);
      const std::int64_t m1 = i % 4 == 0 ? m0 + 1 : uni(m0 + 1, g.m), k1 = i % 4 == 1 ? k0 + 1 : uni(k0 + 1, g.k);
      check(m0, m1, k0, k1);
      check(0, g.m, k0, k1);
      check(m0, m1, 0, g.k);
      const std::int64_t mt = uni(1, g.m), r = uni(1, g.k), mb = uni(0, (g.m - 1) / mt), kt = uni(0, (g.k - 1) / r);
      check(mb * mt, std::min(g.m, (mb + 1) * mt), kt * r, std::min(g.k, (kt + 1) * r));
    }
    if (cv.stride > cv.kernel_h)
      skipped_rows += cv.batch * cv.in_channels * cv.height - std::int64_t(sorted_conv_rows(cv, 0, g.m, 0, g.k).size());
  }
  std::printf("%lld blocks, %lld rows\n", (long long)blocks, (long long)rows);
  EXPECT_GT(blocks, 300000);
  EXPECT_GT(skipped_rows, 0);
}

// Every count of the closed form (toggles are zero there).
std::string differences(const ArrayStats& a, const ArrayStats& b) {
  std::string out;
  auto same = [&](const char* what, std::int64_t x, std::int64_t y) {
    if (x != y) out += std::string(what) + " " + std::to_string(x) + " != " + std::to_string(y) + "; ";
  };
  same("cycles", a.cycles, b.cycles), same("compute", a.compute_cycles, b.compute_cycles);
  same("stalls", a.stall_cycles, b.stall_cycles), same("tiles", a.tiles, b.tiles), same("macs", a.macs, b.macs);
  same("pes", a.pes, b.pes);
  same("A reads", a.buf_a.reads, b.buf_a.reads), same("A writes", a.buf_a.writes, b.buf_a.writes);
  same("W reads", a.buf_w.reads, b.buf_w.reads), same("W writes", a.buf_w.writes, b.buf_w.writes);
  same("O reads", a.buf_o.reads, b.buf_o.reads), same("O writes", a.buf_o.writes, b.buf_o.writes);
  same("DRAM A", a.dram.read_a, b.dram.read_a), same("DRAM W", a.dram.read_w, b.dram.read_w);
  same("DRAM psum", a.dram.read_psum, b.dram.read_psum), same("DRAM C", a.dram.write_c, b.dram.write_c);
  return out;
}

TEST(SimArrayModel, TileOrderLeavesOutLoopsOfOneFold) {
  ArraySpec spec;
  spec.rows = spec.cols = 4;
  const GemmShape g{40, 30, 20};  // 8 k-folds, 5 n-folds
  EXPECT_EQ(detail::tile_order(spec, g, {}), "nk");  // all of M: one m-block
  EXPECT_EQ(detail::tile_order(spec, g, {LoopOrder::KMN, 8}), "kmn");
  EXPECT_EQ(detail::tile_order(spec, {40, 4, 4}, {LoopOrder::KMN, 8}), "m");
  EXPECT_EQ(detail::tile_order(spec, {1, 1, 1}, {LoopOrder::KMN, 8}), "");
  spec.dataflow = Dataflow::InputStationary;  // the loops of C^T = W^T A^T, named in C's letters
  EXPECT_EQ(detail::tile_order(spec, g, {}), "mk");  // all of N streamed: 10 m-folds, 8 k-folds
  EXPECT_EQ(detail::tile_order(spec, g, {LoopOrder::KNM, 8}), "knm");
  spec.dataflow = Dataflow::OutputStationary;
  EXPECT_EQ(detail::tile_order(spec, g, {LoopOrder::NMK, 0}), "nm");  // os tiles span K
  EXPECT_THROW(detail::tile_order(spec, {0, 1, 1}, {}), std::invalid_argument);
}

// Mappings that differ only in where loops of one fold stand share their counts: on random GEMMs
// and convolutions, small buffers (partial sums spill for some orders and not others) and a slow
// channel, every order and M tile counted through MappingCounts equals the closed form run alone.
TEST(SimArrayModel, SharedCountsEqualTheClosedFormPerMapping) {
  std::mt19937_64 rng(13);
  auto uni = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  std::int64_t compared = 0, spilled = 0;
  for (int trial = 0; trial < 300; ++trial) {
    ArraySpec spec;
    spec.rows = int(uni(1, 6)), spec.cols = int(uni(1, 6));
    spec.dataflow = trial % 3 == 0   ? Dataflow::OutputStationary
                    : trial % 3 == 1 ? Dataflow::WeightStationary
                                     : Dataflow::InputStationary;
    spec.buffer_a_bytes = uni(0, 600), spec.buffer_w_bytes = uni(0, 600), spec.buffer_o_bytes = uni(0, 600);
    spec.dram_bytes_per_cycle = trial % 2 ? 0.0 : 0.7 * double(uni(1, 5));
    spec.overlap = trial % 5 < 2;
    const OperandBits bits{int(uni(1, 16)), int(uni(1, 16)), int(uni(8, 32)), trial % 4 == 1 ? int(uni(1, 8)) : 0};
    ConvShape cv{uni(1, 3), uni(1, 4), uni(1, 12), uni(1, 12), uni(1, 12), uni(1, 4), uni(1, 4), uni(1, 3), uni(0, 2)};
    const bool conv = trial % 2 == 0 && cv.height + 2 * cv.padding >= cv.kernel_h && cv.width + 2 * cv.padding >= cv.kernel_w;
    const GemmShape g = conv ? cv.gemm() : GemmShape{uni(1, 40), uni(1, 40), uni(1, 40)};
    detail::MappingCounts counts(spec, bits, g, conv ? &cv : nullptr);
    std::vector<Mapping> mappings = candidate_mappings(spec, bits, g, conv ? &cv : nullptr);
    if (spec.dataflow != Dataflow::OutputStationary) {
      const std::int64_t streamed = spec.dataflow == Dataflow::WeightStationary ? g.m : g.n;  // the tile's dimension
      for (const LoopOrder o : {LoopOrder::Fixed, LoopOrder::MNK, LoopOrder::MKN, LoopOrder::NMK, LoopOrder::NKM,
                                LoopOrder::KMN, LoopOrder::KNM})
        for (const std::int64_t t : {std::int64_t(0), std::int64_t(1), uni(1, streamed), streamed})
          mappings.push_back({o, t});
    }
    for (const Mapping& m : mappings) {
      const ArrayStats want = conv ? conv_model(spec, bits, cv, m) : array_model(spec, bits, g, m);
      ASSERT_EQ(differences(*counts(m), want), "") << "trial " << trial << " " << m.to_string();
      ++compared, spilled += want.dram.read_psum > 0;
    }
  }
  EXPECT_GT(compared, 5000);
  EXPECT_GT(spilled, 500);
}

// A random GEMM or convolution on a random array: both dataflows, buffers from none to room for
// everything, unlimited and slow DRAM, operand and accumulator widths that pack unevenly. One in
// four is tiny, with whole bytes: there different mappings often end in full ties.
struct Case {
  ArraySpec spec;
  OperandBits bits;
  bool conv = false;
  ConvShape cv;
  GemmShape g;
};

Case random_case(std::mt19937_64& rng, int trial, std::int64_t max_size) {
  auto uni = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  Case c;
  c.spec.rows = int(uni(1, 6)), c.spec.cols = int(uni(1, 6));
  c.spec.dataflow = trial % 5 == 0   ? Dataflow::OutputStationary
                    : trial % 5 == 1 ? Dataflow::InputStationary
                                     : Dataflow::WeightStationary;
  const std::int64_t most = trial % 4 == 0 ? std::int64_t(1) << 20 : 600;
  c.spec.buffer_a_bytes = uni(0, most), c.spec.buffer_w_bytes = uni(0, most), c.spec.buffer_o_bytes = uni(0, most);
  c.spec.dram_bytes_per_cycle = trial % 2 ? 0.0 : 0.7 * double(uni(1, 5));
  c.bits = {int(uni(1, 16)), int(uni(1, 16)), int(uni(8, 32))};
  c.cv = {uni(1, 3), uni(1, 4), uni(1, 12), uni(1, 12), uni(1, 12), uni(1, 4), uni(1, 4), uni(1, 3), uni(0, 2)};
  c.conv = trial % 3 != 2 && c.cv.height + 2 * c.cv.padding >= c.cv.kernel_h && c.cv.width + 2 * c.cv.padding >= c.cv.kernel_w;
  c.g = c.conv ? c.cv.gemm() : GemmShape{uni(1, max_size), uni(1, max_size), uni(1, max_size)};
  if (trial % 4 == 3) {
    c.spec.rows = int(uni(1, 4)), c.spec.cols = int(uni(1, 4));
    c.spec.buffer_a_bytes = uni(0, 64), c.spec.buffer_w_bytes = uni(0, 64), c.spec.buffer_o_bytes = uni(0, 64);
    c.spec.dram_bytes_per_cycle = double(uni(1, 4));
    c.bits = {8, 8, 8 * int(uni(1, 4))};
    c.conv = false, c.g = {uni(1, 24), uni(1, 12), uni(1, 12)};
  }
  c.spec.overlap = uni(0, 1) == 1;
  return c;
}

// The lower bounds the closed form hands to give_up never exceed the final counts, field by field,
// and are exact where it says so; a give_up that never holds leaves the counts those of the closed
// form.
TEST(SimArrayModel, LowerBoundsNeverExceedTheFinalCounts) {
  std::mt19937_64 rng(17);
  std::int64_t mappings = 0, during_walk = 0, exact_cycles = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const Case c = random_case(rng, trial, trial % 10 == 0 ? 400 : 40);
    const ConvShape* cv = c.conv ? &c.cv : nullptr;
    for (const Mapping& m : candidate_mappings(c.spec, c.bits, c.g, cv)) {
      std::vector<ArrayStats> bounds;
      detail::MappingCounts counts(c.spec, c.bits, c.g, cv);
      const ArrayStats* got = counts(m, [&](const ArrayStats& lower) { return bounds.push_back(lower), false; });
      const ArrayStats want = c.conv ? conv_model(c.spec, c.bits, c.cv, m) : array_model(c.spec, c.bits, c.g, m);
      ASSERT_NE(got, nullptr);
      ASSERT_EQ(differences(*got, want), "") << "trial " << trial << " " << m.to_string();
      ASSERT_GE(bounds.size(), 2u);  // before the walk and after the last tile
      for (const ArrayStats& b : bounds) {
        std::vector<std::pair<std::int64_t, std::int64_t>> fields = {
            {b.cycles, want.cycles}, {b.compute_cycles, want.compute_cycles}, {b.stall_cycles, want.stall_cycles},
            {b.tiles, want.tiles}, {b.macs, want.macs}, {b.pes, want.pes},
            {b.buf_a.reads, want.buf_a.reads}, {b.buf_a.writes, want.buf_a.writes},
            {b.buf_w.reads, want.buf_w.reads}, {b.buf_w.writes, want.buf_w.writes},
            {b.buf_o.reads, want.buf_o.reads}, {b.buf_o.writes, want.buf_o.writes},
            {b.dram.read_a, want.dram.read_a}, {b.dram.read_w, want.dram.read_w},
            {b.dram.read_psum, want.dram.read_psum}, {b.dram.write_c, want.dram.write_c}};
        for (std::size_t f = 0; f < fields.size(); ++f)
          ASSERT_LE(fields[f].first, fields[f].second) << "trial " << trial << " " << m.to_string() << " field " << f;
      }
      // Before the walk all but the stalls and the operand fetches of blocks fetched before are
      // known; after it, all but the stalls. Overlapped tiles that stall for DRAM overlap less, so
      // their compute cycles are known only as those without stalls.
      const bool stretched = c.spec.overlap && c.spec.dram_bytes_per_cycle > 0;
      const ArrayStats& k = bounds.front();
      ASSERT_EQ(differences(k, counts.known(m)), "") << "trial " << trial << " " << m.to_string();
      ArrayStats exact = want;
      exact.cycles = k.cycles, exact.stall_cycles = k.stall_cycles, exact.buf_a.writes = k.buf_a.writes;
      exact.buf_w.writes = k.buf_w.writes, exact.dram.read_a = k.dram.read_a, exact.dram.read_w = k.dram.read_w;
      if (stretched) exact.compute_cycles = k.compute_cycles;
      ASSERT_EQ(differences(k, exact), "") << "trial " << trial << " " << m.to_string();
      exact = want;
      exact.cycles = bounds.back().cycles, exact.stall_cycles = bounds.back().stall_cycles;
      if (stretched) exact.compute_cycles = bounds.back().compute_cycles;
      ASSERT_EQ(differences(bounds.back(), exact), "") << "trial " << trial << " " << m.to_string();
      // Without a channel limit the cycles are the compute cycles, known in full.
      if (c.spec.dram_bytes_per_cycle == 0) {
        ASSERT_EQ(k.cycles, want.cycles) << "trial " << trial << " " << m.to_string();
      }
      exact_cycles += k.cycles == want.cycles;
      ++mappings, during_walk += std::int64_t(bounds.size()) - 2;
    }
  }
  std::printf("%lld mappings, %lld bounds during the walk, %lld with the cycles known before it\n", (long long)mappings,
              (long long)during_walk, (long long)exact_cycles);
  EXPECT_GT(mappings, 3000);
  EXPECT_GT(during_walk, 1000);
}

// The mapper's choice, with candidates left on lower bounds of their counts, is that of scoring
// every candidate in full in order and keeping the least (metric, cycles, DRAM bytes), the earliest
// of full ties: the same mapping, counts and score, and the same fixed mapping's counts, for the
// metrics the cost pipeline ranks by (cycles, DRAM bytes, a positive linear energy of the counts,
// energy x cycles).
TEST(SimMapper, PrunedSearchEqualsTheExhaustiveOne) {
  std::mt19937_64 rng(19);
  const Metric energy = [](const ArrayStats& s) {
    return 0.5 * double(s.macs) + 1.0 * double(s.buf_a.reads + s.buf_a.writes + s.buf_w.reads + s.buf_w.writes) +
           2.0 * double(s.buf_o.reads + s.buf_o.writes) + 20.0 * double(s.dram.total());
  };
  const Metric edp = [&](const ArrayStats& s) { return energy(s) * double(s.cycles); };
  const std::vector<std::pair<const char*, Metric>> metrics = {
      {"cycles", cycles_metric}, {"dram", dram_bytes_metric}, {"energy", energy}, {"edp", edp}};
  std::int64_t searches = 0, candidates = 0, ruled_out = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const Case c = random_case(rng, trial, 40);
    const ConvShape* cv = c.conv ? &c.cv : nullptr;
    const std::vector<Mapping> all = candidate_mappings(c.spec, c.bits, c.g, cv);
    std::vector<ArrayStats> stats;
    for (const Mapping& m : all)
      stats.push_back(c.conv ? conv_model(c.spec, c.bits, c.cv, m) : array_model(c.spec, c.bits, c.g, m));
    for (const auto& [name, metric] : metrics) {
      auto rank = [&](std::size_t i) { return std::make_tuple(metric(stats[i]), stats[i].cycles, stats[i].dram.total()); };
      std::size_t best = 0;
      for (std::size_t i = 1; i < all.size(); ++i)
        if (rank(i) < rank(best)) best = i;
      const MappingChoice got = c.conv ? best_conv_mapping(c.spec, c.bits, c.cv, metric) : best_mapping(c.spec, c.bits, c.g, metric);
      const std::string where = "trial " + std::to_string(trial) + " metric " + name;
      ASSERT_EQ(got.mapping, all[best]) << where << ": " << got.mapping.to_string() << " != " << all[best].to_string();
      ASSERT_EQ(differences(got.stats, stats[best]), "") << where;
      ASSERT_EQ(got.score, metric(stats[best])) << where;
      ASSERT_EQ(differences(got.fixed_stats, stats[0]), "") << where;
      ASSERT_EQ(got.fixed_score, metric(stats[0])) << where;
      ASSERT_EQ(got.candidates, std::int64_t(all.size())) << where;
      ++searches, candidates += got.candidates, ruled_out += got.ruled_out;
    }
  }
  std::printf("%lld searches, %lld candidates, %lld ruled out\n", (long long)searches, (long long)candidates,
              (long long)ruled_out);
  EXPECT_GT(ruled_out, candidates / 2);
}

// A full tie won by a candidate counted after its equal: 24x2x1 on a 1x3 array, 4 DRAM bytes per
// cycle, 24-bit sums. M tiles 8 (candidate 1) and 9 (candidate 2) both cut M into three m-blocks
// (60 compute cycles), keep their sums on chip and fetch everything once (122 bytes), and both end
// at cycle 69. Known before the walk, tile 8 needs 3 cycles for its first fetch (9 bytes) and 6 for
// its last write (24 bytes): 69; tile 9 only 5 for its last write (6 rows, 18 bytes): 68, so tile
// 9 is counted first. Tile 8's lower bound then equals the best, and only counting it (leaving a
// candidate on a bound strictly after the best, not at it) gives the earliest of the tie.
TEST(SimMapper, FullTiesGoToTheEarliestCandidate) {
  ArraySpec spec;
  spec.rows = 1, spec.cols = 3;
  spec.buffer_a_bytes = 63, spec.buffer_w_bytes = 23, spec.buffer_o_bytes = 29;
  spec.dram_bytes_per_cycle = 4;
  const OperandBits bits{8, 8, 24};
  const GemmShape g{24, 2, 1};
  const std::vector<Mapping> all = candidate_mappings(spec, bits, g);
  ASSERT_GE(all.size(), 3u);
  ASSERT_EQ(all[1], (Mapping{LoopOrder::NMK, 8}));
  ASSERT_EQ(all[2], (Mapping{LoopOrder::NMK, 9}));
  detail::MappingCounts counts(spec, bits, g, nullptr);
  EXPECT_EQ(counts.known(all[1]).cycles, 69);
  EXPECT_EQ(counts.known(all[2]).cycles, 68);
  for (const Mapping& m : {all[1], all[2]}) {
    const ArrayStats s = array_model(spec, bits, g, m);
    EXPECT_EQ(s.cycles, 69);
    EXPECT_EQ(s.dram.total(), 122);
  }
  for (const Metric& metric : {Metric(cycles_metric), Metric(dram_bytes_metric)})
    EXPECT_EQ(best_mapping(spec, bits, g, metric).mapping, all[1]);
}

// Overlapped tiles change when tiles run, nothing else: on random GEMMs and convolutions every
// buffer access and DRAM byte equals the serialized schedule's; without a channel limit they
// never take longer (docs/sim.md: each overlapped start is at most the serialized one), and a
// single tile takes exactly as long.
TEST(SimArrayModel, OverlapChangesOnlyTheCyclesAndNeverAddsAny) {
  std::mt19937_64 rng(23);
  std::int64_t compared = 0, faster = 0, single = 0;
  for (int trial = 0; trial < 600; ++trial) {
    Case c = random_case(rng, trial, trial % 10 == 0 ? 400 : 40);
    const ConvShape* cv = c.conv ? &c.cv : nullptr;
    for (const Mapping& m : candidate_mappings(c.spec, c.bits, c.g, cv)) {
      c.spec.overlap = false;
      const ArrayStats serial = c.conv ? conv_model(c.spec, c.bits, c.cv, m) : array_model(c.spec, c.bits, c.g, m);
      c.spec.overlap = true;
      const ArrayStats over = c.conv ? conv_model(c.spec, c.bits, c.cv, m) : array_model(c.spec, c.bits, c.g, m);
      ArrayStats same = over;
      same.cycles = serial.cycles, same.compute_cycles = serial.compute_cycles, same.stall_cycles = serial.stall_cycles;
      const std::string where = "trial " + std::to_string(trial) + " " + m.to_string();
      ASSERT_EQ(differences(same, serial), "") << where;
      if (c.spec.dram_bytes_per_cycle == 0) {
        ASSERT_LE(over.cycles, serial.cycles) << where;
        ASSERT_EQ(over.cycles, over.compute_cycles) << where;
        ASSERT_EQ(over.compute_cycles, compute_cycles(c.spec, c.g, m)) << where;
      }
      if (over.tiles == 1) {
        ASSERT_EQ(over.cycles, serial.cycles) << where;
        ++single;
      }
      ++compared, faster += over.cycles < serial.cycles;
    }
  }
  std::printf("%lld mappings, %lld faster overlapped, %lld of one tile\n", (long long)compared, (long long)faster, (long long)single);
  EXPECT_GT(compared, 3000);
  EXPECT_GT(faster, compared / 2);
  EXPECT_GT(single, 50);
}

}  // namespace
