#include "bitsim/nn/model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace bitsim::nn {

void Network::init(const Shape& in, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  shapes_ = {in};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    layers[i]->index = int(i);
    shapes_.push_back(layers[i]->init(shapes_.back(), rng));
  }
  acts_.assign(layers.size() + 1, Tensor{});
}

const Tensor& Network::forward(const Tensor& x, Context& ctx) {
  acts_[0] = x;
  for (std::size_t i = 0; i < layers.size(); ++i) layers[i]->forward(acts_[i], acts_[i + 1], ctx);
  return acts_.back();
}

void Network::backward(const Tensor& dlogits, Context& ctx) {
  Tensor dy = dlogits, dx;
  for (std::size_t i = layers.size(); i-- > 0;) {
    layers[i]->backward(dy, dx, i > 0, ctx);
    std::swap(dy, dx);
  }
}

std::vector<Param*> Network::params() {
  std::vector<Param*> p;
  for (auto& l : layers)
    for (Param* q : l->params()) p.push_back(q);
  return p;
}

double Optimizer::lr_at(int epoch, int epochs) const {
  if (cfg_.schedule == "constant") return cfg_.lr;
  if (cfg_.schedule == "step") return cfg_.lr * std::pow(cfg_.step_gamma, epoch / std::max(1, cfg_.step_epochs));
  if (cfg_.schedule == "cosine") return cfg_.lr * 0.5 * (1 + std::cos(std::numbers::pi * epoch / std::max(1, epochs)));
  throw std::invalid_argument(fmt::format("bad schedule '{}': expected constant, step or cosine", cfg_.schedule));
}

void Optimizer::step(const std::vector<Param*>& params, double lr, std::uint64_t seed, std::uint64_t step) {
  if (m_.size() != params.size()) {
    m_.clear(), v_.clear();
    for (Param* p : params) m_.emplace_back(p->value.v.size(), 0.0f), v_.emplace_back(p->value.v.size(), 0.0f);
  }
  ++t_;
  const bool adam = cfg_.kind == "adam", momentum = cfg_.kind == "momentum";
  if (!adam && !momentum && cfg_.kind != "sgd")
    throw std::invalid_argument(fmt::format("bad optimizer '{}': expected sgd, momentum or adam", cfg_.kind));
  const double bc1 = 1 - std::pow(cfg_.beta1, double(t_)), bc2 = 1 - std::pow(cfg_.beta2, double(t_));
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    Param& p = *params[pi];
    std::vector<float>& m = m_[pi];
    std::vector<float>& v = v_[pi];
    for (std::size_t i = 0; i < p.value.v.size(); ++i) {
      double g = p.grad.v[i];
      if (cfg_.weight_decay != 0 && p.is_weight) g += cfg_.weight_decay * p.value.v[i];
      double u;
      if (adam) {
        m[i] = float(cfg_.beta1 * m[i] + (1 - cfg_.beta1) * g);
        v[i] = float(cfg_.beta2 * v[i] + (1 - cfg_.beta2) * g * g);
        u = lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + cfg_.eps);
      } else if (momentum) {
        m[i] = float(cfg_.momentum * m[i] + g);
        u = lr * m[i];
      } else {
        u = lr * g;
      }
      float w = float(p.value.v[i] - u);
      if (cfg_.clip > 0 && p.is_weight) w = std::clamp(w, float(-cfg_.clip), float(cfg_.clip));
      p.value.v[i] = w;
    }
    if (p.is_weight && !master_.is_fp32())
      master_.apply(p.value.v, {std::size_t(p.value.dim(0)), std::size_t(p.value.size() / p.value.dim(0))},
                    arith::SrStream{seed, (step << 40) | (std::uint64_t(pi) << 32) | (std::uint64_t(TensorClass::Update) << 28)});
  }
}

}  // namespace bitsim::nn
