// Lexing helpers shared by the spec-string parsers of formats and block formats (internal to arith).
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace bitsim::arith::spec_text {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The whole (trimmed) token as an integer, with an optional leading '+'; nothing when malformed.
template <class Int>
std::optional<Int> parse_integer(std::string_view tok) {
  tok = trim(tok);
  if (!tok.empty() && tok.front() == '+') tok.remove_prefix(1);
  Int v{};
  const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (tok.empty() || ec != std::errc{} || p != tok.data() + tok.size()) return std::nullopt;
  return v;
}

}  // namespace bitsim::arith::spec_text
