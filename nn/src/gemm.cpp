#include "bitsim/nn/gemm.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/arith/float_mac.hpp"
#include "bitsim/arith/gemm_int8.hpp"
#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/ops.hpp"
#include "bitsim/nn/parallel.hpp"

extern "C" void openblas_set_num_threads(int);

namespace bitsim::nn {

using arith::Format;
using arith::u128;

namespace {

int g_threads = 0;
GemmPathMask g_paths = kAllGemmPaths;

bool allowed(GemmPath p) { return (g_paths & path_bit(p)) != 0; }

const Format kFp32 = Format::fp32();

// Rows of C per work item: fixed, so the work split (and every BLAS call) is the same for any
// thread count. The fp32 reference keeps 32-row SGEMM calls: OpenBLAS's bits depend on a call's
// shape (it has kernels for small matrices), so its results depend on the split. The exact paths
// give the same bits for any split and take larger blocks (less packing and dispatch per row).
constexpr std::int64_t kFp32Rows = 32, kExactRows = 128;
// K per work item of an exact GEMM with a single block of rows (its items split K instead).
constexpr std::int64_t kDepthChunk = 4096;

// Elements per work item of the operand scans below (a maximum and the codes: the same for any
// split, so any block size, on any thread).
constexpr std::int64_t kScanBlock = 1 << 16;

// The largest |x_i|, NaNs skipped. Eight running maxima, so the compares do not wait on each
// other (v > m ? v : m is one vector max); |x| and the maxima are exact, so the order is free.
double max_abs_serial(const float* x, std::int64_t n) {
  float m[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float v = std::abs(x[i + l]);
      m[l] = v > m[l] ? v : m[l];
    }
  float r = 0;
  for (; i < n; ++i) r = std::abs(x[i]) > r ? std::abs(x[i]) : r;
  for (const float v : m) r = v > r ? v : r;
  return double(r);
}
double max_abs(const float* x, std::int64_t n) {
  std::vector<double> block_max(std::size_t((n + kScanBlock - 1) / kScanBlock), 0.0);
  parallel_blocks(n, kScanBlock, [&](std::int64_t i0, std::int64_t i1) {
    block_max[std::size_t(i0 / kScanBlock)] = max_abs_serial(x + i0, i1 - i0);
  });
  return block_max.empty() ? 0.0 : *std::max_element(block_max.begin(), block_max.end());
}

// Whether no x_i is an infinity or a NaN (exponent bits all ones), tested a block at a time
// without a branch per element.
bool all_finite(const float* x, std::int64_t n) {
  constexpr std::int64_t kBlock = 1024;
  for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
    std::uint32_t special = 0;
    for (std::int64_t i = i0; i < std::min(n, i0 + kBlock); ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      special |= std::uint32_t((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (special) return false;
  }
  return true;
}

// Throws unless every value of x is a value of f: a GEMM's result is the hardware's only when its
// operands are what the hardware would hold.
void check_operand(const float* x, std::int64_t n, const Format& f) {
  auto fail = [&](std::int64_t i) {
    throw std::invalid_argument(fmt::format("GEMM operand {} is not a value of {}", x[i], f.spec()));
  };
  if (!f.is_float() && f.wl <= 53) {
    // Fixed point: v * 2^fl is an integer in the code range (exact in fp64: a power-of-two scale).
    const double scale = std::ldexp(1.0, f.fl), lo = double(f.min_int()), hi = double(f.max_magnitude());
    bool ok = true;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = double(x[i]) * scale;
      ok &= (v == std::floor(v)) & (v >= lo) & (v <= hi);
    }
    if (ok) return;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = double(x[i]) * scale;
      if (!(v == std::floor(v) && v >= lo && v <= hi)) fail(i);
    }
  }
  const arith::RoundSpec nearest{arith::Rounding::NearestEven, arith::default_overflow(f)};
  if (arith::fits_fp32(f)) {
    std::vector<float> q(x, x + n);
    arith::quantize_f32(f, nearest, q, q);
    for (std::int64_t i = 0; i < n; ++i)
      if (std::memcmp(&q[std::size_t(i)], &x[i], sizeof(float)) != 0 && !(std::isnan(x[i]) && std::isnan(q[std::size_t(i)]))) fail(i);
    return;
  }
  for (std::int64_t i = 0; i < n; ++i)
    if (arith::quantize(f, arith::Exact::from_float(x[i]), nearest).status & arith::kInexact) fail(i);
}

// The largest code magnitude of a fixed-point format (a signed one's most negative code's).
double largest_code(const Format& f) { return std::max(-double(f.min_int()), double(f.max_magnitude())); }

// The codes x * 2^fl of n values of a fixed-point format of at most 8 bits, as bytes (two's
// complement when signed); false when some value is not one (nan, off the grid, out of range),
// which leaves it to the other paths. In T, where x 2^fl is exact: fp32 for 0 <= fl <= 100 (a scale
// up: exact, or infinite), fp64 for |fl| <= 200.
template <class T>
bool to_codes_in(const float* x, std::int64_t n, const Format& f, std::uint8_t* out) {
  const T scale = std::ldexp(T(1), f.fl), lo = T(f.min_int()), hi = T(f.max_magnitude());
  unsigned bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {  // branch-free, so that it vectorises
    const T v = T(x[i]) * scale;
    T clamped = v > lo ? v : lo;  // nan becomes lo
    clamped = clamped < hi ? clamped : hi;
    const std::int32_t code = std::int32_t(clamped);
    bad |= unsigned(T(code) != v);  // off the grid, out of range or nan
    out[i] = std::uint8_t(code);
  }
  return !bad;
}
bool to_codes(const float* x, std::int64_t n, const Format& f, std::uint8_t* out) {
  std::atomic<bool> all{true};
  parallel_blocks(n, kScanBlock, [&](std::int64_t i0, std::int64_t i1) {
    const bool ok = f.fl >= 0 && f.fl <= 100 ? to_codes_in<float>(x + i0, i1 - i0, f, out + i0)
                                             : to_codes_in<double>(x + i0, i1 - i0, f, out + i0);
    if (!ok) all = false;
  });
  return all;
}

// The codes of op(B) (K x N; stored N x K when trans_b) of a fixed-point format wider than 8 bits
// whose columns each hold 8-bit codes at a scale of their own (per-channel weights, in the format
// that covers every channel): column j's values are c 2^(shift_j - fl), c an 8-bit code and
// shift_j >= 0 the smallest shift that fits it. Writes the codes, laid out as B, and the shifts;
// false when some column has no such codes (a value off the grid, or bits a fitting shift would
// drop). Codes of at most 53 bits (|fl| <= 200), exact in fp64.
bool column_codes(const float* b, bool trans_b, std::int64_t k, std::int64_t n, const Format& f, std::uint8_t* out,
                  std::vector<int>& shift) {
  const double scale = std::ldexp(1.0, f.fl);
  // B as stored: `rows` x `cols`, element (r, c) in column r (trans_b) or c of op(B). Two passes in
  // storage order (branch-free, so they vectorise): each column's code range and set bits, then the codes.
  const std::int64_t rows = trans_b ? n : k, cols = trans_b ? k : n;
  std::vector<std::int64_t> lo(std::size_t(n), 0), hi(std::size_t(n), 0), bits(std::size_t(n), 0);
  std::int64_t off_grid = 0;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const double v = double(b[r * cols + c]) * scale;
      const bool code_like = (v == std::floor(v)) & (std::abs(v) < 0x1p53);  // false for nan and inf
      off_grid |= std::int64_t(!code_like);
      const std::int64_t code = std::int64_t(code_like ? v : 0.0);
      const std::size_t j = std::size_t(trans_b ? r : c);
      lo[j] = std::min(lo[j], code), hi[j] = std::max(hi[j], code);
      bits[j] |= code;  // a two's complement code's trailing zeros are its magnitude's
    }
  if (off_grid) return false;
  const std::int64_t lo8 = f.is_signed ? -128 : 0, hi8 = f.is_signed ? 127 : 255;
  shift.assign(std::size_t(n), 0);
  for (std::size_t j = 0; j < std::size_t(n); ++j) {
    if (lo[j] < lo8 && !f.is_signed) return false;  // a negative value of an unsigned format: no shift fits
    int& sj = shift[j];
    while ((hi[j] >> sj) > hi8 || (lo[j] >> sj) < lo8) ++sj;
    if ((bits[j] & ((std::int64_t(1) << sj) - 1)) != 0) return false;  // bits the shift would drop
  }
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = std::uint8_t(std::int64_t(double(b[r * cols + c]) * scale) >> shift[std::size_t(trans_b ? r : c)]);
  return true;
}

// Element (i, j) of op(X) for row-major X.
inline float at(const float* x, bool trans, std::int64_t rows_op, std::int64_t cols_op, std::int64_t i, std::int64_t j) {
  return trans ? x[j * rows_op + i] : x[i * cols_op + j];
}

}  // namespace

void set_threads(int n) { g_threads = n; }
int threads() { return g_threads > 0 ? g_threads : int(std::max(1u, std::thread::hardware_concurrency())); }

void set_gemm_paths(GemmPathMask allowed) { g_paths = allowed; }
GemmPathMask gemm_paths() { return g_paths; }

std::string_view to_string(GemmPath p) {
  switch (p) {
    case GemmPath::Fp32: return "fp32";
    case GemmPath::ExactInt8: return "exact-int8";
    case GemmPath::ExactFp32: return "exact-fp32";
    case GemmPath::ExactFp64: return "exact-fp64";
    case GemmPath::OrderedFp32: return "ordered-fp32";
    case GemmPath::OrderFaithfulSimd: return "order-faithful-simd";
    case GemmPath::OrderFaithful: return "order-faithful";
    case GemmPath::Popcount: return "popcount";
  }
  return "?";
}

Accumulation Accumulation::parse(std::string_view format, std::string_view rounding, std::string_view overflow,
                                 int sr_bits) {
  Accumulation a;
  if (format == "fp32-reference") return a;
  a.fp32 = false;
  a.format = Format::parse(format);
  if (!a.format.is_float() && (a.format.fl != 0 || !a.format.is_signed))
    throw arith::FormatError(fmt::format("bad accumulator {}: expected int<w> (an integer counting product LSBs) or a float format", arith::quoted(format)));
  a.spec.rounding = arith::parse_rounding(rounding);
  a.spec.overflow = overflow.empty() ? arith::default_overflow(a.format) : arith::parse_overflow(overflow);
  arith::check_overflow_applies(a.format, a.spec.overflow);
  if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
  a.spec.sr_bits = sr_bits;
  return a;
}

Format Accumulation::for_operands(const Format& a, const Format& b) const {
  if (format.is_float()) return format;
  if (a.is_float() || b.is_float())
    throw arith::FormatError(fmt::format("an integer accumulator {} needs fixed-point operands, not {} and {}",
                                         format.spec(), a.spec(), b.spec()));
  return Format::fixed(format.wl, a.fl + b.fl);
}

std::string Accumulation::describe() const {
  if (fp32) return "fp32-reference";
  return fmt::format("{} {} {}", format.spec(), arith::to_string(spec.rounding), arith::to_string(spec.overflow));
}

namespace {

// A GEMM's work items (blocks of rows of C), and what runs them: parallel_for for one
// GEMM, or gemm_together's job for several.
using Item = std::function<void(std::int64_t)>;
using RunItems = std::function<void(std::int64_t items, const Item& item)>;

// gemm(), with its work items handed to `run` once the operands are prepared (packed, converted);
// the buffers they read live until run returns.
GemmPath gemm_on(const GemmCall& call, const RunItems& run) {
  // The arguments as names (plain references: lambdas below capture them).
  const Accumulation& acc = call.acc;
  const Format &fa = call.fa, &fb = call.fb;
  const bool trans_a = call.trans_a, trans_b = call.trans_b, check_operands = call.check_operands;
  const std::int64_t m = call.m, n = call.n, k = call.k;
  const float *a = call.a, *b = call.b;
  float* c = call.c;
  const arith::SrStream& sr = call.sr;
  openblas_set_num_threads(1);  // parallelism is ours, over fixed row blocks
  // body(r0, rows) for each block [r0, r0 + rows) of `block` rows of C, as one work item.
  auto run_rows = [&](std::int64_t block, auto&& body) {
    run((m + block - 1) / block, [&](std::int64_t it) {
      const std::int64_t r0 = it * block;
      body(r0, std::min(block, m - r0));
    });
  };
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const std::int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  // Row block [r0, r0 + rows) of op(A) starts at this element of A.
  auto a_rows = [&](std::int64_t r0) { return trans_a ? a + r0 : a + r0 * k; };

  if (acc.fp32) {
    run_rows(kFp32Rows, [&](std::int64_t r0, std::int64_t rows) {
      cblas_sgemm(CblasRowMajor, ta, tb, int(rows), int(n), int(k), 1.0f, a_rows(r0), int(lda), b, int(ldb), 0.0f,
                  c + r0 * n, int(n));
    });
    return GemmPath::Fp32;
  }

  const Format fc = acc.for_operands(fa, fb);
  if (check_operands) {
    check_operand(a, m * k, fa);
    check_operand(b, k * n, fb);
  }
  const bool stochastic = acc.spec.rounding == arith::Rounding::Stochastic;

  const int product_fl = fa.fl + fb.fl;
  // Every |partial sum| <= K max|a| max|b|: the bound in product LSBs, from the data.
  double data_bound = -1;
  auto bound_from_data = [&] {
    if (data_bound < 0) data_bound = double(k) * max_abs(a, m * k) * max_abs(b, k * n) * std::ldexp(1.0, product_fl);
    return data_bound;
  };

  // 8-bit codes into int32 (arith's int8 GEMM, with SIMD: the plain loop is no faster than SGEMM).
  // Exact when the bound, from the formats or else the data, is below the accumulator's largest
  // magnitude and 2^31: no add can overflow, and int32 sums wrap modulo 2^32 in any order onto the
  // exact sum. c = float(sum) rounds once to nearest even; the scale 2^-(fl_a + fl_b) is then exact,
  // as |sum| < 2^31 and -96 <= fl_a + fl_b <= 126 keep c a normal number. A wider B whose columns
  // hold 8-bit codes at scales of their own (column_codes: per-channel weights) takes it too, each
  // column's sums 2^shift coarser: smaller than the bound in B's LSBs, and as exact.
  const arith::Int8Kernel kernel = arith::best_int8_kernel();
  if (allowed(GemmPath::ExactInt8) && !fa.is_float() && !fb.is_float() && !fc.is_float() && fa.wl <= 8 && fb.wl <= 53 &&
      kernel != arith::Int8Kernel::Scalar && std::abs(fa.fl) <= 200 && std::abs(fb.fl) <= 200) {
    const double limit = std::min(0x1p31, std::ldexp(1.0, fc.wl - 1));
    const bool fits = double(k) * largest_code(fa) * largest_code(fb) < limit || bound_from_data() < limit;
    // Every code and every sum is written before it is read: no fill.
    std::unique_ptr<std::uint8_t[]> ac, bc;
    std::vector<int> shift(std::size_t(n), 0);  // column j's codes count 2^(shift_j - fl_b)
    if (fits) {
      ac = std::make_unique_for_overwrite<std::uint8_t[]>(std::size_t(m * k));
      bc = std::make_unique_for_overwrite<std::uint8_t[]>(std::size_t(k * n));
    }
    const bool codes = fits && to_codes(a, m * k, fa, ac.get()) &&
                       (fb.wl <= 8 ? to_codes(b, k * n, fb, bc.get()) : column_codes(b, trans_b, k, n, fb, bc.get(), shift));
    std::vector<float> scale(static_cast<std::size_t>(n));  // column j's 2^-(fl_a + fl_b - shift_j)
    bool normal = true;
    for (std::int64_t j = 0; j < n; ++j) {
      const int fl = product_fl - shift[std::size_t(j)];
      normal &= fl >= -96 && fl <= 126;
      scale[std::size_t(j)] = std::ldexp(1.0f, -fl);
    }
    if (codes && normal && m <= kExactRows && k >= 2 * kDepthChunk) {
      // One block of rows over a long K (a weight gradient summed over a batch of pixels): the
      // items are K's chunks instead, each packing its slice of B; their int32 sums wrap modulo
      // 2^32 onto the exact sum in any order, so the chunks' sums add up to it.
      const std::int64_t chunks = (k + kDepthChunk - 1) / kDepthChunk;
      std::vector<std::int32_t> partial(std::size_t(chunks * m * n));
      run(chunks, [&](std::int64_t q) {
        const std::int64_t k0 = q * kDepthChunk, kc = std::min(kDepthChunk, k - k0);
        const arith::PackedInt8B packed(kernel, {trans_b ? bc.get() + k0 : bc.get() + k0 * ldb, ldb, fb.is_signed, trans_b}, kc, n);
        arith::gemm_int8({trans_a ? ac.get() + k0 * lda : ac.get() + k0, lda, fa.is_signed, trans_a}, m, packed,
                         partial.data() + q * m * n, n);
      });
      for (std::int64_t i = 0; i < m * n; ++i) {
        std::uint32_t sum = 0;  // unsigned: wraps as the hardware's adds do
        for (std::int64_t q = 0; q < chunks; ++q) sum += std::uint32_t(partial[std::size_t(q * m * n + i)]);
        c[i] = float(std::int32_t(sum)) * scale[std::size_t(i % n)];
      }
      return GemmPath::ExactInt8;
    }
    if (codes && normal) {
      const arith::PackedInt8B packed(kernel, {bc.get(), ldb, fb.is_signed, trans_b}, k, n);
      run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
        const auto sums = std::make_unique_for_overwrite<std::int32_t[]>(std::size_t(rows * n));
        arith::gemm_int8({trans_a ? ac.get() + r0 : ac.get() + r0 * k, lda, fa.is_signed, trans_a}, rows, packed,
                         sums.get(), n);
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < n; ++j)
            c[(r0 + i) * n + j] = float(sums[std::size_t(i * n + j)]) * scale[std::size_t(j)];
      });
      return GemmPath::ExactInt8;
    }
  }

  if (!fa.is_float() && !fb.is_float() && !fc.is_float() && all_finite(a, m * k) && all_finite(b, k * n)) {
    // In product LSBs the bound must stay below the accumulator's largest magnitude (no overflow,
    // in any order) and below 2^24 or 2^53, where fp32 or fp64 hold every integer (the product LSB
    // itself, 2^-(fl_a + fl_b), is a normal number of both).
    const double bound = bound_from_data();
    const bool fits_acc = bound < std::ldexp(1.0, fc.wl - 1);
    if (allowed(GemmPath::ExactFp32) && fits_acc && bound < 0x1p24 && product_fl <= 100 && product_fl >= -100) {
      run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
        cblas_sgemm(CblasRowMajor, ta, tb, int(rows), int(n), int(k), 1.0f, a_rows(r0), int(lda), b, int(ldb), 0.0f,
                    c + r0 * n, int(n));
      });
      return GemmPath::ExactFp32;
    }
    if (allowed(GemmPath::ExactFp64) && fits_acc && bound < 0x1p53 && product_fl <= 1000 && product_fl >= -1000) {
      std::vector<double> ad(std::size_t(m * k)), bd(std::size_t(k * n));
      std::copy(a, a + m * k, ad.begin());
      std::copy(b, b + k * n, bd.begin());
      run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
        std::vector<double> cd(std::size_t(rows * n));
        cblas_dgemm(CblasRowMajor, ta, tb, int(rows), int(n), int(k), 1.0, trans_a ? ad.data() + r0 : ad.data() + r0 * k,
                    int(lda), bd.data(), int(ldb), 0.0, cd.data(), int(n));
        for (std::int64_t i = 0; i < rows * n; ++i) c[r0 * n + i] = float(cd[std::size_t(i)]);  // one RNE rounding
      });
      return GemmPath::ExactFp64;
    }
  }

  if (allowed(GemmPath::OrderedFp32) && fa.is_float() && fb.is_float() && fc == kFp32 &&
      acc.spec.rounding == arith::Rounding::NearestEven &&
      acc.spec.overflow == arith::Overflow::Ieee && arith::fits_fp32(arith::product_format(fa, fb))) {
    // Each output is ((0 + a_i0 b_0j) + a_i1 b_1j) + ..., in k order with one fp32 rounding per
    // add (the products are exact, so a fused multiply-add rounds the same). The adds run for
    // kRows outputs of one column at once, kCols columns at a time: op(A) is packed k-major per
    // block of rows, op(B) as K x N rows padded to whole column groups with zeros.
    constexpr std::int64_t kRows = 16, kCols = 4;
    using Rows = float __attribute__((vector_size(kRows * sizeof(float))));  // one add for kRows outputs
    const std::int64_t np = (n + kCols - 1) / kCols * kCols;
    std::vector<float> bp(std::size_t(k * np), 0.0f);
    for (std::int64_t kk = 0; kk < k; ++kk)
      for (std::int64_t j = 0; j < n; ++j) bp[std::size_t(kk * np + j)] = at(b, trans_b, k, n, kk, j);
    run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
      const std::int64_t r1 = r0 + rows;
      std::vector<float> ap(std::size_t(kRows * k));
      for (std::int64_t i0 = r0; i0 < r1; i0 += kRows) {
        const std::int64_t nr = std::min(kRows, r1 - i0);
        for (std::int64_t kk = 0; kk < k; ++kk)
          for (std::int64_t r = 0; r < kRows; ++r) ap[std::size_t(kk * kRows + r)] = r < nr ? at(a, trans_a, m, k, i0 + r, kk) : 0.0f;
        for (std::int64_t j0 = 0; j0 < n; j0 += kCols) {
          Rows sum[kCols] = {};
          for (std::int64_t kk = 0; kk < k; ++kk) {
            Rows ak;
            std::memcpy(&ak, ap.data() + kk * kRows, sizeof ak);
            const float* bk = bp.data() + kk * np + j0;
            for (std::int64_t jj = 0; jj < kCols; ++jj) sum[jj] += ak * bk[jj];
          }
          for (std::int64_t jj = 0; jj < std::min(kCols, n - j0); ++jj)
            for (std::int64_t r = 0; r < nr; ++r) c[(i0 + r) * n + j0 + jj] = sum[jj][r];
        }
      }
    });
    return GemmPath::OrderedFp32;
  }

  // Float accumulators, vectorised across outputs: the operands' fp32 values are what MacDatapath
  // would decode from their codes, so FloatMac steps on them directly.
  if (allowed(GemmPath::OrderFaithfulSimd) && arith::FloatMac::supports(fc, acc.spec) && arith::FloatMac::available()) {
    const arith::FloatMac mac(fc, acc.spec);
    const arith::FloatMac::PackedB packed(b, ldb, trans_b, k, n);
    run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
      mac.gemm(a_rows(r0), lda, trans_a, rows, packed, c + r0 * n, n,
               arith::SrStream{sr.seed, sr.stream + std::uint64_t(r0 * n)}, std::uint64_t(n));
    });
    return GemmPath::OrderFaithfulSimd;
  }

  // Order-faithful: codes, one MacDatapath step per add.
  const arith::MacDatapath dp(fa, fb, fc, acc.spec);
  auto codes = [&](const float* x, std::int64_t size, const Format& f) {
    std::vector<u128> out(static_cast<std::size_t>(size));
    const arith::RoundSpec s{arith::Rounding::NearestEven, arith::default_overflow(f)};
    for (std::int64_t i = 0; i < size; ++i) {
      const arith::Quantized q = arith::quantize(f, arith::Exact::from_float(x[i]), s);
      if (q.status & arith::kInexact)
        throw std::invalid_argument(fmt::format("GEMM operand {} is not a value of {}", x[i], f.spec()));
      out[std::size_t(i)] = q.code;
    }
    return out;
  };
  // op(A) as M x K codes and op(B) as N x K codes, so both walk k contiguously.
  std::vector<float> a_mk(std::size_t(m * k)), b_nk(std::size_t(n * k));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t kk = 0; kk < k; ++kk) a_mk[std::size_t(i * k + kk)] = at(a, trans_a, m, k, i, kk);
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t kk = 0; kk < k; ++kk) b_nk[std::size_t(j * k + kk)] = at(b, trans_b, k, n, kk, j);
  const std::vector<u128> ac = codes(a_mk.data(), m * k, fa), bc = codes(b_nk.data(), n * k, fb);
  run_rows(kExactRows, [&](std::int64_t r0, std::int64_t rows) {
    for (std::int64_t i = r0; i < r0 + rows; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        const arith::SrStream s{sr.seed, sr.stream + std::uint64_t(i * n + j)};
        u128 code = 0;
        const u128* ai = &ac[std::size_t(i * k)];
        const u128* bj = &bc[std::size_t(j * k)];
        for (std::int64_t kk = 0; kk < k; ++kk)
          code = dp(code, ai[kk], bj[kk], stochastic ? s.bits(std::uint64_t(kk), acc.spec.sr_bits) : 0).code;
        c[i * n + j] = arith::to_f32(arith::decode(fc, code));
      }
  });
  return GemmPath::OrderFaithful;
}

}  // namespace

GemmPath gemm(const Accumulation& acc, const Format& fa, const Format& fb, bool trans_a, bool trans_b, std::int64_t m,
              std::int64_t n, std::int64_t k, const float* a, const float* b, float* c, const arith::SrStream& sr,
              bool check_operands) {
  return gemm_on({acc, fa, fb, trans_a, trans_b, m, n, k, a, b, c, sr, check_operands},
                 [](std::int64_t items, const Item& item) { parallel_for(items, item); });
}

std::vector<GemmPath> gemm_together(std::span<const GemmCall> calls) {
  // Each call prepares its operands inside gemm_on and, at its items, prepares the next one from
  // there, so every call's buffers are alive when the last one runs all the items in one job. A
  // bounded number of calls at a time bounds that nesting.
  constexpr std::size_t kAtOnce = 32;
  std::vector<GemmPath> paths(calls.size());
  for (std::size_t first = 0; first < calls.size(); first += kAtOnce) {
    const std::size_t last = std::min(calls.size(), first + kAtOnce);
    std::vector<std::int64_t> starts{0};  // call first + j's items are [starts[j], starts[j + 1])
    std::vector<const Item*> items;
    std::function<void(std::size_t)> prepare = [&](std::size_t i) {
      if (i == last) {
        parallel_for(starts.back(), [&](std::int64_t it) {
          const std::size_t j = std::size_t(std::upper_bound(starts.begin(), starts.end(), it) - starts.begin()) - 1;
          (*items[j])(it - starts[j]);
        });
        return;
      }
      paths[i] = gemm_on(calls[i], [&](std::int64_t count, const Item& item) {
        starts.push_back(starts.back() + count);
        items.push_back(&item);
        prepare(i + 1);
      });
    };
    prepare(first);
  }
  return paths;
}

void gemm_reference(const Accumulation& acc, const Format& fa, const Format& fb, bool trans_a, bool trans_b,
                    std::int64_t m, std::int64_t n, std::int64_t k, const float* a, const float* b, float* c,
                    const arith::SrStream& sr) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      if (acc.fp32) {
        double s = 0;
        for (std::int64_t kk = 0; kk < k; ++kk) s += double(at(a, trans_a, m, k, i, kk)) * double(at(b, trans_b, k, n, kk, j));
        c[i * n + j] = float(s);
        continue;
      }
      const Format fc = acc.for_operands(fa, fb);
      arith::Accumulator ac(fc, acc.spec, arith::SrStream{sr.seed, sr.stream + std::uint64_t(i * n + j)});
      ac.reset();
      for (std::int64_t kk = 0; kk < k; ++kk)
        ac.add(arith::exact_mul(arith::Exact::from_float(at(a, trans_a, m, k, i, kk)),
                                arith::Exact::from_float(at(b, trans_b, k, n, kk, j))));
      c[i * n + j] = arith::to_f32(ac.value());
    }
}

}  // namespace bitsim::nn
