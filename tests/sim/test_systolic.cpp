// The SystemC systolic array against arith (every output bit for bit, with its flags) and against
// the closed-form model of sim/array_model.hpp (cycles, buffer accesses, DRAM traffic), over many
// shapes: not multiples of R or C, K = 1, single rows and columns, small buffers, short bandwidth.
// One forked child per test: SystemC elaborates once per process.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "independent.hpp"
#include "bitsim/sim/array_model.hpp"
#include "bitsim/sim/gemm_run.hpp"
#include "bitsim/sim/mapper.hpp"
#include "tb.hpp"


namespace {

using namespace bitsim;
using namespace bitsim::sim;
using arith::Format;
using arith::Overflow;
using arith::Rounding;
using arith::u128;
namespace indep = bitsim::sim::test::indep;

#define EXPECT_SIM_PASSES(body) EXPECT_EXIT({ std::exit((body) == 0 ? 0 : 1); }, ::testing::ExitedWithCode(0), "")

const std::vector<GemmShape> kShapes = {
    {1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {4, 4, 4}, {7, 9, 11}, {13, 4, 5}, {1, 13, 1},
    {9, 3, 1}, {3, 17, 8}, {16, 8, 12}, {2, 5, 7}, {11, 12, 2},
};

GemmOperands random_operands(const ArrayConfig& cfg, const GemmShape& s, unsigned seed) {
  std::mt19937_64 rng(seed);
  GemmOperands ops{s, {}, {}};
  for (std::int64_t i = 0; i < s.m * s.k; ++i) ops.a.push_back(test::random_code(cfg.a, rng));
  for (std::int64_t i = 0; i < s.k * s.n; ++i) ops.w.push_back(test::random_code(cfg.w, rng));
  return ops;
}

// Prints the first differences; returns their count.
int compare(const std::string& id, const GemmResult& got, const GemmResult& want_values, const ArrayStats& model) {
  int bad = 0;
  auto fail = [&](const std::string& what) {
    if (++bad <= 8) std::fprintf(stderr, "MISMATCH %s: %s\n", id.c_str(), what.c_str());
  };
  for (std::size_t i = 0; i < want_values.c.size(); ++i)
    if (got.c[i] != want_values.c[i] || got.status[i] != want_values.status[i])
      fail("output " + std::to_string(i) + " code " + std::to_string(std::uint64_t(got.c[i])) + " status " +
           std::to_string(got.status[i]) + ", arith " + std::to_string(std::uint64_t(want_values.c[i])) + " status " +
           std::to_string(want_values.status[i]));
  const ArrayStats& g = got.stats;
  auto same = [&](const char* what, std::int64_t a, std::int64_t b) {
    if (a != b) fail(std::string(what) + " sim " + std::to_string(a) + " model " + std::to_string(b));
  };
  same("cycles", g.cycles, model.cycles);
  same("compute cycles", g.compute_cycles, model.compute_cycles);
  same("tiles", g.tiles, model.tiles);
  same("macs", g.macs, model.macs);
  same("A reads", g.buf_a.reads, model.buf_a.reads);
  same("A writes", g.buf_a.writes, model.buf_a.writes);
  same("W reads", g.buf_w.reads, model.buf_w.reads);
  same("W writes", g.buf_w.writes, model.buf_w.writes);
  same("O reads", g.buf_o.reads, model.buf_o.reads);
  same("O writes", g.buf_o.writes, model.buf_o.writes);
  same("DRAM A", g.dram.read_a, model.dram.read_a);
  same("DRAM W", g.dram.read_w, model.dram.read_w);
  same("DRAM psum", g.dram.read_psum, model.dram.read_psum);
  same("DRAM C", g.dram.write_c, model.dram.write_c);
  return bad;
}

// C without arith: each output's products added in k order, each add rounded once into the
// accumulator, by exact integers and SystemC's sc_fix (fixed point, deterministic rounding), the
// stochastic-rounding definition on exact integers, or the Boost-rational model (floats).
indep::Result independent_output(const ArrayConfig& cfg, const GemmOperands& ops, std::int64_t m, std::int64_t n) {
  namespace ref = indep::ref;
  const GemmShape& s = ops.shape;
  const arith::SrStream sr{cfg.seed, cfg.stream_base + std::uint64_t(m * s.n + n)};
  const arith::RoundSpec& spec = cfg.acc_spec;
  indep::Result acc;
  for (std::int64_t k = 0; k < s.k; ++k) {
    const u128 a = ops.a[std::size_t(m * s.k + k)], w = ops.w[std::size_t(k * s.n + n)];
    const std::uint32_t bits = spec.rounding == Rounding::Stochastic ? sr.bits(std::uint64_t(k), spec.sr_bits) : 0;
    indep::Result r;
    if (!cfg.a.is_float()) {
      const int f = std::max(cfg.acc.fl, cfg.a.fl + cfg.w.fl);
      const arith::i128 v = indep::fixed_int(cfg.acc, acc.code) * (arith::i128(1) << (f - cfg.acc.fl)) +
                            indep::fixed_int(cfg.a, a) * indep::fixed_int(cfg.w, w) *
                                (arith::i128(1) << (f - cfg.a.fl - cfg.w.fl));
      r = spec.rounding == Rounding::Stochastic
              ? indep::round_fixed_stochastic(v, f, cfg.acc, spec.overflow, spec.sr_bits, bits)
              : indep::sc_fixed_assign(cfg.acc, spec.rounding, spec.overflow, indep::exact_double(v, f));
    } else {
      bool invalid = false;
      const ref::RefValue p = ref::ref_exact_mul(ref::ref_decode(cfg.a, a), ref::ref_decode(cfg.w, w), invalid);
      r = indep::from_ref(ref::ref_round_sum(cfg.acc, ref::ref_decode(cfg.acc, acc.code), p, spec, bits));
    }
    acc.code = r.code;
    acc.status |= r.status;
  }
  return acc;
}

// Counts outputs that differ from independent_output(), printing the first few.
int compare_independently(const std::string& id, const ArrayConfig& cfg, const GemmOperands& ops,
                          const GemmResult& got, bool sabotage) {
  int bad = 0;
  const GemmShape& s = ops.shape;
  for (std::int64_t m = 0; m < s.m; ++m)
    for (std::int64_t n = 0; n < s.n; ++n) {
      indep::Result want = independent_output(cfg, ops, m, n);
      if (sabotage && m == 0 && n == 0) want.code ^= 1;
      const std::size_t i = std::size_t(m * s.n + n);
      if (got.c[i] != want.code || got.status[i] != want.status)
        if (++bad <= 8)
          std::fprintf(stderr, "MISMATCH %s: output (%lld, %lld) code %llu status %u, independent %llu status %u\n",
                       id.c_str(), (long long)m, (long long)n, (unsigned long long)got.c[i], got.status[i],
                       (unsigned long long)want.code, want.status);
    }
  return bad;
}

// What the runs exercised, so a test can insist its configurations reach the case it is about.
struct Coverage {
  int psum_spills = 0, a_refetches = 0, w_refetches = 0, stalled = 0;
} g_cov;

// Whether the compute cycles are those with unlimited bandwidth: serialized tiles, whose phases
// stalls only separate, or overlapped tiles that never stall.
bool no_stalls_stretch(const ArrayConfig& c) { return !c.overlap || c.dram_bytes_per_cycle == 0; }

// Every shape through an array per configuration (all elaborated in one child process).
int run_all(const std::vector<ArrayConfig>& cfgs, const std::vector<GemmShape>& shapes, bool sabotage = false) {
  std::vector<std::unique_ptr<ArrayHarness>> hs;
  for (std::size_t i = 0; i < cfgs.size(); ++i)
    hs.push_back(std::make_unique<ArrayHarness>("array" + std::to_string(i), cfgs[i]));
  int bad = 0;
  unsigned seed = 1;
  for (std::size_t i = 0; i < cfgs.size(); ++i)
    for (const GemmShape& s : shapes) {
      const GemmOperands ops = random_operands(cfgs[i], s, ++seed);
      GemmResult want = gemm_reference(cfgs[i], ops);
      ArrayStats model = array_model(cfgs[i], s);
      if (sabotage) want.c[want.c.size() / 2] ^= 1, model.cycles += 1;
      const GemmResult got = hs[i]->run(ops);
      const std::string id = std::string(to_string(cfgs[i].dataflow)) + (cfgs[i].overlap ? " overlapped " : " ") + std::to_string(cfgs[i].rows) + "x" +
                             std::to_string(cfgs[i].cols) + " " + cfgs[i].acc.spec() + " M,K,N=" +
                             std::to_string(s.m) + "," + std::to_string(s.k) + "," + std::to_string(s.n);
      bad += compare(id, got, want, model);
      bad += compare_independently(id, cfgs[i], ops, got, sabotage);
      const int ab = cfgs[i].a.width(), wb = cfgs[i].w.width();
      g_cov.psum_spills += got.stats.dram.read_psum > 0;
      g_cov.a_refetches += got.stats.dram.read_a > (s.m * s.k * ab + 7) / 8 + s.k;
      g_cov.w_refetches += got.stats.dram.read_w > (s.k * s.n * wb + 7) / 8 + s.n;
      g_cov.stalled += got.stats.stall_cycles > got.stats.compute_cycles / 2;
      // A second, independent count: the closed-form sum of tile phases (overlapped tiles: their
      // timeline, which stalls for DRAM stretch).
      if (no_stalls_stretch(cfgs[i]) && got.stats.compute_cycles != compute_cycles(cfgs[i], s)) ++bad;
    }
  return bad;
}

ArrayConfig config(Dataflow d, int rows, int cols, const char* a, const char* w, const char* acc,
                   Rounding rd = Rounding::NearestEven, Overflow ov = Overflow::Saturate) {
  ArrayConfig c;
  c.dataflow = d;
  c.rows = rows;
  c.cols = cols;
  c.a = Format::parse(a);
  c.w = Format::parse(w);
  c.acc = Format::parse(acc);
  c.acc_spec = {rd, ov, 12};
  c.seed = 77;
  return c;
}

// The configuration on every dataflow: weight-, output- and input-stationary.
std::vector<ArrayConfig> every_dataflow(const ArrayConfig& c) {
  ArrayConfig ws = c, os = c, is = c;
  ws.dataflow = Dataflow::WeightStationary;
  os.dataflow = Dataflow::OutputStationary;
  is.dataflow = Dataflow::InputStationary;
  return {ws, os, is};
}

// The configurations with overlapped tiles.
std::vector<ArrayConfig> overlapped(std::vector<ArrayConfig> cfgs) {
  for (ArrayConfig& c : cfgs) c.overlap = true;
  return cfgs;
}

std::vector<ArrayConfig> cat(std::vector<ArrayConfig> a, const std::vector<ArrayConfig>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// int8 x int8 into a saturating int16 accumulator (overflows often) and a wrapping one, on a
// square and a non-square array.
TEST(SimSystolic, IntegerGemmMatchesArithAndTheClosedForm) {
  const auto cfgs = cat(every_dataflow(config(Dataflow::WeightStationary, 4, 4, "int<8>", "int<8>", "int<16>")),
                        every_dataflow(config(Dataflow::WeightStationary, 3, 5, "int<8>", "int<8>", "int<16>", Rounding::NearestEven,
                                    Overflow::Wrap)));
  EXPECT_SIM_PASSES(run_all(cfgs, kShapes));
}

// Fixed point whose product has more fraction bits than the accumulator keeps (a rounding on every
// add, here stochastic and nearest-away), with symmetric saturation.
TEST(SimSystolic, RoundingFixedPointAccumulatorMatchesArith) {
  const auto cfgs = cat(every_dataflow(config(Dataflow::WeightStationary, 4, 3, "fixed<8,4>", "fixed<6,5>", "fixed<12,6>",
                                    Rounding::Stochastic, Overflow::SaturateSymmetric)),
                        every_dataflow(config(Dataflow::WeightStationary, 2, 2, "fixed<8,4>", "ufixed<6,5>", "fixed<10,5>",
                                    Rounding::NearestAway, Overflow::Saturate)));
  EXPECT_SIM_PASSES(run_all(cfgs, kShapes));
}

// Float MACs: fp8 products into fp16 (overflow to inf, inf - inf = nan, subnormals), bf16 into
// fp32, and bf16 with stochastic rounding on every add.
TEST(SimSystolic, FloatGemmMatchesArith) {
  const auto cfgs = cat(cat(every_dataflow(config(Dataflow::WeightStationary, 4, 4, "fp8e4m3", "fp8e5m2", "fp16", Rounding::NearestEven,
                                        Overflow::Ieee)),
                            every_dataflow(config(Dataflow::WeightStationary, 3, 2, "bf16", "bf16", "fp32", Rounding::NearestEven,
                                        Overflow::Ieee))),
                        every_dataflow(config(Dataflow::WeightStationary, 2, 3, "bf16", "bf16", "bf16", Rounding::Stochastic,
                                    Overflow::Ieee)));
  EXPECT_SIM_PASSES(run_all(cfgs, kShapes));
}

// Small buffers (A blocks evicted, partial sums spilled to DRAM) and a DRAM channel too slow for
// the array, fractional bytes per cycle included: traffic and stalls equal the closed form.
TEST(SimSystolic, SmallBuffersAndShortBandwidthMatchTheClosedForm) {
  std::vector<ArrayConfig> cfgs;
  for (double bw : {0.7, 3.0, 64.0})
    for (std::int64_t buf : {std::int64_t(24), std::int64_t(100), std::int64_t(1) << 20}) {
      for (ArrayConfig c : every_dataflow(config(Dataflow::WeightStationary, 4, 3, "int<8>", "int<4>", "int<20>"))) {
        c.dram_bytes_per_cycle = bw;
        c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = buf;
        cfgs.push_back(c);
        c.out_bits = 8;  // a requantizer after the array: finished results leave as bytes
        cfgs.push_back(c);
      }
    }
  EXPECT_SIM_PASSES(([&] {
    const int bad = run_all(cfgs, kShapes);
    std::fprintf(stderr, "spills %d, A refetches %d, W refetches %d, stalled %d\n", g_cov.psum_spills,
                 g_cov.a_refetches, g_cov.w_refetches, g_cov.stalled);
    return bad + (g_cov.psum_spills == 0) + (g_cov.a_refetches == 0) + (g_cov.w_refetches == 0) + (g_cov.stalled == 0);
  }()));
}

// The harness itself: a corrupted reference must be reported.
TEST(SimSystolic, HarnessDetectsMismatches) {
  EXPECT_EXIT({ std::exit(run_all({config(Dataflow::OutputStationary, 2, 2, "int<8>", "int<8>", "int<32>")},
                                  {{3, 4, 5}}, true) > 0 ? 0 : 1); },
              ::testing::ExitedWithCode(0), "MISMATCH");
}

// Toggle counts against an independent count: on a 1 x 1 weight-stationary array the activation
// register sees A[0][k], A[1][k], ... for k = 0, 1, ... (per n), the weight register W[k][n] in the
// same order, and the accumulator register every partial sum.
TEST(SimSystolic, TogglesOfAOneByOneArrayAreTheHammingDistancesOfItsOperandSequence) {
  EXPECT_SIM_PASSES(([] {
    const ArrayConfig cfg = config(Dataflow::WeightStationary, 1, 1, "int<8>", "int<8>", "int<32>");
    ArrayHarness h("one", cfg);
    const GemmShape s{5, 3, 2};
    const GemmOperands ops = random_operands(cfg, s, 9);
    const GemmResult got = h.run(ops);
    // Weight-stationary on one PE: for each n, for each k (weight loaded), for each m the PE's
    // partial-sum register takes S(m, n, k) = sum over k' <= k of A[m][k'] W[k'][n], an int<32> code.
    std::uint64_t ta = 0, tw = 0, tp = 0, tacc = 0;
    u128 ra = 0, rw = 0, rp = 0, racc = 0;
    std::vector<std::int64_t> partial(std::size_t(s.m * s.n), 0);
    auto hd = [](u128 x, u128 y) { return std::popcount(std::uint64_t(x ^ y)) + std::popcount(std::uint64_t((x ^ y) >> 64)); };
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t k = 0; k < s.k; ++k) {
        const u128 w = ops.w[std::size_t(k * s.n + n)];
        tw += hd(rw, w), rw = w;
        for (std::int64_t m = 0; m < s.m; ++m) {
          const u128 a = ops.a[std::size_t(m * s.k + k)];
          ta += hd(ra, a), ra = a;
          const u128 p = u128(std::int64_t(std::int8_t(a)) * std::int64_t(std::int8_t(w))) & 0xffff;  // int<16> product
          tp += hd(rp, p), rp = p;
          std::int64_t& sum = partial[std::size_t(m * s.n + n)];
          sum += std::int64_t(std::int8_t(a)) * std::int64_t(std::int8_t(w));
          const u128 acc = u128(std::uint32_t(sum));
          tacc += hd(racc, acc), racc = acc;
        }
      }
    int bad = 0;
    if (got.stats.toggles.mul_a != ta) ++bad, std::fprintf(stderr, "a toggles %llu want %llu\n", (unsigned long long)got.stats.toggles.mul_a, (unsigned long long)ta);
    if (got.stats.toggles.mul_w != tw) ++bad, std::fprintf(stderr, "w toggles %llu want %llu\n", (unsigned long long)got.stats.toggles.mul_w, (unsigned long long)tw);
    if (got.stats.toggles.product != tp) ++bad, std::fprintf(stderr, "product toggles %llu want %llu\n", (unsigned long long)got.stats.toggles.product, (unsigned long long)tp);
    if (got.stats.toggles.acc != tacc) ++bad, std::fprintf(stderr, "acc toggles %llu want %llu\n", (unsigned long long)got.stats.toggles.acc, (unsigned long long)tacc);
    return bad;
  }()));
}

// ---- Convolutions ----

// The im2col matrix written from the definition of a convolution, without sim's im2col: output pixel
// (b, oy, ox) under kernel offset (ry, sx) of channel c sees padded-input element (oy s + ry, ox s + sx),
// where the padded input is the input surrounded by P rows and columns of zeros.
GemmOperands test_im2col(const ConvShape& cv, const std::vector<u128>& ifmap, const std::vector<u128>& filter) {
  const std::int64_t HP = cv.height + 2 * cv.padding, WP = cv.width + 2 * cv.padding;
  std::vector<u128> padded(std::size_t(cv.batch * cv.in_channels * HP * WP), 0);
  for (std::int64_t b = 0; b < cv.batch; ++b)
    for (std::int64_t c = 0; c < cv.in_channels; ++c)
      for (std::int64_t y = 0; y < cv.height; ++y)
        for (std::int64_t x = 0; x < cv.width; ++x)
          padded[std::size_t(((b * cv.in_channels + c) * HP + y + cv.padding) * WP + x + cv.padding)] =
              ifmap[std::size_t(((b * cv.in_channels + c) * cv.height + y) * cv.width + x)];
  const std::int64_t OH = (HP - cv.kernel_h) / cv.stride + 1, OW = (WP - cv.kernel_w) / cv.stride + 1;
  GemmOperands g{{cv.batch * OH * OW, cv.in_channels * cv.kernel_h * cv.kernel_w, cv.out_channels}, {}, filter};
  for (std::int64_t b = 0; b < cv.batch; ++b)
    for (std::int64_t oy = 0; oy < OH; ++oy)
      for (std::int64_t ox = 0; ox < OW; ++ox)
        for (std::int64_t c = 0; c < cv.in_channels; ++c)
          for (std::int64_t ry = 0; ry < cv.kernel_h; ++ry)
            for (std::int64_t sx = 0; sx < cv.kernel_w; ++sx)
              g.a.push_back(padded[std::size_t(((b * cv.in_channels + c) * HP + oy * cv.stride + ry) * WP + ox * cv.stride + sx)]);
  return g;
}

ConvOperands random_conv(const ArrayConfig& cfg, const ConvShape& cv, unsigned seed) {
  std::mt19937_64 rng(seed);
  ConvOperands ops{cv, {}, {}};
  for (std::int64_t i = 0; i < cv.batch * cv.in_channels * cv.height * cv.width; ++i) ops.ifmap.push_back(test::random_code(cfg.a, rng));
  for (std::int64_t i = 0; i < cv.in_channels * cv.kernel_h * cv.kernel_w * cv.out_channels; ++i)
    ops.filter.push_back(test::random_code(cfg.w, rng));
  return ops;
}

// {batch, C, H, W, N, R, S, stride, padding}: strides that skip input rows (1x1 kernel, stride 2),
// padding wider than the kernel reaches, non-square kernels, one output pixel, batches.
const std::vector<ConvShape> kConvShapes = {
    {1, 1, 6, 6, 2, 3, 3, 1, 0}, {1, 2, 5, 7, 3, 3, 3, 1, 1}, {2, 3, 4, 4, 5, 2, 2, 2, 0}, {1, 2, 7, 7, 4, 1, 1, 2, 0},
    {1, 1, 5, 5, 1, 5, 5, 1, 0}, {2, 2, 3, 5, 2, 3, 2, 1, 2}, {1, 3, 6, 5, 7, 3, 3, 2, 1}, {1, 1, 2, 2, 3, 3, 3, 3, 2},
};

// Every convolution through an array per configuration: outputs against arith's GEMM over the
// test's own im2col matrix (and the independent reference), counters against conv_model.
int run_convs(const std::vector<ArrayConfig>& cfgs, const std::vector<ConvShape>& shapes) {
  std::vector<std::unique_ptr<ArrayHarness>> hs;
  for (std::size_t i = 0; i < cfgs.size(); ++i)
    hs.push_back(std::make_unique<ArrayHarness>("conv" + std::to_string(i), cfgs[i]));
  int bad = 0;
  unsigned seed = 100;
  for (std::size_t i = 0; i < cfgs.size(); ++i)
    for (const ConvShape& cv : shapes) {
      const ConvOperands ops = random_conv(cfgs[i], cv, ++seed);
      const GemmOperands g = test_im2col(cv, ops.ifmap, ops.filter);
      const GemmResult want = gemm_reference(cfgs[i], g);
      const ArrayStats model = conv_model(cfgs[i], cv);
      const GemmResult got = hs[i]->run(ops);
      const std::string id = std::string(to_string(cfgs[i].dataflow)) + (cfgs[i].overlap ? " overlapped " : " ") + std::to_string(cfgs[i].rows) + "x" +
                             std::to_string(cfgs[i].cols) + " buf " + std::to_string(cfgs[i].buffer_a_bytes) + " conv " +
                             std::to_string(cv.batch) + "x" + std::to_string(cv.in_channels) + "x" + std::to_string(cv.height) +
                             "x" + std::to_string(cv.width) + " k" + std::to_string(cv.kernel_h) + "x" +
                             std::to_string(cv.kernel_w) + " s" + std::to_string(cv.stride) + " p" + std::to_string(cv.padding);
      bad += compare(id, got, want, model);
      bad += compare_independently(id, cfgs[i], g, got, false);
      if (no_stalls_stretch(cfgs[i]) && got.stats.compute_cycles != compute_cycles(cfgs[i], g.shape)) ++bad;
      const std::int64_t input_bytes = (cv.batch * cv.in_channels * cv.height * cv.width * cfgs[i].a.width() + 7) / 8;
      g_cov.a_refetches += got.stats.dram.read_a > input_bytes;
      g_cov.psum_spills += got.stats.dram.read_psum > 0;
      g_cov.stalled += got.stats.stall_cycles > got.stats.compute_cycles / 2;
    }
  return bad;
}

TEST(SimSystolicConv, ConvolutionMatchesArithAndTheClosedForm) {
  const auto cfgs = cat(every_dataflow(config(Dataflow::WeightStationary, 4, 3, "int<8>", "int<8>", "int<16>")),
                        every_dataflow(config(Dataflow::WeightStationary, 3, 4, "bf16", "bf16", "bf16", Rounding::Stochastic,
                                    Overflow::Ieee)));
  EXPECT_SIM_PASSES(run_convs(cfgs, kConvShapes));
}

// Buffers too small for the input (rows evicted and fetched again, partial sums spilled) and a
// DRAM channel slower than the array: traffic and stalls equal conv_model.
TEST(SimSystolicConv, SmallBuffersAndShortBandwidthMatchTheClosedForm) {
  std::vector<ArrayConfig> cfgs;
  for (double bw : {0.7, 4.0})
    for (std::int64_t buf : {std::int64_t(20), std::int64_t(60)})
      for (ArrayConfig c : every_dataflow(config(Dataflow::WeightStationary, 3, 2, "int<8>", "int<4>", "int<20>"))) {
        c.dram_bytes_per_cycle = bw;
        c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = buf;
        cfgs.push_back(c);
      }
  EXPECT_SIM_PASSES(([&] {
    g_cov = {};
    const int bad = run_convs(cfgs, kConvShapes);
    std::fprintf(stderr, "spills %d, A refetches %d, stalled %d\n", g_cov.psum_spills, g_cov.a_refetches, g_cov.stalled);
    return bad + (g_cov.psum_spills == 0) + (g_cov.a_refetches == 0) + (g_cov.stalled == 0);
  }()));
}

// With every operand on chip, DRAM sees each tensor once: the input (rows the kernel never reaches
// excepted), the filters, and the output. Each case's bytes are worked out in its comment; int8
// operands (one byte each) and an int32 accumulator (four bytes per output).
struct OnChipCase {
  const char* name;
  ConvShape cv;
  std::int64_t read_a, read_w, write_c;
};
const std::vector<OnChipCase> kOnChip = {
    // LeNet conv1: 28x28x1 input, 5x5 kernel, 6 filters, no padding: input 784 B; filters 5*5*1*6 =
    // 150 B; output 24*24*6 = 3456 values, 13824 B.
    {"lenet conv1", {1, 1, 28, 28, 6, 5, 5, 1, 0}, 784, 150, 13824},
    // LeNet conv2: 14x14x6 input, 5x5 kernel, 16 filters: input 1176 B; filters 5*5*6*16 = 2400 B;
    // output 10*10*16 = 1600 values, 6400 B.
    {"lenet conv2", {1, 6, 14, 14, 16, 5, 5, 1, 0}, 1176, 2400, 6400},
    // 2 images of 8x8x2, 3x3 kernel, padding 1, 4 filters: input 2*2*64 = 256 B; filters 3*3*2*4 =
    // 72 B; output 2*8*8*4 = 512 values, 2048 B.
    {"padded batch", {2, 2, 8, 8, 4, 3, 3, 1, 1}, 256, 72, 2048},
    // 1x1 kernel, stride 2 over 7x7x3: output rows 0..3 read input rows 0, 2, 4, 6 only: 3 channels
    // x 4 rows x 7 bytes = 84 B; filters 3*5 = 15 B; output 4*4*5 = 80 values, 320 B.
    {"stride skips rows", {1, 3, 7, 7, 5, 1, 1, 2, 0}, 84, 15, 320},
};

TEST(SimSystolicConv, OnChipConvolutionReadsEachTensorOnceInTheClosedForm) {
  for (const OnChipCase& c : kOnChip)
    for (Dataflow d : {Dataflow::WeightStationary, Dataflow::OutputStationary})
      for (int dim : {4, 16, 32}) {
        ArraySpec spec;
        spec.rows = spec.cols = dim;
        spec.dataflow = d;
        spec.buffer_a_bytes = spec.buffer_w_bytes = spec.buffer_o_bytes = 1 << 20;
        const ArrayStats s = conv_model(spec, OperandBits{8, 8, 32}, c.cv);
        SCOPED_TRACE(std::string(c.name) + " " + std::string(to_string(d)) + " " + std::to_string(dim));
        EXPECT_EQ(s.dram.read_a, c.read_a);
        EXPECT_EQ(s.dram.read_w, c.read_w);
        EXPECT_EQ(s.dram.read_psum, 0);
        EXPECT_EQ(s.dram.write_c, c.write_c);
      }
}

TEST(SimSystolicConv, OnChipConvolutionReadsEachTensorOnceInTheArray) {
  EXPECT_SIM_PASSES(([] {
    int bad = 0, id = 0;
    std::vector<std::unique_ptr<ArrayHarness>> hs;  // all elaborated before the first run
    for (Dataflow d : {Dataflow::WeightStationary, Dataflow::OutputStationary}) {
      ArrayConfig cfg = config(d, 16, 16, "int<8>", "int<8>", "int<32>");
      cfg.buffer_a_bytes = cfg.buffer_w_bytes = cfg.buffer_o_bytes = 1 << 20;
      cfg.dram_bytes_per_cycle = 8;
      hs.push_back(std::make_unique<ArrayHarness>("onchip" + std::to_string(id++), cfg));
    }
    for (auto& h : hs) {
      const ArrayConfig& cfg = h->array().config();
      const Dataflow d = cfg.dataflow;
      for (const OnChipCase& c : kOnChip) {
        const ConvOperands ops = random_conv(cfg, c.cv, 5);
        const GemmResult got = h->run(ops);
        const GemmResult want = gemm_reference(cfg, test_im2col(c.cv, ops.ifmap, ops.filter));
        const DramTraffic& t = got.stats.dram;
        if (t.read_a != c.read_a || t.read_w != c.read_w || t.read_psum != 0 || t.write_c != c.write_c || got.c != want.c ||
            got.status != want.status) {
          ++bad;
          std::fprintf(stderr, "MISMATCH %s %s: A %lld W %lld psum %lld C %lld\n", c.name, std::string(to_string(d)).c_str(),
                       (long long)t.read_a, (long long)t.read_w, (long long)t.read_psum, (long long)t.write_c);
        }
      }
    }
    return bad;
  }()));
}

// ---- Mappings ----

// Every mapping the mapper can choose, through the array: outputs against arith, counters against
// the closed form under that mapping.
int run_mappings(const std::vector<ArrayConfig>& cfgs, const std::vector<GemmShape>& gemms, const std::vector<ConvShape>& convs,
                 int* ran) {
  std::vector<std::unique_ptr<ArrayHarness>> hs;
  for (std::size_t i = 0; i < cfgs.size(); ++i) hs.push_back(std::make_unique<ArrayHarness>("map" + std::to_string(i), cfgs[i]));
  int bad = 0;
  unsigned seed = 300;
  for (std::size_t i = 0; i < cfgs.size(); ++i) {
    const ArrayConfig& cfg = cfgs[i];
    for (const GemmShape& s : gemms) {
      const GemmOperands ops = random_operands(cfg, s, ++seed);
      const GemmResult want = gemm_reference(cfg, ops);
      for (const Mapping& m : candidate_mappings(cfg, cfg.bits(), s)) {
        const GemmResult got = hs[i]->run(ops, m);
        const std::string id = std::string(to_string(cfg.dataflow)) + (cfg.overlap ? " overlapped" : "") + " buf " + std::to_string(cfg.buffer_a_bytes) + " M,K,N=" +
                               std::to_string(s.m) + "," + std::to_string(s.k) + "," + std::to_string(s.n) + " " + m.to_string();
        bad += compare(id, got, want, array_model(cfg, s, m));
        if (no_stalls_stretch(cfg) && got.stats.compute_cycles != compute_cycles(cfg, s, m))
          ++bad, std::fprintf(stderr, "MISMATCH %s compute cycles\n", id.c_str());
        ++*ran;
      }
    }
    for (const ConvShape& cv : convs) {
      const ConvOperands ops = random_conv(cfg, cv, ++seed);
      const GemmOperands g = test_im2col(cv, ops.ifmap, ops.filter);
      const GemmResult want = gemm_reference(cfg, g);
      for (const Mapping& m : candidate_mappings(cfg, cfg.bits(), g.shape, &cv)) {
        const GemmResult got = hs[i]->run(ops, m);
        const std::string id = std::string(to_string(cfg.dataflow)) + " buf " + std::to_string(cfg.buffer_a_bytes) + " conv " +
                               std::to_string(cv.height) + "x" + std::to_string(cv.width) + " " + m.to_string();
        bad += compare(id, got, want, conv_model(cfg, cv, m));
        ++*ran;
      }
    }
  }
  return bad;
}

// Both dataflows, buffers small enough that the order decides what is refetched and spilled, a
// slow DRAM channel, integer and stochastic-float accumulation.
TEST(SimSystolicMapping, EveryCandidateMappingMatchesArithAndTheClosedForm) {
  std::vector<ArrayConfig> cfgs;
  for (std::int64_t buf : {std::int64_t(48), std::int64_t(400)})
    for (ArrayConfig c : cat(every_dataflow(config(Dataflow::WeightStationary, 3, 2, "int<8>", "int<8>", "int<16>")),
                             every_dataflow(config(Dataflow::WeightStationary, 2, 3, "bf16", "bf16", "bf16", Rounding::Stochastic,
                                         Overflow::Ieee)))) {
      c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = buf;
      c.dram_bytes_per_cycle = 2.5;
      cfgs.push_back(c);
    }
  EXPECT_SIM_PASSES(([&] {
    int ran = 0;
    const int bad = run_mappings(cfgs, {{13, 7, 5}, {20, 4, 9}}, {{1, 2, 6, 5, 3, 3, 3, 1, 1}, {2, 1, 5, 5, 2, 2, 2, 2, 0}}, &ran);
    std::fprintf(stderr, "%d mapped runs\n", ran);
    return bad + (ran < 100);
  }()));
}

// The fixed mapping is today's schedule: spelled out (order nmk, all of M per tile) or left default,
// the counts are those the hw gemm CLI test derives by hand for this GEMM (ws, 4x4, M=40 K=30 N=20,
// int8 into int32, 512-byte buffers): A 6000 B, W 600 B, psum 22400 B read, 25600 B written.
TEST(SimSystolicMapping, FixedMappingKeepsTodaysCounts) {
  ArraySpec spec;
  spec.rows = spec.cols = 4;
  spec.buffer_a_bytes = spec.buffer_w_bytes = spec.buffer_o_bytes = 512;
  spec.dram_bytes_per_cycle = 2;
  for (const Mapping& m : {Mapping{}, Mapping{LoopOrder::NMK, 0}, Mapping{LoopOrder::NMK, 40}}) {
    const ArrayStats s = array_model(spec, {8, 8, 32}, {40, 30, 20}, m);
    EXPECT_EQ(s.dram.read_a, 6000);
    EXPECT_EQ(s.dram.read_w, 600);
    EXPECT_EQ(s.dram.read_psum, 22400);
    EXPECT_EQ(s.dram.write_c, 25600);
    EXPECT_EQ(s.compute_cycles, 2020);
    EXPECT_EQ(s.cycles, 27300);
  }
  // The results narrowed to 8 bits after the array: the 22,400 B of spilled partial sums still
  // travel at 32 bits, the 800 finished results at one byte each (3,200 B at 32 bits before).
  const ArrayStats narrow = array_model(spec, {8, 8, 32, 8}, {40, 30, 20});
  EXPECT_EQ(narrow.dram.read_psum, 22400);
  EXPECT_EQ(narrow.dram.write_c, 22400 + 800);
  spec.dataflow = Dataflow::OutputStationary;
  EXPECT_EQ(array_model(spec, {8, 8, 32, 8}, {40, 30, 20}).dram.write_c, 800);
  EXPECT_EQ(array_model(spec, {8, 8, 32}, {40, 30, 20}).dram, array_model(spec, {8, 8, 32}, {40, 30, 20}, {LoopOrder::MNK, 0}).dram);
  EXPECT_THROW(array_model(spec, {8, 8, 32}, {40, 30, 20}, {LoopOrder::KMN, 0}), std::invalid_argument);
  EXPECT_THROW(array_model(spec, {8, 8, 32}, {40, 30, 20}, {LoopOrder::MNK, 8}), std::invalid_argument);
}

// The same GEMM with 32-row m-blocks (order nmk): a 32 x 4 block of int32 partial sums is 512 B and
// fits, so nothing spills; the sixteen A blocks (2 m-blocks x 8 k-folds, 1200 B together) still
// exceed 512 B and are read again for each of the 5 n-folds: 6000 B; W 600 B once; C 40*20*4 =
// 3200 B once: 9800 B. Compute: sum over tiles of 2 r + Mt + c - 1 with Fm = 2, Fk = 8, Fn = 5:
// 2 K Fm Fn + M Fk Fn + N Fm Fk - Fm Fk Fn = 600 + 1600 + 320 - 80 = 2440 cycles.
// The mapper, asked for DRAM bytes, must find a mapping at least this good.
TEST(SimSystolicMapping, MTilesKeepPartialSumsOnChip) {
  ArraySpec spec;
  spec.rows = spec.cols = 4;
  spec.buffer_a_bytes = spec.buffer_w_bytes = spec.buffer_o_bytes = 512;
  const OperandBits bits{8, 8, 32};
  const GemmShape g{40, 30, 20};
  const ArrayStats s = array_model(spec, bits, g, {LoopOrder::NMK, 32});
  EXPECT_EQ(s.dram.read_psum, 0);
  EXPECT_EQ(s.dram.read_a, 6000);
  EXPECT_EQ(s.dram.read_w, 600);
  EXPECT_EQ(s.dram.write_c, 3200);
  EXPECT_EQ(s.compute_cycles, 2440);
  EXPECT_EQ(compute_cycles(spec, g, {LoopOrder::NMK, 32}), 2440);
  const MappingChoice best = best_mapping(spec, bits, g, dram_bytes_metric);
  EXPECT_LE(best.stats.dram.total(), 9800);
  EXPECT_EQ(best.fixed_stats.dram.total(), 54600);
  EXPECT_GT(best.candidates, 6);
  // A metric is any function of the counts that does not decrease as they grow: ranked by the O
  // buffer's accesses, the candidate with the fewest wins.
  auto o_accesses = [](const ArrayStats& st) { return st.buf_o.reads + st.buf_o.writes; };
  std::int64_t fewest = std::numeric_limits<std::int64_t>::max();
  for (const Mapping& m : candidate_mappings(spec, bits, g)) fewest = std::min(fewest, o_accesses(array_model(spec, bits, g, m)));
  EXPECT_EQ(o_accesses(best_mapping(spec, bits, g, [&](const ArrayStats& st) { return double(o_accesses(st)); }).stats), fewest);
}

// The closed form refuses what it cannot count, with one line naming the field.
TEST(SimSystolicMapping, SpecBitsAndMappingsAreValidated) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ArraySpec spec;
  const GemmShape g{8, 8, 8};
  spec.rows = 0;
  EXPECT_NE(message([&] { array_model(spec, {8, 8, 32}, g); }).find("bad array 0x16"), std::string::npos);
  spec.rows = 16;
  EXPECT_NE(message([&] { array_model(spec, {0, 8, 32}, g); }).find("operand widths"), std::string::npos);
  EXPECT_NE(message([&] { array_model(spec, {8, 8, 129}, g); }).find("accumulator width"), std::string::npos);
  EXPECT_NE(message([&] { array_model(spec, {8, 8, 32}, g, {LoopOrder::MKN, -1}); }).find("M tile -1"), std::string::npos);
  // An M tile larger than M is all of M.
  EXPECT_EQ(resolve({LoopOrder::MKN, 100}, Dataflow::WeightStationary, g), (Mapping{LoopOrder::MKN, 8}));
  EXPECT_EQ(resolve({}, Dataflow::OutputStationary, g), (Mapping{LoopOrder::MNK, 0}));
  EXPECT_EQ(Mapping{}.to_string(), "fixed");
  EXPECT_EQ((Mapping{LoopOrder::KNM, 64}).to_string(), "order knm, M tile 64");
}

// ---- Overlapped tiles ----

// kShapes and GEMMs where a last, shorter k-fold would stream before the previous fold's partial
// sums have left the array but for the partial-sum rule: one output column, a row or two of M.
std::vector<GemmShape> overlap_shapes() {
  std::vector<GemmShape> s = kShapes;
  s.insert(s.end(), {{1, 14, 1}, {2, 11, 1}, {1, 8, 2}, {3, 10, 1}, {2, 7, 1}});
  return s;
}

// With overlap the tiles run through the array together: every output still equals arith and the
// independent reference bit for bit (stochastic rounding included), and cycles, compute cycles,
// buffer accesses and DRAM traffic equal the closed form's timeline. The array's datapath throws
// on any hazard the controller's rules let through.
TEST(SimSystolicOverlap, GemmsMatchArithAndTheClosedForm) {
  const auto cfgs = overlapped(cat(cat(every_dataflow(config(Dataflow::WeightStationary, 4, 4, "int<8>", "int<8>", "int<16>")),
                                       every_dataflow(config(Dataflow::WeightStationary, 3, 5, "fixed<8,4>", "fixed<6,5>", "fixed<12,6>",
                                                             Rounding::Stochastic, Overflow::SaturateSymmetric))),
                                   every_dataflow(config(Dataflow::WeightStationary, 2, 3, "bf16", "bf16", "bf16", Rounding::Stochastic,
                                                         Overflow::Ieee))));
  EXPECT_SIM_PASSES(run_all(cfgs, overlap_shapes()));
}

TEST(SimSystolicOverlap, SmallBuffersAndShortBandwidthMatchTheClosedForm) {
  std::vector<ArrayConfig> cfgs;
  for (double bw : {0.7, 3.0, 64.0})
    for (std::int64_t buf : {std::int64_t(24), std::int64_t(100), std::int64_t(1) << 20})
      for (ArrayConfig c : overlapped(every_dataflow(config(Dataflow::WeightStationary, 4, 3, "int<8>", "int<4>", "int<20>")))) {
        c.dram_bytes_per_cycle = bw;
        c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = buf;
        c.out_bits = buf == 100 ? 8 : 0;
        cfgs.push_back(c);
      }
  EXPECT_SIM_PASSES(([&] {
    g_cov = {};
    const int bad = run_all(cfgs, overlap_shapes());
    std::fprintf(stderr, "spills %d, A refetches %d, W refetches %d, stalled %d\n", g_cov.psum_spills, g_cov.a_refetches,
                 g_cov.w_refetches, g_cov.stalled);
    return bad + (g_cov.psum_spills == 0) + (g_cov.a_refetches == 0) + (g_cov.w_refetches == 0) + (g_cov.stalled == 0);
  }()));
}

TEST(SimSystolicOverlap, ConvolutionsMatchArithAndTheClosedForm) {
  std::vector<ArrayConfig> cfgs = overlapped(cat(every_dataflow(config(Dataflow::WeightStationary, 4, 3, "int<8>", "int<8>", "int<16>")),
                                                 every_dataflow(config(Dataflow::WeightStationary, 3, 4, "bf16", "bf16", "bf16",
                                                                       Rounding::Stochastic, Overflow::Ieee))));
  for (ArrayConfig c : overlapped(every_dataflow(config(Dataflow::WeightStationary, 3, 2, "int<8>", "int<4>", "int<20>")))) {
    c.dram_bytes_per_cycle = 0.7;
    c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = 20;
    cfgs.push_back(c);
  }
  EXPECT_SIM_PASSES(run_convs(cfgs, kConvShapes));
}

TEST(SimSystolicOverlap, EveryCandidateMappingMatchesArithAndTheClosedForm) {
  std::vector<ArrayConfig> cfgs;
  for (std::int64_t buf : {std::int64_t(48), std::int64_t(400)})
    for (double bw : {0.0, 2.5})
      for (ArrayConfig c : overlapped(every_dataflow(config(Dataflow::WeightStationary, 3, 2, "int<8>", "int<8>", "int<16>")))) {
        c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = buf;
        c.dram_bytes_per_cycle = bw;
        cfgs.push_back(c);
      }
  EXPECT_SIM_PASSES(([&] {
    int ran = 0;
    const int bad = run_mappings(cfgs, {{13, 7, 5}, {20, 4, 9}, {2, 9, 7}}, {{1, 2, 6, 5, 3, 3, 3, 1, 1}}, &ran);
    std::fprintf(stderr, "%d mapped runs\n", ran);
    return bad + (ran < 100);
  }()));
}

}  // namespace
