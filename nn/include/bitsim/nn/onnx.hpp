// ONNX models (opsets 11-17, fp32 weights) as executor networks: each supported node becomes one
// layer, a tensor read by a node other than the next one becomes that layer's `input` (a branch)
// or a residual's `from` (an Add of two tensors), and the initializers become the layers'
// parameters. Read with Debian's libonnx (onnx.proto through protobuf).
//
// Operators: Conv (groups, depthwise; square kernels, equal strides and symmetric pads, no
// dilation), Gemm (alpha = beta = 1, no transA), MatMul with a constant right operand (and an Add of
// a constant vector after it: the bias), Add of two tensors (a residual add), Relu, Clip (0..6:
// ReLU6; -1..1: HardTanh), MaxPool (square, may pad) and AveragePool (square, unpadded; both
// floor), GlobalAveragePool,
// BatchNormalization (inference), Flatten (axis 1), Reshape to (batch, features), Softmax and
// LogSoftmax as the graph's output (the network's outputs are the logits before them), Dropout and
// Identity (no-ops at inference), Constant (as an initializer).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/tensor.hpp"
#include "bitsim/nn/topology.hpp"

namespace bitsim::nn {

// A file that is not a readable ONNX model bitsim can run; the message names the node and operator.
struct OnnxError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct OnnxModel {
  std::string path;
  std::int64_t opset = 0;
  std::string producer;  // producer_name and version, as the file says
  Shape input;           // the graph input's shape after the batch dimension: C x H x W, or features
  std::vector<LayerSpec> layers;
  // Per layer: its parameters in Layer::params() order (weight, bias; BatchNorm gamma, beta) and
  // its buffers (BatchNorm's running mean and variance), as flat row-major vectors.
  std::vector<std::vector<std::vector<float>>> params;
  std::vector<std::vector<std::vector<double>>> buffers;
  // Reshape nodes that named their feature count: (layer, features), checked against the network.
  std::vector<std::pair<int, std::int64_t>> reshapes;
};

inline constexpr std::uintmax_t kMaxOnnxBytes = std::uintmax_t(1) << 30;  // protobuf's own limit is 2 GiB
inline constexpr std::int64_t kMinOnnxOpset = 11, kMaxOnnxOpset = 17;

// Reads and converts `path`; throws OnnxError naming the file and, for a node, its name, index and
// operator.
OnnxModel load_onnx(const std::string& path);

// Throws OnnxError unless inputs of shape `input` (batch first) are what the model takes.
void check_onnx_input(const OnnxModel& model, const Shape& input);

// Copies the model's parameters and buffers into `net`, built from model.layers for inputs of
// shape `input` (batch first); throws OnnxError when the data's shape is not the model's.
void load_onnx_weights(const OnnxModel& model, Network& net, const Shape& input);

// The model's network for inputs of `batch` images (its initial weights: load_onnx_weights gives
// it the model's), and that input shape. Throws OnnxError naming a layer whose shapes do not fit.
struct OnnxNetwork {
  Network net;
  Shape input;
};
OnnxNetwork build_onnx_network(const OnnxModel& model, std::int64_t batch);

// The model's GEMM layers as a topology (`bitsim cost network --onnx`): each convolution with its
// padding and stride (a grouped one `repeat` = groups times, one group's convolution each; `line`
// is the layer's index + 1), each linear layer as a GEMM of M = 1 per image, named as the nodes.
// The shapes are those of a forward pass at batch 1.
Topology onnx_topology(const OnnxModel& model);

}  // namespace bitsim::nn
