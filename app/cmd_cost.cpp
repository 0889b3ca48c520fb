// `bitsim cost energy|area|roofline|fpga|laws`: what an operation, a MAC array or a network layer
// costs in silicon, from the costmodel library and its data tables.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/costmodel/fpga.hpp"
#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/pipeline.hpp"
#include "bitsim/costmodel/plot.hpp"
#include "bitsim/costmodel/report.hpp"
#include "bitsim/costmodel/roofline.hpp"
#include "bitsim/costmodel/table.hpp"
#include "bitsim/costmodel/technology.hpp"
#include "bitsim/nn/cost.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/files.hpp"
#include "bitsim/nn/onnx.hpp"
#include "bitsim/nn/topology.hpp"
#include "bitsim/nn/trainer.hpp"
#include "cli_util.hpp"
#include "commands.hpp"
#include "bitsim/sim/array_model.hpp"

namespace bitsim::app {
namespace {

using arith::Format;
using namespace bitsim::costmodel;

// Options that choose the table and where to evaluate it.
struct ModelArgs {
  std::string table, node, vdd, device = "hp", dram_end = "low";
};

void add_model_options(CLI::App* c, ModelArgs& m) {
  c->add_option("--table", m.table, "Energy/area reference table (JSON); default: Horowitz ISSCC 2014, 45 nm, 0.9 V");
  c->add_option("--node", m.node, "Process node in nm to scale to (Stillmaker & Baas 2017: 180..7 nm)");
  c->add_option("--vdd", m.vdd, "Supply voltage at --node in V (default: the node's nominal supply)");
  c->add_option("--device", m.device, "Device flavour for node scaling: hp or lp")->capture_default_str();
  c->add_option("--dram-end", m.dram_end, "End of the published DRAM range: low or high")->capture_default_str();
}

CostModel make_model(const ModelArgs& m) {
  CostTarget t;
  if (!m.node.empty()) t.node_nm = parse_number(m.node, "--node", "nm");
  if (!m.vdd.empty()) t.vdd_v = parse_number(m.vdd, "--vdd", "V");
  t.device = parse_device(m.device);
  if (m.dram_end == "low") t.dram_end = DramEnd::Low;
  else if (m.dram_end == "high") t.dram_end = DramEnd::High;
  else throw std::invalid_argument(fmt::format("bad --dram-end {}: expected low or high", arith::quoted(m.dram_end)));
  CostTable table = m.table.empty() ? CostTable::load_default() : CostTable::load(m.table);
  return CostModel(std::move(table), NodeScaling::load_default(), t);
}

nlohmann::json model_json(const CostModel& m) {
  return {{"table", m.table().name},
          {"node_nm", m.target_point().node_nm},
          {"vdd_v", m.target_point().vdd_v},
          {"device", std::string(to_string(m.target_point().device))},
          {"node_interpolated", m.target_interpolated()},
          {"energy_scale", m.energy_scale()},
          {"area_scale", m.area_scale()},
          {"model", m.describe()}};
}

// ---------------------------------------------------------------- cost energy / cost area

struct UnitArgs {
  std::string op, format, format2, acc_format, sr_bits = "16", sram_kb, access_bits, activity;
  ModelArgs model;
  bool json = false;
};

constexpr std::string_view kOps = "mul add mac xnor sr requant sram dram rf";

Format need_format(const std::string& spec, std::string_view op) {
  if (spec.empty()) throw std::invalid_argument(fmt::format("--op {} needs --format", op));
  return Format::parse(spec);
}

int access_bits_of(const UnitArgs& a) {
  if (!a.access_bits.empty()) return int(parse_count(a.access_bits, "--access-bits"));
  if (!a.format.empty()) return Format::parse(a.format).width();
  return 64;
}

void run_unit(const UnitArgs& a, bool area) {
  const CostModel m = make_model(a.model);
  std::string what;
  UnitCost u;
  const std::string& op = a.op;
  if (op == "sram" || op == "dram" || op == "rf") {
    if (area)
      throw std::invalid_argument(fmt::format("--op {}: no area model for memories (Horowitz publishes none); "
                                              "cost area covers arithmetic units", op));
    const int bits = access_bits_of(a);
    double pj = 0;
    if (op == "sram") {
      if (a.sram_kb.empty()) throw std::invalid_argument("--op sram needs --sram-kb (capacity in KiB)");
      const double bytes = parse_number(a.sram_kb, "--sram-kb", "KiB") * 1024;
      pj = m.sram_read_energy_pj(bytes, bits);
      what = fmt::format("sram read of {} bits from {} KiB", bits, bytes / 1024);
    } else if (op == "dram") {
      pj = m.dram_energy_pj(bits);
      what = fmt::format("dram access of {} bits ({} end of the published range)", bits, a.model.dram_end);
    } else {
      pj = m.register_file_energy_pj(bits);
      what = fmt::format("register file access of {} bits", bits);
    }
    u.components.push_back({"access", pj, std::nullopt});
  } else if (op == "mul" || op == "add" || op == "mac") {
    const Format f = need_format(a.format, op);
    const Format g = a.format2.empty() ? f : Format::parse(a.format2);
    if (op == "mul") {
      u = m.multiply(f, g);
      what = fmt::format("mul {} x {}", f.spec(), g.spec());
    } else if (op == "add") {
      u = m.add(f, g);
      what = fmt::format("add {} + {}", f.spec(), g.spec());
    } else {
      const Format acc = a.acc_format.empty() ? default_accumulator(f, g) : Format::parse(a.acc_format);
      u = m.mac(f, g, acc);
      what = fmt::format("mac {} x {} -> {}", f.spec(), g.spec(), acc.spec());
    }
  } else if (op == "xnor") {
    u = m.xnor_popcount();
    what = "xnor-popcount (one binary MAC)";
  } else if (op == "sr") {
    const Format f = need_format(a.format, op);
    const int k = int(parse_count(a.sr_bits, "--sr-bits"));
    u = m.stochastic_round(f, k);
    what = fmt::format("stochastic rounding into {} with {} random bits", f.spec(), k);
  } else if (op == "requant") {
    const Format out = need_format(a.format, op);
    const Format acc = a.acc_format.empty() ? Format::fixed(32, 0) : Format::parse(a.acc_format);
    u = m.requantize(acc, out);
    what = fmt::format("requantize {} -> {}", acc.spec(), out.spec());
  } else {
    throw std::invalid_argument(fmt::format("bad --op {}: expected one of {}", arith::quoted(op), kOps));
  }

  if (!a.activity.empty()) {
    if (area) throw std::invalid_argument("--activity applies to cost energy, not cost area");
    // Switching activity relative to random operands (1 = the table's conditions).
    const double act = parse_number(a.activity, "--activity", "1 = random data", true);
    for (auto& c : u.components) c.energy_pj *= act;
    what += fmt::format(" at activity {}", act);
  }
  if (area && !u.area_um2()) {
    std::string missing;
    for (const auto& c : u.components)
      if (!c.area_um2) missing += (missing.empty() ? "" : ", ") + c.name;
    throw std::invalid_argument(fmt::format("{}: table {} gives no area for {}", what, m.table().origin, missing));
  }
  if (a.json) {
    nlohmann::json j = model_json(m);
    j["op"] = op;
    j["what"] = what;
    nlohmann::json comps = nlohmann::json::array();
    for (const auto& c : u.components) {
      nlohmann::json cj{{"name", c.name}};
      if (area) cj["area_um2"] = *c.area_um2;
      else cj["energy_pj"] = c.energy_pj;
      comps.push_back(cj);
    }
    j["components"] = comps;
    if (area) j["area_um2"] = *u.area_um2();
    else j["energy_pj"] = u.energy_pj();
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}\n  {}\n", what, m.describe());
  for (const auto& c : u.components) {
    if (area) fmt::print("  {:<36} {:>14.6g} um^2\n", c.name, *c.area_um2);
    else fmt::print("  {:<36} {:>14.6g} pJ\n", c.name, c.energy_pj);
  }
  if (area) fmt::print("  {:<36} {:>14.6g} um^2\n", "total", *u.area_um2());
  else fmt::print("  {:<36} {:>14.6g} pJ\n", "total", u.energy_pj());
}

void add_unit_command(CLI::App* cost, const char* name, bool area) {
  auto a = std::make_shared<UnitArgs>();
  auto* c = cost->add_subcommand(name, area ? "Area of one arithmetic unit at any format" :
                                              "Energy of one operation or memory access at any format");
  c->add_option("--op", a->op, fmt::format("Operation: {}", kOps))->required();
  c->add_option("--format,-f", a->format, "Operand format (requant: output format; memories: access width)");
  c->add_option("--format2", a->format2, "Second operand format (default: --format)");
  c->add_option("--acc-format", a->acc_format, "Accumulator format (mac; requant input, default int<32>)");
  c->add_option("--sr-bits", a->sr_bits, "Random bits for --op sr")->capture_default_str();
  c->add_option("--sram-kb", a->sram_kb, "SRAM capacity in KiB for --op sram");
  c->add_option("--access-bits", a->access_bits, "Bits per memory access (default: --format's width, else 64)");
  if (!area)
    c->add_option("--activity", a->activity, "Switching activity relative to random data (toggles / (0.5 x ops x input bits))");
  add_model_options(c, a->model);
  c->add_flag("--json", a->json, "One JSON object");
  c->callback([a, area] { run_unit(*a, area); });
}

// ---------------------------------------------------------------- cost roofline

struct RooflineArgs {
  std::string array, clock, bandwidth, area_mm2, fpga_luts, act_format = "int<8>", weight_format, out_format, acc_format;
  std::string dataflow = "ws", buffer_kib = "256", mapping = "energy";
  std::vector<std::string> gemms;
  std::string plot, energy_plot;
  ModelArgs model;
  bool overlap = false, json = false;
};

GemmLayer parse_gemm(const std::string& s, std::size_t index) {
  GemmLayer g;
  std::string shape = s;
  if (const auto eq = s.find('='); eq != std::string::npos) {
    g.name = s.substr(0, eq);
    shape = s.substr(eq + 1);
  }
  if (g.name.empty()) g.name = fmt::format("gemm{}", index + 1);
  const auto bad = [&] {
    return std::invalid_argument(fmt::format("bad --gemm {}: expected [NAME=]MxKxN with positive integers", arith::quoted(s)));
  };
  const auto x1 = shape.find('x');
  const auto x2 = x1 == std::string::npos ? x1 : shape.find('x', x1 + 1);
  if (x2 == std::string::npos) throw bad();
  try {
    g.m = parse_count(shape.substr(0, x1), "M");
    g.k = parse_count(shape.substr(x1 + 1, x2 - x1 - 1), "K");
    g.n = parse_count(shape.substr(x2 + 1), "N");
  } catch (const std::invalid_argument&) {
    throw bad();
  }
  // Counts are exact 64-bit integers: a layer of more than 2^63 MACs is refused, not wrapped.
  std::uint64_t mk = 0, macs = 0;
  if (__builtin_mul_overflow(g.m, g.k, &mk) || __builtin_mul_overflow(mk, g.n, &macs) || macs > (std::uint64_t(1) << 63))
    throw std::invalid_argument(fmt::format("bad --gemm {}: {:.3g} MACs; a layer is limited to 2^63 (about 9.2e18) MACs",
                                            arith::quoted(s), double(g.m) * double(g.k) * double(g.n)));
  return g;
}

// An R x C array: the GEMMs through the cost pipeline, so DRAM bytes, cycles and energy are the
// tiled array's (buffers, dataflow, outputs written at the accumulator's width), as in a run's report.
void run_array_roofline(const RooflineArgs& a, const CostModel& model, const Format& act, const Format& weight,
                        const Format& acc, double clock_ghz, double bw_gb_per_s) {
  costmodel::Hardware hw;
  const sim::ArrayDims dims = sim::parse_array_dims(a.array, "--array");
  hw.array.rows = dims.rows, hw.array.cols = dims.cols;
  hw.array.dataflow = sim::parse_dataflow(a.dataflow);
  hw.array.overlap = a.overlap;
  const std::int64_t buffer_bytes = parse_buffer_kib(a.buffer_kib, false);
  hw.array.buffer_a_bytes = hw.array.buffer_w_bytes = hw.array.buffer_o_bytes = buffer_bytes;
  hw.array.dram_bytes_per_cycle = bw_gb_per_s / clock_ghz;
  hw.clock_ghz = clock_ghz;
  // The model make_model built from --node, --vdd, --device, --dram-end and --table, as the pipeline's target.
  hw.node_nm = model.target_point().node_nm;
  if (!a.model.vdd.empty()) hw.vdd_v = model.target_point().vdd_v;
  hw.device = parse_device(a.model.device);
  hw.dram_end = a.model.dram_end == "high" ? DramEnd::High : DramEnd::Low;
  hw.table = a.model.table;
  hw.mapping = costmodel::parse_mapping_goal(a.mapping);
  costmodel::check_hardware(hw);
  costmodel::Workload w;
  for (std::size_t i = 0; i < a.gemms.size(); ++i) {
    const GemmLayer g = parse_gemm(a.gemms[i], i);
    costmodel::GemmWork work;
    work.layer = {int(i), g.name};
    work.phase = costmodel::Phase::Inference;
    work.shape = {std::int64_t(g.m), std::int64_t(g.k), std::int64_t(g.n)};
    work.a = act, work.w = weight, work.acc = acc;
    work.xnor = act.width() == 1 && weight.width() == 1;
    w.gemms.push_back(work);
  }
  const costmodel::RunCost c = costmodel::evaluate(hw, w);
  std::vector<RooflinePoint> points;
  std::vector<EnergyBar> bars;
  for (const costmodel::GemmCost& g : c.gemms) {
    points.push_back(g.roofline);
    points.back().name = g.work.layer.name;
    points.back().achieved_ops_per_s = g.achieved_ops_per_s;
    EnergyBar bar{g.work.layer.name, {}};
    for (const auto& [comp, pj] : g.total.energy_pj) bar.components_pj.emplace_back(comp, pj);
    bars.push_back(bar);
  }
  const std::string title = fmt::format("{} x {} -> {}, {} at {} GHz, {} GB/s", act.spec(), weight.spec(), acc.spec(), c.array,
                                        clock_ghz, bw_gb_per_s);
  if (!a.plot.empty()) plot_roofline(a.plot, c.peak_ops_per_s, bw_gb_per_s, points, title);
  if (!a.energy_plot.empty()) plot_energy_breakdown(a.energy_plot, bars, "energy per layer: " + c.technology);
  if (a.json) {
    nlohmann::json j = costmodel::to_json(c);
    j["ridge_ops_per_byte"] = ridge_intensity_ops_per_byte(c.peak_ops_per_s, bw_gb_per_s);
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}x{} {}{} MAC array, {} KiB buffers: peak {:.6g} GOPS, bandwidth {} GB/s, ridge {:.6g} ops/byte\n", dims.rows,
             dims.cols, a.dataflow, a.overlap ? " overlapped" : "", double(buffer_bytes) / 1024, c.peak_ops_per_s / 1e9, bw_gb_per_s,
             ridge_intensity_ops_per_byte(c.peak_ops_per_s, bw_gb_per_s));
  fmt::print("operands {} x {} -> acc {} (outputs written at the accumulator's width); {}\n", act.spec(), weight.spec(),
             acc.spec(), c.technology);
  fmt::print("{:<12} {:>18} {:>14} {:>14} {:>10} {:>16} {:>15} {:>8} {:>14}  mapping ({})\n", "layer", "MxKxN", "ops",
             "DRAM bytes", "ops/byte", "attainable GOPS", "achieved GOPS", "bound", "energy uJ", a.mapping);
  for (const costmodel::GemmCost& g : c.gemms) {
    const RooflinePoint& p = g.roofline;
    fmt::print("{:<12} {:>18} {:>14.6g} {:>14.6g} {:>10.4g} {:>16.6g} {:>15.6g} {:>8} {:>14.6g}  {}\n", g.work.layer.name,
               fmt::format("{}x{}x{}", g.work.shape.m, g.work.shape.k, g.work.shape.n), p.ops, p.bytes,
               p.intensity_ops_per_byte, p.attainable_ops_per_s / 1e9, g.achieved_ops_per_s / 1e9, to_string(p.bound),
               g.total.energy_total_pj() / 1e6, g.mapping.to_string());
  }
}

void run_roofline(const RooflineArgs& a) {
  const CostModel m = make_model(a.model);
  if (a.clock.empty()) throw std::invalid_argument("cost roofline needs --clock (GHz)");
  if (a.bandwidth.empty()) throw std::invalid_argument("cost roofline needs --bandwidth (GB/s)");
  if (a.gemms.empty()) throw std::invalid_argument("cost roofline needs at least one --gemm [NAME=]MxKxN");
  if (int(!a.array.empty()) + int(!a.area_mm2.empty()) + int(!a.fpga_luts.empty()) != 1)
    throw std::invalid_argument("cost roofline needs exactly one of --array RxC, --area-mm2 MM2 or --fpga-luts N");
  const double clock_ghz = parse_number(a.clock, "--clock", "GHz");
  const double bw_gb_per_s = parse_number(a.bandwidth, "--bandwidth", "GB/s");
  const Format act = Format::parse(a.act_format);
  const Format weight = a.weight_format.empty() ? act : Format::parse(a.weight_format);
  const Format out = a.out_format.empty() ? act : Format::parse(a.out_format);
  const Format acc = a.acc_format.empty() ? default_accumulator(act, weight) : Format::parse(a.acc_format);
  if (!a.array.empty()) return run_array_roofline(a, m, act, weight, acc, clock_ghz, bw_gb_per_s);

  // An area or LUT budget has no array geometry: each operand crosses DRAM once (gemm_bytes).
  // 1-bit x 1-bit layers are binary (+-1) networks: XNOR-popcount, not a two's complement MAC.
  const bool binary = act.width() == 1 && weight.width() == 1;
  const UnitCost mac_unit = binary ? m.xnor_popcount() : m.mac(act, weight, acc);
  std::uint64_t macs = 0;
  std::string array_desc;
  if (!a.fpga_luts.empty()) {
    if (act.is_float() || weight.is_float())
      throw std::invalid_argument("--fpga-luts: the FPGA view (FINN) covers integer MACs, not floats");
    const FpgaData fpga = FpgaData::load_default();
    const std::uint64_t luts = parse_count(a.fpga_luts, "--fpga-luts");
    const FpgaBudget b = fpga_budget(fpga.model, luts, 0, weight.width(), act.width(), 64, acc.width(), clock_ghz);
    macs = b.macs_per_cycle;
    array_desc = fmt::format("{} MACs in {} LUTs ({:.4g} LUTs per MAC, FINN-R model, SIMD 64)", macs, luts, b.luts_per_mac);
  } else {
    const double mm2 = parse_number(a.area_mm2, "--area-mm2", "mm^2");
    if (!mac_unit.area_um2()) throw std::invalid_argument(fmt::format("--area-mm2: table {} gives no area for this MAC", m.table().origin));
    macs = binary ? std::uint64_t(std::floor(mm2 * 1e6 / *mac_unit.area_um2())) : macs_in_area(m, act, weight, acc, mm2);
    if (macs == 0) throw std::invalid_argument(fmt::format("--area-mm2 {}: not even one MAC fits", a.area_mm2));
    array_desc = fmt::format("{} MACs in {} mm^2 ({:.6g} um^2 per {})", macs, mm2, *mac_unit.area_um2(),
                             binary ? "xnor-popcount" : fmt::format("{} x {} -> {} MAC", act.spec(), weight.spec(), acc.spec()));
  }
  const double peak = peak_ops_per_s(macs, clock_ghz);
  const double mac_pj = mac_unit.energy_pj();

  std::vector<RooflinePoint> points;
  std::vector<EnergyBar> bars;
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < a.gemms.size(); ++i) {
    GemmLayer g = parse_gemm(a.gemms[i], i);
    g.act = act, g.weight = weight, g.out = out;
    const RooflinePoint p = roofline(g, peak, bw_gb_per_s);
    points.push_back(p);
    // Energy: one MAC per (m, k, n) and every operand over the DRAM interface once, in 64-bit accesses.
    Counts counts;
    const OpKind kind = binary ? OpKind::XnorPopcount : OpKind::Mac;
    counts.ops.push_back({kind, act, weight, acc, 16, g.m * g.k * g.n, {{"layer", g.name}}, std::nullopt});
    counts.memory.push_back({MemLevel::Dram, 0, 64, std::uint64_t(std::ceil(p.bytes * 8 / 64)), {{"layer", g.name}}});
    const EnergyReport e = estimate_energy(m, counts);
    EnergyBar bar{g.name, {}};
    for (const auto& [comp, pj] : e.by_component_pj) bar.components_pj.emplace_back(comp, pj);
    bars.push_back(bar);
    layers.push_back({{"name", g.name}, {"m", g.m}, {"k", g.k}, {"n", g.n}, {"ops", p.ops}, {"bytes", p.bytes},
                      {"intensity_ops_per_byte", p.intensity_ops_per_byte},
                      {"memory_roof_ops_per_s", p.memory_roof_ops_per_s},
                      {"attainable_ops_per_s", p.attainable_ops_per_s}, {"bound", std::string(to_string(p.bound))},
                      {"energy_pj", e.total_energy_pj}, {"energy_by_component_pj", e.by_component_pj}});
  }
  const double ridge = ridge_intensity_ops_per_byte(peak, bw_gb_per_s);
  const std::string title = fmt::format("{} x {} -> {}, {} at {} GHz, {} GB/s", act.spec(), weight.spec(), acc.spec(),
                                        array_desc.substr(0, array_desc.find(" (")), clock_ghz, bw_gb_per_s);
  if (!a.plot.empty()) plot_roofline(a.plot, peak, bw_gb_per_s, points, title);
  if (!a.energy_plot.empty()) plot_energy_breakdown(a.energy_plot, bars, "energy per layer: " + m.describe());

  if (a.json) {
    nlohmann::json j = model_json(m);
    j["macs"] = macs;
    j["clock_ghz"] = clock_ghz;
    j["peak_ops_per_s"] = peak;
    j["bandwidth_gb_per_s"] = bw_gb_per_s;
    j["ridge_ops_per_byte"] = ridge;
    j["mac_energy_pj"] = mac_pj;
    j["formats"] = {{"act", act.spec()}, {"weight", weight.spec()}, {"out", out.spec()}, {"acc", acc.spec()}};
    j["layers"] = layers;
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}: peak {:.6g} GOPS ({} MACs x 2 x {} GHz), bandwidth {} GB/s, ridge {:.6g} ops/byte\n", array_desc,
             peak / 1e9, macs, clock_ghz, bw_gb_per_s, ridge);
  fmt::print("operands {} x {} -> acc {}, outputs {}; {}\n", act.spec(), weight.spec(), acc.spec(), out.spec(), m.describe());
  fmt::print("{:<12} {:>18} {:>14} {:>14} {:>10} {:>16} {:>8} {:>14}\n", "layer", "MxKxN", "ops", "bytes", "ops/byte",
             "attainable GOPS", "bound", "energy uJ");
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& l = layers[i];
    fmt::print("{:<12} {:>18} {:>14.6g} {:>14.6g} {:>10.4g} {:>16.6g} {:>8} {:>14.6g}\n", points[i].name,
               fmt::format("{}x{}x{}", l["m"].get<std::uint64_t>(), l["k"].get<std::uint64_t>(), l["n"].get<std::uint64_t>()),
               points[i].ops, points[i].bytes, points[i].intensity_ops_per_byte, points[i].attainable_ops_per_s / 1e9,
               to_string(points[i].bound), l["energy_pj"].get<double>() / 1e6);
  }
}

void add_roofline_command(CLI::App* cost) {
  auto a = std::make_shared<RooflineArgs>();
  auto* c = cost->add_subcommand("roofline", "Peak, arithmetic intensity and attainable performance per GEMM layer");
  c->add_option("--array", a->array, "MAC array ROWSxCOLS (costed as the tiled array: buffers, dataflow)");
  c->add_option("--dataflow", a->dataflow, "With --array: ws, os or is")->capture_default_str();
  c->add_flag("--overlap", a->overlap, "With --array: overlap each tile's drain with the next one's fill (docs/sim.md)");
  c->add_option("--buffer-kib", a->buffer_kib, "With --array: each on-chip buffer (A, W, output) in KiB")->capture_default_str();
  c->add_option("--mapping", a->mapping, "With --array: what the mapper minimises: energy, cycles, dram, edp, or fixed")
      ->capture_default_str();
  c->add_option("--area-mm2", a->area_mm2, "Instead of --array: as many MACs as fit in this area (mm^2)");
  c->add_option("--fpga-luts", a->fpga_luts, "Instead of --array: as many MACs as FINN-R's LUT model fits in N LUTs");
  c->add_option("--clock", a->clock, "Clock in GHz");
  c->add_option("--bandwidth", a->bandwidth, "Off-chip bandwidth in GB/s (10^9 bytes/s)");
  c->add_option("--gemm", a->gemms, "Layer [NAME=]MxKxN (C[MxN] = A[MxK] W[KxN]); repeat for more layers");
  c->add_option("--act-format", a->act_format, "Activation format")->capture_default_str();
  c->add_option("--weight-format", a->weight_format, "Weight format (default: --act-format)");
  c->add_option("--out-format", a->out_format, "Output format (default: --act-format)");
  c->add_option("--acc-format", a->acc_format, "Accumulator format (default: int<32>, or fp32 for floats)");
  c->add_option("--plot", a->plot, "Write the roofline plot (.png or .svg, via gnuplot)");
  c->add_option("--energy-plot", a->energy_plot, "Write the per-layer energy breakdown bars (.png or .svg)");
  add_model_options(c, a->model);
  c->add_flag("--json", a->json, "One JSON object");
  c->callback([a] { run_roofline(*a); });
}

// ---------------------------------------------------------------- cost network

struct NetworkArgs {
  std::string topology, onnx, experiment, array, dataflow, buffer_kib, bandwidth, clock, mapping;
  std::string a_format, w_format, acc_format, out;
  std::int64_t batch = 1;
  int threads = 0;
  ModelArgs model;
  bool overlap = false, json = false;
};

// The experiment a topology is costed under: --experiment's hardware and numerics (or bitsim's
// defaults with int<8> operands into an int<32> accumulator), then each option given on top.
nn::Experiment network_experiment(const NetworkArgs& a) {
  nn::Experiment x;
  if (!a.experiment.empty()) {
    x = nn::Experiment::load(a.experiment);
  } else {
    x.name = "topology";
    x.numerics.weights.format = x.numerics.activations.format = "int<8>";
    x.numerics.accumulator.format = "int<32>";
  }
  auto check = [](const std::string& spec, const char* option, auto&& parse) {
    try {
      parse(spec);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("bad {} {}: {}", option, arith::quoted(spec), e.what()));
    }
  };
  if (!a.a_format.empty()) {
    check(a.a_format, "--a-format", [](const std::string& f) { nn::Numerics::parse(f); });
    x.numerics.activations = nn::ClassSpec{a.a_format, "nearest-even", "", 16};
  }
  if (!a.w_format.empty()) {
    check(a.w_format, "--w-format", [](const std::string& f) { nn::Numerics::parse(f); });
    x.numerics.weights = nn::ClassSpec{a.w_format, "nearest-even", "", 16};
  }
  if (!a.acc_format.empty()) {
    check(a.acc_format, "--acc-format", [](const std::string& f) { nn::Accumulation::parse(f); });
    x.numerics.accumulator = nn::ClassSpec{a.acc_format, "nearest-even", "", 16};
  }
  costmodel::Hardware& hw = x.hardware;
  const double bytes_per_cycle = hw.array.dram_bytes_per_cycle;
  if (!a.array.empty()) {
    const sim::ArrayDims dims = sim::parse_array_dims(a.array, "--array");
    hw.array.rows = dims.rows, hw.array.cols = dims.cols;
  }
  if (!a.dataflow.empty()) hw.array.dataflow = sim::parse_dataflow(a.dataflow);
  if (a.overlap) hw.array.overlap = true;
  if (!a.buffer_kib.empty())
    hw.array.buffer_a_bytes = hw.array.buffer_w_bytes = hw.array.buffer_o_bytes = parse_buffer_kib(a.buffer_kib, false);
  if (!a.clock.empty()) {
    hw.clock_ghz = parse_number(a.clock, "--clock", "GHz");
    if (hw.clock_ghz > 1000) throw std::invalid_argument(fmt::format("bad --clock {}: at most 1000 GHz", arith::quoted(a.clock)));
  }
  // --bandwidth is in GB/s at the final clock; without it the experiment's bytes per cycle stay.
  hw.array.dram_bytes_per_cycle = a.bandwidth.empty() ? bytes_per_cycle : parse_number(a.bandwidth, "--bandwidth", "GB/s") / hw.clock_ghz;
  if (hw.array.dram_bytes_per_cycle > 0 && hw.array.dram_bytes_per_cycle < sim::ArraySpec::kMinDramBytesPerCycle)
    throw std::invalid_argument(fmt::format("bad --bandwidth {}: below {} bytes per cycle", arith::quoted(a.bandwidth),
                                            sim::ArraySpec::kMinDramBytesPerCycle));
  if (!a.mapping.empty()) hw.mapping = costmodel::parse_mapping_goal(a.mapping);
  if (!a.model.node.empty()) hw.node_nm = parse_number(a.model.node, "--node", "nm");
  if (!a.model.vdd.empty()) hw.vdd_v = parse_number(a.model.vdd, "--vdd", "V");
  if (!a.model.table.empty()) hw.table = a.model.table;
  hw.device = parse_device(a.model.device);
  if (a.model.dram_end == "low") hw.dram_end = DramEnd::Low;
  else if (a.model.dram_end == "high") hw.dram_end = DramEnd::High;
  else throw std::invalid_argument(fmt::format("bad --dram-end {}: expected low or high", arith::quoted(a.model.dram_end)));
  hw.array.validate();
  try {
    costmodel::check_hardware(hw);
  } catch (const costmodel::CostSetupError& e) {
    throw std::invalid_argument(fmt::format("hardware {}: {}", e.key, e.what()));
  }
  return x;
}

std::string_view layer_kind(const nn::TopologyLayer& l) {
  return !l.is_conv ? "gemm" : l.depthwise ? "depthwise" : l.repeat > 1 ? "grouped" : "conv";
}

// "224x224x3 * 7x7x64 /2": IFMAP H x W x C, filter H x W x filters (of one group), stride, and "p" the
// padding where there is one (conv); "MxKxN" (GEMM).
std::string layer_shape(const nn::TopologyLayer& l) {
  if (!l.is_conv) return fmt::format("{}x{}x{}", l.gemm.m, l.gemm.k, l.gemm.n);
  const sim::ConvShape& c = l.conv;
  return fmt::format("{}x{}x{}*{}x{}x{}/{}{}", l.ifmap_h, l.ifmap_w, c.in_channels * l.repeat, c.kernel_h, c.kernel_w,
                     c.out_channels, c.stride, c.padding > 0 ? fmt::format("p{}", c.padding) : "");
}

// One layer's report: its GEMM's counts and roofline with the layer's line (GEMM and the units
// beside the array) for energy.
nlohmann::json layer_json(const nn::TopologyLayer& l, const costmodel::GemmCost& g, const costmodel::CostLine& line) {
  const sim::ArrayStats& s = g.stats;
  const double r = g.work.repeat;
  nlohmann::json energy = line.energy_pj;
  energy["total"] = line.energy_total_pj();
  const costmodel::RooflinePoint& p = g.roofline;
  return {{"name", l.name},
          {"line", l.line},
          {"kind", layer_kind(l)},
          {"shape", layer_shape(l)},
          {"m", g.work.shape.m}, {"k", g.work.shape.k}, {"n", g.work.shape.n},
          {"repeat", r},
          {"macs", line.macs},
          {"cycles", line.cycles},
          {"utilization", s.utilization()},
          {"mapping", g.mapping.to_string()},
          {"traffic", {{"dram_bytes", {{"read_a", double(s.dram.read_a) * r}, {"read_w", double(s.dram.read_w) * r},
                                        {"read_psum", double(s.dram.read_psum) * r}, {"write_c", double(s.dram.write_c) * r},
                                        {"total", line.dram_bytes}}},
                       {"buffer_accesses", {{"a_reads", double(s.buf_a.reads) * r}, {"a_writes", double(s.buf_a.writes) * r},
                                            {"w_reads", double(s.buf_w.reads) * r}, {"w_writes", double(s.buf_w.writes) * r},
                                            {"o_reads", double(s.buf_o.reads) * r}, {"o_writes", double(s.buf_o.writes) * r},
                                            {"total", double(s.buf_a.reads + s.buf_a.writes + s.buf_w.reads + s.buf_w.writes +
                                                             s.buf_o.reads + s.buf_o.writes) * r}}},
                       {"array_macs", line.macs}}},
          {"energy_pj", energy},
          {"roofline", {{"ops", 2 * line.macs}, {"intensity_ops_per_byte", p.intensity_ops_per_byte},
                        {"attainable_ops_per_s", p.attainable_ops_per_s}, {"achieved_ops_per_s", g.achieved_ops_per_s},
                        {"peak_ops_per_s", p.peak_ops_per_s}, {"bound", std::string(to_string(p.bound))}}}};
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void run_network(const NetworkArgs& a) {
  // Everything is read and checked before any work, and the costing done before anything is written.
  if (a.topology.empty() == a.onnx.empty()) throw std::invalid_argument("cost network: give --topology FILE.csv or --onnx FILE.onnx");
  const nn::Topology topo = a.onnx.empty() ? nn::load_topology(a.topology) : nn::onnx_topology(nn::load_onnx(a.onnx));
  const std::string kind = !a.onnx.empty() ? "onnx" : topo.kind == nn::TopologyKind::Conv ? "conv" : "gemm";
  if (a.batch < 1 || a.batch > nn::kMaxTopologyBatch)
    throw std::invalid_argument(fmt::format("bad --batch {}: expected 1..{}", a.batch, nn::kMaxTopologyBatch));
  const nn::Experiment x = network_experiment(a);
  const costmodel::Workload w = nn::topology_workload(x, topo, a.batch);
  if (!a.out.empty() && std::filesystem::exists(a.out) && !std::filesystem::is_directory(a.out))
    throw std::invalid_argument(fmt::format("bad --out {}: exists and is not a directory", arith::quoted(a.out)));
  const costmodel::RunCost c = costmodel::evaluate(x.hardware, w, a.threads);

  std::map<int, const costmodel::GemmCost*> gemm_of;
  for (const costmodel::GemmCost& g : c.gemms) gemm_of[g.work.layer.index] = &g;
  std::map<int, const costmodel::CostLine*> line_of;
  for (const auto& [id, line] : c.by_layer) line_of[id.index] = &line;
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < topo.layers.size(); ++i)
    layers.push_back(layer_json(topo.layers[i], *gemm_of.at(int(i)), *line_of.at(int(i))));

  const costmodel::Hardware& hw = x.hardware;
  const double pes = double(hw.array.rows) * double(hw.array.cols);
  const costmodel::CostLine& t = c.total;
  const double seconds = c.seconds_at_clock;
  const double intensity = t.dram_bytes > 0 ? 2 * t.macs / t.dram_bytes : 0;
  const double attainable = hw.dram_gb_per_s() > 0 ? std::min(c.peak_ops_per_s, intensity * hw.dram_gb_per_s() * 1e9) : c.peak_ops_per_s;
  nlohmann::json energy = t.energy_pj;
  energy["total"] = t.energy_total_pj();
  const std::string formats = c.area ? c.area->mac_formats : "";
  nlohmann::json report = {
      {"schema", "bitsim-network/1"},
      {"topology", {{"file", topo.source}, {"kind", kind},
                    {"layers", topo.layers.size()}, {"macs_per_image", topo.macs()}}},
      {"batch", a.batch},
      {"experiment", a.experiment.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.experiment)},
      {"numerics", {{"activations", x.numerics.activations.format}, {"weights", x.numerics.weights.format},
                    {"accumulator", x.numerics.accumulator.format}}},
      {"hardware", {{"array", fmt::format("{}x{}", hw.array.rows, hw.array.cols)},
                    {"dataflow", std::string(sim::to_string(hw.array.dataflow))}, {"overlap", hw.array.overlap},
                    {"clock_ghz", hw.clock_ghz},
                    {"buffer_bytes", hw.array.buffer_a_bytes}, {"dram_gb_per_s", hw.dram_gb_per_s()},
                    {"node_nm", hw.node_nm}, {"mapping", std::string(costmodel::to_string(hw.mapping))},
                    {"technology", c.technology}}},
      {"layers", layers},
      {"totals", {{"macs", t.macs}, {"cycles", t.cycles}, {"seconds", seconds},
                  {"utilization", t.cycles > 0 ? t.macs / (pes * t.cycles) : 0.0},
                  {"dram_bytes", t.dram_bytes}, {"buffer_accesses", t.sram_accesses}, {"energy_pj", energy},
                  {"roofline", {{"intensity_ops_per_byte", intensity}, {"attainable_ops_per_s", attainable},
                                {"achieved_ops_per_s", seconds > 0 ? 2 * t.macs / seconds : 0.0},
                                {"peak_ops_per_s", c.peak_ops_per_s}}}}},
      {"cost", costmodel::to_json(c)}};

  if (!a.out.empty()) {
    const std::filesystem::path out = a.out;
    std::filesystem::create_directories(out);
    nlohmann::json plots = nlohmann::json::object();
    const std::string name = std::filesystem::path(topo.source).stem().string();
    costmodel::write_cost_plots(out, fmt::format("{} (batch {})", name, a.batch), c, costmodel::Phase::Inference, plots);
    report["plots"] = plots;
    std::set<std::string> components;
    for (const auto& l : layers)
      for (const auto& [k, v] : l["energy_pj"].items())
        if (k != "total") components.insert(k);
    nn::write_atomic(out / "layers.csv", [&](std::ofstream& f) {
      f << "layer,line,kind,shape,m,k,n,repeat,macs,cycles,utilization,mapping,dram_bytes,buffer_accesses,"
           "intensity_ops_per_byte,attainable_ops_per_s,achieved_ops_per_s,bound,energy_pj";
      for (const std::string& comp : components) f << "," << csv_field("energy_pj " + comp);
      f << "\n";
      for (const auto& l : layers) {
        const auto& r = l["roofline"];
        f << fmt::format("{},{},{},{},{},{},{},{},{},{},{:.6g},{},{},{},{:.6g},{:.6g},{:.6g},{},{:.9g}", csv_field(l["name"].get<std::string>()),
                         l["line"].get<int>(), l["kind"].get<std::string>(), l["shape"].get<std::string>(),
                         l["m"].get<std::int64_t>(), l["k"].get<std::int64_t>(), l["n"].get<std::int64_t>(),
                         l["repeat"].get<double>(), l["macs"].get<double>(), l["cycles"].get<double>(),
                         l["utilization"].get<double>(), csv_field(l["mapping"].get<std::string>()),
                         l["traffic"]["dram_bytes"]["total"].get<double>(),
                         l["traffic"]["buffer_accesses"]["total"].get<double>(),
                         r["intensity_ops_per_byte"].get<double>(), r["attainable_ops_per_s"].get<double>(),
                         r["achieved_ops_per_s"].get<double>(), r["bound"].get<std::string>(),
                         l["energy_pj"]["total"].get<double>());
        for (const std::string& comp : components)
          f << fmt::format(",{:.9g}", l["energy_pj"].contains(comp) ? l["energy_pj"][comp].get<double>() : 0.0);
        f << "\n";
      }
    });
    nn::write_atomic(out / "report.json", [&](std::ofstream& f) { f << report.dump(2) << "\n"; });
  }
  if (a.json) {
    fmt::print("{}\n", report.dump(2));
    return;
  }
  fmt::print("{}: {} {} layers, batch {}; {} array at {} GHz, {} KiB buffers, DRAM {}; {} x {} -> {}; mappings by {}\n",
             topo.source, topo.layers.size(), kind == "gemm" ? "GEMM" : kind == "onnx" ? "GEMM (ONNX)" : "conv", a.batch, c.array,
             hw.clock_ghz, double(hw.array.buffer_a_bytes) / 1024,
             hw.dram_gb_per_s() > 0 ? fmt::format("{:.6g} GB/s", hw.dram_gb_per_s()) : std::string("unlimited"),
             x.numerics.activations.format, x.numerics.weights.format, x.numerics.accumulator.format, c.mapping);
  fmt::print("{}\n", c.technology);
  fmt::print("{:<16} {:>24} {:>5} {:>12} {:>12} {:>6} {:>12} {:>12} {:>11} {:>9} {:>10} {:>7}  {}\n", "layer", "shape", "rep",
             "MACs", "cycles", "util%", "DRAM bytes", "buf access", "energy uJ", "ops/byte", "GOPS", "bound", "mapping");
  for (const auto& l : layers) {
    const auto& r = l["roofline"];
    fmt::print("{:<16} {:>24} {:>5} {:>12.6g} {:>12.6g} {:>6.1f} {:>12.6g} {:>12.6g} {:>11.5g} {:>9.4g} {:>10.5g} {:>7}  {}\n",
               l["name"].get<std::string>(), l["shape"].get<std::string>(), l["repeat"].get<double>(), l["macs"].get<double>(),
               l["cycles"].get<double>(), 100 * l["utilization"].get<double>(), l["traffic"]["dram_bytes"]["total"].get<double>(),
               l["traffic"]["buffer_accesses"]["total"].get<double>(), l["energy_pj"]["total"].get<double>() / 1e6,
               r["intensity_ops_per_byte"].get<double>(), r["achieved_ops_per_s"].get<double>() / 1e9, r["bound"].get<std::string>(),
               l["mapping"].get<std::string>());
  }
  const auto& tr = report["totals"];
  fmt::print("{:<16} {:>24} {:>5} {:>12.6g} {:>12.6g} {:>6.1f} {:>12.6g} {:>12.6g} {:>11.5g} {:>9.4g} {:>10.5g}\n", "total", "", "",
             t.macs, t.cycles, 100 * tr["utilization"].get<double>(), t.dram_bytes, t.sram_accesses, t.energy_total_pj() / 1e6,
             intensity, tr["roofline"]["achieved_ops_per_s"].get<double>() / 1e9);
  fmt::print("{:.6g} s at {} GHz; peak {:.6g} GOPS; energy by component:", seconds, hw.clock_ghz, c.peak_ops_per_s / 1e9);
  for (const auto& [k, v] : t.energy_pj) fmt::print(" {} {:.4g} uJ;", k, v / 1e6);
  fmt::print("\n");
  if (!a.out.empty()) fmt::print("wrote {}/report.json, layers.csv, energy.png, roofline.png\n", a.out);
}

void add_network_command(CLI::App* cost) {
  auto a = std::make_shared<NetworkArgs>();
  auto* c = cost->add_subcommand("network", "Cost a network from a SCALE-Sim topology file (conv or GEMM CSV) or an ONNX model without running it");
  auto* topology = c->add_option("--topology", a->topology, "SCALE-Sim topology CSV (docs/topologies.md)");
  c->add_option("--onnx", a->onnx, "ONNX model (docs/nn.md, ONNX models): its convolutions and linear layers")->excludes(topology);
  c->add_option("--experiment", a->experiment, "Experiment file (TOML) whose [hardware] and [numerics] to use");
  c->add_option("--array", a->array, "MAC array ROWSxCOLS (default 16x16, or the experiment's)");
  c->add_option("--dataflow", a->dataflow, "ws, os or is (default ws, or the experiment's)");
  c->add_flag("--overlap", a->overlap, "Overlap each tile's drain with the next one's fill (docs/sim.md; default off, or the experiment's)");
  c->add_option("--buffer-kib", a->buffer_kib, "Each on-chip buffer (A, W, output) in KiB (default 256)");
  c->add_option("--bandwidth", a->bandwidth, "DRAM bandwidth in GB/s (default unlimited, or the experiment's)");
  c->add_option("--clock", a->clock, "Clock in GHz (default 1)");
  c->add_option("--mapping", a->mapping, "What the mapper minimises: energy, cycles, dram, edp, or fixed (default energy)");
  c->add_option("--a-format", a->a_format, "Activation format (default int<8>, or the experiment's)");
  c->add_option("--w-format", a->w_format, "Weight format (default int<8>, or the experiment's)");
  c->add_option("--acc-format", a->acc_format, "Accumulator: int<W>, a float format or fp32-reference (default int<32>)");
  c->add_option("--batch", a->batch, "Images per batch (GEMM files: M is multiplied by it)")->capture_default_str();
  c->add_option("--threads", a->threads, "Threads for the mapper (0: all cores; results do not depend on it)")->capture_default_str();
  c->add_option("--out", a->out, "Directory for report.json, layers.csv, energy.png and roofline.png");
  add_model_options(c, a->model);
  c->add_flag("--json", a->json, "Print report.json");
  c->callback([a] { run_network(*a); });
}

// ---------------------------------------------------------------- cost fpga

struct FpgaArgs {
  std::string device = "zu19eg", luts, dsps, format = "int<8>", format2, simd = "64", acc_bits, clock, experiment;
  std::vector<std::string> set;
  bool use_dsps = false, json = false;
};

// The bits a tensor class takes on the FPGA: its stored width, for integer numerics only.
int fpga_bits(const nn::Numerics& q, int layer, const char* what) {
  const bool integer = q.kind == nn::Numerics::Kind::Binary || q.integer_operands();
  if (!integer || q.stochastic())
    throw std::invalid_argument(fmt::format("layer {}: {} '{}': the FPGA view (FINN) covers deterministic integer and "
                                            "binary numerics", layer, what, q.describe()));
  return q.storage_bits();
}

// `cost fpga --experiment`: the network's GEMM layers as FINN's pipeline of matrix-vector units,
// folded to fill the LUT budget.
void run_fpga_network(const FpgaArgs& a, const FpgaData& data, const FpgaDevice& dev, std::uint64_t luts, double clock_ghz) {
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  const nn::DataPreview d = nn::preview_split(x, false, 1);
  nn::Network net = nn::build_network(x, {1, d.head.channels, d.head.height, d.head.width});
  const std::vector<nn::Shape> shapes = net.shapes();
  const auto ids = nn::gemm_layer_ids(x);
  std::vector<MvtuLayer> layers;
  for (const auto& l : net.layers) {
    if (!l->is_gemm()) continue;
    const int i = l->index;
    const nn::Shape& out = shapes[std::size_t(i) + 1];
    MvtuLayer m;
    m.name = ids[std::size_t(i)].name;
    m.n = out[1];
    m.k = l->params().at(0)->value.dim(1);
    m.vectors = out.size() == 4 ? out[2] * out[3] : 1;
    const nn::LayerNumerics q = x.layer(i);
    m.w_bits = fpga_bits(q.weights, i, "weights");
    m.a_bits = fpga_bits(q.activations, i, "activations");
    // A popcount of K bits, or a sum of K products of W + A bits.
    const int log_k = int(std::ceil(std::log2(double(m.k) + 1)));
    m.acc_bits = m.w_bits == 1 && m.a_bits == 1 ? log_k + 1 : m.w_bits + m.a_bits + log_k;
    layers.push_back(m);
  }
  const FinnPipeline p = fold_finn_pipeline(data.model, layers, luts, clock_ghz);
  if (a.json) {
    nlohmann::json ls = nlohmann::json::array();
    for (std::size_t i = 0; i < layers.size(); ++i)
      ls.push_back({{"name", layers[i].name}, {"neurons", layers[i].n}, {"fan_in", layers[i].k},
                    {"vectors", layers[i].vectors}, {"weight_bits", layers[i].w_bits}, {"act_bits", layers[i].a_bits},
                    {"acc_bits", layers[i].acc_bits}, {"pe", p.layers[i].pe}, {"simd", p.layers[i].simd},
                    {"cycles_per_frame", p.layers[i].cycles}, {"luts", p.layers[i].luts}});
    fmt::print("{}\n", nlohmann::json{{"device", dev.name}, {"luts_budget", luts}, {"clock_ghz", clock_ghz},
                                      {"experiment", x.name}, {"layers", ls}, {"luts_used", p.luts},
                                      {"cycles_per_frame", p.cycles_per_frame}, {"frames_per_s", p.frames_per_s},
                                      {"ops_per_s", p.frames_per_s * p.ops_per_frame}}
                           .dump());
    return;
  }
  fmt::print("{} on {} ({} LUTs) at {} GHz: one matrix-vector-threshold unit per layer, folded to fit (FINN-R LUT model)\n",
             x.name, dev.name, luts, clock_ghz);
  fmt::print("  {:<8} {:>7} {:>7} {:>8} {:>5} {:>5} {:>5} {:>5} {:>12} {:>10}\n", "layer", "N", "K", "vectors", "W", "A", "PE",
             "SIMD", "cycles/frame", "LUTs");
  for (std::size_t i = 0; i < layers.size(); ++i)
    fmt::print("  {:<8} {:>7} {:>7} {:>8} {:>5} {:>5} {:>5} {:>5} {:>12} {:>10.0f}\n", layers[i].name, layers[i].n, layers[i].k,
               layers[i].vectors, layers[i].w_bits, layers[i].a_bits, p.layers[i].pe, p.layers[i].simd, p.layers[i].cycles,
               p.layers[i].luts);
  fmt::print("  {:.0f} of {} LUTs; {} cycles a frame (the slowest layer): {:.4g} frames/s, {:.4g} TOPS\n", p.luts, luts,
             p.cycles_per_frame, p.frames_per_s, p.frames_per_s * p.ops_per_frame / 1e12);
}

int fpga_bits(const std::string& spec) {
  const Format f = Format::parse(spec);
  if (f.is_float())
    throw std::invalid_argument(fmt::format("--format {}: the FPGA view (FINN) covers integer MACs, not floats", spec));
  return f.width();
}

void run_fpga(const FpgaArgs& a) {
  const FpgaData data = FpgaData::load_default();
  const FpgaDevice dev = data.device(a.device);
  if (a.clock.empty()) throw std::invalid_argument("cost fpga needs --clock (GHz)");
  const double clock_ghz = parse_number(a.clock, "--clock", "GHz");
  const std::uint64_t luts = a.luts.empty() ? dev.luts : parse_count(a.luts, "--luts");
  if (!a.experiment.empty()) return run_fpga_network(a, data, dev, luts, clock_ghz);
  std::uint64_t dsps = 0;
  if (!a.dsps.empty()) dsps = std::uint64_t(parse_number(a.dsps, "--dsps", "", true));
  else if (a.use_dsps) dsps = dev.dsps;
  const int w = fpga_bits(a.format);
  const int x = a.format2.empty() ? w : fpga_bits(a.format2);
  const int simd = int(parse_count(a.simd, "--simd"));
  // Default accumulator: exact for a dot product of 1024 terms (w + x + log2 1024 bits).
  const int acc = a.acc_bits.empty() ? w + x + 10 : int(parse_count(a.acc_bits, "--acc-bits"));
  const FpgaBudget b = fpga_budget(data.model, luts, dsps, w, x, simd, acc, clock_ghz);
  const double weights = onchip_weight_capacity(dev, w);
  if (a.json) {
    nlohmann::json j{{"device", dev.name}, {"luts_budget", luts}, {"dsps_budget", dsps}, {"weight_bits", w},
                     {"act_bits", x}, {"simd", simd}, {"acc_bits", acc}, {"clock_ghz", clock_ghz},
                     {"luts_per_mac", b.luts_per_mac}, {"lut_pes", b.lut_pes}, {"dsp_pes", b.dsp_pes},
                     {"macs_per_cycle", b.macs_per_cycle}, {"luts_used", b.luts_used}, {"dsps_used", b.dsps_used},
                     {"peak_ops_per_s", b.peak_ops_per_s}, {"onchip_weights", weights},
                     {"onchip_mbit", dev.bram_mbit + dev.uram_mbit}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}: {} LUTs{}, {}-bit weights x {}-bit activations, SIMD {}, {}-bit accumulators, {} GHz\n", dev.name, luts,
             dsps ? fmt::format(" + {} DSPs", dsps) : "", w, x, simd, acc, clock_ghz);
  fmt::print("  LUTs per MAC (FINN-R, LUT multiplier)  {:>12.5g}\n", b.luts_per_mac);
  fmt::print("  MACs per cycle                         {:>12} ({} LUT PEs + {} DSP PEs of {} lanes)\n", b.macs_per_cycle,
             b.lut_pes, b.dsp_pes, simd);
  fmt::print("  LUTs used / DSPs used                  {:>12.0f} / {}\n", b.luts_used, b.dsps_used);
  fmt::print("  peak                                   {:>12.5g} TOPS\n", b.peak_ops_per_s / 1e12);
  fmt::print("  on-chip weights ({} Mb BRAM+URAM)     {:>12.5g} M\n", dev.bram_mbit + dev.uram_mbit, weights / 1e6);
}

void add_fpga_command(CLI::App* cost) {
  auto a = std::make_shared<FpgaArgs>();
  auto* c = cost->add_subcommand("fpga", "MACs per cycle, peak ops/s and on-chip weights for an FPGA budget (FINN-R LUT model)");
  c->add_option("--device", a->device, "FPGA device from data/fpga.json")->capture_default_str();
  c->add_option("--luts", a->luts, "LUT budget (default: the device's)");
  c->add_option("--dsps", a->dsps, "DSP budget for multipliers (default 0: LUTs only, as FINN)");
  c->add_flag("--use-dsps", a->use_dsps, "Use the device's DSPs for multipliers too");
  c->add_option("--format,-f", a->format, "Weight format (integer)")->capture_default_str();
  c->add_option("--format2", a->format2, "Activation format (default: --format)");
  c->add_option("--simd", a->simd, "Lanes per processing element")->capture_default_str();
  c->add_option("--acc-bits", a->acc_bits, "Accumulator bits (default: W + A + 10)");
  c->add_option("--clock", a->clock, "Clock in GHz");
  auto* x = c->add_option("--experiment", a->experiment,
                          "A network (experiment file) as FINN's pipeline: a folded matrix-vector unit per GEMM layer");
  c->add_option("--set", a->set, "Override a key of the experiment: key.path=value (repeatable)")->needs(x);
  for (const char* o : {"--dsps", "--use-dsps", "--format", "--format2", "--simd", "--acc-bits"}) x->excludes(c->get_option(o));
  c->add_flag("--json", a->json, "One JSON object");
  c->callback([a] { run_fpga(*a); });
}

// ---------------------------------------------------------------- cost laws

void run_laws(const ModelArgs& args) {
  const CostModel m = make_model(args);
  const NodeScaling ns = NodeScaling::load_default();
  fmt::print("{}\n{}\n\nanchors (the table's values, returned exactly):\n", m.describe(), m.table().source);
  for (const TableEntry& e : m.table().entries)
    fmt::print("  {:<14} {:<14} {:>10.6g} pJ/{}{}\n", e.id, to_string(e.kind), e.energy_pj,
               e.access_bits ? fmt::format("{}-bit access", e.access_bits) : "op",
               e.area_um2 ? fmt::format("  {:>8.6g} um^2", *e.area_um2) : "");
  fmt::print("\nfitted orders (least-squares slope of log cost against log width, at the table's node):\n");
  auto show = [&](std::string_view name, std::string_view range, const std::function<double(double)>& f, double lo, double hi) {
    try {
      fmt::print("  {:<44} {:<16} {:>6.3f}\n", name, range, fitted_exponent(f, lo, hi));
    } catch (const std::exception& e) {
      fmt::print("  {:<44} {:<16} n/a ({})\n", name, range, e.what());
    }
  };
  show("int multiplier energy, k x k", "k = 4..64", [&](double k) { return m.int_mul_energy_pj(k, k); }, 4, 64);
  show("int multiplier area, k x k", "k = 4..64", [&](double k) { return m.int_mul_area_um2(k, k).value(); }, 4, 64);
  show("int adder energy, k bits", "k = 4..64", [&](double k) { return m.int_add_energy_pj(k); }, 4, 64);
  show("int adder area, k bits", "k = 4..64", [&](double k) { return m.int_add_area_um2(k).value(); }, 4, 64);
  show("fp multiplier energy, float<8,m>", "m = 3..52", [&](double mm) { return m.fp_mul_energy_pj(8, mm); }, 3, 52);
  show("fp multiplier area, float<8,m>", "m = 3..52", [&](double mm) { return m.fp_mul_area_um2(8, mm).value(); }, 3, 52);
  show("fp adder energy, float<8,m>", "m = 3..52", [&](double mm) { return m.fp_add_energy_pj(8, mm); }, 3, 52);
  show("fp adder area, float<8,m>", "m = 3..52", [&](double mm) { return m.fp_add_area_um2(8, mm).value(); }, 3, 52);
  show("sram read energy per bit, by capacity", "8 KiB..1 MiB", [&](double c) { return m.sram_read_energy_pj(c, 1); }, 8192, 1048576);
  for (bool mul : {true, false})
    for (bool area : {false, true}) {
      try {
        std::string orders;
        for (double p : m.fp_significand_orders(mul, area)) orders += fmt::format(" {:.4f}", p);
        fmt::print("  fp {} significand datapath {} ~ (m+1)^p, p ={}\n", mul ? "mul" : "add", area ? "area  " : "energy", orders);
      } catch (const std::exception&) {
      }
    }
  fmt::print("\nnode scaling from {} nm {} V (energy at each node's nominal supply; * = interpolated):\n", m.table_point().node_nm,
             m.table_point().vdd_v);
  std::vector<double> nodes = ns.published_nodes();
  for (double n : {28.0, 22.0})
    if (!ns.is_published(n)) nodes.push_back(n);
  std::sort(nodes.rbegin(), nodes.rend());
  for (double n : nodes) {
    // At the table's own node, its own supply, so that row reads x1.
    const double v = n == m.table_point().node_nm ? m.table_point().vdd_v : ns.nominal_vdd_v(n, m.target_point().device);
    const TechPoint to{n, v, m.target_point().device};
    fmt::print("  {:>5}{} nm  {:>5.3g} V  energy x{:<9.4g} area x{:.4g}\n", n, ns.is_published(n) ? " " : "*", v,
               ns.energy_factor(m.table_point(), to), ns.area_factor(m.table_point().node_nm, n));
  }
}

}  // namespace

void add_cost_commands(CLI::App& app) {
  auto* cost = app.add_subcommand("cost", "Energy, area and roofline of operations, MAC arrays and layers");
  cost->require_subcommand(1);
  add_unit_command(cost, "energy", false);
  add_unit_command(cost, "area", true);
  add_roofline_command(cost);
  add_fpga_command(cost);
  add_network_command(cost);
  auto m = std::make_shared<ModelArgs>();
  auto* laws = cost->add_subcommand("laws", "The table's anchors, the fitted orders of every law, and node scaling factors");
  add_model_options(laws, *m);
  laws->callback([m] { run_laws(*m); });
}

}  // namespace bitsim::app
