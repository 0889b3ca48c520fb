// SystemC models against arith, bit for bit, under random valid/ready stalls, and their cycle
// counts against the closed-form latencies of docs/sim.md. One simulation per forked child.
#include <gtest/gtest.h>

#include <gemmlowp/fixedpoint/fixedpoint.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/arith/ops.hpp"
#include "bitsim/sim/accumulator.hpp"
#include "bitsim/sim/lfsr.hpp"
#include "bitsim/sim/mac_unit.hpp"
#include "bitsim/sim/multiplier.hpp"
#include "bitsim/sim/sr_unit.hpp"
#include "bitsim/sim/xnor_unit.hpp"
#include "independent.hpp"
#include "tb.hpp"


namespace {

using namespace bitsim;
using namespace bitsim::sim;
using namespace bitsim::sim::test;
using arith::Format;
using arith::Overflow;
using arith::Rounding;
using arith::RoundSpec;

std::string hex(u128 v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "0x%016llx%016llx", static_cast<unsigned long long>(v >> 64),
                static_cast<unsigned long long>(v));
  return buf;
}

// Counts mismatches and prints the first few to stderr (the parent test shows the child's stderr).
struct Checker {
  int failures = 0;
  long checked = 0;  // outputs compared with an independent reference
  void fail(const std::string& what) {
    if (++failures <= 10) std::fprintf(stderr, "MISMATCH %s\n", what.c_str());
    if (failures == 1) std::fprintf(stderr, "(simulated to %s)\n", sc_core::sc_time_stamp().to_string().c_str());
  }
  void expect(bool ok, const std::string& what) {
    if (!ok) fail(what);
  }
};

// Reset for two edges, then run until the sink has everything (it calls sc_stop) or max_edges.
void run_sim(sc_core::sc_signal<bool>& rst, long max_edges) {
  sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);  // "stopped by user"
  rst.write(true);
  sc_core::sc_start(sc_core::sc_time(20, sc_core::SC_NS));
  rst.write(false);
  sc_core::sc_start(sc_core::sc_time(10.0 * double(max_edges), sc_core::SC_NS));
}

// Runs `body` in a forked child (SystemC elaborates once per process) and expects exit code 0.
#define EXPECT_SIM_PASSES(body)                                                  \
  EXPECT_EXIT({ std::exit((body) == 0 ? 0 : 1); }, ::testing::ExitedWithCode(0), "")

constexpr double kStall = 0.3;

// Set by the harness self-test: the references are corrupted, so every check must fail.
bool g_sabotage = false;

// ---------------------------------------------------------------------------------------------
// Multiplier

int multiplier_run(const Format& fa, const Format& fb, int stages, double stall, int n_random, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Item> items;
  for (u128 a : corner_codes(fa))
    for (u128 b : corner_codes(fb)) items.push_back({{a, b}, bool(rng() & 1)});
  for (int i = 0; i < n_random; ++i) items.push_back({{random_code(fa, rng), random_code(fb, rng)}, bool(rng() & 1)});
  const std::size_t n = items.size();

  sc_core::sc_clock clk("clk", 10, sc_core::SC_NS);
  sc_core::sc_signal<bool> rst("rst"), iv("iv"), ir("ir"), il("il"), ov("ov"), ordy("ordy"), ol("ol");
  sc_core::sc_signal<Code> ia("ia"), ib("ib"), oc("oc");
  sc_core::sc_signal<unsigned> os("os");
  Source src("src", items, 2, stall, seed);
  Multiplier dut("dut", fa, fb, stages);
  Sink sink("sink", n, stall, seed + 1);
  src.clk(clk), src.rst(rst), src.valid(iv), src.ready(ir), src.data[0](ia), src.data[1](ib), src.last(il);
  dut.clk(clk), dut.rst(rst), dut.in_valid(iv), dut.in_ready(ir), dut.in_a(ia), dut.in_b(ib), dut.in_last(il);
  dut.out_valid(ov), dut.out_ready(ordy), dut.out_code(oc), dut.out_status(os), dut.out_last(ol);
  sink.clk(clk), sink.rst(rst), sink.valid(ov), sink.ready(ordy), sink.code(oc), sink.status(os), sink.last(ol);
  run_sim(rst, 100 * long(n) + 100);

  Checker c;
  if (sink.got.size() != n) {
    c.fail("got " + std::to_string(sink.got.size()) + " of " + std::to_string(n));
    return c.failures;
  }
  const Format pf = arith::product_format(fa, fb);
  RoundSpec exact;
  exact.overflow = arith::default_overflow(pf);
  for (std::size_t i = 0; i < n; ++i) {
    const u128 a = items[i].data[0], b = items[i].data[1];
    arith::Quantized ref;
    if (fa == fb) {
      ref = arith::mul(fa, a, b, pf, exact);
    } else {
      const arith::Exact x = arith::decode(fa, a), y = arith::decode(fb, b);
      const arith::Exact p = arith::exact_mul(x, y);
      ref = arith::quantize(pf, p, exact);
      if (p.is_nan() && !x.is_nan() && !y.is_nan()) ref.status |= arith::kInvalid;
    }
    if (g_sabotage) ref.code ^= 1;
    const auto& g = sink.got[i];
    const std::string id = fa.spec() + " x " + fb.spec() + " a=" + hex(a) + " b=" + hex(b);
    c.expect(g.code == ref.code && g.status == ref.status,
             id + " got " + hex(g.code) + "/" + std::to_string(g.status) + " want " + hex(ref.code) + "/" +
                 std::to_string(ref.status));
    // Independent of arith: fixed-point products are exact integer products, which never raise a
    // flag; float products come from the Boost-rational model (code and flags) and, as values, from
    // the CPU's own multiplication, exact in double for every pair of formats tested here.
    if (!fa.is_float()) {
      if (fa.wl > 64 || fb.wl > 64) throw std::logic_error("integer reference needs operands of <= 64 bits");
      const u128 want = (u128(indep::fixed_int(fa, a) * indep::fixed_int(fb, b)) ^ u128(g_sabotage)) & pf.code_mask();
      c.expect(g.code == want && g.status == 0, id + " integer product " + hex(want) + " got " + hex(g.code) + "/" +
                                                   std::to_string(g.status));
    } else {
      if (fa.man_bits + fb.man_bits + 2 > 53) throw std::logic_error("native reference needs products exact in double");
      const indep::ref::RefValue x = indep::ref::ref_decode(fa, a), y = indep::ref::ref_decode(fb, b);
      indep::Result want = indep::from_ref(indep::ref::ref_mul_values(pf, x, y, exact, 0));
      if (g_sabotage) want.code ^= 1;
      c.expect(g.code == want.code && g.status == want.status,
               id + " Boost model " + hex(want.code) + "/" + std::to_string(want.status) + " got " + hex(g.code) + "/" +
                   std::to_string(g.status));
      const double native = indep::to_double(x) * indep::to_double(y);
      const double got_value = indep::to_double(indep::ref::ref_decode(pf, g.code));
      c.expect(std::isnan(native) ? std::isnan(got_value)
                                  : got_value == native && std::signbit(got_value) == std::signbit(native),
               id + " native product " + std::to_string(native) + " got " + std::to_string(got_value));
    }
    ++c.checked;
    c.expect(g.last == items[i].last, id + " last flag");
    const long lat = g.edge - src.transfer_edge[i];
    c.expect(stall == 0 ? lat == stages : lat >= stages, id + " latency " + std::to_string(lat));
  }
  c.expect(c.checked == long(n), "compared " + std::to_string(c.checked) + " of " + std::to_string(n));
  // A sink that never stalls sees one result per edge: n inputs take n + stages edges.
  if (stall == 0)
    c.expect(sink.got.back().edge - src.transfer_edge.front() + 1 == long(n) + stages, "throughput");
  return c.failures;
}

TEST(SimMultiplier, FixedMatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("fixed<8,3>"), Format::parse("fixed<6,-2>"), 1, kStall, 2000, 1));
}
TEST(SimMultiplier, MixedSignednessMatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("ufixed<8,0>"), Format::parse("fixed<8,4>"), 3, kStall, 2000, 2));
}
TEST(SimMultiplier, Wide64x64MatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("int<64>"), Format::parse("int<64>"), 2, kStall, 2000, 3));
}
TEST(SimMultiplier, Fp8MatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("float<4,3,fn>"), Format::parse("float<5,2>"), 2, kStall, 2000, 4));
}
TEST(SimMultiplier, Fp16Bf16MatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("fp16"), Format::parse("bf16"), 4, kStall, 2000, 5));
}
TEST(SimMultiplier, Fp16SquaredMatchesArith) {
  EXPECT_SIM_PASSES(multiplier_run(Format::parse("fp16"), Format::parse("fp16"), 1, kStall, 2000, 6));
}
TEST(SimMultiplier, LatencyIsStagesWithoutStalls) {
  for (int stages : {1, 2, 5})
    EXPECT_SIM_PASSES(multiplier_run(Format::parse("fixed<8,0>"), Format::parse("fixed<8,0>"), stages, 0.0, 300, 7));
}

// Bit-level ripple-carry array multiplier: sums each partial-product row into the running sum with
// the cells the column needs (no cell where a bit is known to be zero), counting them and checking
// the product, so the closed-form counts are held to a structure that really multiplies.
MultiplierCells simulate_array(int n, int m, std::uint64_t a, std::uint64_t b, std::uint64_t& product) {
  MultiplierCells c;
  c.partial_products = m;
  c.and_gates = n * m;
  // Running sum bits with a "known zero" flag, indexed by weight.
  std::vector<int> bit(std::size_t(n + m), 0);
  std::vector<bool> live(std::size_t(n + m), false);
  for (int i = 0; i < n; ++i) bit[i] = int((a >> i) & (b & 1)), live[i] = true;
  for (int j = 1; j < m; ++j) {
    int carry = 0;
    bool carry_live = false;
    for (int i = 0; i < n; ++i) {
      const int w = i + j;
      const int pp = int((a >> i) & (b >> j) & 1);
      const int inputs = 1 + int(live[w]) + int(carry_live);
      const int s = pp + bit[w] + carry;
      if (inputs == 3) ++c.full_adders;
      if (inputs == 2) ++c.half_adders;
      bit[w] = s & 1;
      live[w] = true;
      carry = s >> 1;
      carry_live = inputs >= 2;
    }
    bit[std::size_t(n + j)] = carry;
    live[std::size_t(n + j)] = carry_live;
  }
  product = 0;
  for (int w = 0; w < n + m; ++w) product |= std::uint64_t(bit[w]) << w;
  return c;
}

TEST(SimMultiplier, ArrayCellCountsMatchBitLevelArray) {
  for (int n = 1; n <= 6; ++n)
    for (int m = 1; m <= 6; ++m) {
      const MultiplierCells f = array_multiplier_cells(n, m);
      for (std::uint64_t a = 0; a < (1u << n); ++a)
        for (std::uint64_t b = 0; b < (1u << m); ++b) {
          std::uint64_t p = 0;
          const MultiplierCells s = simulate_array(n, m, a, b, p);
          ASSERT_EQ(p, a * b) << n << "x" << m;
          ASSERT_EQ(s.full_adders, f.full_adders) << n << "x" << m;
          ASSERT_EQ(s.half_adders, f.half_adders) << n << "x" << m;
          ASSERT_EQ(s.and_gates, f.and_gates);
        }
      if (n >= 2 && m >= 2) {
        EXPECT_EQ(f.adders(), n * (m - 1));
      }
    }
}

TEST(SimMultiplier, BoothCellCounts) {
  const MultiplierCells c8 = booth4_multiplier_cells(8, 8);
  EXPECT_EQ(c8.partial_products, 4);
  EXPECT_EQ(c8.booth_encoders, 4);
  EXPECT_EQ(c8.booth_selectors, 4 * 9);
  EXPECT_EQ(c8.full_adders, 3 * 10);
  EXPECT_EQ(c8.half_adders, 3);
  EXPECT_EQ(booth4_multiplier_cells(8, 7).partial_products, 4);
  EXPECT_EQ(booth4_multiplier_cells(16, 16).partial_products, 8);
  // Booth halves the rows: fewer adders than the array from 8 bits on.
  for (int n : {8, 16, 32}) EXPECT_LT(booth4_multiplier_cells(n, n).adders(), array_multiplier_cells(n, n).adders());
}

// The harness must be able to fail: with corrupted references the child reports mismatches.
TEST(SimHarness, DetectsMismatches) {
  g_sabotage = true;
  EXPECT_EXIT({ std::exit(multiplier_run(Format::parse("fixed<4,0>"), Format::parse("fixed<4,0>"), 2, kStall, 10, 8) == 0 ? 0 : 1); },
              ::testing::ExitedWithCode(1), "MISMATCH");
  g_sabotage = false;
}

// ---------------------------------------------------------------------------------------------
// Accumulator

// acc <- round(acc + x) over one group, without arith: fixed point through SystemC's sc_fix on the
// exact sum (deterministic modes) or the stochastic-rounding definition on exact integers, floats
// through the Boost-rational model. Add i of the group draws the stream's bits at index i.
indep::Result accumulate_independently(const Format& in, const Format& acc, const RoundSpec& spec,
                                       const arith::SrStream& sr, const std::vector<u128>& xs) {
  indep::Result r;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const std::uint32_t bits = spec.rounding == Rounding::Stochastic ? sr.bits(i, spec.sr_bits) : 0;
    indep::Result s;
    if (!acc.is_float()) {
      const int f = std::max(acc.fl, in.fl);
      const arith::i128 v = indep::fixed_int(acc, r.code) * (arith::i128(1) << (f - acc.fl)) +
                            indep::fixed_int(in, xs[i]) * (arith::i128(1) << (f - in.fl));
      s = spec.rounding == Rounding::Stochastic
              ? indep::round_fixed_stochastic(v, f, acc, spec.overflow, spec.sr_bits, bits)
              : indep::sc_fixed_assign(acc, spec.rounding, spec.overflow, indep::exact_double(v, f));
    } else {
      s = indep::from_ref(indep::ref::ref_round_sum(acc, indep::ref::ref_decode(acc, r.code),
                                                    indep::ref::ref_decode(in, xs[i]), spec, bits));
    }
    r.code = s.code;
    r.status |= s.status;
  }
  return r;
}

int accumulator_run(const Format& in, const Format& acc, const RoundSpec& spec, double stall, int groups,
                    unsigned seed, int fixed_k = 0) {
  std::mt19937_64 rng(seed);
  const arith::SrStream sr{seed * 77 + 1, 3};
  std::vector<Item> items;
  std::vector<std::size_t> group_end;  // index of each group's last item
  for (int g = 0; g < groups; ++g) {
    const int k = fixed_k ? fixed_k : 1 + int(rng() % 8);
    for (int i = 0; i < k; ++i) items.push_back({{random_code(in, rng)}, i == k - 1});
    group_end.push_back(items.size() - 1);
  }
  sc_core::sc_clock clk("clk", 10, sc_core::SC_NS);
  sc_core::sc_signal<bool> rst("rst"), iv("iv"), ir("ir"), il("il"), ov("ov"), ordy("ordy"), no_last("no_last");
  sc_core::sc_signal<Code> ix("ix"), oc("oc");
  sc_core::sc_signal<unsigned> os("os");
  Source src("src", items, 1, stall, seed);
  Accumulator dut("dut", in, acc, spec, sr);
  Sink sink("sink", std::size_t(groups), stall, seed + 1);
  src.clk(clk), src.rst(rst), src.valid(iv), src.ready(ir), src.data[0](ix), src.last(il);
  dut.clk(clk), dut.rst(rst), dut.in_valid(iv), dut.in_ready(ir), dut.in_code(ix), dut.in_last(il);
  dut.out_valid(ov), dut.out_ready(ordy), dut.out_code(oc), dut.out_status(os);
  sink.clk(clk), sink.rst(rst), sink.valid(ov), sink.ready(ordy), sink.code(oc), sink.status(os), sink.last(no_last);
  run_sim(rst, 100 * long(items.size()) + 100);

  Checker c;
  if (sink.got.size() != std::size_t(groups)) {
    c.fail("got " + std::to_string(sink.got.size()) + " of " + std::to_string(groups));
    return c.failures;
  }
  arith::Accumulator ref(acc, spec, sr);
  std::size_t first = 0;
  for (int g = 0; g < groups; ++g) {
    ref.reset();
    std::vector<u128> xs;
    for (std::size_t i = first; i <= group_end[g]; ++i) {
      ref.add(arith::decode(in, items[i].data[0]));
      xs.push_back(items[i].data[0]);
    }
    const auto& got = sink.got[std::size_t(g)];
    const std::string id = in.spec() + "->" + acc.spec() + " " + std::string(arith::to_string(spec.rounding)) + "/" +
                           std::string(arith::to_string(spec.overflow)) + " group " + std::to_string(g);
    c.expect(got.code == ref.code() && got.status == ref.status(),
             id + " got " + hex(got.code) + " want " + hex(ref.code()));
    indep::Result want = accumulate_independently(in, acc, spec, sr, xs);
    if (g_sabotage) want.code ^= 1;
    c.expect(got.code == want.code && got.status == want.status,
             id + " independent reference " + hex(want.code) + "/" + std::to_string(want.status) + " got " +
                 hex(got.code) + "/" + std::to_string(got.status));
    ++c.checked;
    // The CPU's own fp32 addition (round to nearest even) where the accumulator is fp32.
    if (acc == Format::parse("fp32") && in == Format::parse("bf16") && spec.rounding == Rounding::NearestEven &&
        spec.overflow == Overflow::Ieee) {
      float sum = 0.0f;
      for (u128 x : xs) sum += std::bit_cast<float>(std::uint32_t(x) << 16);
      const auto native = std::bit_cast<std::uint32_t>(sum);
      c.expect(std::isnan(sum) ? std::isnan(std::bit_cast<float>(std::uint32_t(got.code))) : got.code == native,
               id + " native fp32 sum " + hex(native) + " got " + hex(got.code));
    }
    const long lat = got.edge - src.transfer_edge[group_end[g]];
    c.expect(stall == 0 ? lat == 1 : lat >= 1, id + " latency " + std::to_string(lat));
    first = group_end[g] + 1;
  }
  c.expect(c.checked == groups, "compared " + std::to_string(c.checked) + " of " + std::to_string(groups));
  if (stall == 0)  // no bubbles between groups
    c.expect(sink.got.back().edge - src.transfer_edge.front() + 1 == long(items.size()) + 1, "throughput");
  return c.failures;
}

RoundSpec spec_of(Rounding r, Overflow o, int k = 16) {
  RoundSpec s;
  s.rounding = r;
  s.overflow = o;
  s.sr_bits = k;
  return s;
}

TEST(SimAccumulator, FixedNearestEvenSaturate) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fixed<16,4>"), Format::parse("fixed<12,2>"),
                                    spec_of(Rounding::NearestEven, Overflow::Saturate), kStall, 400, 11));
}
TEST(SimAccumulator, FixedTowardZeroWrap) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fixed<16,4>"), Format::parse("fixed<10,2>"),
                                    spec_of(Rounding::TowardZero, Overflow::Wrap), kStall, 400, 12));
}
TEST(SimAccumulator, FixedNearestAwaySaturateSymmetric) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fixed<8,3>"), Format::parse("fixed<8,1>"),
                                    spec_of(Rounding::NearestAway, Overflow::SaturateSymmetric), kStall, 400, 13));
}
TEST(SimAccumulator, FixedDownWrapUnsigned) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("ufixed<12,4>"), Format::parse("ufixed<10,2>"),
                                    spec_of(Rounding::Down, Overflow::Wrap), kStall, 400, 14));
}
TEST(SimAccumulator, FixedStochastic) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fixed<16,8>"), Format::parse("fixed<12,2>"),
                                    spec_of(Rounding::Stochastic, Overflow::Saturate, 4), kStall, 400, 15));
}
TEST(SimAccumulator, FloatBf16NearestEven) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fp16"), Format::parse("bf16"),
                                    spec_of(Rounding::NearestEven, Overflow::Ieee), kStall, 400, 16));
}
TEST(SimAccumulator, FloatFp8Stochastic) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("float<4,3,fn>"), Format::parse("float<5,2>"),
                                    spec_of(Rounding::Stochastic, Overflow::Ieee, 8), kStall, 400, 17));
}
TEST(SimAccumulator, FloatBf16IntoFp32NearestEven) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("bf16"), Format::parse("fp32"),
                                    spec_of(Rounding::NearestEven, Overflow::Ieee), kStall, 400, 20));
}
TEST(SimAccumulator, FloatFp16Up) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fp16"), Format::parse("fp16"), spec_of(Rounding::Up, Overflow::Ieee),
                                    kStall, 400, 18));
}
TEST(SimAccumulator, LatencyOneNoBubbles) {
  EXPECT_SIM_PASSES(accumulator_run(Format::parse("fixed<8,0>"), Format::parse("fixed<16,0>"),
                                    spec_of(Rounding::NearestEven, Overflow::Saturate), 0.0, 50, 19, 3));
}

// ---------------------------------------------------------------------------------------------
// Stochastic-rounding unit

int sr_run(const Format& in, const Format& out, const RoundSpec& spec, double stall, int n, unsigned seed,
           SrSource source = SrSource::Philox) {
  std::mt19937_64 rng(seed);
  const arith::SrStream sr{seed, 9};
  std::vector<Item> items;
  for (u128 x : corner_codes(in)) items.push_back({{x}, false});
  for (int i = 0; i < n; ++i) items.push_back({{random_code(in, rng)}, false});
  sc_core::sc_clock clk("clk", 10, sc_core::SC_NS);
  sc_core::sc_signal<bool> rst("rst"), iv("iv"), ir("ir"), il("il"), ov("ov"), ordy("ordy"), no_last("no_last");
  sc_core::sc_signal<Code> ix("ix"), oc("oc");
  sc_core::sc_signal<unsigned> os("os");
  Source src("src", items, 1, stall, seed);
  const std::uint32_t lfsr_seed = seed | 1u;
  SrUnit dut("dut", in, out, spec, sr, source, lfsr_seed);
  Sink sink("sink", items.size(), stall, seed + 1);
  src.clk(clk), src.rst(rst), src.valid(iv), src.ready(ir), src.data[0](ix), src.last(il);
  dut.clk(clk), dut.rst(rst), dut.in_valid(iv), dut.in_ready(ir), dut.in_code(ix);
  dut.out_valid(ov), dut.out_ready(ordy), dut.out_code(oc), dut.out_status(os);
  sink.clk(clk), sink.rst(rst), sink.valid(ov), sink.ready(ordy), sink.code(oc), sink.status(os), sink.last(no_last);
  run_sim(rst, 100 * long(items.size()) + 100);

  Checker c;
  if (sink.got.size() != items.size()) {
    c.fail("got " + std::to_string(sink.got.size()) + " of " + std::to_string(items.size()));
    return c.failures;
  }
  RoundSpec s = spec;
  s.rounding = Rounding::Stochastic;
  Lfsr32 twin(lfsr_seed);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::uint32_t r = source == SrSource::Philox ? sr.bits(i, s.sr_bits) : twin.next(s.sr_bits);
    const arith::Quantized ref = arith::quantize(out, arith::decode(in, items[i].data[0]), s, r);
    const auto& g = sink.got[i];
    const std::string id = in.spec() + "->" + out.spec() + " x=" + hex(items[i].data[0]);
    c.expect(g.code == ref.code && g.status == ref.status, id + " got " + hex(g.code) + " want " + hex(ref.code));
    // Without arith: fixed point by the stochastic-rounding definition on exact integers, floats
    // through the Boost-rational model, both with the same random bits r.
    indep::Result want =
        !out.is_float() && !in.is_float()
            ? indep::round_fixed_stochastic(indep::fixed_int(in, items[i].data[0]), in.fl, out, s.overflow, s.sr_bits, r)
            : indep::from_ref(indep::ref::ref_quantize(out, indep::ref::ref_decode(in, items[i].data[0]), s, r));
    if (g_sabotage) want.code ^= 1;
    c.expect(g.code == want.code && g.status == want.status,
             id + " independent reference " + hex(want.code) + "/" + std::to_string(want.status) + " got " + hex(g.code) +
                 "/" + std::to_string(g.status));
    ++c.checked;
    const long lat = g.edge - src.transfer_edge[i];
    c.expect(stall == 0 ? lat == 1 : lat >= 1, "latency " + std::to_string(lat));
  }
  c.expect(c.checked == long(items.size()), "compared " + std::to_string(c.checked));
  c.expect(dut.index() == items.size(), "stream index counts accepted inputs");
  return c.failures;
}

TEST(SimSrUnit, FixedK4Saturate) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fixed<16,8>"), Format::parse("fixed<8,4>"),
                           spec_of(Rounding::Stochastic, Overflow::Saturate, 4), kStall, 3000, 21));
}
TEST(SimSrUnit, FixedK16Wrap) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fixed<24,12>"), Format::parse("fixed<8,2>"),
                           spec_of(Rounding::Stochastic, Overflow::Wrap, 16), kStall, 3000, 22));
}
TEST(SimSrUnit, FloatFp32ToBf16K20) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fp32"), Format::parse("bf16"),
                           spec_of(Rounding::Stochastic, Overflow::Ieee, 20), kStall, 3000, 23));
}
TEST(SimSrUnit, FloatFp16ToFp8K8) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fp16"), Format::parse("float<4,3,fn>"),
                           spec_of(Rounding::Stochastic, Overflow::Saturate, 8), kStall, 3000, 24));
}
TEST(SimSrUnit, IndexFollowsTransfersUnderHeavyStalls) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fixed<16,8>"), Format::parse("fixed<8,4>"),
                           spec_of(Rounding::Stochastic, Overflow::Saturate, 8), 0.7, 1000, 25));
}
TEST(SimSrUnit, LatencyOne) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fixed<16,8>"), Format::parse("fixed<8,4>"),
                           spec_of(Rounding::Stochastic, Overflow::Saturate, 8), 0.0, 300, 26));
}

TEST(SimSrUnit, LfsrSourceMatchesTwin) {
  EXPECT_SIM_PASSES(sr_run(Format::parse("fixed<16,8>"), Format::parse("fixed<8,4>"),
                           spec_of(Rounding::Stochastic, Overflow::Saturate, 8), kStall, 2000, 27, SrSource::Lfsr));
}

// The LFSR's 32-step transition is linear; its period is 2^32 - 1 exactly when T^(2^32-1) = I and
// T^((2^32-1)/q) != I for each prime q of 2^32 - 1 = 3 * 5 * 17 * 257 * 65537. T is a companion
// matrix, for which state 1 is a cyclic vector, so testing T^e on state 1 decides T^e = I.
TEST(SimLfsr, PolynomialIsPrimitive) {
  using Matrix = std::array<std::uint32_t, 32>;  // column i = image of basis vector i
  auto apply = [](const Matrix& m, std::uint32_t v) {
    std::uint32_t r = 0;
    for (int i = 0; i < 32; ++i)
      if ((v >> i) & 1u) r ^= m[std::size_t(i)];
    return r;
  };
  auto mul = [&](const Matrix& a, const Matrix& b) {
    Matrix r{};
    for (std::size_t i = 0; i < 32; ++i) r[i] = apply(a, b[i]);
    return r;
  };
  Matrix step{};
  for (std::size_t i = 0; i < 32; ++i) {
    Lfsr32 l(std::uint32_t(1) << i);
    l.step();
    step[i] = l.state();
  }
  auto power_on_one = [&](std::uint64_t e) {
    Matrix result{}, base = step;
    for (std::size_t i = 0; i < 32; ++i) result[i] = std::uint32_t(1) << i;
    for (; e; e >>= 1, base = mul(base, base))
      if (e & 1) result = mul(result, base);
    return apply(result, 1u);
  };
  const std::uint64_t period = (std::uint64_t(1) << 32) - 1;
  EXPECT_EQ(power_on_one(period), 1u);
  for (std::uint64_t q : {3u, 5u, 17u, 257u, 65537u}) EXPECT_NE(power_on_one(period / q), 1u) << q;
  // The step is the documented Galois shift.
  Lfsr32 l(1);
  l.step();
  EXPECT_EQ(l.state(), Lfsr32::kFeedback);
}

// ---------------------------------------------------------------------------------------------
// MAC unit

// One dot product's result without arith: exact products (integers, or the Boost model for
// floats), each added as accumulate_independently() does, then the output stage: TFLite's
// requantization written with gemmlowp's own fixedpoint.h, or stochastic rounding by definition.
indep::Result mac_independently(const MacConfig& cfg, const std::vector<u128>& a, const std::vector<u128>& b,
                                std::uint64_t group) {
  namespace ref = indep::ref;
  indep::Result acc;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::uint32_t bits = cfg.acc_spec.rounding == Rounding::Stochastic ? cfg.acc_sr.bits(i, cfg.acc_spec.sr_bits) : 0;
    indep::Result s;
    if (!cfg.a.is_float()) {
      if (cfg.acc.is_float() || cfg.acc_spec.rounding == Rounding::Stochastic)
        throw std::logic_error("mac_independently: fixed-point operands need a deterministic fixed accumulator");
      const int f = std::max(cfg.acc.fl, cfg.a.fl + cfg.b.fl);
      const arith::i128 v = indep::fixed_int(cfg.acc, acc.code) * (arith::i128(1) << (f - cfg.acc.fl)) +
                            indep::fixed_int(cfg.a, a[i]) * indep::fixed_int(cfg.b, b[i]) *
                                (arith::i128(1) << (f - cfg.a.fl - cfg.b.fl));
      s = indep::sc_fixed_assign(cfg.acc, cfg.acc_spec.rounding, cfg.acc_spec.overflow, indep::exact_double(v, f));
    } else {
      bool invalid = false;
      ref::RefValue p = ref::ref_exact_mul(ref::ref_decode(cfg.a, a[i]), ref::ref_decode(cfg.b, b[i]), invalid);
      s = indep::from_ref(ref::ref_round_sum(cfg.acc, ref::ref_decode(cfg.acc, acc.code), p, cfg.acc_spec, bits));
    }
    acc.code = s.code;
    acc.status |= s.status;
  }
  switch (cfg.output) {
    case MacOutput::Accumulator: return acc;
    case MacOutput::Requantize: {
      // TFLite's MultiplyByQuantizedMultiplier for a right shift, then the zero point and the clamp.
      if (cfg.requant.shift > 0) throw std::logic_error("mac_independently: left shifts not covered");
      const auto x = std::int32_t(indep::fixed_int(cfg.acc, acc.code));
      const std::int32_t v = gemmlowp::RoundingDivideByPOT(
          gemmlowp::SaturatingRoundingDoublingHighMul(x, cfg.requant.multiplier), -cfg.requant.shift);
      const std::int64_t out = std::clamp<std::int64_t>(std::int64_t(v) + cfg.requant.zero_point, cfg.requant.min,
                                                        cfg.requant.max);
      return {u128(arith::i128(out)) & cfg.out.code_mask(), 0};
    }
    case MacOutput::Stochastic: {
      RoundSpec spec = cfg.out_spec;
      spec.rounding = Rounding::Stochastic;
      const std::uint32_t r = cfg.out_sr.bits(group, spec.sr_bits);
      if (!cfg.acc.is_float() && !cfg.out.is_float())
        return indep::round_fixed_stochastic(indep::fixed_int(cfg.acc, acc.code), cfg.acc.fl, cfg.out, spec.overflow,
                                             spec.sr_bits, r);
      return indep::from_ref(ref::ref_quantize(cfg.out, ref::ref_decode(cfg.acc, acc.code), spec, r));
    }
  }
  return {};
}

int mac_run(const MacConfig& cfg, double stall, int groups, unsigned seed, int fixed_k = 0) {
  std::mt19937_64 rng(seed);
  std::vector<Item> items;
  std::vector<std::size_t> group_end;
  for (int g = 0; g < groups; ++g) {
    const int k = fixed_k ? fixed_k : 1 + int(rng() % 12);
    for (int i = 0; i < k; ++i) items.push_back({{random_code(cfg.a, rng), random_code(cfg.b, rng)}, i == k - 1});
    group_end.push_back(items.size() - 1);
  }
  sc_core::sc_clock clk("clk", 10, sc_core::SC_NS);
  sc_core::sc_signal<bool> rst("rst"), iv("iv"), ir("ir"), il("il"), ov("ov"), ordy("ordy"), no_last("no_last");
  sc_core::sc_signal<Code> ia("ia"), ib("ib"), oc("oc");
  sc_core::sc_signal<unsigned> os("os");
  Source src("src", items, 2, stall, seed);
  MacUnit dut("dut", cfg);
  Sink sink("sink", std::size_t(groups), stall, seed + 1);
  src.clk(clk), src.rst(rst), src.valid(iv), src.ready(ir), src.data[0](ia), src.data[1](ib), src.last(il);
  dut.clk(clk), dut.rst(rst), dut.in_valid(iv), dut.in_ready(ir), dut.in_a(ia), dut.in_b(ib), dut.in_last(il);
  dut.out_valid(ov), dut.out_ready(ordy), dut.out_code(oc), dut.out_status(os);
  sink.clk(clk), sink.rst(rst), sink.valid(ov), sink.ready(ordy), sink.code(oc), sink.status(os), sink.last(no_last);
  run_sim(rst, 100 * long(items.size()) + 100);

  Checker c;
  if (sink.got.size() != std::size_t(groups)) {
    c.fail("got " + std::to_string(sink.got.size()) + " of " + std::to_string(groups));
    return c.failures;
  }
  std::size_t first = 0;
  for (int g = 0; g < groups; ++g) {
    std::vector<u128> a, b;
    for (std::size_t i = first; i <= group_end[g]; ++i) a.push_back(items[i].data[0]), b.push_back(items[i].data[1]);
    MacResult ref = mac_reference(cfg, a.data(), b.data(), a.size(), std::uint64_t(g));
    indep::Result want = mac_independently(cfg, a, b, std::uint64_t(g));
    if (g_sabotage) ref.code ^= 1, want.code ^= 1;
    const auto& got = sink.got[std::size_t(g)];
    c.expect(got.code == ref.code && got.status == ref.status,
             "group " + std::to_string(g) + " got " + hex(got.code) + "/" + std::to_string(got.status) + " want " +
                 hex(ref.code) + "/" + std::to_string(ref.status));
    c.expect(got.code == want.code && got.status == want.status,
             "group " + std::to_string(g) + " got " + hex(got.code) + "/" + std::to_string(got.status) +
                 " independent reference " + hex(want.code) + "/" + std::to_string(want.status));
    ++c.checked;
    const long lat = got.edge - src.transfer_edge[group_end[g]];
    c.expect(stall == 0 ? lat == cfg.latency() : lat >= cfg.latency(), "latency " + std::to_string(lat));
    first = group_end[g] + 1;
  }
  c.expect(c.checked == groups, "compared " + std::to_string(c.checked) + " of " + std::to_string(groups));
  if (stall == 0 && fixed_k)
    c.expect(sink.got.back().edge - src.transfer_edge.front() + 1 == cfg.cycles(groups, fixed_k),
             "cycles " + std::to_string(sink.got.back().edge - src.transfer_edge.front() + 1) + " want " +
                 std::to_string(cfg.cycles(groups, fixed_k)));
  return c.failures;
}

MacConfig int8_requant() {
  MacConfig cfg;
  cfg.a = Format::parse("int<8>");
  cfg.b = Format::parse("int<8>");
  cfg.mul_stages = 2;
  cfg.acc = Format::fixed(32, 0);
  cfg.acc_spec = spec_of(Rounding::NearestEven, Overflow::Wrap);
  cfg.output = MacOutput::Requantize;
  cfg.out = Format::parse("int<8>");
  cfg.requant = arith::Requantizer::from_real(0.0123, 3);
  cfg.requant.min = -128;
  cfg.requant.max = 127;
  return cfg;
}

TEST(SimMac, Int8Int32RequantizeMatchesArith) { EXPECT_SIM_PASSES(mac_run(int8_requant(), kStall, 300, 31)); }

TEST(SimMac, FixedSaturatingAccumulatorMatchesArith) {
  MacConfig cfg;
  cfg.a = Format::parse("fixed<8,4>");
  cfg.b = Format::parse("fixed<6,5>");
  cfg.mul_stages = 3;
  cfg.acc = Format::parse("fixed<12,6>");
  cfg.acc_spec = spec_of(Rounding::NearestEven, Overflow::Saturate);
  EXPECT_SIM_PASSES(mac_run(cfg, kStall, 300, 32));
}

TEST(SimMac, Fp8Fp16AccumulatorStochasticOutputMatchesArith) {
  MacConfig cfg;
  cfg.a = Format::parse("float<4,3,fn>");
  cfg.b = Format::parse("float<5,2>");
  cfg.mul_stages = 2;
  cfg.acc = Format::parse("fp16");
  cfg.acc_spec = spec_of(Rounding::NearestEven, Overflow::Ieee);
  cfg.output = MacOutput::Stochastic;
  cfg.out = Format::parse("float<5,2>");
  cfg.out_spec = spec_of(Rounding::Stochastic, Overflow::Ieee, 8);
  cfg.out_sr = {42, 7};
  EXPECT_SIM_PASSES(mac_run(cfg, kStall, 300, 33));
}

TEST(SimMac, StochasticBf16AccumulatorMatchesArith) {
  MacConfig cfg;
  cfg.a = Format::parse("bf16");
  cfg.b = Format::parse("bf16");
  cfg.mul_stages = 1;
  cfg.acc = Format::parse("bf16");
  cfg.acc_spec = spec_of(Rounding::Stochastic, Overflow::Ieee, 12);
  cfg.acc_sr = {5, 1};
  EXPECT_SIM_PASSES(mac_run(cfg, kStall, 300, 34));
}

TEST(SimHarness, DetectsMacMismatches) {
  g_sabotage = true;
  EXPECT_EXIT({ std::exit(mac_run(int8_requant(), kStall, 20, 36) == 0 ? 0 : 1); }, ::testing::ExitedWithCode(1),
              "MISMATCH");
  g_sabotage = false;
}

TEST(SimMac, CyclesAreGroupsTimesKPlusLatency) {
  for (int stages : {1, 4})
    for (MacOutput out : {MacOutput::Accumulator, MacOutput::Requantize}) {
      MacConfig cfg = int8_requant();
      cfg.mul_stages = stages;
      cfg.output = out;
      for (int k : {1, 16}) EXPECT_SIM_PASSES(mac_run(cfg, 0.0, 10, 35, k));
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// XNOR-popcount-threshold unit

namespace {

struct BatchNorm {
  double gamma, beta, mean, var, eps;
};

// A random binarized layer with thresholds folded from random BatchNorm parameters of both signs
// (kept in `bn` for the independent reference).
XnorLayer random_layer(std::int64_t k, int neurons, int pe, int simd, std::mt19937_64& rng, std::vector<BatchNorm>& bn) {
  XnorLayer l;
  l.fan_in = k, l.neurons = neurons, l.pe = pe, l.simd = simd;
  std::uniform_real_distribution<double> u(-2, 2);
  for (int n = 0; n < neurons; ++n) {
    std::vector<std::uint64_t> row(std::size_t((k + 63) / 64));
    for (auto& w : row) w = rng();
    l.weights.push_back(row);
    const double gamma = u(rng), beta = u(rng), mean = u(rng) * double(k) / 4, var = 1 + u(rng) * u(rng);
    bn.push_back({gamma, beta, mean, var, 1e-5});
    l.thresholds.push_back(arith::fold_batchnorm_sign(gamma, beta, mean, var, 1e-5, k));
  }
  return l;
}

// The binarized layer as FINN defines it, without popcounts or thresholds: the +-1 dot product
// x = sum (2a - 1)(2w - 1) over the K inputs, BatchNorm in double as written in docs/sim.md, then
// sign with sign(0) = +1.
bool xnor_neuron_independently(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>& w,
                               std::int64_t k, const BatchNorm& bn) {
  std::int64_t x = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    const int a = int((in[std::size_t(i / 64)] >> (i % 64)) & 1), b = int((w[std::size_t(i / 64)] >> (i % 64)) & 1);
    x += (2 * a - 1) * (2 * b - 1);
  }
  return bn.gamma * (double(x) - bn.mean) / std::sqrt(bn.var + bn.eps) + bn.beta >= 0;
}

// `vectors` random inputs through the unit under random stalls; outputs against the reference,
// and without stalls the cycle count against XnorLayer::cycles.
int xnor_run(std::int64_t k, int neurons, int pe, int simd, double stall, int vectors, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<BatchNorm> bn;
  const XnorLayer layer = random_layer(k, neurons, pe, simd, rng, bn);
  std::vector<std::vector<std::uint64_t>> inputs;
  std::vector<Item> items;
  for (int v = 0; v < vectors; ++v) {
    std::vector<std::uint64_t> x(std::size_t((k + 63) / 64));
    for (auto& w : x) w = rng();
    inputs.push_back(x);
    for (std::int64_t sf = 0; sf < layer.synapse_folds(); ++sf) {
      u128 chunk = 0;
      for (int i = 0; i < simd; ++i) {
        const std::int64_t bit = sf * simd + i;
        if (bit < k && ((x[std::size_t(bit / 64)] >> (bit % 64)) & 1)) chunk |= u128(1) << i;
      }
      if (sf == layer.synapse_folds() - 1) chunk |= u128(rng()) << (k - sf * simd) & ((u128(1) << simd) - 1);  // junk past K
      items.push_back({{chunk}, false});
    }
  }
  const std::size_t outputs = std::size_t(vectors * layer.neuron_folds());

  sc_core::sc_clock clk("clk", 10, sc_core::SC_NS);
  sc_core::sc_signal<bool> rst("rst"), iv("iv"), ir("ir"), il("il"), ov("ov"), ordy("ordy"), ol("ol");
  sc_core::sc_signal<Code> ib("ib"), ob("ob");
  sc_core::sc_signal<unsigned> os("os");
  Source src("src", items, 1, stall, seed);
  XnorUnit dut("dut", layer);
  Sink sink("sink", outputs, stall, seed + 1);
  src.clk(clk), src.rst(rst), src.valid(iv), src.ready(ir), src.data[0](ib), src.last(il);
  dut.clk(clk), dut.rst(rst), dut.in_valid(iv), dut.in_ready(ir), dut.in_bits(ib);
  dut.out_valid(ov), dut.out_ready(ordy), dut.out_bits(ob);
  sink.clk(clk), sink.rst(rst), sink.valid(ov), sink.ready(ordy), sink.code(ob), sink.status(os), sink.last(ol);
  run_sim(rst, 50 * long(items.size() + outputs) * layer.neuron_folds() + 100);

  Checker c;
  if (sink.got.size() != outputs) {
    c.fail("got " + std::to_string(sink.got.size()) + " of " + std::to_string(outputs) + " outputs");
    return c.failures;
  }
  for (int v = 0; v < vectors; ++v) {
    std::vector<bool> want = xnor_layer_reference(layer, inputs[std::size_t(v)]);
    if (g_sabotage) want[0] = !want[0];
    for (std::int64_t nf = 0; nf < layer.neuron_folds(); ++nf) {
      const u128 got = sink.got[std::size_t(v * layer.neuron_folds() + nf)].code;
      for (int j = 0; j < pe; ++j) {
        const std::int64_t n = nf * pe + j;
        const bool bit = (got >> j) & 1;
        const bool expect = n < neurons ? bool(want[std::size_t(n)]) : false;
        c.expect(bit == expect, "vector " + std::to_string(v) + " neuron " + std::to_string(n) + " got " +
                                    std::to_string(bit));
        if (n < neurons) {
          const bool indep = xnor_neuron_independently(inputs[std::size_t(v)], layer.weights[std::size_t(n)], k,
                                                       bn[std::size_t(n)]) != g_sabotage;
          c.expect(bit == indep, "vector " + std::to_string(v) + " neuron " + std::to_string(n) + " got " +
                                     std::to_string(bit) + ", BatchNorm-sign reference " + std::to_string(indep));
          ++c.checked;
        }
      }
    }
  }
  c.expect(c.checked == long(vectors) * neurons, "compared " + std::to_string(c.checked));
  if (stall == 0) {
    const long span = sink.got.back().edge - src.transfer_edge.front() + 1;
    c.expect(span == layer.cycles(vectors),
             "cycles " + std::to_string(span) + " want " + std::to_string(layer.cycles(vectors)));
  }
  return c.failures;
}

}  // namespace

TEST(SimXnor, MatchesArithUnderStalls) {
  EXPECT_SIM_PASSES(xnor_run(100, 10, 4, 32, kStall, 12, 41));
}
TEST(SimXnor, SingleLaneBitSerial) { EXPECT_SIM_PASSES(xnor_run(9, 3, 1, 1, kStall, 8, 42)); }
TEST(SimXnor, WideSimdPartialLastFold) { EXPECT_SIM_PASSES(xnor_run(200, 5, 2, 64, kStall, 10, 43)); }
TEST(SimXnor, CyclesAreVectorsTimesFoldsPlusOne) {
  EXPECT_SIM_PASSES(xnor_run(64, 16, 4, 16, 0.0, 6, 44));
  EXPECT_SIM_PASSES(xnor_run(7, 5, 8, 3, 0.0, 9, 45));
  EXPECT_SIM_PASSES(xnor_run(1, 1, 1, 1, 0.0, 4, 46));
}
TEST(SimHarness, DetectsXnorMismatches) {
  EXPECT_EXIT(
      {
        g_sabotage = true;
        std::exit(xnor_run(20, 4, 2, 8, 0.0, 3, 47) > 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "MISMATCH");
}
