// The SIMD tiles of the int8 GEMM (gemm_int8_avx2.cpp, gemm_int8_avx512.cpp), each compiled for its
// instruction set only and called after a run-time CPU check. gemm_int8.cpp packs and blocks.
#pragma once

#include <cstdint>

namespace bitsim::arith::int8 {

// Packed layouts (elements of `elem` bytes, `group` consecutive k per 32-bit lane):
//   B: panels of `panel` columns; panel p, group g, column c, element e at
//      p * panel_stride + (g * panel + c) * group + e;
//   A: micro-panels of up to `mr` rows; row r of a micro-panel of `rows` rows at
//      (g * rows + r) * group + e.
// K is padded with zero codes to whole groups, the last panel with zero columns.
struct Tile {
  const void* a = nullptr;         // a micro-panel of A at the tile's first k
  const void* b = nullptr;         // the tile's first panel of B at the same k
  std::int64_t panel_stride = 0;   // bytes from one panel of B to the next
  std::int64_t groups = 0;         // groups of k to sum
  int rows = 0;                    // rows of C: 1 .. the kernel's mr
  int cols = 0;                    // columns of C: up to the kernel's nz panels, the last one partial
  std::int32_t* c = nullptr;
  std::int64_t ldc = 0;
  bool accumulate = false;         // add the sums to C (a later block of k) instead of storing them
  const std::int32_t* row_add = nullptr;  // when storing, add row_add[r] to row r (may be null)
  const std::int32_t* col_add = nullptr;  // and col_add[j] to column j, padded to whole panels (may be null)
};

// vpdpbusd: elem 1, group 4, panel 16; A holds unsigned bytes, B signed ones.
constexpr int kVnniMr = 8, kVnniNz = 3;
void tile_avx512_vnni(const Tile& t);
// Whole groups of one whole panel of an untransposed op(B) (src: row k0, column j0), each byte
// flipped by `flip`.
void pack_panel_avx512_vnni(const std::uint8_t* src, std::int64_t ld, std::int64_t groups, std::uint8_t flip,
                            std::uint8_t* out);
// The 16 column sums of a packed panel of B (signed bytes) over `groups` groups, modulo 2^32.
void column_sums_avx512_vnni(const std::uint8_t* panel, std::int64_t groups, std::uint32_t* out);

// vpmaddwd: elem 2, group 2, panel 8; both hold int16 codes.
constexpr int kAvx2Mr = 6, kAvx2Nz = 2;
void tile_avx2(const Tile& t);

}  // namespace bitsim::arith::int8
