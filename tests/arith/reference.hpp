// Independent exact model of docs/arith.md (formats, quantization, add/sub/mul/fma) on Boost rationals.
// Written from the specification alone and slow on purpose: test_reference.cpp checks bitsim against it.
#pragma once

#include <algorithm>
#include <boost/multiprecision/cpp_int.hpp>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"

namespace bitsim::arith::ref {

using boost::multiprecision::cpp_int;
using boost::multiprecision::cpp_rational;

// A real value the way the spec talks about it: nan, signed infinity, or an exact rational with a
// sign bit of its own (so that -0 exists).
struct RefValue {
  bool is_nan = false;
  bool is_inf = false;
  bool neg = false;        // sign bit: set for negative values, -0 and -inf
  cpp_rational value = 0;  // signed exact value; 0 for nan and inf

  static RefValue nan() { return {true, false, false, 0}; }
  static RefValue inf(bool neg) { return {false, true, neg, 0}; }
  static RefValue zero(bool neg) { return {false, false, neg, 0}; }
  // A finite value; a zero gets the + sign (use zero(true) for -0).
  static RefValue of(const cpp_rational& v) { return {false, false, v < 0, v}; }
  bool is_zero() const { return !is_nan && !is_inf && value == 0; }
};

struct RefResult {
  u128 code = 0;
  unsigned status = 0;
};

// ---- small exact helpers -------------------------------------------------------------------------

inline cpp_int pow2i(int n) { return cpp_int(1) << n; }  // n >= 0

inline cpp_rational pow2(int n) {
  return n >= 0 ? cpp_rational(pow2i(n)) : cpp_rational(cpp_int(1), pow2i(-n));
}

// floor(log2(a)) for a > 0: the E of the spec's "E = floor(log2 |x|)".
inline int floor_log2(const cpp_rational& a) {
  const cpp_int n = numerator(a), d = denominator(a);
  int e = int(msb(n)) - int(msb(d));
  // The bit lengths give 2^(e-1) < a < 2^(e+1); step down once when a < 2^e.
  if (a < pow2(e)) --e;
  return e;
}

inline u128 to_u128(const cpp_int& v) {  // 0 <= v < 2^128
  const cpp_int lo = v & cpp_int(~std::uint64_t{0});
  const cpp_int hi = v >> 64;
  return (u128(static_cast<std::uint64_t>(hi)) << 64) | u128(static_cast<std::uint64_t>(lo));
}

inline cpp_int from_u128(u128 v) {
  return (cpp_int(std::uint64_t(v >> 64)) << 64) | cpp_int(std::uint64_t(v));
}

inline int code_width(const Format& f) {
  return f.kind == FormatKind::Fixed ? f.wl : int(f.is_signed) + f.exp_bits + f.man_bits;
}

// ---- the one rounding decision, straight from the table in "Quantization" ------------------------

// y = num / den >= 0 is |x| / ulp, x's magnitude in units of the grid; returns the rounded magnitude
// in ulps. `neg` is the sign of x. `twos` selects fixed point's two's complement stochastic rounding
// (floats round the magnitude). Integer arithmetic on num and den only: t = floor(y) and the fraction
// f = rem / den, so f > 1/2 is 2 rem > den and floor(f 2^k) is (rem 2^k) / den.
inline cpp_int round_magnitude_q(const cpp_int& num, const cpp_int& den, bool neg, Rounding mode, std::uint32_t r,
                                 int k, bool twos) {
  const cpp_int t = num / den, rem = num - t * den;  // num, den >= 0: division is floor
  if (rem == 0) return t;
  const int half_cmp = 2 * rem > den ? 1 : 2 * rem == den ? 0 : -1;  // f against 1/2
  const bool above = half_cmp > 0, tie = half_cmp == 0;
  const bool odd = (t & 1) != 0;
  bool inc = false;
  switch (mode) {
    case Rounding::NearestEven: inc = above || (tie && odd); break;
    case Rounding::NearestAway: inc = above || tie; break;
    case Rounding::NearestZero: inc = above; break;
    case Rounding::NearestUp: inc = above || (tie && !neg); break;
    case Rounding::NearestDown: inc = above || (tie && neg); break;
    case Rounding::TowardZero: inc = false; break;
    case Rounding::Down: inc = neg; break;
    case Rounding::Up: inc = !neg; break;
    case Rounding::Odd: inc = !odd; break;
    case Rounding::Stochastic: {
      const cpp_int two_k = pow2i(k);
      if (twos && neg) {
        // The two's complement code holds 1 - f below its LSB; floor(x/ulp) is -(t+1), and the adder
        // gives floor(x/ulp) + 1 = -t (magnitude kept) when d + r >= 2^k.
        const cpp_int d = ((den - rem) << k) / den;
        inc = !(d + r >= two_k);
      } else {
        const cpp_int d = (rem << k) / den;
        inc = d + r >= two_k;
      }
      break;
    }
  }
  return inc ? cpp_int(t + 1) : t;
}

// The same for y = a * 2^-q, a >= 0 (a's magnitude on the grid of spacing 2^q).
inline cpp_int round_magnitude(const cpp_rational& a, int q, bool neg, Rounding mode, std::uint32_t r, int k,
                               bool twos) {
  cpp_int num = numerator(a), den = denominator(a);
  if (q >= 0) den <<= q;
  else num <<= -q;
  return round_magnitude_q(num, den, neg, mode, r, k, twos);
}

// ---- fixed point ----------------------------------------------------------------------------------

inline cpp_int fixed_hi(const Format& f) { return f.is_signed ? pow2i(f.wl - 1) - 1 : pow2i(f.wl) - 1; }
inline cpp_int fixed_lo(const Format& f) { return f.is_signed ? -pow2i(f.wl - 1) : cpp_int(0); }

inline u128 fixed_code(const Format& f, const cpp_int& n) {
  const cpp_int m = pow2i(f.wl);
  cpp_int c = n % m;  // truncating remainder: fix up into [0, 2^wl)
  if (c < 0) c += m;
  return to_u128(c);
}

inline RefValue ref_decode_fixed(const Format& f, u128 code) {
  cpp_int n = from_u128(code) & (pow2i(f.wl) - 1);
  if (f.is_signed && bit_test(n, unsigned(f.wl - 1))) n -= pow2i(f.wl);
  return RefValue::of(cpp_rational(n) * pow2(-f.fl));
}

// The overflow table's fixed point column for a rounded integer `n` outside the range.
inline RefResult fixed_overflow(const Format& f, const cpp_int& n, const RoundSpec& spec) {
  const cpp_int hi = fixed_hi(f), lo = fixed_lo(f);
  const unsigned st = kOverflow | kInexact;
  switch (spec.overflow) {
    case Overflow::Saturate: return {fixed_code(f, n > hi ? hi : lo), st};
    case Overflow::SaturateZero: return {0, st};
    case Overflow::SaturateSymmetric: {
      // Range [-max, max]; an unsigned format has no -max, so its low end stays 0.
      const cpp_int slo = f.is_signed ? cpp_int(-hi) : cpp_int(0);
      return {fixed_code(f, n > hi ? hi : slo), st};
    }
    case Overflow::Wrap: return {fixed_code(f, n), st};
    case Overflow::Ieee: break;
  }
  throw std::invalid_argument("ieee overflow does not apply to fixed point");
}

inline RefResult ref_quantize_fixed(const Format& f, const RefValue& x, const RoundSpec& spec,
                                    std::uint32_t random) {
  if (x.is_nan) return {0, kInvalid};
  if (x.is_inf) {
    // "±inf is an overflow (with wrap: code 0, invalid)": an overflow, so overflow|inexact, and wrap
    // has no low bits to keep, so code 0 and invalid as well. (The spec could also be read as
    // invalid alone; bitsim flags all three.)
    if (spec.overflow == Overflow::Wrap) return {0, kOverflow | kInexact | kInvalid};
    // Any integer beyond the end of the range on the infinity's side selects the same clamp.
    return fixed_overflow(f, x.neg ? fixed_lo(f) - 1 : fixed_hi(f) + 1, spec);
  }
  const cpp_rational y = x.value * pow2(f.fl);  // value in LSBs
  const bool neg = y < 0;
  const cpp_int mag = round_magnitude(neg ? cpp_rational(-y) : y, 0, neg, spec.rounding, random, spec.sr_bits, true);
  const cpp_int n = neg ? cpp_int(-mag) : mag;
  cpp_int lo = fixed_lo(f);
  const cpp_int hi = fixed_hi(f);
  if (spec.overflow == Overflow::SaturateSymmetric && f.is_signed) lo = -hi;
  if (n < lo || n > hi) return fixed_overflow(f, n, spec);
  return {fixed_code(f, n), cpp_rational(n) == y ? 0u : unsigned(kInexact)};
}

// ---- floating point -------------------------------------------------------------------------------

inline int fbias(const Format& f) { return (1 << (f.exp_bits - 1)) - 1; }
// First normal binade: 1 - bias, or -bias when exponent field 0 is a normal binade (nz).
inline int femin(const Format& f) { return f.has_zero ? 1 - fbias(f) : -fbias(f); }
inline int exp_all_ones(const Format& f) { return (1 << f.exp_bits) - 1; }

// The largest finite number as (exponent field, mantissa field).
inline std::pair<int, cpp_int> max_fields(const Format& f) {
  const cpp_int mant_ones = pow2i(f.man_bits) - 1;
  switch (f.nonfinite) {
    case NonFinite::Ieee: return {exp_all_ones(f) - 1, mant_ones};
    case NonFinite::NanOnly:
      if (f.man_bits > 0) return {exp_all_ones(f), mant_ones - 1};
      return {exp_all_ones(f) - 1, cpp_int(0)};
    case NonFinite::None: return {exp_all_ones(f), mant_ones};
  }
  return {0, 0};
}

inline cpp_rational normal_value(const Format& f, int efield, const cpp_int& mfield) {
  return cpp_rational(pow2i(f.man_bits) + mfield) * pow2(efield - fbias(f) - f.man_bits);
}

inline cpp_rational fmax_value(const Format& f) {
  const auto [e, m] = max_fields(f);
  return normal_value(f, e, m);
}

inline u128 float_fields(const Format& f, bool neg, int efield, const cpp_int& mfield) {
  cpp_int c = (cpp_int(efield) << f.man_bits) | mfield;
  if (f.is_signed && neg) c |= pow2i(f.exp_bits + f.man_bits);
  return to_u128(c);
}

inline bool has_inf(const Format& f) { return f.kind == FormatKind::Float && f.nonfinite == NonFinite::Ieee; }
inline bool has_nan(const Format& f) { return f.kind == FormatKind::Float && f.nonfinite != NonFinite::None; }

// The canonical nan: quiet (mantissa MSB set) for IEEE formats, all ones for fn formats.
inline u128 nan_code(const Format& f) {
  if (f.nonfinite == NonFinite::Ieee) return float_fields(f, false, exp_all_ones(f), pow2i(f.man_bits - 1));
  return float_fields(f, false, exp_all_ones(f), pow2i(f.man_bits) - 1);
}
inline u128 inf_code(const Format& f, bool neg) { return float_fields(f, neg, exp_all_ones(f), 0); }
inline u128 max_code_of(const Format& f, bool neg) {
  const auto [e, m] = max_fields(f);
  return float_fields(f, neg, e, m);
}

inline RefValue ref_decode_float(const Format& f, u128 code) {
  const cpp_int c = from_u128(code);
  const int m = f.man_bits;
  const bool neg = f.is_signed && bit_test(c, unsigned(f.exp_bits + m));
  const int efield = int(static_cast<unsigned>((c >> m) & ((1 << f.exp_bits) - 1)));
  const cpp_int mfield = c & (pow2i(m) - 1);
  if (f.nonfinite == NonFinite::Ieee && efield == exp_all_ones(f))
    return mfield == 0 ? RefValue::inf(neg) : RefValue::nan();
  if (f.nonfinite == NonFinite::NanOnly && efield == exp_all_ones(f) && mfield == pow2i(m) - 1)
    return RefValue::nan();
  cpp_rational mag;
  if (f.has_zero && efield == 0) {
    // Zero and subnormals; without subnormals (ftz) they read as zero of the same sign.
    if (!f.subnormals || mfield == 0) return RefValue::zero(neg);
    mag = cpp_rational(mfield) * pow2(1 - fbias(f) - m);
  } else {
    mag = normal_value(f, efield, mfield);
  }
  return {false, false, neg, neg ? cpp_rational(-mag) : mag};
}

// The overflow table's float column ("rounded result is out of range", or an infinity into a
// format without infinities).
inline RefResult float_overflow(const Format& f, bool neg, const RoundSpec& spec) {
  const unsigned st = kOverflow | kInexact;
  switch (spec.overflow) {
    case Overflow::Saturate:
    case Overflow::SaturateSymmetric: return {max_code_of(f, neg), st};
    case Overflow::Ieee: {
      bool to_inf = false;
      switch (spec.rounding) {
        case Rounding::NearestEven:
        case Rounding::NearestAway:
        case Rounding::NearestZero:
        case Rounding::NearestUp:
        case Rounding::NearestDown:
        case Rounding::Stochastic: to_inf = true; break;
        case Rounding::TowardZero:
        case Rounding::Odd: to_inf = false; break;
        case Rounding::Up: to_inf = !neg; break;
        case Rounding::Down: to_inf = neg; break;
      }
      if (!to_inf) return {max_code_of(f, neg), st};
      if (has_inf(f)) return {inf_code(f, neg), st};
      if (has_nan(f)) return {nan_code(f), st};
      return {max_code_of(f, neg), st};
    }
    case Overflow::SaturateZero:
    case Overflow::Wrap: break;
  }
  throw std::invalid_argument("saturate-zero and wrap do not apply to floats");
}

// Code of a magnitude that lies on the format's grid and within its range.
inline u128 encode_float(const Format& f, bool neg, const cpp_rational& mag) {
  if (mag == 0) return float_fields(f, neg, 0, 0);
  const int emin = femin(f), m = f.man_bits;
  if (f.has_zero && mag < pow2(emin)) {
    const cpp_rational mf = mag * pow2(m - emin);
    return float_fields(f, neg, 0, numerator(mf));
  }
  const int e = floor_log2(mag);
  const cpp_rational sig = mag * pow2(m - e);  // in [2^m, 2^(m+1))
  return float_fields(f, neg, e + fbias(f), numerator(sig) - pow2i(m));
}

inline RefResult ref_quantize_float(const Format& f, const RefValue& x, const RoundSpec& spec,
                                    std::uint32_t random) {
  if (x.is_nan) return has_nan(f) ? RefResult{nan_code(f), 0} : RefResult{0, kInvalid};
  const bool neg = x.neg;
  // A negative nonzero value (an infinity included) has no code in an unsigned float.
  if (!f.is_signed && neg && (x.is_inf || x.value != 0))
    return {has_nan(f) ? nan_code(f) : u128(0), kInvalid};
  if (x.is_inf) return has_inf(f) ? RefResult{inf_code(f, neg), 0} : float_overflow(f, neg, spec);
  const int emin = femin(f), m = f.man_bits;
  const cpp_rational a = neg ? cpp_rational(-x.value) : x.value;
  if (!f.has_zero && a < pow2(emin)) {
    // nz: everything below the smallest number, zero included, becomes the smallest number.
    return {float_fields(f, neg, 0, 0), kUnderflow | kInexact};
  }
  if (a == 0) return {float_fields(f, neg, 0, 0), 0};

  const int e = floor_log2(a);
  const int q = std::max(e, emin) - m;  // grid exponent the value's binade implies
  const cpp_rational rounded =
      cpp_rational(round_magnitude(a, q, neg, spec.rounding, random, spec.sr_bits, false)) * pow2(q);
  if (rounded > fmax_value(f)) return float_overflow(f, neg, spec);
  const bool inexact = rounded != a;
  // Tininess after rounding: the same rounding onto m+1 significant bits, exponent unbounded.
  const cpp_rational unbounded =
      cpp_rational(round_magnitude(a, e - m, neg, spec.rounding, random, spec.sr_bits, false)) * pow2(e - m);
  const bool tiny = unbounded < pow2(emin);
  if (!f.subnormals && rounded != 0 && rounded < pow2(emin))
    return {float_fields(f, neg, 0, 0), kUnderflow | kInexact};  // ftz flushes a subnormal result
  unsigned st = 0;
  if (inexact) st |= kInexact;
  if (inexact && tiny) st |= kUnderflow;
  return {encode_float(f, neg, rounded), st};
}

// ---- public entry points ------------------------------------------------------------------------

inline RefValue ref_decode(const Format& f, u128 code) {
  return f.kind == FormatKind::Fixed ? ref_decode_fixed(f, code) : ref_decode_float(f, code);
}

inline RefResult ref_quantize(const Format& f, const RefValue& x, const RoundSpec& spec, std::uint32_t random = 0) {
  return f.kind == FormatKind::Fixed ? ref_quantize_fixed(f, x, spec, random) : ref_quantize_float(f, x, spec, random);
}

// nan from an invalid operation: the format's nan (0 where it has none), flag invalid only.
inline RefResult ref_invalid(const Format& out) { return {has_nan(out) ? nan_code(out) : u128(0), kInvalid}; }

// Exact product with IEEE's special cases; `invalid` is set for 0 * inf.
inline RefValue ref_exact_mul(const RefValue& a, const RefValue& b, bool& invalid) {
  invalid = false;
  if (a.is_nan || b.is_nan) return RefValue::nan();
  const bool neg = a.neg != b.neg;
  if ((a.is_inf && b.is_zero()) || (a.is_zero() && b.is_inf)) {
    invalid = true;
    return RefValue::nan();
  }
  if (a.is_inf || b.is_inf) return RefValue::inf(neg);
  const cpp_rational p = a.value * b.value;
  return p == 0 ? RefValue::zero(neg) : RefValue::of(p);
}

// round(x + y) once into `out`, with IEEE 754 6.3's sign of an exact zero sum.
inline RefResult ref_round_sum(const Format& out, const RefValue& x, const RefValue& y, const RoundSpec& spec,
                               std::uint32_t random) {
  if (x.is_nan || y.is_nan) return ref_quantize(out, RefValue::nan(), spec, random);
  if (x.is_inf && y.is_inf && x.neg != y.neg) return ref_invalid(out);
  if (x.is_inf) return ref_quantize(out, x, spec, random);
  if (y.is_inf) return ref_quantize(out, y, spec, random);
  const cpp_rational s = x.value + y.value;
  if (s == 0) {
    // -0 + -0 = -0, +0 + +0 = +0; opposite signs (zeros or x + -x) give +0, -0 when rounding down.
    const bool neg = x.neg == y.neg ? x.neg : spec.rounding == Rounding::Down;
    return ref_quantize(out, RefValue::zero(neg), spec, random);
  }
  return ref_quantize(out, RefValue::of(s), spec, random);
}

inline RefValue ref_negate(RefValue v) {
  if (v.is_nan) return v;
  v.neg = !v.neg;
  v.value = -v.value;
  return v;
}

inline RefResult ref_add(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
                         std::uint32_t random = 0) {
  return ref_round_sum(out, ref_decode(in, a), ref_decode(in, b), spec, random);
}

inline RefResult ref_sub(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
                         std::uint32_t random = 0) {
  return ref_round_sum(out, ref_decode(in, a), ref_negate(ref_decode(in, b)), spec, random);
}

// round(x * y) and round(x * y + z) once into `out`, on decoded operands.
inline RefResult ref_mul_values(const Format& out, const RefValue& x, const RefValue& y, const RoundSpec& spec,
                                std::uint32_t random) {
  bool invalid = false;
  const RefValue p = ref_exact_mul(x, y, invalid);
  if (invalid) return ref_invalid(out);
  return ref_quantize(out, p, spec, random);
}

// fma(0, inf, nan) is reported as invalid here; IEEE 754 7.2 leaves that flag implementation-defined
// when c is a quiet nan, so the tests accept either status for it.
inline RefResult ref_fma_values(const Format& out, const RefValue& x, const RefValue& y, const RefValue& z,
                                const RoundSpec& spec, std::uint32_t random) {
  bool invalid = false;
  const RefValue p = ref_exact_mul(x, y, invalid);
  if (invalid) return ref_invalid(out);
  return ref_round_sum(out, p, z, spec, random);
}

inline RefResult ref_mul(const Format& in, u128 a, u128 b, const Format& out, const RoundSpec& spec,
                         std::uint32_t random = 0) {
  return ref_mul_values(out, ref_decode(in, a), ref_decode(in, b), spec, random);
}

inline RefResult ref_fma(const Format& in, u128 a, u128 b, const Format& c_format, u128 c, const Format& out,
                         const RoundSpec& spec, std::uint32_t random = 0) {
  return ref_fma_values(out, ref_decode(in, a), ref_decode(in, b), ref_decode(c_format, c), spec, random);
}

}  // namespace bitsim::arith::ref
