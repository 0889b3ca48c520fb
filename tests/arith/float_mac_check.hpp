// FloatMac's vector step against the scalar MacDatapath, every accumulator code at once: shared by
// test_float_mac.cpp and its long exhaustive variants.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/arith/float_mac.hpp"

namespace bitsim::arith::testing {

// Operand pairs, as codes of fa and fb (formats whose values fp32 holds).
struct Products {
  Format fa, fb;
  std::vector<std::pair<u128, u128>> pairs;
};

inline u128 f32_code(float v) { return std::bit_cast<std::uint32_t>(v); }

// Signed zeros, the smallest and largest subnormal, the smallest normal, one and its neighbours,
// the largest finite value, inf and nan where the format has them.
inline std::vector<u128> corner_codes(const Format& f) {
  const u128 sign = u128(1) << (f.width() - 1), one = u128(f.bias()) << f.man_bits;
  std::vector<u128> mags = {0, 1, (u128(1) << f.man_bits) - 1, u128(1) << f.man_bits, one - 1, one, one + 1, max_code(f)};
  if (f.has_inf()) mags.push_back(max_code(f) + 1);
  if (f.has_nan()) mags.push_back(f.has_inf() ? max_code(f) + 2 : max_code(f) + 1);
  std::vector<u128> out;
  for (u128 m : mags) out.insert(out.end(), {m, m | sign});
  return out;
}

// Every `stride`-th pair of corner codes (each corner meets 1/stride of the others, with both
// signs) and `random` pairs of random codes.
inline Products corner_and_random_pairs(const char* a, const char* b, int stride, int random, std::mt19937_64& rng) {
  Products p{Format::parse(a), Format::parse(b), {}};
  const std::vector<u128> ca = corner_codes(p.fa), cb = corner_codes(p.fb);
  for (std::size_t i = 0; i < ca.size(); ++i)
    for (std::size_t j = 0; j < cb.size(); ++j)
      if ((i + j) % std::size_t(stride) == 0) p.pairs.emplace_back(ca[i], cb[j]);
  for (int i = 0; i < random; ++i) p.pairs.emplace_back(u128(rng()) & p.fa.code_mask(), u128(rng()) & p.fb.code_mask());
  return p;
}

// fp32 operands whose product has 47 significant bits, 2^j (1 - 2^-46) = (1 + 2^-23) 2^(j/2) times
// (1 - 2^-23) 2^(j - j/2): added to an accumulator value v with LSB 2^(j+1), the double sum is the
// midpoint v + 2^j while the exact sum lies 2^(j-46) below it (above it for a negative product and
// the midpoint v - 2^j). For j from below the accumulator's smallest half LSB to above its largest:
// every j near the ends (subnormals, overflow), every `stride`-th in between.
inline Products midpoint_pairs(const Format& acc, int stride) {
  Products p{Format::fp32(), Format::fp32(), {}};
  const int lo = acc.emin() - acc.man_bits - 3, hi = acc.emax() - acc.man_bits + 1;
  for (int j = lo; j <= hi; ++j) {
    if (j - lo >= 6 && hi - j >= 6 && (j - lo) % stride != 0) continue;
    for (float s : {1.0f, -1.0f})
      p.pairs.emplace_back(f32_code(std::ldexp(1.0f + 0x1p-23f, j / 2)), f32_code(s * std::ldexp(1.0f - 0x1p-23f, j - j / 2)));
  }
  return p;
}

// Random fp32 operands over exponents -40..40: products far below and above a 16-bit accumulator.
inline Products random_fp32_pairs(int count, std::mt19937_64& rng) {
  Products p{Format::fp32(), Format::fp32(), {}};
  std::uniform_int_distribution<int> e(-40, 40);
  auto value = [&] { return f32_code(std::ldexp(float(rng() & 0xffffff) / 0x1p24f, e(rng)) * (rng() & 1 ? 1 : -1)); };
  for (int i = 0; i < count; ++i) p.pairs.emplace_back(value(), value());
  return p;
}

// The k random bits of lane `lane` for pair `pair`: a fixed hash, so a failure reproduces.
inline std::uint32_t random_bits(std::uint64_t pair, std::uint64_t lane, int k) {
  std::uint64_t z = pair * 0x9E3779B97F4A7C15ull + lane * 0xD1B54A32D192ED03ull + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return std::uint32_t((z ^ (z >> 31)) >> (64 - k));
}

// For every code c of fc and every pair (a, b): FloatMac::step from value(c) gives the value of
// MacDatapath(fa, fb, fc, spec)(c, a, b, r).code (nan for nan). Stops at the first mismatch.
inline void expect_step_equals_mac_datapath(const Format& fc, const RoundSpec& spec, const Products& p) {
  const FloatMac mac(fc, spec);
  const MacDatapath dp(p.fa, p.fb, fc, spec);
  const std::uint64_t codes = std::uint64_t(1) << fc.width();
  std::vector<double> start(codes), acc(codes);
  for (std::uint64_t c = 0; c < codes; ++c) start[c] = mac.value(c);
  std::vector<float> x(codes), y(codes);
  std::vector<std::uint32_t> rnd(codes);
  const bool stochastic = spec.rounding == Rounding::Stochastic;
  for (std::size_t i = 0; i < p.pairs.size(); ++i) {
    const auto [a, b] = p.pairs[i];
    const float xa = float(decode(p.fa, a).to_double()), yb = float(decode(p.fb, b).to_double());
    std::fill(x.begin(), x.end(), xa);
    std::fill(y.begin(), y.end(), yb);
    for (std::uint64_t c = 0; c < codes; ++c) rnd[c] = stochastic ? random_bits(i, c, spec.sr_bits) : 0;
    acc = start;
    mac.step(acc.data(), x.data(), y.data(), rnd.data(), codes);
    for (std::uint64_t c = 0; c < codes; ++c) {
      const double want = start[std::size_t(dp(c, a, b, rnd[c]).code)];
      const bool same = std::bit_cast<std::uint64_t>(acc[c]) == std::bit_cast<std::uint64_t>(want) ||
                        (std::isnan(acc[c]) && std::isnan(want));
      ASSERT_TRUE(same) << p.fa.spec() << " x " << p.fb.spec() << " + " << fc.spec() << " " << to_string(spec.rounding)
                        << " k=" << spec.sr_bits << " " << to_string(spec.overflow) << ": acc code " << c << " ("
                        << start[c] << ") + " << xa << " * " << yb << " random " << rnd[c] << ": got " << acc[c]
                        << ", MacDatapath " << want;
    }
  }
}

}  // namespace bitsim::arith::testing
