// FloatMac, the vector MAC step for float accumulators, against the scalar MacDatapath: every
// accumulator code of fp16, bf16 and the fp8 formats against operand pairs with zeros, subnormals,
// the extremes, inf and nan, and its GEMM rows against one MacDatapath step per add.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "float_mac_check.hpp"

using namespace bitsim::arith;
using namespace bitsim::arith::testing;

namespace {

#define SKIP_WITHOUT_AVX512() \
  if (!FloatMac::available()) GTEST_SKIP() << "this CPU has no AVX-512F and DQ"

const RoundSpec kSpecs[] = {{Rounding::NearestEven, Overflow::Ieee},
                            {Rounding::NearestEven, Overflow::Saturate},
                            {Rounding::Stochastic, Overflow::Ieee, 16},
                            {Rounding::Stochastic, Overflow::Saturate, 3}};

}  // namespace

TEST(FloatMac, SupportsSignedFloatsWithSubnormalsUnderNearestEvenAndStochastic) {
  const RoundSpec rne{Rounding::NearestEven, Overflow::Ieee};
  for (const char* f : {"fp16", "bf16", "fp8e4m3", "fp8e5m2", "tf32", "fp32", "float<10,50>"})
    EXPECT_TRUE(FloatMac::supports(Format::parse(f), rne)) << f;
  for (const char* f : {"fp64", "float<11,40>", "float<5,51>", "fp6e3m2", "float<5,10,ftz>", "int<16>"})
    EXPECT_FALSE(FloatMac::supports(Format::parse(f), rne)) << f;
  EXPECT_TRUE(FloatMac::supports(Format::fp16(), {Rounding::Stochastic, Overflow::Saturate, 32}));
  for (Rounding r : {Rounding::NearestAway, Rounding::TowardZero, Rounding::Down, Rounding::Up, Rounding::Odd})
    EXPECT_FALSE(FloatMac::supports(Format::fp16(), {r, Overflow::Ieee})) << to_string(r);
}

// Every accumulator code, as the starting value, against zeros, subnormals, the extremes, inf and
// nan of fp16, bf16 and fp8 operands, random fp32 operands, and the products whose double sum
// lands on a midpoint of the accumulator's grid; nearest-even and stochastic, IEEE and saturating.
// MacDatapath's general path (round_sum) is the time here: nearest-even with IEEE overflow, which
// it mostly rounds from double, gets the most pairs.
TEST(FloatMac, StepEqualsMacDatapathOnEveryFp16AndBf16AccumulatorCode) {
  SKIP_WITHOUT_AVX512();
  std::mt19937_64 rng(5);
  for (const char* acc : {"fp16", "bf16"}) {
    const Format fc = Format::parse(acc);
    for (const RoundSpec& spec : kSpecs) {
      const bool most = spec.rounding == Rounding::NearestEven && spec.overflow == Overflow::Ieee;
      const int stride = most ? 9 : 29, random = most ? 6 : 2;
      const Products groups[] = {corner_and_random_pairs("fp16", "fp16", stride, random, rng),
                                 corner_and_random_pairs("bf16", "bf16", stride, random, rng),
                                 corner_and_random_pairs("fp8e4m3", "fp8e5m2", stride, random, rng),
                                 random_fp32_pairs(2 * random, rng), midpoint_pairs(fc, most ? 8 : 32)};
      for (const Products& p : groups) {
        expect_step_equals_mac_datapath(fc, spec, p);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// fp8 accumulators: every code against every pair of e4m3 x e5m2 codes (all 2^24 combinations),
// e4m3 (no inf) in nearest-even with IEEE overflow, e5m2 in stochastic (k = 3) saturating; every
// operand pair of the fp8 formats in every mode under the label "long".
TEST(FloatMac, StepEqualsMacDatapathOnEveryFp8AccumulatorCodeAndOperandPair) {
  SKIP_WITHOUT_AVX512();
  Products p{Format::parse("fp8e4m3"), Format::parse("fp8e5m2"), {}};
  for (u128 a = 0; a < 256; ++a)
    for (u128 b = 0; b < 256; ++b) p.pairs.emplace_back(a, b);
  expect_step_equals_mac_datapath(Format::parse("fp8e4m3"), kSpecs[0], p);
  if (HasFatalFailure()) return;
  expect_step_equals_mac_datapath(Format::parse("fp8e5m2"), kSpecs[3], p);
}

// Stochastic rounding with one random bit (every add whose lost part is at least half an LSB
// rounds up when the bit is set) and with 32: the threshold compare at both ends of k.
TEST(FloatMac, StochasticStepEqualsMacDatapathForOneAnd32RandomBits) {
  SKIP_WITHOUT_AVX512();
  std::mt19937_64 rng(9);
  for (const char* acc : {"fp16", "bf16"}) {
    const Format fc = Format::parse(acc);
    const Products groups[] = {corner_and_random_pairs("fp16", "fp16", 11, 4, rng), random_fp32_pairs(8, rng)};
    for (int k : {1, 32})
      for (const Products& p : groups) {
        expect_step_equals_mac_datapath(fc, {Rounding::Stochastic, Overflow::Ieee, k}, p);
        if (HasFatalFailure()) return;
      }
  }
}

// FloatMac::gemm against one MacDatapath step per add, k ascending, with the stream of each output:
// row counts around the 4-row tile, column counts around the 16-column panel, both layouts of A,
// and data that overflows, underflows and holds inf and nan.
TEST(FloatMac, GemmRowsEqualOneMacDatapathStepPerAdd) {
  SKIP_WITHOUT_AVX512();
  struct Case {
    const char* acc;
    RoundSpec spec;
    float scale;  // operand magnitudes: about 2^scale
  };
  const Case cases[] = {{"fp16", {Rounding::NearestEven, Overflow::Ieee}, 0},
                        {"fp16", {Rounding::Stochastic, Overflow::Saturate, 12}, 3},
                        {"bf16", {Rounding::NearestEven, Overflow::Ieee}, -60},
                        {"bf16", {Rounding::Stochastic, Overflow::Ieee, 20}, 0},
                        {"fp8e4m3", {Rounding::NearestEven, Overflow::Ieee}, -2},
                        {"fp8e5m2", {Rounding::Stochastic, Overflow::Ieee, 5}, 2},
                        {"fp32", {Rounding::Stochastic, Overflow::Ieee, 16}, 20}};
  const Format f32 = Format::fp32();
  std::mt19937_64 rng(21);
  for (const Case& c : cases) {
    const Format fc = Format::parse(c.acc);
    const FloatMac mac(fc, c.spec);
    const MacDatapath dp(f32, f32, fc, c.spec);
    for (auto [rows, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1}, {3, 17, 40}, {9, 16, 65},
                              {4, 33, 7}, {6, 5, 300}}) {
      std::normal_distribution<float> d(0, std::ldexp(1.0f, int(c.scale)));
      std::vector<float> a(std::size_t(rows * k)), b(std::size_t(k * n));
      for (auto& v : a) v = d(rng);
      for (auto& v : b) v = std::bit_cast<float>(std::bit_cast<std::uint32_t>(d(rng)) & 0xffff0000u);  // bf16 values
      a[0] = rows * k > 3 ? INFINITY : a[0];
      if (rows * k > 5) a[5] = NAN;
      const SrStream sr{7, 1000};
      const std::uint64_t row_stride = std::uint64_t(n) + 3;
      for (bool trans_a : {false, true}) {
        std::vector<float> at(a.size());
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t kk = 0; kk < k; ++kk) at[std::size_t(kk * rows + i)] = a[std::size_t(i * k + kk)];
        const FloatMac::PackedB pb(b.data(), n, false, k, n);
        std::vector<float> got(std::size_t(rows * n));
        mac.gemm(trans_a ? at.data() : a.data(), trans_a ? rows : k, trans_a, rows, pb, got.data(), n, sr, row_stride);
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            const SrStream s{sr.seed, sr.stream + std::uint64_t(i) * row_stride + std::uint64_t(j)};
            u128 code = 0;
            for (std::int64_t kk = 0; kk < k; ++kk)
              code = dp(code, f32_code(a[std::size_t(i * k + kk)]), f32_code(b[std::size_t(kk * n + j)]),
                        c.spec.rounding == Rounding::Stochastic ? s.bits(std::uint64_t(kk), c.spec.sr_bits) : 0).code;
            const float want = to_f32(decode(fc, code)), g = got[std::size_t(i * n + j)];
            ASSERT_EQ(std::bit_cast<std::uint32_t>(g), std::bit_cast<std::uint32_t>(want))
                << c.acc << " " << to_string(c.spec.rounding) << " rows,n,k=" << rows << "," << n << "," << k
                << " trans_a=" << trans_a << " output (" << i << ", " << j << "): got " << g << ", want " << want;
          }
      }
    }
  }
}

// A transposed op(B) packs to the same panels as the untransposed one.
TEST(FloatMac, PackedBIsTheSameForBothLayouts) {
  SKIP_WITHOUT_AVX512();
  const FloatMac mac(Format::fp16(), {Rounding::NearestEven, Overflow::Ieee});
  const std::int64_t k = 5, n = 19;
  std::vector<float> b(std::size_t(k * n)), bt(b.size()), a(std::size_t(2 * k), 0.5f);
  for (std::int64_t i = 0; i < k * n; ++i) b[std::size_t(i)] = float(i % 7) - 3;
  for (std::int64_t kk = 0; kk < k; ++kk)
    for (std::int64_t j = 0; j < n; ++j) bt[std::size_t(j * k + kk)] = b[std::size_t(kk * n + j)];
  std::vector<float> c1(std::size_t(2 * n)), c2(c1.size());
  mac.gemm(a.data(), k, false, 2, FloatMac::PackedB(b.data(), n, false, k, n), c1.data(), n);
  mac.gemm(a.data(), k, false, 2, FloatMac::PackedB(bt.data(), k, true, k, n), c2.data(), n);
  EXPECT_EQ(c1, c2);
}
