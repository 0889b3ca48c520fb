// Accumulators and the lazy update against independent references: the CPU's own fp32 adds for
// float accumulators, plain int64 arithmetic for saturating and wrapping fixed-point ones.
#include <gtest/gtest.h>

#include <bit>
#include <cfenv>
#include <cmath>
#include <random>
#include <vector>

#include "bitsim/arith/accumulator.hpp"

using namespace bitsim::arith;

namespace {

float f32(u128 code) { return std::bit_cast<float>(std::uint32_t(code)); }

std::int64_t to_signed(u128 code, int wl) {
  const std::uint64_t c = std::uint64_t(code);
  return wl < 64 && (c >> (wl - 1)) & 1 ? std::int64_t(c) - (std::int64_t{1} << wl) : std::int64_t(c);
}

}  // namespace

// fp16 x fp16 products are exact in fp32 (22 significant bits, exponents in range), so a fused
// fp32 accumulator over fp16 products is exactly the CPU's `acc += float(a) * float(b)` in order.
TEST(Accumulator, Fp32AccumulatorOfFp16ProductsEqualsNativeFp32) {
  const Format fp16 = Format::parse("fp16"), fp32 = Format::parse("fp32");
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    Accumulator acc(fp32, {Rounding::NearestEven, Overflow::Ieee});
    float native = 0.0f;
    for (int i = 0; i < 257; ++i) {
      // Random finite fp16 codes over the whole range, subnormals included.
      std::uint32_t a, b;
      do a = rng() & 0xffff; while (((a >> 10) & 0x1f) == 0x1f);
      do b = rng() & 0xffff; while (((b >> 10) & 0x1f) == 0x1f);
      acc.mac(fp16, a, fp16, b);
      const float fa = float(decode(fp16, a).to_double()), fb = float(decode(fp16, b).to_double());
      native += fa * fb;  // fa * fb is exact in fp32, so this is one rounding per add
      ASSERT_EQ(std::bit_cast<std::uint32_t>(f32(acc.code())), std::bit_cast<std::uint32_t>(native))
          << "trial " << trial << " add " << i;
    }
  }
}

// The same under directed rounding, with the CPU's rounding mode set to match.
TEST(Accumulator, DirectedRoundingFp32AccumulatorEqualsNativeFp32) {
  const Format bf16 = Format::parse("bf16"), fp32 = Format::parse("fp32");
  const std::pair<Rounding, int> modes[] = {{Rounding::TowardZero, FE_TOWARDZERO}, {Rounding::Down, FE_DOWNWARD},
                                            {Rounding::Up, FE_UPWARD}};
  std::mt19937 rng(12);
  for (auto [mode, fe] : modes) {
    Accumulator acc(fp32, {mode, Overflow::Ieee});
    volatile float native = 0.0f;
    std::vector<std::pair<float, float>> ops;
    for (int i = 0; i < 5000; ++i) {
      // bf16 codes with exponent fields 100..150 and random signs: products stay normal in fp32.
      auto code = [&] { return (rng() & 0x807f) | ((100 + rng() % 51) << 7); };
      const std::uint32_t a = code(), b = code();
      acc.mac(bf16, a, bf16, b);
      ops.emplace_back(float(decode(bf16, a).to_double()), float(decode(bf16, b).to_double()));
    }
    std::fesetround(fe);
    for (auto [x, y] : ops) {
      volatile float p = x * y;  // bf16 x bf16 is exact in fp32 (16 bits)
      native = native + p;
    }
    std::fesetround(FE_TONEAREST);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(f32(acc.code())), std::bit_cast<std::uint32_t>(float(native)))
        << to_string(mode);
  }
}

// int8 x int8 products into a 16-bit accumulator: saturation and wrap-around at every step,
// computed independently with int64.
TEST(Accumulator, FixedPointSaturatesAndWrapsAtEveryAdd) {
  const Format i8 = Format::parse("int<8>");
  std::mt19937 rng(13);
  for (Overflow o : {Overflow::Saturate, Overflow::Wrap, Overflow::SaturateSymmetric}) {
    const Format acc_format = Format::parse("fixed<16,0>");
    Accumulator acc(acc_format, {Rounding::NearestEven, o});
    std::int64_t ref = 0;
    for (int i = 0; i < 20000; ++i) {
      const std::int64_t a = std::int64_t(rng() % 256) - 128, b = std::int64_t(rng() % 256) - 128;
      acc.mac(i8, u128(a) & 0xff, i8, u128(b) & 0xff);
      ref += a * b;
      if (o == Overflow::Saturate) ref = std::clamp<std::int64_t>(ref, -32768, 32767);
      if (o == Overflow::SaturateSymmetric) ref = std::clamp<std::int64_t>(ref, -32767, 32767);
      if (o == Overflow::Wrap) ref = std::int64_t(std::int16_t(std::uint16_t(ref & 0xffff)));
      ASSERT_EQ(to_signed(acc.code(), 16), ref) << to_string(o) << " add " << i;
    }
  }
}

// Products with more fraction bits than the accumulator keeps are rounded as they are added:
// acc = round(acc + p), one rounding of the sum (ties to even look at the sum's last bit),
// computed independently in units of 2^-12.
TEST(Accumulator, FixedPointRoundsEachAddIntoTheAccumulatorGrid) {
  const Format in = Format::parse("fixed<8,6>"), acc_format = Format::parse("fixed<24,4>");
  std::mt19937 rng(14);
  Accumulator acc(acc_format, {Rounding::NearestEven, Overflow::Saturate});
  std::int64_t ref = 0;  // units of 2^-4
  for (int i = 0; i < 20000; ++i) {
    const std::int64_t a = std::int64_t(rng() % 256) - 128, b = std::int64_t(rng() % 256) - 128;
    acc.mac(in, u128(a) & 0xff, in, u128(b) & 0xff);
    const std::int64_t sum = (ref << 8) + a * b;  // units of 2^-12: divide by 2^8, ties to even
    std::int64_t q = sum >> 8;                      // floor
    const std::int64_t rem = sum - (q << 8);
    if (rem > 128 || (rem == 128 && (q & 1))) ++q;
    ref = q;
    ASSERT_EQ(to_signed(acc.code(), 24), ref) << "add " << i;
  }
}

// Kahan-compensated update: a tiny update repeated never moves plain SGD in fixed<8,4>, but the lazy
// update moves theta by exactly the accumulated amount once it reaches an LSB.
TEST(LazyUpdate, AccumulatesUpdatesTooSmallForTheWeight) {
  const Format w = Format::parse("fixed<8,4>"), a = Format::parse("fixed<16,12>");
  const LazyUpdate lazy{w, {Rounding::NearestEven, Overflow::Saturate}, a, {Rounding::NearestEven, Overflow::Saturate}};
  u128 theta = 16, acc = 0;  // theta = 1.0
  const Exact u = Exact::from_int(1, -9);  // 2^-9 per step: 1/32 of the weight's LSB (2^-4)
  for (int step = 1; step <= 64; ++step) {
    const auto r = lazy.step(theta, acc, u);
    theta = r.theta;
    acc = r.acc;
    // Exact bookkeeping: theta + acc == 1 + step * 2^-9 (acc holds what theta could not absorb).
    const double total = decode(w, theta).to_double() + decode(a, acc).to_double();
    ASSERT_EQ(total, 1.0 + step / 512.0) << step;
  }
  EXPECT_EQ(decode(w, theta).to_double(), 1.125);  // 64 * 2^-9 = 2^-3, two LSBs of theta
  // Plain SGD in the weight format: theta + 2^-9 rounds back to theta every time.
  u128 plain = 16;
  for (int step = 0; step < 64; ++step) plain = quantize(w, exact_add(decode(w, plain), u), {}).code;
  EXPECT_EQ(plain, 16u);
}

TEST(Accumulator, StochasticAddsUseTheAccumulatorsStream) {
  const Format acc_format = Format::parse("fixed<16,2>");
  const SrStream sr{3, 77};
  Accumulator acc(acc_format, {Rounding::Stochastic, Overflow::Saturate, 8}, sr);
  const Exact x = Exact::from_int(3, -4);  // 0.1875 = 0.75 LSB
  std::int64_t ref = 0;                    // units of 2^-2
  for (std::uint64_t i = 0; i < 1000; ++i) {
    acc.add(x);
    // 0.75 LSB: top 8 fraction bits are 192; carry when 192 + r >= 256.
    ref += (192 + sr.bits(i, 8) >= 256) ? 1 : 0;
    ASSERT_EQ(to_signed(acc.code(), 16), ref);
  }
}
