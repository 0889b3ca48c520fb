// Exact conversion between text and Exact: decimal and C99 hex-float input rounded to 128 bits plus
// sticky (so every format rounds it correctly), and exact decimal output.
#include <fmt/format.h>

#include <boost/multiprecision/cpp_int.hpp>
#include <cctype>

#include "bitsim/arith/quantize.hpp"

namespace bitsim::arith {
namespace {

using boost::multiprecision::cpp_int;

// Decimal exponents beyond this are outside every format's range by thousands of orders of
// magnitude; they become huge() or tiny() without building enormous integers.
constexpr long kMaxDecimalExponent = 20000;
constexpr long kMaxBinaryExponent = 70000;
// Far longer than any exact expansion a format's value needs (an fp64 subnormal takes about 1,100
// characters, fixed<128,16384> about 16,400), short enough that parsing stays in milliseconds.
constexpr std::size_t kMaxNumberChars = 100'000;

// Magnitudes past those bounds, as values every format rounds as they deserve: a huge number that
// overflows (inexact) and a tiny one that underflows, rather than an exact infinity or zero.
Exact huge(bool neg) { return {Exact::Class::Finite, neg, u128(1) << 127, int(kMaxBinaryExponent), true}; }
Exact tiny(bool neg) { return {Exact::Class::Finite, neg, 0, -int(kMaxBinaryExponent), true}; }

[[noreturn]] void bad(std::string_view text, std::string_view why) {
  throw FormatError(fmt::format("bad number {}: {}", quoted(text), why));
}

int bit_length(const cpp_int& v) { return v == 0 ? 0 : int(boost::multiprecision::msb(v)) + 1; }

// v * 2^exp (v > 0) with at most 128 significant bits, the rest folded into sticky.
Exact normalise(bool neg, const cpp_int& v, long exp, bool sticky) {
  Exact x;
  x.neg = neg;
  const int bits = bit_length(v);
  if (bits == 0) {
    x.sticky = sticky;
    x.exp = int(exp);
    return x;
  }
  const int drop = bits > 128 ? bits - 128 : 0;
  const cpp_int kept = v >> drop;
  x.sig = u128(static_cast<std::uint64_t>(kept >> 64)) << 64 | static_cast<std::uint64_t>(kept & UINT64_MAX);
  x.sticky = sticky || (drop > 0 && (v & ((cpp_int(1) << drop) - 1)) != 0);
  if (x.sticky && bits < 128) {  // keep the documented invariant: a sticky significand is normalised
    x.sig <<= 128 - bits;
    exp -= 128 - bits;
  }
  x.exp = int(exp + drop);
  return x;
}

cpp_int to_cpp_int(u128 v) { return (cpp_int(std::uint64_t(v >> 64)) << 64) | std::uint64_t(v); }

long parse_exponent(std::string_view text, std::string_view digits) {
  if (digits.empty()) bad(text, "missing exponent digits");
  std::size_t i = 0;
  bool neg = false;
  if (digits[0] == '+' || digits[0] == '-') {
    neg = digits[0] == '-';
    ++i;
  }
  if (i == digits.size()) bad(text, "missing exponent digits");
  long e = 0;
  for (; i < digits.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(digits[i]))) bad(text, "expected digits in the exponent");
    if (e < 1'000'000'000) e = e * 10 + (digits[i] - '0');
  }
  return neg ? -e : e;
}

}  // namespace

Exact parse_exact(std::string_view text) {
  if (text.size() > kMaxNumberChars)
    bad(text, fmt::format("{} characters; numbers are limited to {} characters", text.size(), kMaxNumberChars));
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty()) bad(text, "empty");
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  auto lower = [](std::string_view v) {
    std::string r(v);
    for (auto& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
    return r;
  };
  const std::string l = lower(s);
  if (l == "inf" || l == "infinity") return Exact::inf(neg);
  if (l == "nan") return Exact::nan();

  const bool hex = l.size() > 2 && l[0] == '0' && l[1] == 'x';
  const int base = hex ? 16 : 10;
  std::string_view body = hex ? s.substr(2) : s;
  const char exp_char = hex ? 'p' : 'e';
  const auto epos = lower(body).find(exp_char);
  const std::string_view mant = body.substr(0, epos);
  long exp = epos == std::string_view::npos ? 0 : parse_exponent(text, body.substr(epos + 1));
  if (hex && epos == std::string_view::npos) bad(text, "a hex float needs a binary exponent ('p')");

  // Digits are gathered in machine words (up to 18 decimal or 15 hex digits at a time), so the
  // bignum grows once per word instead of once per digit.
  cpp_int n = 0;
  long frac_digits = 0;
  bool seen_point = false, seen_digit = false;
  std::uint64_t word = 0, word_scale = 1;
  const std::uint64_t word_limit = hex ? (std::uint64_t(1) << 60) : 1'000'000'000'000'000'000ULL;
  for (char c : mant) {
    if (c == '.') {
      if (seen_point) bad(text, "more than one '.'");
      seen_point = true;
      continue;
    }
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : (hex && std::isxdigit(static_cast<unsigned char>(c)))
                      ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                      : -1;
    if (d < 0) bad(text, fmt::format("unexpected character {} (expected a decimal or C99 hex-float number)",
                                     quoted(std::string_view(&c, 1))));
    word = word * std::uint64_t(base) + std::uint64_t(d);
    word_scale *= std::uint64_t(base);
    if (word_scale == word_limit) {
      n = n * word_scale + word;
      word = 0, word_scale = 1;
    }
    seen_digit = true;
    if (seen_point) ++frac_digits;
  }
  if (!seen_digit) bad(text, "no digits");
  n = n * word_scale + word;
  if (n == 0) return Exact::zero(neg);

  if (hex) {
    exp -= 4 * frac_digits;
    if (exp > kMaxBinaryExponent) return huge(neg);
    if (exp < -kMaxBinaryExponent) return tiny(neg);
    return normalise(neg, n, exp, false);
  }
  exp -= frac_digits;
  const long magnitude = exp + long(mant.size());  // generous bound on the decimal exponent
  if (magnitude > kMaxDecimalExponent) return huge(neg);
  if (magnitude < -kMaxDecimalExponent) return tiny(neg);
  if (exp >= 0) return normalise(neg, n * boost::multiprecision::pow(cpp_int(10), unsigned(exp)), 0, false);
  // n / 10^-exp: scale so the quotient has at least 130 bits, then the remainder is the sticky bit.
  const cpp_int den = boost::multiprecision::pow(cpp_int(10), unsigned(-exp));
  const int scale = std::max(0, 130 + bit_length(den) - bit_length(n));
  cpp_int q, r;
  boost::multiprecision::divide_qr(cpp_int(n << scale), den, q, r);
  return normalise(neg, q, -scale, r != 0);
}

std::string Exact::to_decimal() const {
  if (is_nan()) return "nan";
  if (is_inf()) return neg ? "-inf" : "inf";
  const double d = to_double();
  // Fits fp64 exactly: the shortest round-trip string of that double denotes exactly this value.
  static const Format fp64 = Format::fp64();
  if (!sticky && quantize(fp64, *this, {Rounding::NearestEven, Overflow::Ieee}).status == 0)
    return fmt::format("{}", d);
  // Otherwise the full expansion, which is finite for every binary fraction.
  std::string out = neg ? "-" : "";
  const cpp_int s = to_cpp_int(sig);
  if (exp >= 0) return out + cpp_int(s << exp).str() + (sticky ? "..." : "");
  const unsigned k = unsigned(-exp);
  std::string digits = cpp_int(s * boost::multiprecision::pow(cpp_int(5), k)).str();  // value * 10^k
  if (digits.size() <= k) digits = std::string(k + 1 - digits.size(), '0') + digits;
  digits = digits.substr(0, digits.size() - k) + "." + digits.substr(digits.size() - k);
  while (digits.back() == '0') digits.pop_back();
  if (digits.back() == '.') digits.pop_back();
  return out + digits + (sticky ? "..." : "");
}

}  // namespace bitsim::arith
