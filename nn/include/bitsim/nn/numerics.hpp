// The number format of one tensor class (weights, activations, errors, gradients, ...): fp32 (no
// quantization), a scalar arith format, or a block format (dynamic fixed point, OCP MX), each with
// its rounding and overflow. Tensors are stored as fp32 holding the quantized values exactly.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitsim/arith/block.hpp"
#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::nn {

struct Numerics {
  // Binary: sign(x) in {-1, +1} (BinaryConnect / BNN); with stochastic rounding, BinaryConnect's
  // stochastic binarization (+1 with probability hard_sigmoid(x)).
  // Scaled: integer codes times a scale (per tensor or per row), see Scheme.
  // OverflowRate: Courbariaux et al. 2014's dynamic fixed point, "dfx<wl,rate>": int<wl> codes
  // with one exponent per tensor that persists between steps and moves by the overflow-rate rule
  // (apply_overflow_rate()); apply() alone, without that state, quantizes like dfx<wl>.
  enum class Kind : std::uint8_t { Fp32, Scalar, Block, Binary, Scaled, OverflowRate };
  enum class Scheme : std::uint8_t {
    Xnor,     // "binary-scaled": sign(w) times alpha = mean |w| per row (XNOR-Net)
    Ternary,  // "ternary": TWN's {-1, 0, +1} times alpha per row (threshold 0.7 mean |w|)
    DorefaW,  // "dorefa-w<k>": DoReFa weights 2 round((2^k-1) y) / (2^k-1) - 1, y = tanh(w) / (2 max|tanh w|) + 1/2
    DorefaA,  // "dorefa-a<k>": DoReFa activations round((2^k-1) clip(x, 0, 1)) / (2^k-1)
    DorefaG,  // "dorefa-g<k>": DoReFa gradients 2 max|g| (round_k(g / (2 max|g|) + 1/2 + noise) - 1/2)
    // "syq-binary<row|layer>", "syq-ternary<row|layer>": SYQ (Faraone et al. 2018) weights
    // sign(w) masked by |w| >= eta (eta = 0 binary, kSyqEta max|w| ternary) times a learned scale
    // per row or per layer, which the layer holds as a parameter; apply() gives its initial
    // value, the mean |w| over the group's nonzero codes.
    Syq,
    // WAGE (Wu et al. 2018), sigma = 2^(1-k), Q(x) = sigma round(clip(x, -1 + sigma, 1 - sigma) / sigma):
    WageW,  // "wage-w<k>": Q(w), divided by the layer's alpha (the layer applies it)
    WageA,  // "wage-a<k>": Q(x)
    WageE,  // "wage-e<k>": Q(e / Shift(max|e|)), Shift(x) = 2^round(log2 x): the magnitude is dropped
    WageG,  // "wage-g<k>": left to the "wage" optimizer (apply() leaves gradients as they are)
    // Jacob et al. 2018's quantization-aware training, as integer-only inference runs it:
    Symmetric,  // "symmetric<k>": codes round(x / s), s = max|x| / (2^(k-1) - 1) per row (weights per channel)
    Affine,     // "affine<k>": codes q - Z, q = clamp(round(x / s) + Z, 0, 2^k - 1), s and Z from `range`
  };
  static constexpr double kSyqEta = 0.05;
  Kind kind = Kind::Fp32;
  Scheme scheme = Scheme::Xnor;  // Scaled
  int bits = 0;                  // Scaled: k of the DoReFa, WAGE, symmetric and affine schemes; SYQ: 1 binary, 2 ternary
  bool per_row = true;           // SYQ: a scale per row (output channel), else one per tensor
  // Affine: the real range [min, max] the scale and zero point come from (gemmlowp's
  // ChooseQuantizationParams, as nn::QuantParams::from_range); the layer sets it to the range it
  // tracks (an exponential moving average over training batches). Unset: the tensor's own range.
  std::optional<std::pair<double, double>> range;
  arith::Format format = arith::Format::fp32();  // Scalar: the format; Fp32: fp32
  arith::BlockFormat block;                                // Block; OverflowRate: dfx<wl>
  double max_overflow_rate = 1e-4;  // OverflowRate: the rule's maximum overflow rate
  int overflow_interval = 100;      // OverflowRate: steps between updates of the exponent
  arith::RoundSpec spec;

  // "fp32" (or "none") for no quantization; a scalar spec ("fixed<8,4>", "fp8e4m3", ...) that fp32
  // can hold; a block spec ("dfx<8>", "mxfp8e4m3", ...); "binary"; or a scaled scheme
  // ("binary-scaled", "ternary", "dorefa-w<k>", "dorefa-a<k>", "dorefa-g<k>", k in 1..16,
  // "syq-binary<row>", "syq-binary<layer>", "syq-ternary<row>", "syq-ternary<layer>",
  // "wage-w<k>", "wage-a<k>", "wage-e<k>", "wage-g<k>", "symmetric<k>", "affine<k>", k in 2..16),
  // or "dfx<wl,rate>" (the overflow-rate rule). Throws
  // arith::FormatError naming the bad token.
  static Numerics parse(std::string_view format, std::string_view rounding = "nearest-even",
                        std::string_view overflow = "", int sr_bits = 16);

  bool is_fp32() const { return kind == Kind::Fp32; }
  bool stochastic() const { return !is_fp32() && spec.rounding == arith::Rounding::Stochastic; }
  std::string describe() const;  // "fixed<8,4> nearest-even saturate"
  // Bits per element in memory (block scales not counted).
  int storage_bits() const;

  // x <- Q(x) in place; `shape` groups block formats (rows = output channels); stochastic rounding
  // draws element i's bits at index first_index + i of `sr`. Returns a scalar format that holds
  // every resulting value exactly (for a block format, the finest grid over its groups; fp32 for
  // fp32), which is what a MAC array sees as the operand format.
  //
  // Scaled schemes: with `scale` given, x receives the integer codes (as values) and `scale` the
  // factor to multiply them by (one per tensor, or one per row of `shape`): what an integer array
  // multiplies, and the scale unit applied after it. Without `scale`, x receives code x scale (the
  // effective values) and the result is fp32.
  arith::Format apply(std::span<float> x, arith::MatrixShape shape = {}, const arith::SrStream& sr = {},
                      std::uint64_t first_index = 0, std::vector<float>* scale = nullptr) const;
  // Whether the values apply() leaves (codes, for scaled schemes) are on a fixed-point grid, so an
  // integer accumulator can sum their products.
  bool integer_operands() const;
};

// DoReFa's weight transform as it is differentiated: the quantized weights are
// 2 quantize_k(y) - 1 with y = tanh(w) / (2 max|tanh(w)|) + 1/2, and only quantize_k is
// straight-through, so the gradient g with respect to them (what the layer's GEMM gives) becomes
// J^T g for f(w) = 2 y - 1 = tanh(w) / m, m = max_j |tanh(w_j)| (one tensor):
//   dL/dw_j = g_j (1 - t_j^2) / m - [j = j*] sign(t_j) (1 - t_j^2) / m^2 sum_i g_i t_i,
// t = tanh(w), j* the first index where |t| is largest (the max's gradient goes there). In double,
// the sum in index order; g is left as it is when m = 0 (all weights zero).
void dorefa_w_backward(std::span<const float> w, std::span<float> g);

// SYQ's backward for one layer of `rows` x `cols` weights w with codes q (in {-1, 0, +1}) and
// scales alpha (one, or one per row), from the gradient g with respect to the effective weights
// alpha q: alpha_grad[r] = sum over the group of q_j g_j (the gradients of the weights coded +1
// minus those coded -1: the chain rule of alpha q), in double in index order; and g_j <- alpha g_j
// where |w_j| <= 1, else 0 (the gradient with respect to the codes, through sign()'s clipped
// straight-through estimator).
void syq_backward(std::span<const float> w, std::span<const float> q, std::span<const float> alpha, std::size_t rows,
                  std::span<float> g, std::span<float> alpha_grad);

// The overflow-rate rule's state of one tensor, as a checkpoint buffer: {set (0 or 1), fl,
// overflows at fl, overflows at fl + 1, elements counted, step of the last update}.
inline constexpr std::size_t kOverflowRateState = 6;

// Courbariaux et al. 2014's dynamic fixed point on one tensor: x <- fixed<wl, fl> (rounding and
// overflow of n, stochastic bits from sr at first_index + i) with the tensor's persistent fl.
// Unset, fl starts where the largest |x| lies in [2^(wl-2), 2^(wl-1)) LSBs. In training, once
// n.overflow_interval steps have passed since the last update, fl first moves: one down (twice
// the range) when the overflow rate counted since then exceeds n.max_overflow_rate, else one up
// (half the range) when the rate at fl + 1 is at most n.max_overflow_rate; then this tensor's
// elements are counted (an overflow: x above (2^(wl-1) - 1) 2^-fl or below -2^(wl-1) 2^-fl).
// Outside training nothing is counted or moved. Returns fixed<wl, fl>.
arith::Format apply_overflow_rate(const Numerics& n, std::vector<double>& state, std::span<float> x,
                                  const arith::SrStream& sr, std::uint64_t first_index, std::uint64_t step, bool training);

// BNN's power-of-two approximation AP2(x) = sign(x) 2^round(log2 |x|) (0 for 0): a multiply by it
// is a shift. Exact: |x| = f 2^e with f in [1/2, 1) rounds to 2^(e-1) when 2f < sqrt(2), else 2^e.
double ap2(double x);

// std::round (to the nearest integer, halfway cases away from zero) without its library call, so
// loops over tensors vectorise: the fraction v - trunc(v) of a double is exact. nan stays nan,
// +-inf and -0 stay themselves.
inline double round_half_away(double v) {
  const double t = std::trunc(v);
  return std::abs(v - t) >= 0.5 ? t + std::copysign(1.0, v) : t;
}

// The narrowest signed fixed-point format holding every finite value of x exactly (fixed<1,0> when
// all are zero), or fp32 when that would take more than 64 bits.
arith::Format fixed_carrier(std::span<const float> x);

}  // namespace bitsim::nn
