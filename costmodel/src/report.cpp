// Energy and area reports from counts: each count's unit cost times its number, summed by
// component and by every label the caller attached.
#include "bitsim/costmodel/report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace bitsim::costmodel {

std::string_view to_string(OpKind k) {
  switch (k) {
    case OpKind::Multiply: return "mul";
    case OpKind::Add: return "add";
    case OpKind::Mac: return "mac";
    case OpKind::XnorPopcount: return "xnor";
    case OpKind::StochasticRound: return "sr";
    case OpKind::Requantize: return "requant";
  }
  return "?";
}

std::string_view to_string(MemLevel l) {
  switch (l) {
    case MemLevel::RegisterFile: return "register file";
    case MemLevel::Sram: return "sram read";
    case MemLevel::Dram: return "dram";
  }
  return "?";
}

double activity_from_toggles(std::uint64_t input_bit_toggles, std::uint64_t ops, int input_bits_per_op) {
  if (ops == 0 || input_bits_per_op < 1)
    throw CostError(fmt::format("activity needs ops > 0 and input bits > 0 (got {} ops of {} bits)", ops, input_bits_per_op));
  return double(input_bit_toggles) / (0.5 * double(ops) * input_bits_per_op);
}

namespace {

UnitCost unit_of(const CostModel& m, const OpCount& c) {
  switch (c.kind) {
    case OpKind::Multiply: return m.multiply(c.a, c.b);
    case OpKind::Add: return m.add(c.a, c.b);
    case OpKind::Mac: return m.mac(c.a, c.b, c.acc.value_or(default_accumulator(c.a, c.b)));
    case OpKind::XnorPopcount: return m.xnor_popcount();
    case OpKind::StochasticRound: return m.stochastic_round(c.a, c.random_bits);
    case OpKind::Requantize: return m.requantize(c.a, c.b);
  }
  throw CostError("unknown operation kind");
}

void add_labels(EnergyReport& r, const Labels& labels, double pj) {
  for (const auto& [k, v] : labels) r.by_label_pj[k][v] += pj;
}

}  // namespace

EnergyReport estimate_energy(const CostModel& model, const Counts& counts) {
  EnergyReport r;
  r.model = model.describe();
  for (const OpCount& c : counts.ops) {
    const double activity = c.activity.value_or(1.0);
    if (!(activity >= 0) || !std::isfinite(activity)) throw CostError(fmt::format("bad activity {}", activity));
    const UnitCost u = unit_of(model, c);
    double sum = 0;
    for (const Component& comp : u.components) {
      const double pj = comp.energy_pj * double(c.count) * activity;
      // "mac multiplier", "sr rounding adder"; a component already named after its op keeps its name.
      const std::string key = comp.name.starts_with(to_string(c.kind)) ? comp.name : fmt::format("{} {}", to_string(c.kind), comp.name);
      r.by_component_pj[key] += pj;
      sum += pj;
    }
    r.total_energy_pj += sum;
    add_labels(r, c.labels, sum);
  }
  for (const MemCount& m : counts.memory) {
    double per_access = 0;
    switch (m.level) {
      case MemLevel::RegisterFile: per_access = model.register_file_energy_pj(m.access_bits); break;
      case MemLevel::Sram: per_access = model.sram_read_energy_pj(m.capacity_bytes, m.access_bits); break;
      case MemLevel::Dram: per_access = model.dram_energy_pj(m.access_bits); break;
    }
    const double pj = per_access * double(m.accesses);
    r.by_component_pj[m.write && m.level == MemLevel::Sram ? std::string("sram write") : std::string(to_string(m.level))] += pj;
    r.total_energy_pj += pj;
    add_labels(r, m.labels, pj);
  }
  return r;
}

std::string EnergyReport::to_json() const {
  nlohmann::json j{{"total_energy_pj", total_energy_pj}, {"by_component_pj", by_component_pj},
                   {"by_label_pj", by_label_pj}, {"model", model}};
  return j.dump();
}

AreaReport estimate_area(const CostModel& model, const ArrayHardware& hw) {
  if (hw.rows < 1 || hw.cols < 1) throw CostError(fmt::format("bad array {}x{}", hw.rows, hw.cols));
  AreaReport r;
  r.model = model.describe();
  const double n = double(hw.rows) * hw.cols;
  const UnitCost mac = model.mac(hw.a, hw.b, hw.acc.value_or(default_accumulator(hw.a, hw.b)));
  for (const Component& c : mac.components) {
    const std::string name = fmt::format("mac array {}", c.name);
    if (!c.area_um2) {
      r.unknown.push_back(name);
      continue;
    }
    r.by_component_um2[name] += *c.area_um2 * n;
    r.total_area_um2 += *c.area_um2 * n;
  }
  // The default table publishes no SRAM area; a user table could add it, but SramRead entries
  // carry area per macro, not a law, so SRAMs are listed as unknown.
  for (const auto& [name, bytes] : hw.srams) r.unknown.push_back(fmt::format("sram {} ({} bytes)", name, bytes));
  return r;
}

std::string AreaReport::to_json() const {
  nlohmann::json j{{"total_area_um2", total_area_um2}, {"by_component_um2", by_component_um2},
                   {"unknown", unknown}, {"model", model}};
  return j.dump();
}

}  // namespace bitsim::costmodel
