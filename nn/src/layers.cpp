#include "bitsim/nn/layers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "bitsim/nn/memory.hpp"
#include "bitsim/nn/parallel.hpp"

namespace bitsim::nn {

std::string to_string(const Shape& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

std::uint64_t StreamId::base() const {
  auto field = [](std::uint64_t v, int bits, const char* what) {
    if (v >> bits)
      throw std::out_of_range(fmt::format("stochastic-rounding stream: {} {} does not fit its {} bits (at most {})", what, v,
                                          bits, (std::uint64_t(1) << bits) - 1));
    return v;
  };
  static_assert(kElementBits + kVariantBits + kClassBits + kLayerBits + kStepBits == 64);
  std::uint64_t id = field(step, kStepBits, "step");
  id = id << kLayerBits | field(layer, kLayerBits, "layer");
  id = id << kClassBits | field(std::uint64_t(cls), kClassBits, "tensor class");
  id = id << kVariantBits | field(variant, kVariantBits, "variant");
  return id << kElementBits;
}

arith::SrStream StreamId::stream(std::uint64_t seed, std::uint64_t elements) const {
  if (elements > (std::uint64_t(1) << kElementBits))
    throw std::out_of_range(fmt::format("stochastic-rounding stream: a tensor of {} elements; at most 2^{} fit its stream",
                                        elements, kElementBits));
  return {seed, base()};
}

namespace {

// f(std::integral_constant<int, K>{}) with K = extent when the extent is one of Ks, else K = 0:
// a window's or kernel's usual extents as a constant the compiler unrolls loops on, 0 for the rest.
template <int... Ks, class F>
void with_extent(std::int64_t extent, F&& f) {
  const bool constant = ((extent == Ks && (f(std::integral_constant<int, Ks>{}), true)) || ...);
  if (!constant) f(std::integral_constant<int, 0>{});
}

// out[j] = the sum of column j of the rows x cols matrix x (row-major), added in row order from 0.
// Sixteen columns at a time in a vector register: rows are read sixteen floats wide while the
// matrix holds that many from the row's column j0 on (lanes past the columns are dropped), the
// last rows one element at a time.
void column_sums(const float* x, std::int64_t rows, std::int64_t cols, float* out) {
  constexpr std::int64_t kWidth = 16;
  using Lanes = float __attribute__((vector_size(kWidth * sizeof(float))));
  for (std::int64_t j0 = 0; j0 < cols; j0 += kWidth) {
    const std::int64_t width = std::min(kWidth, cols - j0), room = rows * cols - j0 - kWidth;
    const std::int64_t wide_rows = room < 0 ? 0 : std::min(rows, room / cols + 1);
    Lanes sum = {};
    for (std::int64_t r = 0; r < wide_rows; ++r) {
      Lanes v;
      std::memcpy(&v, x + r * cols + j0, sizeof v);
      sum += v;
    }
    float lanes[kWidth];
    std::memcpy(lanes, &sum, sizeof sum);
    for (std::int64_t r = wide_rows; r < rows; ++r)
      for (std::int64_t j = 0; j < width; ++j) lanes[j] += x[r * cols + j0 + j];
    std::copy(lanes, lanes + width, out + j0);
  }
}

// The GEMM part shared by Linear and Conv2d: y (M x N) = Q_A(x) (M x K) Q_W(w)^T (w: N x K), and
// its two backward GEMMs on Q_E(dy). Operand copies are kept for backward. A grouped convolution
// has G groups: K is one group's inputs, w's rows split into G blocks of N / G, and the input,
// output and error matrices are stored group after group (G blocks of M x K, of M x N / G); group
// g's GEMMs read and write their own blocks. Quantization and scales see the layer's whole tensors.
class GemmLayer : public Layer {
 public:
  bool is_gemm() const override { return true; }
  // WAGE's initialization: U(-L, L), L = max(L_min, L0): the He-uniform draw U(-L0, L0) widened.
  void numerics_set() override {
    if (groups_ > 1 && numerics.activations.kind == Numerics::Kind::Scaled && numerics.activations.scheme == Numerics::Scheme::Xnor)
      throw std::invalid_argument(fmt::format("layer {}: XNOR-Net activations scale each im2col row, which a grouped "
                                              "convolution splits; use them on convolutions with groups = 1", index));
    if (!wage_w()) return;
    double l0 = 0;
    const double lmin = wage_limits(&l0);
    if (lmin > l0)
      for (float& w : w_.value.v) w = float(w * (lmin / l0));
  }
  // The quantized input (M x K per group) and, for a convolution, its im2col matrix of the same size.
  double workspace_elements() const override { return 2 * rows_ * double(k_ * groups_); }
  bool absorb_affine(const std::vector<double>& scale, const std::vector<double>& shift) override {
    if (scale.size() != std::size_t(n_)) return false;
    if (syq())
      throw std::invalid_argument(fmt::format("layer {}: SYQ weights have learned scales; BatchNorm folding would change "
                                              "their codes, so it is not done", index));
    for (std::int64_t j = 0; j < n_; ++j) {
      for (std::int64_t i = 0; i < k_; ++i) w_.value.v[std::size_t(j * k_ + i)] = float(w_.value.v[std::size_t(j * k_ + i)] * scale[std::size_t(j)]);
      const double b = has_bias_ ? b_.value.v[std::size_t(j)] : 0.0;
      b_.value.v[std::size_t(j)] = float(b * scale[std::size_t(j)] + shift[std::size_t(j)]);
    }
    has_bias_ = true;
    return true;
  }
  // Courbariaux et al. 2014's dynamic fixed point keeps an exponent per tensor class between steps
  // (and the optimizer one for the master weights): checkpoint state.
  std::vector<std::vector<double>*> buffers() override {
    std::vector<std::vector<double>*> b;
    const Numerics* cls[] = {&numerics.weights, &numerics.activations, &numerics.errors, &numerics.gradients, &numerics.master};
    std::vector<double>* state[] = {&rate_[0], &rate_[1], &rate_[2], &rate_[3], &w_.master_state};
    for (std::size_t i = 0; i < 5; ++i)
      if (cls[i]->kind == Numerics::Kind::OverflowRate) {
        if (state[i]->size() != kOverflowRateState) state[i]->assign(kOverflowRateState, 0.0);
        b.push_back(state[i]);
      }
    if (affine_activations()) b.push_back(&range_);  // quantization-aware training's tracked range
    return b;
  }
  std::vector<Param*> params() override {
    std::vector<Param*> p{&w_};
    if (has_bias_) p.push_back(&b_);
    if (syq()) p.push_back(&syq_scale());
    return p;
  }
  // The tracked range of the input (affine activations, after a training batch), else none.
  std::optional<std::pair<double, double>> activation_range() const override {
    if (!affine_activations() || range_[2] == 0) return std::nullopt;
    return std::pair{range_[0], range_[1]};
  }

 protected:
  // area: the kernel's positions (1 for a linear layer), for fan_out = n x area.
  // groups: G (n divisible by it), k one group's inputs.
  void init_params(std::int64_t n, std::int64_t k, bool bias, std::mt19937_64& rng, std::int64_t area = 1,
                   std::int64_t groups = 1) {
    // Value, gradient, two optimizer moments and a lazy-update accumulator per weight.
    require_memory(double(n) * double(k + 1) * 4 * 5, fmt::format("its {}x{} weights", n, k));
    n_ = n, k_ = k, has_bias_ = bias, groups_ = groups, ng_ = n / groups;
    w_ = {"weight", Tensor({n, k}), Tensor({n, k}), true};
    w_.glorot = std::sqrt(1.5 / (double(k) + double(ng_ * area)));
    b_ = {"bias", Tensor({n}), Tensor({n}), false};
    // He-uniform (Kaiming) initialization for ReLU networks: U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)).
    const float bound = float(std::sqrt(6.0 / double(k)));
    std::uniform_real_distribution<float> u(-bound, bound);
    for (auto& x : w_.value.v) x = u(rng);
  }

  // x: M x K (row-major). y: M x N. Scaled schemes: the array multiplies integer codes and the
  // scale unit after it multiplies y[m][n] by the activation scale (per tensor, or XNOR-Net's K of
  // row m: the mean |x| of the im2col row, i.e. the channel mean of |x| box-filtered over the
  // kernel window at the convolution's stride and padding) and weight scale of row n.
  void gemm_forward(const float* x, std::int64_t m, float* y, Context& ctx) {
    xq_.assign(x, x + m * k_);
    gemm_forward_input(m, y, ctx);
  }
  // The input to fill before gemm_forward_input() (G blocks of M x K): a convolution writes its
  // im2col matrices here, saving a copy. Its contents on return are unspecified.
  float* forward_input(std::int64_t m) {
    xq_.resize(std::size_t(groups_ * m * k_));
    return xq_.data();
  }
  // gemm_forward() on the input already in forward_input(m).
  void gemm_forward_input(std::int64_t m, float* y, Context& ctx) {
    m_ = m;
    if (affine_activations()) track_range(ctx);
    const auto& nm = numerics;
    // XNOR-Net activations: sign()'s straight-through estimator passes the error where |x| <= 1;
    // WAGE's: where the clip to [-1 + sigma, 1 - sigma] passes x.
    const bool xnor_a = nm.activations.kind == Numerics::Kind::Scaled && nm.activations.scheme == Numerics::Scheme::Xnor;
    const bool wage_a = nm.activations.kind == Numerics::Kind::Scaled && nm.activations.scheme == Numerics::Scheme::WageA;
    if (xnor_a || wage_a) {
      const float lim = xnor_a ? 1.0f : float(1 - std::ldexp(1.0, 1 - nm.activations.bits));
      pass_.resize(xq_.size());
      for (std::size_t i = 0; i < xq_.size(); ++i) pass_[i] = std::abs(xq_[i]) <= lim;
    } else if (const auto r = nm.activations.range; affine_activations() && r) {
      // Quantization-aware training: the fake quantizer passes the error inside its range only.
      pass_.resize(xq_.size());
      for (std::size_t i = 0; i < xq_.size(); ++i) pass_[i] = xq_[i] >= r->first && xq_[i] <= r->second;
    } else {
      pass_.clear();
    }
    fa_ = quantize(TensorClass::Activations, nm.activations, xq_, {std::size_t(groups_ * m), std::size_t(k_)},
                   ctx.stream(index, TensorClass::Activations, std::uint64_t(groups_ * m * k_)), ctx, &sa_);
    if (xnor_a) clear_padding(xq_.data(), groups_ * m);  // the binary convolution's zero padding
    wq_ = w_.value.v;
    fw_ = quantize(TensorClass::Weights, nm.weights, wq_, {std::size_t(n_), std::size_t(k_)}, ctx.stream(index, TensorClass::Weights, std::uint64_t(n_ * k_)), ctx, &sw_);
    if (syq()) sw_ = syq_scale().value.v;  // SYQ: the learned scales
    if (wage_w()) sw_[0] = float(sw_[0] / wage_alpha());  // WAGE: sigma / alpha, a power of two
    std::vector<PhaseGemm> forward;
    for (std::int64_t g = 0; g < groups_; ++g)
      forward.push_back(phase_gemm(Phase::Forward, g, fa_, fw_, false, true, m, ng_, k_, xq_.data() + g * m * k_,
                                   wq_.data() + g * ng_ * k_, y + g * m * ng_, ctx));
    run(forward, ctx);
    // Output (g, i, j) of the G blocks of M x N / G is channel g N / G + j of row i.
    if (!sa_.empty() || !sw_.empty()) {
      for (std::int64_t g = 0; g < groups_; ++g)
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < ng_; ++j) y[(g * m + i) * ng_ + j] *= act_scale(i) * weight_scale(g * ng_ + j);
      if (ctx.captures)
        for (std::int64_t g = 0; g < groups_; ++g) {
          GemmCapture& cap = (*ctx.captures)[ctx.captures->size() - std::size_t(groups_ - g)];
          cap.effective.assign(y + g * m * ng_, y + (g + 1) * m * ng_);
        }
    }
    if (has_bias_) {
      // Rows are independent: blocks of them on the thread pool, the same sums for any count.
      parallel_blocks(groups_ * m, 256, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          const float* bias = b_.value.v.data() + r / m * ng_;
          for (std::int64_t j = 0; j < ng_; ++j) y[r * ng_ + j] += bias[j];
        }
      });
    }
  }

  // dy: M x N. dx (M x K) when need_dx. Gradients are set, not accumulated. The weight gradient is
  // taken with respect to the effective weights (code x scale) and applied to the master weights
  // (straight-through; for DoReFa weights, through the tanh transform). With weight scales, the
  // error reaching the backward-data GEMM is first multiplied by them (column n by row n's scale)
  // and quantized on its own. With XNOR-Net's per-row K, the error reaching the backward-weight
  // GEMM is first multiplied by K (row m by K[m]) and quantized on its own, and the scale unit
  // multiplies row m of dX by K[m] and zeroes it where |x| > 1 (K is a constant to backward).
  void gemm_backward(const float* dy, float* dx, bool need_dx, Context& ctx) {
    eq_.assign(dy, dy + m_ * n_);
    const arith::MatrixShape e_shape{std::size_t(groups_ * m_), std::size_t(ng_)};
    const arith::Format fe = quantize(TensorClass::Errors, numerics.errors, eq_, e_shape, ctx.stream(index, TensorClass::Errors, std::uint64_t(m_ * n_)), ctx);
    // The error each GEMM reads: the quantized one, or with per-row activation scales (one group:
    // numerics_set refuses more) E K for the weight GEMM, with weight scales E S for the data GEMM.
    arith::Format fe_weight = fe, fe_data = fe;
    const float *e_weight = eq_.data(), *e_data = eq_.data();
    std::vector<float> ek, es;
    if (sa_.size() > 1) {
      ek.assign(dy, dy + m_ * n_);
      for (std::int64_t i = 0; i < m_; ++i)
        for (std::int64_t j = 0; j < n_; ++j) ek[std::size_t(i * n_ + j)] *= act_scale(i);
      fe_weight = quantize(TensorClass::Errors, numerics.errors, ek, e_shape, ctx.stream(index, TensorClass::Errors, std::uint64_t(m_ * n_), 2), ctx);
      e_weight = ek.data();
    }
    if (need_dx && !sw_.empty()) {
      es.assign(dy, dy + m_ * n_);
      for (std::int64_t r = 0; r < groups_ * m_; ++r)
        for (std::int64_t j = 0; j < ng_; ++j) es[std::size_t(r * ng_ + j)] *= weight_scale(r / m_ * ng_ + j);
      fe_data = quantize(TensorClass::Errors, numerics.errors, es, e_shape, ctx.stream(index, TensorClass::Errors, std::uint64_t(m_ * n_), 1), ctx);
      e_data = es.data();
    }
    // dW_g (N / G x K) = E_g^T (N / G x M) . X_g (M x K) and dX_g (M x K) = E_g (M x N / G) . W_g
    // (N / G x K): independent, so one job; recorded weight GEMMs first.
    std::vector<PhaseGemm> gemms;
    for (std::int64_t g = 0; g < groups_; ++g)
      gemms.push_back(phase_gemm(Phase::BackwardWeight, g, fe_weight, fa_, true, false, ng_, k_, m_, e_weight + g * m_ * ng_,
                                 xq_.data() + g * m_ * k_, w_.grad.data() + g * ng_ * k_, ctx));
    if (need_dx)
      for (std::int64_t g = 0; g < groups_; ++g)
        gemms.push_back(phase_gemm(Phase::BackwardData, g, fe_data, fw_, false, false, m_, k_, ng_, e_data + g * m_ * ng_,
                                   wq_.data() + g * ng_ * k_, dx + g * m_ * k_, ctx));
    const std::vector<GemmPath> paths = compute(gemms);
    const std::size_t first_capture = ctx.captures ? ctx.captures->size() : 0;
    for (std::size_t i = 0; i < std::size_t(groups_); ++i) record(gemms[i], paths[i], ctx);
    if (sa_.size() == 1) {
      for (float& g : w_.grad.v) g *= act_scale();
      if (ctx.captures)
        for (std::int64_t g = 0; g < groups_; ++g)
          (*ctx.captures)[first_capture + std::size_t(g)].effective.assign(w_.grad.v.begin() + g * ng_ * k_,
                                                                            w_.grad.v.begin() + (g + 1) * ng_ * k_);
    }
    quantize(TensorClass::Gradients, numerics.gradients, w_.grad.v, {std::size_t(n_), std::size_t(k_)}, ctx.stream(index, TensorClass::Gradients, std::uint64_t(n_ * k_)), ctx);
    // DoReFa weights: through tanh and the max to the master weights (only quantize_k is straight-through).
    if (numerics.weights.kind == Numerics::Kind::Scaled && numerics.weights.scheme == Numerics::Scheme::DorefaW)
      dorefa_w_backward(w_.value.v, w_.grad.v);
    if (syq()) syq_backward(w_.value.v, wq_, sw_, std::size_t(n_), w_.grad.v, syq_scale().grad.v);
    if (has_bias_)
      for (std::int64_t g = 0; g < groups_; ++g) column_sums(eq_.data() + g * m_ * ng_, m_, ng_, b_.grad.data() + g * ng_);
    if (!need_dx) return;
    for (std::size_t i = std::size_t(groups_); i < gemms.size(); ++i) record(gemms[i], paths[i], ctx);
    if (!pass_.empty()) {
      for (std::int64_t i = 0; i < groups_ * m_; ++i)
        for (std::int64_t c = 0; c < k_; ++c) {
          const std::size_t at = std::size_t(i * k_ + c);
          dx[at] = pass_[at] ? (sa_.size() > 1 ? dx[at] * act_scale(i) : dx[at]) : 0.0f;
        }
      if (ctx.captures && sa_.size() > 1) ctx.captures->back().effective.assign(dx, dx + m_ * k_);
    }
  }
  // Sets the entries of the M x K input codes that lie in a convolution's padding to 0.
  virtual void clear_padding(float* /*codes*/, std::int64_t /*m*/) const {}
  std::int64_t n_ = 0, k_ = 0, m_ = 0;
  std::int64_t groups_ = 1, ng_ = 0;  // groups, and output channels per group (N / G)
  double rows_ = 0;  // M at the batch size of init()
  std::optional<sim::ConvShape> conv_;  // a convolution: the one its forward GEMM lowers

 private:
  // Group g's GEMM of a phase.
  struct PhaseGemm {
    Phase phase;
    std::int64_t g;
    GemmCall call;
  };
  PhaseGemm phase_gemm(Phase phase, std::int64_t g, const arith::Format& fa, const arith::Format& fb, bool ta, bool tb,
                       std::int64_t m, std::int64_t n, std::int64_t k, const float* a, const float* b, float* c,
                       Context& ctx) const {
    // Output (i, j) of group g's GEMM adds with stream base + g m n + i n + j.
    arith::SrStream s = ctx.stream(index, TensorClass::Accumulator, std::uint64_t(groups_ * m * n), std::uint64_t(phase));
    s.stream += std::uint64_t(g * m * n);
    // Operands come from Numerics::apply, whose formats hold them by construction.
    return {phase, g, {numerics.acc, fa, fb, ta, tb, m, n, k, a, b, c, s, false}};
  }
  // Computes GEMMs as one job (they are independent); the paths they took.
  static std::vector<GemmPath> compute(const std::vector<PhaseGemm>& gemms) {
    std::vector<GemmCall> calls;
    for (const PhaseGemm& p : gemms) calls.push_back(p.call);
    return gemm_together(calls);
  }
  void run(const std::vector<PhaseGemm>& gemms, Context& ctx) {
    const std::vector<GemmPath> paths = compute(gemms);
    for (std::size_t i = 0; i < gemms.size(); ++i) record(gemms[i], paths[i], ctx);
  }
  // The GEMM's record for the cost model and, when captured, its operands and result.
  void record(const PhaseGemm& p, GemmPath path, Context& ctx) const {
    const Phase phase = p.phase;
    const std::int64_t g = p.g, m = p.call.m, n = p.call.n, k = p.call.k;
    const arith::Format &fa = p.call.fa, &fb = p.call.fb;
    const bool ta = p.call.trans_a, tb = p.call.trans_b;
    const float *a = p.call.a, *b = p.call.b, *c = p.call.c;
    const arith::SrStream& s = p.call.sr;
    // Binary operands on both sides: the forward GEMM of a layer with binary weights and activations.
    const bool binary = phase == Phase::Forward && numerics.weights.kind == Numerics::Kind::Binary &&
                        numerics.activations.kind == Numerics::Kind::Binary;
    GemmRecord rec{index, phase, m, n, k, fa, fb, path, binary, std::nullopt};
    rec.groups = groups_;
    if (phase == Phase::Forward && conv_) {
      rec.conv = conv_;
      rec.conv->batch = m / (conv_->out_height() * conv_->out_width());
    }
    if (ctx.gemms && g == 0) ctx.gemms->push_back(rec);  // the record stands for every group
    if (ctx.captures) {
      GemmCapture cap{rec, numerics.acc, s, std::vector<float>(std::size_t(m * k)), std::vector<float>(std::size_t(k * n)),
                      std::vector<float>(c, c + m * n), {}, g};
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < k; ++j) cap.a[std::size_t(i * k + j)] = ta ? a[j * m + i] : a[i * k + j];
      for (std::int64_t i = 0; i < k; ++i)
        for (std::int64_t j = 0; j < n; ++j) cap.b[std::size_t(i * n + j)] = tb ? b[j * k + i] : b[i * n + j];
      ctx.captures->push_back(std::move(cap));
    }
  }

  bool affine_activations() const {
    return numerics.activations.kind == Numerics::Kind::Scaled && numerics.activations.scheme == Numerics::Scheme::Affine;
  }
  // Jacob et al. 2018: the input's range is an exponential moving average of each training batch's
  // minimum and maximum (the first batch's as they are); inference uses it as it stands.
  void track_range(const Context& ctx) {
    if (ctx.training && !xq_.empty()) {
      const auto [lo, hi] = std::minmax_element(xq_.begin(), xq_.end());
      const bool first = range_[2] == 0;
      range_[0] = first ? *lo : kRangeDecay * range_[0] + (1 - kRangeDecay) * *lo;
      range_[1] = first ? *hi : kRangeDecay * range_[1] + (1 - kRangeDecay) * *hi;
      range_[2] = 1;
    }
    numerics.activations.range = activation_range();
  }
  static constexpr double kRangeDecay = 0.999;  // TensorFlow's quantization-aware training default
  // Numerics::apply, or for the overflow-rate rule its tensor-class state.
  arith::Format quantize(TensorClass c, const Numerics& q, std::span<float> x, arith::MatrixShape shape, const arith::SrStream& sr,
                         Context& ctx, std::vector<float>* scale = nullptr) {
    if (q.kind != Numerics::Kind::OverflowRate) return q.apply(x, shape, sr, 0, scale);
    if (scale) scale->clear();
    return apply_overflow_rate(q, rate_[std::size_t(c)], x, sr, 0, ctx.step, ctx.training);
  }
  bool wage_w() const { return numerics.weights.kind == Numerics::Kind::Scaled && numerics.weights.scheme == Numerics::Scheme::WageW; }
  // WAGE, eq. 5-6: L0 = sqrt(6 / fan_in) (the He-uniform bound the weights were drawn with),
  // L_min = beta sigma with beta = 1.5; alpha = max(Shift(L_min / L0), 1).
  double wage_limits(double* l0 = nullptr) const {
    if (l0) *l0 = std::sqrt(6.0 / double(k_));
    return 1.5 * std::ldexp(1.0, 1 - numerics.weights.bits);
  }
  double wage_alpha() const {
    double l0 = 0;
    const double lmin = wage_limits(&l0);
    return std::max(ap2(lmin / l0), 1.0);
  }
  bool syq() const { return numerics.weights.kind == Numerics::Kind::Scaled && numerics.weights.scheme == Numerics::Scheme::Syq; }
  // SYQ's learned scales (a parameter, one per row or one per layer), made on first use from the
  // weights as they are then: the mean |w| over each group's nonzero codes.
  Param& syq_scale() {
    const std::size_t groups = numerics.weights.per_row ? std::size_t(n_) : 1;
    if (syq_scale_.value.v.size() != groups) {
      std::vector<float> codes = w_.value.v, scale;
      numerics.weights.apply(codes, {std::size_t(n_), std::size_t(k_)}, {}, 0, &scale);
      syq_scale_ = {"scale", Tensor({std::int64_t(groups)}), Tensor({std::int64_t(groups)}), false};
      syq_scale_.value.v = scale;
    }
    return syq_scale_;
  }
  float act_scale(std::int64_t row = 0) const { return sa_.empty() ? 1.0f : sa_.size() == 1 ? sa_[0] : sa_[std::size_t(row)]; }
  float weight_scale(std::int64_t row) const { return sw_.empty() ? 1.0f : sw_.size() == 1 ? sw_[0] : sw_[std::size_t(row)]; }

  Param w_, b_, syq_scale_;
  bool has_bias_ = true;
  std::vector<float> xq_, wq_, eq_;
  std::vector<float> sa_, sw_;  // scales of the activation (one, or one per row) and weight codes (empty: 1)
  std::vector<std::uint8_t> pass_;  // XNOR-Net activations: |x| <= 1, where sign()'s estimator passes
  std::vector<double> rate_[4];     // overflow-rate state of weights, activations, errors, gradients (TensorClass order)
  std::vector<double> range_ = {0, 0, 0};  // affine activations: tracked min, max, and whether tracked
  arith::Format fa_, fw_;
};

class Linear : public GemmLayer {
 public:
  Linear(std::int64_t out, bool bias) : out_(out), bias_(bias) {}
  std::string type() const override { return "linear"; }
  Shape init(const Shape& in, std::mt19937_64& rng) override {
    if (in.size() != 2) throw std::invalid_argument(fmt::format("needs a flat input (add a flatten layer before it), got {}", to_string(in)));
    init_params(out_, in[1], bias_, rng);
    rows_ = double(in[0]);
    return {in[0], out_};
  }
  void forward(const Tensor& x, Tensor& y, Context& ctx) override {
    y.resize_for_overwrite({x.dim(0), out_});
    gemm_forward(x.data(), x.dim(0), y.data(), ctx);
  }
  void backward(const Tensor& dy, Tensor& dx, bool need_dx, Context& ctx) override {
    if (need_dx) dx.resize_for_overwrite({dy.dim(0), k_});
    gemm_backward(dy.data(), need_dx ? dx.data() : nullptr, need_dx, ctx);
  }

 private:
  std::int64_t out_;
  bool bias_;
};

class Conv2d : public GemmLayer {
 public:
  Conv2d(std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t padding, bool bias, std::int64_t groups)
      : out_(out), kh_(kernel), stride_(stride), pad_(padding), bias_(bias), groups_in_(groups) {}
  std::string type() const override { return "conv2d"; }
  Shape init(const Shape& in, std::mt19937_64& rng) override {
    if (in.size() != 4) throw std::invalid_argument(fmt::format("needs an NxCxHxW input, got {}", to_string(in)));
    c_ = in[1], h_ = in[2], w_in_ = in[3];
    if (c_ % groups_in_ != 0 || out_ % groups_in_ != 0)
      throw std::invalid_argument(fmt::format("{} groups do not divide its {} input and {} output channels", groups_in_, c_, out_));
    cg_ = c_ / groups_in_;
    // Checked before dividing: C++ division truncates toward zero, so a kernel larger than the
    // padded input would otherwise give one output pixel.
    if (h_ + 2 * pad_ < kh_ || w_in_ + 2 * pad_ < kh_)
      throw std::invalid_argument(fmt::format("kernel {} does not fit the input {} padded by {}", kh_, to_string(in), pad_));
    ho_ = (h_ + 2 * pad_ - kh_) / stride_ + 1;
    wo_ = (w_in_ + 2 * pad_ - kh_) / stride_ + 1;
    rows_ = double(in[0]) * double(ho_) * double(wo_);
    // One group's convolution: the GEMM record's ConvShape, run once per group.
    conv_ = sim::ConvShape{in[0], cg_, h_, w_in_, out_ / groups_in_, kh_, kh_, stride_, pad_};
    require_memory(8 * rows_ * double(c_ * kh_ * kh_), fmt::format("its im2col matrix of {} x {}", rows_, c_ * kh_ * kh_));
    init_params(out_, cg_ * kh_ * kh_, bias_, rng, kh_ * kh_, groups_in_);
    return {in[0], out_, ho_, wo_};
  }
  void forward(const Tensor& x, Tensor& y, Context& ctx) override {
    const std::int64_t b = x.dim(0), hw = ho_ * wo_, m = b * hw;
    float* col = forward_input(m);
    // Group g of image bi: its input channels' im2col rows, in group g's M x K block.
    parallel_for(b * groups_, [&](std::int64_t item) {
      const std::int64_t bi = item / groups_, g = item % groups_;
      im2col(x.data() + (bi * c_ + g * cg_) * h_ * w_in_, col + (g * m + bi * hw) * k_);
    });
    ymat_.resize(std::size_t(m * n_));  // gemm() sets every element
    gemm_forward_input(m, ymat_.data(), ctx);
    y.resize_for_overwrite({b, out_, ho_, wo_});
    // (pixel, channel) rows of each group's block to NCHW planes, an image per work item.
    parallel_for(b, [&](std::int64_t bi) {
      float* dst = y.data() + bi * out_ * hw;
      for (std::int64_t g = 0; g < groups_; ++g) {
        const float* src = ymat_.data() + (g * m + bi * hw) * ng_;
        for (std::int64_t j = 0; j < ng_; ++j)
          for (std::int64_t p = 0; p < hw; ++p) dst[(g * ng_ + j) * hw + p] = src[p * ng_ + j];
      }
    });
  }
  void backward(const Tensor& dy, Tensor& dx, bool need_dx, Context& ctx) override {
    const std::int64_t b = dy.dim(0), hw = ho_ * wo_, m = b * hw;
    ymat_.resize(std::size_t(m * n_));
    parallel_for(b, [&](std::int64_t bi) {
      const float* src = dy.data() + bi * out_ * hw;
      for (std::int64_t g = 0; g < groups_; ++g) {
        float* dst = ymat_.data() + (g * m + bi * hw) * ng_;
        for (std::int64_t p = 0; p < hw; ++p)
          for (std::int64_t j = 0; j < ng_; ++j) dst[p * ng_ + j] = src[(g * ng_ + j) * hw + p];
      }
    });
    col_.resize(std::size_t(groups_ * m * k_));  // gemm() sets every element
    gemm_backward(ymat_.data(), col_.data(), need_dx, ctx);
    if (!need_dx) return;
    dx.resize_for_overwrite({b, c_, h_, w_in_});
    parallel_for(b * groups_, [&](std::int64_t item) {
      const std::int64_t bi = item / groups_, g = item % groups_;
      col2im(col_.data() + (g * m + bi * hw) * k_, dx.data() + (bi * c_ + g * cg_) * h_ * w_in_);
    });
  }

 private:
  // One image's group: rows (oy, ox), columns (c, ky, kx) over its cg_ channels; every element is
  // written, the padding as zeros. Usual kernels (3x3, 5x5) have their extent known to the
  // compiler, so a window's row is a few inline moves.
  void im2col(const float* x, float* col) const {
    with_extent<3, 5>(kh_, [&](auto k) { im2col_kernel<k>(x, col); });
  }
  // K > 0 is the kernel's extent kh_ as a constant, 0 reads it from kh_.
  template <int K>
  void im2col_kernel(const float* x, float* col) const {
    const std::int64_t kh = K > 0 ? K : kh_;
    for (std::int64_t oy = 0; oy < ho_; ++oy)
      for (std::int64_t c = 0; c < cg_; ++c)
        for (std::int64_t ky = 0; ky < kh; ++ky) {
          // Kernel row (c, ky) of every window of output row oy: input row iy, from column ix0 on.
          float* dst = col + oy * wo_ * k_ + (c * kh + ky) * kh;
          const std::int64_t iy = oy * stride_ + ky - pad_;
          const float* src = x + (c * h_ + iy) * w_in_;
          const bool row_inside = iy >= 0 && iy < h_;
          for (std::int64_t ox = 0; ox < wo_; ++ox, dst += k_) {
            const std::int64_t ix0 = ox * stride_ - pad_;
            if (row_inside && ix0 >= 0 && ix0 + kh <= w_in_) {
              std::memcpy(dst, src + ix0, std::size_t(kh) * sizeof(float));  // a constant size: inline moves
              continue;
            }
            for (std::int64_t kx = 0; kx < kh; ++kx) {
              const std::int64_t ix = ix0 + kx;
              dst[kx] = row_inside && ix >= 0 && ix < w_in_ ? src[ix] : 0.0f;
            }
          }
        }
  }
  void clear_padding(float* codes, std::int64_t m) const override {
    if (pad_ == 0) return;
    for (std::int64_t r = 0; r < m; ++r) {
      const std::int64_t oy = r / wo_ % ho_, ox = r % wo_;
      float* row = codes + r * k_;
      for (std::int64_t c = 0; c < cg_; ++c)
        for (std::int64_t ky = 0; ky < kh_; ++ky)
          for (std::int64_t kx = 0; kx < kh_; ++kx) {
            const std::int64_t iy = oy * stride_ + ky - pad_, ix = ox * stride_ + kx - pad_;
            if (iy < 0 || iy >= h_ || ix < 0 || ix >= w_in_) row[(c * kh_ + ky) * kh_ + kx] = 0.0f;
          }
    }
  }
  // The adjoint of im2col: each element's column entries are added to it in the order (oy, ox, c,
  // ky, kx). The loops run (oy, c, ky, ox, kx): an element of input row iy is reached from one
  // kernel row ky per output row oy, and from one kx per window ox, so its adds keep that order.
  void col2im(const float* col, float* dx) const {
    with_extent<3, 5>(kh_, [&](auto k) { col2im_kernel<k>(col, dx); });
  }
  template <int K>
  void col2im_kernel(const float* col, float* dx) const {
    const std::int64_t kh = K > 0 ? K : kh_;
    std::fill(dx, dx + cg_ * h_ * w_in_, 0.0f);
    for (std::int64_t oy = 0; oy < ho_; ++oy)
      for (std::int64_t c = 0; c < cg_; ++c)
        for (std::int64_t ky = 0; ky < kh; ++ky) {
          const std::int64_t iy = oy * stride_ + ky - pad_;
          if (iy < 0 || iy >= h_) continue;
          const float* src = col + oy * wo_ * k_ + (c * kh + ky) * kh;
          float* dst = dx + (c * h_ + iy) * w_in_;
          for (std::int64_t ox = 0; ox < wo_; ++ox, src += k_) {
            const std::int64_t ix0 = ox * stride_ - pad_;
            if (ix0 >= 0 && ix0 + kh <= w_in_) {
              for (std::int64_t kx = 0; kx < kh; ++kx) dst[ix0 + kx] += src[kx];
              continue;
            }
            const std::int64_t kx0 = std::clamp<std::int64_t>(-ix0, 0, kh), kx1 = std::clamp<std::int64_t>(w_in_ - ix0, kx0, kh);
            for (std::int64_t kx = kx0; kx < kx1; ++kx) dst[ix0 + kx] += src[kx];
          }
        }
  }

  std::int64_t out_, kh_, stride_, pad_;
  bool bias_;
  std::int64_t groups_in_;  // groups as configured (GemmLayer::groups_ once init() ran)
  std::int64_t c_ = 0, cg_ = 0, h_ = 0, w_in_ = 0, ho_ = 0, wo_ = 0;
  std::vector<float> col_, ymat_;
};

class Pool : public Layer {
 public:
  Pool(bool max, std::int64_t k, std::int64_t s, std::int64_t pad = 0) : max_(max), k_(k), s_(s ? s : k), pad_(pad) {}
  std::string type() const override { return max_ ? "maxpool" : "avgpool"; }
  Shape init(const Shape& in, std::mt19937_64&) override {
    if (in.size() != 4) throw std::invalid_argument(fmt::format("needs an NxCxHxW input, got {}", to_string(in)));
    // Checked before dividing, which truncates toward zero: (28 - 50) / 50 + 1 would be 1.
    if (in[2] + 2 * pad_ < k_ || in[3] + 2 * pad_ < k_)
      throw std::invalid_argument(fmt::format("window {} larger than the input {} padded by {}", k_, to_string(in), pad_));
    if (pad_ >= k_) throw std::invalid_argument(fmt::format("padding {} leaves windows with no input (kernel {})", pad_, k_));
    in_ = in;
    ho_ = (in[2] + 2 * pad_ - k_) / s_ + 1, wo_ = (in[3] + 2 * pad_ - k_) / s_ + 1;
    return {in[0], in[1], ho_, wo_};
  }
  void forward(const Tensor& x, Tensor& y, Context&) override {
    const std::int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    in_ = x.shape;
    y.resize_for_overwrite({x.dim(0), x.dim(1), ho_, wo_});
    if (max_) arg_.resize(y.v.size());  // for backward; every element is set below
    // Planes are independent, so any thread may take any plane. A window's maximum is its first
    // element (even a NaN) unless a later one is greater: the first of equal maxima wins. Max
    // pooling's padding is no input: a window takes the maximum of the elements inside the input.
    // The usual windows (2x2 and 3x3, stride 2) with extent and stride known to the compiler: the
    // windows inside the input then run as one vector loop along the row.
    with_extent<2, 3>(s_ == 2 ? k_ : 0, [&](auto k) { pool_planes<k, (k > 0 ? 2 : 0)>(x, y, planes, h, w); });
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    dx.resize(in_);
    const std::int64_t planes = in_[0] * in_[1], h = in_[2], w = in_[3];
    // A window's gradient goes to its own plane: planes on any thread, each in window order.
    parallel_for(planes, [&](std::int64_t p) {
      for (std::int64_t oy = 0; oy < ho_; ++oy)
        for (std::int64_t ox = 0; ox < wo_; ++ox) {
          const std::size_t o = std::size_t((p * ho_ + oy) * wo_ + ox);
          if (max_) {
            dx.v[std::size_t(arg_[o])] += dy.v[o];
            continue;
          }
          for (std::int64_t ky = 0; ky < k_; ++ky)
            for (std::int64_t kx = 0; kx < k_; ++kx)
              dx.v[std::size_t((p * h + oy * s_ + ky) * w + ox * s_ + kx)] += dy.v[o] / float(k_ * k_);
        }
    });
  }

 private:
  // The K x K windows at stride S wholly inside the input along one output row (ox in [ox0, ox1),
  // rows from y0, columns from ox S - pad), as the generic window does them: a loop with no
  // pointer the stores could alias, which vectorises along the row.
  template <int K, int S>
  static void max_inside(const float* __restrict xp, std::int64_t w, std::int64_t y0, std::int64_t pad, std::int64_t ox0,
                         std::int64_t ox1, float* __restrict out, std::int64_t* __restrict arg, std::int64_t base) {
    for (std::int64_t ox = ox0; ox < ox1; ++ox) {
      std::int64_t at = y0 * w + ox * S - pad;
      float best = xp[at];
      for (std::int64_t ky = 0; ky < K; ++ky)
        for (std::int64_t kx = 0; kx < K; ++kx) {
          const std::int64_t i = (y0 + ky) * w + ox * S - pad + kx;
          const bool greater = xp[i] > best;
          best = greater ? xp[i] : best;
          at = greater ? i : at;
        }
      out[ox] = best;
      arg[ox] = base + at;
    }
  }
  // Pools every plane; K, S > 0 are the window's extent k_ and stride s_ as constants, 0 reads them.
  template <int K, int S>
  void pool_planes(const Tensor& x, Tensor& y, std::int64_t planes, std::int64_t h, std::int64_t w) {
    const std::int64_t k = K > 0 ? K : k_, s = S > 0 ? S : s_;
    // Windows ox in [in0, in1) lie inside the input's columns: 0 <= ox s - pad and ox s - pad + k <= w.
    const std::int64_t in0 = std::min(wo_, (pad_ + s - 1) / s), in1 = std::max(in0, std::min(wo_, (w - k + pad_) / s + 1));
    parallel_for(planes, [&](std::int64_t p) {
      const float* xp = x.data() + p * h * w;
      for (std::int64_t oy = 0; oy < ho_; ++oy) {
        const std::int64_t y0 = std::max<std::int64_t>(oy * s - pad_, 0), y1 = std::min(oy * s - pad_ + k, h);
        float* out = y.data() + (p * ho_ + oy) * wo_;
        if (!max_) {
          for (std::int64_t ox = 0; ox < wo_; ++ox) {
            const std::int64_t first = oy * s * w + ox * s;
            float sum = 0.0f;
            for (std::int64_t ky = 0; ky < k; ++ky)
              for (std::int64_t kx = 0; kx < k; ++kx) sum += xp[first + ky * w + kx];
            out[ox] = sum / float(k * k);
          }
          continue;
        }
        std::int64_t* arg = arg_.data() + (p * ho_ + oy) * wo_;
        // One window: rows [y0, y1) and columns [x0, x1) of the input, in order, by selects (the
        // data decide, not branches).
        auto window = [&](std::int64_t ox, std::int64_t rows, std::int64_t x0, std::int64_t cols) {
          std::int64_t at = y0 * w + x0;
          float best = xp[at];
          for (std::int64_t ky = 0; ky < rows; ++ky)
            for (std::int64_t kx = 0; kx < cols; ++kx) {
              const std::int64_t i = (y0 + ky) * w + x0 + kx;
              const bool greater = xp[i] > best;
              best = greater ? xp[i] : best;
              at = greater ? i : at;
            }
          out[ox] = best;
          arg[ox] = p * h * w + at;
        };
        auto edge = [&](std::int64_t ox) {
          const std::int64_t x0 = std::max<std::int64_t>(ox * s - pad_, 0), x1 = std::min(ox * s - pad_ + k, w);
          window(ox, y1 - y0, x0, x1 - x0);
        };
        const bool rows_inside = y1 - y0 == k;
        for (std::int64_t ox = 0; ox < (rows_inside ? in0 : wo_); ++ox) edge(ox);
        if (!rows_inside) continue;
        // Windows wholly inside: the constant extent, one loop along the row.
        if constexpr (K > 0 && S > 0) max_inside<K, S>(xp, w, y0, pad_, in0, in1, out, arg, p * h * w);
        else
          for (std::int64_t ox = in0; ox < in1; ++ox) window(ox, k, ox * s - pad_, k);
        for (std::int64_t ox = in1; ox < wo_; ++ox) edge(ox);
      }
    });
  }

  bool max_;
  std::int64_t k_, s_, pad_, ho_ = 0, wo_ = 0;
  Shape in_;
  std::vector<std::int64_t> arg_;
};

class GlobalAvgPool : public Layer {
 public:
  std::string type() const override { return "globalavgpool"; }
  Shape init(const Shape& in, std::mt19937_64&) override {
    if (in.size() != 4) throw std::invalid_argument(fmt::format("needs an NxCxHxW input, got {}", to_string(in)));
    return {in[0], in[1], 1, 1};
  }
  void forward(const Tensor& x, Tensor& y, Context&) override {
    in_ = x.shape;
    const std::int64_t planes = x.dim(0) * x.dim(1), hw = x.dim(2) * x.dim(3);
    y.resize_for_overwrite({x.dim(0), x.dim(1), 1, 1});
    parallel_for(planes, [&](std::int64_t p) {
      float sum = 0.0f;
      for (std::int64_t i = 0; i < hw; ++i) sum += x.v[std::size_t(p * hw + i)];
      y.v[std::size_t(p)] = sum / float(hw);
    });
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    dx.resize_for_overwrite(in_);
    const std::int64_t hw = in_[2] * in_[3];
    for (std::int64_t p = 0; p < in_[0] * in_[1]; ++p)
      std::fill_n(dx.v.begin() + p * hw, hw, dy.v[std::size_t(p)] / float(hw));
  }

 private:
  Shape in_;
};

// Elementwise layers: y = f(x), dx = dy * f'(x) (from the input kept in forward).
class Elementwise : public Layer {
 public:
  enum class Kind { Relu, HardTanh, Sign, Relu6 };
  explicit Elementwise(Kind k) : kind_(k) {}
  std::string type() const override {
    switch (kind_) {
      case Kind::Relu: return "relu";
      case Kind::HardTanh: return "hardtanh";
      case Kind::Sign: return "sign";
      case Kind::Relu6: return "relu6";
    }
    return "?";
  }
  Shape init(const Shape& in, std::mt19937_64&) override { return in; }
  void forward(const Tensor& x, Tensor& y, Context&) override {
    y.resize_for_overwrite(x.shape);
    pass_.resize(x.v.size());
    // One loop per kind (so each vectorises): the output, and where backward passes the error. The
    // pointers are the block's own locals: a byte store could alias the caller's.
    auto run = [&](auto f, auto passes) {
      parallel_blocks(x.size(), kBlock, [&](std::int64_t i0, std::int64_t i1) {
        const float* in = x.data();
        float* out = y.data();
        std::uint8_t* pass = pass_.data();
        for (std::int64_t i = i0; i < i1; ++i) out[i] = f(in[i]), pass[i] = passes(in[i]);
      });
    };
    const auto clipped = [](float v) { return std::abs(v) <= 1.0f; };  // sign: clipped straight-through
    switch (kind_) {
      case Kind::Relu: run([](float v) { return std::max(v, 0.0f); }, [](float v) { return v > 0; }); break;
      case Kind::HardTanh: run([](float v) { return std::clamp(v, -1.0f, 1.0f); }, clipped); break;
      case Kind::Sign: run([](float v) { return v >= 0 ? 1.0f : -1.0f; }, clipped); break;
      case Kind::Relu6:
        run([](float v) { return std::min(std::max(v, 0.0f), 6.0f); }, [](float v) { return v > 0 && v < 6; });
        break;
    }
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    dx.resize_for_overwrite(dy.shape);
    parallel_blocks(dy.size(), kBlock, [&](std::int64_t i0, std::int64_t i1) {
      const float* in = dy.data();
      float* out = dx.data();
      const std::uint8_t* pass = pass_.data();
      for (std::int64_t i = i0; i < i1; ++i) out[i] = pass[i] ? in[i] : 0.0f;
    });
  }

 private:
  static constexpr std::int64_t kBlock = 16384;  // elements per work item
  Kind kind_;
  std::vector<std::uint8_t> pass_;  // forward's input passes the error (a byte per element, not a copy of it)
};

// Batch normalization over the channel dimension (NxC or NxCxHxW): batch statistics in training,
// running statistics in inference; fp32 (in fp64 sums, in index order).
class BatchNorm : public Layer {
 public:
  BatchNorm(double momentum, double eps, bool shift) : momentum_(momentum), eps_(eps), shift_(shift) {}
  std::string type() const override { return "batchnorm"; }
  Shape init(const Shape& in, std::mt19937_64&) override {
    c_ = in.size() >= 2 ? in[1] : throw std::invalid_argument("needs an NxC or NxCxHxW input");
    gamma_ = {"gamma", Tensor({c_}, 1.0f), Tensor({c_}), false};
    beta_ = {"beta", Tensor({c_}), Tensor({c_}), false};
    mean_.assign(std::size_t(c_), 0.0);
    var_.assign(std::size_t(c_), 1.0);
    return in;
  }
  std::vector<Param*> params() override { return {&gamma_, &beta_}; }
  std::vector<std::vector<double>*> buffers() override { return {&mean_, &var_}; }
  bool fold_affine(std::vector<double>& scale, std::vector<double>& shift) override {
    if (folded_) return false;  // already absorbed: folding again would apply it twice
    scale.resize(std::size_t(c_)), shift.resize(std::size_t(c_));
    for (std::size_t c = 0; c < std::size_t(c_); ++c) {
      scale[c] = gamma(c) * inv_std(var_[c]);
      shift[c] = beta_.value.v[c] - mean_[c] * scale[c];
    }
    folded_ = true;
    return true;
  }
  void forward(const Tensor& x, Tensor& y, Context& ctx) override {
    if (folded_) {  // absorbed by the layer before
      if (ctx.training) throw std::logic_error("a folded BatchNorm cannot train");
      y = x;
      return;
    }
    const std::int64_t n = x.dim(0), inner = x.size() / (n * c_);
    y.resize(x.shape);
    xhat_.assign(x.v.size(), 0.0f);
    inv_std_.assign(std::size_t(c_), 0.0);
    for (std::int64_t c = 0; c < c_; ++c) {
      double mean = mean_[std::size_t(c)], var = var_[std::size_t(c)];
      if (ctx.training) {
        double s = 0, s2 = 0;
        for (std::int64_t b = 0; b < n; ++b)
          for (std::int64_t i = 0; i < inner; ++i) s += x.v[std::size_t((b * c_ + c) * inner + i)];
        mean = s / double(n * inner);
        for (std::int64_t b = 0; b < n; ++b)
          for (std::int64_t i = 0; i < inner; ++i) {
            const double d = x.v[std::size_t((b * c_ + c) * inner + i)] - mean;
            s2 += d * d;
          }
        if (shift_) {  // mean(C AP2(C))
          s2 = 0;
          for (std::int64_t b = 0; b < n; ++b)
            for (std::int64_t i = 0; i < inner; ++i) {
              const double d = x.v[std::size_t((b * c_ + c) * inner + i)] - mean;
              s2 += d * ap2(d);
            }
        }
        var = s2 / double(n * inner);
        mean_[std::size_t(c)] = (1 - momentum_) * mean_[std::size_t(c)] + momentum_ * mean;
        var_[std::size_t(c)] = (1 - momentum_) * var_[std::size_t(c)] + momentum_ * var;
      }
      const double is = inv_std(var);
      inv_std_[std::size_t(c)] = is;
      const float g = float(gamma(std::size_t(c)));
      for (std::int64_t b = 0; b < n; ++b)
        for (std::int64_t i = 0; i < inner; ++i) {
          const std::size_t j = std::size_t((b * c_ + c) * inner + i);
          xhat_[j] = float((x.v[j] - mean) * is);
          y.v[j] = g * xhat_[j] + beta_.value.v[std::size_t(c)];
        }
    }
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    const std::int64_t n = dy.dim(0), inner = dy.size() / (n * c_), cnt = n * inner;
    dx.resize(dy.shape);
    for (std::int64_t c = 0; c < c_; ++c) {
      double sg = 0, sgx = 0;
      for (std::int64_t b = 0; b < n; ++b)
        for (std::int64_t i = 0; i < inner; ++i) {
          const std::size_t j = std::size_t((b * c_ + c) * inner + i);
          sg += dy.v[j];
          sgx += double(dy.v[j]) * xhat_[j];
        }
      gamma_.grad.v[std::size_t(c)] = float(sgx);
      beta_.grad.v[std::size_t(c)] = float(sg);
      const double k = gamma(std::size_t(c)) * inv_std_[std::size_t(c)] / double(cnt);
      for (std::int64_t b = 0; b < n; ++b)
        for (std::int64_t i = 0; i < inner; ++i) {
          const std::size_t j = std::size_t((b * c_ + c) * inner + i);
          dx.v[j] = float(k * (double(cnt) * dy.v[j] - sg - xhat_[j] * sgx));
        }
    }
  }

 private:
  // gamma and 1 / sqrt(var + eps) as the layer multiplies by them (AP2 of each when shift-based).
  double gamma(std::size_t c) const { return shift_ ? ap2(gamma_.value.v[c]) : gamma_.value.v[c]; }
  double inv_std(double var) const { return shift_ ? ap2(1.0 / std::sqrt(var + eps_)) : 1.0 / std::sqrt(var + eps_); }

  double momentum_, eps_;
  bool shift_;
  std::int64_t c_ = 0;
  bool folded_ = false;
  Param gamma_, beta_;
  std::vector<double> mean_, var_, inv_std_;
  std::vector<float> xhat_;
};

class Dropout : public Layer {
 public:
  explicit Dropout(double p) : p_(p) {
    if (!(p >= 0 && p < 1)) throw std::invalid_argument(fmt::format("bad dropout probability {}: expected [0, 1)", p));
  }
  std::string type() const override { return "dropout"; }
  Shape init(const Shape& in, std::mt19937_64&) override { return in; }
  void forward(const Tensor& x, Tensor& y, Context& ctx) override {
    y = x;
    mask_.assign(x.v.size(), 1.0f);
    if (!ctx.training || p_ == 0) return;
    std::bernoulli_distribution keep(1 - p_);
    const float scale = float(1 / (1 - p_));
    for (std::size_t i = 0; i < y.v.size(); ++i) {
      mask_[i] = keep(*ctx.rng) ? scale : 0.0f;
      y.v[i] *= mask_[i];
    }
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    dx.resize_for_overwrite(dy.shape);
    for (std::size_t i = 0; i < dy.v.size(); ++i) dx.v[i] = dy.v[i] * mask_[i];
  }

 private:
  double p_;
  std::vector<float> mask_;
};

class Flatten : public Layer {
 public:
  std::string type() const override { return "flatten"; }
  Shape init(const Shape& in, std::mt19937_64&) override {
    in_ = in;
    return {in[0], numel(in) / in[0]};
  }
  void forward(const Tensor& x, Tensor& y, Context&) override {
    in_ = x.shape;
    y.shape = {x.dim(0), x.size() / x.dim(0)};
    y.v = x.v;
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override {
    dx.shape = in_;
    dx.v = dy.v;
  }

 private:
  Shape in_;
};

// y = x + skip, the output of an earlier layer, which the network hands over before each forward;
// backward passes dy to both inputs (the network adds the skip's share where that output was made).
class Residual : public Layer {
 public:
  explicit Residual(int from) : from_(from) {}
  std::string type() const override { return "residual"; }
  int skip_from() const override { return from_; }
  void set_skip_input(const Tensor* t) override { skip = t; }
  Shape init(const Shape& in, std::mt19937_64&) override { return in; }
  void forward(const Tensor& x, Tensor& y, Context&) override {
    if (!skip || skip->shape != x.shape)
      throw std::invalid_argument(fmt::format("residual layer {}: the output of layer {} ({}) does not match its input ({})",
                                              index, from_, skip ? to_string(skip->shape) : "none", to_string(x.shape)));
    y = x;
    for (std::size_t i = 0; i < y.v.size(); ++i) y.v[i] += skip->v[i];
  }
  void backward(const Tensor& dy, Tensor& dx, bool, Context&) override { dx = dy; }

 private:
  int from_;
  const Tensor* skip = nullptr;
};

}  // namespace

std::unique_ptr<Layer> make_residual(int from) { return std::make_unique<Residual>(from); }

std::unique_ptr<Layer> make_linear(std::int64_t out, bool bias) { return std::make_unique<Linear>(out, bias); }
std::unique_ptr<Layer> make_conv2d(std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t padding, bool bias,
                                   std::int64_t groups) {
  return std::make_unique<Conv2d>(out, kernel, stride, padding, bias, groups);
}
std::unique_ptr<Layer> make_maxpool(std::int64_t k, std::int64_t s, std::int64_t padding) {
  return std::make_unique<Pool>(true, k, s, padding);
}
std::unique_ptr<Layer> make_avgpool(std::int64_t k, std::int64_t s) { return std::make_unique<Pool>(false, k, s); }
std::unique_ptr<Layer> make_globalavgpool() { return std::make_unique<GlobalAvgPool>(); }
std::unique_ptr<Layer> make_relu() { return std::make_unique<Elementwise>(Elementwise::Kind::Relu); }
std::unique_ptr<Layer> make_hardtanh() { return std::make_unique<Elementwise>(Elementwise::Kind::HardTanh); }
std::unique_ptr<Layer> make_relu6() { return std::make_unique<Elementwise>(Elementwise::Kind::Relu6); }
std::unique_ptr<Layer> make_sign() { return std::make_unique<Elementwise>(Elementwise::Kind::Sign); }
std::unique_ptr<Layer> make_batchnorm(double momentum, double eps, bool shift) {
  return std::make_unique<BatchNorm>(momentum, eps, shift);
}
std::unique_ptr<Layer> make_dropout(double p) { return std::make_unique<Dropout>(p); }
std::unique_ptr<Layer> make_flatten() { return std::make_unique<Flatten>(); }

double softmax_cross_entropy(const Tensor& logits, const std::uint8_t* labels, Tensor& d) {
  const std::int64_t n = logits.dim(0), c = logits.dim(1);
  d.resize(logits.shape);
  double loss = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * c;
    const double mx = *std::max_element(z, z + c);
    double s = 0;
    for (std::int64_t j = 0; j < c; ++j) s += std::exp(double(z[j]) - mx);
    const double log_s = std::log(s);
    loss += -(double(z[labels[i]]) - mx - log_s);
    for (std::int64_t j = 0; j < c; ++j)
      d.v[std::size_t(i * c + j)] = float((std::exp(double(z[j]) - mx - log_s) - (j == labels[i] ? 1.0 : 0.0)) / double(n));
  }
  return loss / double(n);
}

double square_hinge(const Tensor& logits, const std::uint8_t* labels, Tensor& d) {
  const std::int64_t n = logits.dim(0), c = logits.dim(1);
  d.resize(logits.shape);
  double loss = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < c; ++j) {
      const double t = j == labels[i] ? 1.0 : -1.0, y = logits.v[std::size_t(i * c + j)];
      const double h = std::max(0.0, 1.0 - t * y);
      loss += h * h;
      d.v[std::size_t(i * c + j)] = float(-2.0 * t * h / double(n * c));
    }
  return loss / double(n * c);
}

}  // namespace bitsim::nn
