// Number-format descriptors: runtime values parsed from short spec strings.
// A format says which real numbers a code denotes; the operations live in quantize.hpp and ops.hpp.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bitsim::arith {

// GCC/Clang 128-bit integers: codes and accumulators up to 128 bits without a bignum.
__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

// Raised for a malformed spec string or an unsupported combination; the message names the token.
struct FormatError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A piece of user input as an error message quotes it: in single quotes, control and non-ASCII
// bytes escaped (\n, \x1b), and cut to its first `max_chars` characters with the length said, so a
// 10 MB token or a terminal escape sequence never reaches the terminal whole.
std::string quoted(std::string_view text, std::size_t max_chars = 40);

enum class FormatKind : std::uint8_t {
  Fixed,  // two's complement (or unsigned) integer code scaled by 2^-frac_bits
  Float,  // sign, biased exponent, mantissa with an implicit leading one
};

// How a float format spends its all-ones exponent field (LLVM APFloat's fltNonfiniteBehavior).
enum class NonFinite : std::uint8_t {
  Ieee,     // all-ones exponent: mantissa 0 is +-inf, anything else is nan
  NanOnly,  // no infinities; only exponent and mantissa all ones is nan (OCP FP8 E4M3, "fn")
  None,     // every code is a finite number (OCP FP6/FP4, "fin")
};

struct Format {
  FormatKind kind = FormatKind::Fixed;
  bool is_signed = true;

  // Fixed: word length (1..128) and fraction bits (any integer; may be negative or exceed wl).
  int wl = 8;
  int fl = 0;

  // Float: exponent and mantissa field widths (bias 2^(e-1)-1), subnormal support and non-finite
  // behaviour.
  int exp_bits = 0;
  int man_bits = 0;
  bool subnormals = true;
  bool has_zero = true;  // false: exponent field 0 encodes a normal binade (OCP E8M0)
  NonFinite nonfinite = NonFinite::Ieee;

  // Parses e.g. "fixed<8,4>", "ufixed<16,-2>", "int<8>", "float<5,10>", "float<4,3,fn>", "fp16".
  static Format parse(std::string_view spec);
  static Format fixed(int wl, int fl, bool is_signed = true);
  static Format floating(int exp_bits, int man_bits, NonFinite nf = NonFinite::Ieee,
                         bool subnormals = true, bool is_signed = true, bool has_zero = true);

  // The IEEE formats by name, for code (users name them in spec strings).
  static Format fp64() { return floating(11, 52); }
  static Format fp32() { return floating(8, 23); }
  static Format fp16() { return floating(5, 10); }
  static Format bf16() { return floating(8, 7); }

  // Canonical spec string; Format::parse(f.spec()) == f.
  std::string spec() const;
  // Total bits of a code.
  int width() const { return kind == FormatKind::Fixed ? wl : int(is_signed) + exp_bits + man_bits; }
  bool is_float() const { return kind == FormatKind::Float; }
  u128 code_mask() const { return width() >= 128 ? ~u128(0) : (u128(1) << width()) - 1; }

  // Float helpers (unbiased exponents of the first normal binade and of the largest binade).
  int bias() const { return (1 << (exp_bits - 1)) - 1; }
  int emin() const { return has_zero ? 1 - bias() : -bias(); }
  int emax() const;
  bool has_inf() const { return kind == FormatKind::Float && nonfinite == NonFinite::Ieee; }
  bool has_nan() const { return kind == FormatKind::Float && nonfinite != NonFinite::None; }

  // Fixed helpers: the most negative code as a signed integer (0 when unsigned) and the largest
  // code's magnitude (2^(wl-1) - 1 signed, 2^wl - 1 unsigned; fits u128 for every wl <= 128).
  i128 min_int() const {
    if (!is_signed) return 0;
    return i128(u128(0) - (u128(1) << (wl - 1)));  // modular conversion, defined since C++20
  }
  u128 max_magnitude() const {
    if (is_signed) return (u128(1) << (wl - 1)) - 1;
    return wl >= 128 ? ~u128(0) : (u128(1) << wl) - 1;
  }

  bool operator==(const Format&) const = default;
};

}  // namespace bitsim::arith
