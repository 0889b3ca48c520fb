// Accumulator and lazy (Kahan-compensated) update: sequences of once-rounded sums on codes.
#include "bitsim/arith/accumulator.hpp"

#include <cmath>

namespace bitsim::arith {

MacDatapath::MacDatapath(const Format& fa, const Format& fb, const Format& acc, const RoundSpec& spec)
    : fa_(fa), fb_(fb), acc_(acc), product_(arith::product_format(fa, fb)), spec_(spec), mask_(acc.code_mask()) {
  exact_spec_.overflow = default_overflow(product_);  // product_ holds every product: never applies
  int_product_ = !fa.is_float() && !fb.is_float() && fa.wl + fb.wl <= 125;
  product_mask_ = product_.code_mask();
  const bool all_fixed = !fa.is_float() && !fb.is_float() && !acc.is_float();
  if (!all_fixed) return;
  const int shift = acc.fl - (fa.fl + fb.fl);
  // |a * b| < 2^(wa + wb) and |acc| < 2^wl: with both below 2^125 the i128 sum cannot overflow.
  if (shift < 0 || fa.wl + fb.wl + shift > 125 || acc.wl > 125) return;
  shift_ = shift;
  scale_ = i128(1) << shift;
  hi_ = i128(acc.max_magnitude());
  // saturate-symmetric: the most negative code is out of range even when exact.
  lo_ = acc.is_signed && spec.overflow == Overflow::SaturateSymmetric ? -hi_ : acc.min_int();
}

unsigned Accumulator::add(const Exact& x) {
  const std::uint32_t r = spec_.rounding == Rounding::Stochastic ? sr_.bits(adds_, spec_.sr_bits) : 0;
  const Quantized q = round_sum(format_, decode(format_, code_), x, spec_, r);
  code_ = q.code;
  status_ |= q.status;
  ++adds_;
  return q.status;
}

LazyUpdateResult LazyUpdate::step(u128 theta, u128 acc_code, const Exact& update, std::uint32_t r_acc1,
                                  std::uint32_t r_theta, std::uint32_t r_acc2) const {
  LazyUpdateResult out;
  const Exact th = decode(weight, theta);
  const Quantized a1 = round_sum(acc, decode(acc, acc_code), update, acc_spec, r_acc1);
  const Quantized t1 = round_sum(weight, th, decode(acc, a1.code), weight_spec, r_theta);
  const Exact absorbed = exact_add(decode(weight, t1.code), negate(th));  // exact: both on grids
  const Quantized a2 = round_sum(acc, decode(acc, a1.code), negate(absorbed), acc_spec, r_acc2);
  out.theta = t1.code;
  out.acc = a2.code;
  out.status = a1.status | t1.status | a2.status;
  return out;
}

namespace {

std::int64_t signed_value(u128 code, const Format& f) {
  const int up = 128 - f.wl;
  return f.is_signed ? std::int64_t(i128(code << up) >> up) : std::int64_t(code);
}

bool in_range(std::int64_t v, const Format& f, Overflow o) {
  const std::int64_t hi = std::int64_t(f.max_magnitude());
  const std::int64_t lo = !f.is_signed ? 0 : o == Overflow::SaturateSymmetric ? -hi : std::int64_t(f.min_int());
  return v >= lo && v <= hi;
}

// round(i + frac) to an integer as quantize() rounds a fixed-point value: sign and magnitude, the
// decision by round_up_magnitude (two's complement stochastic rounding). frac in [0, 1), exact.
std::int64_t round_sum(std::int64_t i, double frac, const RoundSpec& spec, std::uint32_t random) {
  if (frac == 0) return i;
  const double scaled = std::ldexp(frac, 64);  // exact: a power-of-two scale
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

}  // namespace

LazyUpdateResult LazyUpdate::step(u128 theta, u128 acc_code, double update, std::uint32_t r_acc1, std::uint32_t r_theta,
                                  std::uint32_t r_acc2) const {
  const Format& w = weight;
  const Format& a = acc;
  const int shift = a.fl - w.fl;
  const bool integer_path = !w.is_float() && !a.is_float() && shift >= 0 && shift <= 40 && w.wl <= 48 && a.wl <= 48 &&
                            std::isfinite(update);
  if (integer_path) {
    const double u = std::ldexp(update, a.fl);  // the update in accumulator LSBs, exact
    if (std::abs(u) < 0x1p52) {
      const double ui = std::floor(u);
      // acc1 = round(acc + update)
      const std::int64_t acc1 = round_sum(signed_value(acc_code, a) + std::int64_t(ui), u - ui, acc_spec, r_acc1);
      if (in_range(acc1, a, acc_spec.overflow)) {
        // theta1 = round(theta + acc1) on the weight grid: the sum is exact in accumulator LSBs.
        const std::int64_t th = signed_value(theta, w);
        const std::int64_t sum = th * (std::int64_t(1) << shift) + acc1;
        const std::int64_t floor_q = sum >> shift;  // arithmetic shift: floor
        const double frac = std::ldexp(double(sum - floor_q * (std::int64_t(1) << shift)), -shift);
        const std::int64_t th1 = round_sum(floor_q, frac, weight_spec, r_theta);
        // acc2 = acc1 - (theta1 - theta): exact, so only its range matters.
        const std::int64_t acc2 = acc1 - (th1 - th) * (std::int64_t(1) << shift);
        if (in_range(th1, w, weight_spec.overflow) && in_range(acc2, a, acc_spec.overflow))
          return {u128(i128(th1)) & w.code_mask(), u128(i128(acc2)) & a.code_mask(), 0};
      }
    }
  }
  LazyUpdateResult r = step(theta, acc_code, Exact::from_double(update), r_acc1, r_theta, r_acc2);
  r.status = 0;
  return r;
}

}  // namespace bitsim::arith
