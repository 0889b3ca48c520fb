// Arithmetic on codes: exact product, add, sub and fused multiply-add, each rounded once into a
// target format. Built on exact operations on Exact values, so one rounding is all there is.
#pragma once

#include "bitsim/arith/quantize.hpp"

namespace bitsim::arith {

// Exact product and sum (128 bits plus sticky where more would be needed). IEEE special cases:
// nan in -> nan; inf * 0 and inf - inf -> nan; an exact zero sum is +0 unless both addends are -0.
// The rounded operations below give an exact zero sum of opposite-signed operands the sign IEEE
// 754 6.3 asks for (-0 under rounding `down`).
Exact exact_mul(const Exact& a, const Exact& b);
Exact exact_add(const Exact& a, const Exact& b);
Exact negate(Exact a);

// The format that holds every product of codes of `a` and `b` exactly:
// fixed: fixed<wa+wb, fa+fb> (ufixed when both are unsigned);
// float: float<max(ea,eb)+2, ma+mb+1> with the non-finite behaviour of IEEE.
Format product_format(const Format& a, const Format& b);

// Operands are codes of `in` (of `in` and `in2` for mul/fma's b); the exact result is rounded once
// into `out`. inf - inf and 0 * inf set kInvalid and give out's nan; a nan operand gives out's nan
// with no flag (a quiet nan), except that a format without nan gets code 0 and kInvalid.
Quantized add(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
              std::uint32_t random = 0);
Quantized sub(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
              std::uint32_t random = 0);
Quantized mul(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
              std::uint32_t random = 0);
// a * b + c with a, b in `in` and c in `c_format`.
Quantized fma(const Format& in, u128 a, u128 b, const Format& c_format, u128 c, const Format& out,
              const RoundSpec& spec, std::uint32_t random = 0);

// round(x + y) once into `out`, with IEEE's zero-sign rule and invalid flag for inf - inf.
// The building block of add, sub, fma and every accumulator.
Quantized round_sum(const Format& out, const Exact& x, const Exact& y, const RoundSpec& spec,
                    std::uint32_t random = 0);

}  // namespace bitsim::arith
