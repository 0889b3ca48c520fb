// Accumulators and the lazy update against independent references: the CPU's own fp32 adds for
// float accumulators, plain int64 arithmetic for saturating and wrapping fixed-point ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfenv>
#include <cmath>
#include <limits>
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

// MacDatapath's integer path must be exactly round_sum on every code: all codes of small operand
// and accumulator formats, every fixed-point overflow mode, with and without a fraction shift, and
// an accumulator that drops product fraction bits (the path must then not be taken).
TEST(MacDatapath, EqualsRoundSumOnEveryCodeOfSmallFormats) {
  const Overflow modes[] = {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric,
                            Overflow::Wrap};
  const char* operands[][2] = {{"fixed<3,1>", "fixed<4,2>"}, {"ufixed<3,0>", "fixed<3,0>"}, {"ufixed<2,1>", "ufixed<3,1>"}};
  // Shifts acc.fl - (a.fl + b.fl): fixed<6,3>: 0, 3, 1; fixed<7,5>: 2, 5, 3; ufixed<6,4>: 1, 4, 2;
  // fixed<6,1>: -2, 1, -1 (drops product fraction bits for the first and third pair).
  const char* accs[] = {"fixed<6,3>", "fixed<7,5>", "ufixed<6,4>", "fixed<6,1>"};
  std::mt19937 rng(7);
  int integer_paths = 0;
  for (const auto& ops : operands) {
    const Format fa = Format::parse(ops[0]), fb = Format::parse(ops[1]);
    for (const char* acc_spec : accs) {
      const Format fc = Format::parse(acc_spec);
      for (Overflow ov : modes) {
        for (Rounding rd : {Rounding::NearestEven, Rounding::Stochastic}) {
          const RoundSpec spec{rd, ov, 4};
          const MacDatapath mac(fa, fb, fc, spec);
          integer_paths += mac.integer_path();
          for (u128 c = 0; c <= fc.code_mask(); ++c)
            for (u128 a = 0; a <= fa.code_mask(); ++a)
              for (u128 b = 0; b <= fb.code_mask(); ++b) {
                const std::uint32_t r = rng() & 15;
                const Quantized want =
                    round_sum(fc, decode(fc, c), exact_mul(decode(fa, a), decode(fb, b)), spec, r);
                const Quantized got = mac(c, a, b, r);
                ASSERT_EQ(got.code, want.code) << ops[0] << " x " << ops[1] << " + " << acc_spec << " "
                                               << int(ov) << " c=" << int(c) << " a=" << int(a) << " b=" << int(b);
                ASSERT_EQ(got.status, want.status);
                // The product code the multiplier feeds the adder: an exact integer product.
                ASSERT_EQ(mac.product(a, b),
                          quantize(mac.product_format(), exact_mul(decode(fa, a), decode(fb, b)),
                                   {Rounding::NearestEven, Overflow::Saturate}).code);
              }
        }
      }
    }
  }
  EXPECT_EQ(integer_paths, (3 * 3 + 1) * 4 * 2);  // every case with a shift >= 0
}

// Independent of arith: int8 x int8 into int<16> (saturating and wrapping) is plain integer MAC
// arithmetic, checked against int64 sums with a hand-written clamp / wrap.
TEST(MacDatapath, Int8MacEqualsInt64Arithmetic) {
  const Format i8 = Format::parse("int<8>"), i16 = Format::parse("int<16>");
  for (Overflow ov : {Overflow::Saturate, Overflow::Wrap}) {
    const MacDatapath mac(i8, i8, i16, {Rounding::NearestEven, ov});
    ASSERT_TRUE(mac.integer_path());
    std::mt19937 rng(3);
    std::int64_t want = 0;
    u128 code = 0;
    for (int i = 0; i < 200000; ++i) {
      const std::int64_t a = std::int8_t(rng()), b = std::int8_t(rng());
      if (i % 1000 == 0) want = 0, code = 0;
      want += a * b;
      if (ov == Overflow::Saturate) want = std::clamp<std::int64_t>(want, -32768, 32767);
      else want = std::int16_t(std::uint16_t(want));
      code = mac(code, u128(std::uint8_t(a)), u128(std::uint8_t(b))).code;
      ASSERT_EQ(std::int64_t(std::int16_t(std::uint16_t(code))), want) << "add " << i;
    }
  }
}

// Float operands: the product code is the exact product in product_format, for every fp8 pair.
TEST(MacDatapath, Fp8ProductCodeIsExactOnEveryPair) {
  const Format f = Format::parse("fp8e4m3"), acc = Format::parse("fp32");
  const MacDatapath mac(f, f, acc, {Rounding::NearestEven, Overflow::Ieee});
  ASSERT_FALSE(mac.integer_path());
  for (u128 a = 0; a < 256; ++a)
    for (u128 b = 0; b < 256; ++b) {
      const Exact p = exact_mul(decode(f, a), decode(f, b));
      const Quantized q = quantize(mac.product_format(), p, {Rounding::NearestEven, Overflow::Ieee});
      ASSERT_EQ(mac.product(a, b), q.code);
      if (!p.is_nan()) {
        ASSERT_EQ(q.status & kInexact, 0u);  // the product format holds it exactly
      }
    }
}

// The integer path of LazyUpdate::step(double) gives the codes of the general step(Exact) on every
// (theta, acc) code of small formats, for updates that are ties, tiny, large (overflowing: the
// fallback), negative, and under every rounding mode including stochastic.
TEST(LazyUpdate, DoubleUpdateEqualsTheExactStepOnEveryCode) {
  const Format w = Format::parse("fixed<6,4>"), a = Format::parse("fixed<7,7>");
  std::mt19937_64 rng(12);
  const double updates[] = {0.0, 1.0 / 256, -1.0 / 256, 1.0 / 512, -3.0 / 512, 0x1p-40, -0x1p-60, 0.3, -0.7, 5.0,
                            1.0 / 128 + 0x1p-50, -1.0 / 32};
  for (Rounding rd : {Rounding::NearestEven, Rounding::NearestAway, Rounding::TowardZero, Rounding::Down, Rounding::Up,
                      Rounding::Stochastic}) {
    for (Overflow ov : {Overflow::Saturate, Overflow::SaturateSymmetric, Overflow::Wrap}) {
      const LazyUpdate lazy{w, {rd, ov, 6}, a, {rd, ov, 6}};
      for (u128 th = 0; th <= w.code_mask(); ++th)
        for (u128 ac = 0; ac <= a.code_mask(); ++ac)
          for (double u : updates) {
            const std::uint32_t r1 = rng() & 63, r2 = rng() & 63, r3 = rng() & 63;
            const LazyUpdateResult want = lazy.step(th, ac, Exact::from_double(u), r1, r2, r3);
            const LazyUpdateResult got = lazy.step(th, ac, u, r1, r2, r3);
            ASSERT_EQ(got.theta, want.theta) << to_string(rd) << " theta=" << int(th) << " acc=" << int(ac) << " u=" << u;
            ASSERT_EQ(got.acc, want.acc) << to_string(rd) << " theta=" << int(th) << " acc=" << int(ac) << " u=" << u;
          }
    }
  }
}

// LazyUpdateFixed's block step (nearest-even on both formats, vectorised) on every (theta, acc)
// code of small formats as values, with updates that are ties, tiny, large, negative, infinite and
// nan, under each overflow mode: an element it takes must hold the values of the general
// step(Exact)'s codes, one it leaves must be unchanged, and it must leave only elements that step()
// would not take on its integer path (there, the values of step(double)'s codes). Values off their
// grids or out of range are left.
TEST(LazyUpdate, NearestBlockEqualsTheExactStepOnEveryCode) {
  const Format w = Format::parse("fixed<6,4>"), a = Format::parse("fixed<7,7>");
  const double inf = std::numeric_limits<double>::infinity();
  const double updates[] = {0.0, 1.0 / 256, -1.0 / 256, 1.0 / 512, -3.0 / 512, 0x1p-40, -0x1p-60, 0.3, -0.7, 5.0,
                            1.0 / 128 + 0x1p-50, -1.0 / 32, 1e300, inf, -inf, std::nan("")};
  for (Overflow ov : {Overflow::Saturate, Overflow::SaturateSymmetric, Overflow::Wrap}) {
    const LazyUpdate lazy{w, {Rounding::NearestEven, ov}, a, {Rounding::NearestEven, ov}};
    const LazyUpdateFixed fixed(lazy);
    ASSERT_TRUE(fixed.nearest());
    std::vector<float> theta, acc;
    std::vector<double> update;
    std::vector<std::pair<u128, u128>> codes;
    for (u128 th = 0; th <= w.code_mask(); ++th)
      for (u128 ac = 0; ac <= a.code_mask(); ++ac)
        for (double u : updates) {
          theta.push_back(to_f32(decode(w, th)));
          acc.push_back(to_f32(decode(a, ac)));
          update.push_back(u);
          codes.emplace_back(th, ac);
        }
    const std::vector<float> theta0 = theta, acc0 = acc;
    std::vector<std::uint8_t> taken(theta.size(), 2);
    fixed.step_nearest(theta.data(), acc.data(), update.data(), theta.size(), taken.data());
    std::size_t took = 0;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const auto [th, ac] = codes[i];
      ASSERT_LE(taken[i], 1);
      std::int64_t t1 = 0, a2 = 0;
      const bool integer_path = fixed.step(fixed_code_value(w, th), fixed_code_value(a, ac), update[i], 0, 0, t1, a2);
      if (!taken[i]) {
        ASSERT_EQ(theta[i], theta0[i]) << i;
        ASSERT_EQ(acc[i], acc0[i]) << i;
        // Left: an element the integer path declines, or a code outside the symmetric range.
        const bool symmetric_edge = ov == Overflow::SaturateSymmetric &&
                                    (fixed_code_value(w, th) == std::int64_t(w.min_int()) || fixed_code_value(a, ac) == std::int64_t(a.min_int()));
        ASSERT_TRUE(!integer_path || symmetric_edge) << "left an element step() takes: " << i;
        continue;
      }
      ++took;
      const LazyUpdateResult want = lazy.step(th, ac, Exact::from_double(update[i]));
      ASSERT_EQ(theta[i], to_f32(decode(w, want.theta))) << to_string(ov) << " theta=" << int(th) << " acc=" << int(ac) << " u=" << update[i];
      ASSERT_EQ(acc[i], to_f32(decode(a, want.acc))) << to_string(ov) << " theta=" << int(th) << " acc=" << int(ac) << " u=" << update[i];
    }
    EXPECT_GT(took, theta.size() / 2) << to_string(ov);
  }
  // Off the grids: left as they are.
  const LazyUpdateFixed fixed(LazyUpdate{w, {}, a, {}});
  float theta[] = {0.03f, 0.5f, 0.5f}, acc[] = {0.0f, 1.0f / 1024, 4.0f};
  const double update[] = {0.0, 0.0, 0.0};
  std::uint8_t taken[3];
  fixed.step_nearest(theta, acc, update, 3, taken);
  EXPECT_EQ(taken[0] + taken[1] + taken[2], 0);
  EXPECT_EQ(theta[0], 0.03f);
  EXPECT_EQ(acc[1], 1.0f / 1024);
}

// A weight of 48 bits in accumulator LSBs 2^40 finer needs 88 bits: the integer path must not
// apply there (its products would overflow int64), and step(double) must still give step(Exact)'s codes.
TEST(LazyUpdate, WideWeightsInFineAccumulatorsKeepTheExactStep) {
  const Format w = Format::parse("fixed<48,0>"), a = Format::parse("fixed<48,40>");
  const LazyUpdate lazy{w, {}, a, {}};
  EXPECT_FALSE(LazyUpdateFixed(lazy).applies());
  std::mt19937_64 rng(9);
  for (int i = 0; i < 2000; ++i) {
    const u128 th = u128(rng()) & w.code_mask(), ac = u128(rng()) & a.code_mask();
    const double u = std::ldexp(double(std::int64_t(rng() % 2001) - 1000), -int(rng() % 60));
    const LazyUpdateResult want = lazy.step(th, ac, Exact::from_double(u)), got = lazy.step(th, ac, u);
    ASSERT_EQ(got.theta, want.theta) << i;
    ASSERT_EQ(got.acc, want.acc) << i;
  }
}

// MacDatapath's double path for float accumulators against round_sum: every accumulator code of
// 16-bit formats (and dense random codes of fp32) with operand pairs that include zeros, the
// extremes, subnormals, inf and nan; codes and flags must agree.
TEST(MacDatapath, FloatDoublePathEqualsRoundSum) {
  struct Case {
    const char *a, *b, *acc;
  };
  const Case cases[] = {{"fp8e4m3", "fp8e4m3", "fp16"}, {"fp8e5m2", "fp8e4m3", "fp16"}, {"bf16", "bf16", "bf16"},
                        {"fp16", "fp16", "fp16"},       {"bf16", "bf16", "fp32"},       {"fp8e4m3", "fp8e5m2", "bf16"},
                        {"fp16", "fp16", "fp32"}};
  std::mt19937_64 rng(17);
  int double_paths = 0;
  for (const Case& c : cases) {
    const Format fa = Format::parse(c.a), fb = Format::parse(c.b), fc = Format::parse(c.acc);
    const RoundSpec spec{Rounding::NearestEven, Overflow::Ieee};
    const MacDatapath mac(fa, fb, fc, spec);
    double_paths += mac.double_path();
    auto pick = [&](const Format& f) -> u128 {
      const u128 top = f.code_mask();
      const u128 sign = u128(1) << (f.width() - 1), exp_one = u128(1) << f.man_bits;
      const u128 corners[] = {0, sign, 1, sign | 1, exp_one - 1, exp_one, max_code(f), sign | max_code(f), top, top ^ 1};
      return rng() % 3 == 0 ? corners[rng() % 10] : u128(rng()) & top;
    };
    const std::uint64_t acc_codes = fc.width() <= 16 ? (std::uint64_t(1) << fc.width()) : 200000;
    for (std::uint64_t i = 0; i < acc_codes; ++i) {
      const u128 acc = fc.width() <= 16 ? u128(i) : (i % 5 == 0 ? pick(fc) : u128(rng()) & fc.code_mask());
      for (int j = 0; j < 8; ++j) {
        const u128 a = pick(fa), b = pick(fb);
        const Quantized want = round_sum(fc, decode(fc, acc), exact_mul(decode(fa, a), decode(fb, b)), spec);
        const Quantized got = mac(acc, a, b);
        ASSERT_EQ(got.code, want.code) << c.a << " x " << c.b << " + " << c.acc << " acc=" << std::uint64_t(acc)
                                       << " a=" << std::uint64_t(a) << " b=" << std::uint64_t(b);
        ASSERT_EQ(got.status, want.status) << c.a << " x " << c.b << " + " << c.acc << " acc=" << std::uint64_t(acc)
                                           << " a=" << std::uint64_t(a) << " b=" << std::uint64_t(b);
      }
    }
  }
  EXPECT_EQ(double_paths, 7);
}
