// Long exhaustive checks (CTest label "long"): the fp32 array quantizer, SIMD and portable,
// against the scalar golden model on every one of the 2^32 fp32 bit patterns.
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <thread>
#include <vector>

#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/quantize.hpp"

using namespace bitsim::arith;

namespace {

// Splits the 2^32 patterns into chunks over the available cores; returns the number of mismatches.
std::uint64_t mismatches_over_all_fp32(const Format& f, const RoundSpec& spec) {
  constexpr std::uint64_t kChunk = 1 << 20;
  std::atomic<std::uint64_t> next{0}, bad{0};
  const SrStream sr{17, 4};
  auto worker = [&] {
    std::vector<float> in(kChunk), simd(kChunk), portable(kChunk);
    for (std::uint64_t c; (c = next.fetch_add(1)) < (std::uint64_t{1} << 32) / kChunk;) {
      const std::uint64_t first = c * kChunk;
      for (std::uint64_t i = 0; i < kChunk; ++i) in[i] = std::bit_cast<float>(std::uint32_t(first + i));
      quantize_f32(f, spec, in, simd, sr, first);
      quantize_f32_portable(f, spec, in, portable, sr, first);
      for (std::uint64_t i = 0; i < kChunk; ++i) {
        const std::uint32_t r = spec.rounding == Rounding::Stochastic ? sr.bits(first + i, spec.sr_bits) : 0;
        const auto want = float(decode(f, quantize(f, Exact::from_float(in[i]), spec, r).code).to_double());
        const auto same = [&](float got) {
          return std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(want) ||
                 (std::isnan(got) && std::isnan(want));
        };
        if (!same(simd[i]) || !same(portable[i])) bad.fetch_add(1);
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return bad.load();
}

}  // namespace

TEST(LongExhaustive, EveryFp32IntoFp16NearestEven) {
  EXPECT_EQ(mismatches_over_all_fp32(Format::parse("fp16"), {Rounding::NearestEven, Overflow::Ieee}), 0u);
}

TEST(LongExhaustive, EveryFp32IntoBf16NearestEven) {
  EXPECT_EQ(mismatches_over_all_fp32(Format::parse("bf16"), {Rounding::NearestEven, Overflow::Ieee}), 0u);
}

TEST(LongExhaustive, EveryFp32IntoFp8E4M3Stochastic) {
  EXPECT_EQ(mismatches_over_all_fp32(Format::parse("fp8e4m3"), {Rounding::Stochastic, Overflow::Saturate, 16}), 0u);
}

TEST(LongExhaustive, EveryFp32IntoFixed8_4NearestEven) {
  EXPECT_EQ(mismatches_over_all_fp32(Format::parse("fixed<8,4>"), {Rounding::NearestEven, Overflow::Saturate}), 0u);
}

namespace {

// Every SIMD level this CPU has against the portable loop, bit for bit (NaN payloads and signs
// included), on all 2^32 fp32 patterns; returns the number of mismatches.
std::uint64_t simd_mismatches_over_all_fp32(const Format& f, const RoundSpec& spec) {
  constexpr std::uint64_t kChunk = 1 << 20;
  std::atomic<std::uint64_t> next{0}, bad{0};
  const SrStream sr{23, 5};
  auto worker = [&] {
    std::vector<float> in(kChunk), got(kChunk), want(kChunk);
    for (std::uint64_t c; (c = next.fetch_add(1)) < (std::uint64_t{1} << 32) / kChunk;) {
      const std::uint64_t first = c * kChunk;
      for (std::uint64_t i = 0; i < kChunk; ++i) in[i] = std::bit_cast<float>(std::uint32_t(first + i));
      quantize_f32_portable(f, spec, in, want, sr, first);
      for (auto level : {QuantizeKernel::Avx2, QuantizeKernel::Avx512}) {
        if (!available(level)) continue;
        quantize_f32_with(level, f, spec, in, got, sr, first);
        for (std::uint64_t i = 0; i < kChunk; ++i)
          if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) bad.fetch_add(1);
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return bad.load();
}

const Rounding kAllRoundings[] = {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero,
                                  Rounding::NearestUp,   Rounding::NearestDown, Rounding::TowardZero,
                                  Rounding::Down,        Rounding::Up,          Rounding::Odd,
                                  Rounding::Stochastic};

}  // namespace

// The fp8, fp16 and bf16 SIMD paths (magic-number, scaled and integer rounding) under every
// rounding and both overflow modes, and the fixed-point ones under every mode they serve.
TEST(LongExhaustive, EveryFp32SimdEqualsPortableForFloats) {
  for (const char* name : {"fp8e4m3", "fp8e5m2", "fp16", "bf16"})
    for (auto r : kAllRoundings)
      for (auto o : {Overflow::Ieee, Overflow::Saturate}) {
        if (o == Overflow::Saturate && r != Rounding::NearestEven && r != Rounding::Stochastic) continue;
        EXPECT_EQ(simd_mismatches_over_all_fp32(Format::parse(name), {r, o, 16}), 0u)
            << name << " " << to_string(r) << " " << to_string(o);
      }
}

TEST(LongExhaustive, EveryFp32SimdEqualsPortableForFixedPoint) {
  for (const char* name : {"fixed<8,4>", "fixed<16,8>"})
    for (auto r : {Rounding::NearestEven, Rounding::TowardZero, Rounding::Down, Rounding::Up, Rounding::Stochastic})
      for (auto o : {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric})
        EXPECT_EQ(simd_mismatches_over_all_fp32(Format::parse(name), {r, o, 16}), 0u)
            << name << " " << to_string(r) << " " << to_string(o);
}
