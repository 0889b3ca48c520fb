// AVX-512 kernels of FloatMac: eight double lanes per zmm, each lane one output stepping through its
// k in order (float_mac.hpp gives the method). Compiled for AVX-512F and DQ only; called only after
// a run-time CPU check. Uses no inline library code, so no AVX-512 code leaks elsewhere.
#pragma GCC target("avx512f,avx512dq")
// GCC 12 reports the _mm512_undefined_pd() pass-through operand of the unmasked intrinsics as "may be
// used uninitialized" once they are inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "float_mac_simd.hpp"

namespace bitsim::arith::float_mac {
namespace {

// The plan's constants in registers.
struct Lanes {
  __m512d m, e_lo, e_hi, max_value, overflow_value, inf_value, k, two_k;
  explicit Lanes(const Plan& p)
      : m(_mm512_set1_pd(p.m)), e_lo(_mm512_set1_pd(p.e_lo)), e_hi(_mm512_set1_pd(p.e_hi)),
        max_value(_mm512_set1_pd(p.max_value)), overflow_value(_mm512_set1_pd(p.overflow_value)),
        inf_value(_mm512_set1_pd(p.inf_value)), k(_mm512_set1_pd(p.k)), two_k(_mm512_set1_pd(p.two_k)) {}
};

// One MacDatapath step on eight lanes: round(c + x * y) into the plan's format. Under stochastic
// rounding `rnd` holds the k random bits and `scalar` gets the lanes whose exact sum double does
// not hold (TwoSum's error is nonzero); their result here is to be replaced by scalar_step().
template <bool Stochastic>
inline __m512d step(const Lanes& l, __m512d c, __m512d x, __m512d y, __m512d rnd, __mmask8& scalar) {
  const __m512d zero = _mm512_setzero_pd(), sign_bit = _mm512_set1_pd(-0.0);
  const __m512d p = _mm512_mul_pd(x, y);  // exact: fp32 significands and exponents
  const __m512d s = _mm512_add_pd(c, p);
  // TwoSum, as double_step: err = (c + p) - s exactly. inf and nan sums give nan, never "!= 0".
  const __m512d bb = _mm512_sub_pd(s, c);
  const __m512d err = _mm512_add_pd(_mm512_sub_pd(c, _mm512_sub_pd(s, bb)), _mm512_sub_pd(p, bb));
  const __m512d sign = _mm512_and_pd(s, sign_bit);  // quantize rounds the magnitude, then applies the sign
  const __m512d a = _mm512_abs_pd(s);
  // round_double's qexp: the LSB is 2^(max(e, emin) - m) for a in [2^e, 2^(e+1)) (vgetexppd: e; -inf
  // for 0). Clamping e at emax + 1 changes nothing but where the result is an overflow anyway.
  const __m512d e = _mm512_min_pd(_mm512_max_pd(_mm512_getexp_pd(a), l.e_lo), l.e_hi);
  const __m512d lsb_exp = _mm512_sub_pd(e, l.m);
  // With C = 1.5 * 2^(52 + e - m) and a < 2^(e+1) <= C / 3 (m <= 50), a + C lies in the binade of
  // C, whose ulp is the LSB: the add rounds a to nearest even on the grid (the default rounding
  // mode), and subtracting C again is exact.
  const __m512d magic = _mm512_scalef_pd(_mm512_set1_pd(0x1.8p52), lsb_exp);
  __m512d r = _mm512_sub_pd(_mm512_add_pd(a, magic), magic);
  const __m512d d = _mm512_sub_pd(a, r);  // exact: a multiple of a's ulp, |d| <= min(a, LSB / 2)
  if constexpr (!Stochastic) {
    // s a midpoint of the grid while the exact sum s + err is not: the neighbour on err's side.
    // (Elsewhere no midpoint lies between s and the exact sum, since midpoints are doubles.)
    const __m512d half = _mm512_scalef_pd(_mm512_set1_pd(0.5), lsb_exp);
    const __mmask8 tie = _mm512_cmp_pd_mask(_mm512_abs_pd(d), half, _CMP_EQ_OQ) & _mm512_cmp_pd_mask(err, zero, _CMP_NEQ_OQ);
    const __m512d toward = _mm512_or_pd(half, _mm512_and_pd(_mm512_xor_pd(err, sign), sign_bit));  // +-LSB/2
    r = _mm512_mask_add_pd(r, tie, a, toward);
    scalar = 0;
  } else {
    // round_up_magnitude's stochastic rule on the truncated magnitude t and the lost part f < LSB:
    // up when floor(f / LSB * 2^k) + rnd >= 2^k, i.e. f / LSB * 2^k >= 2^k - rnd (an integer).
    const __m512d lsb = _mm512_scalef_pd(_mm512_set1_pd(1.0), lsb_exp);
    const __m512d t = _mm512_mask_sub_pd(r, _mm512_cmp_pd_mask(d, zero, _CMP_LT_OQ), r, lsb);
    const __m512d f = _mm512_sub_pd(a, t);  // exact
    const __mmask8 up = _mm512_cmp_pd_mask(_mm512_scalef_pd(f, _mm512_sub_pd(l.k, lsb_exp)), _mm512_sub_pd(l.two_k, rnd),
                                           _CMP_GE_OQ);
    r = _mm512_mask_add_pd(t, up, t, lsb);
    scalar = _mm512_cmp_pd_mask(err, zero, _CMP_NEQ_OQ);
  }
  // quantize_float's overflow check (nan lanes compare false and stay nan); an inf sum gives inf - C
  // = nan above and takes the plan's inf_value here.
  r = _mm512_mask_mov_pd(r, _mm512_cmp_pd_mask(r, l.max_value, _CMP_GT_OQ), l.overflow_value);
  r = _mm512_mask_mov_pd(r, _mm512_cmp_pd_mask(a, _mm512_set1_pd(__builtin_inf()), _CMP_EQ_OQ), l.inf_value);
  return _mm512_or_pd(r, sign);
}

// r with the lanes of `mask` replaced by scalar_step() of their c, x, y and rnd: the cold path of
// stochastic rounding.
inline __m512d fix_lanes(const Plan& p, __mmask8 mask, __m512d r, __m512d c, __m512d x, __m512d y, __m512d rnd) {
  alignas(64) double out[8], cv[8], xv[8], yv[8], rv[8];
  _mm512_store_pd(out, r);
  _mm512_store_pd(cv, c);
  _mm512_store_pd(xv, x);
  _mm512_store_pd(yv, y);
  _mm512_store_pd(rv, rnd);
  for (int i = 0; i < 8; ++i)
    if ((mask >> i) & 1) out[i] = scalar_step(p, cv[i], xv[i], yv[i], std::uint32_t(rv[i]));
  return _mm512_load_pd(out);
}

template <bool Stochastic>
void step_loop(const Plan& p, double* acc, const float* x, const float* y, const std::uint32_t* random, std::size_t n) {
  const Lanes l(p);
  for (std::size_t i = 0; i < n; i += 8) {
    const int lanes = n - i < 8 ? int(n - i) : 8;
    const __mmask8 m = __mmask8((1u << lanes) - 1);
    const __m512d c = _mm512_maskz_loadu_pd(m, acc + i);
    const __m512d xv = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, x + i)));
    const __m512d yv = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, y + i)));
    const __m512d rnd = Stochastic ? _mm512_cvtepu32_pd(_mm512_castsi512_si256(_mm512_maskz_loadu_epi32(m, random + i)))
                                   : _mm512_setzero_pd();
    __mmask8 scalar;
    __m512d r = step<Stochastic>(l, c, xv, yv, rnd, scalar);
    if (scalar & m) r = fix_lanes(p, scalar & m, r, c, xv, yv, rnd);
    _mm512_mask_storeu_pd(acc + i, m, r);
  }
}

// Philox4x32-10 (SrStream::block) of one block index for eight streams per register, one stream
// per 64-bit lane, G registers interleaved (the ten rounds are a chain of multiplies). Each word
// of the state lives in the low half of its lane; vpmuludq reads only the low halves, so the high
// halves may hold anything.
template <int G>
inline void philox(const __m512i* stream, std::uint64_t block, std::uint64_t seed, __m512i (*words)[4]) {
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
  __m512i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    c0[g] = _mm512_set1_epi64(std::int64_t(std::uint32_t(block)));
    c1[g] = _mm512_set1_epi64(std::int64_t(block >> 32));
    c2[g] = stream[g];
    c3[g] = _mm512_srli_epi64(stream[g], 32);
  }
  std::uint32_t k0 = std::uint32_t(seed), k1 = std::uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
    for (int g = 0; g < G; ++g) {
      const __m512i p0 = _mm512_mul_epu32(c0[g], m0), p1 = _mm512_mul_epu32(c2[g], m1);
      c0[g] = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1[g]), key0);
      c1[g] = p1;
      c2[g] = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3[g]), key1);
      c3[g] = p0;
    }
  }
  for (int g = 0; g < G; ++g) {
    words[g][0] = c0[g];
    words[g][1] = c1[g];
    words[g][2] = c2[g];
    words[g][3] = c3[g];
  }
}

// Element q of a block as SrStream::bits draws it: for k <= 16 the high, then the low half of word
// q / 2; else word q. Returned as doubles (exact).
inline __m512d element_bits(const __m512i (&words)[4], int q, int k) {
  const __m512i low32 = _mm512_set1_epi64(0xffffffff);
  __m512i v;
  if (k <= 16) {
    const __m512i w = words[q >> 1];
    v = (q & 1) ? _mm512_and_si512(w, _mm512_set1_epi64(0xffff)) : _mm512_and_si512(_mm512_srli_epi64(w, 16), _mm512_set1_epi64(0xffff));
    v = _mm512_srli_epi64(v, unsigned(16 - k));
  } else {
    v = _mm512_srli_epi64(_mm512_and_si512(words[q], low32), unsigned(32 - k));
  }
  return _mm512_cvtepu64_pd(v);
}

// Rows r0 .. r0 + R - 1 of C times one panel of 16 columns (two registers per row), k ascending.
template <int R, bool Stochastic>
void tile(const Plan& p, const Lanes& l, const Gemm& g, std::int64_t r0, std::int64_t panel) {
  constexpr int Z = kPanel / 8;
  const float* bp = g.b + panel * g.k * kPanel;
  const std::int64_t j0 = panel * kPanel;
  __m512d acc[R][Z];
  for (int r = 0; r < R; ++r)
    for (int z = 0; z < Z; ++z) acc[r][z] = _mm512_setzero_pd();
  const int k_bits = p.sr_bits, per_block = k_bits <= 16 ? 8 : 4;  // SrStream::per_block
  __m512i streams[R * Z];
  if constexpr (Stochastic) {
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    for (int r = 0; r < R; ++r)
      for (int z = 0; z < Z; ++z)  // modulo 2^64, as SrStream's stream ids
        streams[r * Z + z] = _mm512_add_epi64(
            _mm512_set1_epi64(std::int64_t(g.stream + std::uint64_t(r0 + r) * g.row_stride + std::uint64_t(j0 + 8 * z))), lane);
  }
  __m512i words[R * Z][4];
  for (std::int64_t kk = 0; kk < g.k; ++kk) {
    if constexpr (Stochastic)
      if (kk % per_block == 0) philox<R * Z>(streams, std::uint64_t(kk / per_block), g.seed, words);
    __m512d y[Z];
    for (int z = 0; z < Z; ++z) y[z] = _mm512_cvtps_pd(_mm256_loadu_ps(bp + kk * kPanel + 8 * z));
    for (int r = 0; r < R; ++r) {
      const __m512d x = _mm512_set1_pd(double(g.a[(r0 + r) * g.a_row + kk * g.a_k]));
      for (int z = 0; z < Z; ++z) {
        __mmask8 scalar;
        const __m512d rnd = Stochastic ? element_bits(words[r * Z + z], int(kk % per_block), k_bits) : _mm512_setzero_pd();
        const __m512d next = step<Stochastic>(l, acc[r][z], x, y[z], rnd, scalar);
        acc[r][z] = Stochastic && scalar ? fix_lanes(p, scalar, next, acc[r][z], x, y[z], rnd) : next;
      }
    }
  }
  // to_f32 of each value: one nearest-even conversion, nan as quantize's quiet nan 0x7fc00000 (the
  // conversion of the positive double quiet nan without payload).
  const std::int64_t cols = g.n - j0 < kPanel ? g.n - j0 : kPanel;
  const __m512d quiet_nan = _mm512_castsi512_pd(_mm512_set1_epi64(0x7ff8000000000000));
  for (int r = 0; r < R; ++r)
    for (int z = 0; z < Z; ++z) {
      const std::int64_t left = cols - 8 * z;
      if (left <= 0) break;
      const __m512d v = _mm512_mask_mov_pd(acc[r][z], _mm512_cmp_pd_mask(acc[r][z], acc[r][z], _CMP_UNORD_Q), quiet_nan);
      const __mmask16 m = __mmask16(left >= 8 ? 0xff : (1u << left) - 1);
      _mm512_mask_storeu_ps(g.c + (r0 + r) * g.ldc + j0 + 8 * z, m, _mm512_castps256_ps512(_mm512_cvtpd_ps(v)));
    }
}

template <bool Stochastic>
void gemm_rows(const Plan& p, const Gemm& g) {
  const Lanes l(p);
  constexpr int kRows = 4;  // 4 rows x 2 registers: eight independent chains hide the step's latency
  const std::int64_t panels = (g.n + kPanel - 1) / kPanel;
  for (std::int64_t q = 0; q < panels; ++q) {
    std::int64_t r0 = 0;
    for (; r0 + kRows <= g.rows; r0 += kRows) tile<kRows, Stochastic>(p, l, g, r0, q);
    switch (g.rows - r0) {
      case 3: tile<3, Stochastic>(p, l, g, r0, q); break;
      case 2: tile<2, Stochastic>(p, l, g, r0, q); break;
      case 1: tile<1, Stochastic>(p, l, g, r0, q); break;
      default: break;
    }
  }
}

}  // namespace

void step_avx512(const Plan& p, double* acc, const float* x, const float* y, const std::uint32_t* random,
                 std::size_t n) {
  if (p.stochastic) step_loop<true>(p, acc, x, y, random, n);
  else step_loop<false>(p, acc, x, y, random, n);
}

void gemm_avx512(const Plan& p, const Gemm& g) {
  if (p.stochastic) gemm_rows<true>(p, g);
  else gemm_rows<false>(p, g);
}

}  // namespace bitsim::arith::float_mac
