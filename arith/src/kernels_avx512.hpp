// AVX-512 paths of the fp32 array quantizer and of the Philox stream, sixteen lanes at a time.
// Internal to arith: kernels.cpp chooses them at run time; the AVX2 and portable loops remain.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitsim/arith/rounding.hpp"
#include "kernels_avx2.hpp"

namespace bitsim::arith::avx512 {

// AVX-512 F, DQ and BW (checked once, by CPUID).
bool available();

// The plans these loops serve; the rest go to the AVX2 loops. Inline so that no AVX-512 code
// runs to decide it.
//  - Fixed point under the roundings that are one vrndscaleps (nearest-even, toward zero, down,
//    up) or stochastic with wl + k <= 30, and no wrap-around; the AVX2 plan's conditions
//    (0 <= fl <= 126) hold.
//  - Floats whose rounding is integer rounding of the fp32 pattern (same_range), or whose grid
//    fits the magic-number form (see kernels_avx512.cpp): every quantum 2^(e-m) and 2^(e-m-1), and
//    under stochastic rounding 2^(e-m-k), at or above 2^-149, with 2^(e-m+24) finite for
//    e up to emax + 1.
inline bool serves_fixed(Rounding r, Overflow o, const avx2::FixedPlan& p) {
  const bool mode = r == Rounding::NearestEven || r == Rounding::TowardZero || r == Rounding::Down ||
                    r == Rounding::Up || (r == Rounding::Stochastic && p.clamp * p.scale * p.two_k <= 0x1p30f);
  return mode && o != Overflow::Wrap;
}
inline bool serves_float(Rounding r, const avx2::FloatPlan& p) {
  if (p.same_range) return true;
  if (p.m > 22 || p.emin - p.m - 1 < -149 || p.emax + 1 - p.m + 24 > 127) return false;
  return r != Rounding::Stochastic || (p.sr_bits <= 24 && p.emin - p.m - p.sr_bits >= -149);
}

// As avx2::quantize_fixed/quantize_float, for the plans above.
void quantize_fixed(Rounding r, Overflow o, const avx2::FixedPlan& p, const float* src, float* dst,
                    const std::uint32_t* rnd, std::size_t n);
void quantize_float(Rounding r, const avx2::FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd,
                    std::size_t n);

// Orders the streaming stores of the calls above (plans with `stream`) before later stores: once,
// after the last call, since a fence per call would wait for every call's stores to drain.
void end_streaming();

// As avx2::philox_bits.
void philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block, std::size_t blocks, int k,
                 std::uint32_t* out);

}  // namespace bitsim::arith::avx512
