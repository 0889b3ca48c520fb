// nn::gemm against the scalar reference (arith::Accumulator per output, k ascending) on random
// layers, for each path it chooses, both transposes, one to several blocks of rows, and any
// thread count.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "bitsim/arith/float_mac.hpp"
#include "bitsim/arith/gemm_int8.hpp"
#include "bitsim/arith/kernels.hpp"
#include "bitsim/nn/gemm.hpp"
#include "bitsim/nn/numerics.hpp"

using namespace bitsim;
using namespace bitsim::nn;
using arith::Format;

namespace {

std::vector<float> random_values(const Format& f, std::size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  arith::quantize_f32(f, {arith::Rounding::NearestEven, arith::default_overflow(f)}, v, v);
  return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct Case {
  const char *a, *b, *acc, *rounding, *overflow;
  float scale_a, scale_b;
  GemmPath path;  // the path the larger shapes take (small ones may prove exactness instead)
};

// Checks one shape; returns the path taken.
GemmPath check(const Case& c, std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, unsigned seed) {
  std::mt19937 rng(seed);
  const Format fa = Format::parse(c.a), fb = Format::parse(c.b);
  const std::vector<float> a = random_values(fa, std::size_t(m * k), rng, c.scale_a);
  const std::vector<float> b = random_values(fb, std::size_t(k * n), rng, c.scale_b);
  const Accumulation acc = Accumulation::parse(c.acc, c.rounding, c.overflow, 12);
  const arith::SrStream sr{3, 1000};
  GemmPath path = GemmPath::Fp32;
  std::vector<float> want(std::size_t(m * n)), got(std::size_t(m * n));
  gemm_reference(acc, fa, fb, ta, tb, m, n, k, a.data(), b.data(), want.data(), sr);
  for (int t : {1, 2, 3}) {
    set_threads(t);
    const GemmPath p = path = gemm(acc, fa, fb, ta, tb, m, n, k, a.data(), b.data(), got.data(), sr);
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(same_bits(got[i], want[i])) << c.a << " x " << c.b << " -> " << c.acc << " " << to_string(p) << " M,N,K="
                                              << m << "," << n << "," << k << " ta=" << ta << " tb=" << tb
                                              << " threads=" << t << " output " << i << " got " << got[i] << " want " << want[i];
  }
  set_threads(0);
  return path;
}

// 8-bit codes take arith's int8 GEMM where the CPU has SIMD for it, else SGEMM.
const GemmPath kInt8 = arith::best_int8_kernel() == arith::Int8Kernel::Scalar ? GemmPath::ExactFp32 : GemmPath::ExactInt8;
// Float accumulators take arith's FloatMac where the CPU has AVX-512, else MacDatapath.
const GemmPath kFloatMac = arith::FloatMac::available() ? GemmPath::OrderFaithfulSimd : GemmPath::OrderFaithful;

const Case kCases[] = {
    // Fixed point into int32: the sum cannot overflow, and its integers fit int32, fp32 or fp64.
    {"fixed<8,6>", "fixed<8,7>", "int<32>", "nearest-even", "saturate", 1.0f, 0.5f, kInt8},
    {"fixed<10,6>", "fixed<10,7>", "int<32>", "nearest-even", "saturate", 1.0f, 0.5f, GemmPath::ExactFp32},
    {"fixed<12,6>", "fixed<12,7>", "int<48>", "nearest-even", "saturate", 30.0f, 15.0f, GemmPath::ExactFp64},
    // A 16-bit accumulator that does saturate: order matters, so the order-faithful path.
    {"int<8>", "int<8>", "int<16>", "nearest-even", "saturate", 60.0f, 60.0f, GemmPath::OrderFaithful},
    {"int<8>", "int<8>", "int<16>", "nearest-even", "wrap", 60.0f, 60.0f, GemmPath::OrderFaithful},
    // fp8 and fp16 products are exact in fp32: native fp32 adds in k order.
    {"fp8e4m3", "fp8e4m3", "fp32", "nearest-even", "ieee", 1.0f, 1.0f, GemmPath::OrderedFp32},
    {"fp16", "fp16", "fp32", "nearest-even", "ieee", 1.0f, 1.0f, GemmPath::OrderedFp32},
    // Narrow float accumulators, stochastic accumulation, bf16 products (wider than fp32's exponent).
    {"fp8e4m3", "fp8e5m2", "fp16", "nearest-even", "ieee", 1.0f, 1.0f, kFloatMac},
    {"bf16", "bf16", "fp32", "nearest-even", "ieee", 1.0f, 1.0f, kFloatMac},
    {"bf16", "bf16", "bf16", "stochastic", "ieee", 1.0f, 1.0f, kFloatMac},
    // A format FloatMac does not take (no subnormals): MacDatapath, one add at a time.
    {"fp16", "fp16", "float<5,10,ftz>", "nearest-even", "ieee", 1.0f, 1.0f, GemmPath::OrderFaithful},
    {"fixed<8,4>", "fixed<8,4>", "int<24>", "stochastic", "saturate", 4.0f, 4.0f, kInt8},
};

}  // namespace

TEST(NnGemm, EveryPathEqualsTheScalarReference) {
  unsigned seed = 1;
  for (const Case& c : kCases) {
    bool took_path = false;
    for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1}, {7, 5, 33}, {40, 3, 100}, {65, 17, 9}, {300, 6, 13}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const GemmPath p = check(c, m, n, k, ta, tb, ++seed);
          EXPECT_TRUE(p == c.path || p == kInt8 || p == GemmPath::ExactFp32 || p == GemmPath::ExactFp64) << c.a << " x " << c.b << " -> " << c.acc << ": " << to_string(p);
          took_path = took_path || p == c.path;
        }
    EXPECT_TRUE(took_path) << c.a << " x " << c.b << " -> " << c.acc << " never took " << to_string(c.path);
  }
}

// Operands of at most 8 bits take the int8 GEMM whenever int32 provably holds every sum, SGEMM's
// cases (bound below 2^24) and DGEMM's (bound from 2^24 to 2^31) alike; past the accumulator's
// range, or where the scaled result could leave fp32's normal range, another path, still exact.
TEST(NnGemm, EightBitOperandsTakeTheInt8PathWhenInt32HoldsEverySum) {
  if (kInt8 != GemmPath::ExactInt8) GTEST_SKIP() << "no SIMD int8 GEMM on this CPU";
  struct Int8Case {
    Case c;
    std::int64_t m, n, k;
  };
  // Scales of about 64 codes.
  const float lsb_63 = std::ldexp(1.0f, -57), lsb_m48 = std::ldexp(1.0f, 54), lsb_m49 = std::ldexp(1.0f, 55),
              lsb_70 = std::ldexp(1.0f, -64);
  const Int8Case cases[] = {
      // Was SGEMM: K max|a| max|b| < 2^24 product LSBs. Signed and unsigned codes.
      {{"fixed<8,6>", "fixed<8,7>", "int<32>", "nearest-even", "saturate", 1.0f, 0.5f, GemmPath::ExactInt8}, 37, 45, 70},
      {{"ufixed<8,8>", "fixed<8,4>", "int<32>", "nearest-even", "saturate", 0.5f, 4.0f, GemmPath::ExactInt8}, 33, 17, 129},
      {{"fixed<4,2>", "ufixed<6,1>", "int<32>", "nearest-even", "saturate", 1.0f, 20.0f, GemmPath::ExactInt8}, 9, 50, 31},
      // Was DGEMM: codes at their extremes, K = 3000: the bound is about 2^25.6.
      {{"int<8>", "fixed<8,3>", "int<32>", "nearest-even", "saturate", 1000.0f, 1000.0f, GemmPath::ExactInt8}, 5, 19, 3000},
      // The formats' bound is 2^31.1, the data's below 2^29: the data decides.
      {{"int<8>", "int<8>", "int<32>", "nearest-even", "saturate", 10.0f, 10.0f, GemmPath::ExactInt8}, 2, 3, 140000},
      // The product LSB at the ends of the range where float(sum) 2^-(fl_a + fl_b) stays normal.
      {{"fixed<8,63>", "fixed<8,63>", "int<32>", "nearest-even", "saturate", lsb_63, lsb_63, GemmPath::ExactInt8}, 4, 5, 40},
      {{"fixed<8,-48>", "fixed<8,-48>", "int<32>", "nearest-even", "saturate", lsb_m48, lsb_m48, GemmPath::ExactInt8}, 4, 5, 40},
      // Past them: SGEMM, or fp64 sums rounded to fp32 (subnormal results included).
      {{"fixed<8,-48>", "fixed<8,-49>", "int<32>", "nearest-even", "saturate", lsb_m48, lsb_m49, GemmPath::ExactFp32}, 4, 5, 40},
      {{"fixed<8,70>", "fixed<8,70>", "int<32>", "nearest-even", "saturate", lsb_70, lsb_70, GemmPath::ExactFp64}, 4, 5, 40},
      // Bound 2^31.1 at the codes' extremes: too large for int32, DGEMM into int<48> holds it.
      {{"int<8>", "int<8>", "int<48>", "nearest-even", "saturate", 1000.0f, 1000.0f, GemmPath::ExactFp64}, 2, 3, 140000},
      // Bound 2^24 but a 24-bit accumulator that saturates: the order matters.
      {{"int<8>", "int<8>", "int<24>", "nearest-even", "saturate", 1000.0f, 1000.0f, GemmPath::OrderFaithful}, 2, 3, 1024},
  };
  unsigned seed = 100;
  for (const Int8Case& t : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        EXPECT_EQ(check(t.c, t.m, t.n, t.k, ta, tb, ++seed), t.c.path) << t.c.a << " x " << t.c.b << " -> " << t.c.acc << " K=" << t.k;
}

// Fixed-point operands into a float accumulator round on every add, as the array's float adder
// does: no exact path, even where the sums are a few product LSBs (here 2^-40, below fp16's
// smallest subnormal, so every add flushes to zero).
TEST(NnGemm, FixedPointIntoAFloatAccumulatorRoundsEveryAdd) {
  const Case c{"fixed<8,20>", "fixed<8,20>", "fp16", "nearest-even", "ieee", std::ldexp(1.0f, -19), std::ldexp(1.0f, -19),
               kFloatMac};
  unsigned seed = 200;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) EXPECT_EQ(check(c, 9, 7, 3, ta, tb, ++seed), kFloatMac);
}

// The vector path for float accumulators against the scalar reference, and against MacDatapath one
// add at a time (the path forced off): every float accumulator and mode FloatMac takes, N around
// and not a multiple of the 16 outputs a tile spans, K up to a few hundred, both transposes, 1 to 3
// threads; operands wide enough to overflow fp16 and fp8 and to reach their subnormals.
TEST(NnGemm, OrderFaithfulSimdEqualsOneMacDatapathStepPerAdd) {
  if (!arith::FloatMac::available()) GTEST_SKIP() << "this CPU has no AVX-512F and DQ";
  const Case cases[] = {
      {"fp16", "fp16", "fp16", "nearest-even", "ieee", 1.0f, 1.0f, GemmPath::OrderFaithfulSimd},
      {"fp16", "fp16", "fp16", "stochastic", "saturate", 40.0f, 40.0f, GemmPath::OrderFaithfulSimd},
      {"fp8e4m3", "fp8e4m3", "fp16", "stochastic", "ieee", 0.01f, 1.0f, GemmPath::OrderFaithfulSimd},
      {"bf16", "bf16", "bf16", "nearest-even", "saturate", 1.0f, 1.0f, GemmPath::OrderFaithfulSimd},
      {"bf16", "bf16", "bf16", "stochastic", "ieee", 1e-20f, 1e-20f, GemmPath::OrderFaithfulSimd},
      {"fp8e5m2", "fp8e4m3", "bf16", "nearest-even", "ieee", 1.0f, 1.0f, GemmPath::OrderFaithfulSimd},
      {"fp8e4m3", "fp8e4m3", "fp8e4m3", "nearest-even", "ieee", 3.0f, 3.0f, GemmPath::OrderFaithfulSimd},
      {"fp8e5m2", "fp8e5m2", "fp8e5m2", "stochastic", "saturate", 1.0f, 1.0f, GemmPath::OrderFaithfulSimd},
      {"bf16", "bf16", "fp32", "stochastic", "ieee", 1.0f, 1.0f, GemmPath::OrderFaithfulSimd},
  };
  unsigned seed = 300;
  for (const Case& c : cases)
    for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1}, {5, 15, 64}, {33, 17, 300},
                           {37, 20, 100}, {3, 64, 256}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          EXPECT_EQ(check(c, m, n, k, ta, tb, ++seed), GemmPath::OrderFaithfulSimd) << c.a << " x " << c.b << " -> " << c.acc;
          if (n != 15) continue;
          set_gemm_paths(kAllGemmPaths & ~path_bit(GemmPath::OrderFaithfulSimd));
          EXPECT_EQ(check(c, m, n, k, ta, tb, seed), GemmPath::OrderFaithful) << c.a << " x " << c.b << " -> " << c.acc;
          set_gemm_paths(kAllGemmPaths);
        }
}

// The fp32 reference path (OpenBLAS) agrees with fp64 sums to fp32 rounding error.
TEST(NnGemm, Fp32PathIsCloseToExactSums) {
  std::mt19937 rng(4);
  const Format f32 = Format::floating(8, 23);
  const std::int64_t m = 50, n = 30, k = 200;
  const auto a = random_values(f32, std::size_t(m * k), rng, 1), b = random_values(f32, std::size_t(k * n), rng, 1);
  std::vector<float> got(std::size_t(m * n)), want(got.size());
  const Accumulation acc;
  EXPECT_EQ(gemm(acc, f32, f32, false, false, m, n, k, a.data(), b.data(), got.data()), GemmPath::Fp32);
  gemm_reference(acc, f32, f32, false, false, m, n, k, a.data(), b.data(), want.data());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * std::sqrt(double(k))) << i;
}

// An integer accumulator with an operand that is not on its format's grid is an error, not a guess.
TEST(NnGemm, OperandOffItsFormatIsAnError) {
  const Format f = Format::parse("int<8>");
  const float a[] = {0.5f}, b[] = {1.0f};
  float c[1];
  EXPECT_THROW(gemm(Accumulation::parse("int<10>"), f, f, false, false, 1, 1, 1, a, b, c), std::invalid_argument);
}

// gemm_together runs independent GEMMs as one job: every call's output, and the path it takes,
// must be gemm()'s for that call alone, for any thread count, across every path, shapes of one to
// many row blocks (one of no rows), both transposes, the fp32 reference among them, and more calls
// than it holds at once.
TEST(NnGemm, TogetherEqualsEachGemmAlone) {
  struct Operands {
    std::vector<float> a, b, alone, together;
  };
  std::mt19937 rng(21);
  std::vector<GemmCall> calls;
  std::vector<Operands> data;
  data.reserve(80);
  for (int round = 0; round < 3; ++round)
    for (std::size_t ci = 0; ci <= std::size(kCases); ++ci) {
      const bool fp32 = ci == std::size(kCases);  // the float reference
      const Case& c = kCases[fp32 ? 0 : ci];
      const Format fa = fp32 ? Format::fp32() : Format::parse(c.a), fb = fp32 ? Format::fp32() : Format::parse(c.b);
      const std::int64_t m = std::array<std::int64_t, 4>{1, 0, 70, 33}[(ci + std::size_t(round)) % 4];
      const std::int64_t n = 1 + std::int64_t(rng() % 20), k = 1 + std::int64_t(rng() % 60);
      Operands& d = data.emplace_back();
      d.a = random_values(fa, std::size_t(m * k), rng, fp32 ? 1.0f : c.scale_a);
      d.b = random_values(fb, std::size_t(k * n), rng, fp32 ? 1.0f : c.scale_b);
      d.alone.assign(std::size_t(m * n), 0.0f);
      d.together.assign(std::size_t(m * n), -1.0f);
      const Accumulation acc = fp32 ? Accumulation{} : Accumulation::parse(c.acc, c.rounding, c.overflow, 12);
      calls.push_back({acc, fa, fb, (ci & 1) != 0, (ci & 2) != 0, m, n, k, d.a.data(), d.b.data(), d.together.data(),
                       arith::SrStream{5, 100 * ci}, true});
    }
  ASSERT_GT(calls.size(), 32u);  // past the calls held at once
  std::vector<GemmPath> alone;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const GemmCall& g = calls[i];
    alone.push_back(gemm(g.acc, g.fa, g.fb, g.trans_a, g.trans_b, g.m, g.n, g.k, g.a, g.b, data[i].alone.data(), g.sr));
  }
  for (int t : {1, 2, 3}) {
    set_threads(t);
    for (Operands& d : data) std::fill(d.together.begin(), d.together.end(), -1.0f);
    const std::vector<GemmPath> paths = gemm_together(calls);
    ASSERT_EQ(paths.size(), calls.size());
    for (std::size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(paths[i], alone[i]) << "call " << i << " threads " << t;
      for (std::size_t e = 0; e < data[i].alone.size(); ++e)
        ASSERT_TRUE(same_bits(data[i].together[e], data[i].alone[e]))
            << "call " << i << " (" << to_string(paths[i]) << ") output " << e << " threads " << t;
    }
  }
  set_threads(0);
  EXPECT_TRUE(gemm_together({}).empty());
}

// Per-channel weights come in one fixed-point format wide enough for every channel's scale; each
// column of op(B) still holds 8-bit codes at its own scale, and the int8 GEMM takes them, each
// column's sums at its scale. Equal to the reference bit for bit, with B stored either way; a
// column whose values need more than 8 bits at every scale leaves the int8 path, still exact.
TEST(NnGemm, PerChannelWeightsTakeTheInt8PathColumnByColumn) {
  if (kInt8 != GemmPath::ExactInt8) GTEST_SKIP() << "no SIMD int8 GEMM on this CPU";
  const std::int64_t m = 70, n = 9, k = 40;
  std::mt19937 rng(8);
  const Format fa = Format::parse("fixed<8,5>");
  const std::vector<float> a = random_values(fa, std::size_t(m * k), rng, 1.0f);
  // Column j: codes in [-127, 127] at fl_j = 2 + 3 j % 11: the covering format is fixed<8 + 10, 12>.
  const Format fb = Format::fixed(18, 12);
  std::uniform_int_distribution<int> code(-127, 127);
  for (const bool wide_column : {false, true})
    for (const bool tb : {false, true}) {
      std::vector<float> b(std::size_t(k * n));
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t j = 0; j < n; ++j) {
          const int fl = 2 + int(3 * j % 11);
          int c = code(rng);
          if (wide_column && j == 4 && kk == 7) c = 255;  // 9 bits at fl_4, and odd: no coarser scale
          b[std::size_t(tb ? j * k + kk : kk * n + j)] = std::ldexp(float(c), -fl);
        }
      const Accumulation acc = Accumulation::parse("int<32>");
      std::vector<float> got(std::size_t(m * n)), want(got.size());
      gemm_reference(acc, fa, fb, false, tb, m, n, k, a.data(), b.data(), want.data());
      const GemmPath p = gemm(acc, fa, fb, false, tb, m, n, k, a.data(), b.data(), got.data());
      EXPECT_EQ(p == GemmPath::ExactInt8, !wide_column) << "tb=" << tb << " took " << to_string(p);
      for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_TRUE(same_bits(got[i], want[i])) << "tb=" << tb << " wide=" << wide_column << " output " << i;
    }
  // A caller that vouches for operands which are not what it says (unchecked): a negative value in
  // an unsigned wide B has no codes at any shift; another path takes the GEMM, and it ends.
  const Format ub = Format::parse("ufixed<12,4>");
  std::vector<float> b(std::size_t(k * n), 1.0f);
  b[3] = -2.0f;
  std::vector<float> got(std::size_t(m * n));
  EXPECT_NE(gemm(Accumulation::parse("int<32>"), fa, ub, false, false, m, n, k, a.data(), b.data(), got.data(), {}, false),
            GemmPath::ExactInt8);
}

// A single block of rows over a long K (a convolution's weight gradient, summed over a batch of
// pixels) splits K across the work items; the chunks' int32 sums must add up to the exact sums,
// for any thread count, with A and B stored either way and K not a whole number of chunks.
TEST(NnGemm, Int8SplitsALongKExactly) {
  if (kInt8 != GemmPath::ExactInt8) GTEST_SKIP() << "no SIMD int8 GEMM on this CPU";
  const Case c{"fixed<8,4>", "fixed<8,6>", "int<32>", "nearest-even", "saturate", 4.0f, 1.0f, GemmPath::ExactInt8};
  for (bool ta : {false, true})
    for (bool tb : {false, true}) EXPECT_EQ(check(c, 6, 25, 9000, ta, tb, 70 + 2 * ta + tb), GemmPath::ExactInt8);
}
