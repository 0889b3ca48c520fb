// bitsim's decode/quantize/add/sub/mul/fma against the independent exact model in reference.hpp: every
// code of small formats, every rounding boundary, every operand pair ("Long*" tests: exhaustive, slower).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/arith/kernels.hpp"
#include "bitsim/arith/ops.hpp"
#include "bitsim/arith/quantize.hpp"
#include "reference.hpp"

using namespace bitsim::arith;
using namespace bitsim::arith::ref;

namespace {

cpp_rational qabs(const cpp_rational& v) { return v < 0 ? cpp_rational(-v) : v; }

// ---- conversions between bitsim's Exact and the reference's RefValue ------------------------------

// sticky stands for "a little above sig": sig + 1/2 of its last unit decides every rounding the same
// way as the true value as long as sig has far more bits than the format and the random bits, which
// holds for every sticky input these tests build (normalised 128-bit significands).
RefValue ref_of(const Exact& x) {
  if (x.is_nan()) return RefValue::nan();
  if (x.is_inf()) return RefValue::inf(x.neg);
  cpp_rational mag = cpp_rational(from_u128(x.sig)) * pow2(x.exp);
  if (x.sticky) mag += pow2(x.exp - 1);
  return {false, false, x.neg, x.neg ? cpp_rational(-mag) : mag};
}

// A dyadic rational with at most 128 significant bits as an exact bitsim value.
Exact exact_of(const RefValue& v) {
  if (v.is_nan) return Exact::nan();
  if (v.is_inf) return Exact::inf(v.neg);
  Exact x = Exact::zero(v.neg);
  if (v.value == 0) return x;
  const cpp_rational a = qabs(v.value);
  cpp_int n = numerator(a);
  const cpp_int d = denominator(a);
  const unsigned dz = msb(d);
  if (d != pow2i(int(dz))) throw std::logic_error("exact_of: not a dyadic rational");
  const unsigned tz = lsb(n);
  n >>= tz;
  if (msb(n) >= 128) throw std::logic_error("exact_of: more than 128 significant bits");
  x.sig = to_u128(n);
  x.exp = int(tz) - int(dz);
  return x;
}

// The same value with its significand shifted up to bit 127, and `below` choosing the neighbour:
// false gives (v, v + tiny) via the sticky bit, true gives (v - tiny, v).
Exact sticky_near(const RefValue& v, bool below) {
  Exact x = exact_of(v);
  int up = 127;
  for (u128 s = x.sig; s > 1; s >>= 1) --up;
  x.sig <<= up;
  x.exp -= up;
  if (below) {
    // Keep bit 127 set (the form bitsim itself produces sticky values in): 2^127 - 1 + s would not.
    if (x.sig == u128(1) << 127) {
      x.sig = ~u128(0);
      x.exp -= 1;
    } else {
      x.sig -= 1;
    }
  }
  x.sticky = true;
  return x;
}

// ---- printing -------------------------------------------------------------------------------------

std::string show(const RefValue& v) {
  if (v.is_nan) return "nan";
  if (v.is_inf) return v.neg ? "-inf" : "+inf";
  if (v.value == 0) return v.neg ? "-0" : "+0";
  std::ostringstream s;
  s << v.value.str() << " (~" << v.value.convert_to<double>() << ")";
  return s.str();
}

std::string show_code(const Format& f, u128 code, unsigned status) {
  std::ostringstream s;
  s << "0x" << std::hex << std::uint64_t(code) << std::dec << " = " << show(ref_decode(f, code)) << " ["
    << status_string(status) << "]";
  return s.str();
}

// Tests named Long* are exhaustive and take minutes: they run only with BITSIM_LONG_TESTS set, so the
// default run of this binary stays short (they can also be selected with --gtest_filter='Long*').
bool long_tests_enabled() { return std::getenv("BITSIM_LONG_TESTS") != nullptr; }
#define SKIP_UNLESS_LONG() \
  if (!long_tests_enabled()) GTEST_SKIP() << "set BITSIM_LONG_TESTS=1 to run"

struct Mode {
  RoundSpec spec;
  std::uint32_t r = 0;
};

std::string show_mode(const Mode& m) {
  std::ostringstream s;
  s << to_string(m.spec.rounding) << "/" << to_string(m.spec.overflow);
  if (m.spec.rounding == Rounding::Stochastic) s << " k=" << m.spec.sr_bits << " r=" << m.r;
  return s.str();
}

// Counts mismatches and prints the first few in full, so one bug does not bury the log.
class Mismatches {
 public:
  explicit Mismatches(std::string what) : what_(std::move(what)) {}
  Mismatches(const Mismatches&) = delete;
  Mismatches& operator=(const Mismatches&) = delete;
  ~Mismatches() {
    EXPECT_EQ(count_, 0u) << what_ << ": " << count_ << " mismatches out of " << checks_ << " checks";
    EXPECT_GT(checks_, 0u) << what_ << ": no comparison ran";  // an empty loop must not pass
  }
  template <class Msg>
  void check(bool ok, Msg msg) {
    ++checks_;
    if (ok) return;
    if (++count_ <= 25) ADD_FAILURE() << what_ << ": " << msg();
  }
 private:
  std::string what_;
  std::uint64_t count_ = 0, checks_ = 0;
};

// ---- modes ----------------------------------------------------------------------------------------

const std::vector<Rounding> kDeterministic = {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero,
                                              Rounding::NearestUp,   Rounding::NearestDown, Rounding::TowardZero,
                                              Rounding::Down,        Rounding::Up,          Rounding::Odd};
const std::vector<Overflow> kAllOverflows = {Overflow::Saturate, Overflow::SaturateZero, Overflow::SaturateSymmetric,
                                             Overflow::Wrap, Overflow::Ieee};

std::vector<Overflow> applicable_overflows(const Format& f) {
  std::vector<Overflow> out;
  for (Overflow o : kAllOverflows) {
    try {
      check_overflow_applies(f, o);
      out.push_back(o);
    } catch (const FormatError&) {
    }
  }
  return out;
}

Overflow default_of(const Format& f) { return f.kind == FormatKind::Fixed ? Overflow::Saturate : Overflow::Ieee; }

std::vector<Mode> deterministic_modes(const Format& f) {
  std::vector<Mode> out;
  for (Rounding r : kDeterministic)
    for (Overflow o : applicable_overflows(f)) out.push_back({{r, o, 16}, 0});
  return out;
}

// Every r for k = 1..4; the extremes, the half and a few others for k = 16 and 32.
std::vector<Mode> stochastic_modes(const std::vector<Overflow>& overflows) {
  std::vector<Mode> out;
  for (Overflow o : overflows) {
    for (int k = 1; k <= 4; ++k)
      for (std::uint32_t r = 0; r < (1u << k); ++r) out.push_back({{Rounding::Stochastic, o, k}, r});
    for (std::uint32_t r : {0x0u, 0x1u, 0x3fffu, 0x4000u, 0x7fffu, 0x8000u, 0xbeefu, 0xfffeu, 0xffffu})
      out.push_back({{Rounding::Stochastic, o, 16}, r});
    for (std::uint32_t r : {0x0u, 0x1u, 0x7fffffffu, 0x80000000u, 0x9e3779b9u, 0xfffffffeu, 0xffffffffu})
      out.push_back({{Rounding::Stochastic, o, 32}, r});
  }
  return out;
}

// ---- comparisons ----------------------------------------------------------------------------------

// nan results are compared as "some nan" (the spec fixes only the quiet bit / the fn pattern, which
// is checked too); everything else code for code, and the status flags always exactly.
bool same(const Format& f, const Quantized& got, const RefResult& want) {
  if (got.status != want.status) return false;
  if (!ref_decode(f, want.code).is_nan) return got.code == want.code;
  if (got.code >> code_width(f) != 0 || !ref_decode(f, got.code).is_nan) return false;
  if (f.nonfinite == NonFinite::Ieee) return (got.code >> (f.man_bits - 1)) & 1;  // quiet
  return true;
}

template <class Fn>
Quantized guarded(Fn fn, std::string& error) {
  try {
    return fn();
  } catch (const std::exception& e) {
    error = e.what();
    return {~u128(0), 0xff};
  }
}

void check_quantize(Mismatches& mm, const Format& f, const Exact& x, const Mode& m) {
  std::string error;
  const Quantized got = guarded([&] { return quantize(f, x, m.spec, m.r); }, error);
  const RefValue v = ref_of(x);
  const RefResult want = ref_quantize(f, v, m.spec, m.r);
  mm.check(error.empty() && same(f, got, want), [&] {
    std::ostringstream s;
    s << "quantize " << f.spec() << " " << show_mode(m) << " x=" << show(v) << (x.sticky ? " (sticky)" : "")
      << ": got " << (error.empty() ? show_code(f, got.code, got.status) : "exception " + error) << ", want "
      << show_code(f, want.code, want.status);
    return s.str();
  });
}

// ---- formats --------------------------------------------------------------------------------------

std::vector<Format> small_fixed_formats(int max_wl) {
  std::vector<Format> out;
  for (int wl = 1; wl <= max_wl; ++wl) {
    std::set<int> fls = {0, wl / 2, -3, wl + 3};
    for (int fl : fls)
      for (bool s : {true, false}) out.push_back(Format::fixed(wl, fl, s));
  }
  return out;
}

const std::vector<std::string> kFloatSpecs = {
    "fp16",  "bf16",     "fp8e4m3",        "fp8e5m2",      "fp6e3m2",       "fp6e2m3",  "fp4e2m1",
    "e8m0",  "float<5,10,ftz>", "float<4,3,u>", "float<3,2,fn>", "float<3,2>", "float<4,3,ftz>", "pow2<4>",
    "float<3,2,fin,u>", "float<4,3,fn,u>"};

// All finite values of a format (one entry per distinct value, zero once), sorted.
std::vector<cpp_rational> finite_values(const Format& f) {
  std::set<cpp_rational> vals;
  for (u128 c = 0; c < (u128(1) << code_width(f)); ++c) {
    const RefValue v = ref_decode(f, c);
    if (!v.is_nan && !v.is_inf) vals.insert(v.value);
  }
  return {vals.begin(), vals.end()};
}

// Which adjacent pairs (vals[i], vals[i+1]) a test takes: all with stride 1; otherwise every
// stride-th pair plus the 8 pairs at each end of the range and on each side of zero, where the
// overflow, subnormal and underflow rules act.
bool pair_selected(const std::vector<cpp_rational>& vals, std::size_t i, int stride) {
  if (stride <= 1 || i % std::size_t(stride) == 0) return true;
  if (i < 8 || i + 9 >= vals.size()) return true;
  const std::size_t zero = std::size_t(std::lower_bound(vals.begin(), vals.end(), cpp_rational(0)) - vals.begin());
  return i + 8 >= zero && i <= zero + 8;
}

// Points at and around every rounding boundary of a format (both signs, whether or not the format
// has them), plus values beyond the range and below the smallest step.
std::vector<cpp_rational> boundary_points(const Format& f, int stride = 1) {
  const std::vector<cpp_rational> vals = finite_values(f);
  std::set<cpp_rational> pts(vals.begin(), vals.end());
  const cpp_rational eps_scale = pow2(-20);
  for (std::size_t i = 0; i + 1 < vals.size(); ++i) {
    if (!pair_selected(vals, i, stride)) continue;
    const cpp_rational lo = vals[i], d = vals[i + 1] - vals[i], eps = d * eps_scale;
    for (int q = 1; q <= 3; ++q) pts.insert(lo + d * q / 4);
    const cpp_rational mid = lo + d / 2;
    for (const cpp_rational& p : std::vector<cpp_rational>{mid - eps, mid + eps, lo + eps, vals[i + 1] - eps}) pts.insert(p);
  }
  // Beyond the largest magnitude: quarter steps of the last gap cover the tie with the next grid
  // point (an IEEE binade boundary, or fn's nan slot) and the values that round past it.
  cpp_rational top = 0, gap = 1, smallest = 0;
  for (const cpp_rational& v : vals) top = std::max(top, qabs(v));
  for (std::size_t i = 0; i + 1 < vals.size(); ++i)
    if (qabs(vals[i + 1]) == top || qabs(vals[i]) == top) gap = vals[i + 1] - vals[i];
  for (const cpp_rational& v : vals)
    if (v > 0 && (smallest == 0 || v < smallest)) smallest = v;
  if (top == 0) top = 1;
  if (smallest == 0) smallest = 1;
  for (int j = 1; j <= 12; ++j) pts.insert(top + gap * j / 4);
  const cpp_rational eps = gap * eps_scale;
  for (const cpp_rational& p : std::vector<cpp_rational>{top + gap / 2 - eps, top + gap / 2 + eps, top + eps, top * 2, top * pow2(40),
                                pow2(300), smallest / 4, smallest / 2, smallest * 3 / 4, smallest / 2 - smallest * eps_scale,
                                smallest / 2 + smallest * eps_scale, smallest * pow2(-30), pow2(-300)})
    pts.insert(p);
  std::set<cpp_rational> both;
  for (const cpp_rational& p : pts) {
    both.insert(p);
    both.insert(-p);
  }
  both.erase(0);  // zero is tested with both signs among the specials
  return {both.begin(), both.end()};
}

// Where a value a hair above or below decides the rounding: the representable values themselves,
// ties and quarter points (multiples of 2^-k of an ulp), the tie above the largest value, and half
// the smallest step. Both signs.
std::vector<cpp_rational> sticky_points(const Format& f, int stride = 1) {
  const std::vector<cpp_rational> vals = finite_values(f);
  std::set<cpp_rational> pts;
  for (std::size_t i = 0; i + 1 < vals.size(); ++i) {
    if (!pair_selected(vals, i, stride)) continue;
    pts.insert(vals[i]);
    pts.insert(vals[i + 1]);
    const cpp_rational d = vals[i + 1] - vals[i];
    for (int q = 1; q <= 3; ++q) pts.insert(vals[i] + d * q / 4);
  }
  const cpp_rational top = std::max(qabs(vals.front()), qabs(vals.back()));
  const cpp_rational gap = qabs(vals.back()) == top ? vals.back() - vals[vals.size() - 2] : vals[1] - vals[0];
  pts.insert(top + gap / 2);
  pts.insert(top + gap);
  for (const cpp_rational& v : vals)
    if (v > 0) {
      pts.insert(v / 2);
      break;
    }
  std::set<cpp_rational> both;
  for (const cpp_rational& p : pts)
    if (p != 0) {
      both.insert(p);
      both.insert(-p);
    }
  return {both.begin(), both.end()};
}

std::vector<RefValue> specials() {
  return {RefValue::zero(false), RefValue::zero(true), RefValue::inf(false), RefValue::inf(true), RefValue::nan()};
}

// ---- decode and round trips -----------------------------------------------------------------------

// Every code: decode agrees with the reference, the reference maps the value back to the code (a
// check of the model itself), and bitsim's quantize of bitsim's decode gives the same code exactly.
void check_every_code(const Format& f, const std::vector<Mode>& modes) {
  Mismatches dec("decode " + f.spec());
  Mismatches trip("round trip " + f.spec());
  const int w = code_width(f);
  const u128 above = w < 128 ? ~((u128(1) << w) - 1) : 0;
  for (u128 c = 0; c < (u128(1) << w); ++c) {
    const RefValue want = ref_decode(f, c);
    const Exact got = decode(f, c);
    const RefValue g = ref_of(got);
    const bool ok = g.is_nan == want.is_nan && g.is_inf == want.is_inf && (want.is_nan || g.neg == want.neg) &&
                    g.value == want.value && !got.sticky;
    dec.check(ok, [&] { return "code " + show_code(f, c, 0) + ": bitsim decodes to " + show(g); });
    // Bits above width() are ignored.
    const RefValue g2 = ref_of(decode(f, c | above));
    dec.check(g2.is_nan == g.is_nan && g2.is_inf == g.is_inf && g2.neg == g.neg && g2.value == g.value,
              [&] { return "code " + show_code(f, c, 0) + " with high bits set decodes to " + show(g2); });

    // The model's own round trip: canonical codes come back, nan codes give a nan, ftz subnormal
    // codes (which read as zero) give the zero of their sign.
    const RefResult back = ref_quantize(f, want, {Rounding::NearestEven, default_of(f), 16});
    const bool ftz_sub = f.kind == FormatKind::Float && f.has_zero && !f.subnormals &&
                         ((c >> f.man_bits) & ((u128(1) << f.exp_bits) - 1)) == 0;
    const u128 expect = ftz_sub ? c & ~((u128(1) << (f.exp_bits + f.man_bits)) - 1) : c;
    trip.check(back.status == 0 && (want.is_nan ? ref_decode(f, back.code).is_nan : back.code == expect),
               [&] { return "reference round trip of " + show_code(f, c, 0) + " gives " +
                            show_code(f, back.code, back.status); });
    for (const Mode& m : modes) {
      std::string error;
      const Quantized q = guarded([&] { return quantize(f, got, m.spec, m.r); }, error);
      // The model's answer for nearest-even with the default overflow mode is `back`, computed above.
      const bool is_back = m.spec.rounding == Rounding::NearestEven && m.spec.overflow == default_of(f);
      const RefResult r = is_back ? back : ref_quantize(f, want, m.spec, m.r);
      trip.check(error.empty() && same(f, q, r), [&] {
        return "quantize(decode(" + show_code(f, c, 0) + ")) " + show_mode(m) + ": got " +
               (error.empty() ? show_code(f, q.code, q.status) : error) + ", want " + show_code(f, r.code, r.status);
      });
    }
  }
}

std::vector<Mode> round_trip_modes(const Format& f, bool all) {
  std::vector<Mode> modes = {{{Rounding::NearestEven, default_of(f), 16}, 0}};
  if (!all) return modes;
  modes = deterministic_modes(f);
  for (std::uint32_t r : {0u, 15u}) modes.push_back({{Rounding::Stochastic, default_of(f), 4}, r});
  modes.push_back({{Rounding::Stochastic, default_of(f), 32}, 0xffffffffu});
  return modes;
}

}  // namespace

TEST(ReferenceFormats, NamedFormatsHaveTheSpecFields) {
  struct Want {
    const char* spec;
    int e, m;
    NonFinite nf;
    bool sub, is_signed, zero;
  };
  for (const Want& w : {Want{"fp16", 5, 10, NonFinite::Ieee, true, true, true},
                        Want{"bf16", 8, 7, NonFinite::Ieee, true, true, true},
                        Want{"fp8e4m3", 4, 3, NonFinite::NanOnly, true, true, true},
                        Want{"fp8e5m2", 5, 2, NonFinite::Ieee, true, true, true},
                        Want{"fp6e3m2", 3, 2, NonFinite::None, true, true, true},
                        Want{"fp6e2m3", 2, 3, NonFinite::None, true, true, true},
                        Want{"fp4e2m1", 2, 1, NonFinite::None, true, true, true},
                        Want{"e8m0", 8, 0, NonFinite::NanOnly, false, false, false},
                        Want{"pow2<4>", 3, 0, NonFinite::None, true, true, true},
                        Want{"float<5,10,ftz>", 5, 10, NonFinite::Ieee, false, true, true},
                        Want{"float<4,3,u>", 4, 3, NonFinite::Ieee, true, false, true}}) {
    const Format f = Format::parse(w.spec);
    EXPECT_EQ(f.kind, FormatKind::Float) << w.spec;
    EXPECT_EQ(f.exp_bits, w.e) << w.spec;
    EXPECT_EQ(f.man_bits, w.m) << w.spec;
    EXPECT_EQ(f.nonfinite, w.nf) << w.spec;
    EXPECT_EQ(f.subnormals, w.sub) << w.spec;
    EXPECT_EQ(f.is_signed, w.is_signed) << w.spec;
    EXPECT_EQ(f.has_zero, w.zero) << w.spec;
  }
}

// The model against the numbers the spec and the OCP / IEEE standards print, so that it is not only
// bitsim and the model agreeing with each other.
TEST(ReferenceModel, KnownValues) {
  const auto val = [](const char* spec, u128 c) { return ref_decode(Format::parse(spec), c).value; };
  EXPECT_EQ(fmax_value(Format::parse("fp8e4m3")), 448);
  EXPECT_EQ(fmax_value(Format::parse("fp8e5m2")), 57344);
  EXPECT_EQ(fmax_value(Format::parse("fp6e3m2")), 28);
  EXPECT_EQ(fmax_value(Format::parse("fp6e2m3")), cpp_rational(15, 2));
  EXPECT_EQ(fmax_value(Format::parse("fp4e2m1")), 6);
  EXPECT_EQ(fmax_value(Format::parse("fp16")), 65504);
  EXPECT_EQ(fmax_value(Format::parse("e8m0")), pow2(127));
  EXPECT_EQ(val("e8m0", 0), pow2(-127));
  EXPECT_TRUE(ref_decode(Format::parse("e8m0"), 0xff).is_nan);
  EXPECT_EQ(val("fp16", 1), pow2(-24));
  EXPECT_EQ(val("fp8e4m3", 1), pow2(-9));
  EXPECT_EQ(val("fp4e2m1", 0xf), -6);
  EXPECT_EQ(val("bf16", 0x3f80), 1);
  EXPECT_TRUE(ref_decode(Format::parse("fp8e4m3"), 0x7f).is_nan);
  EXPECT_TRUE(ref_decode(Format::parse("fp8e5m2"), 0x7c).is_inf);
  EXPECT_EQ(val("fixed<8,4>", 0x80), -8);
  EXPECT_EQ(val("ufixed<4,-2>", 0xf), 60);
  const RoundSpec ne{Rounding::NearestEven, Overflow::Ieee, 16};
  const Format e4m3 = Format::parse("fp8e4m3");
  // docs/arith.md, MX section: 460 rounds to 448 (inexact), 500 to 512, out of range.
  EXPECT_EQ(ref_quantize(e4m3, RefValue::of(460), ne).code, 0x7eu);
  EXPECT_EQ(ref_quantize(e4m3, RefValue::of(460), ne).status, unsigned(kInexact));
  EXPECT_EQ(ref_quantize(e4m3, RefValue::of(500), {Rounding::NearestEven, Overflow::Saturate, 16}).status,
            unsigned(kOverflow | kInexact));
  // pow2<w>: the tie between 2^n and 2^(n+1) is 1.5 * 2^n.
  const Format p2 = Format::parse("pow2<4>");
  EXPECT_EQ(ref_decode(p2, ref_quantize(p2, RefValue::of(cpp_rational(3, 2) - pow2(-10)), ne).code).value, 1);
  EXPECT_EQ(ref_decode(p2, ref_quantize(p2, RefValue::of(cpp_rational(3, 2) + pow2(-10)), ne).code).value, 2);
}

// The spec's special cases of add/sub/mul/fma, written out: model and bitsim both must give them.
TEST(ReferenceOps, SpecialCasesFromTheSpec) {
  const Format h = Format::parse("fp16"), e4m3 = Format::parse("fp8e4m3"), e2m1 = Format::parse("fp4e2m1");
  const RoundSpec ne{Rounding::NearestEven, Overflow::Ieee, 16}, dn{Rounding::Down, Overflow::Ieee, 16};
  const RoundSpec sat{Rounding::NearestEven, Overflow::Saturate, 16};
  const u128 pinf = 0x7c00, ninf = 0xfc00, one = 0x3c00, mone = 0xbc00, pz = 0, nz = 0x8000, qnan = 0x7e00;
  struct Case {
    const char* what;
    Quantized got;
    RefResult model;
    const Format& out;
    u128 code;
    unsigned status;
  };
  const Case cases[] = {
      {"inf - inf", sub(h, pinf, pinf, h, ne), ref_sub(h, pinf, pinf, h, ne), h, qnan, kInvalid},
      {"inf + -inf", add(h, pinf, ninf, h, ne), ref_add(h, pinf, ninf, h, ne), h, qnan, kInvalid},
      {"0 * inf", mul(h, pz, ninf, h, ne), ref_mul(h, pz, ninf, h, ne), h, qnan, kInvalid},
      {"fma(0, inf, 1)", fma(h, pz, pinf, h, one, h, ne), ref_fma(h, pz, pinf, h, one, h, ne), h, qnan, kInvalid},
      {"fma(inf, 1, -inf)", fma(h, pinf, one, h, ninf, h, ne), ref_fma(h, pinf, one, h, ninf, h, ne), h, qnan,
       kInvalid},
      {"nan + 1", add(h, 0x7d01, one, h, ne), ref_add(h, 0x7d01, one, h, ne), h, qnan, 0},
      {"nan * 0", mul(h, qnan, pz, h, ne), ref_mul(h, qnan, pz, h, ne), h, qnan, 0},
      {"nan + 1 into fp4e2m1", add(h, qnan, one, e2m1, ne), ref_add(h, qnan, one, e2m1, ne), e2m1, 0, kInvalid},
      {"inf - inf into fp4e2m1", sub(h, pinf, pinf, e2m1, ne), ref_sub(h, pinf, pinf, e2m1, ne), e2m1, 0, kInvalid},
      {"1 - 1", sub(h, one, one, h, ne), ref_sub(h, one, one, h, ne), h, pz, 0},
      {"1 - 1 rounding down", sub(h, one, one, h, dn), ref_sub(h, one, one, h, dn), h, nz, 0},
      {"-1 + 1 rounding down", add(h, mone, one, h, dn), ref_add(h, mone, one, h, dn), h, nz, 0},
      {"-0 + -0", add(h, nz, nz, h, ne), ref_add(h, nz, nz, h, ne), h, nz, 0},
      {"+0 + -0", add(h, pz, nz, h, ne), ref_add(h, pz, nz, h, ne), h, pz, 0},
      {"+0 + -0 rounding down", add(h, pz, nz, h, dn), ref_add(h, pz, nz, h, dn), h, nz, 0},
      {"-0 - +0", sub(h, nz, pz, h, ne), ref_sub(h, nz, pz, h, ne), h, nz, 0},
      {"-0 * 1", mul(h, nz, one, h, ne), ref_mul(h, nz, one, h, ne), h, nz, 0},
      {"fma(-0, 1, -0)", fma(h, nz, one, h, nz, h, ne), ref_fma(h, nz, one, h, nz, h, ne), h, nz, 0},
      {"fma(-0, 1, +0)", fma(h, nz, one, h, pz, h, ne), ref_fma(h, nz, one, h, pz, h, ne), h, pz, 0},
      {"fma(1, -1, 1) rounding down", fma(h, one, mone, h, one, h, dn), ref_fma(h, one, mone, h, one, h, dn), h,
       nz, 0},
      {"inf + 1 into fp8e4m3", add(h, pinf, one, e4m3, ne), ref_add(h, pinf, one, e4m3, ne), e4m3, 0x7f,
       kOverflow | kInexact},
      {"inf + 1 into fp8e4m3, saturate", add(h, pinf, one, e4m3, sat), ref_add(h, pinf, one, e4m3, sat), e4m3,
       0x7e, kOverflow | kInexact},
      {"448 + 448 in fp8e4m3", add(e4m3, 0x7e, 0x7e, e4m3, ne), ref_add(e4m3, 0x7e, 0x7e, e4m3, ne), e4m3, 0x7f,
       kOverflow | kInexact},
      {"448 + 448 rounding down", add(e4m3, 0x7e, 0x7e, e4m3, dn), ref_add(e4m3, 0x7e, 0x7e, e4m3, dn), e4m3, 0x7e,
       kOverflow | kInexact},
      {"448 + 16 in fp8e4m3 (tie, even)", add(e4m3, 0x7e, 0x58, e4m3, ne), ref_add(e4m3, 0x7e, 0x58, e4m3, ne), e4m3,
       0x7e, kInexact},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(same(c.out, c.got, {c.code, c.status}))
        << c.what << ": bitsim gives " << show_code(c.out, c.got.code, c.got.status) << ", spec says "
        << show_code(c.out, c.code, c.status);
    EXPECT_TRUE(same(c.out, {c.model.code, c.model.status}, {c.code, c.status}))
        << c.what << ": model gives " << show_code(c.out, c.model.code, c.model.status);
  }
}

// Tininess after rounding in formats with one significant bit (m = 0): a value below 2^(emin-1)
// that rounds up to 2^emin on the format's grid rounds to at most 2^(emin-1) with an unbounded
// exponent, so it is tiny and the inexact result must flag underflow.
TEST(ReferenceQuantize, TininessAfterRoundingWithOneSignificantBit) {
  const Format p2 = Format::parse("pow2<4>");  // float<3,0,fin>: emin = -2, smallest normal 0.25
  const RoundSpec up{Rounding::Up, Overflow::Ieee, 16};
  // x = 0.125 - 2^-22 and x = 17 * 2^-66: up rounds both to 0.25 (code 1); with unbounded exponent
  // they round to 0.125 and 2^-61, below 2^emin.
  for (const cpp_rational& x : {cpp_rational(pow2(-3) - pow2(-22)), cpp_rational(17 * pow2(-66))}) {
    const Quantized got = quantize(p2, exact_of(RefValue::of(x)), up);
    EXPECT_EQ(got.code, 1u) << show(RefValue::of(x));
    EXPECT_EQ(got.status, unsigned(kInexact | kUnderflow)) << "pow2<4> up x=" << show(RefValue::of(x)) << ": got "
                                                           << status_string(got.status);
  }
  // The tie 0.1875 = 1.5 * 2^-3 under nearest-even rounds to 2^-2 either way: not tiny.
  const Quantized tie = quantize(p2, exact_of(RefValue::of(cpp_rational(3, 16))), {Rounding::NearestEven, Overflow::Ieee, 16});
  EXPECT_EQ(tie.code, 1u);
  EXPECT_EQ(tie.status, unsigned(kInexact));
}

// e8m0 (nz): "maps every value below its smallest number to that smallest number
// (underflow|inexact)". That sentence, not the general tininess rule, decides here: 1.5 * 2^-128
// under nearest-even rounds to 2^-127 even with an unbounded exponent, so the general rule alone
// would flag only inexact.
TEST(ReferenceQuantize, NoZeroFormatFlagsUnderflowBelowItsSmallestNumber) {
  const Format e8m0 = Format::parse("e8m0");
  const Quantized got =
      quantize(e8m0, exact_of(RefValue::of(3 * pow2(-129))), {Rounding::NearestEven, Overflow::Ieee, 16});
  EXPECT_EQ(got.code, 0u);
  EXPECT_EQ(got.status, unsigned(kInexact | kUnderflow)) << "got " << status_string(got.status);
  // Below 2^-128 both rules agree that it is tiny (up: 1.0625 * 2^-187 rounds to 2^-186 unbounded).
  const Quantized up = quantize(e8m0, exact_of(RefValue::of(17 * pow2(-191))), {Rounding::Up, Overflow::Ieee, 16});
  EXPECT_EQ(up.code, 0u);
  EXPECT_EQ(up.status, unsigned(kInexact | kUnderflow)) << "got " << status_string(up.status);
}

TEST(ReferenceDecode, EveryCodeOfFixedFormatsUpTo12Bits) {
  for (const Format& f : small_fixed_formats(12)) check_every_code(f, round_trip_modes(f, f.wl <= 6));
}

TEST(ReferenceDecode, EveryCodeOfFixedFormats13To16Bits) {
  // Signed with half the bits fraction and unsigned with a negative fl; the Long test does the rest.
  for (int wl = 13; wl <= 16; ++wl)
    for (const Format& f : {Format::fixed(wl, wl / 2, true), Format::fixed(wl, -3, false)})
      check_every_code(f, round_trip_modes(f, false));
}

TEST(LongReferenceDecode, EveryCodeOfFixedFormats13To16BitsAllFractionLengths) {
  SKIP_UNLESS_LONG();
  for (const Format& f : small_fixed_formats(16)) {
    if (f.wl < 13) continue;
    // Exact values round the same under every mode; three modes of different kinds suffice here.
    std::vector<Mode> modes = round_trip_modes(f, false);
    modes.push_back({{Rounding::TowardZero, Overflow::SaturateSymmetric, 16}, 0});
    modes.push_back({{Rounding::Stochastic, Overflow::Wrap, 4}, 15});
    check_every_code(f, modes);
  }
}

TEST(ReferenceDecode, EveryCodeOfFloatFormats) {
  for (const std::string& s : kFloatSpecs) {
    const Format f = Format::parse(s);
    check_every_code(f, round_trip_modes(f, code_width(f) <= 8));
  }
}

// ---- quantization at and around every rounding boundary -------------------------------------------

namespace {

const std::vector<std::string> kBoundarySpecs = {
    "fixed<6,3>", "ufixed<5,2>", "fixed<4,-2>", "ufixed<3,5>", "fixed<1,0>", "ufixed<1,1>", "int<8>", "fixed<8,10>",
    "fp8e4m3",    "fp8e5m2",     "fp6e3m2",     "fp6e2m3",     "fp4e2m1",    "e8m0",        "float<3,2>",
    "float<3,2,fn>", "float<4,3,ftz>", "float<4,3,u>", "pow2<4>", "float<3,2,fin,u>", "float<4,3,fn,u>"};

class Boundary : public ::testing::TestWithParam<std::string> {};

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n;
  for (char c : info.param) n += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return n;
}

}  // namespace

TEST_P(Boundary, DeterministicModes) {
  const Format f = Format::parse(GetParam());
  Mismatches mm("boundaries " + f.spec());
  const std::vector<Mode> modes = deterministic_modes(f);
  std::vector<RefValue> xs = specials();
  for (const cpp_rational& p : boundary_points(f)) xs.push_back(RefValue::of(p));
  for (const RefValue& v : xs) {
    const Exact x = exact_of(v);
    for (const Mode& m : modes) check_quantize(mm, f, x, m);
  }
}

namespace {

// Overflow modes only matter at the ends of the range (the top quarter of magnitudes, specials, and
// negative values into unsigned formats): tests take every overflow mode there, the default elsewhere.
bool near_end(const Format& f, const RefValue& v, const cpp_rational& top) {
  return v.is_inf || v.is_nan || qabs(v.value) * 4 >= top * 3 || (!f.is_signed && v.neg);
}

// Stochastic rounding: every r for k = 1..4 (so every d + r carry case), a few r for k = 16, 32.
void check_stochastic_boundaries(const Format& f, int stride) {
  Mismatches mm("stochastic boundaries " + f.spec());
  const std::vector<Mode> all = stochastic_modes(applicable_overflows(f));
  const std::vector<Mode> one = stochastic_modes({default_of(f)});
  const std::vector<cpp_rational> vals = finite_values(f);
  cpp_rational top = 0;
  for (const cpp_rational& v : vals) top = std::max(top, qabs(v));
  std::vector<RefValue> xs = specials();
  for (const cpp_rational& p : boundary_points(f, stride)) xs.push_back(RefValue::of(p));
  for (const RefValue& v : xs) {
    const Exact x = exact_of(v);
    for (const Mode& m : near_end(f, v, top) ? all : one) check_quantize(mm, f, x, m);
  }
}

// Inputs with a sticky bit (nonzero bits below 128 significant bits), just above and just below
// every representable value, tie and quarter point.
void check_sticky_inputs(const Format& f, int stride) {
  Mismatches mm("sticky " + f.spec());
  const auto modes_for = [](const std::vector<Overflow>& overflows) {
    std::vector<Mode> modes;
    for (Overflow o : overflows) {
      for (Rounding r : kDeterministic) modes.push_back({{r, o, 16}, 0});
      for (std::uint32_t r = 0; r < 4; ++r) modes.push_back({{Rounding::Stochastic, o, 2}, r});
      for (std::uint32_t r : {0u, 1u, 7u, 8u, 14u, 15u}) modes.push_back({{Rounding::Stochastic, o, 4}, r});
      for (std::uint32_t r : {0x0u, 0x7fffu, 0x8000u, 0xffffu}) modes.push_back({{Rounding::Stochastic, o, 16}, r});
      for (std::uint32_t r : {0x0u, 0x80000000u, 0xffffffffu}) modes.push_back({{Rounding::Stochastic, o, 32}, r});
    }
    return modes;
  };
  const std::vector<Mode> all = modes_for(applicable_overflows(f)), one = modes_for({default_of(f)});
  const std::vector<cpp_rational> vals = finite_values(f);
  cpp_rational top = 0;
  for (const cpp_rational& v : vals) top = std::max(top, qabs(v));
  for (const cpp_rational& p : sticky_points(f, stride))
    for (bool below : {false, true}) {
      const Exact x = sticky_near(RefValue::of(p), below);
      // Wrapping needs the low bits of the rounded integer; when the sticky bit lies at or above the
      // LSB they are unknown, so the spec's 128 bits + sticky do not define the result: skip.
      const bool undefined_wrap = f.kind == FormatKind::Fixed && x.exp >= -f.fl;
      for (const Mode& m : near_end(f, RefValue::of(p), top) ? all : one)
        if (!(undefined_wrap && m.spec.overflow == Overflow::Wrap)) check_quantize(mm, f, x, m);
    }
}

// By default 8-bit formats take every 3rd pair (and all pairs near the ends and zero) here; the
// Long tests take every pair.
int default_stride(const Format& f) { return code_width(f) >= 8 ? 3 : 1; }

}  // namespace

TEST_P(Boundary, StochasticModes) {
  const Format f = Format::parse(GetParam());
  check_stochastic_boundaries(f, default_stride(f));
}

TEST_P(Boundary, StickyInputs) {
  const Format f = Format::parse(GetParam());
  check_sticky_inputs(f, default_stride(f));
}

class LongBoundary : public Boundary {};

TEST_P(LongBoundary, StochasticModesEveryPair) {
  SKIP_UNLESS_LONG();
  check_stochastic_boundaries(Format::parse(GetParam()), 1);
}

TEST_P(LongBoundary, StickyInputsEveryPair) {
  SKIP_UNLESS_LONG();
  check_sticky_inputs(Format::parse(GetParam()), 1);
}

INSTANTIATE_TEST_SUITE_P(Long, LongBoundary, ::testing::ValuesIn(kBoundarySpecs), param_name);

INSTANTIATE_TEST_SUITE_P(Reference, Boundary, ::testing::ValuesIn(kBoundarySpecs), param_name);

// Boundaries of 16-bit formats are too many to take every one: a sample of codes, each with the
// points around it, under every mode.
TEST(ReferenceQuantize, SixteenBitFormatsSampledBoundaries) {
  std::mt19937 rng(1234);
  for (const char* spec : {"fp16", "bf16", "float<5,10,ftz>", "fixed<16,7>", "ufixed<16,20>"}) {
    const Format f = Format::parse(spec);
    Mismatches mm(std::string("sampled boundaries ") + spec);
    std::vector<Mode> modes = deterministic_modes(f);
    for (const Mode& m : stochastic_modes({default_of(f)}))
      if (m.spec.sr_bits >= 4) modes.push_back(m);
    for (int i = 0; i < 100; ++i) {
      const u128 c = rng() & 0xffff;
      const RefValue a = ref_decode(f, c);
      if (a.is_nan || a.is_inf) continue;
      // The next code up in magnitude (or the max + a bit, when c is the largest).
      RefValue b = ref_decode(f, c + 1 <= 0xffff ? c + 1 : c);
      if (b.is_nan || b.is_inf || b.value == a.value) b = RefValue::of(a.value + (a.value == 0 ? cpp_rational(1) : qabs(a.value)));
      const cpp_rational d = b.value - a.value, eps = d * pow2(-20);
      for (const cpp_rational& p :
           std::vector<cpp_rational>{a.value + d / 4, a.value + d / 2, a.value + d * 3 / 4, a.value + d / 2 - eps, a.value + d / 2 + eps})
        for (const Mode& m : modes) check_quantize(mm, f, exact_of(RefValue::of(p)), m);
    }
  }
}

// ---- operations -----------------------------------------------------------------------------------

namespace {

enum class Op { Add, Sub, Mul, Fma };
const char* op_name(Op op) {
  switch (op) {
    case Op::Add: return "add";
    case Op::Sub: return "sub";
    case Op::Mul: return "mul";
    case Op::Fma: return "fma";
  }
  return "?";
}

struct OpCase {
  std::string in, out;
};

// A fixed small set of addends for fma: zeros, the smallest and largest steps, one, specials.
std::vector<u128> fma_addends(const Format& f) {
  std::set<u128> cs;
  const u128 n = u128(1) << code_width(f);
  std::vector<std::pair<cpp_rational, u128>> finite;
  for (u128 c = 0; c < n; ++c) {
    const RefValue v = ref_decode(f, c);
    if (v.is_nan) {
      if (!cs.count(c) && std::none_of(cs.begin(), cs.end(), [&](u128 x) { return ref_decode(f, x).is_nan; }))
        cs.insert(c);
      continue;
    }
    if (v.is_inf) {
      cs.insert(c);
      continue;
    }
    finite.push_back({v.value, c});
    if (v.value == 0) cs.insert(c);  // both zeros
  }
  std::sort(finite.begin(), finite.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  cs.insert(finite.front().second);  // most negative (or zero)
  cs.insert(finite.back().second);   // max
  for (const auto& [v, c] : finite)
    if (v > 0) {
      cs.insert(c);  // smallest positive
      break;
    }
  for (const auto& [v, c] : finite)
    if (v >= 1) {
      cs.insert(c);  // one, or the first value above it
      break;
    }
  for (auto it = finite.rbegin(); it != finite.rend(); ++it)
    if (it->first < 0 && it->first > -1) {
      cs.insert(it->second);  // a small negative value
      break;
    }
  return {cs.begin(), cs.end()};
}

// One op case: formats, every input code decoded once (the reference is slow enough without
// decoding each operand again for every op and mode), and the fma addends.
struct OpContext {
  Format in, out;
  std::vector<RefValue> dec;
  std::vector<u128> addends;
  explicit OpContext(const OpCase& oc) : in(Format::parse(oc.in)), out(Format::parse(oc.out)), addends(fma_addends(in)) {
    for (u128 c = 0; c < (u128(1) << code_width(in)); ++c) dec.push_back(ref_decode(in, c));
  }
};

void check_op(Mismatches& mm, Op op, const OpContext& ctx, u128 a, u128 b, u128 c, const Mode& m) {
  const Format &in = ctx.in, &out = ctx.out;
  const RefValue &x = ctx.dec[std::size_t(a)], &y = ctx.dec[std::size_t(b)], &z = ctx.dec[std::size_t(c)];
  std::string error;
  Quantized got;
  RefResult want;
  switch (op) {
    case Op::Add:
      got = guarded([&] { return add(in, a, b, out, m.spec, m.r); }, error);
      want = ref_round_sum(out, x, y, m.spec, m.r);
      break;
    case Op::Sub:
      got = guarded([&] { return sub(in, a, b, out, m.spec, m.r); }, error);
      want = ref_round_sum(out, x, ref_negate(y), m.spec, m.r);
      break;
    case Op::Mul:
      got = guarded([&] { return mul(in, a, b, out, m.spec, m.r); }, error);
      want = ref_mul_values(out, x, y, m.spec, m.r);
      break;
    case Op::Fma:
      got = guarded([&] { return fma(in, a, b, in, c, out, m.spec, m.r); }, error);
      want = ref_fma_values(out, x, y, z, m.spec, m.r);
      break;
  }
  bool ok = error.empty() && same(out, got, want);
  // IEEE 754 7.2: whether fma(0, inf, quiet nan) signals invalid is implementation-defined.
  const bool zero_times_inf = (x.is_inf && y.is_zero()) || (x.is_zero() && y.is_inf);
  if (!ok && error.empty() && op == Op::Fma && z.is_nan && zero_times_inf) ok = same(out, got, {want.code, 0});
  mm.check(ok, [&] {
    std::ostringstream s;
    s << op_name(op) << " " << in.spec() << " -> " << out.spec() << " " << show_mode(m) << " a=" << show_code(in, a, 0)
      << " b=" << show_code(in, b, 0);
    if (op == Op::Fma) s << " c=" << show_code(in, c, 0);
    s << ": got " << (error.empty() ? show_code(out, got.code, got.status) : "exception " + error) << ", want "
      << show_code(out, want.code, want.status);
    return s.str();
  });
}

// add, sub and mul of (a, b); fma with every addend, or (all_addends false) with one of them chosen
// by the pair so that sweeps over many pairs still meet every addend.
void check_pair(Mismatches& mm, const OpContext& ctx, u128 a, u128 b, const Mode& m, bool all_addends) {
  check_op(mm, Op::Add, ctx, a, b, 0, m);
  check_op(mm, Op::Sub, ctx, a, b, 0, m);
  check_op(mm, Op::Mul, ctx, a, b, 0, m);
  if (all_addends) {
    for (u128 c : ctx.addends) check_op(mm, Op::Fma, ctx, a, b, c, m);
  } else {
    check_op(mm, Op::Fma, ctx, a, b, ctx.addends[std::size_t((a * 7 + b) % ctx.addends.size())], m);
  }
}

std::vector<Mode> op_modes(const Format& out) {
  std::vector<Mode> modes = deterministic_modes(out);
  for (Overflow o : applicable_overflows(out)) {
    for (std::uint32_t r : {0u, 5u, 15u}) modes.push_back({{Rounding::Stochastic, o, 4}, r});
    modes.push_back({{Rounding::Stochastic, o, 16}, 0x8000u});
    modes.push_back({{Rounding::Stochastic, o, 32}, 0xffffffffu});
  }
  return modes;
}

// Every pair under every mode with every addend: the exhaustive check (Long).
void check_ops_exhaustive(const OpCase& oc) {
  const OpContext ctx(oc);
  Mismatches mm("ops " + oc.in + " -> " + oc.out);
  const u128 n = ctx.dec.size();
  for (const Mode& m : op_modes(ctx.out))
    for (u128 a = 0; a < n; ++a)
      for (u128 b = 0; b < n; ++b) check_pair(mm, ctx, a, b, m, true);
}

// The default run, sized by input width so each case takes well under a second: inputs up to 4 bits
// get every pair under every mode; up to 6 bits every pair under nearest-even and 100 random pairs
// per mode; 8 bits 5000 random pairs under nearest-even and 60 per mode. Every pair also meets every
// addend under nearest-even where there are at most 4096 pairs.
void check_ops_default(const OpCase& oc) {
  const OpContext ctx(oc);
  Mismatches mm("ops " + oc.in + " -> " + oc.out);
  const u128 n = ctx.dec.size();
  const int w = code_width(ctx.in);
  const Mode ne{{Rounding::NearestEven, default_of(ctx.out), 16}, 0};
  std::mt19937 rng(77);
  if (w <= 6) {
    for (u128 a = 0; a < n; ++a)
      for (u128 b = 0; b < n; ++b) check_pair(mm, ctx, a, b, ne, true);
  } else {
    for (int i = 0; i < 5000; ++i) check_pair(mm, ctx, u128(rng() % n), u128(rng() % n), ne, false);
  }
  for (const Mode& m : op_modes(ctx.out)) {
    if (w <= 4) {
      for (u128 a = 0; a < n; ++a)
        for (u128 b = 0; b < n; ++b) check_pair(mm, ctx, a, b, m, false);
    } else {
      for (int i = 0, pairs = w <= 6 ? 100 : 60; i < pairs; ++i)
        check_pair(mm, ctx, u128(rng() % n), u128(rng() % n), m, false);
    }
  }
}

const std::vector<OpCase> kOpCases = {
    {"fp4e2m1", "fp4e2m1"},   {"fp4e2m1", "float<3,2>"},  {"fp4e2m1", "fixed<5,1>"},  {"float<3,2>", "float<3,2>"},
    {"float<3,2>", "fp4e2m1"}, {"float<3,2>", "float<4,3,ftz>"}, {"fp6e2m3", "fp6e2m3"}, {"fp6e2m3", "fp8e4m3"},
    {"fp8e4m3", "fp8e4m3"},   {"fp8e4m3", "fp16"},        {"fp8e4m3", "fp4e2m1"},     {"fp8e5m2", "fp8e5m2"},
    {"fp8e5m2", "fp8e4m3"},   {"fixed<6,3>", "fixed<6,3>"}, {"fixed<6,3>", "fixed<5,1>"}, {"fixed<6,3>", "fp6e2m3"},
    {"ufixed<5,2>", "ufixed<5,2>"}, {"ufixed<5,2>", "fixed<4,0>"}, {"float<4,3,u>", "float<4,3,u>"},
    {"e8m0", "e8m0"}, {"pow2<4>", "pow2<4>"}, {"float<4,3,ftz>", "float<4,3,ftz>"}};

class Ops : public ::testing::TestWithParam<OpCase> {};

std::string op_case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string n;
  for (char c : info.param.in + "_to_" + info.param.out) n += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return n;
}

}  // namespace

TEST_P(Ops, AgainstReference) { check_ops_default(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Reference, Ops, ::testing::ValuesIn(kOpCases), op_case_name);

// fma's addend in a format of its own (fp16 addends, fp8 factors), into both formats: random triples
// under nearest-even and under every mode.
TEST(ReferenceOps, FmaWithAnAddendInAnotherFormat) {
  const Format in = Format::parse("fp8e4m3"), cf = Format::parse("fp16");
  std::mt19937 rng(5);
  for (const Format& out : {in, cf}) {
    Mismatches mm("fma fp8e4m3 * fp8e4m3 + fp16 -> " + out.spec());
    std::vector<Mode> modes(200, Mode{{Rounding::NearestEven, default_of(out), 16}, 0});
    for (const Mode& m : op_modes(out))
      for (int i = 0; i < 20; ++i) modes.push_back(m);
    for (const Mode& m : modes) {
      const u128 a = rng() & 0xff, b = rng() & 0xff;
      // Half of the addends near the product, so that cancellation and ties occur.
      u128 c = rng() & 0xffff;
      const RefValue x = ref_decode(in, a), y = ref_decode(in, b);
      bool invalid = false;
      const RefValue p = ref_exact_mul(x, y, invalid);
      if ((rng() & 1) && !p.is_nan && !p.is_inf && p.value != 0) {
        const RefResult near = ref_quantize(cf, ref_negate(p), {Rounding::NearestEven, Overflow::Saturate, 16});
        c = (near.code + (rng() % 5) - 2) & 0xffff;
      }
      std::string error;
      const Quantized got = guarded([&] { return fma(in, a, b, cf, c, out, m.spec, m.r); }, error);
      const RefResult want = ref_fma(in, a, b, cf, c, out, m.spec, m.r);
      mm.check(error.empty() && same(out, got, want), [&] {
        return "fma " + show_mode(m) + " a=" + show_code(in, a, 0) + " b=" + show_code(in, b, 0) +
               " c=" + show_code(cf, c, 0) + ": got " + (error.empty() ? show_code(out, got.code, got.status) : error) +
               ", want " + show_code(out, want.code, want.status);
      });
    }
  }
}

class LongOps : public Ops {};

TEST_P(LongOps, EveryPairEveryModeEveryAddend) {
  SKIP_UNLESS_LONG();
  check_ops_exhaustive(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Long, LongOps, ::testing::ValuesIn(kOpCases), op_case_name);

// ---- the fp32 array quantizer's overflow, infinity and nan lanes ----------------------------------

namespace {

RefValue ref_from_float(float x) {
  if (std::isnan(x)) return RefValue::nan();
  if (std::isinf(x)) return RefValue::inf(x < 0);
  if (x == 0) return RefValue::zero(std::signbit(x));
  return RefValue::of(cpp_rational(double(x)));
}

// Inputs at and beyond both ends of a format's range: the ends, steps above them by 2^-j of their
// size, powers of two up to fp32's largest number, infinities and nans (quiet, negative, signalling
// patterns, all-ones payload).
std::vector<float> overflow_inputs(const Format& f) {
  cpp_rational hi, lo;
  if (f.kind == FormatKind::Fixed) {
    hi = cpp_rational(fixed_hi(f)) * pow2(-f.fl);
    lo = cpp_rational(fixed_lo(f)) * pow2(-f.fl);
  } else {
    hi = fmax_value(f);
    lo = f.is_signed ? cpp_rational(-hi) : cpp_rational(0);
  }
  std::vector<float> v;
  for (const cpp_rational& end : {hi, lo}) {
    const double e = end.convert_to<double>();
    if (e == 0) continue;
    for (int j = 0; j <= 30; ++j) {
      v.push_back(float(e * (1 + std::ldexp(1.0, -j))));
      v.push_back(std::nextafter(float(e * (1 + std::ldexp(1.0, -j))), 0.0f));
    }
    for (double p = e * 2; std::abs(p) < 3.4e38; p *= 2) v.push_back(float(p));
    v.push_back(float(e));
  }
  for (float s : {1.0f, -1.0f}) {
    v.push_back(s * std::numeric_limits<float>::max());
    v.push_back(s * std::numeric_limits<float>::infinity());
  }
  for (std::uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0xffffffffu})
    v.push_back(std::bit_cast<float>(nan));
  return v;
}

}  // namespace

// quantize_f32 hands lanes that overflow or hold an infinity or a nan to the scalar quantize(), so
// a kernel-against-quantize() test compares quantize() with itself there. These lanes meet the Boost
// model instead, in every rounding and overflow mode.
TEST(ReferenceKernel, OverflowInfinityAndNanLanesOfTheArrayQuantizer) {
  const std::vector<Rounding> roundings = {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero,
                                           Rounding::NearestUp,   Rounding::NearestDown, Rounding::TowardZero,
                                           Rounding::Down,        Rounding::Up,          Rounding::Odd,
                                           Rounding::Stochastic};
  using Kernel = void (*)(const Format&, const RoundSpec&, std::span<const float>, std::span<float>, const SrStream&,
                          std::uint64_t);
  const SrStream sr{99, 5};
  for (const char* spec : {"fp16", "bf16", "tf32", "fp8e4m3", "fp8e5m2", "fp6e3m2", "fp6e2m3", "fp4e2m1",
                           "float<4,3,u>", "float<3,2,fn>", "float<5,10,ftz>", "fixed<8,4>", "ufixed<8,4>", "int<8>",
                           "fixed<16,-3>", "fixed<24,12>"}) {
    const Format f = Format::parse(spec);
    const std::vector<float> in = overflow_inputs(f);
    for (Rounding r : roundings)
      for (Overflow o : applicable_overflows(f)) {
        const RoundSpec rs{r, o, 16};
        Mismatches mm(std::string("array quantizer ") + spec + " " + std::string(to_string(r)) + "/" +
                      std::string(to_string(o)));
        for (Kernel kernel : {Kernel(&quantize_f32), Kernel(&quantize_f32_portable)}) {
          std::vector<float> out(in.size());
          kernel(f, rs, in, out, sr, 0);
          for (std::size_t i = 0; i < in.size(); ++i) {
            const std::uint32_t bits = r == Rounding::Stochastic ? sr.bits(i, 16) : 0;
            const RefValue want = ref_decode(f, ref_quantize(f, ref_from_float(in[i]), rs, bits).code);
            const float got = out[i];
            bool ok;
            if (want.is_nan) ok = std::isnan(got);
            else if (want.is_inf) ok = std::isinf(got) && std::signbit(got) == want.neg;
            else ok = !std::isnan(got) && cpp_rational(double(got)) == want.value && std::signbit(got) == want.neg;
            mm.check(ok, [&] {
              std::ostringstream s;
              s << (kernel == Kernel(&quantize_f32) ? "simd" : "portable") << " input " << std::hexfloat << in[i]
                << " gave " << got << ", model " << (want.is_nan ? "nan" : want.is_inf ? "inf" : "finite")
                << " " << want.value.convert_to<double>();
              return s.str();
            });
          }
        }
      }
  }
}
