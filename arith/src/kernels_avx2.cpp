// AVX2 fp32 array quantizer and Philox4x32-10 generator, lane for lane the same arithmetic as the
// portable loop in kernels.cpp (which tests hold them equal to). Compiled for AVX2 only; called
// only after a run-time CPU check. Uses no inline library code, so no AVX2 code leaks elsewhere.
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "bitsim/arith/stochastic.hpp"

#include "kernels_avx2.hpp"

namespace bitsim::arith::avx2 {
namespace {

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline __m256 sign_ps(__m256 v) { return _mm256_and_ps(_mm256_set1_ps(-0.0f), v); }
inline __m256 select(__m256 mask, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, mask); }
#define BITSIM_CMP(a, b, op) _mm256_cmp_ps((a), (b), (op))

// Integer magnitude of y rounded under R (y exact, |y| < 2^25), as in round_up_magnitude().
// Returns the rounded magnitude; the caller applies the sign.
template <Rounding R, bool Twos>
inline __m256 round_magnitude(__m256 y, __m256 r, __m256 two_k) {
  const __m256 a = abs_ps(y);
  const __m256 t = _mm256_floor_ps(a);
  const __m256 f = _mm256_sub_ps(a, t);  // exact
  const __m256 half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
  const __m256 neg = BITSIM_CMP(y, zero, _CMP_LT_OQ);
  const __m256 odd = BITSIM_CMP(_mm256_sub_ps(t, _mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_floor_ps(_mm256_mul_ps(t, half)))),
                                zero, _CMP_NEQ_OQ);
  const __m256 gt_half = BITSIM_CMP(f, half, _CMP_GT_OQ);
  const __m256 tie = BITSIM_CMP(f, half, _CMP_EQ_OQ);
  const __m256 nonzero = BITSIM_CMP(f, zero, _CMP_GT_OQ);
  __m256 inc = zero;
  if constexpr (R == Rounding::NearestEven) inc = _mm256_or_ps(gt_half, _mm256_and_ps(tie, odd));
  if constexpr (R == Rounding::NearestAway) inc = _mm256_or_ps(gt_half, tie);
  if constexpr (R == Rounding::NearestZero) inc = gt_half;
  if constexpr (R == Rounding::NearestUp) inc = _mm256_or_ps(gt_half, _mm256_andnot_ps(neg, tie));
  if constexpr (R == Rounding::NearestDown) inc = _mm256_or_ps(gt_half, _mm256_and_ps(neg, tie));
  if constexpr (R == Rounding::Down) inc = _mm256_and_ps(nonzero, neg);
  if constexpr (R == Rounding::Up) inc = _mm256_andnot_ps(neg, nonzero);
  if constexpr (R == Rounding::Odd) inc = _mm256_andnot_ps(odd, nonzero);
  if constexpr (R == Rounding::Stochastic) {
    const __m256 fk = _mm256_mul_ps(f, two_k);  // exact
    const __m256 up = BITSIM_CMP(_mm256_add_ps(_mm256_floor_ps(fk), r), two_k, _CMP_GE_OQ);
    if constexpr (Twos) {
      const __m256 down = BITSIM_CMP(r, _mm256_ceil_ps(fk), _CMP_LT_OQ);
      inc = select(neg, down, up);
    } else {
      inc = up;
    }
  }
  return _mm256_add_ps(t, _mm256_and_ps(inc, _mm256_set1_ps(1.0f)));
}

inline __m256 random_ps(const std::uint32_t* rnd) {
  return _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rnd)));  // k <= 24: exact
}

template <Rounding R, Overflow O>
void fixed_loop(const FixedPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const __m256 clamp = _mm256_set1_ps(p.clamp), nclamp = _mm256_set1_ps(-p.clamp);
  const __m256 scale = _mm256_set1_ps(p.scale), inv_scale = _mm256_set1_ps(p.inv_scale);
  const __m256 lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi), sym_lo = _mm256_set1_ps(p.sym_lo);
  const __m256 two_k = _mm256_set1_ps(p.two_k), zero = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(src + j);
    const __m256 is_nan = BITSIM_CMP(x, x, _CMP_UNORD_Q);
    const __m256 y = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(x, nclamp), clamp), scale);
    const __m256 r = R == Rounding::Stochastic ? random_ps(rnd + j) : zero;
    const __m256 v = _mm256_or_ps(round_magnitude<R, true>(y, r, two_k), sign_ps(y));
    __m256 q;
    if constexpr (O == Overflow::SaturateZero) {
      const __m256 out = _mm256_or_ps(BITSIM_CMP(v, lo, _CMP_LT_OQ), BITSIM_CMP(v, hi, _CMP_GT_OQ));
      q = _mm256_andnot_ps(out, v);
    } else if constexpr (O == Overflow::SaturateSymmetric) {
      q = _mm256_min_ps(_mm256_max_ps(v, sym_lo), hi);
    } else {
      q = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    }
    q = _mm256_add_ps(_mm256_mul_ps(q, inv_scale), zero);  // + 0 turns -0 into +0
    _mm256_storeu_ps(dst + j, _mm256_andnot_ps(is_nan, q));
  }
  if (j < n) {  // tail through a padded copy, so lanes and scalar elements see the same code
    alignas(32) float xs[8] = {}, ys[8];
    alignas(32) std::uint32_t rs[8] = {};
    for (std::size_t i = j; i < n; ++i) {
      xs[i - j] = src[i];
      if (R == Rounding::Stochastic) rs[i - j] = rnd[i];
    }
    fixed_loop<R, O>(p, xs, ys, rs, 8);
    for (std::size_t i = j; i < n; ++i) dst[i] = ys[i - j];
  }
}

inline __m256 pow2_ps(__m256i e) {  // 2^e for e in [-126, 127]
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}

// Narrow formats (emin - m >= -126) scale with one multiply each way; wide ones (bf16, tf32, fp32)
// need two so that every power of two involved stays a normal fp32 number.
template <Rounding R, bool Narrow, bool Ftz, bool Signed>
void float_loop(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const __m256i emin = _mm256_set1_epi32(p.emin), bias = _mm256_set1_epi32(127), one = _mm256_set1_epi32(1);
  const __m256i m = _mm256_set1_epi32(p.m);
  const __m256 two_m_minus_1 = pow2_ps(_mm256_set1_epi32(p.m - 1)), two_minus_m = pow2_ps(_mm256_set1_epi32(-p.m));
  const __m256 max_value = _mm256_set1_ps(p.max_value), min_normal = _mm256_set1_ps(p.min_normal);
  const __m256 ov_pos = _mm256_set1_ps(p.overflow_pos), ov_neg = _mm256_set1_ps(p.overflow_neg);
  const __m256 inf_pos = _mm256_set1_ps(p.inf_pos), inf_neg = _mm256_set1_ps(p.inf_neg);
  const __m256 nan_result = _mm256_set1_ps(p.nan_result), inf = _mm256_set1_ps(__builtin_inff());
  const __m256 two_k = _mm256_set1_ps(p.two_k), zero = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(src + j);
    const __m256i field = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 23), _mm256_set1_epi32(0xff));
    const __m256i e = _mm256_max_epi32(_mm256_sub_epi32(field, bias), emin);  // binade or subnormal one
    // y = x * 2^(m - e), exact: a power-of-two scaling that stays in fp32's normal range.
    __m256 y, v;
    const __m256 r = R == Rounding::Stochastic ? random_ps(rnd + j) : zero;
    if constexpr (Narrow) {
      y = _mm256_mul_ps(x, pow2_ps(_mm256_sub_epi32(m, e)));
      v = _mm256_mul_ps(round_magnitude<R, false>(y, r, two_k), pow2_ps(_mm256_sub_epi32(e, m)));
    } else {  // 2^(1-e) and 2^(m-1) are normal fp32 numbers; so are 2^-m and 2^e
      y = _mm256_mul_ps(_mm256_mul_ps(x, pow2_ps(_mm256_sub_epi32(one, e))), two_m_minus_1);
      v = _mm256_mul_ps(_mm256_mul_ps(round_magnitude<R, false>(y, r, two_k), two_minus_m), pow2_ps(e));
    }
    if constexpr (Ftz) v = _mm256_andnot_ps(BITSIM_CMP(v, min_normal, _CMP_LT_OQ), v);
    const __m256 positive = BITSIM_CMP(x, zero, _CMP_GT_OQ);
    v = select(BITSIM_CMP(v, max_value, _CMP_GT_OQ), select(positive, ov_pos, ov_neg), _mm256_or_ps(v, sign_ps(x)));
    v = select(BITSIM_CMP(abs_ps(x), inf, _CMP_EQ_OQ), select(positive, inf_pos, inf_neg), v);
    if constexpr (!Signed) v = select(BITSIM_CMP(x, zero, _CMP_LT_OQ), nan_result, abs_ps(v));
    v = select(BITSIM_CMP(x, x, _CMP_UNORD_Q), nan_result, v);
    _mm256_storeu_ps(dst + j, v);
  }
  if (j < n) {
    alignas(32) float xs[8] = {}, ys[8];
    alignas(32) std::uint32_t rs[8] = {};
    for (std::size_t i = j; i < n; ++i) {
      xs[i - j] = src[i];
      if (R == Rounding::Stochastic) rs[i - j] = rnd[i];
    }
    float_loop<R, Narrow, Ftz, Signed>(p, xs, ys, rs, 8);
    for (std::size_t i = j; i < n; ++i) dst[i] = ys[i - j];
  }
}

// fp32 bits rounded at bit s = 23 - m as integers: the target shares fp32's exponent range, so the
// kept bits of the pattern are the target's code and a carry walks into the exponent as it should.
template <Rounding R, bool Ftz>
void same_range_loop(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const int s = 23 - p.m, k = p.sr_bits;
  const __m128i shift = _mm_cvtsi32_si128(s);
  const __m256i sign_mask = _mm256_set1_epi32(int(0x80000000u)), abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i frac_mask = _mm256_set1_epi32(int((1u << s) - 1)), half = _mm256_set1_epi32(int(s ? 1u << (s - 1) : 1));  // s = 0: nothing is lost, no tie
  const __m256i inf_bits = _mm256_set1_epi32(0x7f800000), min_normal = _mm256_set1_epi32(0x00800000);
  const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
  const __m256i two_k = _mm256_set1_epi32(1 << k);
  const __m128i sr_down = _mm_cvtsi32_si128(k <= s ? s - k : 0), sr_up = _mm_cvtsi32_si128(k > s ? k - s : 0);
  const __m256i ov_pos = _mm256_castps_si256(_mm256_set1_ps(p.overflow_pos));
  const __m256i ov_neg = _mm256_castps_si256(_mm256_set1_ps(p.overflow_neg));
  const __m256i inf_pos = _mm256_castps_si256(_mm256_set1_ps(p.inf_pos));
  const __m256i inf_neg = _mm256_castps_si256(_mm256_set1_ps(p.inf_neg));
  const __m256i nan_result = _mm256_castps_si256(_mm256_set1_ps(p.nan_result));
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
    const __m256i sign = _mm256_and_si256(b, sign_mask), u = _mm256_and_si256(b, abs_mask);
    const __m256i neg = _mm256_cmpeq_epi32(sign, sign_mask);
    const __m256i t = _mm256_srl_epi32(u, shift), f = _mm256_and_si256(u, frac_mask);
    const __m256i odd = _mm256_cmpeq_epi32(_mm256_and_si256(t, one), one);
    const __m256i gt_half = _mm256_cmpgt_epi32(f, half), tie = _mm256_cmpeq_epi32(f, half);
    const __m256i nonzero = _mm256_cmpgt_epi32(f, zero);
    __m256i inc = zero;
    if constexpr (R == Rounding::NearestEven) inc = _mm256_or_si256(gt_half, _mm256_and_si256(tie, odd));
    if constexpr (R == Rounding::NearestAway) inc = _mm256_or_si256(gt_half, tie);
    if constexpr (R == Rounding::NearestZero) inc = gt_half;
    if constexpr (R == Rounding::NearestUp) inc = _mm256_or_si256(gt_half, _mm256_andnot_si256(neg, tie));
    if constexpr (R == Rounding::NearestDown) inc = _mm256_or_si256(gt_half, _mm256_and_si256(neg, tie));
    if constexpr (R == Rounding::Down) inc = _mm256_and_si256(nonzero, neg);
    if constexpr (R == Rounding::Up) inc = _mm256_andnot_si256(neg, nonzero);
    if constexpr (R == Rounding::Odd) inc = _mm256_andnot_si256(odd, nonzero);
    if constexpr (R == Rounding::Stochastic) {
      // The k fraction bits the adder sees (all s bits, shifted up, when k > s), plus r.
      const __m256i d = _mm256_sll_epi32(_mm256_srl_epi32(f, sr_down), sr_up);
      const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rnd + j));
      inc = _mm256_cmpgt_epi32(_mm256_add_epi32(d, r), _mm256_sub_epi32(two_k, one));
    }
    __m256i res = _mm256_sll_epi32(_mm256_sub_epi32(t, inc), shift);  // inc is -1 where set
    if constexpr (Ftz) res = _mm256_andnot_si256(_mm256_cmpgt_epi32(min_normal, res), res);
    const __m256i overflow = _mm256_cmpgt_epi32(res, _mm256_sub_epi32(inf_bits, one));
    res = _mm256_blendv_epi8(_mm256_or_si256(res, sign), _mm256_blendv_epi8(ov_pos, ov_neg, neg), overflow);
    res = _mm256_blendv_epi8(res, _mm256_blendv_epi8(inf_pos, inf_neg, neg), _mm256_cmpeq_epi32(u, inf_bits));
    res = _mm256_blendv_epi8(res, nan_result, _mm256_cmpgt_epi32(u, inf_bits));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), res);
  }
  if (j < n) {
    alignas(32) float xs[8] = {}, ys[8];
    alignas(32) std::uint32_t rs[8] = {};
    for (std::size_t i = j; i < n; ++i) {
      xs[i - j] = src[i];
      if (R == Rounding::Stochastic) rs[i - j] = rnd[i];
    }
    same_range_loop<R, Ftz>(p, xs, ys, rs, 8);
    for (std::size_t i = j; i < n; ++i) dst[i] = ys[i - j];
  }
}

template <template <Rounding> class Fn, class... Args>
void dispatch(Rounding r, Args&&... args) {
  switch (r) {
    case Rounding::NearestEven: return Fn<Rounding::NearestEven>::run(args...);
    case Rounding::NearestAway: return Fn<Rounding::NearestAway>::run(args...);
    case Rounding::NearestZero: return Fn<Rounding::NearestZero>::run(args...);
    case Rounding::NearestUp: return Fn<Rounding::NearestUp>::run(args...);
    case Rounding::NearestDown: return Fn<Rounding::NearestDown>::run(args...);
    case Rounding::TowardZero: return Fn<Rounding::TowardZero>::run(args...);
    case Rounding::Down: return Fn<Rounding::Down>::run(args...);
    case Rounding::Up: return Fn<Rounding::Up>::run(args...);
    case Rounding::Odd: return Fn<Rounding::Odd>::run(args...);
    case Rounding::Stochastic: return Fn<Rounding::Stochastic>::run(args...);
  }
}

template <Rounding R>
struct FixedRun {
  static void run(Overflow o, const FixedPlan& p, const float* src, float* dst, const std::uint32_t* rnd,
                  std::size_t n) {
    switch (o) {
      case Overflow::SaturateZero: return fixed_loop<R, Overflow::SaturateZero>(p, src, dst, rnd, n);
      case Overflow::SaturateSymmetric: return fixed_loop<R, Overflow::SaturateSymmetric>(p, src, dst, rnd, n);
      default: return fixed_loop<R, Overflow::Saturate>(p, src, dst, rnd, n);
    }
  }
};

template <Rounding R>
struct FloatRun {
  static void run(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
    if (p.same_range)
      return p.ftz ? same_range_loop<R, true>(p, src, dst, rnd, n) : same_range_loop<R, false>(p, src, dst, rnd, n);
    const bool narrow = p.emin - p.m >= -126;
    if (narrow && !p.ftz && p.is_signed) return float_loop<R, true, false, true>(p, src, dst, rnd, n);
    if (!narrow && !p.ftz && p.is_signed) return float_loop<R, false, false, true>(p, src, dst, rnd, n);
    if (narrow) {
      if (p.ftz) return p.is_signed ? float_loop<R, true, true, true>(p, src, dst, rnd, n)
                                     : float_loop<R, true, true, false>(p, src, dst, rnd, n);
      return float_loop<R, true, false, false>(p, src, dst, rnd, n);
    }
    if (p.ftz) return p.is_signed ? float_loop<R, false, true, true>(p, src, dst, rnd, n)
                                   : float_loop<R, false, true, false>(p, src, dst, rnd, n);
    return float_loop<R, false, false, false>(p, src, dst, rnd, n);
  }
};

// 32x32 -> 64-bit products of eight lanes, split into high and low halves (two vpmuludq, no vpmulld).
inline void mulhilo(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                          // lanes 0,2,4,6 as 64-bit
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);    // lanes 1,3,5,7 as 64-bit
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// Stores the random numbers of eight blocks whose words are c0..c3 (lane l = block l) in element
// order: a 4x8 transpose puts block l's words at positions 4l..4l+3; with k <= 16 every word then
// splits into its high and low halves. Returns the number of values written (32 or 64).
inline std::size_t store_block_values(__m256i c0, __m256i c1, __m256i c2, __m256i c3, int k, std::uint32_t* out) {
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpacklo_epi32(c2, c3);
  const __m256i t2 = _mm256_unpackhi_epi32(c0, c1), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i b04 = _mm256_unpacklo_epi64(t0, t1), b15 = _mm256_unpackhi_epi64(t0, t1);
  const __m256i b26 = _mm256_unpacklo_epi64(t2, t3), b37 = _mm256_unpackhi_epi64(t2, t3);
  const __m256i words[4] = {_mm256_permute2x128_si256(b04, b15, 0x20), _mm256_permute2x128_si256(b26, b37, 0x20),
                            _mm256_permute2x128_si256(b04, b15, 0x31), _mm256_permute2x128_si256(b26, b37, 0x31)};
  __m256i* dst = reinterpret_cast<__m256i*>(out);
  if (k > 16) {
    const __m128i shift = _mm_cvtsi32_si128(32 - k);
    for (int v = 0; v < 4; ++v) _mm256_storeu_si256(dst + v, _mm256_srl_epi32(words[v], shift));
    return 32;
  }
  const __m128i shift = _mm_cvtsi32_si128(16 - k);
  const __m256i low16 = _mm256_set1_epi32(0xffff);
  for (int v = 0; v < 4; ++v) {
    const __m256i hi = _mm256_srli_epi32(words[v], 16), lo = _mm256_and_si256(words[v], low16);
    const __m256i u0 = _mm256_unpacklo_epi32(hi, lo), u1 = _mm256_unpackhi_epi32(hi, lo);
    _mm256_storeu_si256(dst + 2 * v, _mm256_srl_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), shift));
    _mm256_storeu_si256(dst + 2 * v + 1, _mm256_srl_epi32(_mm256_permute2x128_si256(u0, u1, 0x31), shift));
  }
  return 64;
}

}  // namespace

void quantize_fixed(Rounding r, Overflow o, const FixedPlan& p, const float* src, float* dst,
                    const std::uint32_t* rnd, std::size_t n) {
  dispatch<FixedRun>(r, o, p, src, dst, rnd, n);
}

void quantize_float(Rounding r, const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd,
                    std::size_t n) {
  dispatch<FloatRun>(r, p, src, dst, rnd, n);
}

void finite_extremes(const float* src, std::size_t n, float& max_pos, float& min_neg) {
  // vmaxps(a, b) is a > b ? a : b, the scalar loop's comparison with the new value first: a NaN or
  // a -0 never replaces the accumulator. Infinities become 0 first, which never replaces either.
  // Every accumulator stays +0 or nonzero, so neither the lanes' order nor the final reduction can
  // change the result. Four accumulators each hide the latency of vmaxps/vminps.
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  __m256 hi[4], lo[4];
  for (int a = 0; a < 4; ++a) hi[a] = lo[a] = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 32 <= n; j += 32)
    for (int a = 0; a < 4; ++a) {
      const __m256 x = _mm256_loadu_ps(src + j + 8 * a);
      const __m256 v = _mm256_and_ps(BITSIM_CMP(abs_ps(x), inf, _CMP_LT_OQ), x);
      hi[a] = _mm256_max_ps(v, hi[a]);
      lo[a] = _mm256_min_ps(v, lo[a]);
    }
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(src + j);
    const __m256 v = _mm256_and_ps(BITSIM_CMP(abs_ps(x), inf, _CMP_LT_OQ), x);
    hi[0] = _mm256_max_ps(v, hi[0]);
    lo[0] = _mm256_min_ps(v, lo[0]);
  }
  const __m256 h = _mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3]));
  const __m256 l = _mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3]));
  alignas(32) float hs[8], ls[8];
  _mm256_store_ps(hs, h);
  _mm256_store_ps(ls, l);
  float mx = 0, mn = 0;
  for (int i = 0; i < 8; ++i) {
    mx = hs[i] > mx ? hs[i] : mx;
    mn = ls[i] < mn ? ls[i] : mn;
  }
  for (; j < n; ++j) {
    const float v = src[j];
    if (!(v - v == 0)) continue;  // NaN or infinity
    mx = v > mx ? v : mx;
    mn = v < mn ? v : mn;
  }
  max_pos = mx;
  min_neg = mn;
}

void philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block, std::size_t blocks, int k,
                 std::uint32_t* out) {
  const __m256i m0 = _mm256_set1_epi32(int(0xD2511F53)), m1 = _mm256_set1_epi32(int(0xCD9E8D57));
  const __m256i w0 = _mm256_set1_epi32(int(0x9E3779B9)), w1 = _mm256_set1_epi32(int(0xBB67AE85));
  // Two independent groups of eight blocks per iteration: the ten rounds are a dependency chain
  // of multiplies, and interleaving two chains keeps the multipliers busy.
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), eight = _mm256_set1_epi32(8);
  const __m256i s_lo = _mm256_set1_epi32(int(std::uint32_t(stream))), s_hi = _mm256_set1_epi32(int(std::uint32_t(stream >> 32)));
  std::size_t j = 0;
  for (; j + 16 <= blocks; j += 16) {
    const std::uint64_t b0 = first_block + j;
    if (std::uint32_t(b0) > 0xFFFFFFEFu) break;  // the low counter word would carry: scalar tail
    __m256i a0 = _mm256_add_epi32(_mm256_set1_epi32(int(std::uint32_t(b0))), lane), b0v = _mm256_add_epi32(a0, eight);
    __m256i a1 = _mm256_set1_epi32(int(std::uint32_t(b0 >> 32))), b1 = a1;
    __m256i a2 = s_lo, b2 = s_lo, a3 = s_hi, b3 = s_hi;
    __m256i k0 = _mm256_set1_epi32(int(std::uint32_t(seed))), k1 = _mm256_set1_epi32(int(std::uint32_t(seed >> 32)));
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 = _mm256_add_epi32(k0, w0);
        k1 = _mm256_add_epi32(k1, w1);
      }
      __m256i ahi0, alo0, ahi1, alo1, bhi0, blo0, bhi1, blo1;
      mulhilo(a0, m0, ahi0, alo0);
      mulhilo(b0v, m0, bhi0, blo0);
      mulhilo(a2, m1, ahi1, alo1);
      mulhilo(b2, m1, bhi1, blo1);
      a0 = _mm256_xor_si256(_mm256_xor_si256(ahi1, a1), k0);
      b0v = _mm256_xor_si256(_mm256_xor_si256(bhi1, b1), k0);
      a1 = alo1;
      b1 = blo1;
      a2 = _mm256_xor_si256(_mm256_xor_si256(ahi0, a3), k1);
      b2 = _mm256_xor_si256(_mm256_xor_si256(bhi0, b3), k1);
      a3 = alo0;
      b3 = blo0;
    }
    out += store_block_values(a0, a1, a2, a3, k, out);
    out += store_block_values(b0v, b1, b2, b3, k, out);
  }
  for (; j < blocks; ++j) {  // tail, and blocks whose low counter word carries: one at a time
    out += SrStream{seed, stream}.block_bits(first_block + j, k, out);
  }
}

}  // namespace bitsim::arith::avx2
