#include "bitsim/nn/numerics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "bitsim/arith/binary.hpp"
#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/requantize.hpp"

namespace bitsim::nn {

using arith::Format;

Numerics Numerics::parse(std::string_view format, std::string_view rounding, std::string_view overflow, int sr_bits) {
  Numerics n;
  if (format == "fp32" || format == "none") return n;
  if (format == "binary") {
    n.kind = Kind::Binary;
    n.spec.rounding = arith::parse_rounding(rounding);
    if (n.spec.rounding != arith::Rounding::NearestEven && n.spec.rounding != arith::Rounding::Stochastic)
      throw arith::FormatError(fmt::format("binary takes nearest-even (sign) or stochastic rounding, not {}", arith::quoted(rounding)));
    if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
    n.spec.sr_bits = sr_bits;
    return n;
  }
  struct Named {
    std::string_view prefix;
    Scheme scheme;
    bool has_bits;
  };
  for (std::string_view syq : {"syq-binary", "syq-ternary"}) {
    if (!format.starts_with(syq)) continue;
    const std::string_view rest = format.substr(syq.size());
    if (rest != "<row>" && rest != "<layer>")
      throw arith::FormatError(fmt::format("bad format {}: expected {}<row> or {}<layer>", arith::quoted(format), syq, syq));
    n.kind = Kind::Scaled;
    n.scheme = Scheme::Syq;
    n.bits = syq == "syq-binary" ? 1 : 2;
    n.per_row = rest == "<row>";
    return n;
  }
  for (const Named& nm : {Named{"binary-scaled", Scheme::Xnor, false}, Named{"ternary", Scheme::Ternary, false},
                          Named{"dorefa-w", Scheme::DorefaW, true}, Named{"dorefa-a", Scheme::DorefaA, true},
                          Named{"dorefa-g", Scheme::DorefaG, true}, Named{"wage-w", Scheme::WageW, true},
                          Named{"wage-a", Scheme::WageA, true}, Named{"wage-e", Scheme::WageE, true},
                          Named{"wage-g", Scheme::WageG, true}, Named{"symmetric", Scheme::Symmetric, true},
                          Named{"affine", Scheme::Affine, true}}) {
    if (!format.starts_with(nm.prefix)) continue;
    n.kind = Kind::Scaled;
    n.scheme = nm.scheme;
    const std::string_view rest = format.substr(nm.prefix.size());
    if (nm.has_bits) {
      int k = 0;
      bool ok = rest.size() >= 3 && rest.front() == '<' && rest.back() == '>';
      if (ok) {
        const auto r = std::from_chars(rest.data() + 1, rest.data() + rest.size() - 1, k);
        ok = r.ec == std::errc() && r.ptr == rest.data() + rest.size() - 1 && k >= 1 && k <= 16;
      }
      const int min_k = nm.scheme == Scheme::Symmetric || nm.scheme == Scheme::Affine ? 2 : 1;
      ok = ok && k >= min_k;
      if (!ok)
        throw arith::FormatError(fmt::format("bad format {}: expected {}<k> with k in {}..16", arith::quoted(format), nm.prefix, min_k));
      n.bits = k;
      if (format.starts_with("wage") && k < 2)
        throw arith::FormatError(fmt::format("bad format {}: expected {}<k> with k in 2..16", arith::quoted(format), nm.prefix));
    } else if (!rest.empty()) {
      throw arith::FormatError(fmt::format("bad format {}: expected {}", arith::quoted(format), nm.prefix));
    }
    if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
    n.spec.sr_bits = sr_bits;
    return n;
  }
  if (format.starts_with("dfx<") && format.ends_with(",rate>")) {
    n.kind = Kind::OverflowRate;
    const std::string plain = fmt::format("{}>", format.substr(0, format.size() - 6));
    n.block = arith::BlockFormat::parse(plain);
    if (n.block.grouping != arith::Grouping::Tensor)
      throw arith::FormatError(fmt::format("bad format {}: expected dfx<wl,rate>", arith::quoted(format)));
  } else if (format.starts_with("dfx") || format.starts_with("mx")) {
    n.kind = Kind::Block;
    n.block = arith::BlockFormat::parse(format);
  } else {
    n.kind = Kind::Scalar;
    n.format = Format::parse(format);
    if (!arith::fits_fp32(n.format))
      throw arith::FormatError(fmt::format("format '{}' has values fp32 cannot hold; tensors are stored as fp32", format));
  }
  n.spec.rounding = arith::parse_rounding(rounding);
  const Format& f = n.kind == Kind::Block || n.kind == Kind::OverflowRate ? n.block.element : n.format;
  n.spec.overflow = overflow.empty() ? arith::default_overflow(f) : arith::parse_overflow(overflow);
  if (n.kind == Kind::Scalar) arith::check_overflow_applies(f, n.spec.overflow);
  if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
  n.spec.sr_bits = sr_bits;
  return n;
}

std::string Numerics::describe() const {
  if (is_fp32()) return "fp32";
  if (kind == Kind::Binary) return stochastic() ? "binary stochastic" : "binary";
  if (kind == Kind::Scaled) {
    switch (scheme) {
      case Scheme::Xnor: return "binary-scaled";
      case Scheme::Ternary: return "ternary";
      case Scheme::DorefaW: return fmt::format("dorefa-w<{}>", bits);
      case Scheme::DorefaA: return fmt::format("dorefa-a<{}>", bits);
      case Scheme::DorefaG: return fmt::format("dorefa-g<{}>", bits);
      case Scheme::Syq: return fmt::format("syq-{}<{}>", bits == 1 ? "binary" : "ternary", per_row ? "row" : "layer");
      case Scheme::WageW: return fmt::format("wage-w<{}>", bits);
      case Scheme::WageA: return fmt::format("wage-a<{}>", bits);
      case Scheme::WageE: return fmt::format("wage-e<{}>", bits);
      case Scheme::WageG: return fmt::format("wage-g<{}>", bits);
      case Scheme::Symmetric: return fmt::format("symmetric<{}>", bits);
      case Scheme::Affine: return fmt::format("affine<{}>", bits);
    }
  }
  const std::string f = kind == Kind::OverflowRate ? fmt::format("dfx<{},rate>", block.element.wl)
                        : kind == Kind::Block       ? block.spec()
                                                    : format.spec();
  return fmt::format("{} {} {}", f, arith::to_string(spec.rounding), arith::to_string(spec.overflow));
}

int Numerics::storage_bits() const {
  switch (kind) {
    case Kind::Fp32: return 32;
    case Kind::Scalar: return format.width();
    case Kind::Block:
    case Kind::OverflowRate: return block.element.width();
    case Kind::Binary: return 1;
    case Kind::Scaled:
      if (scheme == Scheme::WageW || scheme == Scheme::WageA || scheme == Scheme::WageE || scheme == Scheme::WageG) return bits;
      return scheme == Scheme::Xnor ? 1 : scheme == Scheme::Ternary ? 2 : scheme == Scheme::Syq ? bits : bits + (scheme == Scheme::DorefaA || scheme == Scheme::Affine ? 0 : 1);
  }
  return 32;
}

bool Numerics::integer_operands() const {
  switch (kind) {
    case Kind::Fp32: return false;
    case Kind::Scalar: return !format.is_float();
    case Kind::Block: return block.scaling == arith::BlockScaling::DynamicFixed;
    case Kind::OverflowRate: return true;
    case Kind::Binary: return true;
    case Kind::Scaled: return scheme != Scheme::DorefaG && scheme != Scheme::WageG;  // gradients are not GEMM operands
  }
  return false;
}

namespace {

// DoReFa's and WAGE's round(): to the nearest integer, ties to even (TensorFlow's tf.round). The
// hardware's own IEEE roundToIntegralTiesToEven (the default rounding mode, which bitsim never
// changes) is exact for every double.
double round_half_even(double v) { return std::nearbyint(v); }


// The scaled schemes: x <- integer codes, scale <- per-row (or one) factors; returns the codes' format.
Format scaled_codes(const Numerics& n, std::span<float> x, arith::MatrixShape shape, const arith::SrStream& sr,
                    std::uint64_t first_index, std::vector<float>& scale) {
  const std::size_t rows = shape.cols ? shape.rows : 1, cols = shape.cols ? shape.cols : x.size();
  const double levels = double((1 << n.bits) - 1);
  switch (n.scheme) {
    case Numerics::Scheme::Xnor:
    case Numerics::Scheme::Ternary: {
      scale.assign(rows, 0.0f);
      std::vector<float> out(x.size());
      if (n.scheme == Numerics::Scheme::Xnor) arith::binarize_scaled(x, rows, cols, scale, out);
      else arith::ternarize(x, rows, cols, 0.7, scale, out);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
          const float v = out[r * cols + c];
          // code = sign, or 0; alpha = 0 (an all-zero row) leaves sign(w) for XNOR, 0 for ternary.
          x[r * cols + c] = n.scheme == Numerics::Scheme::Xnor ? arith::binarize(x[r * cols + c])
                                                               : (v > 0 ? 1.0f : v < 0 ? -1.0f : 0.0f);
        }
      return Format::fixed(2, 0);
    }
    case Numerics::Scheme::DorefaW: {
      double m = 0;
      for (float v : x) m = std::max(m, std::abs(std::tanh(double(v))));
      for (float& v : x) {
        const double y = m > 0 ? std::tanh(double(v)) / (2 * m) + 0.5 : 0.5;
        v = float(2 * round_half_even(levels * y) - levels);  // odd integers in [-(2^k-1), 2^k-1]
      }
      scale.assign(1, float(1 / levels));
      return Format::fixed(n.bits + 1, 0);
    }
    case Numerics::Scheme::Syq: {
      const std::size_t groups = n.per_row ? rows : 1, g = x.size() / groups;
      double eta = 0;
      if (n.bits == 2) {
        for (float v : x) eta = std::max(eta, std::abs(double(v)));
        eta *= Numerics::kSyqEta;
      }
      scale.assign(groups, 0.0f);
      for (std::size_t r = 0; r < groups; ++r) {
        double sum = 0;
        std::size_t kept = 0;
        for (std::size_t i = r * g; i < (r + 1) * g; ++i) {
          const double v = x[i];
          if (std::abs(v) < eta) {
            x[i] = 0.0f;
            continue;
          }
          sum += std::abs(v), ++kept;
          x[i] = v >= 0 ? 1.0f : -1.0f;  // sign(0) = +1
        }
        scale[r] = kept ? float(sum / double(kept)) : 0.0f;
      }
      return Format::fixed(2, 0);
    }
    case Numerics::Scheme::WageW:
    case Numerics::Scheme::WageA:
    case Numerics::Scheme::WageE: {
      const double sigma = std::ldexp(1.0, 1 - n.bits), lim = std::ldexp(1.0, n.bits - 1) - 1;
      double shift = 1;
      if (n.scheme == Numerics::Scheme::WageE) {
        double m = 0;
        for (float v : x) m = std::max(m, std::abs(double(v)));
        shift = m > 0 ? ap2(m) : 1;
      }
      for (float& v : x) v = float(std::clamp(round_half_even(double(v) / shift / sigma), -lim, lim));
      scale.assign(1, float(sigma));
      return Format::fixed(n.bits, 0);
    }
    case Numerics::Scheme::WageG:  // apply() returns before: the optimizer quantizes WAGE's updates
      scale.clear();
      return Format::fp32();
    case Numerics::Scheme::DorefaA:
      for (float& v : x) v = float(round_half_even(levels * std::clamp(double(v), 0.0, 1.0)));
      scale.assign(1, float(1 / levels));
      return Format::fixed(n.bits + 1, 0);
    case Numerics::Scheme::DorefaG: {
      // 2 max|g| (round_k(g / (2 max|g|) + 1/2 + noise) - 1/2), noise uniform in +-1/(2 (2^k-1)),
      // with round_k(v) = round((2^k - 1) v) / (2^k - 1): codes 2 round(.) - (2^k - 1), scale max|g| / (2^k - 1).
      double m = 0;
      for (float v : x) m = std::max(m, std::abs(double(v)));
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double noise = (double(sr.bits(first_index + i, 16)) / 65536.0 - 0.5) / levels;
        const double y = m > 0 ? double(x[i]) / (2 * m) + 0.5 + noise : 0.5;
        x[i] = float(2 * std::clamp(round_half_even(levels * y), 0.0, levels) - levels);
      }
      scale.assign(1, float(m / levels));
      return Format::fixed(n.bits + 1, 0);
    }
    case Numerics::Scheme::Symmetric: {
      // Per row (an output channel of the weights): codes -(2^(k-1) - 1) .. 2^(k-1) - 1, rounded
      // half away from zero as TFLite's quantizer does; an all-zero row keeps scale 1.
      const double top = double((1 << (n.bits - 1)) - 1);
      scale.assign(rows, 1.0f);
      for (std::size_t r = 0; r < rows; ++r) {
        double m = 0;
        for (std::size_t c = 0; c < cols; ++c) m = std::max(m, std::abs(double(x[r * cols + c])));
        const double s = m > 0 ? m / top : 1.0;
        scale[r] = float(s);
        for (std::size_t c = 0; c < cols; ++c)
          x[r * cols + c] = float(std::clamp(round_half_away(double(x[r * cols + c]) / double(scale[r])), -top, top));
      }
      return Format::fixed(n.bits, 0);
    }
    case Numerics::Scheme::Affine: {
      // One scale and zero point for the tensor, from the range (or the tensor's min and max); the
      // codes q - Z are what an integer array multiplies after subtracting the zero point.
      double lo = 0, hi = 0;
      if (n.range) {
        lo = n.range->first, hi = n.range->second;
      } else if (!x.empty()) {
        const auto [a, b] = std::minmax_element(x.begin(), x.end());
        lo = *a, hi = *b;
      }
      const arith::AffineParams p = arith::choose_quantization_params(lo, hi, (1 << n.bits) - 1);
      const double z = p.zero_point;
      for (float& v : x) v = float(std::clamp(round_half_away(double(v) / p.scale) + z, 0.0, levels) - z);
      scale.assign(1, float(p.scale));
      return Format::fixed(n.bits + 1, 0);
    }
  }
  return Format::fixed(2, 0);
}

}  // namespace

Format Numerics::apply(std::span<float> x, arith::MatrixShape shape, const arith::SrStream& sr,
                       std::uint64_t first_index, std::vector<float>* scale) const {
  if (kind == Kind::Scaled && scheme == Scheme::WageG) {
    if (scale) scale->clear();
    return Format::fp32();
  }
  if (kind == Kind::Scaled) {
    std::vector<float> own;
    std::vector<float>& s = scale ? *scale : own;
    const Format codes = scaled_codes(*this, x, shape, sr, first_index, s);
    if (scale) return codes;
    const std::size_t cols = s.size() > 1 ? x.size() / s.size() : x.size();
    for (std::size_t i = 0; i < x.size(); ++i) x[i] *= s.size() > 1 ? s[i / cols] : s[0];  // effective values
    // WAGE's values code x 2^(1-k) lie on fixed<k, k-1>'s grid.
    if (scheme == Scheme::WageW || scheme == Scheme::WageA || scheme == Scheme::WageE) return Format::fixed(bits, bits - 1);
    return Format::fp32();
  }
  if (scale) scale->clear();
  switch (kind) {
    case Kind::Fp32: return format;
    case Kind::Scalar:
      arith::quantize_f32(format, spec, x, x, sr, first_index);
      return format;
    case Kind::Binary:
      if (stochastic()) arith::binarize_stochastic(x, x, sr, first_index, spec.sr_bits);
      else arith::binarize(x, x);
      return Format::fixed(2, 0);  // holds -1 and +1
    case Kind::Scaled:  // handled above
    case Kind::OverflowRate:  // without its state: per-tensor dfx<wl>
    case Kind::Block: break;
  }
  // Block formats: stochastic rounding indexes elements from 0 within the tensor, so the caller's
  // offset goes into the stream id instead.
  const arith::SrStream s{sr.seed, sr.stream + first_index};
  std::vector<int> scale_exp;
  arith::fake_quantize_block(block, x, x, spec, s, shape.cols ? shape : arith::MatrixShape{1, x.size()}, &scale_exp);
  if (block.scaling != arith::BlockScaling::DynamicFixed || scale_exp.empty()) return fixed_carrier(x);
  // Dynamic fixed point: group g holds fixed<wl, fl_g> values (fl_g = -scale_exp), so one
  // fixed<wl + fl_max - fl_min, fl_max> holds them all.
  const auto [lo, hi] = std::minmax_element(scale_exp.begin(), scale_exp.end());
  const int fl_max = -*lo, fl_min = -*hi, wl = block.element.wl + fl_max - fl_min;
  return wl <= 64 ? Format::fixed(wl, fl_max) : fixed_carrier(x);
}

void dorefa_w_backward(std::span<const float> w, std::span<float> g) {
  double m = 0, sum = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double t = std::tanh(double(w[i]));
    if (std::abs(t) > m) m = std::abs(t), at = i;
    sum += double(g[i]) * t;
  }
  if (m == 0) return;
  const double t_at = std::tanh(double(w[at]));
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double t = i == at ? t_at : std::tanh(double(w[i]));
    double d = double(g[i]) * (1 - t * t) / m;
    if (i == at) d -= (t < 0 ? -1.0 : 1.0) * (1 - t * t) / (m * m) * sum;
    g[i] = float(d);
  }
}

void syq_backward(std::span<const float> w, std::span<const float> q, std::span<const float> alpha, std::size_t rows,
                  std::span<float> g, std::span<float> alpha_grad) {
  const std::size_t cols = w.size() / rows, per = alpha.size() > 1 ? cols : w.size();
  std::vector<double> sum(alpha.size(), 0.0);
  for (std::size_t i = 0; i < w.size(); ++i) {
    const std::size_t r = i / per;
    sum[r] += double(q[i]) * double(g[i]);
    g[i] = std::abs(w[i]) <= 1.0f ? alpha[r] * g[i] : 0.0f;
  }
  for (std::size_t r = 0; r < alpha.size(); ++r) alpha_grad[r] = float(sum[r]);
}

Format apply_overflow_rate(const Numerics& n, std::vector<double>& state, std::span<float> x, const arith::SrStream& sr,
                           std::uint64_t first_index, std::uint64_t step, bool training) {
  if (state.size() != kOverflowRateState) state.assign(kOverflowRateState, 0.0);
  const int wl = n.block.element.wl;
  if (state[0] == 0) {
    double m = 0;
    for (float v : x)
      if (std::isfinite(v)) m = std::max(m, std::abs(double(v)));
    if (m > 0) {
      int e = 0;
      std::frexp(m, &e);  // m in [2^(e-1), 2^e)
      state[0] = 1, state[1] = wl - 1 - e, state[5] = double(step);
    }
  }
  if (training && state[0] != 0 && double(step) >= state[5] + n.overflow_interval) {
    if (state[4] > 0) {
      if (state[2] / state[4] > n.max_overflow_rate) state[1] -= 1;
      else if (state[3] / state[4] <= n.max_overflow_rate) state[1] += 1;
    }
    state[2] = state[3] = state[4] = 0, state[5] = double(step);
  }
  // fixed<wl, fl> values stay within fp32's range.
  state[1] = std::clamp(state[1], double(wl - 120), 120.0);
  const int fl = int(state[1]);
  const Format f = Format::fixed(wl, fl);
  if (training && state[0] != 0) {
    const double hi = std::ldexp(std::ldexp(1.0, wl - 1) - 1, -fl), lo = -std::ldexp(1.0, wl - 1 - fl);
    double over = 0, over_half = 0;
    for (float v : x) {
      over += v > hi || v < lo;
      over_half += v > hi / 2 || v < lo / 2;
    }
    state[2] += over, state[3] += over_half, state[4] += double(x.size());
  }
  arith::quantize_f32(f, n.spec, x, x, sr, first_index);
  return f;
}

double ap2(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e = 0;
  const double f = std::frexp(std::abs(x), &e);
  const double p = std::ldexp(1.0, 2 * f < std::sqrt(2.0) ? e - 1 : e);
  return x < 0 ? -p : p;
}

Format fixed_carrier(std::span<const float> x) {
  // Each finite nonzero v = sig * 2^e2 (an integer significand from the fp32 fields): the grid needs
  // -(e2 + trailing zeros of sig) fraction bits, the magnitude e2 + bit width of sig integer bits,
  // plus a sign bit.
  int fl = -1000, top = -1000;
  for (float v : x) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const std::uint32_t biased = (bits >> 23) & 0xff, mant = bits & 0x7fffff;
    if (biased == 0xff || (biased == 0 && mant == 0)) continue;  // inf, nan, zero
    const std::uint32_t sig = biased ? (mant | 0x800000u) : mant;
    const int e2 = biased ? int(biased) - 150 : -149;
    fl = std::max(fl, -(e2 + std::countr_zero(sig)));
    top = std::max(top, e2 + int(std::bit_width(sig)));
  }
  if (top == -1000) return Format::fixed(1, 0);
  const int wl = top + fl + 1;
  if (wl > 64) return Format::fp32();
  return Format::fixed(wl, fl);
}

}  // namespace bitsim::nn
