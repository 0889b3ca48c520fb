// A GEMM's operands as codes, its result, and the reference the SystemC array is held to: each
// output is arith::Accumulator summing its products in k order (plain C++, no SystemC).
#pragma once

#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/sim/array_model.hpp"

namespace bitsim::sim {

// The operands in DRAM: A (M x K) and W (K x N) as codes, row-major.
struct GemmOperands {
  GemmShape shape;
  std::vector<arith::u128> a, w;
};

// A convolution's operands in DRAM: the input feature map (batch x channels x height x width,
// row-major, i.e. NCHW) and the filters as the K x N matrix of the im2col GEMM (row k = (c, ry, sx),
// ry and sx the kernel row and column; column n = output channel).
struct ConvOperands {
  ConvShape shape;
  std::vector<arith::u128> ifmap, filter;
};

// The im2col GEMM of a convolution: A[m][k] with m = (b, oy, ox) and k = (c, ry, sx) is the input
// element under kernel offset (ry, sx) of output pixel (oy, ox), code 0 in the padding. Throws
// std::invalid_argument when the operands do not match the shape.
GemmOperands im2col(const ConvOperands& ops);

// C (M x N, row-major) as accumulator codes, the OR of the status flags of each output's adds,
// and the counters of the run.
struct GemmResult {
  std::vector<arith::u128> c;
  std::vector<unsigned> status;
  ArrayStats stats;
};

// The reference for output (m, n): arith::Accumulator over k = 0..K-1 with the array's stream.
GemmResult gemm_reference(const ArrayConfig& cfg, const GemmOperands& ops);

}  // namespace bitsim::sim
