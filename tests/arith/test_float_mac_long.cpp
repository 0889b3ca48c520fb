// Long exhaustive checks (CTest label "long") of FloatMac's vector step against MacDatapath: every
// fp16 and bf16 accumulator code against every pair of corner codes and thousands of random pairs,
// and every fp8 accumulator code against every operand pair of the fp8 formats, in every mode.
#include <gtest/gtest.h>

#include <random>

#include "float_mac_check.hpp"

using namespace bitsim::arith;
using namespace bitsim::arith::testing;

namespace {

const RoundSpec kSpecs[] = {{Rounding::NearestEven, Overflow::Ieee},          {Rounding::NearestEven, Overflow::Saturate},
                            {Rounding::Stochastic, Overflow::Ieee, 16},       {Rounding::Stochastic, Overflow::Saturate, 3},
                            {Rounding::Stochastic, Overflow::Ieee, 1},        {Rounding::Stochastic, Overflow::Saturate, 32}};

}  // namespace

TEST(FloatMacLong, StepEqualsMacDatapathOnEveryFp16AndBf16AccumulatorCode) {
  if (!FloatMac::available()) GTEST_SKIP() << "this CPU has no AVX-512F and DQ";
  std::mt19937_64 rng(50);
  for (const char* acc : {"fp16", "bf16"}) {
    const Format fc = Format::parse(acc);
    const Products groups[] = {corner_and_random_pairs("fp16", "fp16", 1, 256, rng),
                               corner_and_random_pairs("bf16", "bf16", 1, 256, rng),
                               corner_and_random_pairs("fp8e4m3", "fp8e5m2", 1, 256, rng), random_fp32_pairs(256, rng),
                               midpoint_pairs(fc, 1)};
    for (const RoundSpec& spec : kSpecs)
      for (const Products& p : groups) {
        expect_step_equals_mac_datapath(fc, spec, p);
        if (HasFatalFailure()) return;
      }
  }
}

TEST(FloatMacLong, StepEqualsMacDatapathOnEveryFp8AccumulatorCodeAndOperandPair) {
  if (!FloatMac::available()) GTEST_SKIP() << "this CPU has no AVX-512F and DQ";
  for (auto [a, b] : {std::pair{"fp8e4m3", "fp8e4m3"}, {"fp8e5m2", "fp8e5m2"}, {"fp8e4m3", "fp8e5m2"}}) {
    Products p{Format::parse(a), Format::parse(b), {}};
    for (u128 x = 0; x < 256; ++x)
      for (u128 y = 0; y < 256; ++y) p.pairs.emplace_back(x, y);
    for (const char* acc : {"fp8e4m3", "fp8e5m2"})
      for (const RoundSpec& spec : kSpecs) {
        expect_step_equals_mac_datapath(Format::parse(acc), spec, p);
        if (HasFatalFailure()) return;
      }
  }
}
