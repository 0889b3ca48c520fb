// Every int8 GEMM kernel (plain, AVX2, AVX-512 VNNI) against plain int64 sums, on shapes around the
// tiles' and cache blocks' sizes, both transposes, signed and unsigned codes at their extremes.
#include <gtest/gtest.h>

#include <random>
#include <tuple>
#include <vector>

#include "bitsim/arith/gemm_int8.hpp"

using namespace bitsim::arith;

namespace bitsim::arith {
void PrintTo(Int8Kernel k, std::ostream* os) { *os << to_string(k); }
}  // namespace bitsim::arith

namespace {

// Codes of one signedness, mostly the extremes (and 0, +-1), the rest uniform.
std::vector<std::uint8_t> random_codes(std::size_t size, bool is_signed, std::mt19937& rng) {
  const std::vector<int> special = is_signed ? std::vector<int>{-128, 127, 0, 1, -1} : std::vector<int>{0, 255, 1, 254};
  std::uniform_int_distribution<int> any(is_signed ? -128 : 0, is_signed ? 127 : 255), pick(0, 9);
  std::vector<std::uint8_t> v(size);
  for (auto& x : v) {
    const int p = pick(rng);
    x = std::uint8_t(p < int(special.size()) ? special[std::size_t(p)] : any(rng));
  }
  return v;
}

std::int64_t code(std::uint8_t byte, bool is_signed) { return is_signed ? std::int64_t(std::int8_t(byte)) : std::int64_t(byte); }

// op(X)(i, j) for X stored with leading dimension ld.
std::uint8_t at(const Int8Matrix& x, std::int64_t i, std::int64_t j) { return x.trans ? x.codes[j * x.ld + i] : x.codes[i * x.ld + j]; }

std::vector<std::int64_t> reference(const Int8Matrix& a, const Int8Matrix& b, std::int64_t m, std::int64_t n, std::int64_t k) {
  std::vector<std::int64_t> c(std::size_t(m * n), 0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t kk = 0; kk < k; ++kk) c[std::size_t(i * n + j)] += code(at(a, i, kk), a.is_signed) * code(at(b, kk, j), b.is_signed);
  return c;
}

// A random op(A) (M x K) and op(B) (K x N) stored with leading dimensions `pad` beyond their widths.
struct Operands {
  std::vector<std::uint8_t> a_codes, b_codes;
  Int8Matrix a, b;
};

Operands make(std::int64_t m, std::int64_t n, std::int64_t k, bool sa, bool sb, bool ta, bool tb, std::int64_t pad,
              std::mt19937& rng) {
  Operands o;
  const std::int64_t a_rows = ta ? k : m, a_cols = (ta ? m : k) + pad, b_rows = tb ? n : k, b_cols = (tb ? k : n) + pad;
  o.a_codes = random_codes(std::size_t(a_rows * a_cols), sa, rng);
  o.b_codes = random_codes(std::size_t(b_rows * b_cols), sb, rng);
  o.a = {o.a_codes.data(), a_cols, sa, ta};
  o.b = {o.b_codes.data(), b_cols, sb, tb};
  return o;
}

class GemmInt8 : public testing::TestWithParam<Int8Kernel> {
 protected:
  void SetUp() override {
    if (!available(GetParam())) GTEST_SKIP() << "this CPU has no " << to_string(GetParam());
  }
};

}  // namespace

// Shapes: 1, around the tiles (8 x 48 VNNI, 6 x 16 AVX2), the k groups (4, 2) and cache blocks
// (512 and 256 k, 192 rows), and K up to a few thousand. C has spare columns that must stay as they were.
TEST_P(GemmInt8, EqualsInt64SumsOnEveryShapeAndLayout) {
  const std::tuple<std::int64_t, std::int64_t, std::int64_t> shapes[] = {
      {1, 1, 1},   {1, 1, 7},    {3, 1, 1},     {1, 5, 2},    {8, 16, 4},   {9, 17, 5},  {7, 47, 33}, {13, 49, 3},
      {6, 8, 2},   {5, 9, 255},  {17, 33, 257}, {24, 96, 513}, {200, 20, 64}, {2, 3, 3001}, {33, 50, 1030}};
  std::mt19937 rng(7);
  for (auto [m, n, k] : shapes)
    for (bool sa : {true, false})
      for (bool sb : {true, false})
        for (bool ta : {false, true})
          for (bool tb : {false, true}) {
            const std::int64_t pad = (m + n + k) % 3;  // leading dimensions beyond the widths, sometimes
            const Operands o = make(m, n, k, sa, sb, ta, tb, pad, rng);
            const std::vector<std::int64_t> want = reference(o.a, o.b, m, n, k);
            const std::int64_t ldc = n + 2;
            std::vector<std::int32_t> c(std::size_t(m * ldc), -7);
            gemm_int8(GetParam(), o.a, o.b, m, n, k, c.data(), ldc);
            int failures = 0;
            for (std::int64_t i = 0; i < m && failures < 5; ++i)
              for (std::int64_t j = 0; j < ldc && failures < 5; ++j) {
                const std::int64_t w = j < n ? want[std::size_t(i * n + j)] : -7;
                if (c[std::size_t(i * ldc + j)] != w) {
                  ++failures;
                  ADD_FAILURE() << to_string(GetParam()) << " M,N,K=" << m << "," << n << "," << k << " signed=" << sa
                                << sb << " trans=" << ta << tb << " C(" << i << "," << j << ") = " << c[std::size_t(i * ldc + j)]
                                << ", want " << w;
                }
              }
          }
}

// Rows of A may be computed in any blocks against one packed B: the same bits as one call.
TEST_P(GemmInt8, RowBlocksEqualOneCall) {
  std::mt19937 rng(8);
  const std::int64_t m = 70, n = 21, k = 90;
  for (bool ta : {false, true}) {
    const Operands o = make(m, n, k, true, true, ta, false, 0, rng);
    const PackedInt8B pb(GetParam(), o.b, k, n);
    std::vector<std::int32_t> whole(std::size_t(m * n)), blocks(whole.size());
    gemm_int8(o.a, m, pb, whole.data(), n);
    for (std::int64_t r0 = 0; r0 < m; r0 += 32) {
      Int8Matrix rows = o.a;
      rows.codes += ta ? r0 : r0 * o.a.ld;
      gemm_int8(rows, std::min<std::int64_t>(32, m - r0), pb, blocks.data() + r0 * n, n);
    }
    EXPECT_EQ(whole, blocks) << "trans_a=" << ta;
  }
}

// Sums beyond int32 wrap modulo 2^32 in every kernel, as vpdpbusd and vpaddd do.
TEST_P(GemmInt8, SumsWrapModulo2To32) {
  for (auto [sa, sb, value_a, value_b] : {std::tuple{false, false, 255, 255}, std::tuple{true, true, -128, -128},
                                          std::tuple{true, false, -128, 255}}) {
    const std::int64_t m = 3, n = 17, k = 140000;
    const std::vector<std::uint8_t> a(std::size_t(m * k), std::uint8_t(value_a)), b(std::size_t(k * n), std::uint8_t(value_b));
    std::vector<std::int32_t> c(std::size_t(m * n));
    gemm_int8(GetParam(), {a.data(), k, sa, false}, {b.data(), n, sb, false}, m, n, k, c.data(), n);
    const std::int32_t want = std::int32_t(std::uint32_t(std::int64_t(value_a) * value_b * k));
    for (std::int32_t x : c) EXPECT_EQ(x, want) << "codes " << value_a << " x " << value_b;
  }
}

TEST_P(GemmInt8, EmptyKGivesZeros) {
  std::vector<std::int32_t> c(6, 5);
  const std::uint8_t none = 0;
  gemm_int8(GetParam(), {&none, 0, true, false}, {&none, 3, false, false}, 2, 3, 0, c.data(), 3);
  EXPECT_EQ(c, std::vector<std::int32_t>(6, 0));
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmInt8, testing::Values(Int8Kernel::Scalar, Int8Kernel::Avx2, Int8Kernel::Avx512Vnni),
                         [](const testing::TestParamInfo<Int8Kernel>& p) {
                           return p.param == Int8Kernel::Scalar ? "Scalar" : p.param == Int8Kernel::Avx2 ? "Avx2" : "Avx512Vnni";
                         });

// The dispatch picks the widest kernel this CPU runs.
TEST(GemmInt8Dispatch, BestIsTheWidestAvailable) {
  const Int8Kernel best = best_int8_kernel();
  EXPECT_TRUE(available(best));
  const Int8Kernel want = available(Int8Kernel::Avx512Vnni) ? Int8Kernel::Avx512Vnni
                          : available(Int8Kernel::Avx2)       ? Int8Kernel::Avx2
                                                              : Int8Kernel::Scalar;
  EXPECT_EQ(best, want);
}
