// Format spec parsing: canonical round trips, aliases, and clear errors naming the bad token.
#include <gtest/gtest.h>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"

using namespace bitsim::arith;

TEST(FormatParse, CanonicalSpecRoundTrips) {
  for (const char* s : {"fixed<8,4>", "ufixed<16,-2>", "fixed<1,0>", "fixed<128,64>", "fixed<4,9>",
                        "float<5,10>", "float<4,3,fn>", "float<2,1,fin>", "float<8,0,fn,u,nz>",
                        "float<5,2,ftz>", "float<8,23,u>"}) {
    const Format f = Format::parse(s);
    EXPECT_EQ(f.spec(), s);
    EXPECT_EQ(Format::parse(f.spec()), f);
  }
}

TEST(FormatParse, AliasesMatchTheirDefinitions) {
  EXPECT_EQ(Format::parse("fp32"), Format::floating(8, 23));
  EXPECT_EQ(Format::parse("bf16"), Format::floating(8, 7));
  EXPECT_EQ(Format::parse("fp8e4m3"), Format::floating(4, 3, NonFinite::NanOnly));
  EXPECT_EQ(Format::parse("fp4e2m1").width(), 4);
  EXPECT_EQ(Format::parse("fp6e3m2").width(), 6);
  EXPECT_EQ(Format::parse("e8m0").width(), 8);
  EXPECT_EQ(Format::parse("int<8>"), Format::fixed(8, 0));
  EXPECT_EQ(Format::parse("uint<4>"), Format::fixed(4, 0, false));
}

TEST(FormatParse, ExponentRangesOfNamedFormats) {
  // IEEE 754 Table 3.5 and OCP MX v1.0 Table 1.
  EXPECT_EQ(Format::parse("fp32").emax(), 127);
  EXPECT_EQ(Format::parse("fp32").emin(), -126);
  EXPECT_EQ(Format::parse("fp16").emax(), 15);
  EXPECT_EQ(Format::parse("fp8e4m3").emax(), 8);
  EXPECT_EQ(Format::parse("fp8e5m2").emax(), 15);
  EXPECT_EQ(Format::parse("fp6e2m3").emax(), 2);
  EXPECT_EQ(Format::parse("e8m0").emax(), 127);
  EXPECT_EQ(Format::parse("e8m0").emin(), -127);
}

void expect_error(const char* spec, const char* needle) {
  try {
    Format::parse(spec);
    ADD_FAILURE() << spec << " parsed";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(FormatParse, BadSpecsNameTheToken) {
  expect_error("fixed<0,0>", "word length 0");
  expect_error("fixed<129,0>", "word length 129");
  expect_error("fixed<8>", "takes <wl,fl>");
  expect_error("fixed<8,x>", "'x'");
  expect_error("fixd<8,4>", "unknown format 'fixd'");
  expect_error("float<5,10,q>", "unknown float option 'q'");
  expect_error("float<5,0>", "mantissa");
  expect_error("fixed<8,4", "'>'");
  expect_error("", "empty");
}

TEST(ModeNames, ParseAndPrintAgree) {
  for (auto r : {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero, Rounding::NearestUp,
                 Rounding::NearestDown, Rounding::TowardZero, Rounding::Down, Rounding::Up, Rounding::Odd,
                 Rounding::Stochastic})
    EXPECT_EQ(parse_rounding(to_string(r)), r);
  for (auto o : {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric, Overflow::Wrap,
                 Overflow::Ieee})
    EXPECT_EQ(parse_overflow(to_string(o)), o);
  EXPECT_THROW(parse_rounding("nearest"), FormatError);
  EXPECT_THROW(check_overflow_applies(Format::parse("fp16"), Overflow::Wrap), FormatError);
  EXPECT_THROW(check_overflow_applies(Format::parse("int<8>"), Overflow::Ieee), FormatError);
}
