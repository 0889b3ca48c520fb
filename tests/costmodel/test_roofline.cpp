// Roofline figures against hand-computed cases: peak = MACs x 2 x clock, bytes from operand bits,
// attainable = min(peak, intensity x bandwidth), and which roof binds.
#include <gtest/gtest.h>

#include "bitsim/costmodel/roofline.hpp"

using namespace bitsim::costmodel;
using bitsim::arith::Format;

namespace {
GemmLayer gemm(std::uint64_t m, std::uint64_t k, std::uint64_t n, int act_bits, int weight_bits, int out_bits) {
  return {"g", m, k, n, Format::fixed(act_bits, 0), Format::fixed(weight_bits, 0), Format::fixed(out_bits, 0)};
}
}  // namespace

TEST(Roofline, PeakIsMacsTimesTwoTimesClock) {
  EXPECT_DOUBLE_EQ(peak_ops_per_s(MacArray{16, 16, 1.0}), 512e9);
  EXPECT_DOUBLE_EQ(peak_ops_per_s(MacArray{128, 128, 0.7}), 128.0 * 128 * 2 * 0.7e9);
  EXPECT_DOUBLE_EQ(peak_ops_per_s(1000, 0.25), 500e9);
  EXPECT_THROW(peak_ops_per_s(MacArray{0, 16, 1.0}), CostError);
  EXPECT_THROW(peak_ops_per_s(16, 0.0), CostError);
}

// 64x64x64 int8 GEMM: 2*64^3 = 524288 ops; 3 * 4096 bytes = 12288 bytes; 42.67 ops/byte.
TEST(Roofline, MemoryBoundCase) {
  const RooflinePoint p = roofline(gemm(64, 64, 64, 8, 8, 8), 512e9, 10);
  EXPECT_DOUBLE_EQ(p.ops, 524288);
  EXPECT_DOUBLE_EQ(p.bytes, 12288);
  EXPECT_DOUBLE_EQ(p.intensity_ops_per_byte, 524288.0 / 12288);
  EXPECT_DOUBLE_EQ(p.memory_roof_ops_per_s, 524288.0 / 12288 * 10e9);
  EXPECT_DOUBLE_EQ(p.attainable_ops_per_s, 524288.0 / 12288 * 10e9);  // 426.7 GOPS < 512
  EXPECT_EQ(p.bound, Bound::Memory);
  EXPECT_DOUBLE_EQ(ridge_intensity_ops_per_byte(512e9, 10), 51.2);
}

TEST(Roofline, ComputeBoundCase) {
  const RooflinePoint p = roofline(gemm(64, 64, 64, 8, 8, 8), 512e9, 100);
  EXPECT_DOUBLE_EQ(p.attainable_ops_per_s, 512e9);  // roof 4267 GOPS > 512
  EXPECT_EQ(p.bound, Bound::Compute);
  // Exactly on the ridge: the compute roof is named.
  const RooflinePoint q = roofline(gemm(64, 64, 64, 8, 8, 8), 524288.0 / 12288 * 10e9, 10);
  EXPECT_EQ(q.bound, Bound::Compute);
}

// Bytes moved depend on the operand widths: 4-bit operands halve the traffic and double the
// intensity; a 32-bit output weighs four times an 8-bit one.
TEST(Roofline, IntensityAtTheLayersOperandWidths) {
  EXPECT_DOUBLE_EQ(gemm_bytes(gemm(64, 64, 64, 4, 4, 4)), 6144);
  EXPECT_DOUBLE_EQ(roofline(gemm(64, 64, 64, 4, 4, 4), 1e12, 10).intensity_ops_per_byte, 524288.0 / 6144);
  EXPECT_DOUBLE_EQ(gemm_bytes(gemm(64, 64, 64, 8, 4, 32)), (4096.0 * 8 + 4096.0 * 4 + 4096.0 * 32) / 8);
  // Binary weights and activations, fp32 outputs: 1 x 1024 x 1000 fully connected layer.
  const GemmLayer fc{"fc", 1, 1024, 1000, Format::fixed(1, 0), Format::fixed(1, 0), Format::floating(8, 23)};
  EXPECT_DOUBLE_EQ(gemm_bytes(fc), (1024.0 + 1024.0 * 1000 + 1000.0 * 32) / 8);
  EXPECT_DOUBLE_EQ(gemm_ops(fc), 2.0 * 1024 * 1000);
}

// 1 mm^2 at 45 nm holds floor(1e6 / (282 + 137)) int8 MACs with int32 accumulators.
TEST(Roofline, MacsInAnAreaBudget) {
  const CostModel m = CostModel::load_default();
  EXPECT_EQ(macs_in_area(m, Format::fixed(8, 0), Format::fixed(8, 0), Format::fixed(32, 0), 1.0), 2386u);
  EXPECT_GT(macs_in_area(m, Format::fixed(4, 0), Format::fixed(4, 0), Format::fixed(16, 0), 1.0), 2386u);
  EXPECT_THROW(macs_in_area(m, Format::fixed(8, 0), Format::fixed(8, 0), Format::fixed(32, 0), 0.0), CostError);
}
