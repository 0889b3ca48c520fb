// FINN-R LUT cost model and FPGA budgets, with the model constants and devices read from data.
#include "bitsim/costmodel/fpga.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/table.hpp"

namespace bitsim::costmodel {

FpgaData FpgaData::parse(std::string_view json_text, const std::string& origin) {
  using nlohmann::json;
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    throw TableError(fmt::format("fpga data {}: not valid JSON: {}", origin, e.what()));
  }
  auto number = [&](const json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || !j.at(key).is_number() || !(j.at(key).get<double>() >= 0))
      throw TableError(fmt::format("{}: '{}' must be a non-negative number", where, key));
    return j.at(key).get<double>();
  };
  FpgaData d;
  if (!root.is_object() || !root.contains("lut_model") || !root.contains("devices") || !root.at("devices").is_array())
    throw TableError(fmt::format("fpga data {}: expected 'lut_model' and a 'devices' array", origin));
  const json& m = root.at("lut_model");
  const std::string mw = fmt::format("fpga data {}: lut_model", origin);
  d.model.c0_luts = number(m, "c0_luts", mw);
  d.model.c1 = number(m, "c1", mw);
  d.model.dsp_operand_bits = int(number(m, "dsp_operand_bits", mw));
  d.model.source = m.value("source", "");
  if (!(d.model.c1 > 0) || d.model.dsp_operand_bits < 1) throw TableError(fmt::format("{}: c1 and dsp_operand_bits must be positive", mw));
  for (std::size_t i = 0; i < root.at("devices").size(); ++i) {
    const json& j = root.at("devices")[i];
    const std::string name = j.is_object() && j.contains("name") && j.at("name").is_string() ? j.at("name").get<std::string>() : "";
    const std::string where = fmt::format("fpga data {}: device '{}'", origin, name.empty() ? fmt::format("#{}", i + 1) : name);
    if (name.empty()) throw TableError(fmt::format("{}: missing 'name'", where));
    FpgaDevice dev;
    dev.name = name;
    dev.luts = std::uint64_t(number(j, "luts", where));
    dev.dsps = std::uint64_t(number(j, "dsps", where));
    dev.bram_mbit = number(j, "bram_mbit", where);
    dev.uram_mbit = number(j, "uram_mbit", where);
    dev.source = j.value("source", "");
    if (dev.source.empty()) throw TableError(fmt::format("{}: missing 'source'", where));
    d.devices.push_back(dev);
  }
  return d;
}

FpgaData FpgaData::load(const std::filesystem::path& path) { return parse(read_text_file(path), path.string()); }

FpgaData FpgaData::load_default() { return load(data_file("fpga.json")); }

const FpgaDevice& FpgaData::device(std::string_view name) const {
  std::string names;
  for (const FpgaDevice& d : devices) {
    if (d.name == name) return d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  throw TableError(fmt::format("unknown FPGA device '{}': known devices are {}", name, names));
}

double finn_pe_luts(int w, int a, int simd, int acc_bits, bool multipliers_in_dsps) {
  if (w < 1 || a < 1 || simd < 1 || acc_bits < 1)
    throw CostError(fmt::format("bad FPGA MAC: {}-bit weights, {}-bit activations, SIMD {}, {}-bit accumulator", w, a, simd, acc_bits));
  const double wa = w + a;
  const double mult = multipliers_in_dsps ? 0.0 : simd * (2.0 * std::ceil(wa / 6.0) - 1.0) * wa;
  const double addertree = wa * (2.0 * simd - 1.0);
  return mult + addertree + acc_bits;
}

FpgaBudget fpga_budget(const FinnLutModel& m, std::uint64_t luts, std::uint64_t dsps, int w, int a, int simd,
                       int acc_bits, double clock_ghz) {
  if (!(clock_ghz > 0)) throw CostError(fmt::format("bad clock {} GHz: must be positive", clock_ghz));
  FpgaBudget b;
  const double lut_pe = m.c1 * finn_pe_luts(w, a, simd, acc_bits, false);
  const double dsp_pe = m.c1 * finn_pe_luts(w, a, simd, acc_bits, true);
  b.luts_per_mac = lut_pe / simd;
  double left = double(luts) - m.c0_luts;
  if (!(left >= lut_pe) && !(left >= dsp_pe && dsps > 0))
    throw CostError(fmt::format("LUT budget {} is too small for one {}-lane PE ({:.0f} LUTs plus {} for the unit)", luts,
                                simd, lut_pe, m.c0_luts));
  const bool binary = w == 1 && a == 1;
  if (!binary && dsps > 0) {
    const std::uint64_t dsps_per_pe = std::uint64_t(simd) * std::uint64_t(std::ceil(double(w + a) / m.dsp_operand_bits));
    b.dsp_pes = std::min<std::uint64_t>(dsps / dsps_per_pe, std::uint64_t(std::floor(left / dsp_pe)));
    b.dsps_used = b.dsp_pes * dsps_per_pe;
    left -= double(b.dsp_pes) * dsp_pe;
  }
  b.lut_pes = std::uint64_t(std::floor(left / lut_pe));
  b.macs_per_cycle = (b.lut_pes + b.dsp_pes) * std::uint64_t(simd);
  b.luts_used = m.c0_luts + double(b.dsp_pes) * dsp_pe + double(b.lut_pes) * lut_pe;
  b.peak_ops_per_s = double(b.macs_per_cycle) * 2.0 * clock_ghz * 1e9;
  return b;
}

namespace {

std::vector<int> divisors(std::int64_t v) {
  std::vector<int> d;
  for (std::int64_t i = 1; i <= v && i <= (1 << 20); ++i)
    if (v % i == 0) d.push_back(int(i));
  return d;
}

}  // namespace

FinnPipeline fold_finn_pipeline(const FinnLutModel& m, const std::vector<MvtuLayer>& layers, std::uint64_t lut_budget,
                                double clock_ghz) {
  if (!(clock_ghz > 0)) throw CostError(fmt::format("bad clock {} GHz: must be positive", clock_ghz));
  if (layers.empty()) throw CostError("a FINN pipeline needs at least one layer");
  // Every (PE, SIMD) of every layer, with its cycles and LUTs.
  std::vector<std::vector<MvtuFolding>> options(layers.size());
  std::vector<std::int64_t> targets;
  FinnPipeline p;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const MvtuLayer& l = layers[i];
    if (l.n < 1 || l.k < 1 || l.vectors < 1) throw CostError(fmt::format("layer {}: bad shape", l.name));
    for (const int pe : divisors(l.n))
      for (const int simd : divisors(l.k)) {
        MvtuFolding f{pe, simd, l.vectors * (l.n / pe) * (l.k / simd), 0};
        f.luts = m.c0_luts + m.c1 * pe * finn_pe_luts(l.w_bits, l.a_bits, simd, l.acc_bits, false);
        options[i].push_back(f);
        targets.push_back(f.cycles);
      }
    p.ops_per_frame += 2.0 * double(l.n) * double(l.k) * double(l.vectors);
  }
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  // The cheapest folding of each layer within t cycles, and its LUTs in total.
  auto fold = [&](std::int64_t t, std::vector<MvtuFolding>* out) {
    double luts = 0;
    for (const auto& opts : options) {
      const MvtuFolding* best = nullptr;
      for (const MvtuFolding& f : opts)
        if (f.cycles <= t && (!best || f.luts < best->luts || (f.luts == best->luts && f.cycles < best->cycles))) best = &f;
      if (!best) return std::numeric_limits<double>::infinity();
      luts += best->luts;
      if (out) out->push_back(*best);
    }
    return luts;
  };
  // Fewer cycles never cost fewer LUTs, so the LUTs fall as t grows: bisect for the smallest t that fits.
  auto fits = [&](std::int64_t t) { return fold(t, nullptr) <= double(lut_budget); };
  if (!fits(targets.back()))
    throw CostError(fmt::format("LUT budget {} is too small for the network even fully folded ({:.0f} LUTs)", lut_budget,
                                fold(targets.back(), nullptr)));
  std::size_t lo = 0, hi = targets.size() - 1;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (fits(targets[mid])) hi = mid;
    else lo = mid + 1;
  }
  const std::int64_t t = targets[lo];
  p.luts = fold(t, &p.layers);
  for (const MvtuFolding& f : p.layers) p.cycles_per_frame = std::max(p.cycles_per_frame, f.cycles);
  p.frames_per_s = clock_ghz * 1e9 / double(p.cycles_per_frame);
  return p;
}

double onchip_weight_capacity(const FpgaDevice& d, int w_bits) {
  if (w_bits < 1) throw CostError(fmt::format("bad weight width {}", w_bits));
  // Xilinx datasheets count memory in Mb of 2^20 bits (984 x 36 Kb block RAMs = 34.6 Mb).
  return (d.bram_mbit + d.uram_mbit) * 1048576.0 / w_bits;
}

}  // namespace bitsim::costmodel
