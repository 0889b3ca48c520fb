// Accumulators as hardware has them (format, overflow, rounding per add, summation order) and
// the Kahan-compensated "lazy update" of Park et al. 2018 (Algorithm 1), both on codes.
#pragma once

#include <cmath>
#include <cstdint>

#include "bitsim/arith/ops.hpp"
#include "bitsim/arith/pow2.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

// acc <- round(acc + x) on every add: one rounding per add into the accumulator's format, with its
// overflow mode (a fixed-point accumulator that saturates stays saturated only as long as the
// following addends keep it there, exactly like a saturating adder). Adding products in sequence
// reproduces a MAC unit that accumulates over K one product per cycle.
// Stochastic rounding draws add number i's random bits from `sr` at index i.
class Accumulator {
 public:
  Accumulator(const Format& format, const RoundSpec& spec, SrStream sr = {})
      : format_(format), spec_(spec), sr_(sr) {}

  void reset(u128 code = 0) {
    code_ = code;
    status_ = 0;
    adds_ = 0;
  }
  // acc <- round(acc + x); returns this add's status.
  unsigned add(const Exact& x);
  // acc <- round(acc + a * b), the exact product of two codes rounded once with the sum.
  unsigned mac(const Format& fa, u128 a, const Format& fb, u128 b) {
    return add(exact_mul(decode(fa, a), decode(fb, b)));
  }

  const Format& format() const { return format_; }
  u128 code() const { return code_; }
  Exact value() const { return decode(format_, code_); }
  unsigned status() const { return status_; }  // OR of every add's status since reset
  std::uint64_t adds() const { return adds_; }

 private:
  Format format_;
  RoundSpec spec_;
  SrStream sr_;
  u128 code_ = 0;
  unsigned status_ = 0;
  std::uint64_t adds_ = 0;
};

// One MAC step as a pure function of codes: round(acc + a * b) into the accumulator format with
// one rounding, exactly what Accumulator::mac does to its register (random bits for stochastic
// rounding are the caller's: Accumulator draws add number i at index i of its stream).
//
// Hardware models call this once per PE and cycle, so it has an exact integer path: when a, b and
// acc are fixed point, acc keeps every fraction bit of the product (acc.fl >= a.fl + b.fl) and
// everything fits 125 bits, acc + a * b is an integer on acc's grid. While that sum lies in acc's
// range it *is* the result, with no rounding and no flag, so decode / quantize are skipped; a sum
// out of range (the overflow mode decides) and every other format pair take round_sum.
//
// Float formats have a double path: for IEEE-style formats (signed, zero, subnormals, at most 10
// exponent and 52 mantissa bits), nearest-even rounding and IEEE overflow, finite operands give an
// exact product in double; when acc + a * b is exact in double too (checked with TwoSum), that sum
// is rounded once onto the accumulator's grid with the flags quantize() would set. Anything else
// (inf, nan, a sum double cannot hold exactly) takes round_sum. The double path assumes the
// default floating-point environment (round to nearest). float_mac.hpp has this step for float
// accumulators vectorised across outputs.
class MacDatapath {
 public:
  MacDatapath(const Format& fa, const Format& fb, const Format& acc, const RoundSpec& spec);

  Quantized operator()(u128 acc, u128 a, u128 b, std::uint32_t random = 0) const {
    if (shift_ >= 0) {
      const i128 sum = int_value(acc, acc_.wl, acc_.is_signed) +
                       (int_value(a, fa_.wl, fa_.is_signed) * int_value(b, fb_.wl, fb_.is_signed)) * scale_;
      if (sum >= lo_ && sum <= hi_) return {u128(sum) & mask_, 0};
    } else if (double_path_) {
      Quantized q;
      if (double_step(acc, a, b, q)) return q;
    }
    return round_sum(acc_, decode(acc_, acc), exact_mul(decode(fa_, a), decode(fb_, b)), spec_, random);
  }

  // The exact product a * b as a code of product_format(a, b): what the multiplier hands the adder.
  u128 product(u128 a, u128 b) const {
    if (int_product_)
      return u128(int_value(a, fa_.wl, fa_.is_signed) * int_value(b, fb_.wl, fb_.is_signed)) & product_mask_;
    return quantize(product_, exact_mul(decode(fa_, a), decode(fb_, b)), exact_spec_).code;
  }

  const Format& acc_format() const { return acc_; }
  const Format& product_format() const { return product_; }
  const RoundSpec& spec() const { return spec_; }
  bool stochastic() const { return spec_.rounding == Rounding::Stochastic; }
  // Whether the exact integer path is in use (for tests and benchmarks).
  bool integer_path() const { return shift_ >= 0; }
  bool double_path() const { return double_path_; }

 private:
  static i128 int_value(u128 code, int wl, bool is_signed) {
    if (!is_signed) return i128(code);
    const int up = 128 - wl;
    return i128(code << up) >> up;  // sign-extend the low wl bits
  }

  // The double path of operator(): false when it does not apply to these codes.
  bool double_step(u128 acc, u128 a, u128 b, Quantized& out) const;

  Format fa_, fb_, acc_, product_;
  RoundSpec spec_, exact_spec_;
  bool double_path_ = false;
  bool int_product_ = false;  // fixed operands: the product code is the integer product's low bits
  u128 product_mask_ = 0;
  int shift_ = -1;  // acc.fl - (a.fl + b.fl) on the integer path, else -1
  i128 scale_ = 1;  // 2^shift_
  i128 lo_ = 0, hi_ = 0;
  u128 mask_ = 0;
};

// Lazy update (SGD with Kahan summation), Park et al. 2018, Algorithm 1, on codes:
//   acc   <- round_acc(acc + u)            u = -lr * grad, the update
//   theta' = round_w(theta + acc)
//   acc   <- round_acc(acc - (theta' - theta))   the part of acc that theta could not absorb
//   theta <- theta'
// (The paper prints the residual step as "acc + (theta' - theta)"; its text, "subtracting the
// updated portion", and Kahan summation both call for the subtraction used here.)
struct LazyUpdateResult {
  u128 theta = 0;
  u128 acc = 0;
  unsigned status = 0;
};
struct LazyUpdate {
  Format weight;
  RoundSpec weight_spec;
  Format acc;
  RoundSpec acc_spec;

  // r_acc1, r_theta, r_acc2: random bits for the three roundings when they are stochastic.
  LazyUpdateResult step(u128 theta, u128 acc, const Exact& update, std::uint32_t r_acc1 = 0,
                        std::uint32_t r_theta = 0, std::uint32_t r_acc2 = 0) const;
  // step() with a double update, on an integer path when both formats are fixed point with the
  // accumulator at least as fine as the weights (the case of Park et al.) and nothing overflows:
  // the same codes as step(theta, acc, Exact::from_double(update), ...); the status is not
  // computed (0). Everything else goes through step().
  LazyUpdateResult step(u128 theta, u128 acc, double update, std::uint32_t r_acc1 = 0, std::uint32_t r_theta = 0,
                        std::uint32_t r_acc2 = 0) const;
};

namespace detail {

// round(i + frac) to an integer as quantize() rounds a fixed-point value: sign and magnitude, the
// decision by round_up_magnitude (two's complement stochastic rounding). frac in [0, 1), exact.
inline std::int64_t round_integer(std::int64_t i, double frac, const RoundSpec& spec, std::uint32_t random) {
  // Nearest-even rounds i + frac to the nearest integer, ties to even, whatever the sign: decided
  // on frac itself (exact), without a branch on the data.
  if (spec.rounding == Rounding::NearestEven) return i + std::int64_t(frac > 0.5 || (frac == 0.5 && (i & 1)));
  if (frac == 0) return i;
  const double scaled = scale_pow2(frac, 64);  // exact: a power-of-two scale
  const auto frac64 = std::uint64_t(scaled);   // < 2^64
  const bool sticky = double(frac64) != scaled;
  bool neg;
  std::int64_t mag;
  LostBits lost;
  if (i >= 0) {
    neg = false, mag = i, lost = {frac64, sticky};
  } else {  // i + frac in (i, i + 1) is negative: magnitude (-i - 1) + (1 - frac)
    neg = true, mag = -i - 1, lost = {std::uint64_t(0) - frac64 - (sticky ? 1 : 0), sticky};
  }
  if (round_up_magnitude(spec.rounding, neg, mag & 1, lost, random, spec.sr_bits, true)) ++mag;
  return neg ? -mag : mag;
}

}  // namespace detail

// The value of a fixed-point code of at most 64 bits: the low wl bits, sign-extended when signed.
inline std::int64_t fixed_code_value(const Format& f, u128 code) {
  const int up = 128 - f.wl;
  return f.is_signed ? std::int64_t(i128(code << up) >> up) : std::int64_t(code);
}

// The integer path of LazyUpdate::step(double), its formats' ranges worked out once: what an
// optimizer runs for every weight of a tensor. It applies when both formats are fixed point with
// the accumulator at least as fine as the weights and both at most 48 bits wide (the case of Park
// et al.); step() is then exact on 64-bit integers, and returns false for an element that leaves
// the path (an update too large or not finite, a result out of range), which
// LazyUpdate::step(double) then takes through step(Exact).
class LazyUpdateFixed {
 public:
  explicit LazyUpdateFixed(const LazyUpdate& u)
      : weight_(u.weight), acc_(u.acc), weight_spec_(u.weight_spec), acc_spec_(u.acc_spec), shift_(u.acc.fl - u.weight.fl),
        // theta 2^shift (a weight in accumulator LSBs) plus an accumulator must fit int64.
        applies_(!u.weight.is_float() && !u.acc.is_float() && shift_ >= 0 && shift_ <= 40 && u.weight.wl <= 48 &&
                 u.acc.wl <= 48 && u.weight.wl + shift_ <= 61) {
    if (!applies_) return;
    range(weight_, weight_spec_.overflow, weight_lo_, weight_hi_);
    range(acc_, acc_spec_.overflow, acc_lo_, acc_hi_);
    nearest_ = weight_spec_.rounding == Rounding::NearestEven && acc_spec_.rounding == Rounding::NearestEven &&
               std::abs(weight_.fl) <= 900 && std::abs(acc_.fl) <= 900;
  }
  bool applies() const { return applies_; }
  // Whether step_nearest() applies: applies(), both roundings nearest-even.
  bool nearest() const { return nearest_; }

  // step() on n elements at once, for nearest(): theta[i] and acc[i] are the weight and the
  // accumulator as values of their formats, update[i] the update. Where step() takes element i
  // with its values on their grids and in range, theta[i] and acc[i] become the values of its
  // results and taken[i] = 1; elsewhere they are left as they are and taken[i] = 0. One loop
  // without branches on the data, so that it vectorises; the same values as step() element by
  // element.
  void step_nearest(float* theta, float* acc, const double* update, std::size_t n, std::uint8_t* taken) const;

  // theta and acc: the values of the weight's and the accumulator's codes (fixed_code_value).
  // theta1 and acc2: the values of step()'s codes.
  bool step(std::int64_t theta, std::int64_t acc, double update, std::uint32_t r_acc1, std::uint32_t r_theta,
            std::int64_t& theta1, std::int64_t& acc2) const {
    if (!applies_ || !std::isfinite(update)) return false;
    const double u = scale_pow2(update, acc_.fl);  // the update in accumulator LSBs, exact
    if (!(std::abs(u) < 0x1p52)) return false;
    const double ui = std::floor(u);
    // acc1 = round(acc + update)
    const std::int64_t acc1 = detail::round_integer(acc + std::int64_t(ui), u - ui, acc_spec_, r_acc1);
    if (acc1 < acc_lo_ || acc1 > acc_hi_) return false;
    // theta1 = round(theta + acc1) on the weight grid: the sum is exact in accumulator LSBs.
    const std::int64_t one = std::int64_t(1) << shift_;
    const std::int64_t sum = theta * one + acc1;
    const std::int64_t floor_q = sum >> shift_;  // arithmetic shift: floor
    const double frac = scale_pow2(double(sum - floor_q * one), -shift_);
    const std::int64_t th1 = detail::round_integer(floor_q, frac, weight_spec_, r_theta);
    // acc2 = acc1 - (theta1 - theta): exact, so only its range matters.
    const std::int64_t a2 = acc1 - (th1 - theta) * one;
    if (th1 < weight_lo_ || th1 > weight_hi_ || a2 < acc_lo_ || a2 > acc_hi_) return false;
    theta1 = th1, acc2 = a2;
    return true;
  }

 private:
  static void range(const Format& f, Overflow o, std::int64_t& lo, std::int64_t& hi) {
    hi = std::int64_t(f.max_magnitude());
    lo = !f.is_signed ? 0 : o == Overflow::SaturateSymmetric ? -hi : std::int64_t(f.min_int());
  }
  Format weight_, acc_;
  RoundSpec weight_spec_, acc_spec_;
  int shift_;
  bool applies_, nearest_ = false;
  std::int64_t weight_lo_ = 0, weight_hi_ = 0, acc_lo_ = 0, acc_hi_ = 0;
};

}  // namespace bitsim::arith
