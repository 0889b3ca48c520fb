// Spec-string parsing and canonical names for number formats, rounding and overflow modes.
// The grammar is documented in docs/arith.md and printed by `bitsim formats`.
#include "bitsim/arith/format.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <utility>
#include <vector>

#include "bitsim/arith/rounding.hpp"
#include "spec_text.hpp"

namespace bitsim::arith {
namespace {

struct Alias {
  std::string_view name;
  std::string_view spec;
};

// Named formats. OCP FP8/FP6/FP4 and E8M0 follow the OCP Microscaling specification v1.0.
constexpr std::array kAliases{
    Alias{"fp64", "float<11,52>"},        Alias{"fp32", "float<8,23>"},
    Alias{"tf32", "float<8,10>"},         Alias{"fp16", "float<5,10>"},
    Alias{"bf16", "float<8,7>"},          Alias{"fp8e4m3", "float<4,3,fn>"},
    Alias{"fp8e5m2", "float<5,2>"},       Alias{"fp6e3m2", "float<3,2,fin>"},
    Alias{"fp6e2m3", "float<2,3,fin>"},   Alias{"fp4e2m1", "float<2,1,fin>"},
    Alias{"e8m0", "float<8,0,fn,u,nz>"},
};

using spec_text::trim;

[[noreturn]] void fail(std::string_view spec, std::string_view why) {
  throw FormatError(fmt::format("bad format {}: {}", quoted(spec), why));
}

int parse_int(std::string_view spec, std::string_view tok, std::string_view what) {
  const auto v = spec_text::parse_integer<int>(tok);
  if (!v) fail(spec, fmt::format("{} is not an integer {}", quoted(trim(tok)), what));
  return *v;
}

// Splits "name<a,b,c>" into name and the comma-separated arguments.
std::pair<std::string_view, std::vector<std::string_view>> split_spec(std::string_view spec) {
  const auto lt = spec.find('<');
  if (lt == std::string_view::npos) return {trim(spec), {}};
  if (spec.back() != '>') fail(spec, "expected '>' at the end");
  std::vector<std::string_view> args;
  std::string_view inner = spec.substr(lt + 1, spec.size() - lt - 2);
  while (true) {
    const auto comma = inner.find(',');
    args.push_back(trim(inner.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    inner.remove_prefix(comma + 1);
  }
  return {trim(spec.substr(0, lt)), args};
}

void validate(const Format& f, std::string_view spec) {
  if (f.kind == FormatKind::Fixed) {
    if (f.wl < 1 || f.wl > 128) fail(spec, fmt::format("word length {} is outside 1..128", f.wl));
    if (f.fl < -16384 || f.fl > 16384) fail(spec, fmt::format("fraction bits {} are outside -16384..16384", f.fl));
    return;
  }
  if (f.exp_bits < 1 || f.exp_bits > 15)
    fail(spec, fmt::format("exponent width {} is outside 1..15", f.exp_bits));
  if (f.man_bits < 0 || f.man_bits > 112)
    fail(spec, fmt::format("mantissa width {} is outside 0..112", f.man_bits));
  if (f.nonfinite == NonFinite::Ieee && f.man_bits == 0)
    fail(spec, "an IEEE float needs at least one mantissa bit to tell nan from inf (use ',fn')");
  if (f.nonfinite == NonFinite::Ieee && f.exp_bits < 2)
    fail(spec, "an IEEE float needs at least two exponent bits (use ',fin' for a finite-only format)");
  if (!f.has_zero && f.subnormals)
    fail(spec, "a format without zero ('nz') cannot have subnormals (add ',ftz')");
  if (f.width() > 128) fail(spec, "codes wider than 128 bits are not supported");
}

}  // namespace

std::string quoted(std::string_view text, std::size_t max_chars) {
  std::string out = "'";
  const std::size_t shown = std::min(text.size(), max_chars);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c >= 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
  }
  out += "'";
  if (shown < text.size()) out += fmt::format("... ({} characters)", text.size());
  return out;
}

Format Format::fixed(int wl, int fl, bool is_signed) {
  Format f;
  f.kind = FormatKind::Fixed;
  f.wl = wl;
  f.fl = fl;
  f.is_signed = is_signed;
  validate(f, f.spec());
  return f;
}

Format Format::floating(int exp_bits, int man_bits, NonFinite nf, bool subnormals, bool is_signed,
                        bool has_zero) {
  Format f;
  f.kind = FormatKind::Float;
  f.exp_bits = exp_bits;
  f.man_bits = man_bits;
  f.nonfinite = nf;
  f.subnormals = subnormals;
  f.is_signed = is_signed;
  f.has_zero = has_zero;
  validate(f, f.spec());
  return f;
}

Format Format::parse(std::string_view text) {
  const std::string_view spec = trim(text);
  if (spec.empty()) fail(text, "empty format");
  for (const auto& a : kAliases)
    if (a.name == spec) return parse(a.spec);

  auto [name, args] = split_spec(spec);
  if (name == "fixed" || name == "ufixed") {
    if (args.size() != 2) fail(spec, fmt::format("{} takes <wl,fl>", name));
    return fixed(parse_int(spec, args[0], "word length"), parse_int(spec, args[1], "fraction bits"),
                 name == "fixed");
  }
  if (name == "int" || name == "uint") {
    if (args.size() != 1) fail(spec, fmt::format("{} takes <width>", name));
    return fixed(parse_int(spec, args[0], "width"), 0, name == "int");
  }
  if (name == "pow2") {  // sign + exponent: a float without mantissa bits, finite only
    if (args.size() != 1) fail(spec, "pow2 takes <width>");
    const int w = parse_int(spec, args[0], "width");
    if (w < 2) fail(spec, fmt::format("pow2 width {} is below 2", w));
    return floating(w - 1, 0, NonFinite::None);
  }
  if (name == "float") {
    if (args.size() < 2) fail(spec, "float takes <e,m[,options]>");
    Format f;
    f.kind = FormatKind::Float;
    f.exp_bits = parse_int(spec, args[0], "exponent width");
    f.man_bits = parse_int(spec, args[1], "mantissa width");
    for (std::size_t i = 2; i < args.size(); ++i) {
      const auto opt = args[i];
      if (opt == "fn") f.nonfinite = NonFinite::NanOnly;
      else if (opt == "fin") f.nonfinite = NonFinite::None;
      else if (opt == "ftz") f.subnormals = false;
      else if (opt == "u") f.is_signed = false;
      else if (opt == "nz") { f.has_zero = false; f.subnormals = false; }
      else fail(spec, fmt::format("unknown float option {} (expected fn, fin, ftz, u or nz)", quoted(opt)));
    }
    validate(f, spec);
    return f;
  }
  fail(spec, fmt::format("unknown format {} (expected fixed<wl,fl>, ufixed<wl,fl>, int<w>, uint<w>, "
                         "float<e,m[,opts]> or a name such as fp16; see `bitsim formats`)",
                         quoted(name)));
}

std::string Format::spec() const {
  if (kind == FormatKind::Fixed) return fmt::format("{}fixed<{},{}>", is_signed ? "" : "u", wl, fl);
  std::string s = fmt::format("float<{},{}", exp_bits, man_bits);
  if (nonfinite == NonFinite::NanOnly) s += ",fn";
  if (nonfinite == NonFinite::None) s += ",fin";
  if (!is_signed) s += ",u";
  if (!has_zero) s += ",nz";
  else if (!subnormals) s += ",ftz";
  return s + ">";
}

int Format::emax() const {
  const int all_ones = (1 << exp_bits) - 1;
  // The all-ones exponent holds ordinary numbers unless it is reserved for inf/nan (IEEE) or holds
  // nothing but the nan pattern (a nan-only format without mantissa bits, such as E8M0).
  const bool reserved = nonfinite == NonFinite::Ieee || (nonfinite == NonFinite::NanOnly && man_bits == 0);
  return (reserved ? all_ones - 1 : all_ones) - bias();
}

// ---- mode names ----

namespace {
constexpr std::array<std::pair<Rounding, std::string_view>, 10> kRoundingNames{{
    {Rounding::NearestEven, "nearest-even"}, {Rounding::NearestAway, "nearest-away"},
    {Rounding::NearestZero, "nearest-zero"}, {Rounding::NearestUp, "nearest-up"},
    {Rounding::NearestDown, "nearest-down"}, {Rounding::TowardZero, "toward-zero"},
    {Rounding::Down, "down"},                {Rounding::Up, "up"},
    {Rounding::Odd, "odd"},                  {Rounding::Stochastic, "stochastic"},
}};
constexpr std::array<std::pair<Overflow, std::string_view>, 5> kOverflowNames{{
    {Overflow::Saturate, "saturate"},
    {Overflow::SaturateZero, "saturate-zero"},
    {Overflow::SaturateSymmetric, "saturate-symmetric"},
    {Overflow::Wrap, "wrap"},
    {Overflow::Ieee, "ieee"},
}};

template <class Table, class E>
std::string_view name_of(const Table& t, E e) {
  for (const auto& [v, n] : t)
    if (v == e) return n;
  return "?";
}

template <class Table>
std::string names(const Table& t) {
  std::string s;
  for (const auto& [v, n] : t) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}
}  // namespace

std::string_view to_string(Rounding r) { return name_of(kRoundingNames, r); }
std::string_view to_string(Overflow o) { return name_of(kOverflowNames, o); }

Rounding parse_rounding(std::string_view name) {
  for (const auto& [v, n] : kRoundingNames)
    if (n == name) return v;
  throw FormatError(fmt::format("bad rounding {}: expected one of {}", quoted(name), names(kRoundingNames)));
}

Overflow parse_overflow(std::string_view name) {
  for (const auto& [v, n] : kOverflowNames)
    if (n == name) return v;
  throw FormatError(fmt::format("bad overflow {}: expected one of {}", quoted(name), names(kOverflowNames)));
}

std::string status_string(unsigned status) {
  if (status == 0) return "exact";
  std::string s;
  auto add = [&](unsigned bit, std::string_view n) {
    if (!(status & bit)) return;
    if (!s.empty()) s += '|';
    s += n;
  };
  add(kInexact, "inexact");
  add(kUnderflow, "underflow");
  add(kOverflow, "overflow");
  add(kInvalid, "invalid");
  return s;
}

Overflow default_overflow(const Format& f) { return f.is_float() ? Overflow::Ieee : Overflow::Saturate; }

void check_overflow_applies(const Format& f, Overflow o) {
  if (f.is_float() && (o == Overflow::Wrap || o == Overflow::SaturateZero))
    throw FormatError(fmt::format("overflow '{}' does not apply to float format {} (use ieee or saturate)",
                                  to_string(o), f.spec()));
  if (!f.is_float() && o == Overflow::Ieee)
    throw FormatError(fmt::format("overflow 'ieee' applies to float formats only, not {}", f.spec()));
}

}  // namespace bitsim::arith
