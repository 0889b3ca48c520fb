// The scalar quantizer and decoder for fixed-point and floating-point formats.
// Every rounding goes through round_up_magnitude(); overflow handling is in one place per kind.
#include "bitsim/arith/quantize.hpp"

#include <bit>
#include <cstring>

namespace bitsim::arith {
namespace {

int msb(u128 v) {  // index of the highest set bit; v != 0
  const auto hi = std::uint64_t(v >> 64);
  return hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(std::uint64_t(v));
}

u128 low_mask(int bits) { return bits >= 128 ? ~u128(0) : (u128(1) << bits) - 1; }

// sig * 2^-shift split into its integer part and the lost fraction. For shift < 0 the integer part
// is sig << -shift modulo 2^128 and `lost_high` says whether bits were shifted out of the top.
struct Split {
  u128 mag = 0;
  LostBits lost;
  bool lost_high = false;
};

Split split(u128 sig, int shift, bool sticky) {
  Split s;
  if (shift <= 0) {
    const int up = -shift;
    s.mag = up >= 128 ? 0 : sig << up;
    s.lost_high = sig != 0 && (up >= 128 || msb(sig) + up >= 128);
    s.lost.sticky = sticky;
    return s;
  }
  if (shift >= 192) {
    s.lost.sticky = sig != 0 || sticky;
    return s;
  }
  if (shift >= 128) {
    const int down = shift - 64;  // 64..127: frac = sig >> down
    s.lost.frac = std::uint64_t(sig >> down);
    s.lost.sticky = (sig & low_mask(down)) != 0 || sticky;
    return s;
  }
  s.mag = sig >> shift;
  const u128 rem = sig & low_mask(shift);
  if (shift <= 64) {
    s.lost.frac = std::uint64_t(rem << (64 - shift));
    s.lost.sticky = sticky;
  } else {
    s.lost.frac = std::uint64_t(rem >> (shift - 64));
    s.lost.sticky = (rem & low_mask(shift - 64)) != 0 || sticky;
  }
  return s;
}

// ---- fixed point ----

Quantized fixed_out_of_range(const Format& f, bool neg, u128 wrapped, bool wrap_known, Overflow o) {
  const unsigned st = kOverflow | kInexact;
  const u128 mask = f.code_mask();
  switch (o) {
    case Overflow::SaturateZero: return {0, st};
    case Overflow::SaturateSymmetric:
      if (neg) return {f.is_signed ? (u128(0) - f.max_magnitude()) & mask : 0, st};
      return {f.max_magnitude(), st};
    case Overflow::Wrap:
      if (!wrap_known) return {0, st | kInvalid};
      return {wrapped & mask, st};
    case Overflow::Saturate:
    case Overflow::Ieee:
      break;
  }
  return {neg ? u128(f.min_int()) & mask : f.max_magnitude(), st};
}

Quantized quantize_fixed(const Format& f, const Exact& x, const RoundSpec& spec, std::uint32_t random) {
  if (x.is_nan()) return {0, kInvalid};  // IEEE: nan to an integer format is invalid
  if (x.is_inf()) return fixed_out_of_range(f, x.neg, 0, false, spec.overflow);

  Split s = split(x.sig, -f.fl - x.exp, x.sticky);
  const bool inc = round_up_magnitude(spec.rounding, x.neg, s.mag & 1, s.lost, random, spec.sr_bits,
                                      /*twos_complement=*/true);
  if (inc) {
    ++s.mag;
    s.lost_high |= s.mag == 0;
  }
  const unsigned inexact = s.lost.inexact() ? kInexact : 0;
  const u128 wrapped = x.neg ? u128(0) - s.mag : s.mag;  // two's complement modulo 2^128
  // A sticky value whose dropped bits lie above the LSB has unknown low bits: only saturation applies.
  const bool wrap_known = !(x.sticky && -f.fl - x.exp < 0);

  // Range check on the magnitude: signed [-(max+1), max], unsigned [0, max].
  const u128 max_mag = f.max_magnitude();
  bool in_range;
  if (s.lost_high) in_range = false;
  else if (!x.neg || s.mag == 0) in_range = s.mag <= max_mag;
  else in_range = f.is_signed && s.mag <= max_mag + 1;
  if (in_range && x.neg && s.mag == max_mag + 1 && spec.overflow == Overflow::SaturateSymmetric)
    in_range = false;  // SC_SAT_SYM: the most negative code is not part of the range
  // The rounded value is zero only if no magnitude bits remain, in or above the 128-bit window.
  const bool negative = x.neg && (s.mag != 0 || s.lost_high);
  if (!in_range) return fixed_out_of_range(f, negative, wrapped, wrap_known, spec.overflow);
  return {wrapped & f.code_mask(), inexact};
}

// ---- floating point ----

// Significand (with hidden bit) of the largest finite value; it sits in binade emax().
u128 max_significand(const Format& f) {
  const u128 all = (u128(1) << (f.man_bits + 1)) - 1;
  return (f.nonfinite == NonFinite::NanOnly && f.man_bits > 0) ? all - 1 : all;
}

u128 sign_bit(const Format& f, bool neg) {
  return (f.is_signed && neg) ? u128(1) << (f.exp_bits + f.man_bits) : 0;
}

u128 nan_code(const Format& f) {
  const u128 exp_ones = (u128(1) << f.exp_bits) - 1;
  if (f.nonfinite == NonFinite::NanOnly) return (exp_ones << f.man_bits) | low_mask(f.man_bits);
  return (exp_ones << f.man_bits) | (u128(1) << (f.man_bits - 1));  // quiet nan
}

u128 inf_code(const Format& f, bool neg) {
  return sign_bit(f, neg) | (((u128(1) << f.exp_bits) - 1) << f.man_bits);
}

u128 encode_finite(const Format& f, bool neg, int e, u128 sig) {  // sig has the hidden bit
  const int field = e + f.bias();
  return sign_bit(f, neg) | (u128(field) << f.man_bits) | (sig & low_mask(f.man_bits));
}

u128 max_finite_code(const Format& f, bool neg) { return encode_finite(f, neg, f.emax(), max_significand(f)); }

// IEEE 754 7.4: which overflowed results become infinite rather than the largest finite value.
bool overflow_goes_to_infinity(Rounding r, bool neg) {
  switch (r) {
    case Rounding::TowardZero:
    case Rounding::Odd: return false;
    case Rounding::Down: return neg;
    case Rounding::Up: return !neg;
    default: return true;  // nearest modes and stochastic (whose rounded result exceeded max)
  }
}

Quantized float_overflow(const Format& f, bool neg, const RoundSpec& spec) {
  const unsigned st = kOverflow | kInexact;
  if (spec.overflow == Overflow::Ieee && overflow_goes_to_infinity(spec.rounding, neg)) {
    if (f.has_inf()) return {inf_code(f, neg), st};
    if (f.has_nan()) return {nan_code(f), st};  // OCP non-saturating conversion
  }
  return {max_finite_code(f, neg), st};
}

Quantized quantize_float(const Format& f, const Exact& x, const RoundSpec& spec, std::uint32_t random) {
  if (x.is_nan()) return f.has_nan() ? Quantized{nan_code(f), 0} : Quantized{0, kInvalid};  // quiet nan
  if (x.neg && !f.is_signed && !x.is_zero())
    return {f.has_nan() ? nan_code(f) : 0, kInvalid};  // a negative value has no unsigned code
  if (x.is_inf()) {
    if (f.has_inf()) return {inf_code(f, x.neg), 0};
    return float_overflow(f, x.neg, spec);
  }
  const int m = f.man_bits;
  if (x.sig == 0 && !x.sticky) {
    if (f.has_zero) return {sign_bit(f, x.neg), 0};
    return {encode_finite(f, false, f.emin(), u128(1) << m), kUnderflow | kInexact};
  }
  // Value lies in [2^e, 2^(e+1)). With sig == 0 and sticky the value is below 2^exp.
  const int e = x.sig ? msb(x.sig) + x.exp : x.exp - 1;
  const int emin = f.emin();
  // A format without zero has nothing below its smallest number: every smaller value maps there.
  if (!f.has_zero && e < emin) return {encode_finite(f, false, emin, u128(1) << m), kUnderflow | kInexact};
  // Subnormals and flush-to-zero formats round on the subnormal grid (LSB 2^(emin-m)); ftz then
  // flushes a subnormal result. A format without zero has no grid below emin at all.
  const int lsb_exp = (e < emin ? emin : e) - m;
  Split s = split(x.sig, lsb_exp - x.exp, x.sticky);
  bool inc = round_up_magnitude(spec.rounding, x.neg, s.mag & 1, s.lost, random, spec.sr_bits, false);
  u128 mag = s.mag + (inc ? 1 : 0);
  int re = lsb_exp + m;  // binade of a normal result
  if (mag >> (m + 1)) {  // the increment carried into the next binade
    mag >>= 1;
    ++re;
  }
  unsigned st = s.lost.inexact() ? kInexact : 0;

  if (mag >> m) {  // normal result
    if (re > f.emax() || (re == f.emax() && mag > max_significand(f))) return float_overflow(f, x.neg, spec);
    // IEEE tininess after rounding: rounding to m+1 bits with unbounded exponent stays below 2^emin.
    // Only a value in the binade just below 2^emin can round up out of the tiny range.
    if (st && e < emin) {
      bool tiny = true;
      if (e == emin - 1) {
        const Split t = split(x.sig, e - m - x.exp, x.sticky);
        const bool up = round_up_magnitude(spec.rounding, x.neg, t.mag & 1, t.lost, random, spec.sr_bits, false);
        tiny = !((t.mag + (up ? 1 : 0)) >> (m + 1));
      }
      if (tiny) st |= kUnderflow;
    }
    return {encode_finite(f, x.neg, re, mag), st};
  }
  // Subnormal or zero result.
  if (st) st |= kUnderflow;
  if (!f.has_zero) return {encode_finite(f, false, emin, u128(1) << m), kUnderflow | kInexact};
  if (!f.subnormals && mag != 0) return {sign_bit(f, x.neg), kUnderflow | kInexact};
  return {sign_bit(f, x.neg) | mag, st};
}

}  // namespace

Quantized quantize(const Format& f, const Exact& x, const RoundSpec& spec, std::uint32_t random) {
  return f.is_float() ? quantize_float(f, x, spec, random) : quantize_fixed(f, x, spec, random);
}

float to_f32(const Exact& x) {
  static const Format fp32 = Format::fp32();
  const auto bits = std::uint32_t(quantize(fp32, x, {Rounding::NearestEven, Overflow::Ieee}).code);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

Exact decode(const Format& f, u128 code) {
  code &= f.code_mask();
  if (!f.is_float()) {
    const bool neg = f.is_signed && ((code >> (f.wl - 1)) & 1);
    const u128 mag = neg ? (u128(0) - code) & f.code_mask() : code;
    return {Exact::Class::Finite, neg, mag, -f.fl, false};
  }
  const int m = f.man_bits;
  const bool neg = f.is_signed && ((code >> (f.exp_bits + m)) & 1);
  const int field = int((code >> m) & low_mask(f.exp_bits));
  const u128 man = code & low_mask(m);
  const int all_ones = (1 << f.exp_bits) - 1;
  if (f.nonfinite == NonFinite::Ieee && field == all_ones) return man ? Exact::nan() : Exact::inf(neg);
  if (f.nonfinite == NonFinite::NanOnly && field == all_ones && man == low_mask(m)) return Exact::nan();
  if (field == 0 && f.has_zero) {
    if (!f.subnormals) return Exact::zero(neg);  // flush-to-zero formats read subnormal codes as zero
    return {Exact::Class::Finite, neg, man, f.emin() - m, false};
  }
  return {Exact::Class::Finite, neg, man | (u128(1) << m), field - f.bias() - m, false};
}

u128 max_code(const Format& f) {
  if (!f.is_float()) return f.max_magnitude();
  return max_finite_code(f, false);
}

u128 min_code(const Format& f) {
  if (!f.is_float()) return u128(f.min_int()) & f.code_mask();
  return f.is_signed ? max_finite_code(f, true) : (f.has_zero ? 0 : encode_finite(f, false, f.emin(), u128(1) << f.man_bits));
}

u128 min_positive_code(const Format& f) {
  if (!f.is_float() || (f.subnormals && f.has_zero)) return 1;
  return encode_finite(f, false, f.emin(), u128(1) << f.man_bits);
}

// ---- Exact helpers ----

Exact Exact::from_int(i128 v, int exp) {
  const bool neg = v < 0;
  return {Class::Finite, neg, neg ? u128(0) - u128(v) : u128(v), exp, false};
}

Exact Exact::from_double(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  static const Format fp64 = Format::fp64();
  return decode(fp64, bits);
}

Exact Exact::from_float(float v) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  static const Format fp32 = Format::fp32();
  return decode(fp32, bits);
}

double Exact::to_double() const {
  static const Format fp64 = Format::fp64();
  const auto bits = std::uint64_t(quantize(fp64, *this, {Rounding::NearestEven, Overflow::Ieee}).code);
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

}  // namespace bitsim::arith
