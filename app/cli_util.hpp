// Small helpers shared by the `bitsim` subcommands: mode parsing with checks, hex codes, and
// reading operands from arguments or stdin with errors that name the line.
#pragma once

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/sim/array_model.hpp"

namespace bitsim::app {

// A number from the command line, consumed whole; the error names the option and the token.
inline double parse_number(const std::string& tok, std::string_view what, std::string_view unit, bool allow_zero = false) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(tok, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != tok.size() || !std::isfinite(v) || v < 0 || (!allow_zero && v == 0))
    throw std::invalid_argument(fmt::format("bad {} {}: expected a {} number{}", what, arith::quoted(tok),
                                            allow_zero ? "non-negative" : "positive", unit.empty() ? "" : fmt::format(" ({})", unit)));
  return v;
}

// A positive integer from the command line, at most `max`; the error names the option and the token.
inline std::uint64_t parse_count(const std::string& tok, std::string_view what,
                                 std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    if (!tok.empty() && std::isdigit(static_cast<unsigned char>(tok[0]))) v = std::stoull(tok, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != tok.size() || v == 0 || v > max)
    throw std::invalid_argument(fmt::format("bad {} {}: expected a positive integer{}", what, arith::quoted(tok),
                                            v > max ? fmt::format(" up to {}", max) : ""));
  return v;
}

// --buffer-kib as bytes: a KiB count up to the array model's 1 TiB, and at least one byte unless
// allow_zero (the simulated array streams everything through a buffer of 0).
inline std::int64_t parse_buffer_kib(const std::string& tok, bool allow_zero) {
  const double kib = parse_number(tok, "--buffer-kib", "KiB", allow_zero);
  if (kib * 1024 > double(sim::ArraySpec::kMaxBufferBytes))
    throw std::invalid_argument(fmt::format("bad --buffer-kib {}: at most {} KiB (1 TiB)", arith::quoted(tok),
                                            sim::ArraySpec::kMaxBufferBytes / 1024));
  if (!allow_zero && kib * 1024 < 1)
    throw std::invalid_argument(fmt::format("bad --buffer-kib {}: at least 1/1024 KiB (one byte)", arith::quoted(tok)));
  return std::int64_t(kib * 1024);
}

inline arith::RoundSpec make_round_spec(const arith::Format& f, const std::string& rounding,
                                        const std::string& overflow, int sr_bits) {
  arith::RoundSpec s;
  s.rounding = arith::parse_rounding(rounding);
  s.overflow = overflow.empty() ? arith::default_overflow(f) : arith::parse_overflow(overflow);
  arith::check_overflow_applies(f, s.overflow);
  if (sr_bits < 1 || sr_bits > 32)
    throw arith::FormatError(fmt::format("bad --sr-bits {}: expected 1..32", sr_bits));
  s.sr_bits = sr_bits;
  return s;
}

// "0x" followed by ceil(width/4) hex digits.
inline std::string hex_code(const arith::Format& f, arith::u128 code) {
  const int digits = (f.width() + 3) / 4;
  std::string s(digits, '0');
  for (int i = digits - 1; i >= 0; --i, code >>= 4) s[i] = "0123456789abcdef"[int(code & 15)];
  return "0x" + s;
}

// Hex code with optional 0x prefix; must fit in `width` bits.
inline arith::u128 parse_hex_code(std::string_view tok, int width) {
  std::string_view t = tok;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
  if (t.empty()) throw arith::FormatError(fmt::format("bad code {}: expected hex digits", arith::quoted(tok)));
  arith::u128 v = 0;
  for (char c : t) {
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10 : -1;
    if (d < 0) throw arith::FormatError(fmt::format("bad code {}: {} is not a hex digit", arith::quoted(tok), arith::quoted(std::string_view(&c, 1))));
    if (v >> 124) throw arith::FormatError(fmt::format("bad code {}: wider than 128 bits", arith::quoted(tok)));
    v = v << 4 | arith::u128(d);
  }
  if (width < 128 && (v >> width))
    throw arith::FormatError(fmt::format("bad code {}: wider than the format's {} bits", arith::quoted(tok), width));
  return v;
}

// Calls fn(token) for each argument, or for each non-blank, non-comment stdin line when there are
// none. Errors from stdin name the line number.
template <class Fn>
void for_each_input(const std::vector<std::string>& args, Fn&& fn) {
  if (!args.empty()) {
    for (const auto& a : args) fn(a);
    return;
  }
  std::string line;
  for (long n = 1; std::getline(std::cin, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    try {
      fn(line.substr(first, last - first + 1));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("stdin line {}: {}", n, e.what()));
    }
  }
}

// Splits a line on whitespace.
inline std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace bitsim::app
