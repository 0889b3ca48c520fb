// The systolic MAC array's configuration, its tiled-GEMM schedule and the closed-form cycle and
// traffic model (plain C++, no SystemC): what the executor uses to count cycles, and what the
// SystemC array in sim/systolic.hpp is held to. The formulas are derived in docs/sim.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"

namespace bitsim::sim {

enum class Dataflow : std::uint8_t {
  WeightStationary,  // W tile held in the PEs; A streams right, partial sums flow down
  OutputStationary,  // C tile held in the PEs; A streams right, W streams down
  // A tile (K x M, as SCALE-Sim's input-stationary) held in the PEs; the rows of W^T stream right
  // and partial sums flow down: the weight-stationary schedule of C^T = W^T A^T. Mappings name
  // their loops in this GEMM's m, k and n; the M tile (tile_m) is a tile of N, the streamed rows.
  InputStationary,
};
std::string_view to_string(Dataflow d);       // "ws" / "os" / "is"
Dataflow parse_dataflow(std::string_view s);  // throws std::invalid_argument naming the token

// Array dimensions written "RxC" (e.g. "16x16"): both positive decimal integers up to kMaxArrayDim,
// nothing else around them. Throws std::invalid_argument naming `what` (the option or key) and the token.
struct ArrayDims {
  int rows = 0, cols = 0;
};
inline constexpr int kMaxArrayDim = 4096;
ArrayDims parse_array_dims(std::string_view s, std::string_view what = "array");

// C[M x N] = A[M x K] * W[K x N].
struct GemmShape {
  std::int64_t m = 1, k = 1, n = 1;
};

// A convolution lowered to GEMM by im2col: M = batch * out_h * out_w output pixels, K = in_channels *
// kernel_h * kernel_w, N = out_channels.
struct ConvShape {
  std::int64_t batch = 1, in_channels = 1, height = 1, width = 1;
  std::int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  std::int64_t stride = 1, padding = 0;
  std::int64_t out_height() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  std::int64_t out_width() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  GemmShape gemm() const;  // throws std::invalid_argument when the output would be empty
};

// The array as built: PEs, dataflow, on-chip buffers and the DRAM channel. Nothing here depends on
// the numbers a GEMM computes, so one spec serves every GEMM of a network.
struct ArraySpec {
  int rows = 16;  // R: the K extent of a tile (ws) or its M extent (os)
  int cols = 16;  // C: the N extent of a tile
  Dataflow dataflow = Dataflow::WeightStationary;
  // On-chip buffers (bytes) for A, W and the output / partial sums, and the DRAM channel.
  std::int64_t buffer_a_bytes = 256 << 10;
  std::int64_t buffer_w_bytes = 256 << 10;
  std::int64_t buffer_o_bytes = 256 << 10;
  double dram_bytes_per_cycle = 0;  // 0: unlimited (fetches take no cycles)
  // Tiles run one after another (false), or overlapped (true): the PEs hold a second weight register
  // (ws, is) that loads the next tile's weights while the current tile streams, or a second
  // accumulator register per PE (os) that drains a tile's sums while the next tile computes, and the
  // next tile's operands enter the array as soon as the hazards of docs/sim.md allow.
  bool overlap = false;
  static constexpr std::int64_t kMaxBufferBytes = std::int64_t(1) << 40;
  static constexpr double kMinDramBytesPerCycle = 1e-6;

  // Throws std::invalid_argument with one line naming the bad field.
  void validate() const;
};

// What the closed form needs of a GEMM's numerics: how many bits an element of A, W and C takes in
// the buffers and in DRAM.
struct OperandBits {
  int a = 8, w = 8, acc = 32;
  // Bits of a result as it leaves for DRAM: 0 for the accumulator's, fewer where a unit after the
  // array (a requantizer, a threshold compare) narrows each finished sum. Partial sums always
  // travel at the accumulator's width.
  int out = 0;
  int out_bits() const { return out > 0 ? out : acc; }
  static constexpr int kMaxOperandBits = 64, kMaxAccBits = 128;
  void validate() const;  // a, w in 1..64, acc in 1..128, out in 0..acc; throws std::invalid_argument
};

// The array plus the numerics of one GEMM: what the SystemC array and the reference GEMM compute with.
struct ArrayConfig : ArraySpec {
  ArrayConfig() = default;
  explicit ArrayConfig(const ArraySpec& spec) : ArraySpec(spec) {}

  arith::Format a = arith::Format::fixed(8, 0);    // activations (A)
  arith::Format w = arith::Format::fixed(8, 0);    // weights (W)
  arith::Format acc = arith::Format::fixed(32, 0); // accumulator, and the format of C
  arith::RoundSpec acc_spec;                        // rounding of every add, overflow of the accumulator
  // Stochastic accumulation: output (m, n) draws add k at index k of stream stream_base + m * N + n.
  std::uint64_t seed = 0;
  std::uint64_t stream_base = 0;

  const ArraySpec& spec() const { return *this; }
  // Bits of each finished result written to DRAM (0: the accumulator's), as OperandBits::out.
  int out_bits = 0;
  OperandBits bits() const { return {a.width(), w.width(), acc.width(), out_bits}; }
  // Throws std::invalid_argument with one line naming the bad field.
  void validate() const;
};

// The order of the tile loops, outermost first, over m-blocks, k-folds and n-folds. Output-
// stationary tiles span all of K, so only where m stands against n matters there (MNK or NMK).
enum class LoopOrder : std::uint8_t { Fixed, MNK, MKN, NMK, NKM, KMN, KNM };
std::string_view to_string(LoopOrder o);  // "fixed", "mnk", ...

// How a GEMM or convolution is cut into tiles and in which order they run. The default is the
// fixed mapping: ws runs n-folds outside k-folds with all of M per tile, os m-folds outside
// n-folds.
struct Mapping {
  LoopOrder order = LoopOrder::Fixed;
  // ws: rows of M streamed through a tile (an m-block; 0: all of M). A smaller block keeps its
  // partial sums on chip at the price of one more weight load per tile. os: must be 0 (a tile is R rows).
  std::int64_t tile_m = 0;
  std::string to_string() const;  // "fixed", "order nmk" (all of M, or os), "order nmk, M tile 64"
  bool operator==(const Mapping&) const = default;
};

// The concrete mapping `m` stands for: Fixed replaced by the dataflow's order and tile_m by the
// block size actually used (ws: at most M; os: 0). Throws std::invalid_argument naming what is
// wrong (a negative tile, a k-position order on an os array).
Mapping resolve(const Mapping& m, Dataflow d, const GemmShape& shape);

// Element counts of one on-chip buffer.
struct BufferCounts {
  std::int64_t reads = 0, writes = 0;
  bool operator==(const BufferCounts&) const = default;
};

// Bytes of n packed elements of b bits: ceil(n b / 8).
inline std::int64_t packed_bytes(std::int64_t elements, int bits) { return (elements * bits + 7) / 8; }

// DRAM bytes (elements are packed: see packed_bytes).
struct DramTraffic {
  std::int64_t read_a = 0, read_w = 0;
  std::int64_t read_psum = 0;   // ws: partial sums spilled because M x C of them exceed the O buffer
  std::int64_t write_c = 0;     // results, and spilled partial sums
  std::int64_t total() const { return read_a + read_w + read_psum + write_c; }
  bool operator==(const DramTraffic&) const = default;
};

// Bit toggles (Hamming distance between consecutive register values), summed over PEs and cycles.
struct Toggles {
  std::uint64_t mul_a = 0;    // multiplier input registers: activations
  std::uint64_t mul_w = 0;    //   weights
  std::uint64_t product = 0;  // multiplier output (the exact product code)
  std::uint64_t acc = 0;      // accumulator / partial-sum registers
  std::uint64_t total() const { return mul_a + mul_w + product + acc; }
};

struct ArrayStats {
  std::int64_t cycles = 0;          // start to the last DRAM write of C
  std::int64_t compute_cycles = 0;  // sum over tiles of their compute phases
  std::int64_t stall_cycles = 0;    // cycles - compute_cycles: waiting for DRAM (first fetch, late
                                    // operands, the last write-back)
  std::int64_t tiles = 0;
  std::int64_t macs = 0;            // M * K * N
  std::int64_t pes = 0;             // R * C
  BufferCounts buf_a, buf_w, buf_o;
  DramTraffic dram;
  Toggles toggles;                  // simulation only (data dependent); zero from the closed form

  // MACs per PE-cycle: macs / (pes * cycles).
  double utilization() const { return cycles ? double(macs) / (double(pes) * double(cycles)) : 0.0; }
};

// The closed-form model: cycles, buffer accesses and DRAM traffic of a tiled GEMM on the array.
//   ws, tile (m-block, k-fold, n-fold) of r x c PEs:  r (weight load) + Mt + r + c - 1 (skewed
//       stream of the block's Mt rows, drain)
//   os, tile (m-fold, n-fold) of r x c PEs:  K + r + c - 2 (skewed stream) + r (drain)
// Tiles run one after another, or overlapped (ArraySpec::overlap) as the hazard rules of
// docs/sim.md allow; with limited bandwidth each tile's operands are prefetched while the previous
// tile computes (one DRAM channel, requests in order). docs/sim.md derives it.
ArrayStats array_model(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape, const Mapping& mapping = {});
inline ArrayStats array_model(const ArrayConfig& cfg, const GemmShape& shape, const Mapping& mapping = {}) {
  cfg.validate();
  return array_model(cfg.spec(), cfg.bits(), shape, mapping);
}

// A convolution on the array: the cycle schedule of its im2col GEMM (shape.gemm()), but A comes
// from the input feature map as it is. The DMA fetches whole input rows (W elements of one image
// and channel, NCHW) into the A buffer, each at most once per tile and kept while the LRU buffer
// holds it; the im2col operand rows are formed between that buffer and the array. W is the filter
// tensor as a K x N matrix (k = (c, ry, sx)) and C the output (M x N, i.e. NHWC): as for a GEMM.
ArrayStats conv_model(const ArraySpec& spec, const OperandBits& bits, const ConvShape& shape, const Mapping& mapping = {});
inline ArrayStats conv_model(const ArrayConfig& cfg, const ConvShape& shape, const Mapping& mapping = {}) {
  cfg.validate();
  return conv_model(cfg.spec(), cfg.bits(), shape, mapping);
}

// Just the compute cycles (the cycles in which some tile loads, streams or drains) with no DRAM
// traffic: what array_model returns as compute_cycles and cycles when bandwidth is unlimited. A
// sum over tiles in closed form (no loop) for serialized tiles; overlapped tiles are walked (no
// buffers).
std::int64_t compute_cycles(const ArraySpec& spec, const GemmShape& shape, const Mapping& mapping = {});

}  // namespace bitsim::sim
