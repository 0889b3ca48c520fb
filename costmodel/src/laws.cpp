// The scaling laws: anchors from the table, power-law interpolation between them, documented
// orders beyond them, float units as exponent adder + fitted significand datapath, node scaling.
#include "bitsim/costmodel/laws.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bitsim::costmodel {

using arith::Format;

AnchorLaw::AnchorLaw(std::vector<std::pair<double, double>> points, double order_below, double order_above)
    : points_(std::move(points)), order_below_(order_below), order_above_(order_above) {
  std::sort(points_.begin(), points_.end());
  for (std::size_t i = 0; i < points_.size(); ++i) {
    if (!(points_[i].first > 0) || !(points_[i].second > 0))
      throw CostError(fmt::format("anchor ({}, {}) is not positive", points_[i].first, points_[i].second));
    if (i > 0 && !(points_[i].first > points_[i - 1].first && points_[i].second > points_[i - 1].second))
      throw CostError("anchors must grow in both size and cost");
  }
}

double AnchorLaw::segment_order(std::size_t i) const {
  const auto& [x0, y0] = points_.at(i);
  const auto& [x1, y1] = points_.at(i + 1);
  return std::log(y1 / y0) / std::log(x1 / x0);
}

double AnchorLaw::operator()(double x) const {
  if (points_.empty()) throw CostError("cost law has no anchors");
  if (!(x > 0)) throw CostError(fmt::format("cost law evaluated at non-positive size {}", x));
  const auto& first = points_.front();
  const auto& last = points_.back();
  // Anchors come back exactly, not through pow(), so published values are reproduced to the bit.
  if (x <= first.first) return x == first.first ? first.second : first.second * std::pow(x / first.first, order_below_);
  if (x >= last.first) return x == last.first ? last.second : last.second * std::pow(x / last.first, order_above_);
  std::size_t i = 0;
  while (points_[i + 1].first < x) ++i;
  if (points_[i + 1].first == x) return points_[i + 1].second;
  return points_[i].second * std::pow(x / points_[i].first, segment_order(i));
}

double fitted_exponent(const std::function<double(double)>& f, double lo, double hi, int n) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int i = 0; i < n; ++i) {
    const double x = std::log(lo) + (std::log(hi) - std::log(lo)) * i / (n - 1);
    const double y = std::log(f(std::exp(x)));
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

double UnitCost::energy_pj() const {
  double e = 0;
  for (const auto& c : components) e += c.energy_pj;
  return e;
}

std::optional<double> UnitCost::area_um2() const {
  double a = 0;
  for (const auto& c : components) {
    if (!c.area_um2) return std::nullopt;
    a += *c.area_um2;
  }
  return a;
}

namespace {

// Laws for integer units: O(k) adders and O(ka*kb) multipliers beyond the anchors.
AnchorLaw int_law(const CostTable& t, EntryKind kind, bool area) {
  std::vector<std::pair<double, double>> pts;
  for (const TableEntry* e : t.of_kind(kind)) {
    if (area && !e->area_um2) continue;
    pts.emplace_back(kind == EntryKind::IntMul ? double(e->bits_a) * e->bits_b : double(e->bits_a),
                     area ? *e->area_um2 : e->energy_pj);
  }
  return pts.empty() ? AnchorLaw() : AnchorLaw(pts, 1.0, 1.0);
}

bool is_float(const Format& f) { return f.is_float(); }

}  // namespace

CostModel::FpLaw CostModel::make_fp_law(EntryKind kind, double default_order) const {
  FpLaw law;
  std::vector<const TableEntry*> anchors = table_.of_kind(kind);
  if (anchors.empty()) return law;
  if (int_add_e_.empty())
    throw TableError(fmt::format("table {}: entry '{}': {} anchors need int_add anchors for the exponent adder",
                                 table_.origin, anchors[0]->id, to_string(kind)));
  law.present = true;
  std::sort(anchors.begin(), anchors.end(), [](auto* a, auto* b) { return a->man_bits < b->man_bits; });
  std::vector<std::pair<double, double>> pe, pa;
  bool all_area = !int_add_a_.empty();
  for (const TableEntry* a : anchors) {
    const double s = a->man_bits + 1.0;
    const double r = a->energy_pj - int_add_e_(a->exp_bits);
    if (!(r > 0))
      throw TableError(fmt::format("table {}: entry '{}': {} pJ is not above the {}-bit exponent adder's {} pJ",
                                   table_.origin, a->id, a->energy_pj, a->exp_bits, int_add_e_(a->exp_bits)));
    if (!pe.empty() && !(r > pe.back().second))
      throw TableError(fmt::format("table {}: entry '{}': its significand datapath ({} pJ after the exponent adder) "
                                   "does not grow over the previous {} anchor's ({} pJ)",
                                   table_.origin, a->id, r, to_string(kind), pe.back().second));
    pe.emplace_back(s, r);
    if (all_area && a->area_um2) {
      const double ra = *a->area_um2 - *int_add_area_um2(a->exp_bits);
      if (!(ra > 0) || (!pa.empty() && !(ra > pa.back().second)))
        throw TableError(fmt::format("table {}: entry '{}': its significand area ({} um^2 after the exponent adder) "
                                     "must be positive and grow with the mantissa", table_.origin, a->id, ra));
      pa.emplace_back(s, ra);
    } else {
      all_area = false;
    }
  }
  // One anchor: the documented order. Several: beyond them, the order of the nearest segment,
  // since a float unit's growth is only known from its anchors.
  auto build = [&](const std::vector<std::pair<double, double>>& pts) {
    if (pts.size() == 1) return AnchorLaw(pts, default_order, default_order);
    const AnchorLaw probe(pts, 1, 1);
    return AnchorLaw(pts, probe.segment_order(0), probe.segment_order(pts.size() - 2));
  };
  law.significand_energy = build(pe);
  if (all_area) law.significand_area = build(pa);
  return law;
}

CostModel::CostModel(CostTable table, NodeScaling scaling, CostTarget target)
    : table_(std::move(table)), scaling_(std::move(scaling)), dram_end_(target.dram_end) {
  int_add_e_ = int_law(table_, EntryKind::IntAdd, false);
  int_add_a_ = int_law(table_, EntryKind::IntAdd, true);
  int_mul_e_ = int_law(table_, EntryKind::IntMul, false);
  int_mul_a_ = int_law(table_, EntryKind::IntMul, true);
  // Float significand datapaths: a mantissa multiplier is O((m+1)^2), an adder's alignment and
  // normalisation O(m+1); used only when a table has a single anchor of the kind.
  fp_add_ = make_fp_law(EntryKind::FpAdd, 1.0);
  fp_mul_ = make_fp_law(EntryKind::FpMul, 2.0);

  // SRAM: energy per bit against capacity; beyond the anchors ~ sqrt(capacity) (bit- and word-line
  // length of a square array).
  std::vector<std::pair<double, double>> sram;
  for (const TableEntry* e : table_.of_kind(EntryKind::SramRead)) sram.emplace_back(e->capacity_bytes, e->energy_pj / e->access_bits);
  if (!sram.empty()) sram_bit_e_ = AnchorLaw(sram, 0.5, 0.5);
  std::vector<std::pair<double, double>> rf;
  for (const TableEntry* e : table_.of_kind(EntryKind::RegisterFile)) rf.emplace_back(e->access_bits, e->energy_pj);
  if (!rf.empty()) {
    try {
      rf_e_ = AnchorLaw(rf, 1.0, 1.0);
    } catch (const CostError&) {
      throw TableError(fmt::format("table {}: register_file entries must cost more for wider accesses", table_.origin));
    }
  }
  if (const auto d = table_.of_kind(EntryKind::DramAccess); !d.empty()) {
    const double e = dram_end_ == DramEnd::High ? d[0]->energy_pj_max.value_or(d[0]->energy_pj) : d[0]->energy_pj;
    dram_pj_per_bit_ = e / d[0]->access_bits;
  }
  if (const auto x = table_.of_kind(EntryKind::XnorPopcount); !x.empty()) xnor_ = *x[0];

  // Technology: the table's numbers are taken to be of the chosen device flavour at its node.
  table_point_ = {table_.node_nm, table_.vdd_v, target.device};
  target_point_.device = target.device;
  target_point_.node_nm = target.node_nm.value_or(table_.node_nm);
  if (target.vdd_v) target_point_.vdd_v = *target.vdd_v;
  else if (target_point_.node_nm == table_.node_nm) target_point_.vdd_v = table_.vdd_v;
  else target_point_.vdd_v = scaling_.nominal_vdd_v(target_point_.node_nm, target.device);
  energy_scale_ = scaling_.energy_factor(table_point_, target_point_);
  area_scale_ = scaling_.area_factor(table_point_.node_nm, target_point_.node_nm);
  interpolated_ = target_point_.node_nm != table_.node_nm && !scaling_.is_published(target_point_.node_nm);
}

CostModel CostModel::load_default(CostTarget target) {
  return CostModel(CostTable::load_default(), NodeScaling::load_default(), target);
}

void CostModel::require(const AnchorLaw& law, EntryKind kind) const {
  if (law.empty())
    throw CostError(fmt::format("table {} has no {} entries to cost this operation", table_.origin, to_string(kind)));
}

double CostModel::int_add_energy_pj(double bits) const {
  require(int_add_e_, EntryKind::IntAdd);
  return int_add_e_(bits);
}
double CostModel::int_mul_energy_pj(double a, double b) const {
  require(int_mul_e_, EntryKind::IntMul);
  return int_mul_e_(a * b);
}
std::optional<double> CostModel::int_add_area_um2(double bits) const {
  if (int_add_a_.empty()) return std::nullopt;
  return int_add_a_(bits);
}
std::optional<double> CostModel::int_mul_area_um2(double a, double b) const {
  if (int_mul_a_.empty()) return std::nullopt;
  return int_mul_a_(a * b);
}

double CostModel::fp_energy(const FpLaw& law, EntryKind kind, double e, double m) const {
  if (!law.present) throw CostError(fmt::format("table {} has no {} entries to cost this operation", table_.origin, to_string(kind)));
  return int_add_e_(e) + law.significand_energy(m + 1);
}
std::optional<double> CostModel::fp_area(const FpLaw& law, double e, double m) const {
  if (!law.present || law.significand_area.empty()) return std::nullopt;
  return *int_add_area_um2(e) + law.significand_area(m + 1);
}
double CostModel::fp_add_energy_pj(double e, double m) const { return fp_energy(fp_add_, EntryKind::FpAdd, e, m); }
double CostModel::fp_mul_energy_pj(double e, double m) const { return fp_energy(fp_mul_, EntryKind::FpMul, e, m); }
std::optional<double> CostModel::fp_add_area_um2(double e, double m) const { return fp_area(fp_add_, e, m); }
std::optional<double> CostModel::fp_mul_area_um2(double e, double m) const { return fp_area(fp_mul_, e, m); }

std::vector<double> CostModel::fp_significand_orders(bool multiply, bool area) const {
  const FpLaw& law = multiply ? fp_mul_ : fp_add_;
  const AnchorLaw& l = area ? law.significand_area : law.significand_energy;
  std::vector<double> out;
  for (std::size_t i = 0; i + 1 < l.points().size(); ++i) out.push_back(l.segment_order(i));
  if (l.points().size() == 1) out.push_back(multiply ? 2.0 : 1.0);
  return out;
}

Component CostModel::scaled(std::string name, double energy_pj, std::optional<double> area_um2) const {
  Component c{std::move(name), energy_pj * energy_scale_, std::nullopt};
  if (area_um2) c.area_um2 = *area_um2 * area_scale_;
  return c;
}

UnitCost CostModel::float_unit(EntryKind kind, double e, double m) const {
  const FpLaw& law = kind == EntryKind::FpMul ? fp_mul_ : fp_add_;
  if (!law.present) throw CostError(fmt::format("table {} has no {} entries to cost this operation", table_.origin, to_string(kind)));
  const std::optional<double> exp_area = int_add_area_um2(e);
  std::optional<double> sig_area;
  if (!law.significand_area.empty()) sig_area = law.significand_area(m + 1);
  UnitCost u;
  u.components.push_back(scaled(kind == EntryKind::FpMul ? "exponent adder" : "exponent compare", int_add_e_(e),
                                sig_area ? exp_area : std::nullopt));
  u.components.push_back(scaled(kind == EntryKind::FpMul ? "significand multiplier" : "significand align/add/normalise",
                                law.significand_energy(m + 1), sig_area));
  return u;
}

UnitCost CostModel::multiply(const Format& a, const Format& b) const {
  if (is_float(a) != is_float(b))
    throw CostError(fmt::format("multiply {} x {}: mixing a float and a fixed-point operand in one multiplier is not "
                                "modelled; cost a conversion (requantize) and a multiply in one format", a.spec(), b.spec()));
  if (is_float(a)) {
    // A multiplier for two float formats: the wider exponent adder; a significand multiplier of
    // (ma+1) x (mb+1) bits, costed at the geometric-mean width.
    const double e = std::max(a.exp_bits, b.exp_bits);
    const double s = std::sqrt(double(a.man_bits + 1) * double(b.man_bits + 1));
    return float_unit(EntryKind::FpMul, e, s - 1);
  }
  require(int_mul_e_, EntryKind::IntMul);
  const double x = double(a.width()) * b.width();
  UnitCost u;
  u.components.push_back(scaled("multiplier", int_mul_e_(x), int_mul_a_.empty() ? std::nullopt : std::optional(int_mul_a_(x))));
  return u;
}

UnitCost CostModel::add(const Format& a, const Format& b) const {
  if (is_float(a) != is_float(b))
    throw CostError(fmt::format("add {} + {}: mixing a float and a fixed-point operand in one adder is not modelled",
                                a.spec(), b.spec()));
  if (is_float(a)) return float_unit(EntryKind::FpAdd, std::max(a.exp_bits, b.exp_bits), std::max(a.man_bits, b.man_bits));
  require(int_add_e_, EntryKind::IntAdd);
  const double k = std::max(a.width(), b.width());
  UnitCost u;
  u.components.push_back(scaled("adder", int_add_e_(k), int_add_area_um2(k)));
  return u;
}

namespace {
// Collapses a unit's components into one named component (a MAC shows multiplier + accumulator).
Component total_as(const UnitCost& u, std::string name) { return {std::move(name), u.energy_pj(), u.area_um2()}; }
}  // namespace

UnitCost CostModel::mac(const Format& a, const Format& b, const Format& acc) const {
  UnitCost u;
  u.components.push_back(total_as(multiply(a, b), "multiplier"));
  u.components.push_back(total_as(add(acc), "accumulator"));
  return u;
}

UnitCost CostModel::xnor_popcount() const {
  UnitCost u;
  if (xnor_) {
    u.components.push_back(scaled("xnor-popcount", xnor_->energy_pj, xnor_->area_um2));
    return u;
  }
  // No published figure: an XNOR is about one adder bit slice, and a popcount tree over n inputs
  // needs about n full adders, so one more bit slice per binary MAC.
  require(int_add_e_, EntryKind::IntAdd);
  u.components.push_back(scaled("xnor gate", int_add_e_(1), int_add_area_um2(1)));
  u.components.push_back(scaled("popcount adder", int_add_e_(1), int_add_area_um2(1)));
  return u;
}

UnitCost CostModel::stochastic_round(const Format& target, int k) const {
  if (k < 1 || k > 64) throw CostError(fmt::format("bad random bit count {}: expected 1..64", k));
  require(int_add_e_, EntryKind::IntAdd);
  // Hardware SR draws k bits from an LFSR (k flip-flops and XOR taps, about a k-bit adder's gates)
  // and adds them below the kept LSB: the carry ripples into the kept significand, so the adder
  // spans the significand plus the k random bits.
  const double w = target.is_float() ? target.man_bits + 1 : target.width();
  UnitCost u;
  u.components.push_back(scaled("random bits (LFSR)", int_add_e_(k), int_add_area_um2(k)));
  u.components.push_back(scaled("rounding adder", int_add_e_(w + k), int_add_area_um2(w + k)));
  return u;
}

UnitCost CostModel::requantize(const Format& acc, const Format& out) const {
  if (acc.is_float() || out.is_float())
    throw CostError(fmt::format("requantize {} -> {}: gemmlowp requantization takes a fixed-point accumulator and "
                                "output", acc.spec(), out.spec()));
  require(int_mul_e_, EntryKind::IntMul);
  require(int_add_e_, EntryKind::IntAdd);
  const double k = acc.width();
  UnitCost u;
  // SaturatingRoundingDoublingHighMul: acc x Q31 multiplier; RoundingDivideByPOT: an add and a
  // shift; the zero point: an add; the clamp to [min, max]: two comparators (subtractors).
  u.components.push_back(scaled("Q31 multiplier", int_mul_e_(k * 32), int_mul_area_um2(k, 32)));
  u.components.push_back(scaled("rounding shift", int_add_e_(k), int_add_area_um2(k)));
  u.components.push_back(scaled("zero-point add", int_add_e_(k), int_add_area_um2(k)));
  const auto cmp_area = int_add_area_um2(k);
  u.components.push_back(scaled("clamp", 2 * int_add_e_(k), cmp_area ? std::optional(2 * *cmp_area) : std::nullopt));
  return u;
}

double CostModel::sram_read_energy_pj(double capacity_bytes, int access_bits) const {
  require(sram_bit_e_, EntryKind::SramRead);
  if (!(capacity_bytes > 0)) throw CostError(fmt::format("bad SRAM capacity {} bytes", capacity_bytes));
  if (access_bits < 1) throw CostError(fmt::format("bad access width {} bits", access_bits));
  // Per-bit energy at this capacity times the bits of one access: the bitlines and sense
  // amplifiers switched scale with the access width.
  return sram_bit_e_(capacity_bytes) * access_bits * energy_scale_;
}

double CostModel::dram_energy_pj(int access_bits) const {
  if (!(dram_pj_per_bit_ > 0)) throw CostError(fmt::format("table {} has no dram_access entry", table_.origin));
  if (access_bits < 1) throw CostError(fmt::format("bad access width {} bits", access_bits));
  // DRAM is its own process, so logic-node scaling does not apply: the table's value stays.
  return dram_pj_per_bit_ * access_bits;
}

double CostModel::register_file_energy_pj(int access_bits) const {
  require(rf_e_, EntryKind::RegisterFile);
  if (access_bits < 1) throw CostError(fmt::format("bad access width {} bits", access_bits));
  return rf_e_(access_bits) * energy_scale_;
}

std::string CostModel::describe() const {
  const auto& f = table_point_;
  const auto& t = target_point_;
  if (energy_scale_ == 1 && area_scale_ == 1 && f.node_nm == t.node_nm && f.vdd_v == t.vdd_v)
    return fmt::format("{} at {} nm, {} V (the table's own node)", table_.name, t.node_nm, t.vdd_v);
  return fmt::format("{} scaled from {} nm {} V to {} nm {} V {} (Stillmaker & Baas 2017{}): energy x{:.4g}, area x{:.4g}",
                     table_.name, f.node_nm, f.vdd_v, t.node_nm, t.vdd_v, to_string(t.device),
                     interpolated_ ? "; node interpolated between published nodes" : "", energy_scale_, area_scale_);
}

Format default_accumulator(const Format& a, const Format& b) {
  if (a.is_float() || b.is_float()) {
    // fp32 (mixed precision), or the operand itself when it is wider (fp64 accumulates in fp64).
    Format acc = Format::fp32();
    for (const Format& f : {a, b})
      if (f.is_float() && f.width() > acc.width()) acc = f;
    return acc;
  }
  const int product = a.width() + b.width();
  return product <= 32 ? Format::fixed(32, 0) : Format::fixed(std::min(product + 8, 128), 0);
}

}  // namespace bitsim::costmodel
