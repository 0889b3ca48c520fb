// A uint8 GEMM with gemmlowp's offsets and output pipeline (bias, fixed-point quantize-down, clamp,
// saturating cast), for checking integer kernels against; parameters use gemmlowp's own names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bitsim::arith {

// gemmlowp's OutputStageBiasAddition<VectorMap<const int32_t, VectorShape::Col|Row>>.
enum class BiasShape : std::uint8_t {
  None,  // no bias stage
  Col,   // a column vector of length M: bias[m] is added to row m
  Row,   // a row vector of length N: bias[n] is added to column n
};

// One case of GemmWithOutputPipeline<uint8_t, ..., DefaultL8R8BitDepthParams>, row-major throughout:
//   acc[m,n]    = sum_k (lhs[m,k] + lhs_offset) * (rhs[k,n] + rhs_offset)
//   scaled[m,n] = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc[m,n] + bias,
//                     result_fixedpoint_multiplier), result_shift) + result_offset_after_shift
//   out[m,n]    = clamp(clamp(scaled[m,n], clamp_min, clamp_max), 0, 255)
// (OutputStageBiasAddition, OutputStageQuantizeDownInt32ByFixedPoint, OutputStageClamp,
// OutputStageSaturatingCastToUint8). validate() states the limits.
struct QGemmCase {
  // Every case does at most kMaxMacs multiply-adds and has at most kMaxOutputs results, so that one
  // short input line cannot ask for minutes of work or gigabytes of output.
  static constexpr std::int64_t kMaxMacs = std::int64_t{1} << 30;
  static constexpr std::int64_t kMaxOutputs = std::int64_t{1} << 24;
  // Every zero point of uint8 data (offset = -zero_point) and int8 data stored as uint8 (+128).
  static constexpr std::int32_t kMaxOffset = 255;

  std::int64_t m = 1, n = 1, k = 1;
  std::vector<std::uint8_t> lhs;  // M x K
  std::vector<std::uint8_t> rhs;  // K x N
  std::int32_t lhs_offset = 0, rhs_offset = 0;
  BiasShape bias_shape = BiasShape::None;
  std::vector<std::int32_t> bias;  // M entries (Col), N (Row), none (None)
  std::int32_t result_fixedpoint_multiplier = 0;  // any int32, a Q31 fraction
  int result_shift = 0;                           // a right shift, 0..31 (RoundingDivideByPOT's exponent)
  std::int32_t result_offset_after_shift = 0;
  std::int32_t clamp_min = 0, clamp_max = 255;

  // One JSON object with the keys M, N, K, lhs, rhs, lhs_offset, rhs_offset, bias and bias_shape
  // ("col" or "row"; both or neither), result_fixedpoint_multiplier, result_shift,
  // result_offset_after_shift, clamp_min, clamp_max: every other key, a missing or repeated key, a
  // value that is not an integer where one is expected, and every case validate() refuses throw
  // FormatError naming the key and what it expects.
  static QGemmCase parse_json(std::string_view text);

  // Throws FormatError, naming the JSON key, unless: M, N, K >= 1, M*N*K <= kMaxMacs, M*N <=
  // kMaxOutputs; lhs has M*K entries and rhs K*N; |offsets| <= kMaxOffset; K <= max_depth(); the
  // bias has the length its shape says; result_shift is in 0..31; clamp_min <= clamp_max.
  void validate() const;

  // The largest K for which no int32 sum of gemmlowp's can overflow, whatever the uint8 data:
  // K * max(255, max|lhs + lhs_offset|) * max(255, max|rhs + rhs_offset|) <= 2^31 - 1, which is
  // K * (255 + max(lhs_offset, 0)) * (255 + max(rhs_offset, 0)) <= 2^31 - 1 (33025 for offsets <= 0).
  // gemmlowp (internal/unpack.h) sums the raw products lhs * rhs and then adds rhs_offset * (row sum
  // of lhs) and lhs_offset * (column sum of rhs + K * rhs_offset), all in int32, whose overflow is
  // undefined in its C++ path: the 255s bound those partial sums, the rest bounds acc itself.
  std::int64_t max_depth() const;
};

struct QGemmResult {
  std::vector<std::int32_t> acc_int32;     // M x N
  std::vector<std::int32_t> scaled_int32;  // M x N, after the bias and the quantize-down
  std::vector<std::uint8_t> out_uint8;     // M x N, after the clamp and the saturating cast
};

// The case's three results, computed exactly (int64 sums) with requantize.hpp's primitives. Throws
// FormatError when the case is invalid, or when acc + bias or the quantize-down's final addition
// of result_offset_after_shift leaves int32 (naming the entry): gemmlowp adds in int32 without
// saturation, wrapping in its SIMD paths and undefined in its C++ path, so no result is gemmlowp's.
QGemmResult qgemm(const QGemmCase& c);

// {"acc_int32":[...],"scaled_int32":[...],"out_uint8":[...]} on one line.
std::string to_json(const QGemmResult& r);

}  // namespace bitsim::arith
