// Accumulators as hardware has them (format, overflow, rounding per add, summation order) and
// the Kahan-compensated "lazy update" of Park et al. 2018 (Algorithm 1), both on codes.
#pragma once

#include <cstdint>

#include "bitsim/arith/ops.hpp"
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

}  // namespace bitsim::arith
