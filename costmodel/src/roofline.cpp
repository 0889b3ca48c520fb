// Roofline arithmetic: peak from MAC count and clock, intensity from shapes and operand widths,
// attainable performance as the lower of the compute and memory roofs.
#include "bitsim/costmodel/roofline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bitsim::costmodel {

double peak_ops_per_s(std::uint64_t macs, double clock_ghz) {
  if (!(clock_ghz > 0)) throw CostError(fmt::format("bad clock {} GHz: must be positive", clock_ghz));
  return double(macs) * 2.0 * clock_ghz * 1e9;
}

double peak_ops_per_s(const MacArray& a) {
  if (a.rows == 0 || a.cols == 0) throw CostError(fmt::format("bad array {}x{}", a.rows, a.cols));
  return peak_ops_per_s(a.rows * a.cols, a.clock_ghz);
}

double gemm_ops(const GemmLayer& g) { return 2.0 * double(g.m) * double(g.k) * double(g.n); }

double gemm_bytes(const GemmLayer& g) {
  const double bits = double(g.m) * g.k * g.act.width() + double(g.k) * g.n * g.weight.width() +
                      double(g.m) * g.n * g.out.width();
  return bits / 8.0;
}

std::string_view to_string(Bound b) { return b == Bound::Compute ? "compute" : "memory"; }

double ridge_intensity_ops_per_byte(double peak, double bandwidth_gb_per_s) {
  if (!(bandwidth_gb_per_s > 0)) throw CostError(fmt::format("bad bandwidth {} GB/s: must be positive", bandwidth_gb_per_s));
  return peak / (bandwidth_gb_per_s * 1e9);
}

RooflinePoint roofline(const GemmLayer& g, double peak, double bandwidth_gb_per_s) {
  if (g.m == 0 || g.k == 0 || g.n == 0) throw CostError(fmt::format("bad GEMM {}x{}x{} ({})", g.m, g.k, g.n, g.name));
  if (!(bandwidth_gb_per_s > 0)) throw CostError(fmt::format("bad bandwidth {} GB/s: must be positive", bandwidth_gb_per_s));
  return roofline(g.name, gemm_ops(g), gemm_bytes(g), peak, bandwidth_gb_per_s);
}

RooflinePoint roofline(std::string name, double ops, double bytes, double peak, double bandwidth_gb_per_s) {
  if (!(peak > 0)) throw CostError(fmt::format("bad peak {} ops/s", peak));
  if (!(ops > 0) || !(bytes >= 0) || !(bandwidth_gb_per_s >= 0))
    throw CostError(fmt::format("bad roofline point {}: {} ops, {} bytes, {} GB/s", name, ops, bytes, bandwidth_gb_per_s));
  RooflinePoint p;
  p.name = std::move(name);
  p.ops = ops;
  p.bytes = bytes;
  p.intensity_ops_per_byte = bytes > 0 ? ops / bytes : 0;
  p.peak_ops_per_s = peak;
  p.memory_roof_ops_per_s = p.intensity_ops_per_byte * bandwidth_gb_per_s * 1e9;
  // Nothing crosses DRAM, or the bandwidth is unlimited (0): only the compute roof binds.
  const bool memory_roof = bytes > 0 && bandwidth_gb_per_s > 0;
  p.attainable_ops_per_s = memory_roof ? std::min(peak, p.memory_roof_ops_per_s) : peak;
  p.bound = memory_roof && p.memory_roof_ops_per_s < peak ? Bound::Memory : Bound::Compute;
  return p;
}

std::uint64_t macs_in_area(const CostModel& model, const arith::Format& a, const arith::Format& b,
                           const arith::Format& acc, double area_mm2) {
  if (!(area_mm2 > 0)) throw CostError(fmt::format("bad area budget {} mm^2: must be positive", area_mm2));
  const auto mac_um2 = model.mac(a, b, acc).area_um2();
  if (!mac_um2) throw CostError(fmt::format("table {} gives no area for a {} x {} -> {} MAC", model.table().origin,
                                            a.spec(), b.spec(), acc.spec()));
  return std::uint64_t(std::floor(area_mm2 * 1e6 / *mac_um2));
}

}  // namespace bitsim::costmodel
