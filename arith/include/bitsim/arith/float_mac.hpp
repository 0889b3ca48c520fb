// MacDatapath's step for float accumulators, vectorised across outputs: each output still adds its
// products one at a time in k order, so results are the bits of one MacDatapath step per add.
#pragma once

#include <cstdint>
#include <vector>

#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

// acc <- round(acc + x * y) into a float accumulator, with x and y fp32 values (every operand of
// nn's GEMMs is one), eight outputs per AVX-512 register. Each lane holds its accumulator as the
// double of equal value (every code of a supported format has one) and mirrors MacDatapath's
// double path (double_step, round_double), extended to every case the scalar path sends to
// round_sum:
//   - the product x * y is exact in double (24-bit significands, exponents far inside double's);
//   - s = acc + x * y in double, and err, the exact sum's excess over s, by TwoSum;
//   - s is rounded onto the accumulator's grid (LSB 2^(max(e, emin) - m)) by the add-and-subtract
//     of 1.5 * 2^(52 + max(e, emin) - m), which is round-to-nearest-even of s on that grid;
//   - nearest-even: the grid's midpoints are doubles, so s and the exact sum s + err round alike
//     unless s is a midpoint, where err's sign picks the neighbour: no add needs the scalar path;
//   - stochastic: round_up_magnitude's rule (the top k lost bits plus the k random bits carry into
//     the LSB) on the lost part of s, exactly, when err = 0; the rare add whose exact sum double
//     cannot hold (err != 0) goes through round_sum, as MacDatapath does;
//   - overflow (the rounded magnitude above the largest finite value), inf and nan as quantize():
//     inf, or nan in formats without inf, under IEEE overflow, else the largest finite value.
// Codes only: the status flags MacDatapath also returns are not computed.
class FloatMac {
 public:
  // Signed float formats with zero, subnormals, inf and nan or nan only, at most 10 exponent and 50
  // mantissa bits (fp8, fp16, bf16, tf32, fp32, ...); nearest-even or stochastic rounding; any
  // overflow mode.
  static bool supports(const Format& acc, const RoundSpec& spec);
  // Whether this CPU has the vector kernels (AVX-512F and DQ), checked once.
  static bool available();

  // Throws std::invalid_argument unless supports(acc, spec) and available().
  FloatMac(const Format& acc, const RoundSpec& spec);

  const Format& format() const { return acc_; }
  const RoundSpec& spec() const { return spec_; }
  // The value of a code as the lanes hold it (nan for every nan code), and back.
  double value(u128 code) const;
  u128 code(double value) const;

  // acc[i] <- round(acc[i] + x[i] * y[i]) for i < n, independent lanes: MacDatapath(fa, fb, acc,
  // spec)(code(acc[i]), a, b, random[i]).code for codes a, b of values x[i], y[i]. random[i]: the
  // stochastic rounding's k bits (unused, and may be null, under nearest-even).
  void step(double* acc, const float* x, const float* y, const std::uint32_t* random, std::size_t n) const;

  // op(B) (K x N) in the kernel's layout: panels of 16 columns, K rows each, zero-padded. Packed
  // once per GEMM, then read (only) by every block of rows.
  class PackedB {
   public:
    PackedB(const float* b, std::int64_t ldb, bool trans, std::int64_t k, std::int64_t n);
    std::int64_t k() const { return k_; }
    std::int64_t n() const { return n_; }
    const float* panels() const { return panels_.data(); }

   private:
    std::int64_t k_, n_;
    std::vector<float> panels_;
  };

  // Rows of an order-faithful GEMM: c[i * ldc + j] (i < rows, j < N) is the accumulator after
  // acc <- round(acc + A(i, kk) * B(kk, j)) for kk = 0 .. K-1 from acc = +0, as fp32 (to_f32 of its
  // value). A(i, kk) is a[i * lda + kk], or a[kk * lda + i] when trans_a. Stochastic rounding: add kk
  // of output (i, j) draws index kk of stream sr.stream + i * row_stride + j.
  void gemm(const float* a, std::int64_t lda, bool trans_a, std::int64_t rows, const PackedB& b, float* c,
            std::int64_t ldc, const SrStream& sr = {}, std::uint64_t row_stride = 0) const;

 private:
  Format acc_;
  RoundSpec spec_;
};

}  // namespace bitsim::arith
