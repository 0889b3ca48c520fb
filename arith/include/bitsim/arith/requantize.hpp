// Integer requantization of int32 accumulators as gemmlowp and TFLite's reference kernels do it:
// Q31 multiplier with saturating rounding doubling high multiply, rounding right shift, zero point.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace bitsim::arith {

// gemmlowp::SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with ties toward +inf
// (nearest-up); the one overflowing case, INT32_MIN * INT32_MIN, saturates to INT32_MAX.
constexpr std::int32_t saturating_rounding_doubling_high_mul(std::int32_t a, std::int32_t b) {
  if (a == b && a == std::numeric_limits<std::int32_t>::min()) return std::numeric_limits<std::int32_t>::max();
  const std::int64_t ab = std::int64_t{a} * b;
  // floor((ab + 2^30) / 2^31): exact nearest with ties toward +inf. The arithmetic shift of a
  // negative value is floor division, defined since C++20.
  return std::int32_t((ab + (std::int64_t{1} << 30)) >> 31);
}

// gemmlowp::RoundingDivideByPOT: round(x / 2^exponent), ties away from zero; exponent in 0..31.
constexpr std::int32_t rounding_divide_by_pot(std::int32_t x, int exponent) {
  const std::int32_t mask = std::int32_t((std::int64_t{1} << exponent) - 1);
  const std::int32_t remainder = x & mask;
  const std::int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// An affine quantization real = scale (q - zero_point), q in 0..qmax, for values in [min, max]:
// gemmlowp's ChooseQuantizationParams (doc/quantization_example.cc). The range is widened to hold
// 0, so that 0 is exactly a code; scale = (max - min) / qmax; the zero point is the integer nearest
// to the one the range implies, taken from the end with the smaller rounding error. An empty range
// (min = max = 0) gives scale 1, zero point 0.
struct AffineParams {
  double scale = 1;
  std::int32_t zero_point = 0;
};
inline AffineParams choose_quantization_params(double min, double max, std::int32_t qmax = 255) {
  min = std::min(min, 0.0), max = std::max(max, 0.0);
  AffineParams p;
  if (min == max) return p;
  const double top = double(qmax);
  p.scale = (max - min) / top;
  const double zp_from_min = -min / p.scale, zp_from_max = top - max / p.scale;
  const double error_from_min = std::abs(min / p.scale), error_from_max = top + std::abs(max / p.scale);
  const double zp = error_from_min < error_from_max ? zp_from_min : zp_from_max;
  p.zero_point = std::int32_t(std::clamp(std::round(zp), 0.0, top));
  return p;
}

// TFLite's MultiplyByQuantizedMultiplier + zero point + clamp. shift > 0 multiplies by 2^shift
// before the high multiply (saturating: TFLite leaves that overflow undefined), shift <= 0 divides
// by 2^-shift after it. The real multiplier is multiplier * 2^(shift - 31).
struct Requantizer {
  std::int32_t multiplier = 1 << 30;  // Q31, in [2^30, 2^31) when produced by from_real()
  int shift = 0;                      // -31..30
  std::int32_t zero_point = 0;
  std::int32_t min = std::numeric_limits<std::int32_t>::min();
  std::int32_t max = std::numeric_limits<std::int32_t>::max();

  constexpr std::int32_t operator()(std::int32_t acc) const {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const std::int64_t scaled = std::clamp<std::int64_t>(std::int64_t{acc} * (std::int64_t{1} << left),
                                                         std::numeric_limits<std::int32_t>::min(),
                                                         std::numeric_limits<std::int32_t>::max());
    const std::int32_t v = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(std::int32_t(scaled), multiplier), right);
    const std::int64_t out = std::int64_t{v} + zero_point;
    return std::int32_t(std::clamp<std::int64_t>(out, min, max));
  }

  // TFLite's QuantizeMultiplier: real = multiplier * 2^(shift-31) with multiplier in [2^30, 2^31),
  // rounded to nearest (ties away, std::round); 0 gives multiplier 0.
  static Requantizer from_real(double real, std::int32_t zero_point = 0) {
    Requantizer r;
    r.zero_point = zero_point;
    if (real == 0) {
      r.multiplier = 0;
      r.shift = 0;
      return r;
    }
    int exp = 0;
    const double q = std::frexp(real, &exp);  // real = q * 2^exp, q in [0.5, 1)
    auto m = static_cast<std::int64_t>(std::round(q * double(std::int64_t{1} << 31)));
    if (m == (std::int64_t{1} << 31)) {
      m /= 2;
      ++exp;
    }
    r.multiplier = std::int32_t(m);
    r.shift = exp;
    return r;
  }
};

}  // namespace bitsim::arith
