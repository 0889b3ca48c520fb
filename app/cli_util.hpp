// Small helpers shared by the `bitsim` subcommands: mode parsing with checks, hex codes, and
// reading operands from arguments or stdin with errors that name the line.
#pragma once

#include <fmt/format.h>

#include <cctype>
#include <iostream>
#include <string>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"

namespace bitsim::app {

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
  if (t.empty()) throw arith::FormatError(fmt::format("bad code '{}': expected hex digits", tok));
  arith::u128 v = 0;
  for (char c : t) {
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10 : -1;
    if (d < 0) throw arith::FormatError(fmt::format("bad code '{}': '{}' is not a hex digit", tok, c));
    if (v >> 124) throw arith::FormatError(fmt::format("bad code '{}': wider than 128 bits", tok));
    v = v << 4 | arith::u128(d);
  }
  if (width < 128 && (v >> width))
    throw arith::FormatError(fmt::format("bad code '{}': wider than the format's {} bits", tok, width));
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
