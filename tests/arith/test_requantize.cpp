// Requantization primitives against gemmlowp's own fixedpoint.h (Debian libgemmlowp-dev).
#include <gtest/gtest.h>

#include <gemmlowp/fixedpoint/fixedpoint.h>

#include <random>

#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/requantize.hpp"

using namespace bitsim::arith;

namespace {

std::vector<std::int32_t> corner_int32s() {
  std::vector<std::int32_t> v{0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1,
                              1 << 30, -(1 << 30), (1 << 30) + 1, -(1 << 30) - 1, 46341, -46341};
  for (int s = 0; s < 31; ++s) {
    v.push_back(1 << s);
    v.push_back(-(1 << s));
    v.push_back((1 << s) + 1);
    v.push_back(-(1 << s) - 1);
    v.push_back((1 << s) - 1);
  }
  return v;
}

}  // namespace

TEST(Requantize, SaturatingRoundingDoublingHighMulEqualsGemmlowp) {
  const auto corners = corner_int32s();
  for (auto a : corners)
    for (auto b : corners)
      ASSERT_EQ(saturating_rounding_doubling_high_mul(a, b), gemmlowp::SaturatingRoundingDoublingHighMul(a, b))
          << a << " * " << b;
  std::mt19937 rng(1);
  for (int i = 0; i < 2'000'000; ++i) {
    const auto a = std::int32_t(rng()), b = std::int32_t(rng() >> (i % 31));
    ASSERT_EQ(saturating_rounding_doubling_high_mul(a, b), gemmlowp::SaturatingRoundingDoublingHighMul(a, b))
        << a << " * " << b;
  }
}

TEST(Requantize, RoundingDivideByPotEqualsGemmlowp) {
  const auto corners = corner_int32s();
  for (int e = 0; e <= 31; ++e) {
    for (auto x : corners) ASSERT_EQ(rounding_divide_by_pot(x, e), gemmlowp::RoundingDivideByPOT(x, e)) << x << " " << e;
    // Every value around every tie of this exponent.
    for (std::int64_t k = -4; k <= 4; ++k)
      for (std::int64_t d = -2; d <= 2; ++d) {
        const std::int64_t x64 = k * (std::int64_t{1} << e) + (e ? (std::int64_t{1} << (e - 1)) : 0) + d;
        if (x64 < INT32_MIN || x64 > INT32_MAX) continue;
        const auto x = std::int32_t(x64);
        ASSERT_EQ(rounding_divide_by_pot(x, e), gemmlowp::RoundingDivideByPOT(x, e)) << x << " " << e;
      }
  }
  std::mt19937 rng(2);
  for (int i = 0; i < 2'000'000; ++i) {
    const auto x = std::int32_t(rng());
    const int e = int(rng() % 32);
    ASSERT_EQ(rounding_divide_by_pot(x, e), gemmlowp::RoundingDivideByPOT(x, e)) << x << " " << e;
  }
}

// The two primitives are quantizations: nearest-up and nearest-away into int32. bitsim's general
// quantizer must agree with them, so requantization and the rest of arith share one definition.
TEST(Requantize, PrimitivesAreQuantizationsIntoInt32) {
  const Format int32 = Format::parse("int<32>");
  std::mt19937 rng(3);
  for (int i = 0; i < 200'000; ++i) {
    const auto a = std::int32_t(rng()), b = std::int32_t(rng() >> (i % 31));
    const auto q = quantize(int32, Exact::from_int(std::int64_t{a} * b, -31), {Rounding::NearestUp, Overflow::Saturate});
    ASSERT_EQ(std::int32_t(std::uint32_t(q.code)), saturating_rounding_doubling_high_mul(a, b));
    const auto x = std::int32_t(rng());
    const int e = int(rng() % 32);
    const auto r = quantize(int32, Exact::from_int(x, -e), {Rounding::NearestAway, Overflow::Saturate});
    ASSERT_EQ(std::int32_t(std::uint32_t(r.code)), rounding_divide_by_pot(x, e));
  }
  const auto q = quantize(int32, Exact::from_int(std::int64_t{INT32_MIN} * INT32_MIN, -31),
                          {Rounding::NearestUp, Overflow::Saturate});
  EXPECT_EQ(std::int32_t(std::uint32_t(q.code)), INT32_MAX);
}

// TFLite reference: MultiplyByQuantizedMultiplier, written out with gemmlowp's primitives.
TEST(Requantize, RequantizerEqualsTfliteReferenceComposition) {
  std::mt19937 rng(4);
  for (int i = 0; i < 500'000; ++i) {
    const double real = std::ldexp(0.5 + 0.5 * (rng() / 4294967296.0), -int(rng() % 20));
    auto rq = Requantizer::from_real(real, std::int32_t(rng() % 256) - 128);
    rq.min = -128;
    rq.max = 127;
    const auto acc = std::int32_t(rng()) >> (rng() % 24);
    const int left = rq.shift > 0 ? rq.shift : 0, right = rq.shift > 0 ? 0 : -rq.shift;
    ASSERT_LT(std::abs(std::int64_t{acc} << left), std::int64_t{1} << 31);  // TFLite's precondition
    std::int32_t ref = gemmlowp::RoundingDivideByPOT(
        gemmlowp::SaturatingRoundingDoublingHighMul(acc * (1 << left), rq.multiplier), right);
    ref = std::min(127, std::max(-128, ref + rq.zero_point));
    ASSERT_EQ(rq(acc), ref) << acc << " M=" << rq.multiplier << " shift=" << rq.shift;
  }
}

TEST(Requantize, FromRealRepresentsTheMultiplier) {
  for (double real : {0.5, 0.75, 1.0 / 3, 0.0001234, 1.5, 3.99, 1e-9}) {
    const auto rq = Requantizer::from_real(real);
    EXPECT_GE(rq.multiplier, 1 << 30);
    EXPECT_NEAR(std::ldexp(double(rq.multiplier), rq.shift - 31) / real, 1.0, 1e-9);
  }
}
