// FPGA view: FINN-R's LUT formula by hand, budgets filled with PEs, on-chip weight capacity.
#include <gtest/gtest.h>

#include "bitsim/costmodel/fpga.hpp"
#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/table.hpp"

using namespace bitsim::costmodel;

// mult = SIMD (2 ceil((W+A)/6) - 1)(W+A), addertree = (W+A)(2 SIMD - 1), plus accumulator bits.
TEST(FpgaLuts, FinnFormulaByHand) {
  EXPECT_DOUBLE_EQ(finn_pe_luts(8, 8, 1, 26, false), 1 * (2 * 3 - 1) * 16 + 16 * 1 + 26);
  EXPECT_DOUBLE_EQ(finn_pe_luts(1, 1, 64, 12, false), 64 * (2 * 1 - 1) * 2 + 2 * 127 + 12);
  EXPECT_DOUBLE_EQ(finn_pe_luts(16, 16, 8, 42, false), 8 * (2 * 6 - 1) * 32 + 32 * 15 + 42);
  EXPECT_DOUBLE_EQ(finn_pe_luts(8, 8, 4, 26, true), 16 * 7 + 26);  // multipliers in DSPs
  EXPECT_THROW(finn_pe_luts(0, 8, 4, 26, false), CostError);
}

TEST(FpgaLuts, LutsPerMacGrowWithPrecision) {
  const FinnLutModel m;
  double prev = 0;
  for (int k : {1, 2, 4, 8, 16, 32}) {
    const double per_mac = fpga_budget(m, 10000000, 0, k, k, 64, 2 * k + 10, 0.2).luts_per_mac;
    EXPECT_GT(per_mac, prev) << k;
    prev = per_mac;
  }
}

// c0 = 300 LUTs per unit, c1 = 1.1: one 64-lane binary PE costs 1.1 * 394 = 433.4 LUTs.
TEST(FpgaBudget, FillsTheLutBudget) {
  const FinnLutModel m;  // FINN's constants: c0 = 300, c1 = 1.1, 48-bit DSP operands
  const FpgaBudget b = fpga_budget(m, 4700, 0, 1, 1, 64, 12, 0.3);
  EXPECT_EQ(b.lut_pes, 10u);  // floor((4700 - 300) / 433.4)
  EXPECT_EQ(b.macs_per_cycle, 640u);
  EXPECT_DOUBLE_EQ(b.peak_ops_per_s, 640 * 2 * 0.3e9);
  EXPECT_NEAR(b.luts_per_mac, 433.4 / 64, 1e-12);
  EXPECT_THROW(fpga_budget(m, 500, 0, 1, 1, 64, 12, 0.3), CostError);
}

TEST(FpgaBudget, DspsTakeMultipliersButNotBinary) {
  const FinnLutModel m;
  // 8x8 lanes need ceil(16/48) = 1 DSP each; 4 lanes per PE, 8 DSPs -> 2 DSP PEs.
  const FpgaBudget b = fpga_budget(m, 100000, 8, 8, 8, 4, 26, 0.2);
  EXPECT_EQ(b.dsp_pes, 2u);
  EXPECT_EQ(b.dsps_used, 8u);
  EXPECT_EQ(fpga_budget(m, 100000, 1000, 1, 1, 4, 12, 0.2).dsp_pes, 0u);
}

// ZU19EG: 522,720 LUTs; block RAM 34.6 Mb + UltraRAM 36.0 Mb of 2^20 bits.
TEST(FpgaBudget, Zu19egDevice) {
  const FpgaData d = FpgaData::load_default();
  const FpgaDevice& z = d.device("zu19eg");
  EXPECT_EQ(z.luts, 522720u);
  EXPECT_DOUBLE_EQ(onchip_weight_capacity(z, 8), (34.6 + 36.0) * 1048576 / 8);
  EXPECT_DOUBLE_EQ(onchip_weight_capacity(z, 1), 32 * onchip_weight_capacity(z, 32));
  EXPECT_DOUBLE_EQ(d.model.c0_luts, 300);
  EXPECT_DOUBLE_EQ(d.model.c1, 1.1);
  EXPECT_THROW(d.device("zu9999"), TableError);
}
