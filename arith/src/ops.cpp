// Exact product and sum of Exact values, and the once-rounded add/sub/mul/fma on codes.
// Sums are exact in a 512-bit integer whenever the operands overlap; a far smaller operand only
// matters as a sticky bit, which is all correct rounding needs of it.
#include "bitsim/arith/ops.hpp"

#include <bit>
#include <cstdlib>
#include <boost/multiprecision/cpp_int.hpp>

namespace bitsim::arith {
namespace {

using boost::multiprecision::uint512_t;

int msb(u128 v) {
  const auto hi = std::uint64_t(v >> 64);
  return hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(std::uint64_t(v));
}

uint512_t to_wide(u128 v) { return (uint512_t(std::uint64_t(v >> 64)) << 64) | std::uint64_t(v); }

// v * 2^exp folded into 128 significant bits and a sticky bit (normalised when sticky).
Exact fold(bool neg, const uint512_t& v, int exp, bool sticky) {
  Exact x;
  x.neg = neg;
  if (v == 0) {
    x.sticky = sticky;
    x.exp = exp;
    return x;
  }
  const int bits = int(boost::multiprecision::msb(v)) + 1;
  const int drop = bits > 128 ? bits - 128 : 0;
  const uint512_t kept = v >> drop;
  x.sig = u128(static_cast<std::uint64_t>(kept >> 64)) << 64 | static_cast<std::uint64_t>(kept);
  x.exp = exp + drop;
  x.sticky = sticky || (drop > 0 && (v & ((uint512_t(1) << drop) - 1)) != 0);
  if (x.sticky && bits < 128) {  // a sticky significand is kept normalised (see quantize.hpp)
    x.sig <<= 128 - bits;
    x.exp -= 128 - bits;
  }
  return x;
}

}  // namespace

Exact negate(Exact a) {
  if (!a.is_nan()) a.neg = !a.neg;
  return a;
}

Exact exact_mul(const Exact& a, const Exact& b) {
  if (a.is_nan() || b.is_nan()) return Exact::nan();
  const bool neg = a.neg != b.neg;
  if (a.is_inf() || b.is_inf()) {
    if (a.is_zero() || b.is_zero()) return Exact::nan();  // 0 * inf
    return Exact::inf(neg);
  }
  if (a.is_zero() || b.is_zero()) return Exact::zero(neg);
  if ((a.sig >> 64) == 0 && (b.sig >> 64) == 0 && !a.sticky && !b.sticky)
    return {Exact::Class::Finite, neg, a.sig * b.sig, a.exp + b.exp, false};
  return fold(neg, to_wide(a.sig) * to_wide(b.sig), a.exp + b.exp, a.sticky || b.sticky);
}

Exact exact_add(const Exact& a, const Exact& b) {
  if (a.is_nan() || b.is_nan()) return Exact::nan();
  if (a.is_inf() || b.is_inf()) {
    if (a.is_inf() && b.is_inf() && a.neg != b.neg) return Exact::nan();  // inf - inf
    return a.is_inf() ? a : b;
  }
  if (a.is_zero() && b.is_zero()) return Exact::zero(a.neg && b.neg);
  if (a.is_zero()) return b;
  if (b.is_zero()) return a;

  // Top bit positions; a value with sig == 0 and sticky lies below 2^exp.
  const int ta = a.sig ? msb(a.sig) + a.exp : a.exp - 1;
  const int tb = b.sig ? msb(b.sig) + b.exp : b.exp - 1;
  const Exact& big = ta >= tb ? a : b;
  const Exact& small = ta >= tb ? b : a;
  if (std::abs(ta - tb) > 130) {
    // The small operand lies entirely below the big one's 128-bit window, two bits or more: it
    // can only move the result by less than one unit of that window, which a sticky bit records.
    const int up = big.sig ? 127 - msb(big.sig) : 0;
    u128 sig = big.sig << up;
    const int exp = big.exp - up;
    if (big.neg != small.neg) --sig;  // value - tiny lies in (sig - 1, sig)
    return {Exact::Class::Finite, big.neg, sig, exp, true};
  }
  const int e0 = std::min(a.exp, b.exp);
  const uint512_t wa = to_wide(a.sig) << (a.exp - e0);
  const uint512_t wb = to_wide(b.sig) << (b.exp - e0);
  // An inexact operand's unknown fraction sits at the bottom of its own 128-bit window; carrying it
  // as the sum's sticky bit is exact to 2^-125 of the result (documented in docs/arith.md).
  const bool sticky = a.sticky || b.sticky;
  if (a.neg == b.neg) return fold(a.neg, wa + wb, e0, sticky);
  if (wa == wb) return sticky ? fold(big.neg, 0, e0, true) : Exact::zero(false);
  return wa > wb ? fold(a.neg, wa - wb, e0, sticky) : fold(b.neg, wb - wa, e0, sticky);
}

Format product_format(const Format& a, const Format& b) {
  if (a.is_float() != b.is_float())
    throw FormatError("a product needs two fixed-point or two float formats, not " + a.spec() + " and " + b.spec());
  if (!a.is_float()) {
    if (a.wl + b.wl > 128)
      throw FormatError("the exact product of " + a.spec() + " and " + b.spec() + " is wider than 128 bits");
    return Format::fixed(a.wl + b.wl, a.fl + b.fl, a.is_signed || b.is_signed);
  }
  return Format::floating(std::max(a.exp_bits, b.exp_bits) + 2, a.man_bits + b.man_bits + 1);
}

// IEEE 754 6.3: an exact zero sum of operands of opposite signs is +0, or -0 under rounding
// toward negative; x + x keeps the sign of a zero x.
Quantized round_sum(const Format& out, const Exact& x, const Exact& y, const RoundSpec& spec,
                    std::uint32_t random) {
  Exact s = exact_add(x, y);
  if (s.is_zero() && !(x.is_zero() && y.is_zero() && x.neg == y.neg))
    s.neg = spec.rounding == Rounding::Down;
  Quantized q = quantize(out, s, spec, random);
  if (s.is_nan() && !x.is_nan() && !y.is_nan()) q.status |= kInvalid;  // inf - inf
  return q;
}

Quantized add(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec, std::uint32_t random) {
  const Exact x = decode(in, a), y = decode(in, b);
  return round_sum(out, x, y, spec, random);
}

Quantized sub(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec, std::uint32_t random) {
  const Exact x = decode(in, a), y = negate(decode(in, b));
  return round_sum(out, x, y, spec, random);
}

Quantized mul(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec, std::uint32_t random) {
  const Exact x = decode(in, a), y = decode(in, b);
  const Exact p = exact_mul(x, y);
  Quantized q = quantize(out, p, spec, random);
  if (p.is_nan() && !x.is_nan() && !y.is_nan()) q.status |= kInvalid;
  return q;
}

Quantized fma(const Format& in, u128 a, u128 b, const Format& c_format, u128 c, const Format& out,
              const RoundSpec& spec, std::uint32_t random) {
  const Exact x = decode(in, a), y = decode(in, b), z = decode(c_format, c);
  const Exact p = exact_mul(x, y);
  Quantized q = round_sum(out, p, z, spec, random);
  if (p.is_nan() && !x.is_nan() && !y.is_nan()) q.status |= kInvalid;  // 0 * inf, even with nan c
  return q;
}

}  // namespace bitsim::arith
