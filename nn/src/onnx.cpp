// ONNX graphs to executor networks (nn/onnx.hpp).
#include "bitsim/nn/onnx.hpp"

#include "bitsim/arith/format.hpp"
#include "bitsim/nn/trainer.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>

namespace bitsim::nn {

namespace {

using onnx::NodeProto;
using onnx::TensorProto;

constexpr std::int64_t kMaxTensorElements = std::int64_t(1) << 31;

// Names from the file, shown in one line whatever bytes they hold: quoted, and escaped without quotes.
std::string q(std::string_view s) { return arith::quoted(s); }
std::string bare(std::string_view s) {
  std::string e = arith::quoted(s, 60);
  e.erase(0, 1);
  e.erase(e.rfind('\''), 1);
  return e;
}

class Converter {
 public:
  explicit Converter(std::string path) { m_.path = std::move(path); }

  OnnxModel run(const onnx::ModelProto& model) {
    read_opset(model);
    m_.producer = (model.producer_name() + " " + model.producer_version());
    const onnx::GraphProto& g = model.graph();
    for (const TensorProto& t : g.initializer()) consts_[t.name()] = &t;
    for (const NodeProto& n : g.node())
      for (const std::string& in : n.input()) ++readers_[in];
    read_input(g);
    for (int i = 0; i < g.node_size(); ++i) node(g.node(i), i);
    if (g.output_size() != 1) fail(fmt::format("the graph has {} outputs; bitsim runs models with one", g.output_size()));
    const std::string& out = g.output(0).name();
    if (!act_.count(out)) fail(fmt::format("the graph output {} is not computed by a supported node", q(out)));
    if (m_.layers.empty()) fail("the graph has no layers");
    if (act_.at(out) != int(m_.layers.size()))
      fail(fmt::format("the graph output {} is not the last node's result (nodes after it would be computed for nothing)", q(out)));
    return std::move(m_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw OnnxError(fmt::format("{}: {}", m_.path, what)); }
  [[noreturn]] void fail(const NodeProto& n, const std::string& what) const {
    throw OnnxError(fmt::format("{}: node {} {} ({}): {}", m_.path, index_, q(n.name()), bare(n.op_type()), what));
  }

  void read_opset(const onnx::ModelProto& model) {
    for (const onnx::OperatorSetIdProto& o : model.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") m_.opset = o.version();
    if (m_.opset < kMinOnnxOpset || m_.opset > kMaxOnnxOpset)
      fail(fmt::format("opset {}: bitsim reads opsets {} to {} of the default domain", m_.opset, kMinOnnxOpset, kMaxOnnxOpset));
  }

  // The one graph input that is not an initializer: N x C x H x W images or N x F features (the
  // latter gets a flatten layer in front, since the data sets give images).
  void read_input(const onnx::GraphProto& g) {
    const onnx::ValueInfoProto* in = nullptr;
    for (const onnx::ValueInfoProto& v : g.input())
      if (!consts_.count(v.name())) {
        if (in) fail(fmt::format("the graph has more than one data input ({} and {})", q(in->name()), q(v.name())));
        in = &v;
      }
    if (!in) fail("the graph has no data input");
    const auto& type = in->type().tensor_type();
    if (type.elem_type() != TensorProto::FLOAT) fail(fmt::format("the input {} is not float32", q(in->name())));
    const int rank = type.shape().dim_size();
    if (rank != 4 && rank != 2) fail(fmt::format("the input {} has rank {}; expected N x C x H x W or N x features", q(in->name()), rank));
    for (int d = 1; d < rank; ++d) {
      const auto& dim = type.shape().dim(d);
      if (!dim.has_dim_value() || dim.dim_value() < 1)
        fail(fmt::format("the input {} has no fixed size in dimension {}", q(in->name()), d));
      m_.input.push_back(dim.dim_value());
    }
    rank_ = {rank};
    act_[in->name()] = 0;
    if (rank == 2) {  // images flattened in front of the first layer
      LayerSpec s;
      s.type = LayerType::Flatten;
      s.name = "input_flatten";
      act_[in->name()] = emit(s, 0, 2);
    }
  }

  // Appends a layer reading activation `in`; returns the activation of its output.
  int emit(LayerSpec s, int in, int out_rank, std::vector<std::vector<float>> params = {},
           std::vector<std::vector<double>> buffers = {}) {
    const int index = int(m_.layers.size());
    if (in == 0 && index > 0) fail(fmt::format("layer {} reads the graph input, which only the first layer may read", q(s.name)));
    s.input = in == index ? -1 : in - 1;
    m_.layers.push_back(std::move(s));
    m_.params.push_back(std::move(params));
    m_.buffers.push_back(std::move(buffers));
    rank_.push_back(out_rank);
    return index + 1;
  }

  // Tensor helpers.
  const TensorProto* constant(const std::string& name) const {
    const auto it = consts_.find(name);
    return it == consts_.end() ? nullptr : it->second;
  }
  std::int64_t elements(const TensorProto& t, const NodeProto& n) const {
    std::int64_t e = 1;
    for (std::int64_t d : t.dims()) {
      if (d < 0 || (d > 0 && e > kMaxTensorElements / d)) fail(n, fmt::format("tensor {} has a bad shape", q(t.name())));
      e *= d;
    }
    return e;
  }
  std::vector<float> floats(const TensorProto& t, const NodeProto& n) const {
    if (t.data_location() == TensorProto::EXTERNAL) fail(n, fmt::format("tensor {} keeps its data in an external file", q(t.name())));
    if (t.data_type() != TensorProto::FLOAT) fail(n, fmt::format("tensor {} is not float32", q(t.name())));
    const std::int64_t e = elements(t, n);
    std::vector<float> v(static_cast<std::size_t>(e));
    if (t.has_raw_data()) {
      if (t.raw_data().size() != std::size_t(e) * 4) fail(n, fmt::format("tensor {} has {} bytes of data for {} floats", q(t.name()), t.raw_data().size(), e));
      std::memcpy(v.data(), t.raw_data().data(), v.size() * 4);  // little-endian, as the x86 host
    } else {
      if (t.float_data_size() != e) fail(n, fmt::format("tensor {} has {} values for {} elements", q(t.name()), t.float_data_size(), e));
      std::copy(t.float_data().begin(), t.float_data().end(), v.begin());
    }
    for (float f : v)
      if (!std::isfinite(f)) fail(n, fmt::format("tensor {} holds a value that is not finite", q(t.name())));
    return v;
  }
  std::vector<std::int64_t> ints(const TensorProto& t, const NodeProto& n) const {
    const std::int64_t e = elements(t, n);
    std::vector<std::int64_t> v(static_cast<std::size_t>(e));
    if (t.data_type() == TensorProto::INT64 && t.has_raw_data() && t.raw_data().size() == std::size_t(e) * 8)
      std::memcpy(v.data(), t.raw_data().data(), v.size() * 8);
    else if (t.data_type() == TensorProto::INT64 && t.int64_data_size() == e)
      std::copy(t.int64_data().begin(), t.int64_data().end(), v.begin());
    else if (t.data_type() == TensorProto::INT32 && t.int32_data_size() == e)
      std::copy(t.int32_data().begin(), t.int32_data().end(), v.begin());
    else
      fail(n, fmt::format("tensor {} is not an int64 or int32 tensor with {} elements", q(t.name()), e));
    return v;
  }
  // A constant float input of the node (an initializer or a Constant node's output).
  std::vector<float> const_input(const NodeProto& n, int i, const char* what) const {
    if (i >= n.input_size() || n.input(i).empty()) fail(n, fmt::format("has no {}", what));
    const TensorProto* t = constant(n.input(i));
    if (!t) fail(n, fmt::format("its {} {} is computed by the graph; bitsim needs it as an initializer", what, q(n.input(i))));
    return floats(*t, n);
  }
  // The activation a node reads as input i.
  int activation(const NodeProto& n, int i) const {
    if (i >= n.input_size()) fail(n, fmt::format("has no input {}", i));
    const auto it = act_.find(n.input(i));
    if (it == act_.end())
      fail(n, constant(n.input(i)) ? fmt::format("input {} is a constant where bitsim expects a computed tensor", q(n.input(i)))
                                   : fmt::format("input {} is not computed by an earlier supported node", q(n.input(i))));
    return it->second;
  }

  // Attribute helpers: the value, or `def` when absent.
  const onnx::AttributeProto* attr(const NodeProto& n, const char* name) const {
    for (const onnx::AttributeProto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  std::int64_t attr_int(const NodeProto& n, const char* name, std::int64_t def) const {
    const auto* a = attr(n, name);
    return a ? a->i() : def;
  }
  float attr_float(const NodeProto& n, const char* name, float def) const {
    const auto* a = attr(n, name);
    return a ? a->f() : def;
  }
  std::vector<std::int64_t> attr_ints(const NodeProto& n, const char* name, std::vector<std::int64_t> def) const {
    const auto* a = attr(n, name);
    return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : def;
  }
  std::string attr_string(const NodeProto& n, const char* name, const std::string& def) const {
    const auto* a = attr(n, name);
    return a ? a->s() : def;
  }

  // Square window, equal strides, symmetric padding, no dilation: (kernel, stride, pad).
  struct Window {
    std::int64_t kernel, stride, pad;
  };
  Window window(const NodeProto& n, std::vector<std::int64_t> kernel) const {
    kernel = attr_ints(n, "kernel_shape", kernel);
    const auto strides = attr_ints(n, "strides", {1, 1});
    const auto pads = attr_ints(n, "pads", {0, 0, 0, 0});
    const auto dil = attr_ints(n, "dilations", {1, 1});
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (kernel.size() != 2 || kernel[0] != kernel[1] || kernel[0] < 1)
      fail(n, "kernel_shape must be square and 2-D (bitsim's windows are k x k)");
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1) fail(n, "strides must be equal in both dimensions");
    if (pads.size() != 4 || std::any_of(pads.begin(), pads.end(), [&](std::int64_t p) { return p != pads[0] || p < 0; }))
      fail(n, "pads must be the same on every side");
    if (dil.size() != 2 || dil[0] != 1 || dil[1] != 1) fail(n, "dilations other than 1 are not supported");
    if (auto_pad != "NOTSET" && auto_pad != "VALID") fail(n, fmt::format("auto_pad {} is not supported (give explicit pads)", q(auto_pad)));
    if (attr_int(n, "ceil_mode", 0) != 0) fail(n, "ceil_mode 1 is not supported (bitsim's windows floor)");
    return {kernel[0], strides[0], auto_pad == "VALID" ? 0 : pads[0]};
  }

  void require_rank(const NodeProto& n, int a, int rank) const {
    if (rank_.at(std::size_t(a)) != rank)
      fail(n, fmt::format("expects a rank-{} input, got rank {}", rank, rank_.at(std::size_t(a))));
  }
  // Output 0 is the node's result; others (MaxPool's indices, Dropout's mask) must not be read.
  void only_first_output(const NodeProto& n) const {
    for (int o = 1; o < n.output_size(); ++o)
      if (!n.output(o).empty() && readers_.count(n.output(o))) fail(n, fmt::format("its output {} is read; bitsim computes output 0 only", o));
  }
  void alias(const NodeProto& n, int a) { act_[n.output(0)] = a; }

  LayerSpec spec(const NodeProto& n, LayerType t) const {
    LayerSpec s;
    s.type = t;
    s.name = n.name().empty() ? fmt::format("{}{}", bare(n.op_type()), index_) : bare(n.name());
    return s;
  }

  void node(const NodeProto& n, int i) {
    index_ = i;
    if (n.output_size() < 1) fail(n, "has no output");
    if (!n.domain().empty() && n.domain() != "ai.onnx") fail(n, fmt::format("operator domain {} is not supported", q(n.domain())));
    const std::string& op = n.op_type();
    if (op == "Constant") {
      const auto* v = attr(n, "value");
      if (!v || !v->has_t()) fail(n, "only Constant nodes with a tensor `value` are supported");
      consts_[n.output(0)] = &v->t();
    } else if (op == "Conv") {
      conv(n);
    } else if (op == "Gemm" || op == "MatMul") {
      gemm(n);
    } else if (op == "Add") {
      add(n);
    } else if (op == "Relu") {
      const int a = activation(n, 0);
      act_[n.output(0)] = emit(spec(n, LayerType::Relu), a, rank_[std::size_t(a)]);
    } else if (op == "Clip") {
      clip(n);
    } else if (op == "MaxPool" || op == "AveragePool") {
      pool(n);
    } else if (op == "GlobalAveragePool") {
      const int a = activation(n, 0);
      require_rank(n, a, 4);
      act_[n.output(0)] = emit(spec(n, LayerType::GlobalAvgPool), a, 4);
    } else if (op == "BatchNormalization") {
      batchnorm(n);
    } else if (op == "Flatten" || op == "Reshape") {
      flatten(n);
    } else if (op == "Softmax" || op == "LogSoftmax") {
      // The logits' order is the prediction: the network stops before them (its loss applies its own).
      if (readers_.count(n.output(0))) fail(n, "is read by another node; bitsim takes Softmax only as the graph's output");
      const int a = activation(n, 0);
      require_rank(n, a, 2);
      const std::int64_t axis = attr_int(n, "axis", -1);
      if (axis != 1 && axis != -1) fail(n, "axis must be the class axis (1 or -1)");
      alias(n, a);
    } else if (op == "Identity" && n.input_size() == 1 && constant(n.input(0))) {
      // The exporter's way of sharing one initializer between nodes (PyTorch's deduplication).
      consts_[n.output(0)] = constant(n.input(0));
    } else if (op == "Dropout" || op == "Identity") {
      only_first_output(n);
      alias(n, activation(n, 0));
    } else {
      fail(n, "operator not supported (bitsim reads Conv, Gemm, MatMul, Add, Relu, Clip, MaxPool, AveragePool, "
              "GlobalAveragePool, BatchNormalization, Flatten, Reshape, Softmax, Dropout, Identity, Constant)");
    }
  }

  void conv(const NodeProto& n) {
    const int a = activation(n, 0);
    require_rank(n, a, 4);
    const TensorProto* w = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
    if (!w) fail(n, "its weights are not an initializer");
    if (w->dims_size() != 4) fail(n, "its weights are not M x C/group x kH x kW");
    const std::int64_t groups = attr_int(n, "group", 1);
    const Window win = window(n, {w->dims(2), w->dims(3)});
    if (win.kernel != w->dims(2) || win.kernel != w->dims(3)) fail(n, "kernel_shape differs from the weights' shape");
    if (groups < 1 || w->dims(0) % groups != 0) fail(n, fmt::format("group {} does not divide its {} filters", groups, w->dims(0)));
    LayerSpec s = spec(n, LayerType::Conv2d);
    s.out = w->dims(0), s.kernel = win.kernel, s.stride = win.stride, s.padding = win.pad, s.groups = groups;
    std::vector<std::vector<float>> p{floats(*w, n)};
    s.bias = n.input_size() > 2 && !n.input(2).empty();
    if (s.bias) {
      p.push_back(const_input(n, 2, "bias"));
      if (std::int64_t(p.back().size()) != s.out) fail(n, fmt::format("its bias has {} values for {} filters", p.back().size(), s.out));
    }
    act_[n.output(0)] = emit(s, a, 4, std::move(p));
  }

  // Gemm (Y = A B' + C with B' = B or B^T) and MatMul (Y = A B): a linear layer with weights N x K.
  void gemm(const NodeProto& n) {
    const bool matmul = n.op_type() == "MatMul";
    const int a = activation(n, 0);
    require_rank(n, a, 2);
    if (!matmul && (attr_int(n, "transA", 0) != 0 || attr_float(n, "alpha", 1) != 1 || attr_float(n, "beta", 1) != 1))
      fail(n, "only transA = 0, alpha = 1 and beta = 1 are supported");
    const TensorProto* b = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
    if (!b || b->dims_size() != 2) fail(n, "its second operand is not a 2-D initializer");
    const bool trans_b = !matmul && attr_int(n, "transB", 0) != 0;
    const std::int64_t k = trans_b ? b->dims(1) : b->dims(0), out = trans_b ? b->dims(0) : b->dims(1);
    std::vector<float> v = floats(*b, n), w(v.size());
    for (std::int64_t r = 0; r < out; ++r)
      for (std::int64_t c = 0; c < k; ++c) w[std::size_t(r * k + c)] = trans_b ? v[std::size_t(r * k + c)] : v[std::size_t(c * out + r)];
    LayerSpec s = spec(n, LayerType::Linear);
    s.out = out;
    std::vector<std::vector<float>> p{std::move(w)};
    s.bias = !matmul && n.input_size() > 2 && !n.input(2).empty();
    if (s.bias) {
      p.push_back(const_input(n, 2, "bias C"));
      if (std::int64_t(p.back().size()) != out) fail(n, fmt::format("its C has {} values for {} outputs (bitsim adds a bias vector)", p.back().size(), out));
    }
    act_[n.output(0)] = emit(s, a, 2, std::move(p));
  }

  // An Add of two computed tensors is a residual add; of a computed tensor and a constant vector
  // right after a MatMul, that MatMul's bias.
  void add(const NodeProto& n) {
    if (n.input_size() != 2) fail(n, "expects two inputs");
    const TensorProto* c0 = constant(n.input(0));
    const TensorProto* c1 = constant(n.input(1));
    if (c0 && c1) fail(n, "adds two constants");
    if (c0 || c1) {
      const int a = activation(n, c0 ? 1 : 0);
      const int last = int(m_.layers.size());
      LayerSpec* l = last > 0 ? &m_.layers.back() : nullptr;
      if (a != last || !l || l->type != LayerType::Linear || l->bias || readers_[n.input(c0 ? 1 : 0)] != 1)
        fail(n, "adds a constant to something other than a MatMul's result (bitsim takes that as the MatMul's bias only)");
      std::vector<float> bias = floats(c0 ? *c0 : *c1, n);
      if (std::int64_t(bias.size()) != l->out) fail(n, fmt::format("its constant has {} values for {} outputs", bias.size(), l->out));
      l->bias = true;
      m_.params.back().push_back(std::move(bias));
      alias(n, a);
      return;
    }
    const int a0 = activation(n, 0), a1 = activation(n, 1);
    const int later = std::max(a0, a1), earlier = std::min(a0, a1);
    if (earlier == 0) fail(n, "adds the graph input itself; bitsim's residual adds take a layer's output");
    if (rank_[std::size_t(a0)] != rank_[std::size_t(a1)]) fail(n, "adds tensors of different ranks (bitsim does not broadcast)");
    LayerSpec s = spec(n, LayerType::Residual);
    s.from = earlier - 1;
    act_[n.output(0)] = emit(s, later, rank_[std::size_t(later)]);
  }

  void clip(const NodeProto& n) {
    const int a = activation(n, 0);
    auto bound = [&](int i, float def) {
      if (i >= n.input_size() || n.input(i).empty()) return def;
      const std::vector<float> v = const_input(n, i, i == 1 ? "min" : "max");
      if (v.size() != 1) fail(n, "its min and max must be scalars");
      return v[0];
    };
    const float inf = std::numeric_limits<float>::infinity();
    const float lo = bound(1, -inf), hi = bound(2, inf);
    LayerType t;
    if (lo == 0 && hi == 6) t = LayerType::Relu6;
    else if (lo == -1 && hi == 1) t = LayerType::HardTanh;
    else if (lo == 0 && hi == inf) t = LayerType::Relu;
    else fail(n, fmt::format("clips to [{}, {}]; bitsim has [0, 6] (ReLU6), [-1, 1] (HardTanh) and [0, inf) (ReLU)", lo, hi));
    act_[n.output(0)] = emit(spec(n, t), a, rank_[std::size_t(a)]);
  }

  void pool(const NodeProto& n) {
    const int a = activation(n, 0);
    require_rank(n, a, 4);
    only_first_output(n);
    if (attr_int(n, "storage_order", 0) != 0) fail(n, "storage_order 1 is not supported");
    const Window win = window(n, {});
    const bool max = n.op_type() == "MaxPool";
    if (win.pad != 0 && !max) fail(n, "padded average pooling is not supported (max pooling may pad)");
    if (win.pad >= win.kernel) fail(n, "pads as large as the kernel leave windows with no input");
    LayerSpec s = spec(n, max ? LayerType::MaxPool : LayerType::AvgPool);
    s.kernel = win.kernel, s.stride = win.stride, s.padding = win.pad;
    act_[n.output(0)] = emit(s, a, 4);
  }

  void batchnorm(const NodeProto& n) {
    const int a = activation(n, 0);
    only_first_output(n);
    if (attr_int(n, "training_mode", 0) != 0) fail(n, "training_mode 1 is not supported (an inference graph has 0)");
    LayerSpec s = spec(n, LayerType::BatchNorm);
    s.eps = attr_float(n, "epsilon", 1e-5f);
    if (!(s.eps > 0)) fail(n, "epsilon must be positive");
    std::vector<float> gamma = const_input(n, 1, "scale"), beta = const_input(n, 2, "B");
    const std::vector<float> mean = const_input(n, 3, "mean"), var = const_input(n, 4, "var");
    const std::size_t c = gamma.size();
    if (beta.size() != c || mean.size() != c || var.size() != c) fail(n, "its scale, B, mean and var differ in size");
    for (float v : var)
      if (v < 0) fail(n, "its variance has a negative value");
    act_[n.output(0)] = emit(s, a, rank_[std::size_t(a)], {std::move(gamma), std::move(beta)},
                             {std::vector<double>(mean.begin(), mean.end()), std::vector<double>(var.begin(), var.end())});
  }

  // Flatten(axis 1) and Reshape to (batch, features): a flatten layer on a rank-4 tensor, nothing
  // on a rank-2 one.
  void flatten(const NodeProto& n) {
    const int a = activation(n, 0);
    std::int64_t features = -1;
    if (n.op_type() == "Flatten") {
      if (attr_int(n, "axis", 1) != 1) fail(n, "axis must be 1 (batch, features)");
    } else {
      const TensorProto* shape = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
      if (!shape) fail(n, "its shape is computed by the graph; bitsim needs a constant (export with torch.flatten)");
      const std::vector<std::int64_t> v = ints(*shape, n);
      if (v.size() != 2 || !((v[0] >= 0 && v[1] == -1) || (v[0] == -1 && v[1] > 0)))
        fail(n, "reshapes to something other than (batch, -1) or (-1, features)");
      features = v[1];
    }
    if (rank_[std::size_t(a)] == 2) return alias(n, a);
    act_[n.output(0)] = emit(spec(n, LayerType::Flatten), a, 2);
    if (features > 0) m_.reshapes.push_back({int(m_.layers.size()) - 1, features});
  }

  OnnxModel m_;
  std::map<std::string, const TensorProto*> consts_;
  std::map<std::string, int> readers_;  // how many node inputs name each tensor
  std::map<std::string, int> act_;      // computed tensors: their activation (0 the input, i + 1 layer i's output)
  std::vector<int> rank_;               // rank of each activation
  int index_ = 0;                       // the node being converted
};

}  // namespace

OnnxModel load_onnx(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || !std::filesystem::is_regular_file(path)) throw OnnxError(fmt::format("{}: cannot read the file", path));
  if (size > kMaxOnnxBytes) throw OnnxError(fmt::format("{}: {} bytes; bitsim reads models up to {} bytes", path, size, kMaxOnnxBytes));
  std::ifstream f(path, std::ios::binary);
  onnx::ModelProto model;
  if (!f || !model.ParseFromIstream(&f)) throw OnnxError(fmt::format("{}: not an ONNX model (the protobuf does not parse)", path));
  if (!model.has_graph()) throw OnnxError(fmt::format("{}: the model has no graph", path));
  return Converter(path).run(model);
}

void check_onnx_input(const OnnxModel& m, const Shape& input) {
  std::int64_t data = 1, model = 1;
  for (std::size_t d = 1; d < input.size(); ++d) data *= input[d];
  for (std::int64_t d : m.input) model *= d;
  const bool images = m.input.size() == 3;
  if (images ? !std::equal(m.input.begin(), m.input.end(), input.begin() + 1, input.end()) || input.size() != 4 : data != model) {
    const std::string shape = fmt::format("{}", fmt::join(input.begin() + 1, input.end(), "x"));
    const std::string want = fmt::format("{}", fmt::join(m.input, "x"));
    throw OnnxError(fmt::format("{}: the model takes inputs of {}, the data set's are {}", m.path, want, shape));
  }
}

void load_onnx_weights(const OnnxModel& m, Network& net, const Shape& input) {
  check_onnx_input(m, input);
  if (net.layers.size() != m.layers.size()) throw std::logic_error("load_onnx_weights: the network is not the model's");
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const std::vector<Param*> p = net.layers[i]->params();
    const std::vector<std::vector<double>*> b = net.layers[i]->buffers();
    if (p.size() < m.params[i].size() || b.size() < m.buffers[i].size())
      throw std::logic_error("load_onnx_weights: a layer lacks a parameter the model gives");
    for (std::size_t j = 0; j < m.params[i].size(); ++j) {
      if (p[j]->value.v.size() != m.params[i][j].size())
        throw OnnxError(fmt::format("{}: layer {} {}: the model's {} has {} values, the layer on this input {}", m.path, i,
                                    m.layers[i].name, p[j]->name, m.params[i][j].size(), p[j]->value.v.size()));
      p[j]->value.v = m.params[i][j];
    }
    for (std::size_t j = 0; j < m.buffers[i].size(); ++j) *b[j] = m.buffers[i][j];
  }
  for (const auto& [layer, features] : m.reshapes)
    if (net.shapes().at(std::size_t(layer) + 1).at(1) != features)
      throw OnnxError(fmt::format("{}: layer {} {} reshapes to {} features, its input has {}", m.path, layer,
                                  m.layers[std::size_t(layer)].name, features, net.shapes()[std::size_t(layer) + 1][1]));
}

OnnxNetwork build_onnx_network(const OnnxModel& m, std::int64_t batch) {
  OnnxNetwork o;
  o.input = {batch};
  if (m.input.size() == 3) o.input.insert(o.input.end(), m.input.begin(), m.input.end());
  else o.input = {batch, 1, 1, m.input.at(0)};
  for (const LayerSpec& s : m.layers) {
    o.net.layers.push_back(make_layer(s));
    o.net.layers.back()->reads = s.input;
  }
  try {
    o.net.init(o.input, 1);
  } catch (const LayerError& e) {
    throw OnnxError(fmt::format("{}: layer {} '{}': {}", m.path, e.layer, m.layers.at(std::size_t(e.layer)).name, e.what()));
  }
  return o;
}

Topology onnx_topology(const OnnxModel& m) {
  OnnxNetwork o = build_onnx_network(m, 1);
  // The GEMMs as the layers record them: one forward pass on zeros.
  std::vector<GemmRecord> records;
  Context ctx{false, 1, 0, nullptr, &records, nullptr};
  o.net.forward(Tensor(o.input), ctx);
  Topology t;
  t.source = m.path;
  t.kind = TopologyKind::Conv;
  for (const GemmRecord& r : records) {
    TopologyLayer l;
    l.name = m.layers.at(std::size_t(r.layer)).name;
    l.line = r.layer + 1;
    l.is_conv = r.conv.has_value();
    l.repeat = r.groups;
    l.gemm = {r.m, r.k, r.n};
    if (l.is_conv) {
      l.conv = *r.conv;
      l.ifmap_h = l.conv.height, l.ifmap_w = l.conv.width;
      l.depthwise = l.conv.in_channels == 1 && r.groups > 1;
    }
    t.layers.push_back(l);
  }
  return t;
}

}  // namespace bitsim::nn
