// The mapper's gain over the fixed loop order: cycles, DRAM bytes and energy (MACs, buffer
// accesses and DRAM through costmodel, as the cost of a run counts them) of LeNet-5's layers
// (forward, batch 64) and of a 3x3, 64-to-64-channel 56x56 convolution, on a 16x16 array with
// 64 KiB and 256 KiB buffers. Output committed in bench/results/mapper_gain.txt.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/sim/mapper.hpp"

namespace {

using namespace bitsim;

struct Layer {
  std::string name;
  bool conv;
  sim::ConvShape cv;  // when conv
  sim::GemmShape g;   // when not
};

}  // namespace

int main() {
  const arith::Format int8 = arith::Format::fixed(8, 0), int32 = arith::Format::fixed(32, 0);
  const sim::OperandBits bits{8, 8, 32};
  const costmodel::CostModel cost = costmodel::CostModel::load_default();
  const double mac_pj = cost.mac(int8, int8, int32).energy_pj();
  const std::int64_t batch = 64;
  // LeNet-5 as experiments/lenet5 builds it (conv1 padded to keep 28x28), forward at batch 64.
  const std::vector<Layer> layers = {
      {"lenet conv1", true, {batch, 1, 28, 28, 6, 5, 5, 1, 2}, {}},
      {"lenet conv2", true, {batch, 6, 14, 14, 16, 5, 5, 1, 0}, {}},
      {"lenet fc1", false, {}, {batch, 400, 120}},
      {"lenet fc2", false, {}, {batch, 120, 84}},
      {"lenet fc3", false, {}, {batch, 84, 10}},
      {"conv 3x3 64-64 56x56", true, {1, 64, 56, 56, 64, 3, 3, 1, 1}, {}},
  };
  fmt::print("16x16 array, int8 x int8 -> int32, 16 DRAM bytes per cycle; energy = MACs + buffer accesses + DRAM\n");
  fmt::print("(costmodel's default 45 nm table). best-X: the mapping the mapper picks for metric X.\n\n");
  for (const sim::Dataflow df : {sim::Dataflow::WeightStationary, sim::Dataflow::OutputStationary})
    for (const std::int64_t kib : {64, 256}) {
      sim::ArraySpec spec;
      spec.dataflow = df;
      spec.buffer_a_bytes = spec.buffer_w_bytes = spec.buffer_o_bytes = kib << 10;
      spec.dram_bytes_per_cycle = 16;
      const double sram_pj8 = cost.sram_read_energy_pj(double(kib << 10), 8);
      const double sram_pj32 = cost.sram_read_energy_pj(double(kib << 10), 32);
      const double dram_pj = cost.dram_energy_pj(8);
      const sim::Metric energy = [&](const sim::ArrayStats& s) {
        return double(s.macs) * mac_pj + double(s.buf_a.reads + s.buf_a.writes + s.buf_w.reads + s.buf_w.writes) * sram_pj8 +
               double(s.buf_o.reads + s.buf_o.writes) * sram_pj32 + double(s.dram.total()) * dram_pj;
      };
      fmt::print("== {} , {} KiB buffers\n", sim::to_string(df), kib);
      fmt::print("{:<22} {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6} | {:>11} {:>11} {:>6} | {}\n", "layer", "cycles", "best-cyc",
                 "gain", "DRAM B", "best-DRAM", "gain", "energy uJ", "best-en uJ", "gain", "best-energy mapping");
      double tot[6] = {};
      for (const Layer& l : layers) {
        auto pick = [&](const sim::Metric& m) {
          return l.conv ? sim::best_conv_mapping(spec, bits, l.cv, m) : sim::best_mapping(spec, bits, l.g, m);
        };
        const sim::MappingChoice c = pick(sim::cycles_metric), d = pick(sim::dram_bytes_metric), e = pick(energy);
        const double fc = double(c.fixed_stats.cycles), fd = double(c.fixed_stats.dram.total()), fe = energy(c.fixed_stats);
        const double bc = double(c.stats.cycles), bd = double(d.stats.dram.total()), be = e.score;
        const double v[6] = {fc, bc, fd, bd, fe, be};
        for (int i = 0; i < 6; ++i) tot[i] += v[i];
        fmt::print("{:<22} {:>10.0f} {:>10.0f} {:>5.2f}x | {:>10.0f} {:>10.0f} {:>5.2f}x | {:>11.3f} {:>11.3f} {:>5.2f}x | {} ({} tried)\n",
                   l.name, fc, bc, fc / bc, fd, bd, fd / bd, fe * 1e-6, be * 1e-6, fe / be, e.mapping.to_string(), e.candidates);
      }
      fmt::print("{:<22} {:>10.0f} {:>10.0f} {:>5.2f}x | {:>10.0f} {:>10.0f} {:>5.2f}x | {:>11.3f} {:>11.3f} {:>5.2f}x |\n\n", "all",
                 tot[0], tot[1], tot[0] / tot[1], tot[2], tot[3], tot[2] / tot[3], tot[4] * 1e-6, tot[5] * 1e-6, tot[4] / tot[5]);
    }
  return 0;
}
