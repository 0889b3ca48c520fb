// scale_pow2 is std::ldexp bit for bit: on every exponent where its multiply applies, across the
// normal/subnormal and overflow boundaries, on zeros, infinities and NaN, and on random doubles.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "bitsim/arith/pow2.hpp"

namespace bitsim::arith {
namespace {

void expect_same(double x, int n) {
  const double want = std::ldexp(x, n), got = scale_pow2(x, n);
  ASSERT_EQ(std::bit_cast<std::uint64_t>(got), std::bit_cast<std::uint64_t>(want))
      << "x = " << x << " (0x" << std::hex << std::bit_cast<std::uint64_t>(x) << std::dec << "), n = " << n;
}

TEST(Pow2, IsTheExactPowerOfTwo) {
  for (int n = -1022; n <= 1023; ++n) ASSERT_EQ(pow2(n), std::ldexp(1.0, n)) << n;
}

TEST(Pow2, ScaleEqualsLdexpAtTheBoundariesAndOnSpecials) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> xs{0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -7.0, 0x1.fffffffffffffp0, 0x1p-1022, 0x1p-1074,
                               -0x1p-1074, 0x1.8p-1070, 0x1.fffffffffffffp1023, -0x1p1023, inf, -inf,
                               std::numeric_limits<double>::quiet_NaN(), 123456789.0, 0x1p52, -0x1.0000000000001p-1000};
  for (double x : xs)
    for (int n = -1100; n <= 1100; ++n) expect_same(x, n);
}

TEST(Pow2, ScaleEqualsLdexpOnRandomDoubles) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> exponent(-1100, 1100);
  for (int i = 0; i < 2000000; ++i) {
    const double x = std::bit_cast<double>(rng());
    expect_same(x, exponent(rng));
    expect_same(x, int(rng() % 81) - 40);  // the shifts of fixed-point codes
  }
}

}  // namespace
}  // namespace bitsim::arith
