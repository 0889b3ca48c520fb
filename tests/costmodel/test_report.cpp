// Reports: energy by component and by the caller's labels (layer, phase), memory counts by level,
// area of a MAC array with unknown parts listed, and JSON output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bitsim/costmodel/report.hpp"

using namespace bitsim::costmodel;
using bitsim::arith::Format;

TEST(CostReport, EnergyByComponentAndLabel) {
  const CostModel m = CostModel::load_default();
  const Format i8 = Format::fixed(8, 0), i32 = Format::fixed(32, 0);
  Counts c;
  c.ops.push_back({OpKind::Mac, i8, i8, i32, 16, 1000, {{"layer", "conv1"}, {"phase", "forward"}}, std::nullopt});
  c.ops.push_back({OpKind::Mac, i8, i8, i32, 16, 3000, {{"layer", "conv2"}, {"phase", "forward"}}, std::nullopt});
  c.ops.push_back({OpKind::StochasticRound, i8, i8, std::nullopt, 8, 100, {{"layer", "conv1"}, {"phase", "update"}}, std::nullopt});
  c.memory.push_back({MemLevel::Dram, 0, 64, 10, {{"layer", "conv1"}, {"phase", "forward"}}});
  c.memory.push_back({MemLevel::Sram, 32768, 64, 5, {{"layer", "conv2"}}});
  const EnergyReport r = estimate_energy(m, c);
  // By hand from the table: MACs 0.3 pJ, SR 0.08 pJ, DRAM 1300 pJ, 32 KB SRAM 20 pJ.
  EXPECT_NEAR(r.total_energy_pj, 4000 * 0.3 + 100 * 0.08 + 10 * 1300 + 5 * 20, 1e-9);
  EXPECT_NEAR(r.by_component_pj.at("mac multiplier"), 4000 * 0.2, 1e-9);
  EXPECT_NEAR(r.by_component_pj.at("mac accumulator"), 4000 * 0.1, 1e-9);
  EXPECT_NEAR(r.by_component_pj.at("dram"), 13000, 1e-9);
  EXPECT_NEAR(r.by_component_pj.at("sram read"), 100, 1e-9);
  EXPECT_NEAR(r.by_label_pj.at("layer").at("conv1"), 1000 * 0.3 + 100 * 0.08 + 13000, 1e-9);
  EXPECT_NEAR(r.by_label_pj.at("layer").at("conv2"), 3000 * 0.3 + 100, 1e-9);
  EXPECT_NEAR(r.by_label_pj.at("phase").at("update"), 8, 1e-9);
  const auto j = nlohmann::json::parse(r.to_json());
  EXPECT_NEAR(j.at("total_energy_pj").get<double>(), r.total_energy_pj, 1e-9);
  EXPECT_TRUE(j.at("by_label_pj").contains("phase"));
}

TEST(CostReport, DefaultAccumulatorAndBinaryOps) {
  const CostModel m = CostModel::load_default();
  Counts c;
  c.ops.push_back({OpKind::Mac, Format::fixed(8, 0), Format::fixed(8, 0), std::nullopt, 16, 10, {}, std::nullopt});
  c.ops.push_back({OpKind::XnorPopcount, Format::fixed(1, 0), Format::fixed(1, 0), std::nullopt, 16, 64, {}, std::nullopt});
  const EnergyReport r = estimate_energy(m, c);
  EXPECT_NEAR(r.total_energy_pj, 10 * 0.3 + 64 * 2 * 0.03 / 8, 1e-12);
}

TEST(CostReport, AreaOfAMacArray) {
  const CostModel m = CostModel::load_default();
  ArrayHardware hw;
  hw.rows = 16, hw.cols = 16;
  hw.srams = {{"weights", 32768}};
  const AreaReport r = estimate_area(m, hw);
  EXPECT_DOUBLE_EQ(r.total_area_um2, 256.0 * (282 + 137));
  EXPECT_DOUBLE_EQ(r.by_component_um2.at("mac array multiplier"), 256.0 * 282);
  ASSERT_EQ(r.unknown.size(), 1u);  // Horowitz publishes no SRAM area
  EXPECT_NE(r.unknown[0].find("weights"), std::string::npos);
}
