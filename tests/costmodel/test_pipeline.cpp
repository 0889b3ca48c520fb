// The cost pipeline: energy per component is the closed form's counts (held equal to the SystemC
// array by the sim tests) times the published 45 nm figures typed here from Horowitz's table;
// repeats, layers and phases add up; the roofline comes from the modelled traffic and cycles.
#include <gtest/gtest.h>

#include "bitsim/costmodel/pipeline.hpp"

namespace {

using namespace bitsim;
using costmodel::GemmWork;
using costmodel::Phase;

// Horowitz ISSCC 2014, 45 nm: 8-bit multiply 0.2 pJ, 32-bit add 0.1 pJ, SRAM 32 KB 20 pJ and DRAM
// 1.3 nJ per 64-bit access.
constexpr double kMul8 = 0.2, kAdd32 = 0.1, kSram32kPerBit = 20.0 / 64, kDramPerByte = 1300.0 / 8;

costmodel::Hardware hardware(double bandwidth = 10) {
  costmodel::Hardware hw;
  hw.array.rows = hw.array.cols = 16;
  hw.array.buffer_a_bytes = hw.array.buffer_w_bytes = hw.array.buffer_o_bytes = 32768;
  hw.array.dram_bytes_per_cycle = bandwidth;
  hw.clock_ghz = 1;
  return hw;
}

GemmWork int8_gemm(int index, const char* name, Phase phase, std::int64_t m, std::int64_t k, std::int64_t n, double repeat = 1) {
  GemmWork g;
  g.layer = {index, name};
  g.phase = phase;
  g.shape = {m, k, n};
  g.a = g.w = arith::Format::parse("int<8>");
  g.acc = arith::Format::parse("int<32>");
  g.repeat = repeat;
  return g;
}

TEST(CostPipeline, EnergyIsTheArrayCountsTimesThePublishedFigures) {
  costmodel::Hardware hw = hardware();
  hw.mapping = costmodel::MappingGoal::Fixed;  // the closed form's default loop order, as below
  costmodel::Workload w;
  w.gemms.push_back(int8_gemm(0, "fc1", Phase::Forward, 64, 64, 64));
  const costmodel::RunCost c = costmodel::evaluate(hw, w);
  ASSERT_EQ(c.gemms.size(), 1u);
  const sim::ArrayStats& s = c.gemms[0].stats;
  sim::ArrayConfig cfg(hw.array);
  cfg.a = cfg.w = arith::Format::parse("int<8>");
  cfg.acc = arith::Format::parse("int<32>");
  const sim::ArrayStats want = sim::array_model(cfg, {64, 64, 64});
  EXPECT_EQ(s.cycles, want.cycles);
  EXPECT_EQ(s.dram.total(), want.dram.total());
  // Everything fits on chip: A and W cross DRAM once (4096 B each), C once at 32 bits (16384 B).
  EXPECT_EQ(s.dram.total(), 4096 + 4096 + 16384);
  const auto& e = c.gemms[0].once.energy_pj;
  const double macs = 64.0 * 64 * 64;
  EXPECT_NEAR(e.at("mac multiplier"), macs * kMul8, 1e-6);
  EXPECT_NEAR(e.at("mac accumulator"), macs * kAdd32, 1e-6);
  EXPECT_NEAR(e.at("dram"), 24576 * kDramPerByte, 1e-6);
  const double read_bits = 8.0 * double(s.buf_a.reads + s.buf_w.reads) + 32.0 * double(s.buf_o.reads);
  const double write_bits = 8.0 * double(s.buf_a.writes + s.buf_w.writes) + 32.0 * double(s.buf_o.writes);
  EXPECT_NEAR(e.at("sram read"), read_bits * kSram32kPerBit, 1e-6);
  EXPECT_NEAR(e.at("sram write"), write_bits * kSram32kPerBit, 1e-6);
  EXPECT_GT(read_bits, 0);
  EXPECT_GT(write_bits, 0);
  EXPECT_EQ(e.size(), 5u);
  ASSERT_TRUE(c.area.has_value());
  EXPECT_EQ(c.area->mac_formats, "fixed<8,0> x fixed<8,0> -> fixed<32,0>");
}

TEST(CostPipeline, RepeatsLayersAndPhasesAddUp) {
  costmodel::Workload w;
  // Out of network order on purpose: the report lists layers by index.
  w.gemms.push_back(int8_gemm(3, "fc2", Phase::BackwardData, 32, 48, 16, 5));
  w.gemms.push_back(int8_gemm(0, "conv1", Phase::Forward, 100, 25, 6, 3));
  w.gemms.push_back(int8_gemm(3, "fc2", Phase::Forward, 32, 16, 48, 2));
  costmodel::ElementWork upd;
  upd.layer = {-1, "optimizer"};
  upd.what = "update";
  upd.a = upd.b = arith::Format::fp32();
  upd.acc = arith::Format::fp32();
  upd.ops = 1000;
  upd.sram_accesses = 800;
  upd.repeat = 7;
  w.elements.push_back(upd);
  const costmodel::RunCost c = costmodel::evaluate(hardware(), w);
  ASSERT_EQ(c.by_layer.size(), 2u);
  EXPECT_EQ(c.by_layer[0].first.name, "conv1");
  EXPECT_EQ(c.by_layer[1].first.name, "fc2");
  EXPECT_DOUBLE_EQ(c.by_layer[0].second.macs, 3.0 * 100 * 25 * 6);
  EXPECT_DOUBLE_EQ(c.by_layer[1].second.macs, 5.0 * 32 * 48 * 16 + 2.0 * 32 * 16 * 48);
  EXPECT_DOUBLE_EQ(c.total.macs, 3.0 * 100 * 25 * 6 + 7.0 * 32 * 48 * 16);
  double energy = 0, macs = 0, cycles = 0;
  for (const auto& [p, l] : c.by_phase) energy += l.energy_total_pj(), macs += l.macs, cycles += l.cycles;
  EXPECT_NEAR(energy, c.total.energy_total_pj(), 1e-9 * energy);
  EXPECT_DOUBLE_EQ(macs, c.total.macs);
  EXPECT_DOUBLE_EQ(cycles, c.total.cycles);
  for (const costmodel::GemmCost& g : c.gemms) {
    EXPECT_DOUBLE_EQ(g.total.macs, g.once.macs * g.work.repeat);
    EXPECT_DOUBLE_EQ(g.total.energy_total_pj(), g.once.energy_total_pj() * g.work.repeat);
  }
  // The update: 7 x 1000 fp32 multiply-adds (3.7 + 0.9 pJ each) and 7 x 800 32-bit SRAM reads.
  const auto& up = c.by_phase;
  const auto it = std::find_if(up.begin(), up.end(), [](const auto& p) { return p.first == Phase::Update; });
  ASSERT_NE(it, up.end());
  EXPECT_NEAR(it->second.energy_pj.at("update: multiplier"), 7000 * 3.7, 1e-6);
  EXPECT_NEAR(it->second.energy_pj.at("update: accumulator"), 7000 * 0.9, 1e-6);
  EXPECT_NEAR(it->second.energy_pj.at("update: sram read"), 5600 * 32 * kSram32kPerBit, 1e-6);
  EXPECT_DOUBLE_EQ(c.seconds_at_clock, c.total.cycles / 1e9);
}

TEST(CostPipeline, RooflineComesFromTheModelledTrafficAndCycles) {
  costmodel::Workload w;
  w.gemms.push_back(int8_gemm(0, "fc", Phase::Inference, 64, 64, 64));
  const costmodel::RunCost slow = costmodel::evaluate(hardware(10), w), fast = costmodel::evaluate(hardware(100), w);
  EXPECT_DOUBLE_EQ(slow.peak_ops_per_s, 512e9);  // 16 x 16 MACs x 2 ops x 1 GHz
  const costmodel::RooflinePoint& r = slow.gemms[0].roofline;
  EXPECT_DOUBLE_EQ(r.ops, 524288);
  EXPECT_DOUBLE_EQ(r.bytes, 24576);
  EXPECT_NEAR(r.attainable_ops_per_s, 524288.0 / 24576 * 10e9, 1);  // 213.3 GOPS, memory bound
  EXPECT_EQ(r.bound, costmodel::Bound::Memory);
  EXPECT_EQ(fast.gemms[0].roofline.bound, costmodel::Bound::Compute);
  EXPECT_DOUBLE_EQ(fast.gemms[0].roofline.attainable_ops_per_s, 512e9);
  for (const costmodel::RunCost* c : {&slow, &fast}) {
    const costmodel::GemmCost& g = c->gemms[0];
    EXPECT_DOUBLE_EQ(g.achieved_ops_per_s, 524288.0 / (double(g.stats.cycles) / 1e9));
    EXPECT_LE(g.achieved_ops_per_s, g.roofline.attainable_ops_per_s * (1 + 1e-12));
  }
}

TEST(CostPipeline, BinaryGemmsAreXnorPopcount) {
  costmodel::Workload w;
  GemmWork g = int8_gemm(0, "fc", Phase::Forward, 8, 64, 8);
  g.a = g.w = arith::Format::parse("fixed<2,0>");
  g.acc = arith::Format::parse("int<16>");
  g.xnor = true;
  w.gemms.push_back(g);
  const costmodel::RunCost c = costmodel::evaluate(hardware(), w);
  const auto& e = c.gemms[0].once.energy_pj;
  EXPECT_EQ(e.count("mac multiplier"), 0u);
  EXPECT_TRUE(std::any_of(e.begin(), e.end(), [](const auto& kv) { return kv.first.starts_with("xnor"); }));
}

// LeNet-5's conv1 (28x28x1 input padded by 2, 5x5 kernel, 6 filters) for one image with 1 MiB
// buffers, everything on chip: DRAM carries the input once as the tensor it is (784 B, not the
// 14,400 B of its im2col matrix), the filters once (150 B) and the 28x28x6 outputs once at the
// accumulator's 32 bits (18,816 B).
TEST(CostPipeline, ConvolutionReadsItsInputAsATensor) {
  costmodel::Hardware hw = hardware();
  hw.array.buffer_a_bytes = hw.array.buffer_w_bytes = hw.array.buffer_o_bytes = 1 << 20;
  hw.mapping = costmodel::MappingGoal::Fixed;
  costmodel::Workload w;
  GemmWork g = int8_gemm(0, "conv1", Phase::Forward, 28 * 28, 25, 6);
  g.conv = sim::ConvShape{1, 1, 28, 28, 6, 5, 5, 1, 2};
  w.gemms.push_back(g);
  const costmodel::RunCost c = costmodel::evaluate(hw, w);
  EXPECT_EQ(c.gemms[0].stats.dram.read_a, 784);
  EXPECT_EQ(c.gemms[0].stats.dram.read_w, 150);
  EXPECT_EQ(c.gemms[0].stats.dram.write_c, 28 * 28 * 6 * 4);
  EXPECT_EQ(c.gemms[0].stats.dram.total(), 784 + 150 + 18816);
  EXPECT_EQ(c.gemms[0].stats.macs, 28 * 28 * 25 * 6);
}

// The mapper never does worse than the fixed loop order on what it minimises, and `fixed` keeps it.
TEST(CostPipeline, TheMapperNeverLosesToTheFixedOrder) {
  for (const std::int64_t buffer : {std::int64_t(4096), std::int64_t(65536)})
    for (const auto goal : {costmodel::MappingGoal::Energy, costmodel::MappingGoal::Cycles, costmodel::MappingGoal::Fixed}) {
      costmodel::Hardware hw = hardware(4);
      hw.array.buffer_a_bytes = hw.array.buffer_w_bytes = hw.array.buffer_o_bytes = buffer;
      hw.mapping = goal;
      costmodel::Workload w;
      w.gemms.push_back(int8_gemm(0, "fc", Phase::Forward, 512, 300, 200));
      GemmWork conv = int8_gemm(1, "conv", Phase::Forward, 2 * 56 * 56, 9 * 16, 16);
      conv.conv = sim::ConvShape{2, 16, 56, 56, 16, 3, 3, 1, 1};
      w.gemms.push_back(conv);
      for (const costmodel::GemmCost& g : costmodel::evaluate(hw, w).gemms) {
        if (goal == costmodel::MappingGoal::Energy) {
          EXPECT_LE(g.once.energy_total_pj(), g.fixed_energy_pj * (1 + 1e-12));
        }
        if (goal == costmodel::MappingGoal::Cycles) {
          EXPECT_LE(g.once.cycles, g.fixed_cycles);
        }
        if (goal == costmodel::MappingGoal::Fixed) {
          EXPECT_EQ(g.mapping, sim::Mapping{});
          EXPECT_EQ(g.once.cycles, g.fixed_cycles);
        }
      }
    }
  EXPECT_THROW(costmodel::parse_mapping_goal("fastest"), std::invalid_argument);
  EXPECT_EQ(costmodel::parse_mapping_goal("edp"), costmodel::MappingGoal::EnergyDelay);
}

TEST(CostPipeline, BadHardwareNamesItsKey) {
  costmodel::Hardware hw = hardware();
  hw.node_nm = 0;
  try {
    costmodel::check_hardware(hw);
    FAIL();
  } catch (const costmodel::CostSetupError& e) {
    EXPECT_EQ(e.key, "node_nm");
  }
  hw = hardware();
  hw.table = "/nonexistent/table.json";
  try {
    costmodel::check_hardware(hw);
    FAIL();
  } catch (const costmodel::CostSetupError& e) {
    EXPECT_EQ(e.key, "table");
  }
}

}  // namespace
