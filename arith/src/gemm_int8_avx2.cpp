// AVX2 tiles of the int8 GEMM on codes widened to int16: vpmaddwd sums two 16 x 16-bit products
// into each int32 lane. Not vpmaddubsw: with 8-bit operands its int16 pair sums saturate
// (255 * 127 * 2 > 2^15), while vpmaddwd's are exact (|code| <= 255, so each pair sum < 2^17).
// Compiled for AVX2 only; called only after a run-time CPU check. Uses no inline library code.
#pragma GCC target("avx2")
#include <immintrin.h>

#include "gemm_int8_simd.hpp"

namespace bitsim::arith::int8 {
namespace {

// rows x nz panels of 8 columns, in rows * nz ymm accumulators.
template <int Rows, int Nz>
void tile(const Tile& t) {
  const auto* pa = static_cast<const std::uint8_t*>(t.a);
  const auto* pb = static_cast<const std::uint8_t*>(t.b);
  __m256i acc[Rows][Nz];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z) acc[r][z] = _mm256_setzero_si256();
  for (std::int64_t g = 0; g < t.groups; ++g) {
    __m256i b[Nz];
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z)
      b[z] = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + z * t.panel_stride + g * 32));
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      std::int32_t word;
      __builtin_memcpy(&word, pa + (g * Rows + r) * 4, 4);
      const __m256i a = _mm256_set1_epi32(word);  // vpbroadcastd: row r's two int16 codes in every lane
#pragma GCC unroll 4
      for (int z = 0; z < Nz; ++z) acc[r][z] = _mm256_add_epi32(acc[r][z], _mm256_madd_epi16(a, b[z]));  // vpmaddwd, vpaddd (wraps)
    }
  }
  const int last = t.cols - 8 * (Nz - 1);  // 1..8 columns of the last panel
  const __m256i all = _mm256_set1_epi32(-1);
  const __m256i last_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Nz; ++z) {
      const __m256i k = z == Nz - 1 ? last_mask : all;
      int* c = reinterpret_cast<int*>(t.c + r * t.ldc + 8 * z);
      __m256i v = acc[r][z];
      if (t.row_add) v = _mm256_add_epi32(v, _mm256_set1_epi32(t.row_add[r]));
      if (t.col_add) v = _mm256_add_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.col_add + 8 * z)));
      if (t.accumulate) v = _mm256_add_epi32(v, _mm256_maskload_epi32(c, k));  // vpmaskmovd
      _mm256_maskstore_epi32(c, k, v);
    }
}

template <int Rows>
void tile_rows(const Tile& t, int nz) {
  if (nz == 1) return tile<Rows, 1>(t);
  tile<Rows, 2>(t);
}

static_assert(kAvx2Mr == 6 && kAvx2Nz == 2, "the switches list every tile shape");

}  // namespace

void tile_avx2(const Tile& t) {
  const int nz = (t.cols + 7) / 8;
  switch (t.rows) {
    case 1: return tile_rows<1>(t, nz);
    case 2: return tile_rows<2>(t, nz);
    case 3: return tile_rows<3>(t, nz);
    case 4: return tile_rows<4>(t, nz);
    case 5: return tile_rows<5>(t, nz);
    default: return tile_rows<6>(t, nz);
  }
}

}  // namespace bitsim::arith::int8
