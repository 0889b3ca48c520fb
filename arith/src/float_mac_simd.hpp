// The AVX-512 kernels of FloatMac (float_mac_avx512.cpp), compiled for AVX-512 only and called after
// a run-time CPU check; float_mac.cpp plans them and holds the scalar step they fall back to.
#pragma once

#include <cstddef>
#include <cstdint>

// Declarations only: the AVX-512 file includes no header with inline library code.
namespace bitsim::arith {
struct Format;
struct RoundSpec;
}  // namespace bitsim::arith

namespace bitsim::arith::float_mac {

struct Plan;
// MacDatapath's general step (round_sum of the exact product) on lane values, for the lanes the
// kernel cannot round itself.
double scalar_step(const Plan& p, double acc, double x, double y, std::uint32_t random);

// Loop invariants, as doubles (all exact: powers of two, format values, inf or nan).
struct Plan {
  const Format* format = nullptr;
  const RoundSpec* spec = nullptr;
  bool stochastic = false;
  int sr_bits = 16;
  double m = 0;                 // mantissa bits
  double e_lo = 0, e_hi = 0;    // the grid's binade is clamp(exponent, emin, emax + 1)
  double max_value = 0;         // largest finite value
  double overflow_value = 0;    // what a finite sum rounded above max_value becomes (magnitude)
  double inf_value = 0;         // what an infinite sum becomes (magnitude; nan sums stay nan)
  double k = 16, two_k = 65536; // stochastic: random bits and 2^k
};

// acc[i] <- round(acc[i] + x[i] * y[i]), i < n.
void step_avx512(const Plan& p, double* acc, const float* x, const float* y, const std::uint32_t* random,
                 std::size_t n);

// Panels of 16 columns of op(B): panel q, row kk, column j at b[(q * k + kk) * 16 + j].
constexpr int kPanel = 16;
struct Gemm {
  const float* a = nullptr;
  std::int64_t a_row = 0, a_k = 0;  // A(i, kk) at a[i * a_row + kk * a_k]
  const float* b = nullptr;
  std::int64_t rows = 0, n = 0, k = 0;
  float* c = nullptr;
  std::int64_t ldc = 0;
  std::uint64_t seed = 0, stream = 0, row_stride = 0;  // output (i, j) draws stream + i * row_stride + j
};
void gemm_avx512(const Plan& p, const Gemm& g);

}  // namespace bitsim::arith::float_mac
