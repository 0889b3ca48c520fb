// gemmlowp's uint8 GEMM and output pipeline, computed exactly, and its JSON-line case format: the
// parser checks every key so that a bad line is refused with one message instead of a wrong result.
#include "bitsim/arith/qgemm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/requantize.hpp"

namespace bitsim::arith {
namespace {

using nlohmann::json;

constexpr std::int64_t kInt32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

// In the order parse_json reads them, which is the order their errors are found in.
constexpr std::array<std::string_view, 14> kKeys = {
    "M", "N", "K", "lhs", "rhs", "lhs_offset", "rhs_offset", "bias", "bias_shape",
    "result_fixedpoint_multiplier", "result_shift", "result_offset_after_shift", "clamp_min", "clamp_max"};

[[noreturn]] void fail(std::string_view key, std::string_view why) {
  throw FormatError(fmt::format("key {}: {}", arith::quoted(key), why));
}

// A scalar as the error quotes it; arrays and objects by their type only (they may be long).
std::string shown(const json& v) {
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return arith::quoted(v.dump());
}

// The value when it is a JSON integer (not 1.0, not 1e3) in lo..hi.
std::optional<std::int64_t> integer_in(const json& v, std::int64_t lo, std::int64_t hi) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > std::uint64_t(hi) || std::int64_t(u) < lo) return std::nullopt;
    return std::int64_t(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto s = v.get<std::int64_t>();
  if (s < lo || s > hi) return std::nullopt;
  return s;
}

std::int64_t read_integer(const json& v, std::string_view key, std::int64_t lo, std::int64_t hi) {
  const auto x = integer_in(v, lo, hi);
  if (!x) fail(key, fmt::format("expected an integer {}..{}, got {}", lo, hi, shown(v)));
  return *x;
}

template <class T>
std::vector<T> read_array(const json& v, std::string_view key) {
  constexpr std::int64_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  if (!v.is_array()) fail(key, fmt::format("expected an array of integers {}..{}, got {}", lo, hi, shown(v)));
  std::vector<T> out;
  out.reserve(v.size());
  for (const json& e : v) {
    const auto x = integer_in(e, lo, hi);
    if (!x) fail(key, fmt::format("entry {} is {}, expected an integer {}..{}", out.size(), shown(e), lo, hi));
    out.push_back(T(*x));
  }
  return out;
}

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1, column 7: "
// or "[json.exception.out_of_range.406] " prefix (the byte offset says where) and without the
// "last read: '...'" quote of the input, which can be any length and any bytes; the rest is
// nlohmann's own text, or a number it could not hold, made printable and short.
std::string json_error_reason(const json::exception& e) {
  std::string msg = e.what();
  if (const auto bracket = msg.find("] "); bracket != std::string::npos) msg.erase(0, bracket + 2);
  if (msg.starts_with("parse error"))
    if (const auto colon = msg.find(": "); colon != std::string::npos) msg.erase(0, colon + 2);
  if (const auto last = msg.find("; last read: '"); last != std::string::npos) {
    const auto expected = msg.find("'; expected ", last);
    msg.erase(last, expected == std::string::npos ? std::string::npos : expected + 1 - last);
  }
  std::replace_if(msg.begin(), msg.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
  if (msg.size() > 160) msg = msg.substr(0, 160) + "...";
  return msg;
}

json parse_object(std::string_view text) {
  // nlohmann keeps the last of two equal keys; a repeated key is refused instead, since it is
  // always a mistake in a generated line. Depth 1 is the top-level object's own keys.
  std::set<std::string> seen;
  std::string repeated;
  const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
        repeated.empty())
      repeated = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), note_keys);
  } catch (const json::parse_error& e) {
    throw FormatError(fmt::format("not JSON (at byte {}): {}", e.byte, json_error_reason(e)));
  } catch (const json::out_of_range& e) {
    // A number beyond double's range, such as 1e400.
    throw FormatError(fmt::format("not JSON: {}", json_error_reason(e)));
  }
  if (!j.is_object()) throw FormatError(fmt::format("expected one JSON object {{\"M\": ...}}, got {}", shown(j)));
  for (const auto& [key, value] : j.items())
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      throw FormatError(fmt::format("unknown key {}; the keys are {}", arith::quoted(key), fmt::join(kKeys, " ")));
  if (!repeated.empty()) fail(repeated, "given twice");
  return j;
}

// max(255, max |x + offset| over uint8 x), for offsets in -255..255.
std::int64_t depth_factor(std::int32_t offset) { return 255 + std::max<std::int64_t>(offset, 0); }

}  // namespace

QGemmCase QGemmCase::parse_json(std::string_view text) {
  const json j = parse_object(text);
  const auto get = [&](std::string_view key) -> const json& {
    const auto it = j.find(key);
    if (it == j.end()) fail(key, "missing");
    return *it;
  };
  QGemmCase c;
  c.m = read_integer(get("M"), "M", 1, kMaxMacs);
  c.n = read_integer(get("N"), "N", 1, kMaxMacs);
  c.k = read_integer(get("K"), "K", 1, kMaxMacs);
  c.lhs = read_array<std::uint8_t>(get("lhs"), "lhs");
  c.rhs = read_array<std::uint8_t>(get("rhs"), "rhs");
  c.lhs_offset = std::int32_t(read_integer(get("lhs_offset"), "lhs_offset", kInt32Min, kInt32Max));
  c.rhs_offset = std::int32_t(read_integer(get("rhs_offset"), "rhs_offset", kInt32Min, kInt32Max));
  const bool has_bias = j.contains("bias"), has_shape = j.contains("bias_shape");
  if (has_bias && !has_shape) fail("bias_shape", "missing: bias needs \"col\" (M entries) or \"row\" (N entries)");
  if (has_shape && !has_bias) fail("bias", "missing: bias_shape needs the bias");
  if (has_bias) {
    c.bias = read_array<std::int32_t>(get("bias"), "bias");
    const json& shape = get("bias_shape");
    if (shape == "col") c.bias_shape = BiasShape::Col;
    else if (shape == "row") c.bias_shape = BiasShape::Row;
    else fail("bias_shape", fmt::format("expected \"col\" (M entries, bias[m] added to row m) or \"row\" (N entries, "
                                        "bias[n] added to column n), got {}", shown(shape)));
  }
  c.result_fixedpoint_multiplier = std::int32_t(
      read_integer(get("result_fixedpoint_multiplier"), "result_fixedpoint_multiplier", kInt32Min, kInt32Max));
  c.result_shift = int(read_integer(get("result_shift"), "result_shift", kInt32Min, kInt32Max));
  c.result_offset_after_shift =
      std::int32_t(read_integer(get("result_offset_after_shift"), "result_offset_after_shift", kInt32Min, kInt32Max));
  c.clamp_min = std::int32_t(read_integer(get("clamp_min"), "clamp_min", kInt32Min, kInt32Max));
  c.clamp_max = std::int32_t(read_integer(get("clamp_max"), "clamp_max", kInt32Min, kInt32Max));
  c.validate();
  return c;
}

std::int64_t QGemmCase::max_depth() const {
  return kInt32Max / (depth_factor(lhs_offset) * depth_factor(rhs_offset));
}

void QGemmCase::validate() const {
  for (const auto& [key, dim] : std::array<std::pair<std::string_view, std::int64_t>, 3>{{{"M", m}, {"N", n}, {"K", k}}})
    if (dim < 1 || dim > kMaxMacs) fail(key, fmt::format("expected 1..{}, got {}", kMaxMacs, dim));
  if (m * n > kMaxOutputs)
    fail("N", fmt::format("M*N = {} results is above the limit of {} (2^24) per case", m * n, kMaxOutputs));
  if (m * n * k > kMaxMacs)
    fail("K", fmt::format("M*N*K = {} multiply-adds is above the limit of {} (2^30) per case", m * n * k, kMaxMacs));
  for (const auto& [key, offset] :
       std::array<std::pair<std::string_view, std::int32_t>, 2>{{{"lhs_offset", lhs_offset}, {"rhs_offset", rhs_offset}}})
    if (std::abs(std::int64_t{offset}) > kMaxOffset)
      fail(key, fmt::format("expected -{}..{} (added to every uint8 entry), got {}", kMaxOffset, kMaxOffset, offset));
  if (k > max_depth())
    fail("K", fmt::format("{} is above {}, the deepest for which no int32 sum of gemmlowp's can overflow with "
                          "lhs_offset {} and rhs_offset {} (K * {} * {} <= 2^31 - 1)",
                          k, max_depth(), lhs_offset, rhs_offset, depth_factor(lhs_offset), depth_factor(rhs_offset)));
  if (std::int64_t(lhs.size()) != m * k)
    fail("lhs", fmt::format("expected M*K = {} entries (row-major), got {}", m * k, lhs.size()));
  if (std::int64_t(rhs.size()) != k * n)
    fail("rhs", fmt::format("expected K*N = {} entries (row-major), got {}", k * n, rhs.size()));
  const std::int64_t bias_size = bias_shape == BiasShape::Col ? m : bias_shape == BiasShape::Row ? n : 0;
  if (std::int64_t(bias.size()) != bias_size)
    fail("bias", bias_shape == BiasShape::None
                     ? fmt::format("{} entries without a bias_shape", bias.size())
                     : fmt::format("expected {} = {} entries for bias_shape \"{}\", got {}",
                                   bias_shape == BiasShape::Col ? "M" : "N", bias_size,
                                   bias_shape == BiasShape::Col ? "col" : "row", bias.size()));
  if (result_shift < 0 || result_shift > 31)
    fail("result_shift", fmt::format("expected 0..31 (a right shift: RoundingDivideByPOT's exponent), got {}", result_shift));
  if (clamp_min > clamp_max) fail("clamp_min", fmt::format("{} is above clamp_max {}", clamp_min, clamp_max));
}

QGemmResult qgemm(const QGemmCase& c) {
  c.validate();
  const auto rows = std::size_t(c.m), cols = std::size_t(c.n), depth = std::size_t(c.k);
  QGemmResult r;
  r.acc_int32.resize(rows * cols);
  r.scaled_int32.resize(rows * cols);
  r.out_uint8.resize(rows * cols);
  std::vector<std::int64_t> sums(cols);
  for (std::size_t i = 0; i < rows; ++i) {
    std::fill(sums.begin(), sums.end(), 0);
    for (std::size_t p = 0; p < depth; ++p) {
      const std::int64_t a = std::int64_t{c.lhs[i * depth + p]} + c.lhs_offset;
      const std::uint8_t* b = &c.rhs[p * cols];
      for (std::size_t j = 0; j < cols; ++j) sums[j] += a * (std::int64_t{b[j]} + c.rhs_offset);
    }
    for (std::size_t j = 0; j < cols; ++j) {
      // max_depth() keeps every sum in int32.
      const auto acc = std::int32_t(sums[j]);
      const std::int32_t bias = c.bias_shape == BiasShape::Col ? c.bias[i] : c.bias_shape == BiasShape::Row ? c.bias[j] : 0;
      const std::int64_t biased = std::int64_t{acc} + bias;
      if (biased < kInt32Min || biased > kInt32Max)
        fail("bias", fmt::format("acc + bias = {} + {} = {} leaves int32 at row {}, column {} (from 0), where gemmlowp's "
                                 "int32 addition wraps or is undefined", acc, bias, biased, i, j));
      const std::int32_t shifted = rounding_divide_by_pot(
          saturating_rounding_doubling_high_mul(std::int32_t(biased), c.result_fixedpoint_multiplier), c.result_shift);
      const std::int64_t scaled = std::int64_t{shifted} + c.result_offset_after_shift;
      if (scaled < kInt32Min || scaled > kInt32Max)
        fail("result_offset_after_shift",
             fmt::format("{} + {} = {} leaves int32 at row {}, column {} (from 0), where gemmlowp's int32 addition wraps "
                         "or is undefined", shifted, c.result_offset_after_shift, scaled, i, j));
      const std::size_t at = i * cols + j;
      r.acc_int32[at] = acc;
      r.scaled_int32[at] = std::int32_t(scaled);
      r.out_uint8[at] = std::uint8_t(std::clamp(std::clamp(std::int32_t(scaled), c.clamp_min, c.clamp_max), 0, 255));
    }
  }
  return r;
}

std::string to_json(const QGemmResult& r) {
  return fmt::format(R"({{"acc_int32":[{}],"scaled_int32":[{}],"out_uint8":[{}]}})", fmt::join(r.acc_int32, ","),
                     fmt::join(r.scaled_int32, ","), fmt::join(r.out_uint8, ","));
}

}  // namespace bitsim::arith
