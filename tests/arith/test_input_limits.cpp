// Input bounds of the number parser: values beyond every format's range round as the huge or tiny
// numbers they are, long inputs parse exactly (against glibc's correctly rounded strtod and
// Boost's cpp_int) and in linear time, and over-long inputs are refused with a short message.
#include <gtest/gtest.h>

#include <boost/multiprecision/cpp_int.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "bitsim/arith/quantize.hpp"

namespace {

using namespace bitsim::arith;

const RoundSpec kNearest{Rounding::NearestEven, Overflow::Ieee};

std::uint64_t bits_of(double d) {
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

TEST(NumberLimits, DecimalExponentsPastTheBoundOverflowOrUnderflow) {
  const Format fp64 = Format::parse("fp64");
  // 1e19999 and 1e20000 sit on either side of the parser's decimal-exponent bound; both overflow.
  for (const char* text : {"1e19999", "1e20000", "1e400000", "123.5e1000000000000"}) {
    const Quantized q = quantize(fp64, parse_exact(text), kNearest);
    EXPECT_EQ(q.code, u128(0x7ff0000000000000ull)) << text;
    EXPECT_EQ(q.status, unsigned(kOverflow | kInexact)) << text;
  }
  const Quantized neg = quantize(fp64, parse_exact("-1e20000"), kNearest);
  EXPECT_EQ(neg.code, u128(0xfff0000000000000ull));
  EXPECT_EQ(neg.status, unsigned(kOverflow | kInexact));
  // Saturating formats clamp to their largest value, inexactly.
  const Quantized sat = quantize(Format::parse("int<8>"), parse_exact("1e20000"), {Rounding::NearestEven, Overflow::Saturate});
  EXPECT_EQ(sat.code, u128(0x7f));
  EXPECT_TRUE(sat.status & kOverflow);
  for (const char* text : {"1e-20000", "1e-400000", "0x1p-80000"}) {
    const Quantized q = quantize(fp64, parse_exact(text), kNearest);
    EXPECT_EQ(q.code, u128(0)) << text;
    EXPECT_EQ(q.status, unsigned(kUnderflow | kInexact)) << text;
  }
  const Quantized hex = quantize(fp64, parse_exact("0x1p80000"), kNearest);
  EXPECT_EQ(hex.code, u128(0x7ff0000000000000ull));
  EXPECT_EQ(hex.status, unsigned(kOverflow | kInexact));
  // Round toward zero keeps the largest finite value, as IEEE 754 7.4 requires.
  const Quantized rz = quantize(fp64, parse_exact("1e20000"), {Rounding::TowardZero, Overflow::Ieee});
  EXPECT_EQ(rz.code, u128(0x7fefffffffffffffull));
}

// Random decimal strings of 1 to 3,000 significant digits with exponents across fp64's range,
// rounded to fp64 by the parser + quantize and by glibc's strtod, which rounds correctly at any length.
TEST(NumberLimits, LongDecimalsRoundLikeStrtod) {
  const Format fp64 = Format::parse("fp64");
  std::mt19937_64 rng(11);
  int compared = 0;
  for (int i = 0; i < 3000; ++i) {
    const int digits = 1 + int(rng() % (i < 2000 ? 40 : 3000));
    std::string s = rng() % 2 ? "-" : "";
    const int point = int(rng() % std::uint64_t(digits + 1));
    for (int d = 0; d < digits; ++d) {
      if (d == point) s += '.';
      s += char('0' + rng() % 10);
    }
    s += 'e';
    s += std::to_string(int(rng() % 700) - 350 - digits / 2);
    errno = 0;
    const double want = std::strtod(s.c_str(), nullptr);
    const Quantized got = quantize(fp64, parse_exact(s), kNearest);
    ASSERT_EQ(std::uint64_t(got.code), bits_of(want)) << s;
    ++compared;
  }
  EXPECT_EQ(compared, 3000);
  // One number of nearly the length limit, all of whose digits matter for the sticky bit.
  std::string s = "0.";
  while (s.size() < 99'990) s += char('0' + rng() % 10);
  const Quantized got = quantize(fp64, parse_exact(s), kNearest);
  EXPECT_EQ(std::uint64_t(got.code), bits_of(std::strtod(s.c_str(), nullptr)));
}

// A 19,000-digit integer (just inside the parser's decimal-exponent bound): the parser's 128-bit significand, exponent and sticky bit against the
// same number read by Boost's cpp_int.
TEST(NumberLimits, LongIntegersMatchBoost) {
  using boost::multiprecision::cpp_int;
  std::mt19937_64 rng(5);
  std::string s = "7";
  while (s.size() < 19'000) s += char('0' + rng() % 10);
  const cpp_int v(s);
  const unsigned bits = unsigned(boost::multiprecision::msb(v)) + 1;
  const unsigned drop = bits - 128;
  const cpp_int top = v >> drop;
  const Exact x = parse_exact(s);
  EXPECT_EQ(std::uint64_t(x.sig >> 64), static_cast<std::uint64_t>(top >> 64));
  EXPECT_EQ(std::uint64_t(x.sig), static_cast<std::uint64_t>(top & UINT64_MAX));
  EXPECT_EQ(x.exp, int(drop));
  EXPECT_EQ(x.sticky, (v & ((cpp_int(1) << drop) - 1)) != 0);
}

TEST(NumberLimits, OverlongNumbersAreRefusedWithAShortMessage) {
  const std::string ok(100'000, '1');
  EXPECT_NO_THROW(parse_exact(ok));
  const std::string long_one(100'001, '1');
  try {
    parse_exact(long_one);
    FAIL() << "a 100,001-character number was accepted";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("100001 characters"), std::string::npos) << what;
    EXPECT_LT(what.size(), 200u) << what;
  }
}

TEST(NumberLimits, ErrorMessagesQuoteInputEscapedAndShort) {
  EXPECT_EQ(quoted("abc"), "'abc'");
  EXPECT_EQ(quoted("a\nb\x1b[31m"), "'a\\nb\\x1b[31m'");
  EXPECT_EQ(quoted(std::string(50, 'x'), 10), "'xxxxxxxxxx'... (50 characters)");
  try {
    parse_exact("12\x1b]0;title\x07z");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(std::strchr(e.what(), '\x1b'), nullptr) << e.what();
  }
  try {
    Format::parse(std::string(1'000'000, 'q'));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_LT(std::strlen(e.what()), 400u);
  }
}

}  // namespace
