// Block-scaled formats: dynamic fixed point exponent rule and OCP MX v1.0 scales and elements, against
// values worked out by hand in the comments and against plain-double re-implementations of the rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bitsim/arith/block.hpp"

using namespace bitsim::arith;

namespace {

// A two's complement code of wl <= 62 bits as a signed integer.
std::int64_t as_signed(u128 code, int wl) {
  auto c = std::int64_t(std::uint64_t(code));
  if ((c >> (wl - 1)) & 1) c -= std::int64_t{1} << wl;
  return c;
}

std::vector<std::int64_t> signed_codes(const BlockQuantized& q, int wl) {
  std::vector<std::int64_t> out;
  for (u128 c : q.codes) out.push_back(as_signed(c, wl));
  return out;
}

std::vector<unsigned> codes(const BlockQuantized& q) {
  std::vector<unsigned> out;
  for (u128 c : q.codes) out.push_back(unsigned(c));
  return out;
}

std::vector<double> values(const BlockFormat& f, const BlockQuantized& q, MatrixShape shape = {}) {
  std::vector<double> out;
  for (const Exact& v : decode_block(f, q, shape)) out.push_back(v.to_double());
  return out;
}

// A float code: sign, exponent field and mantissa field packed as the OCP tables draw them.
unsigned fp_code(unsigned sign, unsigned exp_field, unsigned man_field, int exp_bits, int man_bits) {
  return (sign << (exp_bits + man_bits)) | (exp_field << man_bits) | man_field;
}

void expect_error_names(std::string_view spec, std::string_view token) {
  try {
    BlockFormat::parse(spec);
    ADD_FAILURE() << "no error for " << spec;
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(token), std::string::npos) << e.what();
  }
}

const RoundSpec kNearestEven{Rounding::NearestEven, Overflow::Saturate, 16};

RoundSpec with_rounding(Rounding r) { return {r, Overflow::Saturate, 16}; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Spec strings and groups

TEST(BlockFormatParse, NamedAndGenericFormats) {
  const auto e4m3 = BlockFormat::parse("mxfp8e4m3");
  EXPECT_EQ(e4m3.scaling, BlockScaling::Microscaling);
  EXPECT_EQ(e4m3.grouping, Grouping::Block);
  EXPECT_EQ(e4m3.block_size, 32u);
  EXPECT_EQ(e4m3.element, Format::floating(4, 3, NonFinite::NanOnly));
  EXPECT_EQ(BlockFormat::parse("mxfp8e5m2").element, Format::floating(5, 2));
  EXPECT_EQ(BlockFormat::parse("mxfp6e3m2").element, Format::floating(3, 2, NonFinite::None));
  EXPECT_EQ(BlockFormat::parse("mxfp6e2m3").element, Format::floating(2, 3, NonFinite::None));
  EXPECT_EQ(BlockFormat::parse("mxfp4e2m1").element, Format::floating(2, 1, NonFinite::None));
  EXPECT_EQ(BlockFormat::parse("mxint8").element, Format::fixed(8, 6));  // 2^-6 implicit scale

  const auto d = BlockFormat::parse("dfx<8>");
  EXPECT_EQ(d.scaling, BlockScaling::DynamicFixed);
  EXPECT_EQ(d.grouping, Grouping::Tensor);
  EXPECT_EQ(d.element, Format::fixed(8, 0));
  EXPECT_EQ(BlockFormat::parse("dfx<12, channel>").grouping, Grouping::Channel);
  const auto b = BlockFormat::parse("dfx<6,block=16>");
  EXPECT_EQ(b.grouping, Grouping::Block);
  EXPECT_EQ(b.block_size, 16u);
  EXPECT_EQ(b, BlockFormat::dynamic_fixed(6, Grouping::Block, 16));

  const auto g = BlockFormat::parse("mx<fp8e4m3,16>");
  EXPECT_EQ(g.block_size, 16u);
  EXPECT_EQ(g.element, e4m3.element);
  EXPECT_EQ(g.spec(), "mx<float<4,3,fn>,16>");
  EXPECT_EQ(BlockFormat::parse("mx<float<2,1,fin>,32>"), BlockFormat::parse("mxfp4e2m1"));
  EXPECT_EQ(BlockFormat::parse("mx<fixed<8,6>,32>").spec(), "mxint8");

  for (const char* s : {"dfx<8>", "dfx<2,channel>", "dfx<128,block=3>", "mxfp8e4m3", "mxfp8e5m2", "mxfp6e3m2",
                        "mxfp6e2m3", "mxfp4e2m1", "mxint8", "mx<float<4,3,fn>,16>", "mx<fixed<4,2>,8>"}) {
    EXPECT_EQ(BlockFormat::parse(s).spec(), s);
    EXPECT_EQ(BlockFormat::parse(BlockFormat::parse(s).spec()), BlockFormat::parse(s));
  }
}

TEST(BlockFormatParse, ErrorsNameTheBadToken) {
  expect_error_names("dfx<1>", "word length 1");
  expect_error_names("dfx<129>", "word length 129");
  expect_error_names("dfx<x>", "'x'");
  expect_error_names("dfx<8,blk=4>", "'blk=4'");
  expect_error_names("dfx<8,block=0>", "block size 0");
  expect_error_names("dfx<8,block=-2>", "'-2'");
  expect_error_names("dfx<8", "expected '>'");
  expect_error_names("dfx", "'dfx' takes arguments");
  expect_error_names("mxfp9", "'mxfp9'");
  expect_error_names("mx<fp8e4m3>", "mx takes <element,k>");
  expect_error_names("mx<bogus,32>", "'bogus'");
  expect_error_names("mx<ufixed<8,6>,32>", "ufixed<8,6>");
  expect_error_names("mx<e8m0,32>", "float<8,0,fn,u,nz>");
  expect_error_names("mx<fp8e4m3,0>", "block size 0");
  expect_error_names("", "empty");
}

TEST(BlockGroups, TensorChannelAndBlocksWithinRows) {
  auto sizes = [](const std::vector<BlockGroup>& gs) {
    std::vector<std::size_t> first_and_size;  // first * 1000 + size
    for (const auto& g : gs) first_and_size.push_back(g.first * 1000 + g.size);
    return first_and_size;
  };
  EXPECT_EQ(sizes(block_groups(BlockFormat::parse("dfx<8>"), 5)), (std::vector<std::size_t>{5}));
  EXPECT_EQ(sizes(block_groups(BlockFormat::parse("dfx<8,channel>"), 6, {2, 3})),
            (std::vector<std::size_t>{3, 3003}));
  EXPECT_EQ(sizes(block_groups(BlockFormat::parse("dfx<8,block=2>"), 5)), (std::vector<std::size_t>{2, 2002, 4001}));
  // Blocks restart at every row: a row of 3 is a block of 2 and a block of 1.
  EXPECT_EQ(sizes(block_groups(BlockFormat::parse("dfx<8,block=2>"), 6, {2, 3})),
            (std::vector<std::size_t>{2, 2001, 3002, 5001}));
  EXPECT_EQ(sizes(block_groups(BlockFormat::parse("mxint8"), 70)), (std::vector<std::size_t>{32, 32032, 64006}));
  EXPECT_TRUE(block_groups(BlockFormat::parse("mxint8"), 0).empty());
  EXPECT_THROW(block_groups(BlockFormat::parse("dfx<8,channel>"), 7, {2, 3}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Dynamic fixed point: fl is the largest fraction length at which no element overflows int<wl>
// after rounding. For wl = 8 the codes are [-128, 127]; scale_exp = -fl.

TEST(DfxExponent, MaxAtAPowerOfTwo) {
  const auto f = BlockFormat::parse("dfx<8>");
  // max 1.0 = 2^0: 1.0 * 2^6 = 64 fits, 1.0 * 2^7 = 128 does not.
  auto q = quantize_block(f, std::vector<float>{1.0f, 0.5f, -0.25f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64, 32, -16}));
  EXPECT_EQ(q.status, 0u);
  // max 4.0 = 2^2: fl = 4 (4 * 16 = 64).
  q = quantize_block(f, std::vector<float>{4.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-4}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64}));
}

TEST(DfxExponent, MaxJustBelowAPowerOfTwo) {
  const auto f = BlockFormat::parse("dfx<8>");
  // 127/64 * 64 = 127 exactly: fl = 6, the largest code.
  auto q = quantize_block(f, std::vector<float>{127.0f / 64});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{127}));
  // 509/256 * 64 = 127.25 rounds to 127: still fl = 6.
  q = quantize_block(f, std::vector<float>{509.0f / 256});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{127}));
  EXPECT_EQ(q.status, unsigned(kInexact));
  // 255/128 * 64 = 127.5: the tie goes to the even 128, which does not fit: fl = 5, 63.75 -> 64.
  q = quantize_block(f, std::vector<float>{255.0f / 128});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-5}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64}));
}

TEST(DfxExponent, MaxThatRoundsUpAcrossAPowerOfTwoDependsOnTheMode) {
  const auto f = BlockFormat::parse("dfx<8>");
  const std::vector<float> pos{511.0f / 256};  // * 64 = 127.75
  const std::vector<float> neg{-511.0f / 256};
  struct Case {
    Rounding r;
    int pos_fl;
    std::int64_t pos_code;
    int neg_fl;
    std::int64_t neg_code;
  };
  // Positive: 127.75 rounds to 128 (fl 5: 63.875 -> 64 or 63) or to 127 (fl 6).
  // Negative: -127.75 rounds to -128 or -127, both codes of int<8>, so fl = 6 always (fl 7 gives
  // -255.5, far out).
  for (const Case& c : {Case{Rounding::NearestEven, 5, 64, 6, -128}, Case{Rounding::NearestAway, 5, 64, 6, -128},
                        Case{Rounding::TowardZero, 6, 127, 6, -127}, Case{Rounding::Down, 6, 127, 6, -128},
                        Case{Rounding::Up, 5, 64, 6, -127}, Case{Rounding::Odd, 6, 127, 6, -127}}) {
    auto q = quantize_block(f, pos, with_rounding(c.r));
    EXPECT_EQ(q.scale_exp, (std::vector<int>{-c.pos_fl})) << to_string(c.r);
    EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{c.pos_code})) << to_string(c.r);
    q = quantize_block(f, neg, with_rounding(c.r));
    EXPECT_EQ(q.scale_exp, (std::vector<int>{-c.neg_fl})) << to_string(c.r);
    EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{c.neg_code})) << to_string(c.r);
  }
}

TEST(DfxExponent, AllZerosGetExponentZero) {
  const auto f = BlockFormat::parse("dfx<8,block=2>");
  const auto q = quantize_block(f, std::vector<float>{0.0f, -0.0f, 0.0f, 3.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0, -5}));  // 3 * 32 = 96
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{0, 0, 0, 96}));
  EXPECT_EQ(q.status, 0u);
  EXPECT_TRUE(quantize_block(f, std::vector<float>{}).scale_exp.empty());
}

TEST(DfxExponent, NegativeMaxUsesTheExtraTwosComplementCode) {
  const auto f = BlockFormat::parse("dfx<8>");
  // -1.0 * 2^7 = -128 is a code: fl = 7 (a positive max 1.0 gets only fl = 6).
  auto q = quantize_block(f, std::vector<float>{-1.0f, 0.5f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-7}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{-128, 64}));
  // ... unless a positive element then overflows: 1023/1024 * 128 = 127.875 -> 128. fl = 6.
  q = quantize_block(f, std::vector<float>{-1.0f, 1023.0f / 1024});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{-64, 64}));
  // -(1 + 2^-10) * 128 = -128.125 rounds to -128 under nearest-even: still fl = 7.
  q = quantize_block(f, std::vector<float>{-(1.0f + 1.0f / 1024)});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-7}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{-128}));
  // -(1 + 2^-7) * 128 = -129: fl = 6, -64.5 ties to the even -64.
  q = quantize_block(f, std::vector<float>{-(1.0f + 1.0f / 128)});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{-64}));
  // saturate-symmetric has no -128: the -1.0 group falls back to fl = 6.
  q = quantize_block(f, std::vector<float>{-1.0f}, {Rounding::NearestEven, Overflow::SaturateSymmetric, 16});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{-64}));
}

TEST(DfxExponent, DenormalAndHugeRanges) {
  const auto f = BlockFormat::parse("dfx<8>");
  const float tiny = std::numeric_limits<float>::denorm_min();  // 2^-149
  // 3 * 2^-149 = 1.5 * 2^-148: fl0 = 6 + 148 = 154, 3 * 2^5 = 96 fits, 192 would not.
  auto q = quantize_block(f, std::vector<float>{3 * tiny});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-154}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{96}));
  // +-2^-149: fl = 155 (+-64); fl = 156 would give +128.
  q = quantize_block(f, std::vector<float>{tiny, -tiny});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-155}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64, -64}));
  EXPECT_EQ(values(f, q), (std::vector<double>{double(tiny), -double(tiny)}));
  // FLT_MAX = (2 - 2^-23) 2^127: at fl = -121 it scales to 128 - 2^-17 and rounds to 128, so
  // fl = -122 and the code is 64: the value 2^128, which fp32 cannot hold.
  const float big = std::numeric_limits<float>::max();
  q = quantize_block(f, std::vector<float>{big});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{122}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64}));
  EXPECT_EQ(values(f, q), (std::vector<double>{std::ldexp(1.0, 128)}));
  std::vector<float> out(1);
  fake_quantize_block(f, std::vector<float>{big}, out);
  EXPECT_EQ(out[0], std::numeric_limits<float>::infinity());
}

// Stochastic rounding: the exponent assumes the worst random draw, so it does not depend on the bits.
TEST(DfxExponent, StochasticRoundingUsesTheWorstCaseDraw) {
  const auto f = BlockFormat::parse("dfx<8>");
  // x * 64 = 127 + 2^-20. With k = 16 random bits the adder sees floor(2^-20 * 2^16) = 0 and never
  // carries (fl = 6, code 127 for every seed); with k = 24 it sees 16 and may reach 128 (fl = 5).
  const std::vector<Exact> x{Exact::from_int((std::int64_t{127} << 20) + 1, -26)};
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    auto q = quantize_block(f, std::span<const Exact>(x), {Rounding::Stochastic, Overflow::Saturate, 16}, {seed, 0});
    EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
    EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{127}));
    q = quantize_block(f, std::span<const Exact>(x), {Rounding::Stochastic, Overflow::Saturate, 24}, {seed, 0});
    EXPECT_EQ(q.scale_exp, (std::vector<int>{-5}));
    EXPECT_EQ(q.status & kOverflow, 0u);
  }
}

// An inexact input (sticky bit: a little above its 128 significant bits) is larger than the same
// bits without it. 255/128 * 64 = 127.5 ties to 127 under nearest-zero and fits at fl = 6; a hair
// above 127.5 rounds to 128, so that element alone forces fl = 5.
TEST(DfxExponent, StickyInputIsAboveItsTruncation) {
  const auto f = BlockFormat::parse("dfx<8>");
  const Exact exact{Exact::Class::Finite, false, u128(255) << 120, -127, false};
  Exact above = exact;
  above.sticky = true;
  const std::vector<Exact> x{exact, above};
  const auto q = quantize_block(f, std::span<const Exact>(x), with_rounding(Rounding::NearestZero));
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-5}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64, 64}));  // 63.75 and a hair above: 64
  EXPECT_EQ(q.status, unsigned(kInexact));
}

TEST(DfxExponent, NonFiniteElementsDoNotChooseTheExponent) {
  const auto f = BlockFormat::parse("dfx<8>");
  const float inf = std::numeric_limits<float>::infinity();
  const auto q = quantize_block(f, std::vector<float>{1.0f, std::nanf(""), inf, -inf});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6}));
  // nan -> 0 with invalid; +-inf saturate with overflow: the only way a dfx element overflows.
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64, 0, 127, -128}));
  EXPECT_EQ(q.status, unsigned(kInvalid | kOverflow | kInexact));
}

TEST(DfxGrouping, PerChannelRows) {
  const auto f = BlockFormat::parse("dfx<8,channel>");
  // Row 0: max 1.0 -> fl 6. Row 1: max 15 * 2^-9 = 1.875 * 2^-6 -> fl0 = 6 + 6 = 12, 15 * 2^3 = 120.
  const std::vector<float> w{1.0f, 0.25f, -0.5f, 0.0078125f, -5.0f / 256, 15.0f / 512};
  const auto q = quantize_block(f, w, kNearestEven, {}, {2, 3});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-6, -12}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{64, 16, -32, 32, -80, 120}));
  EXPECT_EQ(values(f, q, {2, 3}), (std::vector<double>(w.begin(), w.end())));
}

TEST(DfxGrouping, PerBlock) {
  const auto f = BlockFormat::parse("dfx<4,block=2>");  // int<4>: codes -8..7
  // {3, -1}: max 3 = 1.5 * 2^1 -> fl0 = 4 - 2 - 1 = 1: 6, -2 (fl 2 would give 12).
  // {0.1875, 0}: 0.1875 = 1.5 * 2^-3 -> fl0 = 5: 6, 0.
  // {5}: 5 = 1.25 * 2^2 -> fl0 = 0: 5 (fl 1 would give 10).
  const auto q = quantize_block(f, std::vector<float>{3.0f, -1.0f, 0.1875f, 0.0f, 5.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-1, -5, 0}));
  EXPECT_EQ(signed_codes(q, 4), (std::vector<std::int64_t>{6, -2, 6, 0, 5}));
  EXPECT_EQ(q.status, 0u);
}

// Stochastic rounding draws element i's bits from SrStream at index i (its place in the tensor).
// Reference for x >= 0: floor(x 2^fl) + (floor(frac 2^k) + r >= 2^k), all exact in double.
TEST(DfxStochastic, ElementIndexSelectsTheRandomBits) {
  const auto f = BlockFormat::parse("dfx<8,block=16>");
  std::mt19937 gen(7);
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = i % 16 == 0 ? 1.0f : std::ldexp(float(gen() & 0xffffff), -24);  // [0, 1): group max is 1.0
  for (int k : {8, 16, 20, 32}) {
    const SrStream sr{12345, 3};
    const auto q = quantize_block(f, x, {Rounding::Stochastic, Overflow::Saturate, k}, sr);
    ASSERT_EQ(q.scale_exp, (std::vector<int>(4, -6)));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double s = std::ldexp(double(x[i]), 6);
      const double t = std::floor(s);
      const double d = std::floor(std::ldexp(s - t, k));
      const double r = sr.bits(i, k);
      const double expect = t + (d + r >= std::ldexp(1.0, k) ? 1 : 0);
      EXPECT_EQ(double(as_signed(q.codes[i], 8)), expect) << "i=" << i << " k=" << k;
    }
  }
}

namespace {

// Plain-double dynamic fixed point under nearest-even: the largest fl in {fl0+1, fl0, fl0-1} at
// which every nearbyint(x 2^fl) lies in [-2^(wl-1), 2^(wl-1) - 1]. Exact: x is an fp32 number.
void dfx_reference(std::span<const float> x, int wl, std::vector<int>& fl_out, std::vector<std::int64_t>& codes_out) {
  double m = 0;
  for (float v : x) m = std::max(m, std::fabs(double(v)));
  const double lo = -std::ldexp(1.0, wl - 1), hi = std::ldexp(1.0, wl - 1) - 1;
  int fl = 0;
  if (m != 0) {
    const int fl0 = wl - 2 - std::ilogb(m);
    for (fl = fl0 + 1; fl >= fl0 - 1; --fl) {
      bool fits = true;
      for (float v : x) {
        const double c = std::nearbyint(std::ldexp(double(v), fl));
        fits &= c >= lo && c <= hi;
      }
      if (fits) break;
    }
  }
  fl_out.push_back(fl);
  for (float v : x) codes_out.push_back(std::int64_t(std::nearbyint(std::ldexp(double(v), fl))));
}

// Random fp32 values: per-row magnitude anywhere in fp32 (subnormals included), elements spread
// over 12 binades below it, some zeros, exact powers of two and values one ulp below them.
std::vector<float> random_tensor(std::mt19937_64& gen, std::size_t rows, std::size_t cols) {
  std::vector<float> x(rows * cols);
  for (std::size_t r = 0; r < rows; ++r) {
    const int top = int(gen() % 250) - 140;
    for (std::size_t c = 0; c < cols; ++c) {
      float& v = x[r * cols + c];
      const int e = top - int(gen() % 13);
      switch (gen() % 8) {
        case 0: v = 0.0f; break;
        case 1: v = std::ldexp(1.0f, std::max(e, -149)); break;
        case 2: v = std::nextafter(std::ldexp(1.0f, std::max(e, -148)), 0.0f); break;
        default: v = std::ldexp(float(gen() & 0xffffff), std::max(e - 23, -149));
      }
      if (gen() & 1) v = -v;
    }
  }
  return x;
}

}  // namespace

TEST(DfxRandom, NearestEvenMatchesAPlainDoubleReference) {
  ASSERT_EQ(std::fesetround(FE_TONEAREST), 0);
  std::mt19937_64 gen(2024);
  for (int wl : {2, 3, 8, 16, 24}) {
    for (int trial = 0; trial < 40; ++trial) {
      const std::size_t rows = 1 + gen() % 6, cols = 1 + gen() % 40;
      const auto x = random_tensor(gen, rows, cols);
      for (const std::string& spec : {"dfx<" + std::to_string(wl) + ">", "dfx<" + std::to_string(wl) + ",channel>",
                                     "dfx<" + std::to_string(wl) + ",block=5>"}) {
        const auto f = BlockFormat::parse(spec);
        const MatrixShape shape{rows, cols};
        std::vector<int> fl;
        std::vector<std::int64_t> ref;
        for (const BlockGroup& g : block_groups(f, x.size(), shape))
          dfx_reference(std::span<const float>(x).subspan(g.first, g.size), wl, fl, ref);
        const auto q = quantize_block(f, x, kNearestEven, {}, shape);
        std::vector<int> neg_fl;
        for (int v : fl) neg_fl.push_back(-v);
        ASSERT_EQ(q.scale_exp, neg_fl) << spec;
        ASSERT_EQ(signed_codes(q, wl), ref) << spec;
        EXPECT_EQ(q.status & kOverflow, 0u);
      }
    }
  }
}

// Every rounding mode, every overflow mode: no finite element ever overflows.
TEST(DfxRandom, NoElementOverflowsUnderAnyMode) {
  std::mt19937_64 gen(99);
  for (int wl : {2, 3, 5, 8}) {
    const auto f = BlockFormat::dynamic_fixed(wl, Grouping::Block, 7);
    for (int mode = 0; mode <= int(Rounding::Stochastic); ++mode) {
      for (Overflow o : {Overflow::Saturate, Overflow::SaturateSymmetric, Overflow::Wrap, Overflow::SaturateZero}) {
        for (int trial = 0; trial < 10; ++trial) {
          const auto x = random_tensor(gen, 3, 20);
          const auto q = quantize_block(f, x, {Rounding(mode), o, 8}, {gen(), 1}, {3, 20});
          EXPECT_EQ(q.status & kOverflow, 0u) << wl << " " << to_string(Rounding(mode)) << " " << to_string(o);
          if (o == Overflow::SaturateSymmetric) {
            for (u128 c : q.codes) EXPECT_NE(as_signed(c, wl), -(std::int64_t{1} << (wl - 1)));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// OCP MX v1.0. Section 6.3: X = 2^(floor(log2 max|V_i|) - emax_elem), P_i = V_i / X rounded
// (nearest-even) and clamped to the element format's max normal.

TEST(MxScale, ElementEmaxIsTheSpecTable) {
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxfp8e4m3").element), 8);
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxfp8e5m2").element), 15);
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxfp6e3m2").element), 4);
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxfp6e2m3").element), 2);
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxfp4e2m1").element), 2);
  EXPECT_EQ(mx_element_emax(BlockFormat::parse("mxint8").element), 0);
}

TEST(MxScale, E8m0CodesAreTheE8m0Format) {
  const Format e8m0 = Format::parse("e8m0");
  for (int e = kE8m0MinExp; e <= kE8m0MaxExp; ++e) {
    EXPECT_EQ(e8m0_code(e), e + 127);
    EXPECT_EQ(decode(e8m0, e8m0_code(e)).to_double(), std::ldexp(1.0, e));
  }
  EXPECT_EQ(e8m0_code(kNanScale), 0xFF);
  EXPECT_TRUE(decode(e8m0, 0xFF).is_nan());
  EXPECT_THROW(e8m0_code(128), std::out_of_range);
}

TEST(MxFp8E4M3, HandComputedBlock) {
  // E4M3: bias 7, 3 mantissa bits, max 448 = 1.75 * 2^8 (S.1111.110), subnormal step 2^-9.
  const auto f = BlockFormat::parse("mxfp8e4m3");
  // max 1000: floor(log2 1000) = 9, shared_exp = 9 - 8 = 1, X = 2.
  const auto q = quantize_block(f, std::vector<float>{1.0f, 3.0f, -0.1875f, 1000.0f, 0.0f, 1.0f / 1024});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{1}));
  EXPECT_EQ(e8m0_code(q.scale_exp[0]), 128);
  EXPECT_EQ(codes(q), (std::vector<unsigned>{
                          fp_code(0, 6, 0, 4, 3),   // 0.5 = 2^-1
                          fp_code(0, 7, 4, 4, 3),   // 1.5 = 1.5 * 2^0
                          fp_code(1, 3, 4, 4, 3),   // -0.09375 = -1.5 * 2^-4
                          fp_code(0, 15, 6, 4, 3),  // 500: 15.625 steps of 32 -> 512 > 448: clamped to 448
                          0,                        // 0
                          0,                        // 2^-11 = a quarter of the subnormal step: 0
                      }));
  EXPECT_EQ(values(f, q), (std::vector<double>{1.0, 3.0, -0.1875, 896.0, 0.0, 0.0}));
  EXPECT_EQ(q.status, unsigned(kInexact | kOverflow | kUnderflow));
  // 920 / 2 = 460 = 14.375 steps of 32: rounds down to 448 itself, inexact but no clamp.
  const auto q2 = quantize_block(f, std::vector<float>{920.0f});
  EXPECT_EQ(codes(q2), (std::vector<unsigned>{fp_code(0, 15, 6, 4, 3)}));
  EXPECT_EQ(q2.status, unsigned(kInexact));
}

TEST(MxFp8E5M2, HandComputedBlock) {
  // E5M2: bias 15, 2 mantissa bits, max 57344 = 1.75 * 2^15. max 1.9: floor(log2) = 0, X = 2^-15.
  const auto f = BlockFormat::parse("mxfp8e5m2");
  const auto q = quantize_block(f, std::vector<float>{1.0f, 0.75f, -1.9f, std::ldexp(1.0f, -20)});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-15}));
  EXPECT_EQ(e8m0_code(q.scale_exp[0]), 112);
  EXPECT_EQ(codes(q), (std::vector<unsigned>{
                          fp_code(0, 30, 0, 5, 2),  // 2^15
                          fp_code(0, 29, 2, 5, 2),  // 0.75 * 2^15 = 1.5 * 2^14
                          fp_code(1, 30, 3, 5, 2),  // 1.9 * 2^15 -> 2 * 2^15 overflows: clamped to -57344
                          fp_code(0, 10, 0, 5, 2),  // 2^-5
                      }));
  EXPECT_EQ(values(f, q), (std::vector<double>{1.0, 0.75, -1.75, std::ldexp(1.0, -20)}));
}

TEST(MxFp6E3M2, HandComputedBlock) {
  // E3M2: bias 3, max 28 = 1.75 * 2^4, emin -2, subnormal step 2^-4. max 28: X = 2^(4-4) = 1.
  const auto f = BlockFormat::parse("mxfp6e3m2");
  const auto q = quantize_block(f, std::vector<float>{28.0f, 0.0625f, 0.03125f, 0.09375f, -20.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0}));
  EXPECT_EQ(codes(q), (std::vector<unsigned>{
                          fp_code(0, 7, 3, 3, 2),  // 28 = 1.75 * 2^4
                          fp_code(0, 0, 1, 3, 2),  // 2^-4: one subnormal step
                          0,                       // half a step: tie to the even 0
                          fp_code(0, 0, 2, 3, 2),  // 1.5 steps: tie to the even 2 steps = 0.125
                          fp_code(1, 7, 1, 3, 2),  // -20 = -1.25 * 2^4
                      }));
  EXPECT_EQ(values(f, q), (std::vector<double>{28.0, 0.0625, 0.0, 0.125, -20.0}));
}

TEST(MxFp6E2M3, HandComputedBlock) {
  // E2M3: bias 1, max 7.5 = 1.875 * 2^2, emin 0, subnormal step 2^-3. max 30: floor(log2) = 4, X = 4.
  const auto f = BlockFormat::parse("mxfp6e2m3");
  const auto q = quantize_block(f, std::vector<float>{30.0f, -1.0f, 5.0f, 29.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{2}));
  EXPECT_EQ(codes(q), (std::vector<unsigned>{
                          fp_code(0, 3, 7, 2, 3),  // 7.5
                          fp_code(1, 0, 2, 2, 3),  // -0.25 = -2 subnormal steps
                          fp_code(0, 1, 2, 2, 3),  // 1.25
                          fp_code(0, 3, 6, 2, 3),  // 7.25 = 14.5 steps of 0.5: tie to even 14 -> 7.0
                      }));
  EXPECT_EQ(values(f, q), (std::vector<double>{30.0, -1.0, 5.0, 28.0}));
}

TEST(MxFp4E2M1, HandComputedBlock) {
  // E2M1: bias 1, values 0, 0.5, 1, 1.5, 2, 3, 4, 6. max 7: floor(log2) = 2, X = 2^(2-2) = 1.
  const auto f = BlockFormat::parse("mxfp4e2m1");
  const auto q = quantize_block(f, std::vector<float>{7.0f, 3.0f, -0.25f, 5.0f, -6.5f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0}));
  EXPECT_EQ(codes(q), (std::vector<unsigned>{
                          fp_code(0, 3, 1, 2, 1),  // 7: 3.5 steps of 2 ties to even 4 -> 8 > 6: clamped to 6
                          fp_code(0, 2, 1, 2, 1),  // 3
                          fp_code(1, 0, 0, 2, 1),  // -0.25: half a step, tie to even 0: -0
                          fp_code(0, 3, 0, 2, 1),  // 5: 2.5 steps of 2 ties to even 2 -> 4
                          fp_code(1, 3, 1, 2, 1),  // -6.5: 3.25 steps -> 3 -> -6
                      }));
  const auto v = values(f, q);
  EXPECT_EQ(v, (std::vector<double>{6.0, 3.0, 0.0, 4.0, -6.0}));
  EXPECT_TRUE(std::signbit(v[2]));
}

TEST(MxInt8, HandComputedBlock) {
  // MXINT8: fixed<8,6>, codes -128..127 times 2^-6, emax_elem 0. max 511/256 < 2: X = 1.
  const auto f = BlockFormat::parse("mxint8");
  const auto q = quantize_block(f, std::vector<float>{1.0f, -0.5f, 0.0078125f, 0.0234375f, 511.0f / 256,
                                                      -511.0f / 256});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{
                                    64,    // 1.0
                                    -32,   // -0.5
                                    0,     // 2^-7 = half a step: tie to even 0
                                    2,     // 3 * 2^-7 = 1.5 steps: tie to even 2
                                    127,   // 127.75 -> 128 > 127: clamped
                                    -128,  // -127.75 -> -128, the most negative code
                                }));
  EXPECT_EQ(values(f, q), (std::vector<double>{1.0, -0.5, 0.0, 0.03125, 127.0 / 64, -2.0}));
  EXPECT_EQ(q.status, unsigned(kInexact | kOverflow));
  // Another rounding mode is allowed ("roundTiesToEven must be supported"): ties away gives 1.
  const auto qa = quantize_block(f, std::vector<float>{1.0f, 0.0078125f}, with_rounding(Rounding::NearestAway));
  EXPECT_EQ(signed_codes(qa, 8), (std::vector<std::int64_t>{64, 1}));
}

TEST(MxBlocks, ShortLastBlockAndBlocksWithinRows) {
  const auto f = BlockFormat::parse("mxint8");
  std::vector<float> x(40, 1.0f);
  for (std::size_t i = 32; i < 40; ++i) x[i] = i % 2 ? 0.375f : 0.25f;
  // Block 1 is the last 8 elements alone: max 0.375 = 1.5 * 2^-2, X = 2^-2: 0.25 -> 1.0 -> 64, 0.375 -> 96.
  auto q = quantize_block(f, x);
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0, -2}));
  EXPECT_EQ(as_signed(q.codes[0], 8), 64);
  EXPECT_EQ(as_signed(q.codes[32], 8), 64);
  EXPECT_EQ(as_signed(q.codes[33], 8), 96);
  // The same 40 elements as 5 rows of 8: one short block per row, and only row 4 holds the small ones.
  q = quantize_block(f, x, kNearestEven, {}, {5, 8});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{0, 0, 0, 0, -2}));
}

TEST(MxSpecial, NanOrInfMakesTheBlockScaleNan) {
  // Section 6.3 needs the largest power of two <= max|V_i|; with a nan or inf in the block there is
  // none, and E8M0 has no infinity: X is nan, and a nan X makes every value of its block nan.
  const auto f = BlockFormat::parse("mx<fp8e5m2,4>");
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  const auto q = quantize_block(f, std::vector<float>{1.0f, nan, 2.0f, 3.0f, 1.0f, 2.0f, -inf, 0.0f, 1.0f, 1.0f,
                                                      1.0f, 1.0f, nan, nan, nan, nan});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{kNanScale, kNanScale, -15, kNanScale}));
  EXPECT_EQ(e8m0_code(q.scale_exp[0]), 0xFF);
  const auto v = decode_block(f, q);
  for (std::size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(v[i].is_nan(), i < 8 || i >= 12) << i;
    if (i < 8 || i >= 12) {
      EXPECT_EQ(unsigned(q.codes[i]), 0u);
    }
  }
  EXPECT_EQ(v[8].to_double(), 1.0);
  EXPECT_EQ(q.status, unsigned(kInvalid));
  // A block of nothing but nan passes the quiet nan through with no flag.
  EXPECT_EQ(quantize_block(f, std::vector<float>{nan, nan}).status, 0u);
}

TEST(MxSpecial, ScaleClampsToE8m0Range) {
  // Below: shared_exp = -130 clamps to -127 (code 0); 2^-130 / 2^-127 = 2^-3 = 8 steps of 2^-6.
  auto q = quantize_block(BlockFormat::parse("mxint8"), std::vector<float>{std::ldexp(1.0f, -130)});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-127}));
  EXPECT_EQ(e8m0_code(q.scale_exp[0]), 0);
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{8}));
  // 2^-149 in E4M3: shared_exp -157 clamps to -127, 2^-22 is below half of E4M3's 2^-9 step: 0.
  q = quantize_block(BlockFormat::parse("mxfp8e4m3"), std::vector<float>{std::ldexp(1.0f, -149)});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-127}));
  EXPECT_EQ(codes(q), (std::vector<unsigned>{0}));
  EXPECT_EQ(q.status, unsigned(kInexact | kUnderflow));
  // All zeros: floor(log2 0) = -inf clamps to -127; -0 keeps its sign.
  q = quantize_block(BlockFormat::parse("mxfp8e4m3"), std::vector<float>{0.0f, -0.0f});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{-127}));
  EXPECT_EQ(codes(q), (std::vector<unsigned>{0x00, 0x80}));
  EXPECT_EQ(q.status, 0u);
  // Top: FLT_MAX has floor(log2) = 127 and MXINT8 emax 0: X = 2^127, the largest E8M0 scale.
  q = quantize_block(BlockFormat::parse("mxint8"), std::vector<float>{std::numeric_limits<float>::max()});
  EXPECT_EQ(q.scale_exp, (std::vector<int>{127}));
  EXPECT_EQ(signed_codes(q, 8), (std::vector<std::int64_t>{127}));  // (2 - 2^-23) * 64 -> 128: clamped
  // Above: 2^200 needs X = 2^192, which E8M0 cannot hold: nan, with overflow.
  const std::vector<Exact> huge{Exact::from_int(1, 200), Exact::from_int(3, 0)};
  q = quantize_block(BlockFormat::parse("mxfp8e4m3"), std::span<const Exact>(huge));
  EXPECT_EQ(q.scale_exp, (std::vector<int>{kNanScale}));
  EXPECT_EQ(q.status, unsigned(kInvalid | kOverflow | kInexact));
}

namespace {

// OCP MX conversion written out in plain double: shared_exp from ilogb(max|x|), E4M3 or INT8
// element rounding with nearbyint (FE_TONEAREST = ties to even) on the element's grid, clamp.
// Every quantity is an fp64 number, so the double arithmetic is exact.
int mx_ref_shared_exp(std::span<const float> block, int emax) {
  double m = 0;
  for (float v : block) m = std::max(m, std::fabs(double(v)));
  return m == 0 ? -127 : std::max(std::ilogb(m) - emax, -127);
}

double e4m3_ref(double v) {
  const double a = std::fabs(v);
  if (a == 0) return v;
  const int e = std::max(std::ilogb(a), -6);  // binade, or the subnormal grid below 2^-6
  const double step = std::ldexp(1.0, e - 3);
  const double q = std::min(std::nearbyint(a / step) * step, 448.0);
  return std::copysign(q, v);
}

double int8_ref(double v) { return std::clamp(std::nearbyint(std::ldexp(v, 6)), -128.0, 127.0) / 64; }

}  // namespace

TEST(MxRandom, E4M3AndInt8MatchAPlainDoubleReference) {
  ASSERT_EQ(std::fesetround(FE_TONEAREST), 0);
  std::mt19937_64 gen(31337);
  for (const char* spec : {"mxfp8e4m3", "mxint8"}) {
    const auto f = BlockFormat::parse(spec);
    const bool e4m3 = f.element.is_float();
    std::size_t checked = 0;
    for (int trial = 0; trial < 400; ++trial) {
      const std::size_t rows = 1 + gen() % 3, cols = 1 + gen() % 100;
      const auto x = random_tensor(gen, rows, cols);
      const MatrixShape shape{rows, cols};
      const auto q = quantize_block(f, x, kNearestEven, {}, shape);
      const auto v = decode_block(f, q, shape);
      std::vector<float> fake(x.size());
      fake_quantize_block(f, x, fake, kNearestEven, {}, shape);
      // Blocks of 32 within each row, the last one shorter.
      std::size_t g = 0;
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c0 = 0; c0 < cols; c0 += 32, ++g) {
          const std::size_t n = std::min<std::size_t>(32, cols - c0);
          const auto block = std::span<const float>(x).subspan(r * cols + c0, n);
          const int s = mx_ref_shared_exp(block, e4m3 ? 8 : 0);
          ASSERT_EQ(q.scale_exp[g], s) << spec;
          for (std::size_t i = 0; i < n; ++i) {
            const double p = std::ldexp(double(block[i]), -s);
            const double expect = std::ldexp(e4m3 ? e4m3_ref(p) : int8_ref(p), s);
            const std::size_t at = r * cols + c0 + i;
            ASSERT_EQ(v[at].to_double(), expect) << spec << " x=" << block[i] << " s=" << s;
            ASSERT_EQ(double(fake[at]), expect);
            if (e4m3) {
              ASSERT_EQ(std::signbit(v[at].to_double()), std::signbit(expect));
            }
            ++checked;
          }
        }
      }
      ASSERT_EQ(g, q.scale_exp.size());
    }
    EXPECT_GT(checked, 10000u);
  }
}

TEST(MxRandom, FakeQuantizeInPlaceEqualsDecode) {
  std::mt19937_64 gen(5);
  for (const char* spec : {"mxfp8e4m3", "mxfp8e5m2", "mxfp6e3m2", "mxfp6e2m3", "mxfp4e2m1", "mxint8", "dfx<8,block=16>",
                           "dfx<3,channel>", "dfx<32>", "dfx<60,block=4>"}) {
    const auto f = BlockFormat::parse(spec);
    auto x = random_tensor(gen, 4, 50);
    const auto v = values(f, quantize_block(f, x, kNearestEven, {}, {4, 50}), {4, 50});
    fake_quantize_block(f, x, x, kNearestEven, {}, {4, 50});
    // Exact: every value quantized from an fp32 input is an fp32 number (away from FLT_MAX).
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(double(x[i]), v[i]) << spec << " " << i;
  }
}

// fake_quantize_block takes a SIMD path for dynamic fixed point: it must equal quantize_block +
// decode_block + one rounding to fp32, for every grouping, rounding mode (stochastic included) and
// tensors with zeros, infinities, nan and groups of mixed magnitudes.
TEST(BlockFakeQuantize, DynamicFixedFastPathEqualsQuantizeThenDecode) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0, 1);
  const Format fp32 = Format::floating(8, 23);
  for (const char* spec : {"dfx<8>", "dfx<4,channel>", "dfx<6,block=5>", "dfx<16>"})
    for (Rounding r : {Rounding::NearestEven, Rounding::Stochastic, Rounding::TowardZero, Rounding::Up}) {
      const BlockFormat f = BlockFormat::parse(spec);
      const MatrixShape shape{6, 17};
      std::vector<float> x(shape.rows * shape.cols);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = d(rng) * std::ldexp(1.0f, int(i / 17) * 3 - 6);
      x[3] = 0, x[20] = -0.0f, x[40] = INFINITY, x[41] = -INFINITY, x[60] = NAN;
      for (std::size_t i = 85; i < 102; ++i) x[i] = 0;  // an all-zero row
      const RoundSpec rs{r, Overflow::Saturate, 10};
      const SrStream sr{5, 9};
      std::vector<float> got(x.size());
      std::vector<int> scales;
      fake_quantize_block(f, x, got, rs, sr, shape, &scales);
      const BlockQuantized q = quantize_block(f, std::span<const float>(x), rs, sr, shape);
      ASSERT_EQ(scales, q.scale_exp) << spec;
      const std::vector<Exact> want = decode_block(f, q, shape);
      for (std::size_t i = 0; i < x.size(); ++i) {
        const auto bits = std::uint32_t(quantize(fp32, want[i], {Rounding::NearestEven, Overflow::Ieee}).code);
        float w;
        std::memcpy(&w, &bits, sizeof w);
        ASSERT_EQ(std::memcmp(&got[i], &w, sizeof w), 0) << spec << " " << to_string(r) << " element " << i
                                                         << " got " << got[i] << " want " << w;
      }
    }
}
