// Layers of the executor. GEMM layers (Linear, Conv2d as im2col GEMM) quantize their operands with
// the layer's numerics and run every GEMM (forward, backward-data, backward-weight) through
// nn::gemm, so each is what the configured MAC array computes; the other layers work in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bitsim/costmodel/pipeline.hpp"
#include "bitsim/nn/gemm.hpp"
#include "bitsim/nn/numerics.hpp"
#include "bitsim/nn/tensor.hpp"

namespace bitsim::nn {

// Numerics of one layer's tensor classes.
struct LayerNumerics {
  Numerics weights, activations, errors, gradients;
  Accumulation acc;
  Numerics master = {};  // the optimizer's master weights (the layer keeps their overflow-rate state)
};

// The phases of a step (and inference), as the cost pipeline counts them.
using costmodel::Phase;
using costmodel::to_string;

// One GEMM as a layer ran it: the shape, the operand formats the array saw, and the path taken.
struct GemmRecord {
  int layer = 0;
  Phase phase = Phase::Forward;
  std::int64_t m = 0, n = 0, k = 0;
  arith::Format a, b;
  GemmPath path = GemmPath::Fp32;
  bool binary = false;  // both operands +-1 (binary numerics): an XNOR-popcount array computes it
  // A convolution's forward GEMM: the convolution it lowers (A is im2col of its input), so the
  // array's traffic is counted from the tensors.
  std::optional<sim::ConvShape> conv;
  // A grouped convolution runs this GEMM (and conv, one group's) once per group, each on its own
  // operands; the record stands for all of them.
  std::int64_t groups = 1;
  // Inference engines that are not the layer's numerics (nn/integer.hpp, nn/popcount.hpp) say
  // which accumulator the array has and what stands after it; left empty, the layer's numerics
  // decide both.
  enum class After : std::uint8_t {
    Numerics,     // what the layer's numerics imply (scale unit, requantizer, stochastic rounding)
    Requantizer,  // int32 bias add and gemmlowp's requantizer per output (integer-only inference)
    Threshold,    // one compare per output against its neuron's threshold (FINN's MVTU)
    Affine,       // one fp32 multiply and add per output (a BatchNorm on the classifier's sums)
  };
  std::optional<arith::Format> acc{};
  After after = After::Numerics;
  int out_bits = 0;  // bits of each result leaving the array's output unit (0: the accumulator's)
  bool sign_operand = false;  // an engine's GEMM with one +-1 operand (the layer's numerics say it otherwise)
};

// One GEMM with its operands and result: op(A) as M x K and op(B) as K x N, row-major, and C.
struct GemmCapture {
  GemmRecord record;
  Accumulation acc;
  arith::SrStream sr;  // output (m, n) used stream sr.stream + m * N + n
  std::vector<float> a, b, c;
  std::vector<float> effective;  // C after the scale unit (scaled schemes); empty when it is C
  std::int64_t group = 0;         // a grouped convolution's group (record.groups GEMMs, one record)
};

// Tensor classes, for stochastic-rounding streams.
enum class TensorClass : std::uint8_t { Weights, Activations, Errors, Gradients, Accumulator, Update };

// The stochastic-rounding stream of one tensor (docs/arith.md, "Stream ids in the executor"):
// (step, layer, tensor class, variant) name the tensor, and its element i draws its random bits
// from stream id base() + i. The fields are packed side by side without overlap, and a value that
// does not fit its field throws instead of wrapping, so two tensors never share a stream.
struct StreamId {
  static constexpr int kElementBits = 28, kVariantBits = 2, kClassBits = 3, kLayerBits = 11, kStepBits = 20;
  std::uint64_t step = 0;
  std::uint64_t layer = 0;  // the layer, or the parameter's index for the optimizer's update
  TensorClass cls = TensorClass::Weights;
  // A second tensor of the same class (1: the errors scaled for backward-data), or an
  // accumulator's GEMM phase.
  std::uint64_t variant = 0;

  // Throws std::out_of_range naming the field that does not fit.
  std::uint64_t base() const;
  // The stream of a tensor of `elements` elements (checked against the element field).
  arith::SrStream stream(std::uint64_t seed, std::uint64_t elements) const;
};

struct Context {
  bool training = false;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::mt19937_64* rng = nullptr;          // dropout masks
  std::vector<GemmRecord>* gemms = nullptr;  // when set, every GEMM is recorded here
  std::vector<GemmCapture>* captures = nullptr;  // when set, every GEMM is captured with its data
  // The stream of tensor (this step, layer, class, variant) of `elements` elements.
  arith::SrStream stream(int layer, TensorClass c, std::uint64_t elements, std::uint64_t variant = 0) const {
    return StreamId{step, std::uint64_t(layer), c, variant}.stream(seed, elements);
  }
};

struct Param {
  std::string name;
  Tensor value, grad;
  bool is_weight = true;  // weights are quantized with the weight numerics; biases stay fp32
  // The overflow-rate state of the master weights (Courbariaux et al. 2014), when they use it.
  std::vector<double> master_state = {};
  // A GEMM layer's weights: H = sqrt(1.5 / (fan_in + fan_out)) (fan_out = outputs x kernel area),
  // for train.lr_scale = "glorot"; 0 elsewhere.
  double glorot = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string type() const = 0;
  // Allocates parameters for this input shape (N first) and returns the output shape.
  virtual Shape init(const Shape& in, std::mt19937_64& rng) = 0;
  virtual void forward(const Tensor& x, Tensor& y, Context& ctx) = 0;
  // dy -> dx (skipped when need_dx is false), and parameter gradients.
  virtual void backward(const Tensor& dy, Tensor& dx, bool need_dx, Context& ctx) = 0;
  virtual std::vector<Param*> params() { return {}; }
  // State that is not a parameter but belongs in a checkpoint (BatchNorm's running statistics).
  virtual std::vector<std::vector<double>*> buffers() { return {}; }
  // A GEMM layer with affine activations (quantization-aware training): the range of its input
  // tracked over training batches, once it has seen one.
  virtual std::optional<std::pair<double, double>> activation_range() const { return std::nullopt; }
  virtual bool is_gemm() const { return false; }
  // Called once `numerics` is set after init(): a GEMM layer with WAGE weights widens its initial
  // weights to WAGE's scaled initialization.
  virtual void numerics_set() {}
  // Floats the layer keeps for backward beyond its output (after init), for the memory estimate.
  virtual double workspace_elements() const { return 0; }
  // Residual connections: the index of the earlier layer whose output this layer adds (-1: none),
  // and where the network puts that output before each forward.
  virtual int skip_from() const { return -1; }
  virtual void set_skip_input(const Tensor*) {}
  // BatchNorm folding for inference: a BatchNorm layer gives its per-channel y = scale x + shift
  // (running statistics) and becomes the identity; the GEMM layer before it absorbs them into its
  // weights and bias (w[n] *= scale[n]; bias[n] = bias[n] scale[n] + shift[n]). fold_affine
  // returns false when the layer has no affine to give (not a BatchNorm, or folded already).
  virtual bool fold_affine(std::vector<double>& /*scale*/, std::vector<double>& /*shift*/) { return false; }
  virtual bool absorb_affine(const std::vector<double>& /*scale*/, const std::vector<double>& /*shift*/) { return false; }

  int index = 0;
  // The activation the layer reads: -1 the previous layer's output; else the output of layer
  // `reads` (a branch such as a residual block's projection shortcut). The network routes it.
  int reads = -1;
  LayerNumerics numerics;
};

std::unique_ptr<Layer> make_linear(std::int64_t out, bool bias = true);
// groups: the input and output channels split into that many groups, each output group computed
// from its input group alone (groups = channels: depthwise). Weights out x (channels / groups) x
// kernel x kernel, as PyTorch and ONNX lay them out; one GEMM per group.
std::unique_ptr<Layer> make_conv2d(std::int64_t out_channels, std::int64_t kernel, std::int64_t stride = 1,
                                   std::int64_t padding = 0, bool bias = true, std::int64_t groups = 1);
// stride 0: = kernel. padding: windows may reach that far outside the input, whose maximum is over
// the elements inside it (PyTorch's and ONNX's MaxPool); less than the kernel.
std::unique_ptr<Layer> make_maxpool(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0);
std::unique_ptr<Layer> make_avgpool(std::int64_t kernel, std::int64_t stride = 0);
// N x C x H x W -> N x C x 1 x 1: each plane's mean (ONNX GlobalAveragePool), summed in fp32 in
// index order and divided by H W; backward spreads dy / (H W) over the plane.
std::unique_ptr<Layer> make_globalavgpool();
std::unique_ptr<Layer> make_relu();
std::unique_ptr<Layer> make_hardtanh();
// min(max(x, 0), 6) (MobileNet's ReLU6); the error passes where 0 < x < 6.
std::unique_ptr<Layer> make_relu6();
// sign(x) (sign(0) = +1) forward; backward the clipped straight-through estimator: dy where |x| <= 1.
std::unique_ptr<Layer> make_sign();
// shift: BNN's shift-based BatchNorm (Hubara et al. 2016, Algorithm 3): the variance
// mean(C AP2(C)) with C = x - mean, x_hat = C AP2(1 / sqrt(var + eps)), y = AP2(gamma) x_hat + beta
// (AP2 below), in training and inference; backward is BatchNorm's with those factors.
std::unique_ptr<Layer> make_batchnorm(double momentum = 0.1, double eps = 1e-5, bool shift = false);
std::unique_ptr<Layer> make_dropout(double p);
std::unique_ptr<Layer> make_flatten();
// y = x + (output of layer `from`); the network routes the second input and its gradient.
std::unique_ptr<Layer> make_residual(int from);

// Losses over a batch of logits (N x classes): the mean loss, and its gradient in dlogits.
double softmax_cross_entropy(const Tensor& logits, const std::uint8_t* labels, Tensor& dlogits);
// BinaryConnect's L2-SVM output: mean over examples and classes of max(0, 1 - t y)^2, t = +-1.
double square_hinge(const Tensor& logits, const std::uint8_t* labels, Tensor& dlogits);

}  // namespace bitsim::nn
