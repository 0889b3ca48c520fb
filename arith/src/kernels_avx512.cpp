// AVX-512 fp32 array quantizer and Philox4x32-10 generator: the same results as the portable loop
// in kernels.cpp (tests hold them equal), reached with fewer operations per element. Compiled for
// AVX-512 F/DQ/BW only; called only after a run-time CPU check. Uses no inline library code, so no
// AVX-512 code leaks elsewhere.
#pragma GCC target("avx512f,avx512dq,avx512bw")
// GCC 12 reports the _mm512_undefined_*() pass-through operand of the unmasked intrinsics as "(may
// be) used uninitialized" once they are inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "bitsim/arith/stochastic.hpp"

#include "kernels_avx512.hpp"

namespace bitsim::arith::avx512 {
namespace {

using avx2::FixedPlan;
using avx2::FloatPlan;

constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
constexpr int kTruncate = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;

inline __m512i bits(__m512 v) { return _mm512_castps_si512(v); }
inline __m512 as_float(__m512i v) { return _mm512_castsi512_ps(v); }
inline __m512 pow2(int e) { return as_float(_mm512_set1_epi32((e + 127) << 23)); }  // e in [-126, 127]
// The loops' lanes are lambdas that hold their constants by value and are always inlined, so the
// constants stay in registers across the stores (measured: either alone left some loops slower).
#define BITSIM_INLINE __attribute__((always_inline))

template <int Op>
inline __mmask16 cmp(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, Op); }
inline bool same_bits(float a, float b) { return __builtin_bit_cast(std::uint32_t, a) == __builtin_bit_cast(std::uint32_t, b); }

// Eight Philox blocks per vector, one per 64-bit lane whose low half holds the 32-bit word:
// vpmuludq then gives the whole 64-bit product of a round, and the garbage the upper halves
// collect never reaches a result (vpmuludq reads only low halves; the stores take only them).
struct Lanes8 {
  __m512i c0, c1, c2, c3;
};

inline void philox_round(Lanes8& s, __m512i m0, __m512i m1, __m512i k0, __m512i k1) {
  const __m512i p0 = _mm512_mul_epu32(s.c0, m0), p1 = _mm512_mul_epu32(s.c2, m1);
  s.c0 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), s.c1, k0, 0x96);  // three-way xor
  s.c2 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), s.c3, k1, 0x96);
  s.c1 = p1;
  s.c3 = p0;
}

// Writes the k-bit numbers of the eight blocks in element order (SrStream::bits); returns how many.
// Sets v[0..3] (k <= 16; v[0..1] for k > 16) to the values in element order and returns how many.
inline std::size_t block_values(const Lanes8& s, int k, __m512i (&v)[4]) {
  const __m512i pair = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
  const __m512i c01 = _mm512_permutex2var_epi32(s.c0, pair, s.c1), c23 = _mm512_permutex2var_epi32(s.c2, pair, s.c3);
  const __m512i words[2] = {_mm512_permutex2var_epi64(c01, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), c23),
                            _mm512_permutex2var_epi64(c01, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), c23)};
  if (k > 16) {
    const __m512i shift = _mm512_set1_epi32(32 - k);
    for (int i = 0; i < 2; ++i) v[i] = _mm512_srlv_epi32(words[i], shift);
    return 32;
  }
  // Each word serves two elements, high half first: rotating by 16 puts the high half in the
  // lower address, and zero-extending the sixteen 16-bit halves gives the elements in order.
  const __m512i shift = _mm512_set1_epi32(16 - k);
  for (int i = 0; i < 2; ++i) {
    const __m512i w = _mm512_rol_epi32(words[i], 16);
    v[2 * i] = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(w));
    v[2 * i + 1] = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(w, 1));
    if (k != 16) {
      v[2 * i] = _mm512_srlv_epi32(v[2 * i], shift);
      v[2 * i + 1] = _mm512_srlv_epi32(v[2 * i + 1], shift);
    }
  }
  return 64;
}

inline std::size_t store_values(const Lanes8& s, int k, std::uint32_t* out) {
  __m512i v[4];
  const std::size_t count = block_values(s, k, v);
  for (std::size_t i = 0; i < count / 16; ++i) _mm512_storeu_si512(out + 16 * i, v[i]);
  return count;
}

// The key schedule and counter words of one stream in registers: generate() gives the random
// numbers of eight consecutive blocks.
struct Philox8 {
  __m512i k0[10], k1[10], s_lo, s_hi;
  Philox8(std::uint64_t seed, std::uint64_t stream)
      : s_lo(_mm512_set1_epi64(std::uint32_t(stream))), s_hi(_mm512_set1_epi64(stream >> 32)) {
    for (int i = 0; i < 10; ++i) {  // round i uses seed + i (W0, W1), per 32-bit half
      k0[i] = _mm512_set1_epi32(int(std::uint32_t(seed) + std::uint32_t(i) * 0x9E3779B9u));
      k1[i] = _mm512_set1_epi32(int(std::uint32_t(seed >> 32) + std::uint32_t(i) * 0xBB67AE85u));
    }
  }
  Lanes8 start(std::uint64_t first_block) const {
    const __m512i index = _mm512_add_epi64(_mm512_set1_epi64(std::int64_t(first_block)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    return {index, _mm512_srli_epi64(index, 32), s_lo, s_hi};
  }
  void rounds(Lanes8& g) const {
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
    for (int round = 0; round < 10; ++round) philox_round(g, m0, m1, k0[round], k1[round]);
  }
};

// dst[j] = lane(src[j], rnd[j]) for j < n, sixteen lanes at a time; a partial vector at either end
// is masked (lanes past n read as zero and are not stored). `rnd` is read only when Random.
// p.stream: whole 64-byte lines of dst are written with streaming stores, which skip the read for
// ownership of lines that a large output overwrites anyway (the caller fences, end_streaming()).
// p.fused (Random only): the random numbers are drawn here, eight Philox blocks at a time, each
// group just before the elements that take it, so that the generator's arithmetic overlaps the
// loads and stores of the elements around it instead of running as a phase of its own.
template <bool Random, class Plan, class Lane>
inline void for_each_lane(const Plan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n,
                          Lane lane) {
  if constexpr (Random) {
    if (p.wide.fused) {
      const Philox8 gen(p.wide.seed, p.wide.sr_stream);
      const int k = p.sr_bits;
      const std::size_t group = k <= 16 ? 64 : 32;  // elements per eight blocks
      std::uint64_t block = p.wide.first_index / (group / 8);  // first_index is a multiple of per_block(k)
      std::size_t j = 0;
      for (; j < n; j += group, block += 8) {
        Lanes8 g = gen.start(block);  // eight blocks serve `group` elements
        gen.rounds(g);
        __m512i r[4];
        block_values(g, k, r);
        const std::size_t count = n - j < group ? n - j : group;
        std::size_t v = 0;
        for (; v + 16 <= count; v += 16) _mm512_storeu_ps(dst + j + v, lane(_mm512_loadu_ps(src + j + v), r[v / 16]));
        if (v < count) {
          const __mmask16 m = __mmask16((1u << (count - v)) - 1);
          _mm512_mask_storeu_ps(dst + j + v, m, lane(_mm512_maskz_loadu_ps(m, src + j + v), r[v / 16]));
        }
      }
      return;
    }
  }
  const auto masked = [&](std::size_t j, std::size_t count) {
    const __mmask16 m = __mmask16((1u << count) - 1);
    const __m512i r = Random ? _mm512_maskz_loadu_epi32(m, rnd + j) : _mm512_setzero_si512();
    _mm512_mask_storeu_ps(dst + j, m, lane(_mm512_maskz_loadu_ps(m, src + j), r));
  };
  std::size_t j = 0;
  if (p.wide.stream) {
    const std::size_t head = ((64 - (reinterpret_cast<std::uintptr_t>(dst) & 63)) & 63) / sizeof(float);
    if (head >= n) return masked(0, n);
    if (head > 0) masked(0, head);
    for (j = head; j + 16 <= n; j += 16) {
      const __m512i r = Random ? _mm512_loadu_si512(rnd + j) : _mm512_setzero_si512();
      _mm512_stream_ps(dst + j, lane(_mm512_loadu_ps(src + j), r));
    }
  } else {
    for (; j + 16 <= n; j += 16) {
      const __m512i r = Random ? _mm512_loadu_si512(rnd + j) : _mm512_setzero_si512();
      _mm512_storeu_ps(dst + j, lane(_mm512_loadu_ps(src + j), r));
    }
  }
  if (j < n) masked(j, n - j);
}

// Stochastic rounding of a value t + f (t on the grid, 0 <= f < q, both exact fp32) steps up by q
// when floor(f 2^k / q) + r >= 2^k, as round_up_magnitude() decides. r is an integer, so that is
// f >= (2^k - r) q 2^-k, where the right side is exact: (2^k - r) has at most 24 bits (k <= 24)
// and q 2^-k is a power of two at or above 2^-149 (serves_float, FixedPlan's fl <= 126).
inline __mmask16 stochastic_up(__m512 f, __m512i r, __m512i two_k, __m512 q_2_minus_k) {
  return cmp<_CMP_GE_OQ>(f, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(two_k, r)), q_2_minus_k));
}

// Fixed point: y = x 2^fl (exact after the clamp to +-2^(wl - fl), as in the AVX2 loop) rounded to
// an integer on the signed value. Nearest-even, toward zero, down and up are vrndscaleps modes.
// Stochastic rounding of a two's complement code adds r below the LSB and truncates toward -inf:
// with Y = floor(y 2^k) as an int32 (exact: |y| 2^k <= 2^(wl + k) <= 2^30, as serves_fixed()
// requires), the code is (Y + r) >> k, arithmetic. For y = -(t + f) that is
// -t - [r < ceil(f 2^k)], the magnitude rule of round_up_magnitude(); for y = t + f,
// t + [floor(f 2^k) + r >= 2^k].
template <Rounding R, Overflow O>
void fixed_loop(const FixedPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const __m512 clamp = _mm512_set1_ps(p.clamp), nclamp = _mm512_set1_ps(-p.clamp);
  const __m512 scale = _mm512_set1_ps(p.scale), inv_scale = _mm512_set1_ps(p.inv_scale);
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi), sym_lo = _mm512_set1_ps(p.sym_lo);
  const __m512 zero = _mm512_setzero_ps(), two_k_f = _mm512_set1_ps(p.two_k);
  const __m128i k = _mm_cvtsi32_si128(__builtin_ctz(unsigned(p.two_k)));
  for_each_lane<R == Rounding::Stochastic>(p, src, dst, rnd, n, [=](__m512 x, __m512i r) BITSIM_INLINE {
    const __mmask16 number = cmp<_CMP_ORD_Q>(x, x);  // nan has no fixed-point code: 0
    const __m512 y = _mm512_mul_ps(_mm512_min_ps(_mm512_max_ps(x, nclamp), clamp), scale);
    __m512 v;
    if constexpr (R == Rounding::NearestEven) v = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if constexpr (R == Rounding::TowardZero) v = _mm512_roundscale_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    if constexpr (R == Rounding::Down) v = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    if constexpr (R == Rounding::Up) v = _mm512_roundscale_ps(y, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    if constexpr (R == Rounding::Stochastic) {
      const __m512i code = _mm512_cvt_roundps_epi32(_mm512_mul_ps(y, two_k_f), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      v = _mm512_cvtepi32_ps(_mm512_sra_epi32(_mm512_add_epi32(code, r), k));
    }
    __m512 q;
    if constexpr (O == Overflow::SaturateZero) {
      const __mmask16 in_range = cmp<_CMP_GE_OQ>(v, lo) & cmp<_CMP_LE_OQ>(v, hi);
      q = _mm512_maskz_mov_ps(in_range, v);
    } else if constexpr (O == Overflow::SaturateSymmetric) {
      q = _mm512_min_ps(_mm512_max_ps(v, sym_lo), hi);
    } else {
      q = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    }
    return _mm512_maskz_mov_ps(number, _mm512_add_ps(_mm512_mul_ps(q, inv_scale), zero));  // + 0: -0 becomes +0
  });
}

// Floats by the magic number C = 2^(e + 23 - m), e = the binade of |x| clamped to [emin, emax + 1]:
// |x| < 2^(e + 1) <= C 2^(m - 22), so |x| + C lies in C's binade, whose ulp is the quantum
// q = 2^(e - m) of |x| in the target; the addition, rounded to nearest-even (or toward zero) by
// its embedded rounding mode, rounds |x| onto the target's grid, and subtracting C is exact. Above
// emax + 1 the quantum stays that of emax + 1 and every result still exceeds the largest value.
// The other roundings start from the truncation t and its exact remainder |x| - t, as
// round_up_magnitude() does; t's last grid bit is odd when truncating at 2q gives another value.
// Stochastic rounding is the adder of round_up_magnitude() on the integer floor(|x| 2^k / q),
// which either form below holds exactly; adding r and dropping the k bits below q rounds.
//  - SrForm::Magic (m + k <= 22): truncation at q 2^-k by the magic number C 2^-k (still above
//    2|x|) leaves that integer in the significand field of |x| + C 2^-k, and the field cannot
//    carry out (|x| 2^k / q + r < 2^(m + 1 + k) + 2^k <= 2^23).
//  - SrForm::Scaled (m + k <= 30, every 2^(e - m) and 2^(m + k - e) normal): |x| 2^(m + k - e),
//    exact, converted to int32 by truncation; at or above 2^31 (huge |x|, infinities) the
//    conversion gives 2^31, whose rounded result 2^(31 - k) q still overflows (m + k <= 30).
//  - SrForm::Compare (otherwise): stochastic_up() on t and the exact remainder.
// Specials: how overflow and infinite inputs find their results. Negated: a signed format whose
// negative results are the positive ones negated, chosen on the magnitude before the sign is
// applied. Folded: infinities give the overflow results, and an infinite |x| rounds to infinity,
// which overflows. AllNan: overflow and infinities give the nan result (fp8 e4m3 under IEEE
// overflow), one select with nan inputs. General: every case on its own.
enum class Specials { General, Negated, Folded, AllNan };
enum class SrForm { Compare, Magic, Scaled };

template <Rounding R, bool Ftz, bool Signed, Specials Sp, SrForm Sr>
void float_loop(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), exp_mask = _mm512_set1_epi32(0x7f800000);
  const __m512i sign_mask = _mm512_set1_epi32(int(0x80000000u));
  const int k = p.sr_bits <= 24 ? p.sr_bits : 0;
  const __m512i e_lo = _mm512_set1_epi32((p.emin + 127) << 23), e_hi = _mm512_set1_epi32((p.emax + 1 + 127) << 23);
  const __m512i to_magic = _mm512_set1_epi32((23 - p.m - (Sr == SrForm::Magic ? k : 0)) << 23);
  const __m512i to_up = _mm512_set1_epi32((254 + p.m + k) << 23), to_down = _mm512_set1_epi32(p.m << 23);
  const __m128i k_shift = _mm_cvtsi32_si128(k);
  const __m512i below_q = _mm512_set1_epi32(~int((1u << k) - 1));
  const __m512 ulp = pow2(-23), half_ulp = pow2(-24), zero = _mm512_setzero_ps();
  const __m512 max_value = _mm512_set1_ps(p.max_value), min_normal = _mm512_set1_ps(p.min_normal);
  const __m512 ov_pos = _mm512_set1_ps(p.overflow_pos), ov_neg = _mm512_set1_ps(p.overflow_neg);
  const __m512 inf_pos = _mm512_set1_ps(p.inf_pos), inf_neg = _mm512_set1_ps(p.inf_neg);
  const __m512 nan_result = _mm512_set1_ps(p.nan_result);
  const bool inf_is_overflow = same_bits(p.inf_pos, p.overflow_pos);
  const __m512i two_k = _mm512_set1_epi32(1 << k);
  const __m512 ulp_2_minus_k = pow2(-23 - k);
  for_each_lane<R == Rounding::Stochastic>(p, src, dst, rnd, n, [=](__m512 x, __m512i r) BITSIM_INLINE {
    const __m512i xb = bits(x), ab = _mm512_and_si512(xb, abs_mask);
    const __m512 a = as_float(ab);
    const __m512i e = _mm512_min_epi32(_mm512_max_epi32(_mm512_and_si512(ab, exp_mask), e_lo), e_hi);
    const __m512 c = as_float(_mm512_add_epi32(e, to_magic));
    const __mmask16 neg = _mm512_movepi32_mask(xb);
    __m512 v;
    if constexpr (R == Rounding::NearestEven) {
      v = _mm512_sub_ps(_mm512_add_round_ps(a, c, kNearest), c);
    } else if constexpr (R == Rounding::Stochastic && Sr == SrForm::Magic) {
      const __m512i sum = _mm512_add_epi32(bits(_mm512_add_round_ps(a, c, kTruncate)), r);
      v = _mm512_sub_ps(as_float(_mm512_and_si512(sum, below_q)), c);
    } else if constexpr (R == Rounding::Stochastic && Sr == SrForm::Scaled) {
      const __m512i scaled = _mm512_cvttps_epi32(_mm512_mul_ps(a, as_float(_mm512_sub_epi32(to_up, e))));
      const __m512 grid = _mm512_cvtepi32_ps(_mm512_srl_epi32(_mm512_add_epi32(scaled, r), k_shift));
      v = _mm512_mul_ps(grid, as_float(_mm512_sub_epi32(e, to_down)));
    } else {
      const __m512 t = _mm512_sub_ps(_mm512_add_round_ps(a, c, kTruncate), c);
      const __m512 f = _mm512_sub_ps(a, t), q = _mm512_mul_ps(c, ulp);
      __mmask16 inc = 0;
      if constexpr (R == Rounding::Stochastic) {
        inc = stochastic_up(f, r, two_k, _mm512_mul_ps(c, ulp_2_minus_k));
      } else if constexpr (R != Rounding::TowardZero) {
        const __m512 h = _mm512_mul_ps(c, half_ulp);
        const __mmask16 gt_half = cmp<_CMP_GT_OQ>(f, h), tie = cmp<_CMP_EQ_OQ>(f, h), nonzero = cmp<_CMP_GT_OQ>(f, zero);
        const __m512 c2 = _mm512_add_ps(c, c);
        const __mmask16 odd = cmp<_CMP_NEQ_OQ>(t, _mm512_sub_ps(_mm512_add_round_ps(a, c2, kTruncate), c2));
        if constexpr (R == Rounding::NearestAway) inc = gt_half | tie;
        if constexpr (R == Rounding::NearestZero) inc = gt_half;
        if constexpr (R == Rounding::NearestUp) inc = gt_half | (tie & __mmask16(~neg));
        if constexpr (R == Rounding::NearestDown) inc = gt_half | (tie & neg);
        if constexpr (R == Rounding::Down) inc = nonzero & neg;
        if constexpr (R == Rounding::Up) inc = nonzero & __mmask16(~neg);
        if constexpr (R == Rounding::Odd) inc = nonzero & __mmask16(~odd);
      }
      v = _mm512_mask_add_ps(t, inc, t, q);
    }
    if constexpr (Ftz) v = _mm512_maskz_mov_ps(cmp<_CMP_GE_OQ>(v, min_normal), v);
    // Then the portable loop's order: overflow, infinities, negatives of unsigned formats, nan.
    const __mmask16 over = cmp<_CMP_GT_OQ>(v, max_value);
    __m512 res;
    if constexpr (Sp == Specials::AllNan) {
      res = as_float(_mm512_ternarylogic_epi32(bits(v), xb, sign_mask, 0xF8));  // v | (x & sign)
      return _mm512_mask_mov_ps(res, over | _mm512_cmpgt_epi32_mask(ab, exp_mask), nan_result);
    } else if constexpr (Sp == Specials::Negated) {
      res = _mm512_mask_mov_ps(v, over, ov_pos);
      if (!inf_is_overflow) res = _mm512_mask_mov_ps(res, _mm512_cmpeq_epi32_mask(ab, exp_mask), inf_pos);
      res = as_float(_mm512_ternarylogic_epi32(bits(res), xb, sign_mask, 0xF8));  // res | (x & sign)
    } else {
      res = Signed ? as_float(_mm512_ternarylogic_epi32(bits(v), xb, sign_mask, 0xF8)) : v;
      res = _mm512_mask_mov_ps(res, over, _mm512_mask_blend_ps(neg, ov_pos, ov_neg));
      if constexpr (Sp == Specials::General)
        res = _mm512_mask_mov_ps(res, _mm512_cmpeq_epi32_mask(ab, exp_mask), _mm512_mask_blend_ps(neg, inf_pos, inf_neg));
      if constexpr (!Signed)
        res = _mm512_mask_mov_ps(as_float(_mm512_and_si512(bits(res), abs_mask)), cmp<_CMP_LT_OQ>(x, zero), nan_result);
    }
    return _mm512_mask_mov_ps(res, _mm512_cmpgt_epi32_mask(ab, exp_mask), nan_result);
  });
}

// Formats with fp32's exponent range (bf16, tf32): integer rounding of the fp32 pattern at bit
// s = 23 - m, as the AVX2 same_range_loop; nearest-even adds 2^(s-1) - 1 plus the kept LSB.
template <Rounding R, bool Ftz>
void same_range_loop(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
  const int s = 23 - p.m, k = p.sr_bits;
  const __m512i shift = _mm512_set1_epi32(s);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), sign_mask = _mm512_set1_epi32(int(0x80000000u));
  const __m512i frac_mask = _mm512_set1_epi32(int((1u << s) - 1));
  const __m512i half = _mm512_set1_epi32(int(s ? 1u << (s - 1) : 1)), half_minus_1 = _mm512_set1_epi32(s ? int(1u << (s - 1)) - 1 : 0);
  const __m512i inf_bits = _mm512_set1_epi32(0x7f800000), min_normal = _mm512_set1_epi32(0x00800000);
  const __m512i one = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
  const __m512i two_k_minus_1 = _mm512_set1_epi32(k < 31 ? int((1u << k) - 1) : 0);
  const __m512i sr_down = _mm512_set1_epi32(k <= s ? s - k : 0), sr_up = _mm512_set1_epi32(k > s ? k - s : 0);
  const __m512i ov_pos = bits(_mm512_set1_ps(p.overflow_pos)), ov_neg = bits(_mm512_set1_ps(p.overflow_neg));
  const __m512i inf_pos = bits(_mm512_set1_ps(p.inf_pos)), inf_neg = bits(_mm512_set1_ps(p.inf_neg));
  const __m512i nan_result = bits(_mm512_set1_ps(p.nan_result));
  for_each_lane<R == Rounding::Stochastic>(p, src, dst, rnd, n, [=](__m512 x, __m512i r) BITSIM_INLINE {
    const __m512i b = bits(x), u = _mm512_and_si512(b, abs_mask);
    const __mmask16 neg = _mm512_movepi32_mask(b);
    const __m512i t = _mm512_srlv_epi32(u, shift);
    __m512i res;
    if constexpr (R == Rounding::NearestEven) {
      const __m512i lsb = _mm512_and_si512(t, one);
      res = _mm512_srlv_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half_minus_1, lsb)), shift);
      if (s == 0) res = u;
    } else {
      const __m512i f = _mm512_and_si512(u, frac_mask);
      const __mmask16 odd = _mm512_test_epi32_mask(t, one);
      const __mmask16 gt_half = _mm512_cmpgt_epi32_mask(f, half), tie = _mm512_cmpeq_epi32_mask(f, half);
      const __mmask16 nonzero = _mm512_cmpgt_epi32_mask(f, zero);
      __mmask16 inc = 0;
      if constexpr (R == Rounding::NearestAway) inc = gt_half | tie;
      if constexpr (R == Rounding::NearestZero) inc = gt_half;
      if constexpr (R == Rounding::NearestUp) inc = gt_half | (tie & __mmask16(~neg));
      if constexpr (R == Rounding::NearestDown) inc = gt_half | (tie & neg);
      if constexpr (R == Rounding::Down) inc = nonzero & neg;
      if constexpr (R == Rounding::Up) inc = nonzero & __mmask16(~neg);
      if constexpr (R == Rounding::Odd) inc = nonzero & __mmask16(~odd);
      if constexpr (R == Rounding::Stochastic) {
        // The k fraction bits the adder sees (all s bits, shifted up, when k > s), plus r.
        const __m512i d = _mm512_sllv_epi32(_mm512_srlv_epi32(f, sr_down), sr_up);
        inc = _mm512_cmpgt_epi32_mask(_mm512_add_epi32(d, r), two_k_minus_1);
      }
      res = _mm512_mask_add_epi32(t, inc, t, one);
    }
    res = _mm512_sllv_epi32(res, shift);
    if constexpr (Ftz) res = _mm512_maskz_mov_epi32(_mm512_cmpge_epi32_mask(res, min_normal), res);
    res = _mm512_mask_blend_epi32(_mm512_cmpge_epi32_mask(res, inf_bits), _mm512_or_si512(res, _mm512_and_si512(b, sign_mask)),
                                  _mm512_mask_blend_epi32(neg, ov_pos, ov_neg));
    res = _mm512_mask_mov_epi32(res, _mm512_cmpeq_epi32_mask(u, inf_bits), _mm512_mask_blend_epi32(neg, inf_pos, inf_neg));
    return as_float(_mm512_mask_mov_epi32(res, _mm512_cmpgt_epi32_mask(u, inf_bits), nan_result));
  });
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
    if constexpr (R == Rounding::NearestEven || R == Rounding::TowardZero || R == Rounding::Down ||
                  R == Rounding::Up || R == Rounding::Stochastic) {
      switch (o) {
        case Overflow::SaturateZero: return fixed_loop<R, Overflow::SaturateZero>(p, src, dst, rnd, n);
        case Overflow::SaturateSymmetric: return fixed_loop<R, Overflow::SaturateSymmetric>(p, src, dst, rnd, n);
        default: return fixed_loop<R, Overflow::Saturate>(p, src, dst, rnd, n);
      }
    }
  }
};

template <Rounding R>
struct FloatRun {
  template <bool Ftz, bool Signed, Specials Sp>
  static void run3(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
    if constexpr (R == Rounding::Stochastic) {
      const int m = p.m, k = p.sr_bits;
      if (m + k <= 22) return float_loop<R, Ftz, Signed, Sp, SrForm::Magic>(p, src, dst, rnd, n);
      if (m + k <= 30 && p.emin - m >= -126 && m + k - p.emin <= 127)
        return float_loop<R, Ftz, Signed, Sp, SrForm::Scaled>(p, src, dst, rnd, n);
    }
    return float_loop<R, Ftz, Signed, Sp, SrForm::Compare>(p, src, dst, rnd, n);
  }
  template <bool Ftz>
  static void run2(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
    if (!p.is_signed) return run3<Ftz, false, Specials::General>(p, src, dst, rnd, n);
    const auto negated = [](float a, float b) { return same_bits(a, -b); };
    if (negated(p.overflow_pos, p.overflow_neg) && negated(p.inf_pos, p.inf_neg))
      return run3<Ftz, true, Specials::Negated>(p, src, dst, rnd, n);
    if (same_bits(p.inf_pos, p.overflow_pos) && same_bits(p.inf_neg, p.overflow_neg)) {
      if (same_bits(p.overflow_pos, p.nan_result) && same_bits(p.overflow_neg, p.nan_result))
        return run3<Ftz, true, Specials::AllNan>(p, src, dst, rnd, n);
      return run3<Ftz, true, Specials::Folded>(p, src, dst, rnd, n);
    }
    return run3<Ftz, true, Specials::General>(p, src, dst, rnd, n);
  }
  static void run(const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd, std::size_t n) {
    if (p.same_range)
      return p.ftz ? same_range_loop<R, true>(p, src, dst, rnd, n) : same_range_loop<R, false>(p, src, dst, rnd, n);
    return p.ftz ? run2<true>(p, src, dst, rnd, n) : run2<false>(p, src, dst, rnd, n);
  }
};

}  // namespace

bool available() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw");
  return yes;
}

void quantize_fixed(Rounding r, Overflow o, const FixedPlan& p, const float* src, float* dst,
                    const std::uint32_t* rnd, std::size_t n) {
  dispatch<FixedRun>(r, o, p, src, dst, rnd, n);
}

void quantize_float(Rounding r, const FloatPlan& p, const float* src, float* dst, const std::uint32_t* rnd,
                    std::size_t n) {
  dispatch<FloatRun>(r, p, src, dst, rnd, n);
}

void end_streaming() { _mm_sfence(); }

void philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block, std::size_t blocks, int k,
                 std::uint32_t* out) {
  const Philox8 gen(seed, stream);
  // Four groups of eight blocks per iteration: the ten rounds are a dependency chain of
  // multiplies, and four independent chains keep the multipliers busy.
  constexpr int kGroups = 4;
  std::size_t j = 0;
  for (; j + 8 * kGroups <= blocks; j += 8 * kGroups) {
    Lanes8 g[kGroups];
    for (int i = 0; i < kGroups; ++i) g[i] = gen.start(first_block + j + 8 * i);
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
    for (int round = 0; round < 10; ++round)
      for (int i = 0; i < kGroups; ++i) philox_round(g[i], m0, m1, gen.k0[round], gen.k1[round]);
    for (int i = 0; i < kGroups; ++i) out += store_values(g[i], k, out);
  }
  for (; j < blocks; ++j) {  // tail: one block at a time
    out += SrStream{seed, stream}.block_bits(first_block + j, k, out);
  }
}

}  // namespace bitsim::arith::avx512
