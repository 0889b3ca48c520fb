// AVX-512 VNNI tiles of the int8 GEMM: vpdpbusd sums four u8 x s8 products into each int32 lane.
// Compiled for AVX-512F and VNNI only; called only after a run-time CPU check. Uses no inline
// library code, so no AVX-512 code leaks elsewhere.
#pragma GCC target("avx512f,avx512vnni")
#include <immintrin.h>

#include "gemm_int8_simd.hpp"

namespace bitsim::arith::int8 {
namespace {

// rows x nz panels of 16 columns, in rows * nz zmm accumulators.
template <int Rows, int Nz>
void tile(const Tile& t) {
  const auto* pa = static_cast<const std::uint8_t*>(t.a);
  const auto* pb = static_cast<const std::uint8_t*>(t.b);
  __m512i acc[Rows][Nz];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z) acc[r][z] = _mm512_setzero_si512();
  for (std::int64_t g = 0; g < t.groups; ++g) {
    __m512i b[Nz];
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z) b[z] = _mm512_load_si512(pb + z * t.panel_stride + g * 64);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      std::int32_t word;
      __builtin_memcpy(&word, pa + (g * Rows + r) * 4, 4);
      const __m512i a = _mm512_set1_epi32(word);  // vpbroadcastd: row r's four codes in every lane
#pragma GCC unroll 4
      for (int z = 0; z < Nz; ++z) acc[r][z] = _mm512_dpbusd_epi32(acc[r][z], a, b[z]);  // vpdpbusd, wraps
    }
  }
  const int last = t.cols - 16 * (Nz - 1);  // 1..16 columns of the last panel
  const __mmask16 last_mask = __mmask16((1u << last) - 1);
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z) {
      const __mmask16 k = z == Nz - 1 ? last_mask : __mmask16(0xffff);
      std::int32_t* c = t.c + r * t.ldc + 16 * z;
      __m512i v = acc[r][z];
      if (t.row_add) v = _mm512_add_epi32(v, _mm512_set1_epi32(t.row_add[r]));
      if (t.col_add) v = _mm512_add_epi32(v, _mm512_loadu_si512(t.col_add + 16 * z));
      if (t.accumulate) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(k, c));
      _mm512_mask_storeu_epi32(c, k, v);
    }
}

template <int Rows>
void tile_rows(const Tile& t, int nz) {
  switch (nz) {
    case 1: return tile<Rows, 1>(t);
    case 2: return tile<Rows, 2>(t);
    default: return tile<Rows, 3>(t);
  }
}

static_assert(kVnniMr == 8 && kVnniNz == 3, "the switches list every tile shape");

}  // namespace

void tile_avx512_vnni(const Tile& t) {
  const int nz = (t.cols + 15) / 16;
  switch (t.rows) {
    case 1: return tile_rows<1>(t, nz);
    case 2: return tile_rows<2>(t, nz);
    case 3: return tile_rows<3>(t, nz);
    case 4: return tile_rows<4>(t, nz);
    case 5: return tile_rows<5>(t, nz);
    case 6: return tile_rows<6>(t, nz);
    case 7: return tile_rows<7>(t, nz);
    default: return tile_rows<8>(t, nz);
  }
}

// Four rows of 16 codes become 16 columns of four: a 4 x 16 byte transpose in two rounds of
// vpunpck{l,h}bw and vpunpck{l,h}wd.
void pack_panel_avx512_vnni(const std::uint8_t* src, std::int64_t ld, std::int64_t groups, std::uint8_t flip,
                            std::uint8_t* out) {
  const __m128i f = _mm_set1_epi8(char(flip));
  for (std::int64_t g = 0; g < groups; ++g, src += 4 * ld, out += 64) {
    const __m128i r0 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)), f);
    const __m128i r1 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + ld)), f);
    const __m128i r2 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * ld)), f);
    const __m128i r3 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * ld)), f);
    const __m128i lo01 = _mm_unpacklo_epi8(r0, r1), hi01 = _mm_unpackhi_epi8(r0, r1);  // columns 0-7, 8-15
    const __m128i lo23 = _mm_unpacklo_epi8(r2, r3), hi23 = _mm_unpackhi_epi8(r2, r3);
    __m128i* o = reinterpret_cast<__m128i*>(out);
    _mm_store_si128(o, _mm_unpacklo_epi16(lo01, lo23));  // columns 0-3, four rows each
    _mm_store_si128(o + 1, _mm_unpackhi_epi16(lo01, lo23));
    _mm_store_si128(o + 2, _mm_unpacklo_epi16(hi01, hi23));
    _mm_store_si128(o + 3, _mm_unpackhi_epi16(hi01, hi23));
  }
}

// vpdpbusd with unsigned ones: each lane adds its column's four signed codes.
void column_sums_avx512_vnni(const std::uint8_t* panel, std::int64_t groups, std::uint32_t* out) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  for (std::int64_t g = 0; g < groups; ++g) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_load_si512(panel + g * 64));
  _mm512_storeu_si512(out, sum);
}

}  // namespace bitsim::arith::int8
