#include "bitsim/nn/cost.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/table.hpp"
#include "bitsim/costmodel/technology.hpp"
#include "bitsim/sim/array_model.hpp"

namespace bitsim::nn {

namespace {

using arith::Format;

// The accumulator format a layer's MAC units have, for costing: the configured one, or fp32 for the
// float reference.
Format acc_format(const Accumulation& acc, const Format& a, const Format& b) {
  if (acc.fp32) return Format::floating(8, 23);
  return acc.for_operands(a, b);
}

// GEMM shape at batch size `b`, from a record made at batch size `rec_batch`: forward and
// backward-data scale M, backward-weight scales its reduction K.
sim::GemmShape scaled(const GemmRecord& g, std::int64_t rec_batch, std::int64_t b) {
  sim::GemmShape s{g.m, g.k, g.n};
  if (g.phase == Phase::BackwardWeight) s.k = g.k / rec_batch * b;
  else s.m = g.m / rec_batch * b;
  return s;
}

struct Totals {
  double macs = 0, cycles = 0, energy_mac = 0, energy_sram = 0, energy_dram = 0, dram_bytes = 0;
  void add(const Totals& o) {
    macs += o.macs, cycles += o.cycles, energy_mac += o.energy_mac, energy_sram += o.energy_sram;
    energy_dram += o.energy_dram, dram_bytes += o.dram_bytes;
  }
  double energy() const { return energy_mac + energy_sram + energy_dram; }
  nlohmann::json json() const {
    return {{"macs", macs}, {"cycles", cycles},
            {"energy_pj", {{"mac", energy_mac}, {"sram", energy_sram}, {"dram", energy_dram}, {"total", energy()}}},
            {"dram_bytes", dram_bytes}};
  }
};

costmodel::CostTable cost_table(const HardwareSpec& hw) {
  return hw.table.empty() ? costmodel::CostTable::load_default() : costmodel::CostTable::load(hw.table);
}

}  // namespace

void check_cost_hardware(const HardwareSpec& hw) {
  auto attempt = [](const char* key, auto&& fn) {
    try {
      return fn();
    } catch (const std::exception& e) {
      throw CostSetupError(key, e.what());
    }
  };
  costmodel::CostTable table = attempt("table", [&] { return cost_table(hw); });
  costmodel::CostTarget target;
  target.node_nm = hw.node_nm;
  const costmodel::CostModel model = attempt("node_nm", [&] {
    return costmodel::CostModel(std::move(table), costmodel::NodeScaling::load_default(), target);
  });
  attempt("buffer_kib", [&] { return model.sram_read_energy_pj(double(hw.array.buffer_a_bytes), 8); });
}

nlohmann::json run_cost(const Experiment& x, const std::vector<GemmRecord>& gemms, const RunVolume& v) {
  costmodel::CostTarget target;
  target.node_nm = x.hardware.node_nm;
  const costmodel::CostModel model(cost_table(x.hardware), costmodel::NodeScaling::load_default(), target);
  const double sram_bytes = double(x.hardware.array.buffer_a_bytes);
  const double f_hz = x.hardware.clock_ghz * 1e9;
  const sim::ArraySpec& hw = x.hardware.array;

  // One GEMM at batch b: closed-form stats and the energy of its MACs, buffer accesses and DRAM.
  auto gemm_cost = [&](const GemmRecord& g, std::int64_t b, sim::ArrayStats* stats_out = nullptr) {
    const LayerNumerics ln = x.layer(g.layer);
    sim::ArrayConfig cfg(hw);
    cfg.a = g.a, cfg.w = g.b;
    // A float operand with a fixed-point one only occurs with the fp32 reference accumulator: cost
    // both as fp32.
    if (cfg.a.is_float() != cfg.w.is_float()) cfg.a = cfg.w = Format::floating(8, 23);
    cfg.acc = acc_format(ln.acc, cfg.a, cfg.w);
    cfg.acc_spec = {arith::Rounding::NearestEven, arith::default_overflow(cfg.acc)};
    const sim::ArrayStats s = sim::array_model(cfg, scaled(g, v.batch, b));
    if (stats_out) *stats_out = s;
    Totals t;
    t.macs = double(s.macs);
    t.cycles = double(s.cycles);
    // A binary GEMM is XNOR and popcount, not a multiplier.
    t.energy_mac = t.macs * (g.binary ? model.xnor_popcount() : model.mac(cfg.a, cfg.w, cfg.acc)).energy_pj();
    auto sram = [&](const sim::BufferCounts& c, int bits) {
      return double(c.reads + c.writes) * model.sram_read_energy_pj(sram_bytes, bits);
    };
    t.energy_sram = sram(s.buf_a, cfg.a.width()) + sram(s.buf_w, cfg.w.width()) + sram(s.buf_o, cfg.acc.width());
    t.dram_bytes = double(s.dram.total());
    t.energy_dram = t.dram_bytes * model.dram_energy_pj(8);
    return t;
  };
  // Steps of an epoch: full batches and the last partial one.
  auto per_epoch = [&](const GemmRecord& g, std::int64_t examples) {
    Totals t;
    const std::int64_t full = examples / v.batch, rest = examples % v.batch;
    Totals a = gemm_cost(g, v.batch);
    for (double* f : {&a.macs, &a.cycles, &a.energy_mac, &a.energy_sram, &a.energy_dram, &a.dram_bytes}) *f *= double(full);
    t.add(a);
    if (rest) t.add(gemm_cost(g, rest));
    return t;
  };

  std::map<std::string, Totals> by_phase;
  std::map<int, Totals> by_layer;
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json roofline = nlohmann::json::array();
  for (const GemmRecord& g : gemms) {
    Totals train = per_epoch(g, v.train_examples_per_epoch);
    for (double* f : {&train.macs, &train.cycles, &train.energy_mac, &train.energy_sram, &train.energy_dram, &train.dram_bytes})
      *f *= double(v.epochs);
    by_phase[std::string(to_string(g.phase))].add(train);
    by_layer[g.layer].add(train);
    if (g.phase == Phase::Forward) {
      Totals inf = per_epoch(g, v.test_examples_per_epoch);
      for (double* f : {&inf.macs, &inf.cycles, &inf.energy_mac, &inf.energy_sram, &inf.energy_dram, &inf.dram_bytes})
        *f *= double(v.epochs);
      by_phase["inference"].add(inf);
      // Roofline of the layer's forward GEMM at the training batch size.
      sim::ArrayStats s;
      gemm_cost(g, v.batch, &s);
      const double ops = 2.0 * double(s.macs), bytes = double(s.dram.total());
      const double peak = 2.0 * double(hw.rows) * double(hw.cols) * f_hz;
      const double bw = hw.dram_bytes_per_cycle * f_hz;
      const double ai = bytes > 0 ? ops / bytes : 0;
      const double roof = bw > 0 ? std::min(peak, ai * bw) : peak;
      roofline.push_back({{"layer", g.layer}, {"ops", ops}, {"dram_bytes", bytes}, {"arithmetic_intensity", ai},
                          {"peak_ops_per_s", peak}, {"attainable_ops_per_s", roof},
                          {"achieved_ops_per_s", ops / (double(s.cycles) / f_hz)},
                          {"bound", bw > 0 && ai * bw < peak ? "memory" : "compute"}, {"utilization", s.utilization()}});
    }
    layers.push_back({{"layer", g.layer}, {"phase", to_string(g.phase)}, {"m", g.m}, {"n", g.n}, {"k", g.k},
                      {"a_format", g.a.spec()}, {"b_format", g.b.spec()}, {"path", to_string(g.path)}, {"xnor", g.binary},
                      {"per_run", train.json()}});
  }
  // The optimizer's update: about 10 fp32 multiply-adds per parameter per step (Adam's moments,
  // bias corrections, square root, division), and reading and writing weight, gradient and moments.
  const std::int64_t steps = (v.train_examples_per_epoch + v.batch - 1) / v.batch * v.epochs;
  const Format fp32 = Format::floating(8, 23);
  Totals upd;
  upd.macs = 10.0 * double(v.parameters) * double(steps);
  upd.energy_mac = upd.macs * model.mac(fp32, fp32, fp32).energy_pj();
  upd.energy_sram = 8.0 * double(v.parameters) * double(steps) * model.sram_read_energy_pj(sram_bytes, 32);
  by_phase["update"] = upd;

  nlohmann::json phases = nlohmann::json::object(), per_layer = nlohmann::json::object();
  Totals all;
  for (const auto& [p, t] : by_phase) phases[p] = t.json(), all.add(t);
  for (const auto& [l, t] : by_layer) per_layer[std::to_string(l)] = t.json();

  // The array's silicon: R x C MAC units at the first GEMM layer's formats.
  nlohmann::json area = nullptr;
  if (!gemms.empty()) {
    const GemmRecord& g = gemms.front();
    const LayerNumerics ln = x.layer(g.layer);
    Format fa = g.a, fb = g.b;
    if (fa.is_float() != fb.is_float()) fa = fb = Format::floating(8, 23);
    const Format fc = acc_format(ln.acc, fa, fb);
    const auto a = model.mac(fa, fb, fc).area_um2();
    if (a) area = {{"mac_um2", *a}, {"array_um2", *a * double(hw.rows) * double(hw.cols)},
                   {"mac_formats", fmt::format("{} x {} -> {}", fa.spec(), fb.spec(), fc.spec())}};
  }
  return {{"technology", model.describe()},
          {"total", all.json()},
          {"seconds_at_clock", all.cycles / f_hz},
          {"by_phase", phases},
          {"by_layer", per_layer},
          {"gemms", layers},
          {"roofline", roofline},
          {"area", area}};
}

}  // namespace bitsim::nn
