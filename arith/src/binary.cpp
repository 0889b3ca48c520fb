// Binary and ternary tensor quantizers. Means are accumulated in fp64 in index order, so results
// do not depend on threads; the stochastic decision is round_up_magnitude() itself.
#include "bitsim/arith/binary.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

#include "bitsim/arith/rounding.hpp"

namespace bitsim::arith {

float binarize_stochastic(float x, std::uint32_t r, int k) {
  const double p = std::clamp((double(x) + 1.0) * 0.5, 0.0, 1.0);  // exact for fp32 x
  if (p >= 1.0) return 1.0f;
  // p in [0, 1) as a 64-bit fraction (exact: p has at most 53 significant bits below the point).
  const LostBits lost{std::uint64_t(std::ldexp(p, 64)), false};
  return round_up_magnitude(Rounding::Stochastic, false, false, lost, r, k, false) ? 1.0f : -1.0f;
}

void binarize(std::span<const float> in, std::span<float> out) {
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = binarize(in[i]);
}

void binarize_stochastic(std::span<const float> in, std::span<float> out, const SrStream& sr,
                         std::uint64_t first_index, int k) {
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = binarize_stochastic(in[i], sr.bits(first_index + i, k), k);
}

namespace {

// Groups of a rows x cols matrix: the whole tensor (one scale) or each row (one scale per row).
std::size_t group_size(std::size_t rows, std::size_t cols, std::span<float> alpha, std::size_t n) {
  if (rows * cols != n) throw std::invalid_argument("binary quantizer: rows * cols != tensor size");
  if (alpha.size() == 1) return n;
  if (alpha.size() == rows) return cols;
  throw std::invalid_argument("binary quantizer: alpha must have 1 (per tensor) or rows (per channel) entries");
}

}  // namespace

void binarize_scaled(std::span<const float> w, std::size_t rows, std::size_t cols, std::span<float> alpha,
                     std::span<float> out) {
  const std::size_t g = group_size(rows, cols, alpha, w.size());
  for (std::size_t a = 0; a < alpha.size(); ++a) {
    double sum = 0;
    for (std::size_t i = a * g; i < (a + 1) * g; ++i) sum += std::fabs(double(w[i]));
    alpha[a] = float(sum / double(g));
    for (std::size_t i = a * g; i < (a + 1) * g; ++i) out[i] = alpha[a] * binarize(w[i]);
  }
}

void ternarize(std::span<const float> w, std::size_t rows, std::size_t cols, double threshold_factor,
               std::span<float> alpha, std::span<float> out) {
  const std::size_t g = group_size(rows, cols, alpha, w.size());
  for (std::size_t a = 0; a < alpha.size(); ++a) {
    double sum = 0;
    for (std::size_t i = a * g; i < (a + 1) * g; ++i) sum += std::fabs(double(w[i]));
    const double delta = threshold_factor * sum / double(g);
    double kept = 0;
    std::size_t count = 0;
    for (std::size_t i = a * g; i < (a + 1) * g; ++i)
      if (std::fabs(double(w[i])) > delta) {
        kept += std::fabs(double(w[i]));
        ++count;
      }
    alpha[a] = count ? float(kept / double(count)) : 0.0f;
    for (std::size_t i = a * g; i < (a + 1) * g; ++i)
      out[i] = std::fabs(double(w[i])) > delta ? alpha[a] * binarize(w[i]) : 0.0f;
  }
}

double batchnorm(double x, double gamma, double beta, double mean, double var, double eps) {
  return gamma * (x - mean) / std::sqrt(var + eps) + beta;
}

BinaryThreshold fold_batchnorm_sign(double gamma, double beta, double mean, double var, double eps,
                                    std::int64_t fan_in) {
  auto on = [&](std::int64_t p) { return batchnorm(double(2 * p - fan_in), gamma, beta, mean, var, eps) >= 0; };
  // gamma >= 0: the output is a non-decreasing step in p, fire from the first p that is on;
  // gamma < 0: non-increasing, so fire below the first p that is off.
  const bool rising = !(gamma < 0);
  std::int64_t lo = 0, hi = fan_in + 1;  // the first p in [0, K + 1) where on(p) == rising, or K + 1
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (on(mid) == rising) hi = mid;
    else lo = mid + 1;
  }
  return {lo, !rising};
}

std::int64_t xnor_popcount(std::span<const std::uint64_t> a, std::span<const std::uint64_t> w, std::int64_t k) {
  std::int64_t p = 0;
  for (std::int64_t i = 0; i < k; i += 64) {
    const std::size_t word = std::size_t(i / 64);
    std::uint64_t x = ~(a[word] ^ w[word]);
    if (k - i < 64) x &= (std::uint64_t(1) << (k - i)) - 1;
    p += std::popcount(x);
  }
  return p;
}

}  // namespace bitsim::arith
