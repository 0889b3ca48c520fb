// Stillmaker & Baas node scaling read from data: energy ratios from per-node voltage polynomials,
// area ratios from published factors; unpublished nodes (28, 22 nm) interpolated and flagged.
#include "bitsim/costmodel/technology.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "bitsim/costmodel/table.hpp"

namespace bitsim::costmodel {

std::string_view to_string(Device d) { return d == Device::Hp ? "hp" : "lp"; }

Device parse_device(std::string_view s) {
  if (s == "hp") return Device::Hp;
  if (s == "lp") return Device::Lp;
  throw TableError(fmt::format("bad device '{}': expected hp or lp", s));
}

NodeScaling NodeScaling::parse(std::string_view json_text, const std::string& origin) {
  using nlohmann::json;
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    throw TableError(fmt::format("node scaling {}: not valid JSON: {}", origin, e.what()));
  }
  NodeScaling s;
  s.origin_ = origin;
  if (!root.is_object() || !root.contains("nodes") || !root.at("nodes").is_array() || root.at("nodes").empty())
    throw TableError(fmt::format("node scaling {}: expected an object with a non-empty 'nodes' array", origin));
  s.source_ = root.value("source", "");
  for (std::size_t i = 0; i < root.at("nodes").size(); ++i) {
    const json& j = root.at("nodes")[i];
    const std::string where = fmt::format("node scaling {}: node entry #{}", origin, i + 1);
    auto number = [&](const json& v, const char* what) {
      if (!v.is_number() || !std::isfinite(v.get<double>()))
        throw TableError(fmt::format("{}: '{}' must be a number, got {}", where, what, v.dump()));
      return v.get<double>();
    };
    if (!j.is_object()) throw TableError(fmt::format("{}: must be an object", where));
    for (const char* key : {"node_nm", "device", "energy_poly", "area_vs_45nm", "nominal_vdd_v"})
      if (!j.contains(key)) throw TableError(fmt::format("{}: missing '{}'", where, key));
    Node n;
    n.node_nm = number(j.at("node_nm"), "node_nm");
    n.device = j.at("device").is_string() ? j.at("device").get<std::string>() : "";
    if (n.device != "hp" && n.device != "lp" && n.device != "bulk")
      throw TableError(fmt::format("{}: 'device' must be hp, lp or bulk, got {}", where, j.at("device").dump()));
    const json& p = j.at("energy_poly");
    if (!p.is_array() || p.size() != 3) throw TableError(fmt::format("{}: 'energy_poly' must be [a2, a1, a0]", where));
    for (int k = 0; k < 3; ++k) n.energy_poly[k] = number(p[k], "energy_poly");
    n.area_vs_45nm = number(j.at("area_vs_45nm"), "area_vs_45nm");
    n.nominal_vdd_v = number(j.at("nominal_vdd_v"), "nominal_vdd_v");
    if (n.node_nm <= 0 || n.area_vs_45nm <= 0 || n.nominal_vdd_v <= 0)
      throw TableError(fmt::format("{}: node_nm, area_vs_45nm and nominal_vdd_v must be positive", where));
    const double e = n.energy_poly[0] * n.nominal_vdd_v * n.nominal_vdd_v + n.energy_poly[1] * n.nominal_vdd_v + n.energy_poly[2];
    if (!(e > 0)) throw TableError(fmt::format("{}: energy polynomial is not positive at the nominal supply", where));
    s.nodes_.push_back(n);
  }
  return s;
}

NodeScaling NodeScaling::load(const std::filesystem::path& path) { return parse(read_text_file(path), path.string()); }

NodeScaling NodeScaling::load_default() { return load(data_file("stillmaker_baas_2017.json")); }

std::vector<double> NodeScaling::published_nodes() const {
  std::vector<double> v;
  for (const Node& n : nodes_)
    if (std::find(v.begin(), v.end(), n.node_nm) == v.end()) v.push_back(n.node_nm);
  std::sort(v.rbegin(), v.rend());
  return v;
}

bool NodeScaling::is_published(double node_nm) const {
  const auto v = published_nodes();
  return std::find(v.begin(), v.end(), node_nm) != v.end();
}

const NodeScaling::Node& NodeScaling::find(double node_nm, Device device) const {
  const Node* bulk = nullptr;
  for (const Node& n : nodes_) {
    if (n.node_nm != node_nm) continue;
    if (n.device == to_string(device)) return n;
    if (n.device == "bulk") bulk = &n;
  }
  if (bulk) return *bulk;
  // A node published for one flavour only: use it rather than refuse.
  for (const Node& n : nodes_)
    if (n.node_nm == node_nm) return n;
  throw TableError(fmt::format("node scaling {}: no data for {} nm", origin_, node_nm));
}

void NodeScaling::bracket(double node_nm, double& lo, double& hi, double& w_hi) const {
  const auto v = published_nodes();  // descending
  if (!(node_nm <= v.front() && node_nm >= v.back())) {
    std::string list;
    for (double n : v) list += fmt::format("{}{}", list.empty() ? "" : " ", n);
    throw TableError(fmt::format("bad node {} nm: Stillmaker & Baas scaling covers {} nm (nodes in between are "
                                 "interpolated)", node_nm, list));
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == node_nm) {
      lo = hi = node_nm;
      w_hi = 1;
      return;
    }
    if (i + 1 < v.size() && v[i] > node_nm && node_nm > v[i + 1]) {
      hi = v[i];
      lo = v[i + 1];
      // Geometric in node size: log(value) linear in log(node).
      w_hi = std::log(node_nm / lo) / std::log(hi / lo);
      return;
    }
  }
}

double NodeScaling::energy_at_published(double node_nm, Device device, double vdd_v) const {
  const Node& n = find(node_nm, device);
  return n.energy_poly[0] * vdd_v * vdd_v + n.energy_poly[1] * vdd_v + n.energy_poly[2];
}

double NodeScaling::energy_at(double node_nm, Device device, double vdd_v) const {
  if (!(vdd_v > 0)) throw TableError(fmt::format("bad supply {} V: must be positive", vdd_v));
  double lo, hi, w;
  bracket(node_nm, lo, hi, w);
  const double e_hi = energy_at_published(hi, device, vdd_v);
  const double e_lo = energy_at_published(lo, device, vdd_v);
  if (!(e_hi > 0) || !(e_lo > 0))
    throw TableError(fmt::format("supply {} V is outside the range where the {} nm energy fit is positive", vdd_v, node_nm));
  return std::exp(w * std::log(e_hi) + (1 - w) * std::log(e_lo));
}

double NodeScaling::area_vs_45(double node_nm) const {
  double lo, hi, w;
  bracket(node_nm, lo, hi, w);
  const double a_hi = find(hi, Device::Hp).area_vs_45nm, a_lo = find(lo, Device::Hp).area_vs_45nm;
  return std::exp(w * std::log(a_hi) + (1 - w) * std::log(a_lo));
}

double NodeScaling::energy_factor(const TechPoint& from, const TechPoint& to) const {
  if (from.node_nm == to.node_nm && from.vdd_v == to.vdd_v && from.device == to.device) return 1.0;
  return energy_at(to.node_nm, to.device, to.vdd_v) / energy_at(from.node_nm, from.device, from.vdd_v);
}

double NodeScaling::area_factor(double from_nm, double to_nm) const {
  if (from_nm == to_nm) return 1.0;
  return area_vs_45(to_nm) / area_vs_45(from_nm);
}

double NodeScaling::nominal_vdd_v(double node_nm, Device device) const {
  double lo, hi, w;
  bracket(node_nm, lo, hi, w);
  const double v_hi = find(hi, device).nominal_vdd_v, v_lo = find(lo, device).nominal_vdd_v;
  return w * v_hi + (1 - w) * v_lo;
}

}  // namespace bitsim::costmodel
