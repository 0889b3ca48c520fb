// Scaling laws: monotone in every width, of the documented order (the tests fit the exponent),
// derived units composed as documented, and Stillmaker & Baas node scaling from typed coefficients.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/report.hpp"

using namespace bitsim::costmodel;
using bitsim::arith::Format;

namespace {

const CostModel& model45() {
  static const CostModel m = CostModel::load_default();
  return m;
}

Format F(const char* s) { return Format::parse(s); }
Format I(int k) { return Format::fixed(k, 0); }

}  // namespace

TEST(EnergyLaw, IntegerUnitsAreMonotoneInEveryWidth) {
  const CostModel& m = model45();
  for (int k = 1; k < 64; ++k) {
    EXPECT_LT(m.add(I(k)).energy_pj(), m.add(I(k + 1)).energy_pj()) << k;
    EXPECT_LT(*m.add(I(k)).area_um2(), *m.add(I(k + 1)).area_um2()) << k;
    for (int j : {1, 4, 8, 13, 32}) {
      EXPECT_LT(m.multiply(I(k), I(j)).energy_pj(), m.multiply(I(k + 1), I(j)).energy_pj()) << k << "x" << j;
      EXPECT_LT(m.multiply(I(j), I(k)).energy_pj(), m.multiply(I(j), I(k + 1)).energy_pj()) << j << "x" << k;
      EXPECT_LT(*m.multiply(I(k), I(j)).area_um2(), *m.multiply(I(k + 1), I(j)).area_um2()) << k << "x" << j;
    }
  }
}

TEST(EnergyLaw, FloatUnitsAreMonotoneInExponentAndMantissa) {
  const CostModel& m = model45();
  for (int e = 2; e <= 11; ++e)
    for (int mm = 0; mm <= 52; ++mm) {
      using bitsim::arith::NonFinite;  // finite-only, so m = 0 is a valid format too
      const Format f = Format::floating(e, mm, NonFinite::None), wider_m = Format::floating(e, mm + 1, NonFinite::None),
                   wider_e = Format::floating(e + 1, mm, NonFinite::None);
      EXPECT_LT(m.multiply(f, f).energy_pj(), m.multiply(wider_m, wider_m).energy_pj()) << f.spec();
      EXPECT_LT(m.multiply(f, f).energy_pj(), m.multiply(wider_e, wider_e).energy_pj()) << f.spec();
      EXPECT_LT(m.add(f).energy_pj(), m.add(wider_m).energy_pj()) << f.spec();
      EXPECT_LT(m.add(f).energy_pj(), m.add(wider_e).energy_pj()) << f.spec();
      EXPECT_LT(*m.multiply(f, f).area_um2(), *m.multiply(wider_m, wider_m).area_um2()) << f.spec();
      EXPECT_LT(*m.add(f).area_um2(), *m.add(wider_e).area_um2()) << f.spec();
    }
}

TEST(EnergyLaw, MemoriesAreMonotoneInCapacityAndWidth) {
  const CostModel& m = model45();
  for (double kib = 1; kib < 8192; kib *= 1.5) EXPECT_LT(m.sram_read_energy_pj(kib * 1024, 64), m.sram_read_energy_pj(kib * 1536, 64));
  for (int b = 1; b < 256; ++b) EXPECT_LT(m.sram_read_energy_pj(32768, b), m.sram_read_energy_pj(32768, b + 1));
}

// The fit itself, on functions whose order is known: exact powers give their exponent back, and a
// sum of two powers gives an order between them.
TEST(FittedExponent, RecoversKnownPowerLaws) {
  EXPECT_NEAR(fitted_exponent([](double x) { return 3.0 * x * x; }, 1, 64), 2.0, 1e-12);
  EXPECT_NEAR(fitted_exponent([](double x) { return 0.5 * std::pow(x, 1.5664); }, 2, 1000), 1.5664, 1e-12);
  EXPECT_NEAR(fitted_exponent([](double x) { return 7.0 / x; }, 0.5, 8), -1.0, 1e-12);
  EXPECT_NEAR(fitted_exponent([](double) { return 42.0; }, 1, 100), 0.0, 1e-12);
  // x + x^2 over [1, 1000]: the local order grows from 1.5 to nearly 2; the fit lies between.
  const double mixed = fitted_exponent([](double x) { return x + x * x; }, 1, 1000);
  EXPECT_GT(mixed, 1.5);
  EXPECT_LT(mixed, 2.0);
}

// Multipliers O(k^2), adders O(k): the least-squares order over 4..64 bits, and exactly the
// documented order beyond the anchors (below 8 bits, above 32 bits).
TEST(EnergyLaw, IntegerOrdersFitTheDocumentedExponents) {
  const CostModel& m = model45();
  auto mul_e = [&](double k) { return m.int_mul_energy_pj(k, k); };
  auto mul_a = [&](double k) { return *m.int_mul_area_um2(k, k); };
  auto add_e = [&](double k) { return m.int_add_energy_pj(k); };
  auto add_a = [&](double k) { return *m.int_add_area_um2(k); };
  EXPECT_NEAR(fitted_exponent(mul_e, 4, 64), 2.0, 0.1);
  EXPECT_NEAR(fitted_exponent(mul_a, 4, 64), 2.0, 0.25);
  EXPECT_NEAR(fitted_exponent(add_e, 4, 64), 1.0, 0.2);
  EXPECT_NEAR(fitted_exponent(add_a, 4, 64), 1.0, 0.1);
  for (const std::function<double(double)>& f : {std::function<double(double)>(mul_e), std::function<double(double)>(mul_a)}) {
    EXPECT_NEAR(fitted_exponent(f, 1, 8), 2.0, 1e-9);
    EXPECT_NEAR(fitted_exponent(f, 32, 128), 2.0, 1e-9);
  }
  EXPECT_NEAR(fitted_exponent(add_e, 1, 8), 1.0, 1e-9);
  EXPECT_NEAR(fitted_exponent(add_e, 32, 128), 1.0, 1e-9);
  // Between the 8- and 32-bit anchors the multiplier is the power law through both, whose order in
  // k is log(3.1/0.2)/log(32/8) with Horowitz's values.
  EXPECT_NEAR(fitted_exponent(mul_e, 8, 32), std::log(3.1 / 0.2) / std::log(4.0), 1e-9);
  EXPECT_NEAR(m.int_mul_energy_pj(16, 16), 0.2 * std::pow(256.0 / 64, std::log(3.1 / 0.2) / std::log(1024.0 / 64)), 1e-12);
  // A rectangular multiplier costs by ka*kb.
  EXPECT_DOUBLE_EQ(m.int_mul_energy_pj(4, 16), m.int_mul_energy_pj(8, 8));
}

// Floats: exponent adder (the integer adder law at e bits) plus a significand datapath
// c (m+1)^p through the fp16 and fp32 anchors; p is fitted and tests hold the law to it.
TEST(EnergyLaw, FloatSignificandOrderIsTheFittedPowerThroughFp16AndFp32) {
  const CostModel& m = model45();
  for (bool mul : {true, false})
    for (bool area : {false, true}) {
      const auto orders = m.fp_significand_orders(mul, area);
      ASSERT_EQ(orders.size(), 1u);
      // p from Horowitz's values, typed: residual after the exponent adder at fp32 over fp16.
      const double e16 = area ? (mul ? 1640.0 : 1360.0) : (mul ? 1.1 : 0.4);
      const double e32 = area ? (mul ? 7700.0 : 4184.0) : (mul ? 3.7 : 0.9);
      const double x5 = area ? 36.0 * 5 / 8 : 0.03 * 5 / 8;  // 5-bit exponent adder: O(k) below 8 bits
      const double x8 = area ? 36.0 : 0.03;                  // 8-bit exponent adder: the 8b Add anchor
      EXPECT_NEAR(orders[0], std::log((e32 - x8) / (e16 - x5)) / std::log(24.0 / 11), 1e-12);
      auto significand = [&](double mm) {
        return area ? (mul ? *m.fp_mul_area_um2(8, mm) : *m.fp_add_area_um2(8, mm)) - 36.0
                    : (mul ? m.fp_mul_energy_pj(8, mm) : m.fp_add_energy_pj(8, mm)) - 0.03;
      };
      EXPECT_NEAR(fitted_exponent([&](double s) { return significand(s - 1); }, 2, 64), orders[0], 1e-6);
    }
  // A multiplier's significand grows faster than an adder's, and its area nearly as (m+1)^2.
  EXPECT_GT(m.fp_significand_orders(true, false)[0], m.fp_significand_orders(false, false)[0]);
  EXPECT_NEAR(m.fp_significand_orders(true, true)[0], 2.0, 0.05);
}

TEST(EnergyLaw, LowPrecisionFloatsCostLessThanFp16) {
  const CostModel& m = model45();
  const double fp16 = m.multiply(F("fp16"), F("fp16")).energy_pj();
  EXPECT_LT(m.multiply(F("bf16"), F("bf16")).energy_pj(), fp16);
  EXPECT_LT(m.multiply(F("fp8e4m3"), F("fp8e4m3")).energy_pj(), m.multiply(F("bf16"), F("bf16")).energy_pj());
  EXPECT_LT(m.multiply(F("fp8e5m2"), F("fp8e5m2")).energy_pj(), m.multiply(F("fp8e4m3"), F("fp8e4m3")).energy_pj());
  // By hand from Horowitz's values: an e-bit exponent adder (0.03 pJ at 8 bits, O(e) below) plus a
  // significand datapath s(x) = s11 (x/11)^p through fp16 (x = m+1 = 11: 1.1 pJ) and fp32 (x = 24:
  // 3.7 pJ), each less its exponent adder. These give docs/costmodel.md's fp8e4m3 0.237, fp8e5m2
  // 0.160 and bf16 0.687 pJ.
  const double s11 = 1.1 - 0.03 * 5 / 8, s24 = 3.7 - 0.03, p = std::log(s24 / s11) / std::log(24.0 / 11);
  auto by_hand = [&](int e, double x) { return 0.03 * e / 8 + s11 * std::pow(x / 11, p); };
  EXPECT_NEAR(m.multiply(F("fp8e4m3"), F("fp8e4m3")).energy_pj(), by_hand(4, 4), 1e-12);
  EXPECT_NEAR(m.multiply(F("fp8e5m2"), F("fp8e5m2")).energy_pj(), by_hand(5, 3), 1e-12);
  EXPECT_NEAR(m.multiply(F("bf16"), F("bf16")).energy_pj(), by_hand(8, 8), 1e-12);
  EXPECT_NEAR(by_hand(4, 4), 0.237, 5e-4);
  EXPECT_NEAR(by_hand(5, 3), 0.160, 5e-4);
  EXPECT_NEAR(by_hand(8, 8), 0.687, 5e-4);
  // Mixed fp8 formats: the wider exponent (5 bits) and the geometric-mean significand sqrt(4 * 3).
  EXPECT_NEAR(m.multiply(F("fp8e4m3"), F("fp8e5m2")).energy_pj(), by_hand(5, std::sqrt(4.0 * 3.0)), 1e-12);
}

TEST(EnergyLaw, MixedFloatAndFixedOperandsAreRefused) {
  EXPECT_THROW(model45().multiply(F("fp16"), F("int<8>")), CostError);
  EXPECT_THROW(model45().add(F("int<8>"), F("fp32")), CostError);
  EXPECT_THROW(model45().requantize(F("fp32"), F("int<8>")), CostError);
}

// Composite units, from the table's values by hand.
TEST(EnergyLaw, CompositeUnitsComposeAsDocumented) {
  const CostModel& m = model45();
  // MAC int8 x int8 -> int32: 0.2 + 0.1 pJ, 282 + 137 um^2.
  EXPECT_DOUBLE_EQ(m.mac(I(8), I(8), I(32)).energy_pj(), 0.3);
  EXPECT_DOUBLE_EQ(*m.mac(I(8), I(8), I(32)).area_um2(), 419);
  // fp16 x fp16 -> fp32 mixed-precision MAC: 1.1 + 0.9 pJ.
  EXPECT_NEAR(m.mac(F("fp16"), F("fp16"), F("fp32")).energy_pj(), 2.0, 1e-15);
  // Requantize int32 -> int8: 32x32 Q31 multiply 3.1 pJ, rounding shift, zero point and two
  // comparators at 32 bits, 0.1 pJ each.
  EXPECT_NEAR(m.requantize(I(32), I(8)).energy_pj(), 3.1 + 4 * 0.1, 1e-15);
  // Stochastic rounding into int<8> with 8 random bits: an 8-bit LFSR (~8-bit adder, 0.03 pJ) and a
  // 16-bit adder (0.05 pJ).
  EXPECT_NEAR(m.stochastic_round(I(8), 8).energy_pj(), 0.03 + 0.05, 1e-15);
  // XNOR-popcount: two 1-bit adder slices of the O(k) law below 8 bits: 2 x 0.03 / 8.
  EXPECT_NEAR(m.xnor_popcount().energy_pj(), 2 * 0.03 / 8, 1e-15);
  EXPECT_LT(m.xnor_popcount().energy_pj(), m.mac(I(2), I(2), I(8)).energy_pj());
  EXPECT_EQ(default_accumulator(I(8), I(8)), I(32));
  EXPECT_EQ(default_accumulator(I(32), I(16)), I(56));
  EXPECT_EQ(default_accumulator(F("fp16"), F("fp16")), F("fp32"));
  EXPECT_EQ(default_accumulator(F("fp64"), F("fp64")), F("fp64"));
}

// Stillmaker & Baas 2017 energy equations, coefficients typed from the transcription named in
// data/stillmaker_baas_2017.json: HP 45 nm (1.018, -0.3107, 0.1539), HP 7 nm (0.1776, -0.09097,
// 0.02447); area factors relative to 45 nm: 32 nm 0.46, 16 nm 0.19, 7 nm 0.059.
TEST(NodeScaling, EnergyAndAreaFollowTheTypedCoefficients) {
  const NodeScaling s = NodeScaling::load_default();
  const double e45 = 1.018 * 0.9 * 0.9 - 0.3107 * 0.9 + 0.1539;
  const double e7 = 0.1776 * 0.7 * 0.7 - 0.09097 * 0.7 + 0.02447;
  EXPECT_NEAR(s.energy_factor({45, 0.9, Device::Hp}, {7, 0.7, Device::Hp}), e7 / e45, 1e-12);
  EXPECT_DOUBLE_EQ(s.energy_factor({45, 0.9, Device::Hp}, {45, 0.9, Device::Hp}), 1.0);
  EXPECT_DOUBLE_EQ(s.area_factor(45, 32), 0.46);
  EXPECT_DOUBLE_EQ(s.area_factor(45, 16), 0.19);
  EXPECT_DOUBLE_EQ(s.area_factor(45, 7), 0.059);
  EXPECT_DOUBLE_EQ(s.area_factor(45, 45), 1.0);
  // Voltage: at one node, energy grows with the supply.
  EXPECT_LT(s.energy_factor({45, 0.9, Device::Hp}, {45, 0.8, Device::Hp}), 1.0);
  EXPECT_GT(s.energy_factor({45, 0.9, Device::Hp}, {45, 1.0, Device::Hp}), 1.0);
}

TEST(NodeScaling, SmallerNodesCostLessAndUnpublishedNodesAreInterpolated) {
  const NodeScaling s = NodeScaling::load_default();
  double prev_e = 2, prev_a = 2;
  for (double n : {45.0, 32.0, 28.0, 22.0, 20.0, 16.0, 14.0, 10.0, 7.0}) {
    const double v = s.nominal_vdd_v(n, Device::Hp);
    const double e = s.energy_factor({45, 0.9, Device::Hp}, {n, v, Device::Hp});
    const double a = s.area_factor(45, n);
    EXPECT_LT(e, prev_e) << n;
    EXPECT_LT(a, prev_a) << n;
    prev_e = e, prev_a = a;
  }
  EXPECT_FALSE(s.is_published(28));
  EXPECT_TRUE(s.is_published(16));
  // 28 nm: geometric between 32 nm (0.46) and 20 nm (0.21).
  const double w = std::log(28.0 / 20) / std::log(32.0 / 20);
  EXPECT_NEAR(s.area_factor(45, 28), std::exp(w * std::log(0.46) + (1 - w) * std::log(0.21)), 1e-12);
  EXPECT_THROW(s.area_factor(45, 5), TableError);
  EXPECT_THROW(s.energy_factor({45, 0.9, Device::Hp}, {250, 2.5, Device::Hp}), TableError);
}

TEST(NodeScaling, ModelScalesLogicButNotDram) {
  CostTarget t;
  t.node_nm = 7;
  const CostModel m7 = CostModel::load_default(t);
  const CostModel& m45 = model45();
  EXPECT_EQ(m7.target_point().vdd_v, NodeScaling::load_default().nominal_vdd_v(7, Device::Hp));
  // The 45 -> 7 nm energy factor from the typed coefficients (docs/costmodel.md: x0.0684).
  const double e45 = 1.018 * 0.9 * 0.9 - 0.3107 * 0.9 + 0.1539;
  const double e7 = 0.1776 * 0.7 * 0.7 - 0.09097 * 0.7 + 0.02447;
  EXPECT_NEAR(e7 / e45, 0.0684, 5e-5);
  EXPECT_NEAR(m7.energy_scale(), e7 / e45, 1e-12);
  EXPECT_NEAR(m7.multiply(I(8), I(8)).energy_pj(), 0.2 * e7 / e45, 1e-12);
  EXPECT_NEAR(*m7.multiply(I(8), I(8)).area_um2(), 282 * 0.059, 1e-9);
  EXPECT_NEAR(m7.sram_read_energy_pj(8192, 64), 10 * e7 / e45, 1e-12);
  EXPECT_DOUBLE_EQ(m7.dram_energy_pj(64), m45.dram_energy_pj(64));
  EXPECT_FALSE(m7.target_interpolated());
  t.node_nm = 28;
  EXPECT_TRUE(CostModel::load_default(t).target_interpolated());
  t.vdd_v = 0.8;
  EXPECT_EQ(CostModel::load_default(t).target_point().vdd_v, 0.8);
}

// Data-dependent energy. Calibration: independent uniform random operands flip each input bit with
// probability 1/2, so their measured activity is 1 and the table's figure comes back.
TEST(EnergyActivity, RandomDataReproducesTheTable) {
  std::mt19937_64 rng(12345);
  const int ops = 200000;
  std::uint64_t toggles = 0, prev = 0;
  for (int i = 0; i < ops; ++i) {
    const std::uint64_t x = rng() & 0xffff;  // two 8-bit operands
    toggles += std::uint64_t(__builtin_popcountll(x ^ prev));
    prev = x;
  }
  const double activity = activity_from_toggles(toggles, ops, 16);
  EXPECT_NEAR(activity, 1.0, 0.01);
  Counts c;
  c.ops.push_back({OpKind::Mac, I(8), I(8), I(32), 16, std::uint64_t(ops), {}, activity});
  EXPECT_NEAR(estimate_energy(model45(), c).total_energy_pj, 0.3 * ops, 0.3 * ops * 0.01);
  // Constant operands never toggle: no switching energy.
  EXPECT_EQ(activity_from_toggles(0, ops, 16), 0.0);
  EXPECT_THROW(activity_from_toggles(10, 0, 16), CostError);
}

namespace {

// A figure as docs/costmodel.md prints it: the value, and half a unit of its last printed digit.
struct Printed {
  double value, half_unit;
};
Printed printed(const std::string& s) {
  const auto dot = s.find('.');
  const int decimals = dot == std::string::npos ? 0 : int(s.size() - dot - 1);
  return {std::stod(s), 0.5 * std::pow(10.0, -decimals)};
}

}  // namespace

// docs/costmodel.md's example table (45 nm, default accumulators), as printed, against the model:
// the docs may not state a number the model does not give.
TEST(DocumentedFigures, ExampleTableAt45nm) {
  const CostModel& m = model45();
  struct Row {
    const char* format;
    const char *mul_pj, *mul_um2, *add_pj, *add_um2, *mac_pj;
  };
  const Row rows[] = {
      {"int<2>", "0.0125", "17.6", "0.0075", "9", "0.1125"},  {"int<4>", "0.05", "70.5", "0.015", "18", "0.15"},
      {"int<8>", "0.2", "282", "0.03", "36", "0.3"},           {"int<16>", "0.787", "993", "0.05", "67", "0.887"},
      {"int<32>", "3.1", "3495", "0.1", "137", "3.325"},       {"fp8e5m2", "0.160", "144", "0.115", "226", "1.06"},
      {"fp8e4m3", "0.237", "233", "0.146", "326", "1.14"},     {"bf16", "0.687", "893", "0.302", "879", "1.59"},
      {"fp16", "1.1", "1640", "0.4", "1360", "2.0"},           {"fp32", "3.7", "7700", "0.9", "4184", "4.6"},
      {"fp64", "12.7", "37247", "2.05", "13140", "14.8"},
  };
  for (const Row& r : rows) {
    const Format f = F(r.format);
    auto near = [&](double got, const char* doc, const char* what) {
      const Printed p = printed(doc);
      EXPECT_NEAR(got, p.value, p.half_unit) << r.format << " " << what;
    };
    near(m.multiply(f, f).energy_pj(), r.mul_pj, "mul pJ");
    near(*m.multiply(f, f).area_um2(), r.mul_um2, "mul um^2");
    near(m.add(f).energy_pj(), r.add_pj, "add pJ");
    near(*m.add(f).area_um2(), r.add_um2, "add um^2");
    near(m.mac(f, f, default_accumulator(f, f)).energy_pj(), r.mac_pj, "MAC pJ");
  }
  // "the multiplier's area exponent of 1.99"
  EXPECT_NEAR(m.fp_significand_orders(true, true)[0], 1.99, 0.005);
}

// docs/costmodel.md's node table: energy at each node's nominal supply and area, from 45 nm, 0.9 V.
TEST(DocumentedFigures, NodeFactors) {
  const NodeScaling s = NodeScaling::load_default();
  struct Row {
    double nm;
    const char *energy, *area;
  };
  const Row rows[] = {{45, "1", "1"},         {32, "0.654", "0.46"}, {28, "0.518", "0.368"}, {20, "0.287", "0.21"},
                      {16, "0.198", "0.19"},  {10, "0.1005", "0.1"}, {7, "0.0684", "0.059"}};
  for (const Row& r : rows) {
    const double e = s.energy_factor({45, 0.9, Device::Hp}, {r.nm, s.nominal_vdd_v(r.nm, Device::Hp), Device::Hp});
    EXPECT_NEAR(e, printed(r.energy).value, printed(r.energy).half_unit) << r.nm << " nm";
    EXPECT_NEAR(s.area_factor(45, r.nm), printed(r.area).value, printed(r.area).half_unit) << r.nm << " nm";
  }
}
