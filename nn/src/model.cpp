#include "bitsim/nn/model.hpp"

#include "bitsim/arith/pow2.hpp"
#include "bitsim/nn/memory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/nn/parallel.hpp"

namespace bitsim::nn {

namespace {
// The value of a code of f (fits_fp32(f): exact in fp32).
float to_float(const arith::Format& f, arith::u128 code) {
  if (!f.is_float()) {  // fixed point: the signed integer scaled by 2^-fl
    const int up = 128 - f.wl;
    const auto v = f.is_signed ? std::int64_t(arith::i128(code << up) >> up) : std::int64_t(code);
    return float(arith::scale_pow2(double(v), -f.fl));
  }
  return arith::to_f32(arith::decode(f, code));
}
}  // namespace

void Network::init(const Shape& in, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  shapes_ = {in};
  activation_bytes_ = 0;
  inputs_.assign(layers.size(), 0);
  std::vector<bool> read(layers.size() + 1, false);  // read[a]: some layer reads activation a
  for (std::size_t i = 0; i < layers.size(); ++i) {
    layers[i]->index = int(i);
    try {
      const int reads = layers[i]->reads;
      if (reads >= int(i))
        throw std::invalid_argument(fmt::format("it reads layer {}'s output, which is not an earlier layer", reads));
      inputs_[i] = reads >= 0 ? std::size_t(reads) + 1 : i;
      read[inputs_[i]] = true;
      const Shape& input = shapes_[inputs_[i]];
      const int from = layers[i]->skip_from();
      if (from >= int(i) || (from >= 0 && shapes_[std::size_t(from) + 1] != input))
        throw std::invalid_argument(fmt::format("layer {}'s output {} cannot be added to its input {}", from,
                                                from >= int(i) ? "(not an earlier layer)" : to_string(shapes_[std::size_t(from) + 1]),
                                                to_string(input)));
      if (from >= 0) read[std::size_t(from) + 1] = true;
      const Shape out = layers[i]->init(input, rng);
      // The output, its gradient, and what the layer keeps for backward (a GEMM layer its
      // quantized input and the im2col matrix), in floats; in double so no size can wrap.
      double elements = 1;
      for (std::int64_t d : out) elements *= double(d);
      const double layer_bytes = 4 * (2 * elements + 3 * layers[i]->workspace_elements());
      require_memory(layer_bytes, fmt::format("its output {} and workspace", to_string(out)));
      activation_bytes_ += layer_bytes;
      shapes_.push_back(out);
    } catch (const std::invalid_argument& e) {
      throw LayerError(int(i), e.what());
    }
  }
  // A branch that reads an earlier output leaves the layer before it unread: an output nothing
  // reads would be computed for nothing and get no gradient, so it is an error.
  for (std::size_t i = 0; i + 1 < layers.size(); ++i)
    if (!read[i + 1])
      throw LayerError(int(i), fmt::format("no layer reads its output (layer {} reads layer {}'s)", i + 1,
                                           layers[i + 1]->reads));
  acts_.assign(layers.size() + 1, Tensor{});
}

double Network::memory_bytes(std::int64_t batch) {
  double params = 0;
  for (const Param* p : this->params()) params += double(p->value.size());
  const double scale = shapes_.empty() || shapes_[0].empty() ? 1 : double(batch) / double(shapes_[0][0]);
  return params * 4 * 5 + activation_bytes_ * scale;
}

const Tensor& Network::forward(const Tensor& x, Context& ctx) {
  acts_[0] = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (const int from = layers[i]->skip_from(); from >= 0) layers[i]->set_skip_input(&acts_[std::size_t(from) + 1]);
    layers[i]->forward(acts_[inputs_[i]], acts_[i + 1], ctx);
  }
  return acts_.back();
}

void Network::backward(const Tensor& dlogits, Context& ctx) {
  // grads_[a]: the gradient of activation a, summed over the layers that read it (the next layer,
  // a residual's skip, a branch), complete once backward has passed every reader. Buffers are
  // swapped, not freed, so a step reuses the last step's memory.
  grads_.resize(layers.size() + 1);
  std::vector<bool> set(layers.size() + 1, false);
  auto add = [&](std::size_t a, const Tensor& g) {
    if (!set[a]) grads_[a] = g;
    else
      for (std::size_t e = 0; e < g.v.size(); ++e) grads_[a].v[e] += g.v[e];
    set[a] = true;
  };
  grads_.back() = dlogits;
  set.back() = true;
  for (std::size_t i = layers.size(); i-- > 0;) {
    const Tensor& dy = grads_[i + 1];
    if (const int from = layers[i]->skip_from(); from >= 0) add(std::size_t(from) + 1, dy);
    const std::size_t in = inputs_[i];
    const bool need_dx = in > 0;
    layers[i]->backward(dy, dx_, need_dx, ctx);
    if (!need_dx) continue;
    if (set[in]) add(in, dx_);
    else std::swap(grads_[in], dx_), set[in] = true;
  }
}

int Network::fold_batchnorm() {
  int folded = 0;
  for (std::size_t i = 1; i < layers.size(); ++i) {
    if (layers[i]->type() != "batchnorm" || !layers[i - 1]->is_gemm() || inputs_.at(i) != i) continue;
    std::vector<double> scale, shift;
    if (!layers[i]->fold_affine(scale, shift)) continue;  // folded before
    if (!layers[i - 1]->absorb_affine(scale, shift)) throw std::logic_error("BatchNorm folding: channel count mismatch");
    ++folded;
  }
  return folded;
}

std::vector<Param*> Network::params() {
  std::vector<Param*> p;
  for (auto& l : layers)
    for (Param* q : l->params()) p.push_back(q);
  return p;
}

double Optimizer::lr_at(int epoch, int epochs) const {
  switch (cfg_.schedule) {
    case Schedule::Constant: return cfg_.lr;
    case Schedule::Step: return cfg_.lr * std::pow(cfg_.step_gamma, epoch / std::max(1, cfg_.step_epochs));
    case Schedule::Cosine: return cfg_.lr * 0.5 * (1 + std::cos(std::numbers::pi * epoch / std::max(1, epochs)));
  }
  return cfg_.lr;
}

void Optimizer::quantize_master(Param& p, arith::MatrixShape shape, const arith::SrStream& sr, std::uint64_t step) const {
  if (master_.kind == Numerics::Kind::OverflowRate) apply_overflow_rate(master_, p.master_state, p.value.v, sr, 0, step, true);
  else master_.apply(p.value.v, shape, sr);
}

// WAGE's G (Wu et al. 2018): per parameter tensor, g / Shift(max|g|) times lr, stochastically
// rounded to an integer n (floor |.| plus 1 with probability its fraction, the random number from
// the update stream), and w -= n 2^(1-k_G); weights are clipped to [-1 + 2^(1-k_G), 1 - 2^(1-k_G)].
void Optimizer::wage_step(const std::vector<Param*>& params, double lr, std::uint64_t seed, std::uint64_t step, double grad_scale) {
  const double sigma = std::ldexp(1.0, 1 - cfg_.wage_bits);
  ++t_;
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    Param& p = *params[pi];
    const arith::SrStream sr = StreamId{step, std::uint64_t(pi), TensorClass::Update, 0}.stream(seed, p.value.v.size());
    double mx = 0;
    for (float g : p.grad.v) mx = std::max(mx, std::abs(double(g) / grad_scale));
    if (mx == 0 || !std::isfinite(mx)) continue;
    const double shift = ap2(mx);
    constexpr std::int64_t kBlock = 4096;
    const std::int64_t size = std::int64_t(p.value.v.size());
    parallel_for((size + kBlock - 1) / kBlock, [&](std::int64_t b) {
      for (std::int64_t ii = b * kBlock; ii < std::min(size, (b + 1) * kBlock); ++ii) {
        const std::size_t i = std::size_t(ii);
        const double n = lr * (double(p.grad.v[i]) / grad_scale) / shift;
        const double a = std::abs(n), fl = std::floor(a);
        const double r = std::ldexp(double(sr.bits(i, 24)), -24);
        const double q = std::copysign(fl + (a - fl > r ? 1.0 : 0.0), n);
        double w = double(p.value.v[i]) - q * sigma;
        if (p.is_weight) w = std::clamp(w, -1 + sigma, 1 - sigma);
        p.value.v[i] = float(w);
      }
    });
  }
}

void Optimizer::step(const std::vector<Param*>& params, double lr, std::uint64_t seed, std::uint64_t step,
                     double grad_scale) {
  auto stream = [&](std::size_t pi) {
    return StreamId{step, std::uint64_t(pi), TensorClass::Update, 0}.stream(seed, params[pi]->value.v.size());
  };
  auto matrix = [](const Param& p) {
    return arith::MatrixShape{std::size_t(p.value.dim(0)), std::size_t(p.value.size() / p.value.dim(0))};
  };
  if (m_.size() != params.size()) {
    m_.clear(), v_.clear(), acc_.clear();
    for (std::size_t pi = 0; pi < params.size(); ++pi) {
      Param& p = *params[pi];
      m_.emplace_back(p.value.v.size(), 0.0f), v_.emplace_back(p.value.v.size(), 0.0f);
      acc_.emplace_back(lazy() && p.is_weight ? p.value.v.size() : 0, 0.0f);
      if (p.is_weight && !master_.is_fp32()) quantize_master(p, matrix(p), stream(pi), step);
    }
  }
  ++t_;
  const bool adam = cfg_.kind == OptimizerKind::Adam, momentum = cfg_.kind == OptimizerKind::Momentum;
  const bool adamax = cfg_.kind == OptimizerKind::Adamax || cfg_.kind == OptimizerKind::ShiftAdamax;
  const bool shift = cfg_.kind == OptimizerKind::ShiftAdamax;
  const double bc1 = 1 - std::pow(cfg_.beta1, double(t_)), bc2 = 1 - std::pow(cfg_.beta2, double(t_));
  const arith::LazyUpdate kahan{master_.format, master_.spec, lazy_.format, lazy_.spec};
  const arith::LazyUpdateFixed fixed(kahan);
  if (cfg_.kind == OptimizerKind::Wage) {
    wage_step(params, lr, seed, step, grad_scale);
    return;
  }
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    Param& p = *params[pi];
    std::vector<float>& m = m_[pi];
    std::vector<float>& v = v_[pi];
    const bool lazy_param = lazy() && p.is_weight;
    const arith::SrStream sr = stream(pi);
    // BinaryConnect / BNN: a weight matrix's learning rate times 1 / H (Glorot's coefficient).
    const bool scaled = cfg_.lr_scale != LrScale::None && p.is_weight && p.glorot > 0;
    const double lr_p = !scaled ? lr : cfg_.lr_scale == LrScale::Glorot ? lr / p.glorot : lr / (p.glorot * p.glorot);
    // AdaMax's step size lr / (1 - beta1^t); shift-based AdaMax rounds it to a power of two.
    const double ax_step = shift ? ap2(lr_p / bc1) : lr_p / bc1;
    // Element-wise and independent: blocks of a fixed size run on any thread with the same result.
    constexpr std::int64_t kBlock = 4096;
    const std::int64_t size = std::int64_t(p.value.v.size());
    // Adam's moments and steps, the block in one loop without branches the compiler cannot lift
    // (it vectorises it; -ffp-contract=off keeps every multiply and add as written).
    const double b1 = cfg_.beta1, b2 = cfg_.beta2, c1 = 1 - cfg_.beta1, c2 = 1 - cfg_.beta2, eps = cfg_.eps;
    const double decay = p.is_weight ? cfg_.weight_decay : 0;
    const float* grad = p.grad.v.data();
    float* value = p.value.v.data();
    auto adam_updates = [&](std::int64_t i0, std::int64_t i1, double* u) {
      float* mm = m.data();
      float* vv = v.data();
      for (std::int64_t i = i0; i < i1; ++i) {
        double g = double(grad[i]) / grad_scale;
        if (decay != 0) g += decay * value[i];
        mm[i] = float(b1 * mm[i] + c1 * g);
        vv[i] = float(b2 * vv[i] + c2 * g * g);
        u[i - i0] = lr_p * (mm[i] / bc1) / (std::sqrt(vv[i] / bc2) + eps);
      }
    };
    // The other optimizers' step for element i.
    auto update = [&](std::size_t i) {
      double g = double(grad[i]) / grad_scale;
      if (decay != 0) g += decay * value[i];
      if (adamax) {
        // Kingma and Ba's AdaMax: u = lr / (1 - beta1^t) m / max(beta2 v, |g|); BNN's shift-based
        // AdaMax (Algorithm 4) divides by AP2(v), a shift, and steps by AP2(lr / (1 - beta1^t)).
        m[i] = float(cfg_.beta1 * m[i] + (1 - cfg_.beta1) * g);
        v[i] = float(std::max(cfg_.beta2 * v[i], std::abs(g)));
        return v[i] == 0 ? 0.0 : ax_step * m[i] / (shift ? ap2(v[i]) : double(v[i]));
      }
      if (momentum) {
        m[i] = float(cfg_.momentum * m[i] + g);
        return lr_p * m[i];
      }
      return lr_p * g;
    };
    const bool clip = cfg_.clip > 0 && p.is_weight;
    const float lo = float(-cfg_.clip), hi = float(cfg_.clip);
    parallel_for((size + kBlock - 1) / kBlock, [&](std::int64_t b) {
      const std::int64_t i0 = b * kBlock, i1 = std::min(size, (b + 1) * kBlock);
      double u[kBlock];
      if (adam) adam_updates(i0, i1, u);
      else
        for (std::int64_t i = i0; i < i1; ++i) u[i - i0] = update(std::size_t(i));
      if (!lazy_param) {
        for (std::int64_t i = i0; i < i1; ++i) {
          const float w = float(value[i] - u[i - i0]);
          value[i] = clip ? std::clamp(w, lo, hi) : w;
        }
        return;
      }
      // Park et al. 2018, Algorithm 1 on codes: acc += -u; theta += acc (rounded to the master
      // grid); acc -= what theta absorbed.
      // The code of a value of f (x is on f's grid: the optimizer keeps it there).
      const auto code = [](const arith::Format& f, float x) -> arith::u128 {
        if (!f.is_float()) return arith::u128(arith::i128(std::int64_t(arith::scale_pow2(double(x), f.fl)))) & f.code_mask();
        return arith::quantize(f, arith::Exact::from_float(x), {arith::Rounding::NearestEven, arith::default_overflow(f)}).code;
      };
      const bool sr_acc = lazy_.stochastic(), sr_w = master_.stochastic();
      const int k = lazy_.spec.sr_bits;
      const arith::Format& fw = master_.format;
      const arith::Format& fa = lazy_.format;
      // Nearest rounding on fixed-point formats: the block at once, vectorised; the elements it
      // leaves (off their grids, out of range, an update too large) go on below.
      double* add = u;  // from here on the updates the accumulators add: -u
      for (std::int64_t i = 0; i < i1 - i0; ++i) add[i] = -add[i];
      std::uint8_t taken[kBlock] = {};
      if (fixed.nearest()) fixed.step_nearest(value + i0, acc_[pi].data() + i0, add, std::size_t(i1 - i0), taken);
      for (std::int64_t ii = i0; ii < i1; ++ii) {
        if (taken[ii - i0]) continue;
        const std::size_t i = std::size_t(ii);
        // Fixed-point formats: step() on the codes' values, inline (what kahan.step runs for them).
        std::int64_t theta1, acc2;
        if (fixed.applies() &&
            fixed.step(arith::fixed_code_value(fw, code(fw, value[i])), arith::fixed_code_value(fa, code(fa, acc_[pi][i])),
                       add[ii - i0], sr_acc ? sr.bits(3 * i, k) : 0, sr_w ? sr.bits(3 * i + 1, master_.spec.sr_bits) : 0,
                       theta1, acc2)) {
          value[i] = float(arith::scale_pow2(double(theta1), -fw.fl));  // to_float() of their codes
          acc_[pi][i] = float(arith::scale_pow2(double(acc2), -fa.fl));
          continue;
        }
        // The general step on exact values (the integer path above has declined or does not apply).
        const arith::LazyUpdateResult r = kahan.step(
            code(master_.format, value[i]), code(lazy_.format, acc_[pi][i]), arith::Exact::from_double(add[ii - i0]),
            sr_acc ? sr.bits(3 * i, k) : 0, sr_w ? sr.bits(3 * i + 1, master_.spec.sr_bits) : 0,
            sr_acc ? sr.bits(3 * i + 2, k) : 0);
        value[i] = to_float(master_.format, r.theta);
        acc_[pi][i] = to_float(lazy_.format, r.acc);
      }
    });
    if (p.is_weight && !master_.is_fp32() && !lazy_param) quantize_master(p, matrix(p), sr, step);
  }
}

}  // namespace bitsim::nn
