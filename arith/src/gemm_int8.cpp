// The int8 GEMM: the plain loop (the oracle), and the packing and cache blocking around the SIMD
// tiles of gemm_int8_avx2.cpp and gemm_int8_avx512.cpp (BLIS's loop order: blocks of k, then
// panels of B that stay in L1 while every micro-panel of the packed A block passes them).
#include "bitsim/arith/gemm_int8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "gemm_int8_simd.hpp"

namespace bitsim::arith {
namespace {

inline std::int16_t code_of(std::uint8_t byte, bool is_signed) {
  return is_signed ? std::int16_t(std::int8_t(byte)) : std::int16_t(byte);
}

// Codes as a kernel's packed elements: vpmaddwd's int16 codes, or vpdpbusd's bytes flipped in
// their top bit where an operand is offset by 128.
template <bool Signed>
struct Widen {
  std::int16_t operator()(std::uint8_t x) const { return code_of(x, Signed); }
};
struct Flip {
  std::uint8_t mask;
  std::uint8_t operator()(std::uint8_t x) const { return std::uint8_t(x ^ mask); }
};

// vpdpbusd multiplies unsigned by signed bytes: A goes in as unsigned codes A' = a + oa and B as
// signed codes B' = b - ob, with oa = 128 for signed A and ob = 128 for unsigned B (both a flip of
// the byte's top bit), so that a b = A'B' + ob A' - oa B' - oa ob. Signed codes on both sides, the
// common case, leave only -128 B', whose column sums are taken once, with B's packing.
inline std::uint8_t a_flip(bool is_signed) { return is_signed ? 0x80 : 0x00; }
inline std::uint8_t b_flip(bool is_signed) { return is_signed ? 0x00 : 0x80; }

// A kernel's packed layout (see gemm_int8_simd.hpp) and blocking.
template <class T, int Group, int Panel, int Mr, int Nz>
struct Layout {
  using Elem = T;
  static constexpr int group = Group, panel = Panel, mr = Mr, nz = Nz;
  static constexpr std::int64_t kc_groups = 128;  // k per cache block: the tile's panels of B stay in L1
  static constexpr std::int64_t mc = 192;         // rows of A packed at a time: the block stays in L2
  static_assert(mc % mr == 0);
};
using VnniLayout = Layout<std::uint8_t, 4, 16, int8::kVnniMr, int8::kVnniNz>;
using Avx2Layout = Layout<std::int16_t, 2, 8, int8::kAvx2Mr, int8::kAvx2Nz>;

// Whole groups of one whole panel of op(B) stored untransposed (src: row k0, column j0): each
// group's G rows of P codes become P columns of G.
template <class L, class Code>
void interleave_rows(const std::uint8_t* src, std::int64_t ld, std::int64_t groups, typename L::Elem* out, Code code) {
  for (std::int64_t g = 0; g < groups; ++g, src += L::group * ld, out += L::panel * L::group)
    for (int e = 0; e < L::group; ++e)
      for (int c = 0; c < L::panel; ++c) out[c * L::group + e] = code(src[e * ld + c]);
}

// op(B)'s panels into `out`, zeros on entry: group g, column c of panel p at
// p * panel_elems + (g * panel + c) * group + e. rows(src, ld, groups, out) packs whole groups of a
// whole panel of an untransposed B.
template <class L, class Code, class Rows>
void pack_panels(const Int8Matrix& b, std::int64_t k, std::int64_t n, typename L::Elem* out, Code code, Rows rows) {
  constexpr int G = L::group, P = L::panel;
  const std::int64_t groups = (k + G - 1) / G, ld = b.ld;
  const std::uint8_t* x = b.codes;
  std::vector<std::uint8_t> padded;
  for (std::int64_t j0 = 0; j0 < n; j0 += P) {
    const std::int64_t cols = std::min<std::int64_t>(P, n - j0);
    std::int64_t g = 0;
    if (!b.trans && cols == P) {
      g = k / G;
      rows(x + j0, ld, g, out);
      out += g * P * G;
    } else if (!b.trans) {  // the last panel's columns through a copy padded with zeros, 64 groups at a time
      padded.assign(std::size_t(64 * G * P), 0);
      for (; g < k / G; g += 64) {
        const std::int64_t gs = std::min<std::int64_t>(64, k / G - g);
        for (std::int64_t r = 0; r < gs * G; ++r) std::copy_n(x + (g * G + r) * ld + j0, cols, padded.data() + r * P);
        rows(padded.data(), P, gs, out);
        out += gs * P * G;
      }
      g = k / G;
    }
    for (; g < groups; ++g, out += P * G) {  // the padding stays zero
      const std::int64_t k0 = g * G, ks = std::min<std::int64_t>(G, k - k0);
      if (b.trans) {
        for (std::int64_t c = 0; c < cols; ++c)
          for (std::int64_t e = 0; e < ks; ++e) out[c * G + e] = code(x[(j0 + c) * ld + k0 + e]);
      } else {
        for (std::int64_t e = 0; e < ks; ++e)
          for (std::int64_t c = 0; c < cols; ++c) out[c * G + e] = code(x[(k0 + e) * ld + j0 + c]);
      }
    }
  }
}

// Rows [r0, r0 + rows) of op(A) as micro-panels of up to mr rows: micro-panel q at
// q * mr * groups * group, row r of it at (g * its rows + r) * group + e.
template <class L, class Code>
void pack_rows(const Int8Matrix& a, std::int64_t r0, std::int64_t rows, std::int64_t k, typename L::Elem* out, Code code) {
  constexpr int G = L::group;
  const std::int64_t groups = (k + G - 1) / G, ld = a.ld;
  const std::uint8_t* x = a.codes;
  for (std::int64_t i0 = r0; i0 < r0 + rows; i0 += L::mr) {
    const std::int64_t h = std::min<std::int64_t>(L::mr, r0 + rows - i0);
    for (std::int64_t g = 0; g < groups; ++g, out += h * G) {
      const std::int64_t k0 = g * G;
      if (k0 + G <= k) {
        if (a.trans) {
          for (int e = 0; e < G; ++e)
            for (std::int64_t r = 0; r < h; ++r) out[r * G + e] = code(x[(k0 + e) * ld + i0 + r]);
        } else {
          for (std::int64_t r = 0; r < h; ++r)
            for (int e = 0; e < G; ++e) out[r * G + e] = code(x[(i0 + r) * ld + k0 + e]);
        }
        continue;
      }
      for (std::int64_t r = 0; r < h; ++r)
        for (int e = 0; e < G; ++e) {
          const std::int64_t kk = k0 + e;
          out[r * G + e] = kk < k ? code(a.trans ? x[kk * ld + i0 + r] : x[(i0 + r) * ld + kk]) : typename L::Elem(0);
        }
    }
  }
}

// out[i] = the sum of row i of op(X) (rows x cols), each byte flipped by `flip` and read as an
// unsigned code, modulo 2^32.
void row_sums(const Int8Matrix& x, std::int64_t rows, std::int64_t cols, std::uint8_t flip, std::uint32_t* out) {
  const auto v = [flip](std::uint8_t b) { return std::uint32_t(std::uint8_t(b ^ flip)); };
  if (!x.trans) {
    for (std::int64_t i = 0; i < rows; ++i) {
      std::uint32_t s = 0;
      for (std::int64_t j = 0; j < cols; ++j) s += v(x.codes[i * x.ld + j]);
      out[i] = s;
    }
    return;
  }
  for (std::int64_t i0 = 0; i0 < rows; i0 += 64) {  // sums in a local block, which the codes cannot alias: vectorised
    const std::int64_t h = std::min<std::int64_t>(64, rows - i0);
    std::uint32_t s[64] = {};
    for (std::int64_t j = 0; j < cols; ++j)
      for (std::int64_t i = 0; i < h; ++i) s[i] += v(x.codes[j * x.ld + i0 + i]);
    std::copy(s, s + h, out + i0);
  }
}

// The blocked driver around a kernel's tiles. row_add (one per row of C) and col_add: vpdpbusd's
// offset terms (null where they vanish, and for vpmaddwd, which needs none).
template <class L, class Code>
void blocked(void (*tile)(const int8::Tile&), const Int8Matrix& a, std::int64_t m, std::int64_t k, std::int64_t n,
             const typename L::Elem* b, Code code_a, const std::int32_t* row_add, const std::int32_t* col_add,
             std::int32_t* c, std::int64_t ldc) {
  constexpr int G = L::group, P = L::panel;
  const std::int64_t groups = (k + G - 1) / G, panels = (n + P - 1) / P;
  const std::int64_t panel_elems = groups * P * G;
  std::vector<typename L::Elem> pa(std::size_t(std::min(L::mc, m) * groups * G));
  for (std::int64_t m0 = 0; m0 < m; m0 += L::mc) {
    const std::int64_t mb = std::min(L::mc, m - m0);
    pack_rows<L>(a, m0, mb, k, pa.data(), code_a);
    for (std::int64_t g0 = 0; g0 < groups; g0 += L::kc_groups) {
      const std::int64_t gn = std::min(L::kc_groups, groups - g0);
      for (std::int64_t p0 = 0; p0 < panels; p0 += L::nz)
        for (std::int64_t i0 = 0; i0 < mb; i0 += L::mr) {
          int8::Tile t;
          t.rows = int(std::min<std::int64_t>(L::mr, mb - i0));
          t.cols = int(std::min<std::int64_t>(L::nz * P, n - p0 * P));
          t.a = pa.data() + i0 * groups * G + g0 * t.rows * G;
          t.b = b + p0 * panel_elems + g0 * P * G;
          t.panel_stride = panel_elems * std::int64_t(sizeof(typename L::Elem));
          t.groups = gn;
          t.c = c + (m0 + i0) * ldc + p0 * P;
          t.ldc = ldc;
          t.accumulate = g0 > 0;
          if (g0 == 0 && row_add) t.row_add = row_add + m0 + i0;
          if (g0 == 0 && col_add) t.col_add = col_add + p0 * P;
          tile(t);
        }
    }
  }
}

// The oracle: C[i][j] = sum_k a b modulo 2^32, k ascending, from op(B) as K x N int16 codes.
void plain(const Int8Matrix& a, std::int64_t m, std::int64_t k, std::int64_t n, const std::int16_t* b, std::int32_t* c,
           std::int64_t ldc) {
  std::vector<std::uint32_t> row(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0u);
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const std::int32_t av = code_of(a.trans ? a.codes[kk * a.ld + i] : a.codes[i * a.ld + kk], a.is_signed);
      const std::int16_t* bk = b + kk * n;
      for (std::int64_t j = 0; j < n; ++j) row[std::size_t(j)] += std::uint32_t(av * bk[j]);  // |a b| < 2^16
    }
    for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = std::int32_t(row[std::size_t(j)]);
  }
}

}  // namespace

std::string_view to_string(Int8Kernel k) {
  switch (k) {
    case Int8Kernel::Scalar: return "scalar";
    case Int8Kernel::Avx2: return "avx2";
    case Int8Kernel::Avx512Vnni: return "avx512-vnni";
  }
  return "?";
}

bool available(Int8Kernel k) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  static const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
  switch (k) {
    case Int8Kernel::Scalar: return true;
    case Int8Kernel::Avx2: return avx2;
    case Int8Kernel::Avx512Vnni: return vnni;
  }
  return false;
}

Int8Kernel best_int8_kernel() {
  if (available(Int8Kernel::Avx512Vnni)) return Int8Kernel::Avx512Vnni;
  if (available(Int8Kernel::Avx2)) return Int8Kernel::Avx2;
  return Int8Kernel::Scalar;
}

PackedInt8B::PackedInt8B(Int8Kernel kernel, const Int8Matrix& b, std::int64_t k, std::int64_t n)
    : kernel_(kernel), k_(k), n_(n), is_signed_(b.is_signed) {
  if (!available(kernel)) throw std::invalid_argument(fmt::format("this CPU has no {} int8 GEMM", to_string(kernel)));
  if (k < 0 || n < 0) throw std::invalid_argument("gemm_int8: negative dimension");
  switch (kernel) {
    case Int8Kernel::Scalar:
      wide_.resize(std::size_t(k * n));
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t j = 0; j < n; ++j)
          wide_[std::size_t(kk * n + j)] = code_of(b.trans ? b.codes[j * b.ld + kk] : b.codes[kk * b.ld + j], b.is_signed);
      return;
    case Int8Kernel::Avx2: {
      using L = Avx2Layout;
      const std::int64_t panels = (n + L::panel - 1) / L::panel, groups = (k + L::group - 1) / L::group;
      wide_.resize(std::size_t(panels * groups * L::panel * L::group));
      const auto pack = [&](auto code) {
        pack_panels<L>(b, k, n, wide_.data(), code, [&](const std::uint8_t* src, std::int64_t ld, std::int64_t groups,
                                                        std::int16_t* out) { interleave_rows<L>(src, ld, groups, out, code); });
      };
      if (b.is_signed) pack(Widen<true>{});
      else pack(Widen<false>{});
      return;
    }
    case Int8Kernel::Avx512Vnni: {
      using L = VnniLayout;
      const std::int64_t panels = (n + L::panel - 1) / L::panel, groups = (k + L::group - 1) / L::group;
      bytes_.resize(std::size_t(panels * groups * L::panel * L::group));
      const std::uint8_t flip = b_flip(b.is_signed);
      pack_panels<L>(b, k, n, bytes_.data(), Flip{flip}, [&](const std::uint8_t* src, std::int64_t ld, std::int64_t groups,
                                                             std::uint8_t* out) { int8::pack_panel_avx512_vnni(src, ld, groups, flip, out); });
      col_sums_.resize(std::size_t(panels * L::panel));
      for (std::int64_t p = 0; p < panels; ++p)
        int8::column_sums_avx512_vnni(bytes_.data() + p * groups * L::panel * L::group, groups, col_sums_.data() + p * L::panel);
      return;
    }
  }
}

void gemm_int8(const Int8Matrix& a, std::int64_t m, const PackedInt8B& b, std::int32_t* c, std::int64_t ldc) {
  const std::int64_t k = b.k_, n = b.n_;
  if (m <= 0 || n == 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0);
    return;
  }
  switch (b.kernel_) {
    case Int8Kernel::Scalar: return plain(a, m, k, n, b.wide_.data(), c, ldc);
    case Int8Kernel::Avx2:
      if (a.is_signed) return blocked<Avx2Layout>(int8::tile_avx2, a, m, k, n, b.wide_.data(), Widen<true>{}, nullptr, nullptr, c, ldc);
      return blocked<Avx2Layout>(int8::tile_avx2, a, m, k, n, b.wide_.data(), Widen<false>{}, nullptr, nullptr, c, ldc);
    case Int8Kernel::Avx512Vnni: {
      const std::uint32_t oa = a.is_signed ? 128 : 0, ob = b.is_signed_ ? 0 : 128;
      // The offset terms: ob A' per row, - oa B' - oa ob per column (empty where they vanish).
      std::vector<std::uint32_t> sums(ob ? std::size_t(m) : 0);
      row_sums(a, std::int64_t(sums.size()), k, a_flip(a.is_signed), sums.data());
      std::vector<std::int32_t> row_add(sums.size()), col_add(oa ? b.col_sums_.size() : 0);
      for (std::size_t i = 0; i < row_add.size(); ++i) row_add[i] = std::int32_t(ob * sums[i]);
      for (std::size_t j = 0; j < col_add.size(); ++j) col_add[j] = std::int32_t(0u - oa * b.col_sums_[j] - oa * ob * std::uint32_t(k));
      return blocked<VnniLayout>(int8::tile_avx512_vnni, a, m, k, n, b.bytes_.data(), Flip{a_flip(a.is_signed)},
                                 row_add.empty() ? nullptr : row_add.data(), col_add.empty() ? nullptr : col_add.data(), c, ldc);
    }
  }
}

void gemm_int8(Int8Kernel kernel, const Int8Matrix& a, const Int8Matrix& b, std::int64_t m, std::int64_t n,
               std::int64_t k, std::int32_t* c, std::int64_t ldc) {
  gemm_int8(a, m, PackedInt8B(kernel, b, k, n), c, ldc);
}

}  // namespace bitsim::arith
