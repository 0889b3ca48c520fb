// Fast array quantization of fp32 tensors ("fake quantization": values stay fp32 but lie on the
// format's grid). Bit-identical to the scalar quantize(); tests compare them element by element.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

// True when every value of `f` is an fp32 number, so that fp32 can carry the quantized values:
// fixed point up to 24 bits with its grid inside fp32's range, floats with m <= 23, a zero, and
// exponents inside fp32's (subnormals included).
bool fits_fp32(const Format& f);

// out[i] = the value of quantize(f, in[i], spec, r_i) where r_i = sr.bits(first_index + i, k).
// Throws FormatError when !fits_fp32(f). `in` and `out` may be the same array. Status flags are
// not computed here; the scalar quantize() gives them.
void quantize_f32(const Format& f, const RoundSpec& spec, std::span<const float> in, std::span<float> out,
                  const SrStream& sr = {}, std::uint64_t first_index = 0);

// The same, always on the portable C++ loop: the oracle the SIMD paths are tested against.
void quantize_f32_portable(const Format& f, const RoundSpec& spec, std::span<const float> in,
                           std::span<float> out, const SrStream& sr = {}, std::uint64_t first_index = 0);

// The instruction sets quantize_f32 can use. Each level serves what it can and hands the rest to
// the level below (AVX-512 -> AVX2 -> portable); quantize_f32 takes the best the CPU has.
enum class QuantizeKernel : std::uint8_t { Portable, Avx2, Avx512 };
std::string_view to_string(QuantizeKernel k);
bool available(QuantizeKernel k);
QuantizeKernel best_quantize_kernel();

// quantize_f32 on the given level; throws std::invalid_argument when the CPU lacks it.
void quantize_f32_with(QuantizeKernel kernel, const Format& f, const RoundSpec& spec, std::span<const float> in,
                       std::span<float> out, const SrStream& sr = {}, std::uint64_t first_index = 0);

// The largest positive and the smallest negative finite value of `x`, 0 where there is none: the
// two extremes from which dynamic fixed point chooses its fraction length. NaNs and infinities are
// skipped; -0 never replaces the initial +0, so both results are +0 or nonzero.
struct FiniteExtremes {
  float max_pos = 0, min_neg = 0;
};
FiniteExtremes finite_extremes_f32(std::span<const float> x);

// The same, always on the portable C++ loop: the oracle the SIMD path is tested against.
FiniteExtremes finite_extremes_f32_portable(std::span<const float> x);

}  // namespace bitsim::arith
