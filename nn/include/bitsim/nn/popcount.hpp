// Binarized inference as FINN's matrix-vector-threshold units compute it (Umuroglu et al. 2017):
// binary weights and activations as bits, each neuron an XNOR-popcount, and the BatchNorm and
// sign after it folded into one integer compare per neuron. The thresholds are found by running
// the network's own layers after the GEMM (bias add, BatchNorm, HardTanh, sign) on every candidate
// sum, so each neuron fires exactly when the float-BatchNorm network's next layer sees +1.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/arith/binary.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/integer.hpp"
#include "bitsim/nn/model.hpp"

namespace bitsim::nn {

// One step of the binarized network. Bits are 1 for +1 and 0 for -1.
struct PopcountStage {
  enum class Op : std::uint8_t {
    Threshold,  // a GEMM layer and the layers after it, to bits: popcount (or integer sum) vs threshold
    Output,     // the classifier: integer sums, then its layers after the GEMM in fp32 (the logits)
    MaxPool,    // on bits: the OR of the window (the maximum of +-1)
    Identity,   // flatten, dropout
  };
  Op op = Op::Identity;
  int first = 0, last = 0;  // the float layers it computes
  std::int64_t n = 0, k = 0;
  std::optional<sim::ConvShape> conv;  // Conv2d: its geometry (padding reads +1, as binarize(0))
  // Input bits (binary activations) or fixed-point codes (the first layer: activations on a grid
  // 2^-f, summed as integers with the +-1 weights).
  bool binary_input = true;
  std::vector<std::vector<std::uint64_t>> weights;  // N rows of K packed bits (1 = +1)
  std::vector<float> bias;                          // fp32, added to the sum as the layer does
  // Threshold with binary input: neuron n fires when thresholds[n].fire(popcount). With code
  // input the thresholds depend on the grid: code_thresholds[f][n] compares the integer sum.
  std::vector<arith::BinaryThreshold> thresholds;
  std::map<int, std::vector<arith::BinaryThreshold>> code_thresholds;
  std::int64_t kernel = 0, stride = 0, padding = 0;  // MaxPool (an OR of the window's bits inside the input)
};

class PopcountNetwork {
 public:
  // `net`: the network of `x` with trained weights (BatchNorm not folded). Throws IntegerError
  // naming the first layer that is not binarized inference: every GEMM layer must have
  // deterministic binary weights, and binary activations (the first may have fixed-point ones);
  // between two GEMM layers only BatchNorm, HardTanh, Sign, Dropout, MaxPool and Flatten.
  PopcountNetwork(const Experiment& x, Network& net);

  const std::vector<PopcountStage>& stages() const { return stages_; }
  // Logits of a batch (batch x classes), computed from bits and integer sums up to the classifier.
  // `gemms`: when set, each GEMM stage is recorded there (XNOR-popcount for binary inputs).
  const Tensor& forward(const Tensor& x, std::vector<GemmRecord>* gemms = nullptr);
  // Threshold stages' outputs of the last forward(), as bits (one byte each), by stage index.
  const std::vector<std::uint8_t>& bits(std::size_t stage) const { return bits_.at(stage); }

  nlohmann::json describe() const;

 private:
  // Bits (or, for the first layer, sums of codes) at which neuron outputs change, found by running
  // the layers first + 1 .. last on candidate sums.
  std::vector<arith::BinaryThreshold> fold(const PopcountStage& s, double scale, std::int64_t lo, std::int64_t hi);
  // The float output of layers first + 1 .. last for one sum per neuron: column n gets sums[r][n].
  Tensor tail(const PopcountStage& s, const std::vector<double>& sums, std::int64_t rows);

  const Experiment* x_;
  Network* net_;
  std::vector<PopcountStage> stages_;
  std::vector<std::vector<std::uint8_t>> bits_;  // per stage: its output bits (NCHW or batch x N)
  std::vector<Shape> shapes_;
  Tensor logits_;
};

}  // namespace bitsim::nn
