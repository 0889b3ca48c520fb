// Integer-only inference (Jacob et al. 2018; gemmlowp and TFLite's uint8 kernels): a trained fp32
// network becomes uint8 activations with a scale and zero point, int8 weights symmetric per output
// channel (or uint8 per tensor), int32 biases, int32 accumulation and fixed-point requantizers,
// and runs in integers from the quantized input to the quantized logits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/arith/gemm_int8.hpp"
#include "bitsim/arith/requantize.hpp"
#include "bitsim/nn/data.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/model.hpp"

namespace bitsim::nn {

// An affine uint8 quantization: real = scale * (q - zero_point), q in 0..255.
struct QuantParams {
  double scale = 1;
  std::int32_t zero_point = 0;

  // gemmlowp's ChooseQuantizationParams (arith::choose_quantization_params): the range widened to
  // hold 0, so that 0 is exactly a code; scale = (max - min) / 255; the zero point the integer
  // nearest to the one the range implies, from the end with the smaller rounding error. An empty
  // range (min = max = 0) gives scale 1, zero point 0.
  static QuantParams from_range(double min, double max);
  // round(x / scale) + zero_point, ties away from zero, clamped to 0..255 (NaN: the zero point).
  std::uint8_t quantize(float x) const;
  double dequantize(std::uint8_t q) const { return scale * double(int(q) - zero_point); }
};

// MinMax, Percentile: measured on calibration batches. Ema: the ranges a quantization-aware
// training run tracked at each GEMM layer's input (affine activations), for the tensors they
// stand for; the others (the logits, residual sums) by min/max.
enum class Calibration : std::uint8_t { MinMax, Percentile, Ema };

struct IntegerOptions {
  Calibration calibration = Calibration::MinMax;
  // Percentile: each tensor's range is [the (100 - p)th, the p-th] percentile of its calibration
  // values (outliers beyond it saturate), instead of [min, max].
  double percentile = 99.99;
  // Calibration data: the first batches x batch examples of the training split, unshuffled.
  int batches = 8;
  std::int64_t batch = 256;
  // Weights: int8 symmetric per output channel (scale max|w| / 127, codes -127..127), or uint8
  // asymmetric per tensor (a scale and zero point for the layer).
  bool per_channel = true;

  // "minmax", "ema", or "percentile" / "percentile:P" (0 < P <= 100); throws std::invalid_argument
  // naming the token.
  void set_calibration(const std::string& spec);
  std::string describe() const;
};

// A batch of uint8 activations and their quantization (NCHW or N x features, like Tensor).
struct QTensor {
  Shape shape;
  std::vector<std::uint8_t> v;
  QuantParams q;
};

// One step of the integer network. Activation i is the input of float layer i (activation L the
// output); a stage reads activation `input` and writes activation `last + 1`.
struct IntegerStage {
  enum class Op : std::uint8_t {
    Gemm,      // Linear or Conv2d, with the activations after it fused into its clamp
    MaxPool,   // the maximum code of each window (scale and zero point unchanged)
    AvgPool,   // the window's code sum divided by its size, rounded half up (TFLite)
    GlobalAvgPool,  // the same over each whole plane (TFLite's uint8 Mean over H and W)
    Clamp,     // a ReLU or HardTanh not fused into a GEMM: codes clamped to the codes of its bounds
    Add,       // a residual connection: TFLite's quantized ADD of activation `input` and `skip`
    Identity,  // flatten, dropout, a BatchNorm folded into the GEMM before it: codes unchanged
  };
  Op op = Op::Identity;
  int first = 0, last = 0;  // the float layers it computes
  int input = 0, skip = -1;
  QuantParams out;  // its output's quantization (the input's for pooling, clamps and identities)
  std::int32_t clamp_min = 0, clamp_max = 255;  // output codes (fused ReLU: the zero point up)

  // Gemm: acc[m][n] = sum_k (a[m][k] - a.zero_point) (w[n][k] - weight_zero_point), in int32;
  // y[m][n] = requant[n or 0](acc[m][n] + bias[n]), which multiplies by S_a S_w[n] / S_y with
  // gemmlowp's fixed-point multiplier and shift, adds out.zero_point and clamps.
  std::int64_t n = 0, k = 0;
  std::optional<sim::ConvShape> conv;  // Conv2d: its geometry (batch as calibrated; all channels)
  // Conv2d: groups G; K is one group's inputs and output channel n reads group n / (N / G)'s
  // channels only (G = channels: depthwise). One GEMM per group.
  std::int64_t groups = 1;
  std::vector<std::uint8_t> weights;   // N x K codes: int8 two's complement, or uint8
  bool weights_signed = true;
  std::int32_t weight_zero_point = 0;
  std::vector<double> weight_scale;  // one per output channel, or one for the tensor
  std::vector<std::int32_t> bias;    // N entries: round(b / (S_a S_w[n])), zero point 0
  std::vector<arith::Requantizer> requant;  // one per output channel, or one

  // MaxPool, AvgPool: the window.
  std::int64_t kernel = 0, stride = 0;
  std::int64_t padding = 0;  // MaxPool: the maximum code of the window's elements inside the input

  // Add (TFLite reference_ops::Add, uint8): each input's (q - zero point) shifted left by
  // left_shift bits and multiplied by in1 / in2 (S_i / (2 max(S_1, S_2)), shift <= -1), summed,
  // then requant[0] (2 max(S_1, S_2) / (2^left_shift S_y), the zero point, the clamp).
  arith::Requantizer in1, in2;
  int left_shift = 20;
};

// A network whose layers cannot all run in integers.
struct IntegerError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// What the inference engines run: a chain of layers with residual adds of ungrouped convolutions
// (popcount), or (integer-only: branches_ok, groups_ok) also layers that read an earlier output and
// grouped convolutions. Throws IntegerError naming the first layer the engine called `engine`
// cannot run.
void require_chain(const Experiment& x, const char* engine, bool branches_ok = false, bool groups_ok = false);

class IntegerNetwork {
 public:
  // `net`: the fp32 network of `x` with trained weights, built for inputs of x's image size. Folds
  // every BatchNorm that follows a GEMM layer into it (changing `net`), calibrates each quantized
  // activation on `calibration` (the first opt.batches batches), quantizes the weights and biases,
  // and derives the requantizers. Throws IntegerError naming the first layer that cannot run in
  // integers (Sign, a BatchNorm not after a GEMM layer, a sum that int32 could not hold).
  IntegerNetwork(const Experiment& x, Network& net, const Dataset& calibration, const IntegerOptions& opt);

  const std::vector<IntegerStage>& stages() const { return stages_; }
  const QuantParams& input_params() const { return input_; }

  // The input's uint8 codes (every float of x quantized with input_params()).
  QTensor quantize_input(const Tensor& x) const;
  // Runs every stage on a batch of fp32 inputs; returns the output codes (batch x classes).
  // `gemms`: when set, each GEMM stage is recorded there (integer operands, int32 accumulator).
  const QTensor& forward(const Tensor& x, std::vector<GemmRecord>* gemms = nullptr);
  // Activation i of the last forward(): the input (0) or the output of a stage.
  const QTensor& activation(int i) const { return acts_.at(std::size_t(i)); }

  // Per stage: the layers, operation, scales, zero points and multiplier range (report.json).
  nlohmann::json describe() const;

 private:
  void run(std::size_t stage, std::vector<GemmRecord>* gemms);

  // What a GEMM stage needs beyond its parameters: the weights packed once for the kernel, and
  // per output channel the bias plus the zero points' constant share of the sum,
  // bias[n] - Za sum_k w[n][k] + K Za Zw.
  struct Prepared {
    std::vector<arith::PackedInt8B> packed;  // one per group
    std::vector<std::int64_t> constant;
  };

  QuantParams input_;
  std::vector<IntegerStage> stages_;
  std::vector<Prepared> prepared_;
  std::vector<Shape> shapes_;  // of each activation, batch as built
  std::vector<QTensor> acts_;
  std::vector<std::uint8_t> col_;  // a convolution's im2col rows
  std::vector<std::int32_t> acc_;
};

// Accuracy of the integer network on `data` (the first of equal codes is the prediction), and the
// mean loss (x's) of its dequantized logits; `first_batch_gemms` as in evaluate(). `agree_with`: when given, the fraction of examples
// whose predicted class equals the fp32 network's goes to *agreement.
struct IntegerEvaluation {
  double accuracy = 0, loss = 0, agreement = 0;
};
IntegerEvaluation evaluate_integer(const Experiment& x, IntegerNetwork& qnet, Network* fp32, const Dataset& data, std::int64_t batch,
                                   std::vector<GemmRecord>* first_batch_gemms = nullptr);

}  // namespace bitsim::nn
