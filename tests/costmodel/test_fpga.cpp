// FPGA view: FINN-R's LUT formula by hand, budgets filled with PEs, on-chip weight capacity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

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

// FINN's own estimate, MVAU_hls.lut_estimation() in Xilinx/finn
// src/finn/custom_op/fpgadataflow/hls/matrixvectoractivation_hls.py (commit 0064baee), evaluated by
// hand for stated layers with mem_mode "internal_decoupled", ram_style "auto" (so c2 = 0),
// noActivation = 1 (no threshold LUTs) and accDataType INT32:
//   int(300 + 1.1 P (mult + addertree + acc)), mult = Q (2 ceil((W+A)/6) - 1)(W+A) (0 with
//   resType "dsp"), addertree = (W+A)(2Q - 1), acc = min(32, ceil(alpha + log2(1 + 2^-alpha) + 1)),
//   alpha = log2(MW) + W + A - 1 - signed(input).
struct FinnLayer {
  int pe, simd, mw, w, a;
  bool dsp;
  int acc_bits;     // FINN's acc from the line above
  double finn_luts;  // FINN's expression before lut_estimation() truncates it with int()
};
const FinnLayer kFinnLayers[] = {
    // INT8 x INT8, MW 784: alpha = 9.615 + 14 = 23.615, acc 25; mult 64*5*16 = 5120, tree 16*127 = 2032;
    // 300 + 1.1*16*7177 = 126615.2
    {16, 64, 784, 8, 8, false, 25, 126615.2},
    // BINARY inputs (unsigned), 1-bit weights, MW 1024: alpha 11, acc 13; mult 64*1*2 = 128, tree 2*127 = 254;
    // 300 + 1.1*4*395 = 2038
    {4, 64, 1024, 1, 1, false, 13, 2038},
    // UINT4 inputs, INT4 weights in DSPs, MW 576: alpha = 9.17 + 7 = 16.17, acc 18; tree 8*63 = 504;
    // 300 + 1.1*8*522 = 4893.6
    {8, 32, 576, 4, 4, true, 18, 4893.6},
    // INT16 x INT16, MW 64: alpha 36, acc min(32, 38) = 32; mult 8*11*32 = 2816, tree 32*15 = 480;
    // 300 + 1.1*2*3328 = 7621.6
    {2, 8, 64, 16, 16, false, 32, 7621.6},
};

TEST(FpgaLuts, MatchesFinnLutEstimationForStatedLayers) {
  const FinnLutModel m;
  for (const FinnLayer& l : kFinnLayers) {
    const double luts = m.c0_luts + m.c1 * l.pe * finn_pe_luts(l.w, l.a, l.simd, l.acc_bits, l.dsp);
    EXPECT_NEAR(luts, l.finn_luts, 1e-6) << l.w << "x" << l.a << " SIMD " << l.simd << " PE " << l.pe;
    if (!l.dsp) {
      // A budget just above FINN's estimate holds exactly P PEs and reports the same LUTs used.
      const FpgaBudget b = fpga_budget(m, std::uint64_t(l.finn_luts) + 1, 0, l.w, l.a, l.simd, l.acc_bits, 0.2);
      EXPECT_EQ(b.lut_pes, std::uint64_t(l.pe));
      EXPECT_NEAR(b.luts_used, l.finn_luts, 1e-6);
    }
  }
  // The CLI's default accumulator, W + A + 10 bits, is FINN's bound for a 1024-term dot product of
  // signed operands: alpha = 10 + W + A - 2, acc = ceil(alpha + 1 + tiny) = W + A + 10.
  for (int k : {2, 4, 8, 16}) {
    const double alpha = 10.0 + 2 * k - 2;
    EXPECT_EQ(std::ceil(alpha + std::log2(1 + std::pow(2.0, -alpha)) + 1), 2 * k + 10) << k;
  }
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

// FINN's pipeline folding against an exhaustive search over every (PE, SIMD) of every layer: the
// cycles per frame are the least any fitting combination reaches, and the LUTs fit the budget.
TEST(FinnPipeline, FoldingReachesTheFewestCyclesAnyFittingCombinationReaches) {
  const FinnLutModel m;
  std::mt19937_64 rng(5);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<MvtuLayer> layers;
    const int count = uni(1, 3);
    for (int i = 0; i < count; ++i) {
      const int bits = uni(0, 1) ? 1 : 4;
      layers.push_back({std::string(1, char('a' + i)), uni(1, 24), uni(1, 36), uni(1, 3), bits, bits, 12});
    }
    // Every combination, independently: the fewest cycles a frame among those within the budget.
    std::vector<std::vector<std::tuple<std::int64_t, double>>> opts;
    for (const MvtuLayer& l : layers) {
      opts.emplace_back();
      for (int pe = 1; pe <= l.n; ++pe)
        for (int simd = 1; simd <= l.k; ++simd)
          if (l.n % pe == 0 && l.k % simd == 0)
            opts.back().emplace_back(l.vectors * (l.n / pe) * (l.k / simd),
                                     m.c0_luts + m.c1 * pe * (simd * (2 * std::ceil((l.w_bits + l.a_bits) / 6.0) - 1) *
                                                                  (l.w_bits + l.a_bits) +
                                                              (l.w_bits + l.a_bits) * (2 * simd - 1) + l.acc_bits));
    }
    double min_luts = 0, max_luts = 0;
    for (const auto& o : opts) {
      double lo = 1e300, hi = 0;
      for (const auto& [c, l] : o) lo = std::min(lo, l), hi = std::max(hi, l);
      min_luts += lo, max_luts += hi;
    }
    const auto budget = std::uint64_t(min_luts + (max_luts - min_luts) * uni(0, 100) / 100.0);
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    std::vector<std::size_t> at(opts.size(), 0);
    for (;;) {
      std::int64_t cycles = 0;
      double luts = 0;
      for (std::size_t i = 0; i < opts.size(); ++i)
        cycles = std::max(cycles, std::get<0>(opts[i][at[i]])), luts += std::get<1>(opts[i][at[i]]);
      if (luts <= double(budget)) best = std::min(best, cycles);
      std::size_t i = 0;
      while (i < at.size() && ++at[i] == opts[i].size()) at[i++] = 0;
      if (i == at.size()) break;
    }
    if (best == std::numeric_limits<std::int64_t>::max()) {
      EXPECT_THROW(fold_finn_pipeline(m, layers, budget, 0.3), CostError);
      continue;
    }
    const FinnPipeline p = fold_finn_pipeline(m, layers, budget, 0.3);
    EXPECT_EQ(p.cycles_per_frame, best) << "trial " << trial;
    EXPECT_LE(p.luts, double(budget));
    for (std::size_t i = 0; i < layers.size(); ++i) {
      EXPECT_EQ(layers[i].n % p.layers[i].pe, 0);
      EXPECT_EQ(layers[i].k % p.layers[i].simd, 0);
      EXPECT_LE(p.layers[i].cycles, best);
    }
    EXPECT_DOUBLE_EQ(p.frames_per_s, 0.3e9 / double(best));
    ++checked;
  }
  EXPECT_GT(checked, 40);
}
