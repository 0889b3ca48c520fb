// Binary and ternary quantizers of weight/activation tensors: BinaryConnect (deterministic and
// stochastic), XNOR-Net scaled binary, and TWN-style ternary with a threshold and scale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

// sign(x) with sign(0) = sign(-0) = +1 (BinaryConnect and BNN binarize zero to +1); nan -> +1.
float binarize(float x);

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

}  // namespace bitsim::arith
