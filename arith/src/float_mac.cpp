// FloatMac: which accumulators the vector kernels take, their loop invariants, packing of op(B),
// and the scalar step (MacDatapath's general path) for the lanes they hand back.
#include "bitsim/arith/float_mac.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bitsim/arith/ops.hpp"
#include "float_mac_simd.hpp"

namespace bitsim::arith {

namespace float_mac {

double scalar_step(const Plan& p, double acc, double x, double y, std::uint32_t random) {
  const Quantized q = round_sum(*p.format, Exact::from_double(acc), exact_mul(Exact::from_double(x), Exact::from_double(y)),
                                *p.spec, random);
  return decode(*p.format, q.code).to_double();  // exact: every value of a supported format is a double
}

}  // namespace float_mac

namespace {

float_mac::Plan make_plan(const Format& f, const RoundSpec& spec) {
  float_mac::Plan p;
  p.format = &f;
  p.spec = &spec;
  p.stochastic = spec.rounding == Rounding::Stochastic;
  p.m = f.man_bits;
  p.e_lo = f.emin();
  p.e_hi = f.emax() + 1;
  p.max_value = decode(f, max_code(f)).to_double();
  // quantize_float's float_overflow: nearest-even and stochastic results above the range go to
  // inf (nan in a format without inf) under IEEE overflow, else to the largest finite value.
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  p.overflow_value = spec.overflow == Overflow::Ieee ? (f.has_inf() ? inf : nan) : p.max_value;
  p.inf_value = f.has_inf() ? inf : p.overflow_value;  // an infinite exact sum is an overflow there
  p.sr_bits = spec.sr_bits;
  p.k = spec.sr_bits;
  p.two_k = std::ldexp(1.0, spec.sr_bits);
  return p;
}

}  // namespace

bool FloatMac::supports(const Format& acc, const RoundSpec& spec) {
  // The grid's midpoints and the constant 1.5 * 2^(52 + e - m) need m <= 50; 10 exponent bits keep
  // every value, LSB and half LSB a normal double.
  return acc.is_float() && acc.is_signed && acc.has_zero && acc.subnormals && acc.nonfinite != NonFinite::None &&
         acc.exp_bits <= 10 && acc.man_bits <= 50 &&
         (spec.rounding == Rounding::NearestEven || spec.rounding == Rounding::Stochastic) && spec.sr_bits >= 1 &&
         spec.sr_bits <= 32;
}

bool FloatMac::available() {
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return avx512;
}

FloatMac::FloatMac(const Format& acc, const RoundSpec& spec) : acc_(acc), spec_(spec) {
  if (!supports(acc, spec))
    throw std::invalid_argument(fmt::format("FloatMac: no vector step for a {} accumulator with {} rounding", acc.spec(),
                                            to_string(spec.rounding)));
  if (!available()) throw std::invalid_argument("FloatMac: this CPU has no AVX-512F and DQ");
}

double FloatMac::value(u128 code) const { return decode(acc_, code).to_double(); }

u128 FloatMac::code(double value) const {
  return quantize(acc_, Exact::from_double(value), {Rounding::NearestEven, spec_.overflow}).code;
}

void FloatMac::step(double* acc, const float* x, const float* y, const std::uint32_t* random, std::size_t n) const {
  float_mac::step_avx512(make_plan(acc_, spec_), acc, x, y, random, n);
}

FloatMac::PackedB::PackedB(const float* b, std::int64_t ldb, bool trans, std::int64_t k, std::int64_t n)
    : k_(k), n_(n) {
  constexpr std::int64_t w = float_mac::kPanel;
  const std::int64_t panels = (n + w - 1) / w;
  panels_.assign(std::size_t(panels * k * w), 0.0f);
  for (std::int64_t q = 0; q < panels; ++q)
    for (std::int64_t kk = 0; kk < k; ++kk)
      for (std::int64_t j = q * w; j < std::min(n, (q + 1) * w); ++j)
        panels_[std::size_t((q * k + kk) * w + j - q * w)] = trans ? b[j * ldb + kk] : b[kk * ldb + j];
}

void FloatMac::gemm(const float* a, std::int64_t lda, bool trans_a, std::int64_t rows, const PackedB& b, float* c,
                    std::int64_t ldc, const SrStream& sr, std::uint64_t row_stride) const {
  float_mac::Gemm g;
  g.a = a;
  g.a_row = trans_a ? 1 : lda;
  g.a_k = trans_a ? lda : 1;
  g.b = b.panels();
  g.rows = rows;
  g.n = b.n();
  g.k = b.k();
  g.c = c;
  g.ldc = ldc;
  g.seed = sr.seed;
  g.stream = sr.stream;
  g.row_stride = row_stride;
  float_mac::gemm_avx512(make_plan(acc_, spec_), g);
}

}  // namespace bitsim::arith
