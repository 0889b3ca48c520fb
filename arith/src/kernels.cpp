// Branch-free fp32 array quantizer. Each element is scaled by a power of two into fp64 so that the
// format's LSB becomes 1 (exact: fp32 has 24 significant bits), rounded to an integer there by the
// same rules as round_up_magnitude(), range-checked, and scaled back (exact by fits_fp32()).
// One instantiation per rounding mode keeps the inner loop free of mode dispatch, so it vectorises.
#include "bitsim/arith/kernels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "bitsim/arith/quantize.hpp"
#include "kernels_avx2.hpp"
#include "kernels_avx512.hpp"

namespace bitsim::arith {
namespace {

// Loop invariants of one quantization.
struct Plan {
  Overflow overflow = Overflow::Saturate;
  double two_k = 65536;  // 2^k for stochastic rounding
  // fixed point
  double scale = 1, inv_scale = 1;  // 2^fl, 2^-fl
  double lo = 0, hi = 0;            // integer code range
  double sym_lo = 0;                // -max, or 0 when unsigned
  double modulus = 0;               // 2^wl
  // floats
  int m = 0, emin = 0;
  double max_value = 0, min_normal = 0;
  double overflow_pos = 0, overflow_neg = 0;  // what a finite value that overflows becomes
  double inf_pos = 0, inf_neg = 0;            // what +-inf becomes
  double nan_result = 0;                      // a nan, or 0 in formats without nan
  bool ftz = false, is_signed = true;
};

double result_of(const Format& f, const Exact& x, const RoundSpec& spec) {
  return decode(f, quantize(f, x, spec).code).to_double();
}

Plan make_plan(const Format& f, const RoundSpec& spec) {
  Plan p;
  p.overflow = spec.overflow;
  p.two_k = std::ldexp(1.0, spec.sr_bits);
  if (!f.is_float()) {
    p.scale = std::ldexp(1.0, f.fl);
    p.inv_scale = std::ldexp(1.0, -f.fl);
    p.lo = double(f.min_int());
    p.hi = double(f.max_magnitude());
    p.sym_lo = f.is_signed ? -p.hi : 0.0;
    p.modulus = std::ldexp(1.0, f.wl);
    return p;
  }
  p.m = f.man_bits;
  p.emin = f.emin();
  p.max_value = decode(f, max_code(f)).to_double();
  p.min_normal = std::ldexp(1.0, f.emin());
  p.ftz = !f.subnormals;
  p.is_signed = f.is_signed;
  p.nan_result = f.has_nan() ? std::numeric_limits<double>::quiet_NaN() : 0.0;
  // The scalar quantizer is the one definition of overflow and non-finite inputs: ask it.
  const Exact huge{Exact::Class::Finite, false, 1, f.emax() + 2, false};
  Exact neg_huge = huge;
  neg_huge.neg = true;
  p.overflow_pos = result_of(f, huge, spec);
  p.overflow_neg = result_of(f, neg_huge, spec);
  p.inf_pos = result_of(f, Exact::inf(false), spec);
  p.inf_neg = result_of(f, Exact::inf(true), spec);
  return p;
}

// Rounds y to an integer under mode R, deciding exactly as round_up_magnitude() does.
// twos: stochastic rounding on a two's complement code (fixed point) rather than a magnitude.
template <Rounding R, bool Twos>
inline double round_to_integer(double y, std::uint32_t r, double two_k) {
  const double a = std::fabs(y);
  const double t = std::floor(a);
  const double f = a - t;  // exact, and so is f * two_k
  const bool neg = y < 0;
  const bool odd = t - 2.0 * std::floor(t * 0.5) != 0.0;
  bool inc = false;
  if constexpr (R == Rounding::NearestEven) inc = f > 0.5 || (f == 0.5 && odd);
  if constexpr (R == Rounding::NearestAway) inc = f >= 0.5;
  if constexpr (R == Rounding::NearestZero) inc = f > 0.5;
  if constexpr (R == Rounding::NearestUp) inc = f > 0.5 || (f == 0.5 && !neg);
  if constexpr (R == Rounding::NearestDown) inc = f > 0.5 || (f == 0.5 && neg);
  if constexpr (R == Rounding::TowardZero) inc = false;
  if constexpr (R == Rounding::Down) inc = f > 0 && neg;
  if constexpr (R == Rounding::Up) inc = f > 0 && !neg;
  if constexpr (R == Rounding::Odd) inc = f > 0 && !odd;
  if constexpr (R == Rounding::Stochastic) {
    // Magnitude form of "add r below the LSB and truncate" (see round_up_magnitude): a two's
    // complement code of a negative value holds 1 - f, whose top k bits are 2^k - ceil(f 2^k).
    if (Twos && neg) inc = double(r) < std::ceil(f * two_k);
    else inc = std::floor(f * two_k) + double(r) >= two_k;
  }
  return std::copysign(t + (inc ? 1.0 : 0.0), y);
}

template <Rounding R, Overflow O>
void fixed_loop(const Plan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const double scale = p.scale, inv_scale = p.inv_scale, lo = p.lo, hi = p.hi, sym_lo = p.sym_lo;
  const double modulus = p.modulus, two_k = p.two_k;
  for (std::size_t j = 0; j < n; ++j) {
    const float x = src[j];
    const std::uint32_t r = R == Rounding::Stochastic ? rnd[j] : 0;
    const double v = round_to_integer<R, true>(double(x) * scale, r, two_k);
    double q;
    if constexpr (O == Overflow::SaturateZero) q = (v < lo || v > hi) ? 0.0 : v;
    else if constexpr (O == Overflow::SaturateSymmetric) q = std::min(std::max(v, sym_lo), hi);
    else if constexpr (O == Overflow::Wrap) q = v - modulus * std::floor((v - lo) / modulus);  // exact
    else q = std::min(std::max(v, lo), hi);
    // nan (and, when wrapping, +-inf) has no fixed-point code: 0. Adding 0.0 turns -0 into +0.
    const bool no_code = x != x || (O == Overflow::Wrap && std::fabs(x) == std::numeric_limits<float>::infinity());
    dst[j] = no_code ? 0.0f : float(q * inv_scale + 0.0);
  }
}

template <Rounding R>
void float_loop(const Plan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const int m = p.m, emin = p.emin;
  const double two_k = p.two_k, max_value = p.max_value, min_normal = p.min_normal;
  const double ov_pos = p.overflow_pos, ov_neg = p.overflow_neg, inf_pos = p.inf_pos, inf_neg = p.inf_neg;
  const double nan_result = p.nan_result;
  const bool ftz = p.ftz, is_signed = p.is_signed;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (std::size_t j = 0; j < n; ++j) {
    const float x = src[j];
    const std::uint32_t r = R == Rounding::Stochastic ? rnd[j] : 0;
    const int field = int((std::bit_cast<std::uint32_t>(x) >> 23) & 0xff);
    const int e = std::max(field - 127, emin);  // binade, or the subnormal one
    const double scale = std::bit_cast<double>(std::uint64_t(1023 + m - e) << 52);     // 2^(m-e)
    const double inv_scale = std::bit_cast<double>(std::uint64_t(1023 - m + e) << 52);  // 2^(e-m)
    double v = round_to_integer<R, false>(double(x) * scale, r, two_k) * inv_scale;
    v = (ftz && std::fabs(v) < min_normal) ? 0.0 : v;
    v = std::copysign(v, double(x));
    v = std::fabs(v) > max_value ? (x > 0 ? ov_pos : ov_neg) : v;
    v = std::fabs(x) == kInf ? (x > 0 ? inf_pos : inf_neg) : v;
    v = is_signed ? v : (x < 0 ? nan_result : std::fabs(v));  // negatives have no unsigned code
    v = x != x ? nan_result : v;
    dst[j] = float(v);
  }
}

// k-bit random numbers of elements first .. first + n - 1 (n <= 1024), laid out as SrStream::bits.
void random_bits(const SrStream& sr, std::uint64_t first, std::size_t n, int k, QuantizeKernel kernel,
                 std::uint32_t* out) {
  const std::uint64_t per = std::uint64_t(SrStream::per_block(k));
  const std::uint64_t b0 = first / per, b1 = (first + n + per - 1) / per;  // blocks covering the range
  const auto generate = [&](std::uint32_t* to) {
    if (kernel == QuantizeKernel::Avx512) avx512::philox_bits(sr.seed, sr.stream, b0, std::size_t(b1 - b0), k, to);
    else avx2::philox_bits(sr.seed, sr.stream, b0, std::size_t(b1 - b0), k, to);
  };
  if (kernel != QuantizeKernel::Portable && first % per == 0 && n % per == 0) {  // whole blocks: straight into place
    generate(out);
    return;
  }
  std::array<std::uint32_t, 1024 + 16> values;  // n plus the alignment slack of two blocks
  if (kernel != QuantizeKernel::Portable) {
    generate(values.data());
  } else {
    for (std::uint64_t i = b0 * per; i < b1 * per; ++i) values[i - b0 * per] = sr.bits(i, k);
  }
  std::memcpy(out, values.data() + (first - b0 * per), n * sizeof(std::uint32_t));
}

template <Rounding R>
void portable(const Format& f, const Plan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  if (f.is_float()) return float_loop<R>(p, src, dst, rnd, n);
  switch (p.overflow) {
    case Overflow::SaturateZero: return fixed_loop<R, Overflow::SaturateZero>(p, src, dst, rnd, n);
    case Overflow::SaturateSymmetric: return fixed_loop<R, Overflow::SaturateSymmetric>(p, src, dst, rnd, n);
    case Overflow::Wrap: return fixed_loop<R, Overflow::Wrap>(p, src, dst, rnd, n);
    case Overflow::Saturate:
    case Overflow::Ieee: return fixed_loop<R, Overflow::Saturate>(p, src, dst, rnd, n);
  }
}

void portable_dispatch(Rounding r, const Format& f, const Plan& p, const float* src, float* dst,
                       const std::uint32_t* rnd, std::size_t n) {
  switch (r) {
    case Rounding::NearestEven: return portable<Rounding::NearestEven>(f, p, src, dst, rnd, n);
    case Rounding::NearestAway: return portable<Rounding::NearestAway>(f, p, src, dst, rnd, n);
    case Rounding::NearestZero: return portable<Rounding::NearestZero>(f, p, src, dst, rnd, n);
    case Rounding::NearestUp: return portable<Rounding::NearestUp>(f, p, src, dst, rnd, n);
    case Rounding::NearestDown: return portable<Rounding::NearestDown>(f, p, src, dst, rnd, n);
    case Rounding::TowardZero: return portable<Rounding::TowardZero>(f, p, src, dst, rnd, n);
    case Rounding::Down: return portable<Rounding::Down>(f, p, src, dst, rnd, n);
    case Rounding::Up: return portable<Rounding::Up>(f, p, src, dst, rnd, n);
    case Rounding::Odd: return portable<Rounding::Odd>(f, p, src, dst, rnd, n);
    case Rounding::Stochastic: return portable<Rounding::Stochastic>(f, p, src, dst, rnd, n);
  }
}

// The AVX2 lanes compute in fp32, which is exact under these conditions (see kernels_avx2.cpp):
// fixed point with 0 <= fl <= 126 and no wrap-around (wrap needs the bits above the range), and at
// most 24 random bits (so r and floor(f 2^k) + r are exact fp32 integers). The AVX-512 lanes serve
// a subset of these (kernels_avx512.hpp says which).
bool simd_eligible(const Format& f, const RoundSpec& spec) {
  if (spec.rounding == Rounding::Stochastic && spec.sr_bits > 24) return false;
  if (f.is_float()) return true;
  return f.fl >= 0 && f.fl <= 126 && spec.overflow != Overflow::Wrap;
}

// Outputs from this many elements (16 MiB of fp32) on are written with streaming stores.
constexpr std::size_t kStreamElements = std::size_t{1} << 22;

void quantize_f32_impl(const Format& f, const RoundSpec& spec, std::span<const float> in, std::span<float> out,
                       const SrStream& sr, std::uint64_t first_index, QuantizeKernel kernel) {
  if (!fits_fp32(f))
    throw FormatError(fmt::format("format {} has values that fp32 cannot hold; quantize to codes instead", f.spec()));
  if (out.size() < in.size()) throw std::invalid_argument("quantize_f32: output shorter than input");
  if (!available(kernel)) throw std::invalid_argument(fmt::format("this CPU has no {} quantizer", to_string(kernel)));
  const Plan p = make_plan(f, spec);
  const bool simd = kernel != QuantizeKernel::Portable && simd_eligible(f, spec);
  avx2::FixedPlan fp;
  avx2::FloatPlan flp;
  if (simd) {
    fp = {float(std::ldexp(1.0, f.wl - f.fl)), float(p.scale), float(p.inv_scale), float(p.lo), float(p.hi),
          float(p.sym_lo), float(p.two_k), spec.sr_bits, {}};
    flp = {p.m, p.emin, f.is_float() ? f.emax() : 0, float(p.max_value), float(p.min_normal), float(p.overflow_pos),
           float(p.overflow_neg), float(p.inf_pos), float(p.inf_neg), float(p.nan_result), p.ftz, p.is_signed,
           float(p.two_k),
           f.is_float() && f.exp_bits == 8 && f.is_signed && f.has_zero && f.nonfinite == NonFinite::Ieee,
           spec.sr_bits, {}};
  }
  const bool wide = simd && kernel == QuantizeKernel::Avx512 &&
                    (f.is_float() ? avx512::serves_float(spec.rounding, flp) : avx512::serves_fixed(spec.rounding, spec.overflow, fp));
  avx2::AvxOnly& w = f.is_float() ? flp.wide : fp.wide;
  if (wide && spec.rounding == Rounding::Stochastic &&
      first_index % std::uint64_t(SrStream::per_block(spec.sr_bits)) == 0) {
    // The AVX-512 loop draws the random numbers itself, block group by block group, in one call.
    w = {false, true, sr.seed, sr.stream, first_index};
    if (f.is_float()) avx512::quantize_float(spec.rounding, flp, in.data(), out.data(), nullptr, in.size());
    else avx512::quantize_fixed(spec.rounding, spec.overflow, fp, in.data(), out.data(), nullptr, in.size());
    return;
  }
  // An output this large leaves the caches anyway: write it with streaming stores, as memcpy does,
  // rather than read every line before overwriting it. (Not under stochastic rounding, where
  // measurements showed them slower.)
  w.stream = wide && spec.rounding != Rounding::Stochastic && in.size() >= kStreamElements;
  constexpr std::size_t kChunk = 1024;
  std::array<std::uint32_t, kChunk> rnd{};
  for (std::size_t base = 0; base < in.size(); base += kChunk) {
    const std::size_t n = std::min(kChunk, in.size() - base);
    if (spec.rounding == Rounding::Stochastic) random_bits(sr, first_index + base, n, spec.sr_bits, kernel, rnd.data());
    const float* src = in.data() + base;
    float* dst = out.data() + base;
    if (!simd) portable_dispatch(spec.rounding, f, p, src, dst, rnd.data(), n);
    else if (wide && f.is_float()) avx512::quantize_float(spec.rounding, flp, src, dst, rnd.data(), n);
    else if (wide) avx512::quantize_fixed(spec.rounding, spec.overflow, fp, src, dst, rnd.data(), n);
    else if (f.is_float()) avx2::quantize_float(spec.rounding, flp, src, dst, rnd.data(), n);
    else avx2::quantize_fixed(spec.rounding, spec.overflow, fp, src, dst, rnd.data(), n);
  }
  if (w.stream) avx512::end_streaming();
}

}  // namespace

bool fits_fp32(const Format& f) {
  if (!f.is_float()) return f.wl <= 24 && f.fl <= 149 && f.wl - f.fl <= 128;
  return f.has_zero && f.man_bits <= 23 && f.emax() <= 127 && f.emin() - (f.subnormals ? f.man_bits : 0) >= -149;
}

std::string_view to_string(QuantizeKernel k) {
  switch (k) {
    case QuantizeKernel::Portable: return "portable";
    case QuantizeKernel::Avx2: return "avx2";
    case QuantizeKernel::Avx512: return "avx512";
  }
  return "?";
}

bool available(QuantizeKernel k) {
  switch (k) {
    case QuantizeKernel::Portable: return true;
    case QuantizeKernel::Avx2: return avx2::available();
    case QuantizeKernel::Avx512: return avx2::available() && avx512::available();
  }
  return false;
}

QuantizeKernel best_quantize_kernel() {
  static const QuantizeKernel best = available(QuantizeKernel::Avx512) ? QuantizeKernel::Avx512
                                     : available(QuantizeKernel::Avx2) ? QuantizeKernel::Avx2
                                                                       : QuantizeKernel::Portable;
  return best;
}

void quantize_f32(const Format& f, const RoundSpec& spec, std::span<const float> in, std::span<float> out,
                  const SrStream& sr, std::uint64_t first_index) {
  quantize_f32_impl(f, spec, in, out, sr, first_index, best_quantize_kernel());
}

void quantize_f32_portable(const Format& f, const RoundSpec& spec, std::span<const float> in,
                           std::span<float> out, const SrStream& sr, std::uint64_t first_index) {
  quantize_f32_impl(f, spec, in, out, sr, first_index, QuantizeKernel::Portable);
}

void quantize_f32_with(QuantizeKernel kernel, const Format& f, const RoundSpec& spec, std::span<const float> in,
                       std::span<float> out, const SrStream& sr, std::uint64_t first_index) {
  quantize_f32_impl(f, spec, in, out, sr, first_index, kernel);
}

FiniteExtremes finite_extremes_f32(std::span<const float> x) {
  if (!avx2::available()) return finite_extremes_f32_portable(x);
  FiniteExtremes e;
  avx2::finite_extremes(x.data(), x.size(), e.max_pos, e.min_neg);
  return e;
}

FiniteExtremes finite_extremes_f32_portable(std::span<const float> x) {
  FiniteExtremes e;
  for (const float v : x) {
    if (!std::isfinite(v)) continue;
    e.max_pos = std::max(e.max_pos, v);
    e.min_neg = std::min(e.min_neg, v);
  }
  return e;
}

namespace avx2 {
bool available() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
}  // namespace avx2

}  // namespace bitsim::arith
