// AVX2 paths of the fp32 array quantizer, eight lanes of fp32 at a time, and of the Philox stream.
// Internal to arith: kernels.cpp chooses them at run time and the portable loop remains the oracle.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitsim/arith/rounding.hpp"

namespace bitsim::arith::avx2 {

bool available();

// What only the AVX-512 loops (kernels_avx512.cpp) use. stream: write the output with streaming
// stores. fused: draw the stochastic-rounding numbers in the loop, from stream (seed, sr_stream)
// starting at element first_index, a multiple of SrStream::per_block(k); rnd is then unused.
struct AvxOnly {
  bool stream = false;
  bool fused = false;
  std::uint64_t seed = 0, sr_stream = 0, first_index = 0;
};

// Loop invariants in fp32; every constant here is exactly representable (see kernels.cpp).
struct FixedPlan {
  float clamp = 0;          // 2^(wl - fl): inputs are clamped to +-clamp first, keeping y exact
  float scale = 1, inv_scale = 1;  // 2^fl, 2^-fl with 0 <= fl <= 126
  float lo = 0, hi = 0, sym_lo = 0;
  float two_k = 65536;
  int sr_bits = 16;
  AvxOnly wide;
};

struct FloatPlan {
  int m = 0, emin = 0, emax = 0;
  float max_value = 0, min_normal = 0;
  float overflow_pos = 0, overflow_neg = 0, inf_pos = 0, inf_neg = 0, nan_result = 0;
  bool ftz = false, is_signed = true;
  float two_k = 65536;
  // Signed IEEE formats with fp32's 8-bit exponent (bf16, tf32, fp32): rounding is integer
  // rounding of the fp32 bit pattern at bit 23 - m, subnormals included.
  bool same_range = false;
  int sr_bits = 16;
  AvxOnly wide;
};

// n elements; rnd holds k-bit random numbers (k <= 24) for stochastic rounding, else unused.
void quantize_fixed(Rounding r, Overflow o, const FixedPlan& p, const float* src, float* dst,
                    const std::uint32_t* rnd, std::size_t n);
void quantize_float(Rounding r, const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd,
                    std::size_t n);

// The largest positive and smallest negative finite values of src[0..n), each starting from +0,
// as finite_extremes_f32_portable() (kernels.cpp) computes them.
void finite_extremes(const float* src, std::size_t n, float& max_pos, float& min_neg);

// The k-bit random numbers of SrStream blocks first_block .. first_block + blocks - 1, in element
// order: SrStream::per_block(k) numbers per block.
void philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block, std::size_t blocks, int k,
                 std::uint32_t* out);

}  // namespace bitsim::arith::avx2
