// Integer-only inference: calibration, weight and bias quantization, requantizer derivation, and
// the integer stages (im2col on codes, the int8 GEMM kernels, gemmlowp's output pipeline).
#include "bitsim/nn/integer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bitsim/nn/parallel.hpp"
#include "bitsim/nn/trainer.hpp"

namespace bitsim::nn {

QuantParams QuantParams::from_range(double min, double max) {
  const arith::AffineParams a = arith::choose_quantization_params(min, max, 255);
  return {a.scale, a.zero_point};
}

std::uint8_t QuantParams::quantize(float x) const {
  if (std::isnan(x)) return std::uint8_t(zero_point);
  const double q = std::round(double(x) / scale) + zero_point;
  return std::uint8_t(std::clamp(q, 0.0, 255.0));
}

void IntegerOptions::set_calibration(const std::string& spec) {
  if (spec == "minmax" || spec == "ema") {
    calibration = spec == "ema" ? Calibration::Ema : Calibration::MinMax;
    return;
  }
  const std::string prefix = "percentile";
  if (spec.rfind(prefix, 0) == 0) {
    const std::string rest = spec.substr(prefix.size());
    if (rest.empty()) {
      calibration = Calibration::Percentile;
      return;
    }
    if (rest[0] == ':') {
      std::size_t used = 0;
      double p = 0;
      try {
        p = std::stod(rest.substr(1), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used > 0 && used == rest.size() - 1 && p > 0 && p <= 100) {
        calibration = Calibration::Percentile;
        percentile = p;
        return;
      }
    }
  }
  throw std::invalid_argument(
      fmt::format("calibration '{}': expected minmax, ema, percentile or percentile:P with 0 < P <= 100", spec));
}

std::string IntegerOptions::describe() const {
  const std::string how = calibration == Calibration::MinMax ? "minmax"
                          : calibration == Calibration::Ema ? "ema (min/max where none was tracked)"
                                                            : fmt::format("percentile:{}", percentile);
  return fmt::format("{} over {} batches of {}; weights {}", how, batches, batch,
                     per_channel ? "int8 symmetric per channel" : "uint8 asymmetric per tensor");
}

namespace {

using Op = IntegerStage::Op;

std::string_view op_name(Op op) {
  switch (op) {
    case Op::Gemm: return "gemm";
    case Op::MaxPool: return "maxpool";
    case Op::AvgPool: return "avgpool";
    case Op::GlobalAvgPool: return "globalavgpool";
    case Op::Clamp: return "clamp";
    case Op::Add: return "add";
    case Op::Identity: return "identity";
  }
  return "?";
}

// The range a calibrated activation's values span, as the options choose it.
class RangeObserver {
 public:
  explicit RangeObserver(const IntegerOptions& opt) : opt_(opt) {}
  void observe(const std::vector<float>& v, int activation) {
    for (float f : v)
      if (!std::isfinite(f))
        throw IntegerError(fmt::format("calibration: activation {} has a non-finite value; the fp32 network does not "
                                       "compute finite outputs on the calibration data", activation));
    if (opt_.calibration != Calibration::Percentile) {
      const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
      if (lo != v.end()) min_ = std::min(min_, double(*lo)), max_ = std::max(max_, double(*hi));
      return;
    }
    // At most kKeep values a batch, evenly strided, so that large layers stay in memory.
    constexpr std::size_t kKeep = std::size_t(1) << 21;
    const std::size_t step = std::max<std::size_t>(1, (v.size() + kKeep - 1) / kKeep);
    for (std::size_t i = 0; i < v.size(); i += step) values_.push_back(v[i]);
  }
  QuantParams params() {
    if (opt_.calibration != Calibration::Percentile) return QuantParams::from_range(min_, max_);
    if (values_.empty()) return {};
    auto at = [&](double pct) {
      const auto i = std::size_t(std::llround(pct / 100 * double(values_.size() - 1)));
      std::nth_element(values_.begin(), values_.begin() + std::ptrdiff_t(i), values_.end());
      return double(values_[i]);
    };
    const double lo = at(100 - opt_.percentile), hi = at(opt_.percentile);
    return QuantParams::from_range(lo, hi);
  }

 private:
  const IntegerOptions& opt_;
  double min_ = 0, max_ = 0;
  std::vector<float> values_;
};

// Bounds of a real-valued clamp on a stage's output, intersected over the layers it fuses.
struct RealClamp {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  void add(LayerType t) {
    if (t == LayerType::Relu) lo = std::max(lo, 0.0);
    if (t == LayerType::HardTanh) lo = std::max(lo, -1.0), hi = std::min(hi, 1.0);
    if (t == LayerType::Relu6) lo = std::max(lo, 0.0), hi = std::min(hi, 6.0);
  }
  void apply(IntegerStage& s) const {
    s.clamp_min = std::isfinite(lo) ? s.out.quantize(float(lo)) : 0;
    s.clamp_max = std::isfinite(hi) ? s.out.quantize(float(hi)) : 255;
  }
};

arith::Requantizer requantizer(double real, const QuantParams& out, const IntegerStage& s, const std::string& where) {
  arith::Requantizer r = arith::Requantizer::from_real(real, out.zero_point);
  if (r.shift < -31 || r.shift > 30)
    throw IntegerError(fmt::format("{}: the requantization multiplier {:.6g} needs a shift of {}; gemmlowp's pipeline "
                                   "takes -31..30", where, real, r.shift));
  r.min = s.clamp_min, r.max = s.clamp_max;
  return r;
}

// int32 view of a stored weight code.
std::int32_t code_value(std::uint8_t c, bool is_signed) { return is_signed ? std::int32_t(std::int8_t(c)) : std::int32_t(c); }

}  // namespace

void require_chain(const Experiment& x, const char* engine, bool branches_ok, bool groups_ok) {
  for (std::size_t i = 0; i < x.layers.size(); ++i) {
    const LayerSpec& s = x.layers[i];
    if (s.input >= 0 && !branches_ok)
      throw IntegerError(fmt::format("layer {} ({}) reads layer {}'s output; {} inference runs a chain of layers "
                                     "with residual adds, not branches", i, to_string(s.type), s.input, engine));
    if (s.groups > 1 && !groups_ok)
      throw IntegerError(fmt::format("layer {} (conv2d) has {} groups; {} inference runs ungrouped convolutions",
                                     i, s.groups, engine));
  }
}

IntegerNetwork::IntegerNetwork(const Experiment& x, Network& net, const Dataset& calibration, const IntegerOptions& opt) {
  require_chain(x, "integer-only", true, true);
  const std::vector<LayerSpec>& L = x.layers;
  const int nl = int(L.size());
  net.fold_batchnorm();
  const std::vector<Shape> shapes = net.shapes();
  // Activations a residual or a branch reads (the output of layer `from` or `input`): no fusion may
  // hide them.
  std::vector<bool> read_by_skip(std::size_t(nl + 1), false);
  for (const LayerSpec& s : L) {
    if (s.type == LayerType::Residual) read_by_skip[std::size_t(s.from + 1)] = true;
    if (s.input >= 0) read_by_skip[std::size_t(s.input + 1)] = true;
  }
  auto folded = [&](int i) {
    return L[std::size_t(i)].type == LayerType::BatchNorm && i > 0 && L[std::size_t(i)].input < 0 &&
           net.layers[std::size_t(i - 1)]->is_gemm();
  };
  auto where = [&](int i) { return fmt::format("layer {} ({})", i, to_string(L[std::size_t(i)].type)); };

  // The stages, and the real clamps they carry until their output scales are known.
  std::vector<RealClamp> clamps;
  for (int i = 0; i < nl;) {
    const LayerSpec& spec = L[std::size_t(i)];
    IntegerStage s;
    s.first = s.last = i;
    s.input = spec.input >= 0 ? spec.input + 1 : i;
    RealClamp clamp;
    switch (spec.type) {
      case LayerType::Linear:
      case LayerType::Conv2d:
        s.op = Op::Gemm;
        for (int j = i + 1; j < nl && !read_by_skip[std::size_t(j)] && L[std::size_t(j)].input < 0; ++j) {
          const LayerType t = L[std::size_t(j)].type;
          if (t != LayerType::Relu && t != LayerType::Relu6 && t != LayerType::HardTanh && t != LayerType::Dropout &&
              !folded(j))
            break;
          clamp.add(t);
          s.last = j;
        }
        break;
      case LayerType::MaxPool:
      case LayerType::AvgPool:
        s.op = spec.type == LayerType::MaxPool ? Op::MaxPool : Op::AvgPool;
        s.kernel = spec.kernel, s.stride = spec.stride ? spec.stride : spec.kernel, s.padding = spec.padding;
        break;
      case LayerType::Relu:
      case LayerType::Relu6:
      case LayerType::HardTanh:
        s.op = Op::Clamp;
        clamp.add(spec.type);
        break;
      case LayerType::Residual:
        s.op = Op::Add;
        s.skip = spec.from + 1;
        break;
      case LayerType::GlobalAvgPool: s.op = Op::GlobalAvgPool; break;
      case LayerType::Flatten:
      case LayerType::Dropout: s.op = Op::Identity; break;
      case LayerType::BatchNorm:
        if (!folded(i))
          throw IntegerError(fmt::format("{}: a BatchNorm that does not follow a GEMM layer cannot be folded into "
                                         "integer weights", where(i)));
        s.op = Op::Identity;
        break;
      case LayerType::Sign:
        throw IntegerError(fmt::format("{}: binarized layers do not run as uint8 integers (their inference is "
                                       "XNOR-popcount)", where(i)));
    }
    stages_.push_back(s);
    clamps.push_back(clamp);
    i = s.last + 1;
  }

  // Ranges tracked in training (Calibration::Ema): a GEMM layer's input range stands for the
  // tensor whose stage gave it a scale, before any pooling, clamp or reshape passed it on.
  std::vector<std::optional<std::pair<double, double>>> tracked(std::size_t(nl + 1));
  if (opt.calibration == Calibration::Ema) {
    std::vector<int> producer(std::size_t(nl + 1), -1);
    for (std::size_t si = 0; si < stages_.size(); ++si) producer[std::size_t(stages_[si].last + 1)] = int(si);
    for (const IntegerStage& s : stages_) {
      const auto r = s.op == Op::Gemm ? net.layers[std::size_t(s.first)]->activation_range() : std::nullopt;
      if (!r) continue;
      int a = s.input;
      while (producer[std::size_t(a)] >= 0 && stages_[std::size_t(producer[std::size_t(a)])].op != Op::Gemm &&
             stages_[std::size_t(producer[std::size_t(a)])].op != Op::Add)
        a = stages_[std::size_t(producer[std::size_t(a)])].input;
      auto& t = tracked[std::size_t(a)];
      t = t ? std::pair{std::min(t->first, r->first), std::max(t->second, r->second)} : *r;
    }
  }
  // Calibration: the network on the first batches, observing the input and every stage output
  // that gets a scale of its own (GEMM and Add outputs) and has no tracked range.
  std::vector<std::optional<RangeObserver>> observers(std::size_t(nl + 1));
  auto observe = [&](int a) {
    if (!tracked[std::size_t(a)]) observers[std::size_t(a)].emplace(opt);
  };
  observe(0);
  for (const IntegerStage& s : stages_)
    if (s.op == Op::Gemm || s.op == Op::Add) observe(s.last + 1);
  auto params_of = [&](int a) -> std::optional<QuantParams> {
    if (tracked[std::size_t(a)]) return QuantParams::from_range(tracked[std::size_t(a)]->first, tracked[std::size_t(a)]->second);
    if (observers[std::size_t(a)]) return observers[std::size_t(a)]->params();
    return std::nullopt;
  };
  // (Nothing to observe when training tracked every range: no calibration pass then.)
  if (std::any_of(observers.begin(), observers.end(), [](const auto& o) { return o.has_value(); })) {
    std::vector<std::int64_t> order(std::size_t(calibration.n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(x.seed);
    Context ctx{false, x.seed, 0, &rng, nullptr, nullptr};
    Tensor xb;
    std::vector<std::uint8_t> yb;
    const std::int64_t total = std::min(calibration.n, std::int64_t(opt.batches) * opt.batch);
    if (total <= 0) throw IntegerError("calibration: no calibration examples (the training split is empty)");
    for (std::int64_t first = 0; first < total; first += opt.batch) {
      gather_batch(calibration, order, first, std::min(opt.batch, total - first), xb, yb);
      net.forward(xb, ctx);
      for (int a = 0; a <= nl; ++a)
        if (observers[std::size_t(a)]) observers[std::size_t(a)]->observe(net.activation(std::size_t(a)).v, a);
    }
  }

  // Scales and integer parameters, stage by stage.
  std::vector<QuantParams> q(std::size_t(nl + 1));
  input_ = q[0] = *params_of(0);
  prepared_.resize(stages_.size());
  for (std::size_t si = 0; si < stages_.size(); ++si) {
    IntegerStage& s = stages_[si];
    const QuantParams in = q[std::size_t(s.input)];
    s.out = params_of(s.last + 1).value_or(in);
    clamps[si].apply(s);
    const std::string at = where(s.first);
    if (s.op == Op::Add) {
      const QuantParams other = q[std::size_t(s.skip)];
      const double twice_max = 2 * std::max(in.scale, other.scale);
      s.in1 = requantizer(in.scale / twice_max, {1, 0}, IntegerStage{}, at);
      s.in2 = requantizer(other.scale / twice_max, {1, 0}, IntegerStage{}, at);
      s.in1.min = s.in2.min = std::numeric_limits<std::int32_t>::min();
      s.in1.max = s.in2.max = std::numeric_limits<std::int32_t>::max();
      s.requant = {requantizer(twice_max / (double(std::int64_t{1} << s.left_shift) * s.out.scale), s.out, s, at)};
    }
    if (s.op == Op::Gemm) {
      const std::vector<Param*> params = net.layers[std::size_t(s.first)]->params();
      const Tensor& w = params.at(0)->value;
      s.n = w.dim(0), s.k = w.dim(1);
      if (L[std::size_t(s.first)].type == LayerType::Conv2d) {
        const Shape& is = shapes[std::size_t(s.input)];
        const LayerSpec& c = L[std::size_t(s.first)];
        s.conv = sim::ConvShape{is[0], is[1], is[2], is[3], s.n, c.kernel, c.kernel, c.stride ? c.stride : 1, c.padding};
        s.groups = c.groups;
      }
      s.weights.resize(std::size_t(s.n * s.k));
      s.weights_signed = opt.per_channel;
      std::int64_t max_code = 0;  // the largest |w code - weight zero point|
      if (opt.per_channel) {
        for (std::int64_t n = 0; n < s.n; ++n) {
          const float* row = w.data() + n * s.k;
          double mx = 0;
          for (std::int64_t k = 0; k < s.k; ++k) mx = std::max(mx, std::abs(double(row[k])));
          const double scale = mx > 0 ? mx / 127 : 1;
          s.weight_scale.push_back(scale);
          for (std::int64_t k = 0; k < s.k; ++k) {
            const auto c = std::int32_t(std::clamp(std::round(double(row[k]) / scale), -127.0, 127.0));
            s.weights[std::size_t(n * s.k + k)] = std::uint8_t(std::int8_t(c));
            max_code = std::max<std::int64_t>(max_code, std::abs(c));
          }
        }
      } else {
        const auto [lo, hi] = std::minmax_element(w.v.begin(), w.v.end());
        const QuantParams wq = QuantParams::from_range(*lo, *hi);
        s.weight_scale = {wq.scale};
        s.weight_zero_point = wq.zero_point;
        for (std::size_t e = 0; e < w.v.size(); ++e) {
          s.weights[e] = wq.quantize(w.v[e]);
          max_code = std::max<std::int64_t>(max_code, std::abs(std::int64_t(s.weights[e]) - wq.zero_point));
        }
      }
      const bool has_bias = params.size() > 1;
      const std::int64_t acc_bound = s.k * 255 * max_code;
      Prepared& p = prepared_[si];
      p.constant.resize(std::size_t(s.n));
      for (std::int64_t n = 0; n < s.n; ++n) {
        const double sw = s.weight_scale[opt.per_channel ? std::size_t(n) : 0];
        const double real_bias = has_bias ? double(params[1]->value.v[std::size_t(n)]) : 0.0;
        const double b = std::round(real_bias / (in.scale * sw));
        if (!(std::abs(b) + double(acc_bound) <= double(std::numeric_limits<std::int32_t>::max())))
          throw IntegerError(fmt::format("{}: output channel {}: the int32 accumulator cannot hold K = {} products of "
                                         "uint8 activations and weights plus the bias {:.6g}", at, n, s.k, b));
        s.bias.push_back(std::int32_t(b));
        if (opt.per_channel || n == 0) s.requant.push_back(requantizer(in.scale * sw / s.out.scale, s.out, s, at));
        // What the zero points add to the raw code products: -Za sum_k w[n][k] + K Za Zw, with the bias.
        std::int64_t col_sum = 0;
        for (std::int64_t k = 0; k < s.k; ++k) col_sum += code_value(s.weights[std::size_t(n * s.k + k)], s.weights_signed);
        p.constant[std::size_t(n)] =
            s.bias.back() - std::int64_t(in.zero_point) * col_sum + s.k * std::int64_t(in.zero_point) * s.weight_zero_point;
      }
      const std::int64_t ng = s.n / s.groups;
      for (std::int64_t g = 0; g < s.groups; ++g)
        p.packed.emplace_back(arith::best_int8_kernel(),
                              arith::Int8Matrix{s.weights.data() + g * ng * s.k, s.k, s.weights_signed, true}, s.k, ng);
    }
    q[std::size_t(s.last + 1)] = s.out;
  }
  shapes_ = shapes;
  acts_.resize(std::size_t(nl + 1));
}

QTensor IntegerNetwork::quantize_input(const Tensor& x) const {
  QTensor t{x.shape, std::vector<std::uint8_t>(x.v.size()), input_};
  for (std::size_t i = 0; i < x.v.size(); ++i) t.v[i] = input_.quantize(x.v[i]);
  return t;
}

const QTensor& IntegerNetwork::forward(const Tensor& x, std::vector<GemmRecord>* gemms) {
  acts_[0] = quantize_input(x);
  for (std::size_t si = 0; si < stages_.size(); ++si) run(si, gemms);
  return acts_.back();
}

void IntegerNetwork::run(std::size_t si, std::vector<GemmRecord>* gemms) {
  const IntegerStage& s = stages_[si];
  const QTensor& in = acts_[std::size_t(s.input)];
  QTensor& out = acts_[std::size_t(s.last + 1)];
  const std::int64_t batch = in.shape.at(0);
  out.shape = shapes_[std::size_t(s.last + 1)];
  out.shape[0] = batch;
  out.q = s.out;
  std::int64_t size = 1;
  for (std::int64_t d : out.shape) size *= d;
  out.v.resize(std::size_t(size));
  switch (s.op) {
    case Op::Identity: std::copy(in.v.begin(), in.v.end(), out.v.begin()); return;
    case Op::Clamp:
      for (std::size_t i = 0; i < in.v.size(); ++i)
        out.v[i] = std::uint8_t(std::clamp<std::int32_t>(in.v[i], s.clamp_min, s.clamp_max));
      return;
    case Op::MaxPool:
    case Op::AvgPool: {
      const std::int64_t planes = batch * in.shape[1], h = in.shape[2], w = in.shape[3];
      const std::int64_t ho = out.shape[2], wo = out.shape[3], count = s.kernel * s.kernel;
      parallel_for(planes, [&](std::int64_t p) {
        const std::uint8_t* xp = in.v.data() + p * h * w;
        for (std::int64_t oy = 0; oy < ho; ++oy)
          for (std::int64_t ox = 0; ox < wo; ++ox) {
            std::int32_t best = 0, sum = 0;
            const std::int64_t y0 = oy * s.stride - s.padding, x0 = ox * s.stride - s.padding;  // (max pooling pads)
            for (std::int64_t iy = std::max<std::int64_t>(y0, 0); iy < std::min(y0 + s.kernel, h); ++iy)
              for (std::int64_t ix = std::max<std::int64_t>(x0, 0); ix < std::min(x0 + s.kernel, w); ++ix) {
                const std::int32_t v = xp[iy * w + ix];
                best = std::max(best, v), sum += v;
              }
            const std::int32_t r = s.op == Op::MaxPool ? best : (sum + std::int32_t(count) / 2) / std::int32_t(count);
            out.v[std::size_t((p * ho + oy) * wo + ox)] = std::uint8_t(r);
          }
      });
      return;
    }
    case Op::GlobalAvgPool: {
      const std::int64_t hw = in.shape[2] * in.shape[3];
      parallel_for(batch * in.shape[1], [&](std::int64_t p) {
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < hw; ++i) sum += in.v[std::size_t(p * hw + i)];
        out.v[std::size_t(p)] = std::uint8_t((sum + hw / 2) / hw);
      });
      return;
    }
    case Op::Add: {
      const QTensor& other = acts_[std::size_t(s.skip)];
      const std::int32_t shift = std::int32_t{1} << s.left_shift;
      for (std::size_t i = 0; i < out.v.size(); ++i) {
        const std::int32_t a = s.in1((std::int32_t(in.v[i]) - in.q.zero_point) * shift);
        const std::int32_t b = s.in2((std::int32_t(other.v[i]) - other.q.zero_point) * shift);
        out.v[i] = std::uint8_t(s.requant[0](a + b));
      }
      return;
    }
    case Op::Gemm: break;
  }

  // GEMM: A (M x K) is the input (Linear) or its im2col matrix with the zero point as padding; a
  // grouped convolution has G of them, one per group of input channels, stored one after another.
  const Prepared& p = prepared_[si];
  const std::int64_t n = s.n, k = s.k, groups = s.groups, ng = n / groups;
  const std::uint8_t* a = in.v.data();
  std::int64_t m = batch, hw = 1;
  if (s.conv) {
    const sim::ConvShape& c = *s.conv;
    const std::int64_t ho = c.out_height(), wo = c.out_width(), cg = c.in_channels / groups;
    hw = ho * wo, m = batch * hw;
    col_.resize(std::size_t(groups * m * k));
    const auto pad = std::uint8_t(in.q.zero_point);
    parallel_for(batch * groups, [&](std::int64_t item) {
      const std::int64_t bi = item / groups, g = item % groups;
      const std::uint8_t* img = in.v.data() + (bi * c.in_channels + g * cg) * c.height * c.width;
      for (std::int64_t oy = 0; oy < ho; ++oy)
        for (std::int64_t ox = 0; ox < wo; ++ox) {
          std::uint8_t* row = col_.data() + ((g * batch + bi) * hw + oy * wo + ox) * k;
          for (std::int64_t ch = 0; ch < cg; ++ch)
            for (std::int64_t ky = 0; ky < c.kernel_h; ++ky)
              for (std::int64_t kx = 0; kx < c.kernel_w; ++kx) {
                const std::int64_t iy = oy * c.stride + ky - c.padding, ix = ox * c.stride + kx - c.padding;
                const bool inside = iy >= 0 && iy < c.height && ix >= 0 && ix < c.width;
                *row++ = inside ? img[(ch * c.height + iy) * c.width + ix] : pad;
              }
        }
    });
    a = col_.data();
  }
  acc_.resize(std::size_t(m * ng));
  constexpr std::int64_t kRows = 64;
  const bool row_sums = s.weight_zero_point != 0;
  const std::int64_t blocks = (m + kRows - 1) / kRows;
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::uint8_t* ag = a + g * m * k;
    parallel_for(blocks, [&](std::int64_t blk) {
      const std::int64_t r0 = blk * kRows, rows = std::min(kRows, m - r0);
      std::int32_t* acc = acc_.data() + r0 * ng;
      arith::gemm_int8(arith::Int8Matrix{ag + r0 * k, k, false, false}, rows, p.packed[std::size_t(g)], acc, ng);
      for (std::int64_t r = 0; r < rows; ++r) {
        // The raw sums wrap modulo 2^32; the zero-point terms are added modulo 2^32 as well, and the
        // true sum, which the constructor proved fits int32, comes out exact.
        std::uint32_t zw_rows = 0;
        if (row_sums) {
          std::uint32_t sum = 0;
          for (std::int64_t kk = 0; kk < k; ++kk) sum += ag[(r0 + r) * k + kk];
          zw_rows = std::uint32_t(s.weight_zero_point) * sum;
        }
        const std::int64_t row = r0 + r, bi = row / hw, pix = row % hw;
        for (std::int64_t jj = 0; jj < ng; ++jj) {
          const std::int64_t j = g * ng + jj;  // the output channel
          const std::uint32_t total = std::uint32_t(acc[r * ng + jj]) - zw_rows + std::uint32_t(p.constant[std::size_t(j)]);
          const std::int32_t y = s.requant[s.requant.size() == 1 ? 0 : std::size_t(j)](std::int32_t(total));
          // Linear: row-major (batch x N); Conv2d: NCHW.
          out.v[std::size_t(s.conv ? (bi * n + j) * hw + pix : row * n + j)] = std::uint8_t(y);
        }
      }
    });
  }
  if (gemms) {
    // One group's GEMM and convolution, run once per group.
    std::optional<sim::ConvShape> conv = s.conv;
    if (conv) conv->batch = batch, conv->in_channels /= groups, conv->out_channels = ng;
    GemmRecord rec{s.first, Phase::Forward, m, ng, k, arith::Format::fixed(8, 0, false),
                   arith::Format::fixed(8, 0, s.weights_signed), GemmPath::ExactInt8, false, conv};
    rec.groups = groups;
    rec.acc = arith::Format::fixed(32, 0);
    rec.after = GemmRecord::After::Requantizer;
    rec.out_bits = 8;  // uint8 codes leave the requantizer
    gemms->push_back(rec);
  }
}

nlohmann::json IntegerNetwork::describe() const {
  nlohmann::json stages = nlohmann::json::array();
  for (const IntegerStage& s : stages_) {
    nlohmann::json j = {{"layers", nlohmann::json::array({s.first, s.last})},
                        {"op", op_name(s.op)},
                        {"output", {{"scale", s.out.scale}, {"zero_point", s.out.zero_point}}},
                        {"clamp", nlohmann::json::array({s.clamp_min, s.clamp_max})}};
    if (s.op == Op::Gemm) {
      const auto [lo, hi] = std::minmax_element(s.weight_scale.begin(), s.weight_scale.end());
      j["weights"] = {{"format", s.weights_signed ? "int8" : "uint8"},
                      {"zero_point", s.weight_zero_point},
                      {"scales", s.weight_scale.size()},
                      {"scale_min", *lo},
                      {"scale_max", *hi}};
      nlohmann::json shifts = nlohmann::json::array();
      std::int32_t mmin = std::numeric_limits<std::int32_t>::max(), mmax = 0;
      int smin = 31, smax = -31;
      for (const arith::Requantizer& r : s.requant)
        mmin = std::min(mmin, r.multiplier), mmax = std::max(mmax, r.multiplier), smin = std::min(smin, r.shift),
        smax = std::max(smax, r.shift);
      j["requantizer"] = {{"multiplier_min", mmin}, {"multiplier_max", mmax}, {"shift_min", smin}, {"shift_max", smax}};
    }
    stages.push_back(j);
  }
  return {{"input", {{"scale", input_.scale}, {"zero_point", input_.zero_point}}}, {"stages", stages}};
}

IntegerEvaluation evaluate_integer(const Experiment& x, IntegerNetwork& qnet, Network* fp32, const Dataset& data,
                                   std::int64_t batch, std::vector<GemmRecord>* first_batch_gemms) {
  std::vector<std::int64_t> order(std::size_t(data.n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(x.seed);
  Context ctx{false, x.seed, 0, &rng, nullptr, nullptr};
  Tensor xb, logits, d;
  std::vector<std::uint8_t> yb;
  double loss = 0;
  std::int64_t ok = 0, agree = 0;
  for (std::int64_t first = 0; first < data.n; first += batch) {
    const std::int64_t count = std::min(batch, data.n - first);
    gather_batch(data, order, first, count, xb, yb);
    const QTensor& out = qnet.forward(xb, first == 0 ? first_batch_gemms : nullptr);
    const std::int64_t classes = out.shape.at(1);
    logits.resize({count, classes});
    for (std::size_t i = 0; i < out.v.size(); ++i) logits.v[i] = float(out.q.dequantize(out.v[i]));
    loss += loss_and_gradient(x, logits, yb.data(), d) * double(count);
    const Tensor* ref = fp32 ? &fp32->forward(xb, ctx) : nullptr;
    for (std::int64_t e = 0; e < count; ++e) {
      const std::uint8_t* z = out.v.data() + e * classes;
      const auto cls = std::max_element(z, z + classes) - z;
      ok += cls == yb[std::size_t(e)];
      if (ref) {
        const float* f = ref->data() + e * classes;
        agree += std::max_element(f, f + classes) - f == cls;
      }
    }
  }
  const double n = double(data.n);
  return {double(ok) / n, loss / n, double(agree) / n};
}

}  // namespace bitsim::nn
