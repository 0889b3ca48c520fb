// Scaling laws from a reference table to any format: integer multipliers O(ka*kb), adders O(k),
// floats from exponent and mantissa widths, binary XNOR-popcount, stochastic rounding,
// requantization, SRAM/DRAM/register-file accesses; then technology-node scaling.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/costmodel/table.hpp"
#include "bitsim/costmodel/technology.hpp"

namespace bitsim::costmodel {

// An operation the model cannot cost (mixed float x fixed multiply, a kind missing from the
// table, a bad width); the message names what is missing.
struct CostError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A cost law through a table's anchor points (x_i, y_i), x and y increasing: between anchors a
// power law through both neighbours (straight in log-log), so every anchor is reproduced exactly
// and the law is monotone; beyond the first/last anchor y ~ x^order with the given orders.
class AnchorLaw {
 public:
  AnchorLaw() = default;
  AnchorLaw(std::vector<std::pair<double, double>> points, double order_below, double order_above);
  bool empty() const { return points_.empty(); }
  double operator()(double x) const;
  const std::vector<std::pair<double, double>>& points() const { return points_; }
  // Exponent of the segment between anchors i and i+1.
  double segment_order(std::size_t i) const;

 private:
  std::vector<std::pair<double, double>> points_;
  double order_below_ = 1, order_above_ = 1;
};

// Least-squares slope of log f(x) against log x at n points spaced geometrically in [lo, hi]:
// the order of growth of a law over that range (tests fit it; docs report it).
double fitted_exponent(const std::function<double(double)>& f, double lo, double hi, int n = 32);

// One named part of a unit's cost. Area is absent when the table gives no area for it.
struct Component {
  std::string name;
  double energy_pj = 0;
  std::optional<double> area_um2;
};

struct UnitCost {
  std::vector<Component> components;
  double energy_pj() const;
  std::optional<double> area_um2() const;  // absent if any component's area is unknown
};

// Which end of a published range to use for DRAM (Horowitz: 1.3-2.6 nJ per 64 bits).
enum class DramEnd { Low, High };

// Where to evaluate costs: by default the table's own node and supply.
struct CostTarget {
  std::optional<double> node_nm;  // default: the table's node
  std::optional<double> vdd_v;    // default: the table's supply at its node, else the nominal one
  Device device = Device::Hp;
  DramEnd dram_end = DramEnd::Low;
};

class CostModel {
 public:
  CostModel(CostTable table, NodeScaling scaling, CostTarget target = {});
  // Horowitz 45 nm table and Stillmaker & Baas scaling from data_dir().
  static CostModel load_default(CostTarget target = {});

  // Arithmetic, one operation each. Fixed-point operands cost by word length (fl is free);
  // floats by exponent and mantissa widths. Throws CostError for a mix of float and fixed operands
  // in one multiplier or adder (no shared datapath to cost).
  UnitCost multiply(const arith::Format& a, const arith::Format& b) const;
  UnitCost add(const arith::Format& a, const arith::Format& b) const;
  UnitCost add(const arith::Format& a) const { return add(a, a); }
  // Multiplier at (a, b) plus an adder at the accumulator format.
  UnitCost mac(const arith::Format& a, const arith::Format& b, const arith::Format& acc) const;
  // One binary MAC (+-1 operands): XNOR and one popcount full adder.
  UnitCost xnor_popcount() const;
  // Stochastic rounding into `target` with k random bits: a k-bit random source (LFSR) and the
  // adder that adds the random bits below the kept LSB.
  UnitCost stochastic_round(const arith::Format& target, int random_bits) const;
  // gemmlowp requantization of a fixed-point accumulator: Q31 multiplier, rounding shift,
  // zero-point add and the clamp's two comparators.
  UnitCost requantize(const arith::Format& acc, const arith::Format& out) const;

  // Memories, energy of ONE access of access_bits bits (never a per-bit figure times a word count).
  double sram_read_energy_pj(double capacity_bytes, int access_bits) const;
  double dram_energy_pj(int access_bits) const;
  double register_file_energy_pj(int access_bits) const;

  // The laws at the table's node, unscaled; `bits` may be fractional (geometric means).
  double int_add_energy_pj(double bits) const;
  double int_mul_energy_pj(double bits_a, double bits_b) const;
  double fp_add_energy_pj(double exp_bits, double man_bits) const;
  double fp_mul_energy_pj(double exp_bits, double man_bits) const;
  std::optional<double> int_add_area_um2(double bits) const;
  std::optional<double> int_mul_area_um2(double bits_a, double bits_b) const;
  std::optional<double> fp_add_area_um2(double exp_bits, double man_bits) const;
  std::optional<double> fp_mul_area_um2(double exp_bits, double man_bits) const;

  // Fitted order of the significand datapath of fp_add / fp_mul (segment exponent of the
  // residual law; several when the table has more than two anchors).
  std::vector<double> fp_significand_orders(bool multiply, bool area) const;

  const CostTable& table() const { return table_; }
  const TechPoint& table_point() const { return table_point_; }
  const TechPoint& target_point() const { return target_point_; }
  double energy_scale() const { return energy_scale_; }  // logic energy, target / table
  double area_scale() const { return area_scale_; }      // area, target / table
  bool target_interpolated() const { return interpolated_; }
  DramEnd dram_end() const { return dram_end_; }
  // One line: table, node, supply, device, and whether the node was interpolated.
  std::string describe() const;

 private:
  struct FpLaw {
    AnchorLaw significand_energy, significand_area;  // residual over (m+1)
    bool present = false;
  };
  FpLaw make_fp_law(EntryKind kind, double default_order) const;
  double fp_energy(const FpLaw& law, EntryKind kind, double e, double m) const;
  std::optional<double> fp_area(const FpLaw& law, double e, double m) const;
  void require(const AnchorLaw& law, EntryKind kind) const;
  Component scaled(std::string name, double energy_pj, std::optional<double> area_um2) const;
  UnitCost float_unit(EntryKind kind, double e, double m) const;

  CostTable table_;
  NodeScaling scaling_;
  TechPoint table_point_, target_point_;
  double energy_scale_ = 1, area_scale_ = 1;
  bool interpolated_ = false;
  DramEnd dram_end_ = DramEnd::Low;

  AnchorLaw int_add_e_, int_add_a_, int_mul_e_, int_mul_a_, sram_bit_e_, rf_e_;
  FpLaw fp_add_, fp_mul_;
  double dram_pj_per_bit_ = 0;
  std::optional<TableEntry> xnor_;  // a table's own binary-MAC figure, if it has one
};

// Accumulator when the caller names none: int<32> for fixed-point products of up to 32 bits (the
// gemmlowp convention), the product width plus 8 guard bits beyond; fp32 when any operand is a
// float, or that operand's own format when it is wider (fp64 accumulates in fp64).
arith::Format default_accumulator(const arith::Format& a, const arith::Format& b);

}  // namespace bitsim::costmodel
