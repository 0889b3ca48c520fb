// Accumulator and lazy (Kahan-compensated) update: sequences of once-rounded sums on codes.
#include "bitsim/arith/accumulator.hpp"

#include <bit>
#include <cmath>
#include "bitsim/arith/pow2.hpp"

namespace bitsim::arith {

namespace {

// Float formats the double path decodes and encodes itself.
bool plain_float(const Format& f) {
  return f.is_float() && f.is_signed && f.has_zero && f.subnormals && f.exp_bits <= 10 && f.man_bits <= 52;
}

// The unbiased exponent of a positive normal double: a in [2^e, 2^(e+1)).
int exponent_of(double a) { return int((std::bit_cast<std::uint64_t>(a) >> 52) & 0x7ff) - 1023; }

// The value of a finite code of a plain float format, exactly; false for inf and nan. Normal
// codes map to a normal double bit for bit; subnormals are their integer mantissa times 2^(emin - m).
bool to_double(const Format& f, u128 code, double& out) {
  const int m = f.man_bits, e = f.exp_bits;
  const std::uint64_t all = (std::uint64_t(1) << e) - 1, man_mask = (std::uint64_t(1) << m) - 1;
  const std::uint64_t ef = std::uint64_t(code >> m) & all, mf = std::uint64_t(code) & man_mask;
  const std::uint64_t sign = std::uint64_t((code >> (m + e)) & 1) << 63;
  if (ef == all && (f.nonfinite == NonFinite::Ieee || (f.nonfinite == NonFinite::NanOnly && mf == man_mask))) return false;
  if (ef == 0) {
    out = std::bit_cast<double>(std::bit_cast<std::uint64_t>(double(mf) * pow2(f.emin() - m)) | sign);
    return true;
  }
  const std::uint64_t biased = ef - std::uint64_t(f.bias()) + 1023;
  out = std::bit_cast<double>(sign | (biased << 52) | (mf << (52 - m)));
  return true;
}

// Round-to-nearest-even of q (a non-negative double) to an integer.
double rne_integer(double q) {
  double r = std::floor(q);
  const double d = q - r;  // exact
  if (d > 0.5 || (d == 0.5 && (std::uint64_t(r) & 1))) r += 1;
  return r;
}

// s (exact) rounded to nearest-even into an IEEE plain float format with IEEE overflow, with the
// flags quantize() sets: inexact, overflow (to inf), underflow (tiny after rounding and inexact).
Quantized round_double(const Format& f, double s) {
  const int m = f.man_bits, emin = f.emin(), emax = f.emax(), bias = f.bias();
  const u128 sign = std::signbit(s) ? u128(1) << (f.exp_bits + m) : 0;
  const double a = std::fabs(s);
  if (a == 0) return {sign, 0};
  const int ex = exponent_of(a);  // a is normal: products and sums of the plain formats stay far above 2^-1022
  const int qexp = std::max(ex, emin) - m;
  std::uint64_t sig = std::uint64_t(rne_integer(a * pow2(-qexp)));  // exact scaling
  int e2 = qexp;
  const bool inexact = double(sig) * pow2(e2) != a;
  if (sig == (std::uint64_t(1) << (m + 1))) sig >>= 1, ++e2;  // rounded up into the next binade
  unsigned status = inexact ? kInexact : 0;
  // Tiny after rounding: rounded to m + 1 bits with an unbounded exponent, below 2^emin.
  if (inexact && ex < emin) {
    const double ru = rne_integer(a * pow2(m - ex));
    if (ex + (ru == pow2(m + 1) ? 1 : 0) < emin) status |= kUnderflow;
  }
  if (sig < (std::uint64_t(1) << m)) return {sign | u128(sig), status};  // subnormal (or zero)
  const int biased = e2 + m + bias;
  if (biased > emax + bias) return {sign | (((u128(1) << f.exp_bits) - 1) << m), kOverflow | kInexact};
  return {sign | (u128(biased) << m) | u128(sig - (std::uint64_t(1) << m)), status};
}

}  // namespace

bool MacDatapath::double_step(u128 acc, u128 a, u128 b, Quantized& out) const {
  double x, y, c;
  if (!to_double(fa_, a, x) || !to_double(fb_, b, y) || !to_double(acc_, acc, c)) return false;
  const double p = x * y;  // exact: the product format fits double (checked at construction)
  const double s = c + p;
  // TwoSum: s is the exact sum iff the rounding error is zero.
  const double bb = s - c;
  if ((c - (s - bb)) + (p - bb) != 0) return false;
  out = round_double(acc_, s);
  return true;
}

MacDatapath::MacDatapath(const Format& fa, const Format& fb, const Format& acc, const RoundSpec& spec)
    : fa_(fa), fb_(fb), acc_(acc), product_(arith::product_format(fa, fb)), spec_(spec), mask_(acc.code_mask()) {
  exact_spec_.overflow = default_overflow(product_);  // product_ holds every product: never applies
  int_product_ = !fa.is_float() && !fb.is_float() && fa.wl + fb.wl <= 125;
  product_mask_ = product_.code_mask();
  // The double path: exact products in double (significand and exponent range), an IEEE
  // accumulator rounded to nearest-even with IEEE overflow.
  double_path_ = plain_float(fa) && plain_float(fb) && plain_float(acc) && acc.nonfinite == NonFinite::Ieee &&
                 spec.rounding == Rounding::NearestEven && spec.overflow == Overflow::Ieee &&
                 fa.man_bits + fb.man_bits + 2 <= 53 && product_.exp_bits <= 10;
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

void LazyUpdateFixed::step_nearest(float* __restrict theta, float* __restrict acc, const double* __restrict update, std::size_t n,
                                   std::uint8_t* __restrict taken) const {
  // Every scale is by a power of two and exact: values of formats at most 48 bits wide to their
  // integers and back, the update to accumulator LSBs (checked below 2^52 before use), a remainder
  // below 2^40 to a fraction. Rounding to nearest even as detail::round_integer does it.
  const double to_w = pow2(weight_.fl), to_a = pow2(acc_.fl), from_w = pow2(-weight_.fl), from_a = pow2(-acc_.fl);
  const double to_frac = pow2(-shift_);
  const std::int64_t one = std::int64_t(1) << shift_;
  const double w_lo = double(weight_lo_), w_hi = double(weight_hi_), a_lo = double(acc_lo_), a_hi = double(acc_hi_);
  // Conditions as 0/1 integers combined with &, and selects, not && and branches: every element
  // runs the same instructions (the file is built without trapping math, so both sides of a select
  // may be evaluated).
  using I = std::int64_t;
  for (std::size_t i = 0; i < n; ++i) {
    const double t = double(theta[i]) * to_w, a = double(acc[i]) * to_a, u = update[i] * to_a;
    const I on_grid = I(t == std::trunc(t)) & I(a == std::trunc(a)) & I(t >= w_lo) & I(t <= w_hi) & I(a >= a_lo) & I(a <= a_hi);
    const I small = I(std::abs(u) < 0x1p52);  // 0 for inf and nan
    const double us = small ? u : 0.0;
    const I ti = I(on_grid ? t : 0.0), ai = I(on_grid ? a : 0.0);
    const double ui = std::floor(us), f1 = us - ui;
    const I s1 = ai + I(ui);
    const I acc1 = s1 + ((I(f1 > 0.5) | (I(f1 == 0.5) & s1)) & 1);  // up above a half, or at a half to even
    const I sum = ti * one + acc1;
    const I floor_q = sum >> shift_;
    const double f2 = double(sum - floor_q * one) * to_frac;
    const I th1 = floor_q + ((I(f2 > 0.5) | (I(f2 == 0.5) & floor_q)) & 1);
    const I a2 = acc1 - (th1 - ti) * one;
    const I ok = on_grid & small & I(acc1 >= acc_lo_) & I(acc1 <= acc_hi_) & I(th1 >= weight_lo_) & I(th1 <= weight_hi_) &
                 I(a2 >= acc_lo_) & I(a2 <= acc_hi_);
    taken[i] = std::uint8_t(ok);
    theta[i] = ok ? float(double(th1) * from_w) : theta[i];
    acc[i] = ok ? float(double(a2) * from_a) : acc[i];
  }
}

LazyUpdateResult LazyUpdate::step(u128 theta, u128 acc_code, double update, std::uint32_t r_acc1, std::uint32_t r_theta,
                                  std::uint32_t r_acc2) const {
  const LazyUpdateFixed fixed(*this);
  std::int64_t theta1 = 0, acc2 = 0;
  if (fixed.applies() && fixed.step(fixed_code_value(weight, theta), fixed_code_value(acc, acc_code), update, r_acc1, r_theta,
                                    theta1, acc2))
    return {u128(i128(theta1)) & weight.code_mask(), u128(i128(acc2)) & acc.code_mask(), 0};
  LazyUpdateResult r = step(theta, acc_code, Exact::from_double(update), r_acc1, r_theta, r_acc2);
  r.status = 0;
  return r;
}

}  // namespace bitsim::arith
