// Technology-node scaling of energy and area between CMOS nodes (180 nm to 7 nm) from Stillmaker &
// Baas 2017: energy by a per-node polynomial in the supply voltage, area by published factors.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace bitsim::costmodel {

// Stillmaker & Baas fit high-performance and low-power device models separately below 65 nm.
enum class Device { Hp, Lp };
std::string_view to_string(Device d);
Device parse_device(std::string_view s);  // "hp" | "lp"; throws TableError naming the token

// A process node, its supply voltage and device flavour.
struct TechPoint {
  double node_nm = 45;
  double vdd_v = 0.9;
  Device device = Device::Hp;
};

class NodeScaling {
 public:
  struct Node {
    double node_nm = 0;
    std::string device;     // "hp", "lp", or "bulk" (65 nm and above: one model)
    double energy_poly[3];  // a2, a1, a0 of energy_factor(V) = a2 V^2 + a1 V + a0
    double area_vs_45nm = 0;
    double nominal_vdd_v = 0;
  };

  // Throws TableError naming the file and the node entry.
  static NodeScaling parse(std::string_view json_text, const std::string& origin);
  static NodeScaling load(const std::filesystem::path& path);
  static NodeScaling load_default();  // data_dir()/stillmaker_baas_2017.json

  // Energy(to) / Energy(from) for the same circuit. Nodes between two published ones (28 nm,
  // 22 nm) are interpolated geometrically in node size; is_published() tells which is which.
  // Throws TableError for a node outside the published range or a non-positive voltage.
  double energy_factor(const TechPoint& from, const TechPoint& to) const;
  // Area(to) / Area(from), from the published factors relative to 45 nm.
  double area_factor(double from_nm, double to_nm) const;
  // Default supply when the user gives none (see the data file's note on where it comes from).
  double nominal_vdd_v(double node_nm, Device device) const;
  bool is_published(double node_nm) const;
  std::vector<double> published_nodes() const;  // descending
  const std::string& source() const { return source_; }

 private:
  // The energy polynomial at a published node, evaluated at vdd.
  double energy_at_published(double node_nm, Device device, double vdd_v) const;
  double energy_at(double node_nm, Device device, double vdd_v) const;
  double area_vs_45(double node_nm) const;
  const Node& find(double node_nm, Device device) const;
  // Published neighbours (lo <= node <= hi, lo < hi unless published) and the geometric weight of hi.
  void bracket(double node_nm, double& lo, double& hi, double& w_hi) const;

  std::vector<Node> nodes_;
  std::string origin_, source_;
};

}  // namespace bitsim::costmodel
