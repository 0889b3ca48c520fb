// Fuzzes arith::QGemmCase::parse_json, the line parser of `bitsim op qgemm`, and qgemm on what it
// accepts. Rejection must be FormatError; an accepted case gives three arrays of M*N entries, an acc
// equal to gemmlowp's own decomposition of it (the raw uint8 products from the int8 GEMM kernel plus
// the offsets' terms, all modulo 2^32), outputs inside both clamps, and JSON that reads back.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/gemm_int8.hpp"
#include "bitsim/arith/qgemm.hpp"
#include "fuzz_check.hpp"

using namespace bitsim::arith;

namespace {

const bool kVerbose = std::getenv("BITSIM_FUZZ_VERBOSE") != nullptr;

// gemmlowp's unpack stage (internal/unpack.h): acc = sum lhs*rhs + rhs_offset * (row sums of lhs)
// + lhs_offset * (column sums of rhs + K * rhs_offset), in int32 arithmetic that wraps.
std::vector<std::int32_t> acc_as_gemmlowp_unpacks(const QGemmCase& c) {
  std::vector<std::int32_t> raw(std::size_t(c.m * c.n));
  gemm_int8(Int8Kernel::Scalar, {c.lhs.data(), c.k, false, false}, {c.rhs.data(), c.n, false, false}, c.m, c.n, c.k,
            raw.data(), c.n);
  std::vector<std::uint32_t> row_sums(std::size_t(c.m)), col_sums(std::size_t(c.n));
  for (std::int64_t i = 0; i < c.m; ++i)
    for (std::int64_t p = 0; p < c.k; ++p) row_sums[std::size_t(i)] += c.lhs[std::size_t(i * c.k + p)];
  for (std::int64_t p = 0; p < c.k; ++p)
    for (std::int64_t j = 0; j < c.n; ++j) col_sums[std::size_t(j)] += c.rhs[std::size_t(p * c.n + j)];
  const auto lo = std::uint32_t(c.lhs_offset), ro = std::uint32_t(c.rhs_offset), depth = std::uint32_t(c.k);
  std::vector<std::int32_t> acc(raw.size());
  for (std::int64_t i = 0; i < c.m; ++i)
    for (std::int64_t j = 0; j < c.n; ++j) {
      const auto at = std::size_t(i * c.n + j);
      acc[at] = std::int32_t(std::uint32_t(raw[at]) + row_sums[std::size_t(i)] * ro +
                             (col_sums[std::size_t(j)] + depth * ro) * lo);
    }
  return acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  QGemmCase c;
  QGemmResult r;
  try {
    c = QGemmCase::parse_json(text);
    r = qgemm(c);
  } catch (const FormatError& e) {
    if (kVerbose) std::fprintf(stderr, "FormatError: %s\n", e.what());
    return 0;
  }
  const auto entries = std::size_t(c.m * c.n);
  FUZZ_CHECK(r.acc_int32.size() == entries && r.scaled_int32.size() == entries && r.out_uint8.size() == entries,
             "%zu results for M*N = %zu", r.acc_int32.size(), entries);
  FUZZ_CHECK(r.acc_int32 == acc_as_gemmlowp_unpacks(c), "acc differs from gemmlowp's decomposition (M=%lld N=%lld K=%lld)",
             (long long)c.m, (long long)c.n, (long long)c.k);
  for (std::size_t i = 0; i < entries; ++i) {
    const std::int32_t clamped = std::clamp(r.scaled_int32[i], c.clamp_min, c.clamp_max);
    FUZZ_CHECK(r.out_uint8[i] == std::clamp(clamped, 0, 255), "entry %zu: out %d from scaled %d", i, r.out_uint8[i],
               r.scaled_int32[i]);
  }
  const auto j = nlohmann::json::parse(to_json(r));
  FUZZ_CHECK(j.size() == 3 && j.at("acc_int32").get<std::vector<std::int32_t>>() == r.acc_int32 &&
                 j.at("scaled_int32").get<std::vector<std::int32_t>>() == r.scaled_int32 &&
                 j.at("out_uint8").get<std::vector<std::uint8_t>>() == r.out_uint8,
             "to_json does not read back");
  return 0;
}
