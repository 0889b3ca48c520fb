// Binarized inference: stages, threshold folding by running the network's own layers, and the
// XNOR-popcount and integer-sum GEMMs on bits.
#include "bitsim/nn/popcount.hpp"

#include <fmt/format.h>

#include <bit>
#include <cmath>

#include "bitsim/nn/parallel.hpp"

namespace bitsim::nn {

namespace {

using Op = PopcountStage::Op;

// Sums the float network adds exactly (fp32 integers, and a 24-bit integer accumulator).
constexpr std::int64_t kMaxSum = std::int64_t{1} << 23;

bool binary(const Numerics& n) { return n.kind == Numerics::Kind::Binary && !n.stochastic(); }

std::vector<std::uint64_t> pack(const std::uint8_t* bits, std::int64_t k) {
  std::vector<std::uint64_t> w(std::size_t((k + 63) / 64), 0);
  for (std::int64_t i = 0; i < k; ++i)
    if (bits[i]) w[std::size_t(i / 64)] |= std::uint64_t{1} << (i % 64);
  return w;
}

int sum_bits(std::int64_t k) { return std::bit_width(std::uint64_t(k)) + 1; }  // a signed counter for -K..K

}  // namespace

PopcountNetwork::PopcountNetwork(const Experiment& x, Network& net) : x_(&x), net_(&net), shapes_(net.shapes()) {
  require_chain(x, "popcount");
  const std::vector<LayerSpec>& L = x.layers;
  const int nl = int(L.size());
  auto where = [&](int i) { return fmt::format("layer {} ({})", i, to_string(L[std::size_t(i)].type)); };
  auto is_gemm = [&](int i) { return L[std::size_t(i)].type == LayerType::Linear || L[std::size_t(i)].type == LayerType::Conv2d; };
  bool first_gemm = true, bits_flow = false;  // whether the tensor between stages is bits
  for (int i = 0; i < nl;) {
    const LayerSpec& spec = L[std::size_t(i)];
    PopcountStage s;
    s.first = s.last = i;
    if (is_gemm(i)) {
      const LayerNumerics nm = x.layer(i);
      if (!binary(nm.weights))
        throw IntegerError(fmt::format("{}: popcount inference needs deterministic binary weights, not '{}'", where(i),
                                       nm.weights.describe()));
      s.binary_input = binary(nm.activations);
      if (!s.binary_input && (!first_gemm || !nm.activations.integer_operands() || nm.activations.stochastic() ||
                              nm.activations.kind == Numerics::Kind::Scaled ||
                              nm.activations.kind == Numerics::Kind::OverflowRate))
        throw IntegerError(fmt::format("{}: popcount inference needs binary activations (the first GEMM layer's may be "
                                       "fixed point, rounded to nearest), not '{}'", where(i), nm.activations.describe()));
      if (s.binary_input && !bits_flow)
        throw IntegerError(fmt::format("{}: its binary input does not come from a binarized layer", where(i)));
      for (int j = i + 1; j < nl; ++j) {
        const LayerType t = L[std::size_t(j)].type;
        if (t != LayerType::BatchNorm && t != LayerType::HardTanh && t != LayerType::Sign && t != LayerType::Dropout) break;
        s.last = j;
      }
      // What reads the result: another GEMM layer (through pooling and flatten) takes bits; none
      // makes this the classifier.
      int next = s.last + 1;
      while (next < nl && (L[std::size_t(next)].type == LayerType::MaxPool || L[std::size_t(next)].type == LayerType::Flatten ||
                           L[std::size_t(next)].type == LayerType::Dropout))
        ++next;
      if (next == nl) {
        s.op = Op::Output;
        if (s.last + 1 != nl || spec.type != LayerType::Linear)
          throw IntegerError(fmt::format("{}: popcount inference needs a linear classifier whose outputs are the logits", where(i)));
      } else if (is_gemm(next)) {
        s.op = Op::Threshold;
        if (!binary(x.layer(next).activations))
          throw IntegerError(fmt::format("{}: popcount inference folds this layer's output into bits, but {} reads it as '{}'",
                                         where(i), where(next), x.layer(next).activations.describe()));
      } else {
        throw IntegerError(fmt::format("{}: not part of a binarized network's inference (popcount)", where(next)));
      }
      const std::vector<Param*> params = net.layers[std::size_t(i)]->params();
      const Tensor& w = params.at(0)->value;
      s.n = w.dim(0), s.k = w.dim(1);
      if (s.k >= kMaxSum) throw IntegerError(fmt::format("{}: K = {} is too large for exact sums", where(i), s.k));
      if (spec.type == LayerType::Conv2d) {
        const Shape& is = shapes_[std::size_t(i)];
        s.conv = sim::ConvShape{is[0], is[1], is[2], is[3], s.n, spec.kernel, spec.kernel, spec.stride ? spec.stride : 1, spec.padding};
      }
      std::vector<std::uint8_t> row(std::size_t(s.k));
      for (std::int64_t n = 0; n < s.n; ++n) {
        for (std::int64_t k = 0; k < s.k; ++k) row[std::size_t(k)] = arith::binarize(w.v[std::size_t(n * s.k + k)]) > 0;
        s.weights.push_back(pack(row.data(), s.k));
      }
      s.bias.assign(std::size_t(s.n), 0.0f);
      if (params.size() > 1) s.bias = params[1]->value.v;
      first_gemm = false;
      bits_flow = s.op == Op::Threshold;
      stages_.push_back(std::move(s));
      if (stages_.back().op == Op::Threshold && stages_.back().binary_input)
        stages_.back().thresholds = fold(stages_.back(), 1, 0, stages_.back().k);
      i = stages_.back().last + 1;
      continue;
    }
    switch (spec.type) {
      case LayerType::MaxPool:
        if (!bits_flow) throw IntegerError(fmt::format("{}: popcount inference pools bits only", where(i)));
        s.op = Op::MaxPool;
        s.kernel = spec.kernel, s.stride = spec.stride ? spec.stride : spec.kernel, s.padding = spec.padding;
        break;
      case LayerType::Flatten:
      case LayerType::Dropout: s.op = Op::Identity; break;
      default: throw IntegerError(fmt::format("{}: not part of a binarized network's inference (popcount)", where(i)));
    }
    stages_.push_back(s);
    ++i;
  }
  bits_.resize(stages_.size());
}

Tensor PopcountNetwork::tail(const PopcountStage& s, const std::vector<double>& sums, std::int64_t rows) {
  Tensor t(s.conv ? Shape{rows, s.n, 1, 1} : Shape{rows, s.n});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t n = 0; n < s.n; ++n) {
      float y = float(sums[std::size_t(r * s.n + n)]);  // exact: |sum| < 2^23
      y += s.bias[std::size_t(n)];                      // the layer's bias add, in fp32
      t.v[std::size_t(r * s.n + n)] = y;
    }
  std::mt19937_64 rng(x_->seed);
  Context ctx{false, x_->seed, 0, &rng, nullptr, nullptr};
  Tensor out;
  for (int j = s.first + 1; j <= s.last; ++j) {
    net_->layers[std::size_t(j)]->forward(t, out, ctx);
    std::swap(t, out);
  }
  return t;
}

std::vector<arith::BinaryThreshold> PopcountNetwork::fold(const PopcountStage& s, double scale, std::int64_t lo,
                                                          std::int64_t hi) {
  // The sum a value v stands for: 2 v - K for a popcount v, v * scale for a sum of codes.
  auto sum = [&](std::int64_t v) { return s.binary_input ? double(2 * v - s.k) : double(v) * scale; };
  const std::size_t n = std::size_t(s.n);
  auto fires = [&](const std::vector<std::int64_t>& v) {
    std::vector<double> sums(n);
    for (std::size_t j = 0; j < n; ++j) sums[j] = sum(v[j]);
    const Tensor t = tail(s, sums, 1);
    std::vector<bool> f(n);
    for (std::size_t j = 0; j < n; ++j) f[j] = arith::binarize(t.v[j]) > 0;  // what the next layer binarizes to
    return f;
  };
  // Every layer after the GEMM is monotone in its input, so each neuron's output changes at most
  // once between lo and hi: find where, for all neurons at once.
  const std::vector<bool> at_lo = fires(std::vector<std::int64_t>(n, lo)), at_hi = fires(std::vector<std::int64_t>(n, hi));
  std::vector<std::int64_t> a(n, lo), b(n, hi);  // the change lies in (a, b]
  for (;;) {
    std::vector<std::int64_t> mid(n);
    bool open = false;
    for (std::size_t j = 0; j < n; ++j) {
      mid[j] = a[j] + (b[j] - a[j]) / 2;
      open = open || (at_lo[j] != at_hi[j] && b[j] - a[j] > 1);
    }
    if (!open) break;
    const std::vector<bool> f = fires(mid);
    for (std::size_t j = 0; j < n; ++j)
      if (at_lo[j] != at_hi[j] && b[j] - a[j] > 1) (f[j] == at_lo[j] ? a[j] : b[j]) = mid[j];
  }
  std::vector<arith::BinaryThreshold> t(n);
  for (std::size_t j = 0; j < n; ++j) {
    if (at_lo[j] == at_hi[j]) t[j] = {at_lo[j] ? lo : hi + 1, false};  // always or never
    else t[j] = {b[j], at_lo[j]};  // increasing: fire from b on; decreasing: fire below b
  }
  return t;
}

const Tensor& PopcountNetwork::forward(const Tensor& x, std::vector<GemmRecord>* gemms) {
  const std::int64_t batch = x.dim(0);
  std::vector<std::uint8_t> cur;  // bits between stages
  Shape shape = x.shape;
  for (std::size_t si = 0; si < stages_.size(); ++si) {
    PopcountStage& s = stages_[si];
    Shape out_shape = shapes_[std::size_t(s.last + 1)];
    out_shape[0] = batch;
    std::vector<std::uint8_t>& out = bits_[si];
    if (s.op == Op::Identity) {
      out = cur;
    } else if (s.op == Op::MaxPool) {
      const std::int64_t planes = shape[0] * shape[1], h = shape[2], w = shape[3], ho = out_shape[2], wo = out_shape[3];
      out.assign(std::size_t(planes * ho * wo), 0);
      for (std::int64_t p = 0; p < planes; ++p)
        for (std::int64_t oy = 0; oy < ho; ++oy)
          for (std::int64_t ox = 0; ox < wo; ++ox) {
            std::uint8_t any = 0;
            const std::int64_t y0 = oy * s.stride - s.padding, x0 = ox * s.stride - s.padding;
            for (std::int64_t iy = std::max<std::int64_t>(y0, 0); iy < std::min(y0 + s.kernel, h); ++iy)
              for (std::int64_t ix = std::max<std::int64_t>(x0, 0); ix < std::min(x0 + s.kernel, w); ++ix)
                any |= cur[std::size_t((p * h + iy) * w + ix)];
            out[std::size_t((p * ho + oy) * wo + ox)] = any;
          }
    } else {
      // The GEMM's A: M rows of K, from bits (padding +1, as binarize(0)) or from the input's
      // values (padding 0) quantized by the layer's activation numerics as the layer does.
      const std::int64_t hw = s.conv ? s.conv->out_height() * s.conv->out_width() : 1, m = batch * hw;
      std::vector<float> values;  // code input: the im2col matrix (M x K)
      std::vector<std::uint8_t> rows_bits;
      auto gather = [&](auto&& at, auto pad, auto& dst) {
        dst.resize(std::size_t(m * s.k));
        for (std::int64_t b = 0; b < batch; ++b)
          for (std::int64_t pix = 0; pix < hw; ++pix) {
            auto* row = dst.data() + (b * hw + pix) * s.k;
            if (!s.conv) {
              for (std::int64_t k = 0; k < s.k; ++k) row[k] = at(b * s.k + k);
              continue;
            }
            const sim::ConvShape& c = *s.conv;
            const std::int64_t oy = pix / c.out_width(), ox = pix % c.out_width();
            for (std::int64_t ch = 0; ch < c.in_channels; ++ch)
              for (std::int64_t ky = 0; ky < c.kernel_h; ++ky)
                for (std::int64_t kx = 0; kx < c.kernel_w; ++kx) {
                  const std::int64_t iy = oy * c.stride + ky - c.padding, ix = ox * c.stride + kx - c.padding;
                  const bool inside = iy >= 0 && iy < c.height && ix >= 0 && ix < c.width;
                  *row++ = inside ? at(((b * c.in_channels + ch) * c.height + iy) * c.width + ix) : pad;
                }
          }
      };
      std::vector<std::int64_t> sums(std::size_t(m * s.n));
      arith::Format fa = arith::Format::fixed(2, 0);
      if (s.binary_input) {
        gather([&](std::int64_t i) { return cur[std::size_t(i)]; }, std::uint8_t(1), rows_bits);
        parallel_for(m, [&](std::int64_t r) {
          const std::vector<std::uint64_t> a = pack(rows_bits.data() + r * s.k, s.k);
          for (std::int64_t n = 0; n < s.n; ++n)
            sums[std::size_t(r * s.n + n)] = arith::xnor_popcount(a, s.weights[std::size_t(n)], s.k);
        });
      } else {
        gather([&](std::int64_t i) { return x.v[std::size_t(i)]; }, 0.0f, values);
        const Numerics& q = net_->layers[std::size_t(s.first)]->numerics.activations;
        fa = q.apply(values, {std::size_t(m), std::size_t(s.k)});
        if (fa.is_float()) throw IntegerError(fmt::format("layer {}: activations '{}' are not on a fixed-point grid", s.first, q.describe()));
        const double step = std::ldexp(1.0, -fa.fl);
        std::vector<std::int64_t> codes(values.size());  // exact: the values are on the 2^-fl grid
        std::int64_t max_code = 0;
        for (std::size_t i = 0; i < values.size(); ++i) {
          codes[i] = std::llround(double(values[i]) / step);
          max_code = std::max<std::int64_t>(max_code, std::llabs(codes[i]));
        }
        if (max_code * s.k >= kMaxSum)
          throw IntegerError(fmt::format("layer {}: sums of {} codes up to {} could leave 24 bits", s.first, s.k, max_code));
        parallel_for(m, [&](std::int64_t r) {
          const std::int64_t* row = codes.data() + r * s.k;
          for (std::int64_t n = 0; n < s.n; ++n) {
            std::int64_t acc = 0;
            for (std::int64_t k = 0; k < s.k; ++k)
              acc += (s.weights[std::size_t(n)][std::size_t(k / 64)] >> (k % 64)) & 1 ? row[k] : -row[k];
            sums[std::size_t(r * s.n + n)] = acc;
          }
        });
        if (s.op == Op::Threshold && !s.code_thresholds.count(fa.fl))
          s.code_thresholds[fa.fl] = fold(s, step, -(kMaxSum - 1), kMaxSum - 1);
      }
      if (gemms) {
        GemmRecord rec{s.first, Phase::Forward, m, s.n, s.k, fa, arith::Format::fixed(2, 0), GemmPath::Popcount,
                       s.binary_input, s.conv};
        if (rec.conv) rec.conv->batch = batch;
        rec.acc = arith::Format::fixed(sum_bits(s.binary_input ? s.k : s.k << (fa.wl - 1)), 0);
        rec.after = s.op == Op::Threshold ? GemmRecord::After::Threshold : GemmRecord::After::Affine;
        if (s.op == Op::Threshold) rec.out_bits = 1;  // one bit per neuron leaves the compare
        rec.sign_operand = !s.binary_input;            // codes times +-1 weights: adds and subtracts
        gemms->push_back(rec);
      }
      if (s.op == Op::Output) {
        std::vector<double> d(sums.size());
        for (std::size_t i = 0; i < d.size(); ++i)
          d[i] = s.binary_input ? double(2 * sums[i] - s.k) : double(sums[i]) * std::ldexp(1.0, -fa.fl);
        logits_ = tail(s, d, m);
        return logits_;
      }
      const std::vector<arith::BinaryThreshold>& th = s.binary_input ? s.thresholds : s.code_thresholds.at(fa.fl);
      out.assign(std::size_t(m * s.n), 0);
      for (std::int64_t r = 0; r < m; ++r) {
        const std::int64_t b = r / hw, pix = r % hw;
        for (std::int64_t n = 0; n < s.n; ++n)
          out[std::size_t(s.conv ? (b * s.n + n) * hw + pix : r * s.n + n)] = th[std::size_t(n)].fire(sums[std::size_t(r * s.n + n)]);
      }
    }
    cur = out;
    shape = out_shape;
  }
  throw std::logic_error("popcount network without a classifier");
}

nlohmann::json PopcountNetwork::describe() const {
  nlohmann::json stages = nlohmann::json::array();
  for (const PopcountStage& s : stages_) {
    const char* op = s.op == Op::Threshold ? "threshold" : s.op == Op::Output ? "output" : s.op == Op::MaxPool ? "maxpool" : "identity";
    nlohmann::json j = {{"layers", nlohmann::json::array({s.first, s.last})}, {"op", op}};
    if (s.op == Op::Threshold || s.op == Op::Output) {
      j["input"] = s.binary_input ? "bits (XNOR-popcount)" : "fixed-point codes (integer sums)";
      j["neurons"] = s.n;
      j["fan_in"] = s.k;
    }
    if (s.op == Op::Threshold && s.binary_input) {
      std::int64_t inverted = 0, constant = 0;
      for (const auto& t : s.thresholds) inverted += t.invert, constant += t.threshold <= 0 || t.threshold > s.k;
      j["inverted_thresholds"] = inverted;
      j["constant_neurons"] = constant;
    }
    stages.push_back(j);
  }
  return stages;
}

}  // namespace bitsim::nn
