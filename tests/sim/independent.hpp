// References for the arithmetic of the SystemC units that share no code with arith: exact integers,
// SystemC's sc_fix/sc_ufix, the CPU's IEEE arithmetic and the Boost-rational model of reference.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include <systemc>
#ifndef SC_INCLUDE_FX
#error "independent.hpp needs SystemC's fixed-point types: define SC_INCLUDE_FX for the target"
#endif

#include "tests/arith/reference.hpp"

namespace bitsim::sim::test::indep {

using arith::Format;
using arith::i128;
using arith::Overflow;
using arith::Rounding;
using arith::u128;
namespace ref = arith::ref;

struct Result {
  u128 code = 0;
  unsigned status = 0;
};

inline Result from_ref(const ref::RefResult& r) { return {r.code, r.status}; }

// Two's complement value of a fixed-point code.
inline i128 fixed_int(const Format& f, u128 code) {
  code &= f.code_mask();
  if (f.is_signed && f.wl < 128 && ((code >> (f.wl - 1)) & 1)) return i128(code) - (i128(1) << f.wl);
  return i128(code);
}

// A decoded value as a double; every value the tests decode has at most 53 significant bits and a
// power-of-two denominator, so the conversion is exact (checked, not assumed).
inline double to_double(const ref::RefValue& v) {
  if (v.is_nan) return std::numeric_limits<double>::quiet_NaN();
  if (v.is_inf) return v.neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (v.value == 0) return v.neg ? -0.0 : 0.0;
  ref::cpp_int n = numerator(v.value);
  const ref::cpp_int d = denominator(v.value);
  int e = int(msb(d));  // v = n 2^-e once n loses its trailing zeros (d = 1 for integers)
  if (d != ref::pow2i(e)) throw std::logic_error("to_double: not a dyadic rational");
  const int tz = int(lsb(abs(n)));
  n >>= tz;
  e -= tz;
  if (msb(abs(n)) >= 53) throw std::logic_error("to_double: more than 53 significant bits");
  return std::ldexp(static_cast<double>(static_cast<std::int64_t>(n)), -e);
}

inline sc_dt::sc_q_mode sc_quantization(Rounding r) {
  switch (r) {
    case Rounding::NearestEven: return sc_dt::SC_RND_CONV;
    case Rounding::NearestAway: return sc_dt::SC_RND_INF;
    case Rounding::NearestUp: return sc_dt::SC_RND;
    case Rounding::NearestZero: return sc_dt::SC_RND_ZERO;
    case Rounding::NearestDown: return sc_dt::SC_RND_MIN_INF;
    case Rounding::Down: return sc_dt::SC_TRN;
    case Rounding::TowardZero: return sc_dt::SC_TRN_ZERO;
    default: throw std::invalid_argument("no SystemC quantization mode for this rounding");
  }
}

inline sc_dt::sc_o_mode sc_overflow(Overflow o) {
  switch (o) {
    case Overflow::Saturate: return sc_dt::SC_SAT;
    case Overflow::SaturateZero: return sc_dt::SC_SAT_ZERO;
    case Overflow::SaturateSymmetric: return sc_dt::SC_SAT_SYM;
    case Overflow::Wrap: return sc_dt::SC_WRAP;
    default: throw std::invalid_argument("no SystemC overflow mode for ieee");
  }
}

// The code and flags an sc_fxnum holds after an assignment: bitsim's inexact goes with either of
// SystemC's flags, its overflow with SystemC's overflow flag.
inline Result sc_result(sc_dt::sc_fxnum& n, int wl) {
  Result res;
  for (int lo = 0; lo < wl; lo += 64) {
    const int hi = std::min(wl, lo + 64) - 1;
    res.code |= u128(n.range(hi, lo).to_uint64()) << lo;
  }
  if (n.overflow_flag()) res.status |= arith::kOverflow | arith::kInexact;
  if (n.quantization_flag()) res.status |= arith::kInexact;
  return res;
}

// A value assigned to an sc_fix/sc_ufix of format f: SystemC quantizes, then applies overflow.
inline Result sc_fixed_assign(const Format& f, Rounding r, Overflow o, double exact_value) {
  const sc_dt::sc_fxtype_params p(f.wl, f.wl - f.fl, sc_quantization(r), sc_overflow(o), 0);
  if (f.is_signed) {
    sc_dt::sc_fix v(p);
    v = exact_value;
    return sc_result(v, f.wl);
  }
  sc_dt::sc_ufix v(p);
  v = exact_value;
  return sc_result(v, f.wl);
}

// The exact double of v * 2^-fl; refuses values a double cannot hold exactly.
inline double exact_double(i128 v, int fl) {
  const i128 mag = v < 0 ? -v : v;
  if (mag >= (i128(1) << 53)) throw std::logic_error("exact_double: more than 53 bits");
  return std::ldexp(double(std::int64_t(v)), -fl);
}

// docs/arith.md, "Stochastic rounding", fixed point: with x = v 2^-fv and the result's LSB 2^-fl,
// take the top k bits of x's two's complement fraction below that LSB (t = floor(x 2^(fl+k))), add
// r, and keep what carries into the LSB: n = floor((t + r) / 2^k). Then the overflow table.
inline Result round_fixed_stochastic(i128 v, int fv, const Format& out, Overflow o, int k, std::uint32_t r) {
  const int up = out.fl + k - fv;
  const i128 t = up >= 0 ? v * (i128(1) << up) : v >> -up;  // >> on a signed value is floor (C++20)
  const i128 n = (t + i128(r)) >> k;
  const int back = fv - out.fl;  // n 2^-fl against v 2^-fv
  const bool exact = back >= 0 ? n * (i128(1) << back) == v : n == v * (i128(1) << -back);
  const i128 hi = out.is_signed ? (i128(1) << (out.wl - 1)) - 1 : (i128(1) << out.wl) - 1;
  i128 lo = out.is_signed ? -(i128(1) << (out.wl - 1)) : 0;
  if (o == Overflow::SaturateSymmetric && out.is_signed) lo = -hi;
  const u128 mask = out.wl >= 128 ? ~u128(0) : (u128(1) << out.wl) - 1;
  if (n >= lo && n <= hi) return {u128(n) & mask, exact ? 0u : unsigned(arith::kInexact)};
  const unsigned st = arith::kOverflow | arith::kInexact;
  switch (o) {
    case Overflow::Saturate: return {u128(n > hi ? hi : lo) & mask, st};
    case Overflow::SaturateSymmetric: return {u128(n > hi ? hi : lo) & mask, st};
    case Overflow::SaturateZero: return {0, st};
    case Overflow::Wrap: return {u128(n) & mask, st};
    default: throw std::invalid_argument("ieee overflow does not apply to fixed point");
  }
}

}  // namespace bitsim::sim::test::indep
