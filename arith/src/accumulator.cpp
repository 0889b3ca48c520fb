// Accumulator and lazy (Kahan-compensated) update: sequences of once-rounded sums on codes.
#include "bitsim/arith/accumulator.hpp"

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

}  // namespace bitsim::arith
