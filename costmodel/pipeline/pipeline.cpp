// The typed cost pipeline: workload + hardware -> closed-form cycles and traffic -> energy, area,
// roofline -> RunCost -> JSON.
#include "bitsim/costmodel/pipeline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/plot.hpp"
#include "bitsim/costmodel/table.hpp"
#include "bitsim/costmodel/technology.hpp"

namespace bitsim::costmodel {

namespace {

using arith::Format;

CostTable cost_table(const Hardware& hw) { return hw.table.empty() ? CostTable::load_default() : CostTable::load(hw.table); }

CostTarget cost_target(const Hardware& hw) {
  CostTarget t;
  t.node_nm = hw.node_nm;
  t.vdd_v = hw.vdd_v;
  t.device = hw.device;
  t.dram_end = hw.dram_end;
  return t;
}

CostModel cost_model(const Hardware& hw) { return CostModel(cost_table(hw), NodeScaling::load_default(), cost_target(hw)); }

std::uint64_t count(std::int64_t v) { return std::uint64_t(std::max<std::int64_t>(v, 0)); }

// Energy of one execution of `g` with the closed form's counts `s`, by component.
EnergyReport gemm_energy(const CostModel& model, const Hardware& hw, const GemmWork& g, const sim::ArrayStats& s) {
  Counts counts;
  if (g.sign_operand)  // an add or subtract into the accumulator per product
    counts.ops.push_back({OpKind::Add, g.acc, g.acc, std::nullopt, 16, count(s.macs), {}, std::nullopt});
  else
    counts.ops.push_back({g.xnor ? OpKind::XnorPopcount : OpKind::Mac, g.a, g.w, g.acc, 16, count(s.macs), {}, std::nullopt});
  const double sram_bytes = double(hw.array.buffer_a_bytes);
  auto sram = [&](const sim::BufferCounts& b, int bits) {
    counts.memory.push_back({MemLevel::Sram, sram_bytes, bits, count(b.reads), {}, false});
    counts.memory.push_back({MemLevel::Sram, sram_bytes, bits, count(b.writes), {}, true});
  };
  sram(s.buf_a, g.a.width());
  sram(s.buf_w, g.w.width());
  sram(s.buf_o, g.acc.width());
  counts.memory.push_back({MemLevel::Dram, 0, 8, count(s.dram.total()), {}, false});
  return estimate_energy(model, counts);
}

// One execution of a GEMM (or convolution) at the mapping the mapper picks for hw.mapping: the
// closed form's counts, their energy by component, and its roofline point.
GemmCost cost_gemm(const CostModel& model, const Hardware& hw, const GemmWork& g) {
  GemmCost c;
  c.work = g;
  const sim::OperandBits bits{g.a.width(), g.w.width(), g.acc.width(), g.out_bits};
  // The mapper scores lower bounds of counts too, so a metric must not decrease as a count grows:
  // energy is a sum of counts times positive energies per operation or access (each rounding of
  // the sum is monotone too), and energy x cycles a product of two such non-negative terms.
  auto energy = [&](const sim::ArrayStats& st) { return gemm_energy(model, hw, g, st).total_energy_pj; };
  sim::Metric metric;
  switch (hw.mapping) {
    case MappingGoal::Energy: metric = energy; break;
    case MappingGoal::Cycles: metric = sim::cycles_metric; break;
    case MappingGoal::DramBytes: metric = sim::dram_bytes_metric; break;
    case MappingGoal::EnergyDelay: metric = [&](const sim::ArrayStats& st) { return energy(st) * double(st.cycles); }; break;
    case MappingGoal::Fixed: break;
  }
  if (metric) {
    const sim::MappingChoice m = g.conv ? sim::best_conv_mapping(hw.array, bits, *g.conv, metric)
                                        : sim::best_mapping(hw.array, bits, g.shape, metric);
    c.mapping = m.mapping, c.stats = m.stats;
    c.fixed_cycles = double(m.fixed_stats.cycles), c.fixed_energy_pj = energy(m.fixed_stats);
  } else {
    c.stats = g.conv ? sim::conv_model(hw.array, bits, *g.conv) : sim::array_model(hw.array, bits, g.shape);
    c.fixed_cycles = double(c.stats.cycles), c.fixed_energy_pj = energy(c.stats);
  }
  const sim::ArrayStats& s = c.stats;
  const EnergyReport e = gemm_energy(model, hw, g, s);

  c.once.macs = double(s.macs);
  c.once.cycles = double(s.cycles);
  c.once.dram_bytes = double(s.dram.total());
  c.once.sram_accesses = double(s.buf_a.reads + s.buf_a.writes + s.buf_w.reads + s.buf_w.writes + s.buf_o.reads + s.buf_o.writes);
  c.once.energy_pj = e.by_component_pj;
  c.total.add(c.once, g.repeat);

  const double f_hz = hw.clock_ghz * 1e9;
  const double peak = peak_ops_per_s(MacArray{std::uint64_t(hw.array.rows), std::uint64_t(hw.array.cols), hw.clock_ghz});
  c.roofline = roofline(fmt::format("{} {}", g.layer.name, to_string(g.phase)), 2.0 * double(s.macs),
                        double(s.dram.total()), peak, hw.dram_gb_per_s());
  const RooflinePoint& r = c.roofline;
  c.achieved_ops_per_s = s.cycles > 0 ? r.ops / (double(s.cycles) / f_hz) : 0;
  return c;
}

CostLine cost_element(const CostModel& model, const Hardware& hw, const ElementWork& w) {
  Counts counts;
  counts.ops.push_back({w.kind, w.a, w.b, w.acc, w.random_bits, std::uint64_t(std::llround(w.ops)), {}, std::nullopt});
  if (w.sram_accesses > 0)
    counts.memory.push_back({MemLevel::Sram, double(hw.array.buffer_a_bytes), w.access_bits,
                             std::uint64_t(std::llround(w.sram_accesses)), {}, false});
  const EnergyReport e = estimate_energy(model, counts);
  CostLine once;
  once.sram_accesses = w.sram_accesses;
  // Element-wise units work beside the array; their cycles are hidden behind its.
  // "requantizer: Q31 multiplier", "update: sram read": the unit, then its part (without the op's name).
  const std::string op = std::string(to_string(w.kind)) + " ";
  for (const auto& [k, v] : e.by_component_pj) once.energy_pj[w.what + ": " + (k.starts_with(op) ? k.substr(op.size()) : k)] = v;
  CostLine total;
  total.add(once, w.repeat);
  return total;
}

template <class Key>
CostLine& line_of(std::vector<std::pair<Key, CostLine>>& v, const Key& k) {
  for (auto& [key, line] : v)
    if (key == k) return line;
  return v.emplace_back(k, CostLine{}).second;
}

nlohmann::json line_json(const CostLine& l) {
  nlohmann::json e = l.energy_pj;
  e["total"] = l.energy_total_pj();
  return {{"macs", l.macs}, {"cycles", l.cycles}, {"dram_bytes", l.dram_bytes}, {"sram_accesses", l.sram_accesses},
          {"energy_pj", e}};
}

}  // namespace

std::string_view to_string(MappingGoal g) {
  switch (g) {
    case MappingGoal::Energy: return "energy";
    case MappingGoal::Cycles: return "cycles";
    case MappingGoal::DramBytes: return "dram";
    case MappingGoal::EnergyDelay: return "edp";
    case MappingGoal::Fixed: return "fixed";
  }
  return "?";
}

MappingGoal parse_mapping_goal(std::string_view name) {
  for (const MappingGoal g : {MappingGoal::Energy, MappingGoal::Cycles, MappingGoal::DramBytes, MappingGoal::EnergyDelay,
                              MappingGoal::Fixed})
    if (to_string(g) == name) return g;
  throw std::invalid_argument(fmt::format("bad mapping {}: expected energy, cycles, dram, edp or fixed", arith::quoted(name)));
}

std::string_view to_string(Phase p) {
  switch (p) {
    case Phase::Forward: return "forward";
    case Phase::BackwardData: return "backward-data";
    case Phase::BackwardWeight: return "backward-weight";
    case Phase::Update: return "update";
    case Phase::Inference: return "inference";
  }
  return "?";
}

double CostLine::energy_total_pj() const {
  double t = 0;
  for (const auto& [k, v] : energy_pj) t += v;
  return t;
}

void CostLine::add(const CostLine& o, double scale) {
  macs += o.macs * scale, cycles += o.cycles * scale, dram_bytes += o.dram_bytes * scale;
  sram_accesses += o.sram_accesses * scale;
  for (const auto& [k, v] : o.energy_pj) energy_pj[k] += v * scale;
}

void check_hardware(const Hardware& hw) {
  auto attempt = [](const char* key, auto&& fn) {
    try {
      return fn();
    } catch (const std::exception& e) {
      throw CostSetupError(key, e.what());
    }
  };
  CostTable table = attempt("table", [&] { return cost_table(hw); });
  const CostModel model =
      attempt("node_nm", [&] { return CostModel(std::move(table), NodeScaling::load_default(), cost_target(hw)); });
  attempt("buffer_kib", [&] { return model.sram_read_energy_pj(double(hw.array.buffer_a_bytes), 8); });
}

RunCost evaluate(const Hardware& hw, const Workload& w, int threads) {
  const CostModel model = cost_model(hw);
  RunCost r;
  r.technology = model.describe();
  r.clock_ghz = hw.clock_ghz;
  r.peak_ops_per_s = peak_ops_per_s(MacArray{std::uint64_t(hw.array.rows), std::uint64_t(hw.array.cols), hw.clock_ghz});
  r.dram_gb_per_s = hw.dram_gb_per_s();
  r.array = fmt::format("{}x{} {}{}", hw.array.rows, hw.array.cols, sim::to_string(hw.array.dataflow),
                        hw.array.overlap ? " overlapped" : "");
  r.mapping = std::string(to_string(hw.mapping));
  for (const Phase p : {Phase::Forward, Phase::BackwardData, Phase::BackwardWeight, Phase::Update, Phase::Inference})
    r.by_phase.emplace_back(p, CostLine{});
  // The mapper's searches are independent: they run on every core, each GEMM's result in its own
  // slot, and are added up in workload order, so the result does not depend on the thread count.
  std::vector<GemmCost> costs(w.gemms.size());
  {
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < costs.size();) {
        try {
          costs[i] = cost_gemm(model, hw, w.gemms[i]);
        } catch (...) {
          const std::lock_guard lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      }
    };
    const std::size_t cores = threads > 0 ? std::size_t(threads) : std::max(1u, std::thread::hardware_concurrency());
    const std::size_t n = std::min(cores, costs.size());
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  }
  for (std::size_t i = 0; i < w.gemms.size(); ++i) {
    const GemmWork& g = w.gemms[i];
    GemmCost c = std::move(costs[i]);
    line_of(r.by_layer, g.layer).add(c.total);
    line_of(r.by_phase, g.phase).add(c.total);
    r.total.add(c.total);
    r.gemms.push_back(std::move(c));
  }
  for (const ElementWork& e : w.elements) {
    const CostLine c = cost_element(model, hw, e);
    if (e.layer.index >= 0) line_of(r.by_layer, e.layer).add(c);
    line_of(r.by_phase, e.phase).add(c);
    r.total.add(c);
  }
  std::stable_sort(r.by_layer.begin(), r.by_layer.end(), [](const auto& a, const auto& b) { return a.first.index < b.first.index; });
  std::erase_if(r.by_phase, [](const auto& p) { return p.second.macs == 0 && p.second.energy_pj.empty(); });
  r.seconds_at_clock = r.total.cycles / (hw.clock_ghz * 1e9);
  if (!w.gemms.empty()) {
    const GemmWork& g = w.gemms.front();
    if (const auto a = model.mac(g.a, g.w, g.acc).area_um2())
      r.area = ArrayArea{*a, *a * double(hw.array.rows) * double(hw.array.cols),
                         fmt::format("{} x {} -> {}", g.a.spec(), g.w.spec(), g.acc.spec())};
  }
  return r;
}

nlohmann::json to_json(const RunCost& c) {
  nlohmann::json phases = nlohmann::json::object(), layers = nlohmann::json::array(), gemms = nlohmann::json::array();
  for (const auto& [p, l] : c.by_phase) phases[std::string(to_string(p))] = line_json(l);
  for (const auto& [id, l] : c.by_layer) {
    nlohmann::json j = line_json(l);
    j["layer"] = id.name, j["index"] = id.index;
    layers.push_back(j);
  }
  for (const GemmCost& g : c.gemms) {
    const GemmWork& w = g.work;
    const RooflinePoint& r = g.roofline;
    nlohmann::json conv = nullptr;
    if (w.conv)
      conv = {{"batch", w.conv->batch}, {"ifmap", fmt::format("{}x{}x{}", w.conv->height, w.conv->width, w.conv->in_channels)},
              {"filter", fmt::format("{}x{}x{}", w.conv->kernel_h, w.conv->kernel_w, w.conv->out_channels)},
              {"stride", w.conv->stride}, {"padding", w.conv->padding}};
    gemms.push_back({{"layer", w.layer.name}, {"index", w.layer.index}, {"phase", to_string(w.phase)},
                     {"m", w.shape.m}, {"k", w.shape.k}, {"n", w.shape.n}, {"a_format", w.a.spec()},
                     {"w_format", w.w.spec()}, {"acc_format", w.acc.spec()}, {"xnor", w.xnor}, {"path", w.path},
                     {"repeat", w.repeat}, {"once", line_json(g.once)}, {"total", line_json(g.total)},
                     {"mapping", g.mapping.to_string()}, {"conv", conv},
                     {"fixed_mapping", {{"cycles", g.fixed_cycles}, {"energy_pj", g.fixed_energy_pj}}},
                     {"utilization", g.stats.utilization()},
                     {"roofline", {{"ops", r.ops}, {"dram_bytes", r.bytes}, {"arithmetic_intensity", r.intensity_ops_per_byte},
                                   {"attainable_ops_per_s", r.attainable_ops_per_s},
                                   {"achieved_ops_per_s", g.achieved_ops_per_s}, {"bound", std::string(to_string(r.bound))}}}});
  }
  nlohmann::json area = nullptr;
  if (c.area) area = {{"mac_um2", c.area->mac_um2}, {"array_um2", c.area->array_um2}, {"mac_formats", c.area->mac_formats}};
  return {{"technology", c.technology}, {"array", c.array}, {"mapping", c.mapping}, {"clock_ghz", c.clock_ghz},
          {"peak_ops_per_s", c.peak_ops_per_s}, {"dram_gb_per_s", c.dram_gb_per_s}, {"total", line_json(c.total)},
          {"seconds_at_clock", c.seconds_at_clock}, {"by_phase", phases}, {"by_layer", layers}, {"gemms", gemms},
          {"area", area}};
}

void write_cost_plots(const std::filesystem::path& out, const std::string& title, const RunCost& cost, Phase phase,
                      nlohmann::json& plots) {
  auto attempt = [&](const char* name, const std::function<void(const std::filesystem::path&)>& draw) {
    try {
      draw(out / name);
      plots[name] = "ok";
    } catch (const std::exception& e) {
      plots[name] = e.what();
    }
  };
  attempt("energy.png", [&](const std::filesystem::path& p) {
    std::vector<EnergyBar> bars;
    for (const auto& [id, line] : cost.by_layer) {
      if (id.index < 0) continue;  // the optimizer, not a layer
      EnergyBar bar{id.name, {}};
      for (const auto& [component, pj] : line.energy_pj) bar.components_pj.emplace_back(component, pj);
      bars.push_back(bar);
    }
    plot_energy_breakdown(p, bars, title + ": energy per layer");
  });
  if (cost.dram_gb_per_s > 0) {
    attempt("roofline.png", [&](const std::filesystem::path& p) {
      std::vector<RooflinePoint> points;
      for (const GemmCost& g : cost.gemms) {
        if (g.work.phase != phase) continue;
        // One point per layer: its full-batch GEMM, which comes before a last partial batch.
        if (std::any_of(points.begin(), points.end(), [&](const auto& q) { return q.name == g.work.layer.name; })) continue;
        points.push_back(g.roofline);
        points.back().name = g.work.layer.name;
        points.back().achieved_ops_per_s = g.achieved_ops_per_s;
      }
      plot_roofline(p, cost.peak_ops_per_s, cost.dram_gb_per_s, points, fmt::format("{}: {} GEMMs on {}", title, to_string(phase), cost.array));
    });
  } else {
    plots["roofline.png"] = "not drawn: unlimited DRAM bandwidth (hardware.dram_bytes_per_cycle = 0)";
  }
}

}  // namespace bitsim::costmodel
