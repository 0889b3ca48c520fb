// An experiment file (TOML; schema in docs/nn.md): data, model, training, numerics per tensor class
// with per-layer overrides, and the hardware it runs on. Loading validates every key and value and
// throws ExperimentError with one line naming the file, the key and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/nn/model.hpp"
#include "bitsim/costmodel/pipeline.hpp"

namespace bitsim::nn {

struct OnnxModel;

struct ExperimentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One tensor class: format (arith spec, block spec, or "fp32"), rounding, overflow, random bits.
struct ClassSpec {
  std::string format = "fp32", rounding = "nearest-even", overflow;
  int sr_bits = 16;
  Numerics numerics() const { return Numerics::parse(format, rounding, overflow, sr_bits); }
};

struct NumericsSpec {
  ClassSpec weights, activations, errors, gradients, master;
  ClassSpec accumulator{"fp32-reference", "nearest-even", "", 16};
  // Park et al. 2018's lazy update (SGD with Kahan summation): the accumulator of updates too
  // small for the master weights ("none": off). Needs a scalar master format.
  ClassSpec lazy_accumulator{"none", "nearest-even", "", 16};
  // Courbariaux et al. 2014's overflow-rate rule, for the classes in "dfx<wl,rate>": the maximum
  // overflow rate and the steps between updates of each tensor's exponent.
  double max_overflow_rate = 1e-4;
  int overflow_interval = 100;

  // c's numerics with this table's overflow-rate rule.
  Numerics of(const ClassSpec& c) const {
    Numerics n = c.numerics();
    n.max_overflow_rate = max_overflow_rate, n.overflow_interval = overflow_interval;
    return n;
  }
};

struct LayerSpec {
  LayerType type = LayerType::Linear;
  std::int64_t out = 0, kernel = 0, stride = 0, padding = 0;
  bool bias = true;
  double p = 0;  // dropout
  int from = -1;  // residual: y = x + the output of layer `from` (an earlier layer of the same shape)
  int input = -1;  // the output of this earlier layer is the layer's input (-1: the previous layer's)
  std::int64_t groups = 1;  // conv2d: grouped (groups = channels: depthwise)
  std::string name;  // not from the file: a topology's layer name ("" = conv1, fc1, ... in network order)
  bool shift = false;  // batchnorm: BNN's shift-based BatchNorm
  double eps = 1e-5;   // batchnorm: added to the variance
};

struct DataSpec {
  DatasetKind dataset = DatasetKind::FashionMnist;
  std::string dir;                        // default: where the setup installs it
  std::int64_t train_limit = 0, test_limit = 0;  // 0: all
  std::int64_t synthetic_train = 2048, synthetic_test = 512;
};

// The hardware a run is costed on (array, dataflow, buffers, bandwidth, clock, node, cost table).
using HardwareSpec = costmodel::Hardware;

struct Experiment {
  std::string name = "experiment";
  std::string source;  // the file it came from
  std::uint64_t seed = 1;
  DataSpec data;
  std::vector<LayerSpec> layers;
  // [model] onnx = "file.onnx": the layers and their weights come from that model (nn/onnx.hpp).
  std::shared_ptr<const OnnxModel> onnx;
  LossKind loss = LossKind::CrossEntropy;
  int epochs = 1;
  std::int64_t batch = 64;
  OptimizerConfig optimizer;
  NumericsSpec numerics;
  std::map<int, NumericsSpec> layer_numerics;  // per-layer overrides, already merged over the default
  // Park et al. 2018, eq. 5: the classifier (last GEMM layer) gets at least
  // floor(log2(classes - 1) + log2(2 / alpha)) + 1 bits in its fixed-point and dfx classes; 0: off.
  double classifier_rule_alpha = 0;
  // Evaluation (the test set, `infer`) with the master weights instead of their quantized codes:
  // BinaryConnect's test-time inference for stochastic binarization (its section 2.6). Needs float
  // accumulators; training is unchanged.
  bool test_with_master_weights = false;
  // Loss scaling (for fp16 / fp8 errors): dlogits x scale, gradients / scale before the update.
  // Dynamic: a step with a non-finite gradient is skipped and halves the scale; 1000 finite steps
  // in a row double it.
  double loss_scale = 1;
  bool dynamic_loss_scale = false;
  HardwareSpec hardware;

  // Parses `path`, applying "key.path=value" overrides (TOML values) before validation.
  static Experiment load(const std::string& path, const std::vector<std::string>& overrides = {});
  // The numerics of layer i (override or default, and the classifier rule).
  LayerNumerics layer(int i) const;
  // The width the classifier rule asks for (0 when off).
  int classifier_bits() const;
  int classifier_layer() const;  // index of the last GEMM layer
  nlohmann::json to_json() const;
};

}  // namespace bitsim::nn
