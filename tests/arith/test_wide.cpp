// Wide formats (64 to 128 bits) where fp64 cannot serve as a reference: golden codes computed with
// exact rational arithmetic outside bitsim (Python fractions), written down here.
#include <gtest/gtest.h>

#include "bitsim/arith/ops.hpp"
#include "bitsim/arith/quantize.hpp"

using namespace bitsim::arith;

namespace {
u128 hex128(std::uint64_t hi, std::uint64_t lo) { return u128(hi) << 64 | lo; }
const RoundSpec kNearest{Rounding::NearestEven, Overflow::Saturate};
}  // namespace

TEST(WideFormats, DecimalInputRoundsOnceIntoFixed64) {
  const Format f = Format::parse("fixed<64,60>");
  // round(0.1 * 2^60) = 0x19999999999999a, and its negation in 64-bit two's complement.
  EXPECT_EQ(quantize(f, parse_exact("0.1"), kNearest).code, u128(0x19999999999999aull));
  EXPECT_EQ(quantize(f, parse_exact("-0.1"), kNearest).code, u128(0xfe66666666666666ull));
}

TEST(WideFormats, Fixed128RangeEnds) {
  const Format s = Format::parse("fixed<128,0>"), u = Format::parse("ufixed<128,0>");
  const u128 smax = hex128(0x7fffffffffffffffull, ~0ull);
  EXPECT_EQ(quantize(s, parse_exact("170141183460469231731687303715884105727"), kNearest).code, smax);  // 2^127-1
  const auto over = quantize(s, parse_exact("170141183460469231731687303715884105728"), kNearest);        // 2^127
  EXPECT_EQ(over.code, smax);
  EXPECT_EQ(over.status, unsigned(kOverflow | kInexact));
  EXPECT_EQ(quantize(s, parse_exact("-170141183460469231731687303715884105728"), kNearest).code, u128(1) << 127);
  EXPECT_EQ(quantize(u, parse_exact("340282366920938463463374607431768211455"), kNearest).code, ~u128(0));  // 2^128-1
  EXPECT_EQ(quantize(u, parse_exact("340282366920938463463374607431768211456"), kNearest).code, ~u128(0));
  EXPECT_EQ(max_code(u), ~u128(0));
  EXPECT_EQ(decode(u, ~u128(0)).sig, ~u128(0));
}

TEST(WideFormats, ThirdsAt126And127FractionBits) {
  // round(1/3 * 2^126) and round(2/3 * 2^127), both 0x...5555 patterns.
  EXPECT_EQ(quantize(Format::parse("fixed<128,126>"), parse_exact("0.33333333333333333333333333333333333333333333"), kNearest).code,
            hex128(0x1555555555555555ull, 0x5555555555555555ull));
  const auto two_thirds = quantize(Format::parse("ufixed<128,127>"),
                                   parse_exact("0.666666666666666666666666666666666666666666666666"), kNearest);
  EXPECT_EQ(two_thirds.code, hex128(0x5555555555555555ull, 0x5555555555555555ull));
  EXPECT_EQ(two_thirds.status, unsigned(kInexact));
}

TEST(WideFormats, ProductOfTwo64BitCodesIsExact) {
  const Format a = Format::parse("fixed<64,0>");
  const Format p = product_format(a, a);
  EXPECT_EQ(p.spec(), "fixed<128,0>");
  // (-2^63) * (-2^63) = 2^126 and (2^63 - 1)^2 = 2^126 - 2^64 + 1: both fit exactly.
  EXPECT_EQ(mul(a, u128(1) << 63, u128(1) << 63, p, kNearest).code, u128(1) << 126);
  const auto sq = mul(a, 0x7fffffffffffffffull, 0x7fffffffffffffffull, p, kNearest);
  EXPECT_EQ(sq.code, (u128(1) << 126) - (u128(1) << 64) + 1);
  EXPECT_EQ(sq.status, 0u);
}
