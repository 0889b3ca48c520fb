// The GEMMs of every layer and phase, computed as the configured MAC array would: operands in their
// formats, products exact, the accumulator's format, rounding and overflow on every add, and sums
// in k order (the order of sim's systolic array). Seven paths, chosen per call from the formats and
// the data so that each is exact for the case it takes:
//   Fp32          plain fp32 (OpenBLAS SGEMM): the float reference, no hardware claim;
//   ExactInt8     fixed-point operands of at most 8 bits (or a wider B whose columns each hold
//                 8-bit codes at a scale of their own: per-channel weights) into an integer
//                 accumulator that provably cannot overflow, with the bound below 2^31 product LSBs:
//                 arith's int8 GEMM on the codes (AVX-512 VNNI or AVX2), whose int32 sums wrap
//                 modulo 2^32 in any order onto the exact sum; taken first, as it is the fastest;
//   ExactFp32     fixed-point operands into an integer accumulator that provably cannot overflow
//   ExactFp64     (K max|a| max|b| below the accumulator's range): every partial sum is an integer
//                 multiple of the product LSB below 2^24 (SGEMM) or 2^53 (DGEMM), so BLAS in any
//                 order, FMA or not, computes it exactly;
//   OrderedFp32   float operands whose products fp32 holds exactly, into an fp32 accumulator with
//                 round-to-nearest-even: c = c + a * b in native fp32, k ascending, rounds each add
//                 exactly once, as arith does;
//   OrderFaithfulSimd
//                 a float accumulator that arith::FloatMac takes (signed, with subnormals: fp8, fp16,
//                 bf16, fp32; nearest-even or stochastic) on a CPU with AVX-512: MacDatapath's step
//                 vectorised across outputs, 4 x 16 outputs side by side, each adding in k order,
//                 so the bits of one MacDatapath step per add;
//   OrderFaithful everything else: codes through arith::MacDatapath one add at a time, k ascending.
// Results go to fp32 by one round-to-nearest-even of the exact accumulator value (the array's
// output conversion). The same inputs give the same bits for any thread count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::nn {

// The accumulator of the MAC array.
struct Accumulation {
  bool fp32 = true;  // the float reference: no accumulator model
  // A float format, or int<w>: a w-bit integer accumulator counting product LSBs, i.e.
  // fixed<w, fl_a + fl_b> for fixed-point operands fixed<., fl_a> and fixed<., fl_b>.
  arith::Format format = arith::Format::fixed(32, 0);
  arith::RoundSpec spec;

  // "fp32-reference" (the default), "int<w>", or a float format name; rounding and overflow as in
  // arith. Throws arith::FormatError naming the bad token.
  static Accumulation parse(std::string_view format, std::string_view rounding = "nearest-even",
                            std::string_view overflow = "", int sr_bits = 16);
  // The accumulator format for operands of formats a and b.
  arith::Format for_operands(const arith::Format& a, const arith::Format& b) const;
  std::string describe() const;
};

enum class GemmPath : std::uint8_t {
  Fp32,
  ExactInt8,
  ExactFp32,
  ExactFp64,
  OrderedFp32,
  OrderFaithfulSimd,
  OrderFaithful,
  // Not a path of gemm(): binarized inference's XNOR-popcount and integer sums (nn/popcount.hpp),
  // named in its GEMM records.
  Popcount
};
std::string_view to_string(GemmPath p);

// The paths gemm may take, one bit per GemmPath (ruy's runtime path mask): tests and benchmarks
// clear bits to run the same GEMM down a slower path, which gives the same bits. Fp32 (the float
// reference) and OrderFaithful (the fallback for everything) are always allowed. Default: all.
using GemmPathMask = std::uint32_t;
constexpr GemmPathMask path_bit(GemmPath p) { return GemmPathMask(1) << unsigned(p); }
constexpr GemmPathMask kAllGemmPaths = ~GemmPathMask(0);
void set_gemm_paths(GemmPathMask allowed);
GemmPathMask gemm_paths();

// Threads for the GEMMs and the executor (results do not depend on it). 0 = hardware threads.
void set_threads(int n);
int threads();

// C (M x N) = op(A) op(B), row-major; op(A) is M x K (A stored K x M when trans_a), op(B) is K x N
// (stored N x K when trans_b). fa, fb: formats holding every value of A, B exactly, which is
// checked (std::invalid_argument) unless the caller has them by construction (check_operands =
// false: Numerics::apply's result). Stochastic accumulation draws add k of output (m, n) at index
// k of stream sr.stream + m * N + n.
GemmPath gemm(const Accumulation& acc, const arith::Format& fa, const arith::Format& fb, bool trans_a, bool trans_b,
              std::int64_t m, std::int64_t n, std::int64_t k, const float* a, const float* b, float* c,
              const arith::SrStream& sr = {}, bool check_operands = true);

// One GEMM of gemm_together(): gemm()'s arguments.
struct GemmCall {
  Accumulation acc;
  arith::Format fa, fb;
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  arith::SrStream sr;
  bool check_operands = true;
};

// Independent GEMMs (none reads another's output) as one job: their operands are prepared in turn,
// then the work items of all of them share the thread pool, so one GEMM's few row blocks run beside
// another's many. Each result, and the path it takes, is gemm()'s for its call alone.
std::vector<GemmPath> gemm_together(std::span<const GemmCall> calls);

// The scalar reference: arith::Accumulator per output, k ascending (or fp64 sums rounded to fp32
// for the fp32 path). For tests.
void gemm_reference(const Accumulation& acc, const arith::Format& fa, const arith::Format& fb, bool trans_a,
                    bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, const float* b,
                    float* c, const arith::SrStream& sr = {});

}  // namespace bitsim::nn
