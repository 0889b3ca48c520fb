// Exact values and the scalar quantizer: any real value (as an exact binary fraction) to a code of
// any Format under any rounding and overflow mode, rounded once. This is the golden model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"

namespace bitsim::arith {

// A real value as (-1)^neg * (sig + s) * 2^exp, where s = 0 when !sticky and 0 < s < 1 otherwise.
// Values built by bitsim are exact (sticky = false) except where an operation would need more than
// 128 significant bits; then sig is normalised (bit 127 set) and sticky records that nonzero bits
// were dropped. 128 bits leave at least two bits below the LSB of every format up to 126 bits of
// precision, which is what correct rounding needs.
struct Exact {
  enum class Class : std::uint8_t { Finite, Inf, NaN };
  Class cls = Class::Finite;
  bool neg = false;
  u128 sig = 0;
  int exp = 0;
  bool sticky = false;

  static Exact nan() { return {Class::NaN, false, 0, 0, false}; }
  static Exact inf(bool neg) { return {Class::Inf, neg, 0, 0, false}; }
  static Exact zero(bool neg = false) { return {Class::Finite, neg, 0, 0, false}; }
  static Exact from_int(i128 v, int exp = 0);
  static Exact from_double(double v);
  static Exact from_float(float v);

  bool is_nan() const { return cls == Class::NaN; }
  bool is_inf() const { return cls == Class::Inf; }
  bool is_zero() const { return cls == Class::Finite && sig == 0 && !sticky; }
  // Nearest fp64 (ties to even, overflow to inf); exact whenever the value fits fp64.
  double to_double() const;
  // Exact decimal expansion when the value fits fp64 exactly it is the shortest string that
  // reads back to the same double; otherwise the full exact expansion. "inf", "-inf", "nan".
  std::string to_decimal() const;
};

// Parse a decimal ("-1.25e-3"), a C99 hex float ("0x1.8p-3"), "inf" or "nan" exactly (to 128
// significant bits plus sticky). Throws FormatError naming the token when malformed.
Exact parse_exact(std::string_view text);

struct Quantized {
  u128 code = 0;        // the low width() bits hold the code; higher bits are zero
  unsigned status = 0;  // Status flags
};

// Round x once into f. `random` holds the k = spec.sr_bits random bits for stochastic rounding.
Quantized quantize(const Format& f, const Exact& x, const RoundSpec& spec, std::uint32_t random = 0);

// The exact value a code denotes (bits above width() are ignored).
Exact decode(const Format& f, u128 code);

// x rounded once to fp32, nearest-even, IEEE overflow: how a value leaves bitsim's exact world into
// a float (exactly x whenever fp32 holds it).
float to_f32(const Exact& x);

// Largest finite value, smallest positive step (fixed: one LSB; float: smallest subnormal or, in
// formats without subnormals, the smallest normal) and most negative finite value, as codes.
u128 max_code(const Format& f);
u128 min_code(const Format& f);  // most negative finite (0 for unsigned formats)
u128 min_positive_code(const Format& f);

}  // namespace bitsim::arith
