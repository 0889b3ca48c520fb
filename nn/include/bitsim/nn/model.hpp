// A sequential network and its optimizer (SGD, momentum, Adam) with master weights, weight
// clipping (BinaryConnect) and an optional master-weight format.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitsim/nn/layers.hpp"
#include "bitsim/nn/settings.hpp"

namespace bitsim::nn {

// A layer that cannot be built for its input (shape, memory); `layer` is its index.
struct LayerError : std::invalid_argument {
  LayerError(int layer_, const std::string& what) : std::invalid_argument(what), layer(layer_) {}
  int layer;
};

class Network {
 public:
  std::vector<std::unique_ptr<Layer>> layers;

  // Allocates every layer for inputs of shape in (batch first) with weights drawn from seed.
  // Throws LayerError for a layer that does not fit its input or the machine's memory.
  void init(const Shape& in, std::uint64_t seed);
  // Estimated bytes a run at batch size `batch` holds: parameters with their gradients and
  // optimizer state, and every layer's activations, gradients and workspaces.
  double memory_bytes(std::int64_t batch);
  // Runs the layers; returns the logits (kept until the next forward).
  const Tensor& forward(const Tensor& x, Context& ctx);
  // Activation i of the last forward(): the network's input (i = 0) or the output of layer i - 1
  // (the input of layer i, unless that layer reads another).
  const Tensor& activation(std::size_t i) const { return acts_.at(i); }
  // Back-propagates dlogits through every layer (no input gradient for the first).
  void backward(const Tensor& dlogits, Context& ctx);
  std::vector<Param*> params();
  // Folds every BatchNorm that directly follows a GEMM layer into it, for inference; returns how
  // many were folded (by this call: a BatchNorm folded before stays folded, once).
  int fold_batchnorm();
  // Activation shapes: the input, then each layer's output.
  std::vector<Shape> shapes() const { return shapes_; }
  // The activation layer i reads (an index into activation()).
  std::size_t input_of(std::size_t i) const { return inputs_.at(i); }

 private:
  std::vector<Tensor> acts_;  // acts_[i + 1]: output of layer i; acts_[0]: the input
  std::vector<std::size_t> inputs_;  // inputs_[i]: the activation layer i reads
  std::vector<Tensor> grads_;  // backward: the gradient of each activation
  Tensor dx_;                  // backward: the input gradient a layer writes
  std::vector<Shape> shapes_;
  double activation_bytes_ = 0;  // at the batch size of init()
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Adam;
  double lr = 1e-3;
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
  double clip = 0;             // > 0: clip weights to [-clip, clip] after each step (BinaryConnect)
  Schedule schedule = Schedule::Constant;
  double step_gamma = 0.1;     // step: lr *= gamma every step_epochs
  int step_epochs = 10;
  // Glorot: each weight matrix's learning rate times 1 / H, H = sqrt(1.5 / (fan_in + fan_out))
  // (BNN's W_LR_scale, its weights binarized to +-1). GlorotBinaryConnect: times 1 / H^2, which
  // is BinaryConnect's 1 / H for its weights in [-H, H] (binarized to +-H) carried over to bitsim's
  // [-1, 1] (w = H w': a step of lr / H in w is lr / H^2 in w'). Biases and BatchNorm keep lr.
  LrScale lr_scale = LrScale::None;
  // Wage: k_G of numerics.gradients = "wage-g<k>" (set when the experiment loads).
  int wage_bits = 8;
};

class Optimizer {
 public:
  // master: the format the optimizer keeps weights in (fp32: no rounding). lazy: the accumulator of
  // Park et al. 2018's lazy update, or fp32 for none (then master must be a scalar format).
  Optimizer(OptimizerConfig cfg, Numerics master, Numerics lazy = {})
      : cfg_(std::move(cfg)), master_(std::move(master)), lazy_(std::move(lazy)) {}
  // One update of every parameter from its gradient (divided by grad_scale first); lr from the
  // schedule. Weights start on the master grid: the first step rounds the initial values into it.
  void step(const std::vector<Param*>& params, double lr, std::uint64_t seed, std::uint64_t step,
            double grad_scale = 1.0);
  double lr_at(int epoch, int epochs) const;
  const OptimizerConfig& config() const { return cfg_; }
  // State for checkpoints: one vector per parameter per moment, and the step count.
  std::vector<std::vector<float>>& moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }
  std::vector<std::vector<float>>& lazy_state() { return acc_; }  // lazy-update accumulators (values)
  bool lazy() const { return !lazy_.is_fp32(); }
  std::uint64_t& steps() { return t_; }

 private:
  void wage_step(const std::vector<Param*>& params, double lr, std::uint64_t seed, std::uint64_t step, double grad_scale);
  // Rounds a weight parameter onto the master format (with its overflow-rate state, if it has one).
  void quantize_master(Param& p, arith::MatrixShape shape, const arith::SrStream& sr, std::uint64_t step) const;
  OptimizerConfig cfg_;
  Numerics master_, lazy_;
  std::vector<std::vector<float>> m_, v_, acc_;
  std::uint64_t t_ = 0;
};

}  // namespace bitsim::nn
