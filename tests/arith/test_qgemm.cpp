// arith::qgemm against gemmlowp's own GemmWithOutputPipeline (Debian libgemmlowp-dev), element for
// element, on random shapes and parameters and on the saturating corners; and the JSON-line parser.
#include <gtest/gtest.h>

// GCC 12 sees a memcpy past the 64-byte buffer into which gemmlowp copies an incomplete block
// (pack.h:251); such a block has fewer than kRegisterSize rows of at most kKernelWidth bytes.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include <gemmlowp/public/gemmlowp.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/qgemm.hpp"

using namespace bitsim::arith;

namespace {

constexpr std::int32_t kMin32 = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kMax32 = std::numeric_limits<std::int32_t>::max();

template <class Out, class Pipeline>
std::vector<Out> gemmlowp_run(const QGemmCase& c, const Pipeline& pipeline) {
  static gemmlowp::GemmContext context;
  context.set_max_num_threads(1);
  using gemmlowp::MapOrder;
  const gemmlowp::MatrixMap<const std::uint8_t, MapOrder::RowMajor> lhs(c.lhs.data(), int(c.m), int(c.k));
  const gemmlowp::MatrixMap<const std::uint8_t, MapOrder::RowMajor> rhs(c.rhs.data(), int(c.k), int(c.n));
  std::vector<Out> out(std::size_t(c.m * c.n));
  gemmlowp::MatrixMap<Out, MapOrder::RowMajor> result(out.data(), int(c.m), int(c.n));
  gemmlowp::GemmWithOutputPipeline<std::uint8_t, Out, gemmlowp::DefaultL8R8BitDepthParams>(
      &context, lhs, rhs, &result, c.lhs_offset, c.rhs_offset, pipeline);
  return out;
}

// The three results from three gemmlowp runs: no output stage (the raw int32 accumulators), then
// bias and quantize-down into int32, then the whole pipeline into uint8.
template <class Stages>
QGemmResult gemmlowp_pipelines(const QGemmCase& c, const Stages& bias) {
  const gemmlowp::OutputStageQuantizeDownInt32ByFixedPoint quantize_down{
      c.result_fixedpoint_multiplier, c.result_shift, c.result_offset_after_shift};
  const gemmlowp::OutputStageClamp clamp{c.clamp_min, c.clamp_max};
  const gemmlowp::OutputStageSaturatingCastToUint8 cast;
  QGemmResult r;
  r.acc_int32 = gemmlowp_run<std::int32_t>(c, std::tuple<>());
  r.scaled_int32 = gemmlowp_run<std::int32_t>(c, std::tuple_cat(bias, std::make_tuple(quantize_down)));
  r.out_uint8 = gemmlowp_run<std::uint8_t>(c, std::tuple_cat(bias, std::make_tuple(quantize_down, clamp, cast)));
  return r;
}

QGemmResult gemmlowp_qgemm(const QGemmCase& c) {
  using gemmlowp::VectorShape;
  switch (c.bias_shape) {
    case BiasShape::Col: {
      using Bias = gemmlowp::VectorMap<const std::int32_t, VectorShape::Col>;
      return gemmlowp_pipelines(c, std::make_tuple(gemmlowp::OutputStageBiasAddition<Bias>{Bias(c.bias.data(), int(c.m))}));
    }
    case BiasShape::Row: {
      using Bias = gemmlowp::VectorMap<const std::int32_t, VectorShape::Row>;
      return gemmlowp_pipelines(c, std::make_tuple(gemmlowp::OutputStageBiasAddition<Bias>{Bias(c.bias.data(), int(c.n))}));
    }
    case BiasShape::None: break;
  }
  return gemmlowp_pipelines(c, std::tuple<>());
}

void expect_equal(const QGemmCase& c, const QGemmResult& got, const QGemmResult& want, const std::string& what) {
  const auto label = [&] {
    return ::testing::Message() << what << ": M=" << c.m << " N=" << c.n << " K=" << c.k << " offsets " << c.lhs_offset
                                << " " << c.rhs_offset << " multiplier " << c.result_fixedpoint_multiplier << " shift "
                                << c.result_shift << " offset_after_shift " << c.result_offset_after_shift << " clamp "
                                << c.clamp_min << ".." << c.clamp_max << " bias shape " << int(c.bias_shape);
  };
  ASSERT_EQ(got.acc_int32, want.acc_int32) << label();
  ASSERT_EQ(got.scaled_int32, want.scaled_int32) << label();
  ASSERT_EQ(got.out_uint8, want.out_uint8) << label();
}

// Against gemmlowp when qgemm accepts the case; returns false when it refused it (an int32 addition
// of the pipeline would overflow, where gemmlowp's result is not defined).
bool check_against_gemmlowp(const QGemmCase& c, const std::string& what) {
  QGemmResult got;
  try {
    got = qgemm(c);
  } catch (const FormatError&) {
    return false;
  }
  expect_equal(c, got, gemmlowp_qgemm(c), what);
  return true;
}

struct Random {
  std::mt19937_64 rng;
  explicit Random(std::uint64_t seed) : rng(seed) {}
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); }
  bool one_in(int n) { return uniform(0, n - 1) == 0; }
  template <class T>
  T pick(std::initializer_list<T> v) {
    return *(v.begin() + uniform(0, std::int64_t(v.size()) - 1));
  }

  // Uniform bytes, or mostly the extremes 0 and 255, or a constant.
  std::vector<std::uint8_t> bytes(std::int64_t size) {
    std::vector<std::uint8_t> v(static_cast<std::size_t>(size));
    const int kind = int(uniform(0, 5));
    const auto fill = std::uint8_t(pick({0, 255, 128}));
    for (auto& x : v)
      x = kind == 0 ? fill : kind == 1 ? std::uint8_t(pick({0, 255, 0, 255, 1, 254})) : std::uint8_t(uniform(0, 255));
    return v;
  }
  std::int32_t offset() {
    switch (uniform(0, 4)) {
      case 0: return 0;
      case 1: return std::int32_t(-uniform(0, 255));  // -zero_point of uint8 data
      case 2: return pick({-255, 255, -128, 128, -1, 1});
      default: return std::int32_t(uniform(-255, 255));
    }
  }
  std::int32_t multiplier() {
    switch (uniform(0, 3)) {
      case 0: return pick({0, 1, -1, 1 << 30, kMax32, kMin32, kMin32 + 1});
      case 1: return std::int32_t(uniform(kMin32, kMax32));
      default: return std::int32_t(uniform(std::int64_t{1} << 30, kMax32));  // QuantizeMultiplier's range
    }
  }
  int shift() { return one_in(3) ? pick({0, 31, 1, 30}) : int(uniform(0, 31)); }
  // Mostly small; or near the ends of int32, where acc + bias or the final addition may overflow.
  std::int32_t int32(bool extreme) {
    return extreme ? std::int32_t(pick<std::int64_t>({kMin32, kMax32, kMin32 / 2, kMax32 / 2}) + uniform(-1000, 1000) / 2)
                   : std::int32_t(uniform(-(1 << 20), 1 << 20));
  }

  QGemmCase case_with(std::int64_t m, std::int64_t n, std::int64_t k) {
    QGemmCase c;
    c.m = m;
    c.n = n;
    c.lhs_offset = offset();
    c.rhs_offset = offset();
    c.k = std::min(k, c.max_depth());
    c.lhs = bytes(c.m * c.k);
    c.rhs = bytes(c.k * c.n);
    c.bias_shape = pick({BiasShape::None, BiasShape::Col, BiasShape::Row});
    c.bias.resize(std::size_t(c.bias_shape == BiasShape::Col ? m : c.bias_shape == BiasShape::Row ? n : 0));
    const bool extreme_bias = one_in(8);
    for (auto& b : c.bias) b = int32(extreme_bias && one_in(2));
    c.result_fixedpoint_multiplier = multiplier();
    c.result_shift = shift();
    c.result_offset_after_shift = one_in(8) ? int32(true) : std::int32_t(uniform(-300, 300));
    switch (uniform(0, 3)) {
      case 0: c.clamp_min = 0, c.clamp_max = 255; break;
      case 1: c.clamp_min = kMin32, c.clamp_max = kMax32; break;
      default: {
        const auto a = std::int32_t(uniform(-300, 600)), b = std::int32_t(uniform(-300, 600));
        c.clamp_min = std::min(a, b), c.clamp_max = std::max(a, b);
      }
    }
    return c;
  }
  QGemmCase any_case() {
    const std::int64_t k = one_in(8) ? uniform(65, 4000) : uniform(1, 64);
    return case_with(uniform(1, 64), uniform(1, 64), k);
  }
};

}  // namespace

TEST(QGemm, RandomCasesEqualGemmlowp) {
  Random r(1);
  int checked = 0;
  constexpr int kCases = 20000;
  for (int i = 0; i < kCases; ++i) {
    checked += check_against_gemmlowp(r.any_case(), "case " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
  // The overflowing corners are rare: most cases must reach gemmlowp.
  EXPECT_GT(checked, kCases * 9 / 10);
}

// Multiplier 2^31 - 1 with shift 0 is (almost) the identity: acc + bias passes through, and the
// clamp and the cast saturate.
TEST(QGemm, SaturatingMultiplierWithShiftZeroEqualsGemmlowp) {
  Random r(2);
  int checked = 0;
  for (int i = 0; i < 1000; ++i) {
    QGemmCase c = r.any_case();
    c.result_fixedpoint_multiplier = kMax32;
    c.result_shift = 0;
    c.result_offset_after_shift = std::int32_t(r.uniform(-300, 300));
    checked += check_against_gemmlowp(c, "multiplier 2^31-1, shift 0, case " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(checked, 900);
}

// Shift 31 leaves only the sign of a rounded acc / 2^31: -1, 0 or 1, plus the offset.
TEST(QGemm, ShiftThirtyOneEqualsGemmlowp) {
  Random r(3);
  int checked = 0;
  for (int i = 0; i < 1000; ++i) {
    QGemmCase c = r.any_case();
    c.result_shift = 31;
    QGemmResult got;
    try {
      got = qgemm(c);
    } catch (const FormatError&) {
      continue;  // an overflowing offset_after_shift
    }
    for (std::size_t j = 0; j < got.scaled_int32.size(); ++j) {
      const std::int64_t q = std::int64_t{got.scaled_int32[j]} - c.result_offset_after_shift;
      ASSERT_TRUE(q >= -1 && q <= 1) << q;
    }
    checked += check_against_gemmlowp(c, "shift 31, case " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(checked, 800);
}

// SaturatingRoundingDoublingHighMul's one overflow: INT32_MIN * INT32_MIN saturates to INT32_MAX.
// acc = 0 and bias INT32_MIN make its input INT32_MIN; multiplier 0 leaves the offset alone.
TEST(QGemm, HighMulSaturationAndZeroMultiplierEqualGemmlowp) {
  for (const std::int32_t multiplier : {kMin32, 0, kMax32}) {
    QGemmCase c;
    c.m = 2, c.n = 3, c.k = 4;
    c.lhs.assign(8, 0);
    c.rhs.assign(12, 0);
    c.bias_shape = BiasShape::Row;
    c.bias = {kMin32, kMin32 + 1, kMax32};
    c.result_fixedpoint_multiplier = multiplier;
    c.result_offset_after_shift = multiplier == 0 ? 77 : 0;
    c.clamp_min = 0, c.clamp_max = 255;
    const QGemmResult got = qgemm(c);
    if (multiplier == kMin32) {
      EXPECT_EQ(got.scaled_int32[0], kMax32);
      EXPECT_EQ(got.out_uint8[0], 255);
      EXPECT_EQ(got.scaled_int32[2], kMin32 + 1);
    }
    if (multiplier == 0) {
      EXPECT_EQ(got.scaled_int32, std::vector<std::int32_t>(6, 77));
    }
    expect_equal(c, got, gemmlowp_qgemm(c), "multiplier " + std::to_string(multiplier));
  }
}

// gemmlowp's int32 partial sums (internal/unpack.h with a uint8 kernel, as on x86 and in its C++
// path): the raw products, then rhs_offset times the lhs row sum, then lhs_offset times the rhs
// column sum plus K * rhs_offset. Each must fit int32 at max_depth(), where its C++ path would
// otherwise be undefined.
std::vector<std::int64_t> gemmlowp_partial_sums(std::int64_t k, std::int64_t lhs_byte, std::int64_t rhs_byte,
                                                std::int64_t lhs_offset, std::int64_t rhs_offset) {
  const std::int64_t raw = k * lhs_byte * rhs_byte, lhs_sum = k * lhs_byte, rhs_sum = k * rhs_byte;
  const std::int64_t with_rhs_offset = raw + lhs_sum * rhs_offset;
  const std::int64_t rhs_term = rhs_sum + k * rhs_offset;
  return {raw, lhs_sum * rhs_offset, with_rhs_offset, rhs_term, rhs_term * lhs_offset,
          with_rhs_offset + rhs_term * lhs_offset};
}

// Offsets at the ends of their range and around -zero_point, K at the deepest validate() allows,
// data at the extremes: the largest |acc| any case can reach (up to 8256 * 510 * 510 = 2147385600 with
// both offsets 255) and the largest partial sums inside gemmlowp.
TEST(QGemm, ExtremeOffsetsAtTheDepthBoundEqualGemmlowp) {
  Random r(4);
  for (const std::int32_t lhs_offset : {-255, 255, 0, -128, 128})
    for (const std::int32_t rhs_offset : {-255, 255, 0, -128})
      for (const std::uint8_t lhs_byte : {0, 255})
        for (const std::uint8_t rhs_byte : {0, 255}) {
          QGemmCase c;
          c.m = 3, c.n = 5;
          c.lhs_offset = lhs_offset, c.rhs_offset = rhs_offset;
          c.k = c.max_depth();
          for (const std::int64_t sum : gemmlowp_partial_sums(c.k, lhs_byte, rhs_byte, lhs_offset, rhs_offset))
            ASSERT_TRUE(sum >= kMin32 && sum <= kMax32) << sum << " at K=" << c.k << ", offsets " << lhs_offset << " " << rhs_offset;
          c.lhs.assign(std::size_t(c.m * c.k), lhs_byte);
          c.rhs.assign(std::size_t(c.k * c.n), rhs_byte);
          c.result_fixedpoint_multiplier = r.multiplier();
          c.result_shift = r.shift();
          const QGemmResult got = qgemm(c);
          EXPECT_EQ(got.acc_int32[0], c.k * (lhs_byte + lhs_offset) * (rhs_byte + rhs_offset));
          expect_equal(c, got, gemmlowp_qgemm(c), "depth bound");
          c.k += 1;
          c.lhs.assign(std::size_t(c.m * c.k), lhs_byte);
          c.rhs.assign(std::size_t(c.k * c.n), rhs_byte);
          EXPECT_THROW(c.validate(), FormatError);
        }
}

TEST(QGemm, LargeShapesEqualGemmlowp) {
  Random r(5);
  for (const auto& [m, n, k] : {std::tuple{1, 1, 30000}, {300, 1, 500}, {1, 257, 700}, {129, 130, 131}, {250, 250, 16}}) {
    EXPECT_TRUE(check_against_gemmlowp(r.case_with(m, n, k), "large"));
    if (HasFatalFailure()) return;
  }
}

TEST(QGemm, Int32OverflowOfAPipelineAdditionIsRefused) {
  QGemmCase c;
  c.lhs = {255};
  c.rhs = {255};
  c.bias_shape = BiasShape::Col;
  c.bias = {kMax32 - 65025 + 1};  // acc = 65025
  c.result_fixedpoint_multiplier = kMax32;
  try {
    (void)qgemm(c);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'bias': acc + bias = 65025 + 2147418623 = 2147483648 leaves int32 at row 0"),
              std::string::npos) << e.what();
  }
  c.bias = {kMax32 - 65025};
  EXPECT_EQ(qgemm(c).scaled_int32[0], kMax32 - 1);  // srdhm(2^31 - 1, 2^31 - 1) = 2^31 - 2
  c.result_offset_after_shift = 2;
  try {
    (void)qgemm(c);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'result_offset_after_shift': 2147483646 + 2 = 2147483648 leaves int32"),
              std::string::npos) << e.what();
  }
}

// A case worked by hand, through the parser and the JSON writer:
//   lhs + 1 = [[1, 2], [3, 4]], rhs - 2 = [[0, 1], [2, 3]]  ->  acc = [[4, 7], [8, 15]]
//   bias (row) [10, -10] -> [[14, -3], [18, 5]]; multiplier 2^30 (one half), shift 1: x / 4 rounded
//   twice, x / 2 with ties toward +inf, then / 2 with ties away from zero (so 5 -> 3 -> 2, not 1)
//   -> [[4, -1], [5, 2]]; offset 100 -> [[104, 99], [105, 102]]; clamp 100..104 -> [[104, 100], [104, 102]].
TEST(QGemm, ParsesComputesAndWritesAWorkedCase) {
  const QGemmCase c = QGemmCase::parse_json(
      R"({"M":2,"N":2,"K":2,"lhs":[0,1,2,3],"rhs":[2,3,4,5],"lhs_offset":1,"rhs_offset":-2,"bias":[10,-10],)"
      R"("bias_shape":"row","result_fixedpoint_multiplier":1073741824,"result_shift":1,)"
      R"("result_offset_after_shift":100,"clamp_min":100,"clamp_max":104})");
  const QGemmResult r = qgemm(c);
  EXPECT_EQ(to_json(r), R"({"acc_int32":[4,7,8,15],"scaled_int32":[104,99,105,102],"out_uint8":[104,100,104,102]})");
  expect_equal(c, r, gemmlowp_qgemm(c), "worked case");
}

TEST(QGemm, BiasIsOptional) {
  const QGemmCase c = QGemmCase::parse_json(
      R"({"M":1,"N":1,"K":1,"lhs":[3],"rhs":[5],"lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":2147483647,)"
      R"("result_shift":0,"result_offset_after_shift":0,"clamp_min":0,"clamp_max":255})");
  EXPECT_EQ(c.bias_shape, BiasShape::None);
  EXPECT_EQ(to_json(qgemm(c)), R"({"acc_int32":[15],"scaled_int32":[15],"out_uint8":[15]})");
}

// Every refusal names the key and what it expects.
TEST(QGemm, ParserRefusesBadCasesNamingTheKey) {
  const std::string good_tail =
      R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":1073741824,"result_shift":0,)"
      R"("result_offset_after_shift":0,"clamp_min":0,"clamp_max":255)";
  const std::string good_head = R"({"M":1,"N":2,"K":1,"lhs":[1],"rhs":[2,3],)";
  const auto with = [&](const std::string& head, const std::string& tail) { return head + tail + "}"; };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON (at byte 1)"},
      {"{", "not JSON"},
      {R"({"M":1e400})", "not JSON: number overflow parsing '1e400'"},
      {"[1,2]", "expected one JSON object {\"M\": ...}, got an array"},
      {"7", "got '7'"},
      {with(good_head, good_tail + R"(,"bogus":1)"), "unknown key 'bogus'; the keys are M N K lhs"},
      {with(good_head, good_tail + R"(,"M":1)"), "key 'M': given twice"},
      {with(good_head, good_tail + R"(,"shift":1,"shift":2)"), "unknown key 'shift'"},
      {with(R"({"N":2,"K":1,"lhs":[1],"rhs":[2,3],)", good_tail), "key 'M': missing"},
      {with(R"({"M":1.0,"N":2,"K":1,"lhs":[1],"rhs":[2,3],)", good_tail), "key 'M': expected an integer 1..1073741824, got '1.0'"},
      {with(R"({"M":"1","N":2,"K":1,"lhs":[1],"rhs":[2,3],)", good_tail), "key 'M': expected an integer 1..1073741824, got '\"1\"'"},
      {with(R"({"M":0,"N":2,"K":1,"lhs":[1],"rhs":[2,3],)", good_tail), "key 'M': expected an integer 1..1073741824, got '0'"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":[256],"rhs":[2,3],)", good_tail), "key 'lhs': entry 0 is '256', expected an integer 0..255"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":[1],"rhs":[2,-3],)", good_tail), "key 'rhs': entry 1 is '-3', expected an integer 0..255"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":1,"rhs":[2,3],)", good_tail), "key 'lhs': expected an array of integers 0..255, got '1'"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":[1,2],"rhs":[2,3],)", good_tail), "key 'lhs': expected M*K = 1 entries (row-major), got 2"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":[1],"rhs":[2],)", good_tail), "key 'rhs': expected K*N = 2 entries (row-major), got 1"},
      {with(good_head, R"("bias":[1],"bias_shape":"row",)" + good_tail), "key 'bias': expected N = 2 entries for bias_shape \"row\", got 1"},
      {with(good_head, R"("bias":[1],"bias_shape":"column",)" + good_tail), "key 'bias_shape': expected \"col\""},
      {with(good_head, R"("bias":[1],)" + good_tail), "key 'bias_shape': missing: bias needs"},
      {with(good_head, R"("bias_shape":"col",)" + good_tail), "key 'bias': missing: bias_shape needs the bias"},
      {with(good_head, R"("bias":[2147483648],"bias_shape":"col",)" + good_tail), "key 'bias': entry 0 is '2147483648', expected an integer -2147483648..2147483647"},
      {with(R"({"M":1,"N":2,"K":1,"lhs":[1],"rhs":[2,3],"lhs_offset":256,)", good_tail.substr(15)), "key 'lhs_offset': expected -255..255 (added to every uint8 entry), got 256"},
      {R"({"M":1,"N":1,"K":33026,"lhs":[],"rhs":[],"lhs_offset":-128,)" + good_tail.substr(15) + "}", "key 'K': 33026 is above 33025, the deepest for which no int32 sum of gemmlowp's can overflow with lhs_offset -128 and rhs_offset 0 (K * 255 * 255 <= 2^31 - 1)"},
      {R"({"M":4096,"N":4097,"K":1,"lhs":[],"rhs":[],)" + good_tail + "}", "key 'N': M*N = 16781312 results is above the limit of 16777216 (2^24) per case"},
      {R"({"M":4096,"N":4096,"K":65,"lhs":[],"rhs":[],)" + good_tail + "}", "key 'K': M*N*K = 1090519040 multiply-adds is above the limit of 1073741824 (2^30) per case"},
      {with(good_head, R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":1,"result_shift":32,)"
                       R"("result_offset_after_shift":0,"clamp_min":0,"clamp_max":255)"),
       "key 'result_shift': expected 0..31 (a right shift: RoundingDivideByPOT's exponent), got 32"},
      {with(good_head, R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":1,"result_shift":-1,)"
                       R"("result_offset_after_shift":0,"clamp_min":0,"clamp_max":255)"),
       "key 'result_shift': expected 0..31"},
      {with(good_head, R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":2147483648,"result_shift":0,)"
                       R"("result_offset_after_shift":0,"clamp_min":0,"clamp_max":255)"),
       "key 'result_fixedpoint_multiplier': expected an integer -2147483648..2147483647, got '2147483648'"},
      {with(good_head, R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":1,"result_shift":0,)"
                       R"("result_offset_after_shift":0,"clamp_min":9,"clamp_max":8)"),
       "key 'clamp_min': 9 is above clamp_max 8"},
      {with(good_head, R"("lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":1,"result_shift":0,)"
                       R"("result_offset_after_shift":1e3,"clamp_min":0,"clamp_max":255)"),
       "key 'result_offset_after_shift': expected an integer"},
  };
  for (const auto& [line, want] : cases) {
    try {
      (void)QGemmCase::parse_json(line);
      ADD_FAILURE() << "accepted " << line;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << line << "\n  gave: " << e.what() << "\n  want: " << want;
    }
  }
}
