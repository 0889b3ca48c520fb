// Stochastic rounding verified exactly: over all 2^k random values the mean result equals the
// input to the resolution k allows (exactly, when the fraction has at most k bits); plus a
// statistical test of the real Philox stream and thread-count independence.
#include <gtest/gtest.h>

// GCC 12 reports a false "may be used uninitialized" inside Boost's cpp_int limbs once inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/multiprecision/cpp_int.hpp>
#include <random>
#include <thread>
#include <vector>

#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/quantize.hpp"

using namespace bitsim::arith;
using boost::multiprecision::cpp_rational;

namespace {

cpp_rational rational(const Exact& x) {
  cpp_rational v = cpp_rational(boost::multiprecision::cpp_int(std::uint64_t(x.sig >> 64)) << 64) +
                   cpp_rational(std::uint64_t(x.sig));
  v *= x.exp >= 0 ? cpp_rational(boost::multiprecision::cpp_int(1) << x.exp)
                  : cpp_rational(1, boost::multiprecision::cpp_int(1) << -x.exp);
  return x.neg ? -v : v;
}

// The sum over r of the results, minus 2^k * x, in units of one LSB of the result grid.
cpp_rational bias_in_lsb(const Format& f, const Exact& x, int k, const cpp_rational& lsb) {
  cpp_rational sum = 0;
  for (std::uint32_t r = 0; r < (1u << k); ++r)
    sum += rational(decode(f, quantize(f, x, {Rounding::Stochastic, default_overflow(f), k}, r).code));
  return (sum - rational(x) * (1 << k)) / ((1 << k) * lsb);
}

}  // namespace

TEST(StochasticRounding, ExpectationIsExactWhenTheFractionHasKBits) {
  const Format f = Format::parse("fixed<8,2>");
  const cpp_rational lsb(1, 4);
  for (int k : {1, 2, 4, 8}) {
    // x = n / 2^(2 + k): every fraction of an LSB that k bits can hold, both signs, in range.
    for (int n = -(20 << k); n <= (20 << k); ++n) {
      const Exact x = Exact::from_int(n, -(2 + k));
      ASSERT_EQ(bias_in_lsb(f, x, k, lsb), 0) << "k=" << k << " n=" << n;
    }
  }
}

TEST(StochasticRounding, ExpectationIsWithinTwoToMinusKOfAnLsbOtherwise) {
  std::mt19937 rng(21);
  for (const char* spec : {"fixed<10,4>", "fp8e4m3", "bf16", "fp16"}) {
    const Format f = Format::parse(spec);
    for (int k : {3, 6, 9}) {
      for (int i = 0; i < 200; ++i) {
        // Random values with 30 significant bits inside the format's range, away from overflow.
        const Exact x = Exact::from_int(std::int64_t(rng() >> 2) - (1 << 29), -30 + int(rng() % 6));
        // One LSB at x: the gap between its floor and ceiling on the format's grid.
        const cpp_rational hi = rational(decode(f, quantize(f, x, {Rounding::Up, default_overflow(f)}).code));
        const cpp_rational lo2 = rational(decode(f, quantize(f, x, {Rounding::Down, default_overflow(f)}).code));
        const cpp_rational lsb = hi - lo2;
        if (lsb == 0) continue;  // x is on the grid
        const cpp_rational b = bias_in_lsb(f, x, k, lsb);
        ASSERT_LT(abs(b), cpp_rational(1, 1 << k)) << spec << " k=" << k << " i=" << i;
      }
    }
  }
}

// The real generator: 0.3 LSB rounds up with probability floor(0.3 * 2^16) / 2^16 (two's complement
// fraction of a positive value); over 4M elements the count lies within 5 standard deviations.
TEST(StochasticRounding, PhiloxStreamRoundsUpAtTheRightRate) {
  const Format f = Format::parse("fixed<8,0>");
  const std::size_t n = std::size_t{1} << 22;
  std::vector<float> in(n, 2.3f), out(n);
  quantize_f32(f, {Rounding::Stochastic, Overflow::Saturate, 16}, in, out, SrStream{99, 5});
  double ups = 0;
  for (float v : out) ups += v == 3.0f;
  const double p = std::floor(double(2.3f - 2.0f) * 65536) / 65536;
  const double sd = std::sqrt(double(n) * p * (1 - p));
  EXPECT_NEAR(ups, double(n) * p, 5 * sd);
}

TEST(StochasticRounding, SameResultsWithOneOrFourThreads) {
  const Format f = Format::parse("fp8e4m3");
  const RoundSpec spec{Rounding::Stochastic, Overflow::Saturate, 16};
  const std::size_t n = 1 << 20;
  std::vector<float> in(n), one(n), four(n);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 3);
  for (auto& v : in) v = d(rng);
  const SrStream sr{1234, 42};
  quantize_f32(f, spec, in, one, sr, 0);
  std::vector<std::thread> pool;
  const std::size_t part = n / 4 + 3;  // uneven parts, not multiples of a Philox block
  for (std::size_t t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      const std::size_t lo = std::min(n, t * part), hi = std::min(n, (t + 1) * part);
      quantize_f32(f, spec, std::span<const float>(in).subspan(lo, hi - lo),
                   std::span<float>(four).subspan(lo, hi - lo), sr, lo);
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(one, four);
}
