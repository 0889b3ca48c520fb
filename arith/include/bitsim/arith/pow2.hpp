// Scaling by powers of two without libm: x * 2^n by one multiply whenever the result is a normal
// double (then it is exact, so equal to std::ldexp), std::ldexp otherwise. Codes of fixed-point
// formats are scaled this way in every element-wise loop, where ldexp's call was a sixth of the
// 8-bit training step.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace bitsim::arith {

// 2^n for n in [-1022, 1023] (a normal double, built from its exponent field).
constexpr double pow2(int n) { return std::bit_cast<double>(std::uint64_t(1023 + n) << 52); }

// std::ldexp(x, n), bit for bit: a normal result of x * 2^n is exact, so the multiply gives it;
// zeros keep their sign; subnormal, infinite and NaN results go through std::ldexp.
inline double scale_pow2(double x, int n) {
  if (n >= -1022 && n <= 1023) {
    const double r = x * pow2(n);
    if (std::abs(r) >= 0x1p-1022 && std::abs(r) <= 0x1.fffffffffffffp1023) return r;
    if (x == 0) return r;
  }
  return std::ldexp(x, n);
}

}  // namespace bitsim::arith
