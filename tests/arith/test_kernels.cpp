// The fast fp32 array quantizer against the scalar golden model, element by element, for every
// rounding and overflow mode on dense fp32 bit patterns (all exponents, ties, specials).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/quantize.hpp"

using namespace bitsim::arith;

namespace {

std::vector<float> dense_inputs(const Format& f, std::uint32_t stride) {
  std::vector<float> v;
  for (std::uint64_t b = 0; b < (1ull << 32); b += stride) v.push_back(std::bit_cast<float>(std::uint32_t(b)));
  // Every value of the format, the midpoints between neighbours (ties) and the fp32 numbers on
  // either side of each midpoint. Midpoints of formats up to 16 bits are fp32 numbers.
  if (f.width() <= 16) {
    for (u128 c = 0; c <= f.code_mask(); ++c) {
      const double x = decode(f, c).to_double();
      const double y = decode(f, (c + 1) & f.code_mask()).to_double();
      const float mid = float((x + y) / 2);
      for (float t : {float(x), mid, std::nextafter(mid, float(x)), std::nextafter(mid, float(y)), float(x * 1.25)})
        v.push_back(t);
    }
  }
  for (float s : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e38f, -1e38f}) v.push_back(s);
  v.push_back(std::numeric_limits<float>::infinity());
  v.push_back(-std::numeric_limits<float>::infinity());
  v.push_back(std::numeric_limits<float>::quiet_NaN());
  return v;
}

// Every kernel level this CPU has, the portable one included.
std::vector<QuantizeKernel> kernel_levels() {
  std::vector<QuantizeKernel> v;
  for (auto k : {QuantizeKernel::Portable, QuantizeKernel::Avx2, QuantizeKernel::Avx512})
    if (available(k)) v.push_back(k);
  return v;
}

void expect_kernel_equals_scalar(const Format& f, const RoundSpec& spec, std::uint32_t stride) {
  for (QuantizeKernel level : kernel_levels()) {
  const auto in = dense_inputs(f, stride);
  std::vector<float> out(in.size());
  const SrStream sr{42, 3};
  const std::uint64_t first = 5;  // not a multiple of 4: exercises block alignment
  quantize_f32_with(level, f, spec, in, out, sr, first);
  int failures = 0;
  for (std::size_t i = 0; i < in.size() && failures < 5; ++i) {
    const std::uint32_t r = sr.bits(first + i, spec.sr_bits);
    const Quantized q = quantize(f, Exact::from_float(in[i]), spec, r);
    const double want = decode(f, q.code).to_double();
    const float got = out[i];
    const bool same = (std::isnan(want) && std::isnan(got)) ||
                      (float(want) == got && std::signbit(float(want)) == std::signbit(got));
    if (!same) {
      ++failures;
      ADD_FAILURE() << to_string(level) << " " << f.spec() << " " << to_string(spec.rounding) << " " << to_string(spec.overflow) << " x="
                    << in[i] << " (0x" << std::hex << std::bit_cast<std::uint32_t>(in[i]) << std::dec
                    << ") kernel=" << got << " scalar=" << want;
    }
  }
  }
}

const Rounding kRoundings[] = {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero,
                               Rounding::NearestUp,   Rounding::NearestDown, Rounding::TowardZero,
                               Rounding::Down,        Rounding::Up,          Rounding::Odd,
                               Rounding::Stochastic};

}  // namespace

TEST(QuantizeF32, FixedPointEqualsScalarForEveryMode) {
  for (const char* spec : {"fixed<8,4>", "ufixed<8,4>", "fixed<4,9>", "fixed<16,-3>", "fixed<24,12>", "fixed<1,0>",
                           "ufixed<3,1>", "int<8>"}) {
    const Format f = Format::parse(spec);
    for (auto r : kRoundings)
      for (auto o : {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric, Overflow::Wrap})
        for (int k : {1, 5, 16, 32}) {
          if (k != 16 && r != Rounding::Stochastic) continue;
          expect_kernel_equals_scalar(f, {r, o, k}, 40009);
        }
  }
}

TEST(QuantizeF32, FloatsEqualScalarForEveryMode) {
  for (const char* spec : {"fp16", "bf16", "tf32", "fp8e4m3", "fp8e5m2", "fp6e3m2", "fp6e2m3", "fp4e2m1",
                           "float<5,10,ftz>", "float<4,3,u>", "fp32", "float<3,2,fn>"}) {
    const Format f = Format::parse(spec);
    for (auto r : kRoundings)
      for (auto o : {Overflow::Ieee, Overflow::Saturate})
        for (int k : {1, 7, 16, 32}) {
          if (k != 16 && r != Rounding::Stochastic) continue;
          expect_kernel_equals_scalar(f, {r, o, k}, 40009);
        }
  }
}

TEST(QuantizeF32, RejectsFormatsFp32CannotHold) {
  std::vector<float> v(4), o(4);
  EXPECT_THROW(quantize_f32(Format::parse("fixed<32,0>"), {}, v, o), FormatError);
  EXPECT_THROW(quantize_f32(Format::parse("fp64"), {}, v, o), FormatError);
  EXPECT_THROW(quantize_f32(Format::parse("e8m0"), {}, v, o), FormatError);
  EXPECT_TRUE(fits_fp32(Format::parse("fixed<24,149>")));
  EXPECT_FALSE(fits_fp32(Format::parse("fixed<24,150>")));
}

// Random-bit blocks whose 32-bit low counter word carries into the high word take the scalar
// Philox path inside the SIMD generator; both must give the stream's bits.
TEST(QuantizeF32, StochasticAcrossTheCounterCarry) {
  const Format f = Format::parse("fixed<8,4>");
  const RoundSpec spec{Rounding::Stochastic, Overflow::Saturate, 16};
  std::vector<float> in(4096), out(in.size()), ref(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = 0.03125f * float(i % 97) - 1.5f;
  const SrStream sr{7, 9};
  // Block indices that cross 2^32, from a starting index inside a block and from one on a block
  // boundary (where the AVX-512 loop draws the numbers itself).
  for (const std::uint64_t first : {(std::uint64_t{1} << 34) - 4 * 100 - 3, ((std::uint64_t{1} << 32) - 5) * 8}) {
  quantize_f32(f, spec, in, out, sr, first);
  quantize_f32_portable(f, spec, in, ref, sr, first);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto q = quantize(f, Exact::from_float(in[i]), spec, sr.bits(first + i, 16));
    ASSERT_EQ(out[i], float(decode(f, q.code).to_double())) << i;
    ASSERT_EQ(ref[i], out[i]) << i;
  }
  }
}

namespace {

// Every rounding boundary of f as fp32 inputs, both signs: each value of the format, its fp32
// neighbours, the midpoint to the next value and the fp32 numbers one ulp either side of it (the
// ties and the points where nearest roundings change), the same around the overflow threshold
// (max + half a step, 2^(emax+1)), fp32's own subnormals, zeros, infinities and NaNs (quiet and
// signalling, both signs), and dense random bit patterns across all exponents.
std::vector<float> boundary_inputs(const Format& f) {
  std::vector<float> v;
  const auto around = [&v](float x) {
    for (float s : {x, -x}) {
      v.push_back(s);
      v.push_back(std::nextafter(s, std::numeric_limits<float>::infinity()));
      v.push_back(std::nextafter(s, -std::numeric_limits<float>::infinity()));
    }
  };
  // Every code of formats up to 16 bits; of wider ones the 4096 at either end and a random sample.
  std::vector<u128> codes;
  std::mt19937 rng(12345);
  if (f.width() <= 16) {
    for (u128 c = 0; c <= f.code_mask(); ++c) codes.push_back(c);
  } else {
    for (u128 c = 0; c < 4096; ++c) codes.push_back(c), codes.push_back(f.code_mask() - c);
    for (int i = 0; i < 4096; ++i) codes.push_back(u128(rng()) & f.code_mask());
  }
  std::vector<double> values;  // the finite non-negative values of those codes, ascending
  for (u128 c : codes) {
    const Exact e = decode(f, c);
    if (!e.is_nan() && !e.is_inf() && !e.neg) values.push_back(e.to_double());
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  for (std::size_t i = 0; i < values.size(); ++i) {
    around(float(values[i]));
    const double next = i + 1 < values.size() ? values[i + 1] : 2 * values[i] - values[i - 1];  // the step past max
    around(float((values[i] + next) / 2));  // the midpoint (exact: at most 17 significant bits)
    around(float(values[i] + (next - values[i]) / 4));
  }
  if (f.is_float()) around(std::ldexp(1.0f, f.emax() + 1));
  for (float x : {0.0f, 1e-45f, 2e-45f, 3e-45f, 1.1754942e-38f, 1.1754944e-38f, 5.9e-39f, 3.4028235e38f, 1e30f, 65536.0f})
    around(x);
  for (std::uint32_t b : {0x7f800000u, 0x7fc00000u, 0x7f800001u, 0x7fbfffffu, 0x7fffffffu, 0x7fc12345u}) {
    v.push_back(std::bit_cast<float>(b));
    v.push_back(std::bit_cast<float>(b | 0x80000000u));
  }
  for (int i = 0; i < 60000; ++i) v.push_back(std::bit_cast<float>(std::uint32_t(rng())));
  return v;
}

bool same_bits(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

// Every SIMD level against the portable loop bit for bit (NaN payloads and signs included), and
// the portable loop against the scalar quantize(), on boundary_inputs().
// Two starting indices: 13 (blocks straddle the array's start) and 16 (a multiple of every
// per_block(k), where the AVX-512 loop draws the random numbers itself).
void expect_levels_equal(const Format& f, const RoundSpec& spec, bool check_scalar) {
  const auto in = boundary_inputs(f);
  const SrStream sr{99, 7};
  for (const std::uint64_t first : {13, 16}) {
  std::vector<float> want(in.size()), got(in.size());
  quantize_f32_portable(f, spec, in, want, sr, first);
  if (check_scalar)
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::uint32_t r = spec.rounding == Rounding::Stochastic ? sr.bits(first + i, spec.sr_bits) : 0;
      const float scalar = float(decode(f, quantize(f, Exact::from_float(in[i]), spec, r).code).to_double());
      ASSERT_TRUE(same_bits(scalar, want[i]) || (std::isnan(scalar) && std::isnan(want[i])))
          << "portable " << f.spec() << " " << to_string(spec.rounding) << " " << to_string(spec.overflow) << " k="
          << spec.sr_bits << " x=0x" << std::hex << std::bit_cast<std::uint32_t>(in[i]);
    }
  for (QuantizeKernel level : kernel_levels()) {
    if (level == QuantizeKernel::Portable) continue;
    quantize_f32_with(level, f, spec, in, got, sr, first);
    for (std::size_t i = 0; i < in.size(); ++i)
      ASSERT_TRUE(same_bits(got[i], want[i]))
          << to_string(level) << " " << f.spec() << " " << to_string(spec.rounding) << " " << to_string(spec.overflow)
          << " k=" << spec.sr_bits << " first=" << first << " x=0x" << std::hex << std::bit_cast<std::uint32_t>(in[i])
          << " got=0x" << std::bit_cast<std::uint32_t>(got[i]) << " want=0x" << std::bit_cast<std::uint32_t>(want[i]);
  }
  }
}

const char* const kBoundaryFloats[] = {"fp8e4m3", "fp8e5m2", "fp16", "bf16", "float<4,3>", "float<5,2,fn>",
                                       "float<4,3,u>", "float<5,10,ftz>", "fp6e3m2", "fp4e2m1", "tf32"};

}  // namespace

// The SIMD paths serve fp8/fp16/bf16 through magic-number and integer rounding: every boundary of
// every rounding, overflow mode and random-bit count must land exactly where the portable loop and
// the scalar golden model put it.
TEST(QuantizeF32, FloatBoundariesEqualPortableAndScalar) {
  for (const char* name : kBoundaryFloats) {
    const Format f = Format::parse(name);
    for (auto r : kRoundings)
      for (auto o : {Overflow::Ieee, Overflow::Saturate})
        for (int k : {1, 7, 16, 19, 24, 32}) {
          if (k != 16 && r != Rounding::Stochastic) continue;
          expect_levels_equal(f, {r, o, k}, r == Rounding::NearestEven || r == Rounding::Stochastic);
        }
  }
}

TEST(QuantizeF32, FixedBoundariesEqualPortableAndScalar) {
  for (const char* name : {"fixed<8,4>", "fixed<16,8>", "ufixed<8,4>", "fixed<24,0>", "fixed<12,20>"}) {
    const Format f = Format::parse(name);
    for (auto r : kRoundings)
      for (auto o : {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric, Overflow::Wrap})
        for (int k : {1, 7, 16, 24}) {
          if (k != 16 && r != Rounding::Stochastic) continue;
          expect_levels_equal(f, {r, o, k}, r == Rounding::NearestEven || r == Rounding::Stochastic);
        }
  }
}

// Lengths 0..100 at several starting indices: the SIMD loops' masked or padded tails, and random
// numbers taken from the middle of Philox blocks, against the portable loop on the same elements.
TEST(QuantizeF32, EveryLengthAndOffsetEqualsPortable) {
  std::mt19937 rng(5);
  std::normal_distribution<float> value(0.0f, 3.0f);
  for (const char* name : {"fp8e4m3", "fp8e5m2", "fp16", "bf16", "fixed<8,4>"}) {
    const Format f = Format::parse(name);
    for (auto r : {Rounding::NearestEven, Rounding::Stochastic, Rounding::Odd})
      for (int k : {16, 20}) {
        if (k != 16 && r != Rounding::Stochastic) continue;
        const RoundSpec spec{r, default_overflow(f), k};
        for (std::size_t n = 0; n <= 100; ++n)
          for (std::uint64_t first : {0ull, 1ull, 7ull, 8ull, 1021ull}) {
            std::vector<float> in(n), want(n, 42.0f), got(n);
            for (float& x : in) x = value(rng);
            quantize_f32_portable(f, spec, in, want, {3, 4}, first);
            for (QuantizeKernel level : kernel_levels()) {
              std::fill(got.begin(), got.end(), 42.0f);
              quantize_f32_with(level, f, spec, in, got, {3, 4}, first);
              for (std::size_t i = 0; i < n; ++i)
                ASSERT_TRUE(same_bits(got[i], want[i])) << to_string(level) << " " << name << " " << to_string(r)
                                                        << " n=" << n << " first=" << first << " i=" << i;
            }
          }
      }
  }
}

// Outputs of 2^22 elements and more take streaming stores after a masked head that aligns the
// output to 64 bytes: an output that starts mid-line, and in-place quantization, against the
// portable loop.
TEST(QuantizeF32, LargeArraysEqualPortable) {
  const std::size_t n = (std::size_t{1} << 22) + 37;
  std::vector<float> in(n), want(n), out(n + 16);
  std::mt19937 rng(8);
  std::normal_distribution<float> value(0.0f, 4.0f);
  for (float& x : in) x = value(rng);
  for (const char* name : {"fp8e4m3", "bf16", "fixed<8,4>"})
    for (auto r : {Rounding::NearestEven, Rounding::Stochastic}) {
      const Format f = Format::parse(name);
      const RoundSpec spec{r, default_overflow(f), 16};
      quantize_f32_portable(f, spec, in, want, {1, 2}, 40);
      for (std::size_t offset : {0, 3}) {
        const std::span<float> got(out.data() + offset, n);
        quantize_f32(f, spec, in, got, {1, 2}, 40);
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_TRUE(same_bits(got[i], want[i])) << name << " " << to_string(r) << " offset " << offset << " i=" << i;
      }
      std::vector<float> inplace = in;
      quantize_f32(f, spec, inplace, inplace, {1, 2}, 40);
      for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(same_bits(inplace[i], want[i])) << name << " in place, i=" << i;
    }
}

// A kernel level the CPU lacks is refused rather than run.
TEST(QuantizeF32, KernelLevelsAreCheckedAndOrdered) {
  EXPECT_TRUE(available(QuantizeKernel::Portable));
  EXPECT_TRUE(available(best_quantize_kernel()));
  if (available(QuantizeKernel::Avx512)) {
    EXPECT_EQ(best_quantize_kernel(), QuantizeKernel::Avx512);
  }
  for (auto k : {QuantizeKernel::Avx2, QuantizeKernel::Avx512}) {
    std::vector<float> v(4, 1.0f), o(4);
    if (!available(k)) {
      EXPECT_THROW(quantize_f32_with(k, Format::parse("fp16"), {}, v, o), std::invalid_argument);
    }
  }
}

// The SIMD extremes against the portable loop, bit for bit, on every length up to 100 (all tails
// of the 32- and 8-lane loops) and on values that the lanes' max/min must not take: NaN, infinities,
// and -0, which must leave the initial +0 in place.
TEST(FiniteExtremesF32, SimdEqualsPortable) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> specials = {std::numeric_limits<float>::quiet_NaN(), inf, -inf, 0.0f, -0.0f,
                                       1e-45f, -1e-45f, std::numeric_limits<float>::max(),
                                       std::numeric_limits<float>::lowest()};
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> value(-3, 3);
  std::uniform_int_distribution<int> pick(0, int(specials.size()) - 1);
  for (std::size_t n = 0; n <= 100; ++n)
    for (int sign : {-1, 0, 1})
      for (int density : {0, 4, 100}) {  // per cent of elements replaced by special values
        std::vector<float> x(n);
        for (float& v : x) {
          v = value(rng);
          if (sign != 0) v = float(sign) * std::abs(v);
          if (int(rng() % 100) < density) v = specials[std::size_t(pick(rng))];
        }
        const FiniteExtremes want = finite_extremes_f32_portable(x);
        const FiniteExtremes got = finite_extremes_f32(x);
        ASSERT_EQ(std::bit_cast<std::uint32_t>(got.max_pos), std::bit_cast<std::uint32_t>(want.max_pos))
            << n << " " << sign << " " << density;
        ASSERT_EQ(std::bit_cast<std::uint32_t>(got.min_neg), std::bit_cast<std::uint32_t>(want.min_neg))
            << n << " " << sign << " " << density;
      }
}

TEST(FiniteExtremesF32, SkipsNonFiniteAndKeepsPositiveZero) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  for (auto kernel : {&finite_extremes_f32, &finite_extremes_f32_portable}) {
    std::vector<float> x(40, -0.0f);
    x[3] = inf;
    x[17] = -inf;
    x[33] = std::numeric_limits<float>::quiet_NaN();
    FiniteExtremes e = kernel(x);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(e.max_pos), 0u);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(e.min_neg), 0u);
    x[38] = 2.5f;
    x[5] = -0.75f;
    e = kernel(x);
    EXPECT_EQ(e.max_pos, 2.5f);
    EXPECT_EQ(e.min_neg, -0.75f);
  }
}
