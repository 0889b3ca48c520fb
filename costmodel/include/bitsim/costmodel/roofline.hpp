// Roofline figures: peak operations/s of a MAC array or of an area budget, per-layer arithmetic
// intensity at the layer's operand widths, attainable = min(peak, intensity x bandwidth).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bitsim/arith/format.hpp"
#include "bitsim/costmodel/laws.hpp"

namespace bitsim::costmodel {

// An R x C array of MAC units clocked at clock_ghz; each MAC is 2 operations (multiply, add).
struct MacArray {
  std::uint64_t rows = 0, cols = 0;
  double clock_ghz = 0;
};

double peak_ops_per_s(const MacArray& array);  // rows * cols * 2 * clock
double peak_ops_per_s(std::uint64_t macs, double clock_ghz);

// A GEMM C[MxN] = A[MxK] W[KxN]: activations A, weights W, outputs C each in their own format.
struct GemmLayer {
  std::string name;
  std::uint64_t m = 0, k = 0, n = 0;
  arith::Format act = arith::Format::fixed(8, 0);
  arith::Format weight = arith::Format::fixed(8, 0);
  arith::Format out = arith::Format::fixed(8, 0);
};

double gemm_ops(const GemmLayer& g);  // 2 M K N
// Off-chip bytes if every operand crosses the memory interface once (perfect on-chip reuse):
// (M K act_bits + K N weight_bits + M N out_bits) / 8. Fewer bits per operand, fewer bytes.
double gemm_bytes(const GemmLayer& g);

enum class Bound { Compute, Memory };
std::string_view to_string(Bound b);

struct RooflinePoint {
  std::string name;
  double ops = 0;
  double bytes = 0;
  double intensity_ops_per_byte = 0;
  double peak_ops_per_s = 0;
  double memory_roof_ops_per_s = 0;  // intensity x bandwidth
  double attainable_ops_per_s = 0;   // min(peak, memory roof)
  Bound bound = Bound::Compute;      // which roof binds (memory on a tie goes to compute)
  double achieved_ops_per_s = 0;     // what a modelled or simulated run reaches (0: not known)
};

// bandwidth in GB/s (10^9 bytes per second). A GEMM with every operand crossing once (gemm_bytes).
RooflinePoint roofline(const GemmLayer& g, double peak_ops_per_s, double bandwidth_gb_per_s);
// A point from its operations and the DRAM bytes it moves (e.g. as a tiled array moves them);
// bandwidth 0 means unlimited (only the compute roof binds).
RooflinePoint roofline(std::string name, double ops, double bytes, double peak_ops_per_s, double bandwidth_gb_per_s);
// Intensity where the roofs meet: peak / bandwidth, in ops per byte.
double ridge_intensity_ops_per_byte(double peak_ops_per_s, double bandwidth_gb_per_s);

// How many MAC units of (a x b -> acc) fit in an area budget, from the model's areas (so at its
// target node). Throws CostError when the table gives no area for the MAC.
std::uint64_t macs_in_area(const CostModel& model, const arith::Format& a, const arith::Format& b,
                           const arith::Format& acc, double area_mm2);

}  // namespace bitsim::costmodel
