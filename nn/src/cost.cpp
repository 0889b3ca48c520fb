// The workload of a run for the cost pipeline: recorded GEMM shapes scaled to every batch size the
// run used, counted per layer and phase.
#include "bitsim/nn/cost.hpp"

#include <fmt/format.h>

#include <map>
#include <stdexcept>

namespace bitsim::nn {

namespace {

using arith::Format;
using costmodel::GemmWork;

// The GEMM at batch size `b`, from a record made at batch size `rec_batch`: forward and
// backward-data scale M (batch x output pixels), backward-weight scales its reduction K.
sim::GemmShape scaled(const GemmRecord& g, std::int64_t rec_batch, std::int64_t b) {
  sim::GemmShape s{g.m, g.k, g.n};
  if (g.phase == Phase::BackwardWeight) s.k = g.k / rec_batch * b;
  else s.m = g.m / rec_batch * b;
  return s;
}

std::optional<sim::ConvShape> scaled_conv(const GemmRecord& g, std::int64_t b) {
  std::optional<sim::ConvShape> c = g.conv;
  if (c) c->batch = b;
  return c;
}

// The formats the array computes a recorded GEMM in: its operands, and the layer's accumulator
// (fp32 for the float reference). A float operand beside a fixed-point one only occurs with the
// fp32 reference accumulator: both are costed as fp32.
GemmWork work_of(const Experiment& x, const GemmRecord& g, const std::vector<costmodel::LayerId>& ids) {
  GemmWork w;
  w.layer = ids.at(std::size_t(g.layer));
  w.phase = g.phase;
  w.a = g.a, w.w = g.b;
  if (w.a.is_float() != w.w.is_float()) w.a = w.w = Format::fp32();
  const Accumulation acc = x.layer(g.layer).acc;
  w.acc = g.acc ? *g.acc : acc.fp32 ? Format::fp32() : acc.for_operands(w.a, w.w);
  w.xnor = g.binary;
  w.sign_operand = g.sign_operand;
  // Which operand classes the phase multiplies: forward A x W, backward-data E x W, backward-weight
  // E x A. A binary one against a wider one makes each product a sign flip.
  if (!g.binary && !g.acc) {
    const LayerNumerics n = x.layer(g.layer);
    const auto is_binary = [](const Numerics& q) { return q.kind == Numerics::Kind::Binary; };
    const bool w_bin = is_binary(n.weights), a_bin = is_binary(n.activations), e_bin = is_binary(n.errors);
    switch (g.phase) {
      case Phase::Forward:
      case Phase::Inference: w.sign_operand = w_bin != a_bin; break;
      case Phase::BackwardData: w.sign_operand = w_bin != e_bin; break;
      case Phase::BackwardWeight: w.sign_operand = a_bin != e_bin; break;
      case Phase::Update: break;
    }
  }
  w.out_bits = g.out_bits;
  w.path = std::string(to_string(g.path));
  return w;
}

costmodel::ElementWork element(const GemmWork& g, const char* what, costmodel::OpKind kind, const Format& a,
                               const Format& b, double ops) {
  costmodel::ElementWork e;
  e.layer = g.layer, e.phase = g.phase, e.what = what, e.kind = kind, e.a = a, e.b = b, e.ops = ops;
  e.access_bits = a.width();
  return e;
}

// The units beside the array that one execution of `g` keeps busy: stochastic-rounding units for
// the operand (or, for the weight gradient, the result) it quantizes with stochastic rounding, a
// scale unit after the array for scaled schemes (XNOR-Net, TWN, DoReFa), and the requantizer that
// turns integer accumulators into the next layer's activations. A GEMM of an inference engine has
// what its record says stands after the array instead: an int32 bias add and a requantizer
// (integer-only), a threshold compare (popcount), or an fp32 multiply and add (an affine).
std::vector<costmodel::ElementWork> units_of(const Experiment& x, const GemmWork& g, const GemmRecord& rec) {
  std::vector<costmodel::ElementWork> out;
  const double outputs = double(g.shape.m) * double(g.shape.n);
  using After = GemmRecord::After;
  switch (rec.after) {
    case After::Numerics: break;
    case After::Requantizer:
      out.push_back(element(g, "bias add", costmodel::OpKind::Add, g.acc, g.acc, outputs));
      out.push_back(element(g, "requantizer", costmodel::OpKind::Requantize, g.acc, g.a, outputs));
      return out;
    case After::Threshold:
      out.push_back(element(g, "threshold compare", costmodel::OpKind::Add, g.acc, g.acc, outputs));
      return out;
    case After::Affine:
      out.push_back(element(g, "affine", costmodel::OpKind::Mac, Format::fp32(), Format::fp32(), outputs));
      out.back().acc = Format::fp32();
      return out;
  }
  const LayerNumerics n = x.layer(g.layer.index);
  const double m = double(g.shape.m), k = double(g.shape.k), nn_ = double(g.shape.n);
  auto sr = [&](const Numerics& q, const Format& f, double elements) {
    if (q.stochastic())
      out.push_back(element(g, "stochastic rounding", costmodel::OpKind::StochasticRound, f, f, elements)),
          out.back().random_bits = q.spec.sr_bits;
  };
  const bool scaled = n.weights.kind == Numerics::Kind::Scaled || n.activations.kind == Numerics::Kind::Scaled;
  // XNOR-Net's K: one activation scale per GEMM row (output pixel or example), beside the weights'.
  const bool k_map = n.activations.kind == Numerics::Kind::Scaled && n.activations.scheme == Numerics::Scheme::Xnor;
  const bool both = k_map && n.weights.kind == Numerics::Kind::Scaled;
  auto scale_unit = [&](costmodel::OpKind kind, double ops) {
    out.push_back(element(g, "scale unit", kind, Format::fp32(), Format::fp32(), ops));
  };
  switch (g.phase) {
    case costmodel::Phase::Forward:
    case costmodel::Phase::Inference:
      sr(n.activations, g.a, m * k);
      sr(n.weights, g.w, k * nn_);
      // One multiply per output, two when K and a weight scale both apply.
      if (scaled) scale_unit(costmodel::OpKind::Multiply, m * nn_ * (both ? 2 : 1));
      // K = sum |x| over the row's k inputs times 1 / k: k adds and a multiply per row.
      if (k_map) scale_unit(costmodel::OpKind::Add, m * k), scale_unit(costmodel::OpKind::Multiply, m);
      if (!n.acc.fp32 && !g.acc.is_float())
        out.push_back(element(g, "requantizer", costmodel::OpKind::Requantize, g.acc, g.a, m * nn_));
      break;
    case costmodel::Phase::BackwardData:
      sr(n.errors, g.a, m * k);
      // The error is multiplied by the weight scales before this GEMM (E is M x N here: m x k).
      if (n.weights.kind == Numerics::Kind::Scaled) scale_unit(costmodel::OpKind::Multiply, m * k);
      if (k_map) scale_unit(costmodel::OpKind::Multiply, m * nn_);  // dX (M x K here: n = K) row m times K[m]
      break;
    case costmodel::Phase::BackwardWeight:
      sr(n.gradients, g.acc.is_float() ? g.acc : g.w, m * nn_);
      if (k_map) scale_unit(costmodel::OpKind::Multiply, k * m);  // E (K = M rows x N here) row times K[row]
      break;
    case costmodel::Phase::Update: break;
  }
  return out;
}

// Adds `g` run over `examples` examples in batches of `batch`, `times` over: full batches, then
// the last partial one at its own size (a grouped convolution's GEMM once per group each time);
// and the units beside the array that each run uses.
void add_passes(const Experiment& x, costmodel::Workload& w, GemmWork base, const GemmRecord& g, std::int64_t rec_batch,
                std::int64_t batch, std::int64_t examples, double times) {
  const std::int64_t full = examples / batch, rest = examples % batch;
  for (const auto& [size, repeat] : {std::pair{batch, double(full) * times}, std::pair{rest, times}}) {
    if (size <= 0 || repeat <= 0) continue;
    base.shape = scaled(g, rec_batch, size);
    base.conv = scaled_conv(g, size);
    base.repeat = repeat * double(g.groups);
    w.gemms.push_back(base);
    for (costmodel::ElementWork e : units_of(x, base, g)) {
      e.repeat = base.repeat;
      w.elements.push_back(e);
    }
  }
}

}  // namespace

std::vector<costmodel::LayerId> gemm_layer_ids(const Experiment& x) {
  std::vector<costmodel::LayerId> ids;
  int conv = 0, fc = 0;
  for (std::size_t i = 0; i < x.layers.size(); ++i) {
    const LayerType t = x.layers[i].type;
    const std::string name = !x.layers[i].name.empty() ? x.layers[i].name
                             : t == LayerType::Conv2d ? fmt::format("conv{}", ++conv)
                             : t == LayerType::Linear ? fmt::format("fc{}", ++fc)
                                                      : fmt::format("{}{}", to_string(t), i);
    ids.push_back({int(i), name});
  }
  return ids;
}

costmodel::Workload training_workload(const Experiment& x, const std::vector<GemmRecord>& gemms, const RunVolume& v) {
  const auto ids = gemm_layer_ids(x);
  costmodel::Workload w;
  for (const GemmRecord& g : gemms) {
    const GemmWork base = work_of(x, g, ids);
    add_passes(x, w, base, g, v.batch, v.batch, v.train_examples_per_epoch, v.epochs);
    if (g.phase == Phase::Forward) {
      GemmWork inf = base;
      inf.phase = costmodel::Phase::Inference;
      add_passes(x, w, inf, g, v.batch, v.eval_batch, v.test_examples_per_epoch, v.epochs);
    }
  }
  // The optimizer's update: about 10 fp32 multiply-adds per parameter per step (Adam's moments,
  // bias corrections, square root, division), reading and writing weight, gradient and moments.
  const double steps = double((v.train_examples_per_epoch + v.batch - 1) / v.batch) * v.epochs;
  const Format fp32 = Format::fp32();
  costmodel::ElementWork upd;
  upd.layer = {-1, "optimizer"};
  upd.phase = costmodel::Phase::Update;
  upd.what = "update";
  upd.kind = costmodel::OpKind::Mac;
  upd.a = upd.b = fp32;
  upd.acc = fp32;
  upd.ops = 10.0 * double(v.parameters);
  upd.sram_accesses = 8.0 * double(v.parameters);
  upd.access_bits = 32;
  upd.repeat = steps;
  w.elements.push_back(upd);
  return w;
}

costmodel::Workload inference_workload(const Experiment& x, const std::vector<GemmRecord>& forward, std::int64_t batch,
                                       std::int64_t examples) {
  const auto ids = gemm_layer_ids(x);
  costmodel::Workload w;
  for (const GemmRecord& g : forward) {
    if (g.phase != Phase::Forward) continue;
    GemmWork base = work_of(x, g, ids);
    base.phase = costmodel::Phase::Inference;
    add_passes(x, w, base, g, batch, batch, examples, 1);
  }
  return w;
}

namespace {

// The operand format the array sees for a tensor class, as Numerics::apply returns it; only
// formats that do not depend on the data can be costed without running the network.
Format operand_format(const Numerics& n, const char* key) {
  switch (n.kind) {
    case Numerics::Kind::Fp32:
    case Numerics::Kind::Scalar: return n.format;
    case Numerics::Kind::Binary: return Format::fixed(2, 0);  // holds -1 and +1, as apply() says
    case Numerics::Kind::Block:
    case Numerics::Kind::OverflowRate:
    case Numerics::Kind::Scaled: break;
  }
  throw std::invalid_argument(fmt::format("numerics.{} {}: the grid of a block or scaled format depends on the data; "
                                          "a topology is costed at fp32, binary or a scalar format",
                                          key, arith::quoted(n.describe())));
}

}  // namespace

Experiment topology_experiment(const Experiment& x, const Topology& t) {
  Experiment y = x;
  y.layers.clear();
  y.layer_numerics.clear();
  y.classifier_rule_alpha = 0;
  for (const TopologyLayer& l : t.layers) {
    LayerSpec s;
    s.type = l.is_conv ? LayerType::Conv2d : LayerType::Linear;
    s.out = l.gemm.n;
    if (l.is_conv) s.kernel = l.conv.kernel_h, s.stride = l.conv.stride;
    s.bias = false;
    s.name = l.name;
    y.layers.push_back(s);
  }
  return y;
}

std::vector<GemmRecord> topology_records(const Experiment& y, const Topology& t, std::int64_t batch) {
  if (batch < 1 || batch > kMaxTopologyBatch)
    throw std::invalid_argument(fmt::format("bad batch {}: expected 1..{}", batch, kMaxTopologyBatch));
  std::vector<GemmRecord> out;
  for (std::size_t i = 0; i < t.layers.size(); ++i) {
    const TopologyLayer& l = t.layers[i];
    const LayerNumerics n = y.layer(int(i));
    GemmRecord r;
    r.layer = int(i);
    r.phase = Phase::Forward;
    r.m = l.gemm.m * batch, r.k = l.gemm.k, r.n = l.gemm.n;
    r.a = operand_format(n.activations, "activations");
    r.b = operand_format(n.weights, "weights");
    r.binary = n.weights.kind == Numerics::Kind::Binary && n.activations.kind == Numerics::Kind::Binary;
    if (l.is_conv) {
      r.conv = l.conv;
      r.conv->batch = batch;
    }
    r.groups = l.repeat;  // a depthwise layer: `repeat` single-channel convolutions (SCALE-Sim's reading)
    out.push_back(r);
  }
  return out;
}

costmodel::Workload topology_workload(const Experiment& x, const Topology& t, std::int64_t batch) {
  const Experiment y = topology_experiment(x, t);
  costmodel::Workload w = inference_workload(y, topology_records(y, t, batch), batch, batch);
  // Not computed by the executor: the record's path says so.
  for (GemmWork& g : w.gemms) g.path = "topology";
  return w;
}

}  // namespace bitsim::nn
