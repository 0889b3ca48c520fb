// Accumulator and lazy (Kahan-compensated) update: sequences of once-rounded sums on codes.
#include "bitsim/arith/accumulator.hpp"

namespace bitsim::arith {
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
