// FPGA view of a k-bit MAC: the FINN/FINN-R LUT cost model of a matrix-vector unit, turning a LUT
// (and optional DSP) budget into MACs per cycle, peak operations/s and on-chip weight capacity.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace bitsim::costmodel {

// LUTs = c0 + c1 * PE * (mult + addertree + acc) per matrix-vector unit (FINN-R, as coded in
// FINN's MVAU lut_estimation), with SIMD lanes per PE:
//   mult      = SIMD * (2 * ceil((W + A) / 6) - 1) * (W + A)     (0 when multipliers use DSPs)
//   addertree = (W + A) * (2 * SIMD - 1)
//   acc       = accumulator bits
// and DSPs = PE * SIMD * ceil((W + A) / dsp_operand_bits) when multipliers go to DSPs.
struct FinnLutModel {
  double c0_luts = 300;
  double c1 = 1.1;
  int dsp_operand_bits = 48;
  std::string source;
};

struct FpgaDevice {
  std::string name;
  std::uint64_t luts = 0, dsps = 0;
  double bram_mbit = 0, uram_mbit = 0;  // Mb of 2^20 bits, as in Xilinx datasheets
  std::string source;
};

struct FpgaData {
  FinnLutModel model;
  std::vector<FpgaDevice> devices;
  static FpgaData parse(std::string_view json_text, const std::string& origin);  // throws TableError
  static FpgaData load(const std::filesystem::path& path);
  static FpgaData load_default();  // data_dir()/fpga.json
  const FpgaDevice& device(std::string_view name) const;  // throws TableError listing the names
};

// LUTs of one processing element (before c1 and c0): SIMD lanes of W x A bits into acc_bits.
double finn_pe_luts(int w_bits, int a_bits, int simd, int acc_bits, bool multipliers_in_dsps);

struct FpgaBudget {
  std::uint64_t lut_pes = 0, dsp_pes = 0;  // PEs with LUT / DSP multipliers
  std::uint64_t macs_per_cycle = 0;        // (lut_pes + dsp_pes) * simd
  double luts_used = 0;
  std::uint64_t dsps_used = 0;
  double luts_per_mac = 0;  // LUT-multiplier lane, c1 included, c0 excluded
  double peak_ops_per_s = 0;
};

// Fills a LUT (and DSP) budget with one FINN matrix-vector unit of `simd` lanes per PE: DSP PEs
// first (they still need adder-tree LUTs), then LUT PEs. Binary (W = A = 1) never uses DSPs: its
// multiplier is an XNOR. Throws CostError on bad widths or a budget too small for one PE.
FpgaBudget fpga_budget(const FinnLutModel& model, std::uint64_t luts, std::uint64_t dsps, int w_bits, int a_bits,
                       int simd, int acc_bits, double clock_ghz);

// A network as FINN builds it: one matrix-vector-threshold unit per GEMM layer, all running at once
// as a pipeline. A layer of N neurons with fan-in K computes `vectors` input vectors per frame (1
// for a fully connected layer, the output pixels of a convolution); with PE neurons in parallel,
// each taking SIMD inputs a cycle, it takes vectors x ceil(N / PE) x ceil(K / SIMD) cycles a frame
// (sim::XnorLayer's neuron and synapse folds), and the slowest layer sets the frame rate.
struct MvtuLayer {
  std::string name;
  std::int64_t n = 1, k = 1, vectors = 1;
  int w_bits = 1, a_bits = 1, acc_bits = 1;
};
struct MvtuFolding {
  int pe = 1, simd = 1;            // PE divides N and SIMD divides K, as FINN requires
  std::int64_t cycles = 0;         // per frame
  double luts = 0;                 // c0 + c1 PE (PE LUTs)
};
struct FinnPipeline {
  std::vector<MvtuFolding> layers;
  std::int64_t cycles_per_frame = 0;  // the slowest layer's
  double luts = 0;
  double frames_per_s = 0;
  double ops_per_frame = 0;  // 2 x MACs
};
// FINN's folding for a LUT budget: the smallest cycles per frame T for which every layer has a
// (PE, SIMD) of at most T cycles, each layer taking the fewest LUTs that reach T, and the sum fits
// the budget. Throws CostError when even the most folded network (PE = SIMD = 1) does not fit.
FinnPipeline fold_finn_pipeline(const FinnLutModel& model, const std::vector<MvtuLayer>& layers, std::uint64_t lut_budget,
                                double clock_ghz);

// Weights of w_bits that fit in the device's block RAM and UltraRAM, ignoring packing losses.
double onchip_weight_capacity(const FpgaDevice& device, int w_bits);

}  // namespace bitsim::costmodel
