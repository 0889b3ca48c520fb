#include "bitsim/nn/verify.hpp"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include "bitsim/arith/quantize.hpp"
#include "bitsim/nn/cost.hpp"

namespace bitsim::nn {

namespace {

using arith::Format;

// |q - ref| in units in the last place of the accumulator format f at ref: 2^-fl for fixed point,
// the spacing of f's numbers around ref for floats (its smallest subnormal step near zero).
double ulp_error(float q, float ref, const Format& f) {
  double ulp;
  if (!f.is_float()) {
    ulp = std::ldexp(1.0, -f.fl);
  } else {
    int e = 0;
    std::frexp(ref, &e);  // |ref| in [2^(e-1), 2^e)
    const int emin = f.emin();
    ulp = std::ldexp(1.0, std::max(ref == 0 ? emin : e - 1, emin) - f.man_bits);
  }
  return std::abs(double(q) - double(ref)) / ulp;
}

struct Deviation {
  double ref2 = 0, err2 = 0, max_abs = 0;
  double max_ulp = 0;
  std::int64_t elements = 0, nonfinite = 0;
  void add(const std::vector<float>& q, const std::vector<float>& ref, const Format& acc) {
    for (std::size_t i = 0; i < q.size(); ++i) {
      ++elements;
      if (!std::isfinite(q[i]) || !std::isfinite(ref[i])) {
        ++nonfinite;
        continue;
      }
      const double e = double(q[i]) - double(ref[i]);
      ref2 += double(ref[i]) * double(ref[i]);
      err2 += e * e;
      max_abs = std::max(max_abs, std::abs(e));
      max_ulp = std::max(max_ulp, ulp_error(q[i], ref[i], acc));
    }
  }
  nlohmann::json json() const {
    const double sqnr = err2 == 0 ? INFINITY : 10 * std::log10(ref2 / err2);
    return {{"sqnr_db", std::isfinite(sqnr) ? nlohmann::json(sqnr) : nlohmann::json("inf")},
            {"max_abs_error", max_abs}, {"max_ulp", max_ulp}, {"elements", elements}, {"nonfinite", nonfinite}};
  }
};

// The experiment with every tensor class in fp32 and the fp32 reference accumulator.
Experiment fp32_twin(const Experiment& x) {
  Experiment f = x;
  f.numerics = NumericsSpec{};
  f.layer_numerics.clear();
  return f;
}

// One training step of `net`, capturing every GEMM.
std::vector<GemmCapture> step(const Experiment& x, Network& net, Optimizer& optim, const Tensor& input,
                              const std::vector<std::uint8_t>& labels, std::uint64_t s) {
  std::vector<GemmCapture> caps;
  std::mt19937_64 rng = step_rng(x, s);
  Context ctx{true, x.seed, s, &rng, nullptr, &caps};
  Tensor dlogits;
  loss_and_gradient(x, net.forward(input, ctx), labels.data(), dlogits);
  for (float& d : dlogits.v) d = float(d * x.loss_scale);
  net.backward(dlogits, ctx);
  optim.step(net.params(), optim.lr_at(0, x.epochs), x.seed, s, x.loss_scale);
  return caps;
}

}  // namespace

VerifyResult verify(const Experiment& x, const VerifyOptions& opt) {
  if (opt.steps < 1) throw std::invalid_argument("verify: --steps must be positive");
  const Dataset data = load_split(x, true);
  if (data.n == 0) throw ExperimentError(fmt::format("{}: data: the training split is empty", x.source));
  const Shape input_shape{std::min(x.batch, data.n), data.channels, data.height, data.width};
  const Experiment fx = fp32_twin(x);
  Network qnet = build_network(x, input_shape), fnet = build_network(fx, input_shape);
  Optimizer qopt = make_optimizer(x), fopt = make_optimizer(fx);

  const std::vector<std::int64_t> idx = epoch_order(x, data.n, 0);  // the first epoch's batches

  std::map<std::pair<int, int>, Deviation> dev;
  std::vector<GemmCapture> first_step;
  for (int s = 0; s < opt.steps; ++s) {
    const std::int64_t first = (s * input_shape[0]) % std::max<std::int64_t>(1, data.n - input_shape[0] + 1);
    Tensor input;
    std::vector<std::uint8_t> labels;
    gather_batch(data, idx, first, input_shape[0], input, labels);
    std::vector<GemmCapture> q = step(x, qnet, qopt, input, labels, std::uint64_t(s));
    const std::vector<GemmCapture> f = step(fx, fnet, fopt, input, labels, std::uint64_t(s));
    for (std::size_t i = 0; i < q.size() && i < f.size(); ++i)
      dev[{q[i].record.layer, int(q[i].record.phase)}].add(
          q[i].effective.empty() ? q[i].c : q[i].effective, f[i].c,
          // scaled outputs are no longer on the accumulator's grid: measure them in fp32 ULPs
          q[i].acc.fp32 || !q[i].effective.empty() ? Format::fp32() : q[i].acc.for_operands(q[i].record.a, q[i].record.b));
    if (s == 0) first_step = std::move(q);
    if (opt.progress) opt.progress(double(s + 1) / double(opt.steps + 1), fmt::format("step {}/{}", s + 1, opt.steps));
  }

  // Sampled GEMMs of the first step: a few rows, every column, the whole reduction, for the array.
  VerifyResult result;
  std::mt19937_64 pick(x.seed);
  for (const GemmCapture& c : first_step) {
    if (int(result.replays.size()) >= opt.samples) break;
    const GemmRecord& r = c.record;
    ReplayCase rc;
    const std::int64_t rows = std::min(opt.sample_rows, r.m);
    const std::int64_t r0 = std::int64_t(pick() % std::uint64_t(r.m - rows + 1));
    rc.description = {{"layer", r.layer}, {"phase", to_string(r.phase)}, {"rows", rows}, {"first_row", r0}, {"n", r.n},
                      {"k", r.k}, {"a_format", r.a.spec()}, {"b_format", r.b.spec()}, {"path", to_string(r.path)},
                      {"group", c.group}, {"groups", r.groups}};
    if (c.acc.fp32) rc.skipped = "fp32 reference accumulator (no hardware to replay)";
    else if (r.a.width() > 64 || r.b.width() > 64 || r.a.is_float() != r.b.is_float())
      rc.skipped = fmt::format("operand formats {} and {} are not array formats", r.a.spec(), r.b.spec());
    if (rc.skipped.empty()) {
      sim::ArrayConfig& cfg = rc.config;
      cfg = sim::ArrayConfig(x.hardware.array);
      cfg.a = r.a, cfg.w = r.b;
      cfg.acc = rc.acc = c.acc.for_operands(r.a, r.b);
      cfg.acc_spec = c.acc.spec;
      cfg.seed = c.sr.seed;
      cfg.stream_base = c.sr.stream + std::uint64_t(r0 * r.n);
      rc.operands.shape = {rows, r.k, r.n};
      const arith::RoundSpec exact_a{arith::Rounding::NearestEven, arith::default_overflow(r.a)};
      const arith::RoundSpec exact_b{arith::Rounding::NearestEven, arith::default_overflow(r.b)};
      for (std::int64_t i = 0; i < rows * r.k; ++i)
        rc.operands.a.push_back(arith::quantize(r.a, arith::Exact::from_float(c.a[std::size_t(r0 * r.k + i)]), exact_a).code);
      for (float v : c.b) rc.operands.w.push_back(arith::quantize(r.b, arith::Exact::from_float(v), exact_b).code);
      rc.want.assign(c.c.begin() + std::ptrdiff_t(r0 * r.n), c.c.begin() + std::ptrdiff_t((r0 + rows) * r.n));
    }
    result.replays.push_back(std::move(rc));
  }
  if (opt.progress) opt.progress(1.0, "done");

  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [key, d] : dev) {
    nlohmann::json j = d.json();
    j["layer"] = key.first;
    j["phase"] = to_string(Phase(key.second));
    layers.push_back(j);
  }
  // The cost of the steps verify ran, on the experiment's hardware.
  std::vector<GemmRecord> records;
  for (const GemmCapture& c : first_step)
    if (c.group == 0) records.push_back(c.record);  // a grouped GEMM's record stands for every group
  std::int64_t parameters = 0;
  for (Param* p : qnet.params()) parameters += p->value.size();
  const RunVolume volume{opt.steps * input_shape[0], 0, 1, input_shape[0], input_shape[0], parameters};
  result.cost = costmodel::evaluate(x.hardware, training_workload(x, records, volume), threads());
  result.report = {{"experiment", x.name}, {"steps", opt.steps}, {"batch", input_shape[0]}, {"deviation_from_fp32", layers},
                   {"cost", costmodel::to_json(result.cost)}};
  return result;
}

std::int64_t count_matches(const ReplayCase& rc, const std::vector<arith::u128>& codes) {
  std::int64_t matched = 0;
  for (std::size_t i = 0; i < rc.want.size() && i < codes.size(); ++i) {
    const float have = arith::to_f32(arith::decode(rc.acc, codes[i]));
    matched += std::memcmp(&rc.want[i], &have, sizeof have) == 0;
  }
  return matched;
}

}  // namespace bitsim::nn
