// Binary and ternary quantizers of weight/activation tensors: BinaryConnect (deterministic and
// stochastic), XNOR-Net scaled binary, and TWN-style ternary with a threshold and scale.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

// sign(x) with sign(0) = sign(-0) = +1 (BinaryConnect and BNN binarize zero to +1); nan -> +1.
inline float binarize(float x) { return std::signbit(x) && x != 0 ? -1.0f : 1.0f; }

// BinaryConnect's stochastic binarization: +1 with probability hard_sigmoid(x) = clip((x+1)/2, 0, 1).
// Exactly stochastic rounding of p = hard_sigmoid(x) to an integer with k random bits r (the
// stream's bits at `index`): +1 when floor(p 2^k) + r >= 2^k, so P(+1) = floor(p 2^k) / 2^k.
float binarize_stochastic(float x, std::uint32_t r, int k);

// out[i] = binarize(in[i]), or binarize_stochastic with r = sr.bits(first_index + i, k).
void binarize(std::span<const float> in, std::span<float> out);
void binarize_stochastic(std::span<const float> in, std::span<float> out, const SrStream& sr,
                         std::uint64_t first_index, int k);

// XNOR-Net: w ~ alpha * sign(w) with alpha = mean |w|, per tensor (alpha.size() == 1) or per
// output channel (row of a rows x cols matrix, alpha.size() == rows). out = alpha * sign(w).
void binarize_scaled(std::span<const float> w, std::size_t rows, std::size_t cols, std::span<float> alpha,
                     std::span<float> out);

// Ternary weight networks (Li & Liu 2016): delta = threshold_factor * mean |w| (0.7 in TWN),
// t_i = sign(w_i) if |w_i| > delta else 0, alpha = mean of |w_i| over |w_i| > delta (0 if none);
// out = alpha * t. Per tensor or per output channel as in binarize_scaled.
void ternarize(std::span<const float> w, std::size_t rows, std::size_t cols, double threshold_factor,
               std::span<float> alpha, std::span<float> out);

// A binarized neuron as FINN's matrix-vector-threshold unit computes it: inputs and weights are
// bits (1 = +1, 0 = -1), the dot product of K of them is 2 p - K with p = popcount(xnor(a, w)), and
// BatchNorm followed by sign() is folded into one compare of p against a threshold.
struct BinaryThreshold {
  std::int64_t threshold = 0;  // fire when p >= threshold ...
  bool invert = false;         // ... or, inverted, when p < threshold
  bool fire(std::int64_t popcount) const { return (popcount >= threshold) != invert; }
};

// The threshold equivalent to sign(gamma (x - mean) / sqrt(var + eps) + beta) >= 0 (sign(0) = +1)
// for every x = 2 p - K, p = 0..K, with the BatchNorm evaluated in double exactly as written: the
// fold searches the popcount at which that double expression changes sign (it is monotone in p),
// so the compare agrees with the float layer even at ties.
BinaryThreshold fold_batchnorm_sign(double gamma, double beta, double mean, double var, double eps,
                                    std::int64_t fan_in);
double batchnorm(double x, double gamma, double beta, double mean, double var, double eps);

// popcount(xnor(a, w)) over the low k bits of two packed bit vectors (bit i of word i / 64).
std::int64_t xnor_popcount(std::span<const std::uint64_t> a, std::span<const std::uint64_t> w, std::int64_t k);

}  // namespace bitsim::arith
