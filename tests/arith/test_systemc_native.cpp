// Proves bitsim::arith::quantize bit-exact against independent references: SystemC's sc_fix/sc_ufix
// for fixed point, and this CPU's own IEEE arithmetic (SSE conversions, F16C, AVX-512 BF16).
#define SC_INCLUDE_FX  // <systemc> leaves the fixed-point types out unless asked for them
#include <systemc>

#include <gtest/gtest.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/rounding.hpp"

using namespace bitsim::arith;

// libsystemc.so carries its own main() that calls sc_main(); GoogleTest's main wins the link, but
// the shared library's reference to sc_main must still resolve.
int sc_main(int, char*[]) { return 0; }

namespace {

// ---------------------------------------------------------------------------------------------
// Reporting helpers
// ---------------------------------------------------------------------------------------------

std::string hex(u128 v) {
  char buf[40];
  const auto hi = std::uint64_t(v >> 64), lo = std::uint64_t(v);
  if (hi) std::snprintf(buf, sizeof buf, "0x%llx%016llx", (unsigned long long)hi, (unsigned long long)lo);
  else std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)lo);
  return buf;
}

std::string hexfloat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

// Collects disagreements and prints the first few in full, so one bug cannot flood the log while
// the total still says how widespread it is.
class Mismatches {
 public:
  void compared() { ++compared_; }  // one comparison ran (whether or not it matched)
  void add(const std::string& what) {
    if (count_++ < kShown) text_ += what + "\n";
  }
  std::uint64_t count() const { return count_; }
  // No mismatch, and at least `min_compared` comparisons ran: a loop that ran over nothing fails.
  void expect_none(std::uint64_t min_compared = 1) const {
    EXPECT_EQ(count_, 0u) << text();
    EXPECT_GE(compared_, min_compared) << "too few comparisons ran";
  }
  std::string text() const { return text_ + (count_ > kShown ? "... (first " + std::to_string(kShown) + " shown)\n" : ""); }

 private:
  static constexpr std::uint64_t kShown = 20;
  std::uint64_t count_ = 0, compared_ = 0;
  std::string text_;
};

// ---------------------------------------------------------------------------------------------
// SystemC sc_fix / sc_ufix
// ---------------------------------------------------------------------------------------------

struct QMode {
  sc_dt::sc_q_mode sc;
  Rounding bitsim;
  const char* name;
};
// docs/arith.md and the Rounding comments: the one-to-one mapping of SystemC quantization modes.
constexpr QMode kQModes[] = {
    {sc_dt::SC_RND, Rounding::NearestUp, "SC_RND"},
    {sc_dt::SC_RND_ZERO, Rounding::NearestZero, "SC_RND_ZERO"},
    {sc_dt::SC_RND_MIN_INF, Rounding::NearestDown, "SC_RND_MIN_INF"},
    {sc_dt::SC_RND_INF, Rounding::NearestAway, "SC_RND_INF"},
    {sc_dt::SC_RND_CONV, Rounding::NearestEven, "SC_RND_CONV"},
    {sc_dt::SC_TRN, Rounding::Down, "SC_TRN"},
    {sc_dt::SC_TRN_ZERO, Rounding::TowardZero, "SC_TRN_ZERO"},
};

struct OMode {
  sc_dt::sc_o_mode sc;
  Overflow bitsim;
  const char* name;
};
constexpr OMode kOModes[] = {
    {sc_dt::SC_SAT, Overflow::Saturate, "SC_SAT"},
    {sc_dt::SC_SAT_ZERO, Overflow::SaturateZero, "SC_SAT_ZERO"},
    {sc_dt::SC_SAT_SYM, Overflow::SaturateSymmetric, "SC_SAT_SYM"},
    {sc_dt::SC_WRAP, Overflow::Wrap, "SC_WRAP"},
};

struct FixedFormat {
  int wl;
  int fl;
  bool is_signed;
  Format format() const { return Format::fixed(wl, fl, is_signed); }
  std::string name() const {
    return std::string(is_signed ? "fixed<" : "ufixed<") + std::to_string(wl) + "," + std::to_string(fl) +
           "> (sc iwl " + std::to_string(wl - fl) + ")";
  }
};

struct ScResult {
  u128 code = 0;
  bool q_flag = false;
  bool o_flag = false;
};

// The code of an sc_fxnum: bit i of range() is the word's bit i counted from its LSB, read 64 bits
// at a time so words wider than 64 (or 53) bits come back exactly, without going through a double.
u128 sc_code(sc_dt::sc_fxnum& n, int wl) {
  u128 code = 0;
  for (int lo = 0; lo < wl; lo += 64) {
    const int hi = std::min(wl, lo + 64) - 1;
    code |= u128(n.range(hi, lo).to_uint64()) << lo;
  }
  return code;
}

// One SystemC variable of the target format. sc_fix/sc_ufix take their parameters at run time, so
// one binary covers any (wl, iwl); n_bits = 0 makes SC_WRAP wrap all wl bits.
class ScTarget {
 public:
  ScTarget(const FixedFormat& f, sc_dt::sc_q_mode q, sc_dt::sc_o_mode o) : wl_(f.wl) {
    const sc_dt::sc_fxtype_params p(f.wl, f.wl - f.fl, q, o, 0);
    if (f.is_signed) fix_ = std::make_unique<sc_dt::sc_fix>(p);
    else ufix_ = std::make_unique<sc_dt::sc_ufix>(p);
  }
  // Assignment quantizes, then applies overflow (scfx_rep::cast), and records both flags.
  template <class T>
  ScResult assign(const T& v) {
    sc_dt::sc_fxnum* n;
    if (fix_) {
      *fix_ = v;
      n = fix_.get();
    } else {
      *ufix_ = v;
      n = ufix_.get();
    }
    return {sc_code(*n, wl_), n->quantization_flag(), n->overflow_flag()};
  }
  sc_dt::sc_fxnum& num() { return fix_ ? static_cast<sc_dt::sc_fxnum&>(*fix_) : *ufix_; }

 private:
  int wl_;
  std::unique_ptr<sc_dt::sc_fix> fix_;
  std::unique_ptr<sc_dt::sc_ufix> ufix_;
};

// SystemC has one quantization flag and one overflow flag; bitsim raises inexact with every
// overflow (IEEE style), and never underflow or invalid for a finite input into fixed point.
bool same_flags(const ScResult& ref, unsigned status) {
  return bool(status & kOverflow) == ref.o_flag && bool(status & kInexact) == (ref.q_flag || ref.o_flag) &&
         !(status & (kUnderflow | kInvalid));
}

std::string describe_fixed(const FixedFormat& f, const QMode& q, const OMode& o, const std::string& input,
                           const ScResult& ref, const Quantized& got) {
  return f.name() + " " + q.name + "/" + o.name + " input " + input + ": SystemC code " + hex(ref.code) +
         (ref.q_flag ? " q_flag" : "") + (ref.o_flag ? " o_flag" : "") + ", bitsim code " + hex(got.code) + " " +
         status_string(got.status);
}

// Inputs for one format, all exact doubles: a grid at 1/8 LSB (so exact codes, ties and every
// eighth in between occur) spanning two wrap periods on each side of zero when that is small,
// else windows of that grid around zero, the range ends and the wrap points; the neighbouring
// doubles of the range ends where the grid no longer fits fp64; huge and tiny values; and random
// doubles from far below half an LSB to far above the range, with short mantissas mixed in so
// ties keep occurring.
std::vector<double> fixed_inputs(const FixedFormat& f, std::mt19937_64& rng, int n_random) {
  std::vector<double> in;
  const int eighth = -f.fl - 3;  // the grid step is 2^eighth
  constexpr std::int64_t kExact = std::int64_t{1} << 53;
  auto grid = [&](i128 k) {
    if (k > -i128(kExact) && k < i128(kExact)) in.push_back(std::ldexp(double(std::int64_t(k)), eighth));
  };
  const i128 period = i128(1) << f.wl;  // codes per wrap period
  if (f.wl <= 8) {
    for (i128 k = -16 * period; k <= 16 * period; ++k) grid(k);
  } else {
    const i128 half = period / 2;
    const i128 centres[] = {0, half, -half, period, -period, half + period, -half - period, 2 * period, -2 * period};
    for (i128 c : centres)
      for (int d = -40; d <= 40; ++d) grid(8 * c + d);
  }
  // The range ends in fp64 neighbours: the only inputs near them when wl > ~50.
  for (int e : {f.wl - 1 - f.fl, f.wl - f.fl, f.wl + 1 - f.fl}) {
    for (double s : {1.0, -1.0}) {
      double up = std::ldexp(s, e), down = up;
      for (int i = 0; i < 8; ++i) {
        in.push_back(up);
        in.push_back(down);
        up = std::nextafter(up, INFINITY);
        down = std::nextafter(down, -INFINITY);
      }
    }
  }
  for (double v : {0.0, -0.0, 1e300, -1e300, 1e-300, -1e-300, std::numeric_limits<double>::denorm_min(),
                   -std::numeric_limits<double>::max()})
    in.push_back(v);
  // Magnitudes around 2^128 LSBs, where a 128-bit integer code path runs out of bits.
  for (int e = 120; e <= 136; ++e)
    for (double m : {1.0, -1.0, 1.5, -1.5, 1.0 + 0x1p-52, -1.0 - 0x1p-52}) in.push_back(std::ldexp(m, e - f.fl));
  std::uniform_int_distribution<int> exp_dist(-f.fl - 6, f.wl - f.fl + 3);
  std::uniform_int_distribution<int> bits_dist(1, 53);
  for (int i = 0; i < n_random; ++i) {
    const std::uint64_t r = rng();
    const int bits = bits_dist(rng);
    const std::uint64_t mant = (r >> 11) | (std::uint64_t{1} << 52);  // 53 significant bits
    const std::uint64_t kept = mant >> (53 - bits) << (53 - bits);
    const double v = std::ldexp(double(kept), exp_dist(rng) - 52);
    in.push_back((r & 1) ? -v : v);
  }
  return in;
}

// Formats: wl 1..16 with fraction bits chosen so that iwl = wl - fl is, across them, negative, zero,
// between 0 and wl, equal to wl and larger than wl; then a few wide words up to 96 bits.
std::vector<FixedFormat> fixed_formats() {
  std::vector<FixedFormat> fs;
  for (int wl = 1; wl <= 16; ++wl) {
    std::vector<int> fls = {wl / 2, 0};
    switch (wl % 3) {
      case 0: fls.push_back(wl + 3); break;   // iwl = -3: all bits below 2^-3
      case 1: fls.push_back(-2); break;       // iwl = wl + 2: LSB is 4
      case 2: fls.push_back(wl); break;       // iwl = 0: pure fraction
    }
    std::sort(fls.begin(), fls.end());
    fls.erase(std::unique(fls.begin(), fls.end()), fls.end());
    for (int fl : fls) {
      fs.push_back({wl, fl, true});
      fs.push_back({wl, fl, false});
    }
  }
  for (FixedFormat f : {FixedFormat{20, 10, true}, FixedFormat{24, -8, false}, FixedFormat{32, 16, true},
                        FixedFormat{32, 40, true}, FixedFormat{40, 20, false}, FixedFormat{48, 24, true},
                        FixedFormat{48, 60, true}, FixedFormat{53, 26, true}, FixedFormat{60, 30, true},
                        FixedFormat{64, 32, true}, FixedFormat{64, 0, false}, FixedFormat{96, 48, true}})
    fs.push_back(f);
  return fs;
}

TEST(SystemCFixed, HarnessReadsBackTheValueSystemCHolds) {
  // The code read through range() must denote the value SystemC reports (checked where fp64 holds
  // it), so the comparisons below compare codes and not an artefact of reading them.
  for (const FixedFormat& f : {FixedFormat{8, 4, true}, FixedFormat{8, 4, false}, FixedFormat{5, -3, true},
                               FixedFormat{6, 9, true}, FixedFormat{48, 24, true}}) {
    ScTarget t(f, sc_dt::SC_RND_CONV, sc_dt::SC_SAT);
    for (double v : {0.0, 0.3125, -0.3125, 1.75, -2.5, 3.0, 100.0, -100.0, 0.01}) {
      const ScResult r = t.assign(v);
      EXPECT_EQ(decode(f.format(), r.code).to_double(), t.num().to_double()) << f.name() << " " << v;
    }
  }
}

TEST(SystemCFixed, SatSymMapsTheExactMostNegativeValueToMinusMax) {
  // docs/arith.md: saturate-symmetric excludes the most negative code even when it is exact, as
  // SC_SAT_SYM does (scfx_rep::overflow treats |x| = 2^(iwl-1) as an underflow).
  const FixedFormat f{8, 0, true};
  ScTarget t(f, sc_dt::SC_TRN, sc_dt::SC_SAT_SYM);
  const ScResult r = t.assign(-128.0);
  const Quantized q = quantize(f.format(), Exact::from_double(-128.0), {Rounding::Down, Overflow::SaturateSymmetric});
  EXPECT_EQ(r.code, u128(0x81));
  EXPECT_TRUE(r.o_flag);
  EXPECT_EQ(q.code, u128(0x81));
  EXPECT_EQ(q.status, unsigned(kOverflow | kInexact));
}

TEST(SystemCFixed, HugeNegativeValuesSaturateToTheNegativeEnd) {
  // docs/arith.md: saturate gives the nearest end of the range, so any negative value beyond it
  // gives the most negative code (0 for unsigned), however many bits beyond it lies. Most of these
  // are multiples of 2^128 LSBs, whose magnitude is zero modulo 2^128: the sign must survive that.
  for (const FixedFormat& f : {FixedFormat{8, 0, true}, FixedFormat{8, 0, false}, FixedFormat{16, 8, true}}) {
    for (double v : {-0x1p127, -0x1p128, -0x1.8p128, -0x1p140, -0x1p200, -1e300}) {
      for (const OMode& o : {kOModes[0], kOModes[2]}) {  // SC_SAT, SC_SAT_SYM
        ScTarget t(f, sc_dt::SC_RND_CONV, o.sc);
        const ScResult ref = t.assign(v);
        const Quantized got = quantize(f.format(), Exact::from_double(v), {Rounding::NearestEven, o.bitsim});
        EXPECT_EQ(hex(got.code), hex(ref.code)) << f.name() << " " << o.name << " input " << hexfloat(v);
        EXPECT_TRUE(same_flags(ref, got.status)) << f.name() << " " << o.name << " input " << hexfloat(v);
      }
    }
  }
}

TEST(SystemCFixed, DoublesQuantizeLikeSystemCInEveryModeAndFormat) {
  Mismatches mm;
  std::uint64_t checked = 0;
  std::mt19937_64 rng(20240611);
  for (const FixedFormat& f : fixed_formats()) {
    const Format fmt = f.format();
    const std::vector<double> inputs = fixed_inputs(f, rng, f.wl > 16 ? 2000 : 1000);
    for (const QMode& q : kQModes) {
      for (const OMode& o : kOModes) {
        ScTarget t(f, q.sc, o.sc);
        const RoundSpec spec{q.bitsim, o.bitsim};
        for (double v : inputs) {
          const ScResult ref = t.assign(v);
          const Quantized got = quantize(fmt, Exact::from_double(v), spec);
          ++checked;
          mm.compared();
          if (got.code != ref.code || !same_flags(ref, got.status))
            mm.add(describe_fixed(f, q, o, hexfloat(v), ref, got));
        }
      }
    }
  }
  mm.expect_none();
  RecordProperty("checked", std::to_string(checked));
  EXPECT_GT(checked, 1000000u);
}

// Operand pairs whose exact product (a wide sc_fix, an integer code times 2^-(fa+fb) for bitsim) is
// then quantized into each target.
struct ProductCase {
  FixedFormat a, b;
  std::vector<FixedFormat> targets;
  int random_pairs;  // 0: every pair of codes
};

// A uniformly random code of f as a signed integer.
std::int64_t random_code(const FixedFormat& f, std::mt19937_64& rng) {
  const std::uint64_t r = rng() >> (64 - f.wl);
  if (!f.is_signed) return std::int64_t(r);
  return std::int64_t(r) - (std::int64_t{1} << (f.wl - 1));
}

TEST(SystemCFixed, ExactProductsQuantizeLikeSystemC) {
  const std::vector<ProductCase> cases = {
      {{5, 2, true}, {6, 5, true},
       {{6, 3, true}, {4, 1, true}, {5, 4, false}, {8, 9, true}, {3, -1, true}, {11, 7, true}}, 0},
      {{6, 3, false}, {5, 4, true}, {{6, 4, true}, {5, 5, false}, {7, 2, true}}, 0},
      {{5, 0, false}, {5, 5, false}, {{5, 2, false}, {4, 4, true}, {6, -1, false}}, 0},
      {{16, 8, true}, {16, 12, true}, {{16, 10, true}, {12, 4, true}, {20, 16, false}}, 3000},
      {{32, 16, true}, {24, 20, true}, {{32, 20, true}, {40, 30, true}, {56, 36, true}, {24, 2, true}}, 2000},
      {{48, 24, true}, {48, 40, true}, {{64, 40, true}, {32, 30, true}, {96, 64, true}, {80, 50, false}}, 2000},
  };
  Mismatches mm;
  std::mt19937_64 rng(7);
  for (const ProductCase& c : cases) {
    // The wide product: one extra integer bit holds every signed or unsigned product exactly.
    const int wide_wl = c.a.wl + c.b.wl + 1;
    const int wide_fl = c.a.fl + c.b.fl;
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    if (c.random_pairs == 0) {
      for (std::uint64_t i = 0; i < (std::uint64_t{1} << c.a.wl); ++i)
        for (std::uint64_t j = 0; j < (std::uint64_t{1} << c.b.wl); ++j)
          pairs.emplace_back(c.a.is_signed ? std::int64_t(i) - (std::int64_t{1} << (c.a.wl - 1)) : std::int64_t(i),
                             c.b.is_signed ? std::int64_t(j) - (std::int64_t{1} << (c.b.wl - 1)) : std::int64_t(j));
    } else {
      for (int i = 0; i < c.random_pairs; ++i) pairs.emplace_back(random_code(c.a, rng), random_code(c.b, rng));
    }
    std::vector<std::unique_ptr<sc_dt::sc_fix>> wides;
    for (const auto& [ca, cb] : pairs) {
      // Operand codes are at most 48 bits, so the doubles that set them are exact.
      ScTarget a(c.a, sc_dt::SC_TRN, sc_dt::SC_WRAP), b(c.b, sc_dt::SC_TRN, sc_dt::SC_WRAP);
      const ScResult ra = a.assign(std::ldexp(double(ca), -c.a.fl));
      const ScResult rb = b.assign(std::ldexp(double(cb), -c.b.fl));
      ASSERT_FALSE(ra.q_flag || ra.o_flag || rb.q_flag || rb.o_flag) << ca << " " << cb;
      auto w = std::make_unique<sc_dt::sc_fix>(wide_wl, wide_wl - wide_fl, sc_dt::SC_TRN, sc_dt::SC_WRAP);
      *w = a.num() * b.num();
      ASSERT_FALSE(w->quantization_flag() || w->overflow_flag()) << "wide product not exact";
      ASSERT_EQ(sc_code(*w, wide_wl), u128(i128(ca) * cb) & ((u128(1) << wide_wl) - 1));
      wides.push_back(std::move(w));
    }
    for (const FixedFormat& tf : c.targets) {
      const Format fmt = tf.format();
      for (const QMode& q : kQModes) {
        for (const OMode& o : kOModes) {
          ScTarget t(tf, q.sc, o.sc);
          const RoundSpec spec{q.bitsim, o.bitsim};
          for (std::size_t i = 0; i < pairs.size(); ++i) {
            const auto [ca, cb] = pairs[i];
            const ScResult ref = t.assign(*wides[i]);
            const Quantized got = quantize(fmt, Exact::from_int(i128(ca) * cb, -wide_fl), spec);
            mm.compared();
            if (got.code != ref.code || !same_flags(ref, got.status))
              mm.add(describe_fixed(tf, q, o,
                                    std::to_string(ca) + " * " + std::to_string(cb) + " * 2^-" + std::to_string(wide_fl),
                                    ref, got));
          }
        }
      }
    }
  }
  mm.expect_none();
}

// ---------------------------------------------------------------------------------------------
// The CPU's IEEE arithmetic
// ---------------------------------------------------------------------------------------------

const Format kFp32 = Format::floating(8, 23);
const Format kFp16 = Format::floating(5, 10);
const Format kBf16 = Format::floating(8, 7);

struct FeMode {
  int fe;
  Rounding bitsim;
  const char* name;
};
constexpr FeMode kFeModes[] = {
    {FE_TONEAREST, Rounding::NearestEven, "to-nearest"},
    {FE_DOWNWARD, Rounding::Down, "downward"},
    {FE_UPWARD, Rounding::Up, "upward"},
    {FE_TOWARDZERO, Rounding::TowardZero, "toward-zero"},
};

// Sets the dynamic rounding direction (x87 and MXCSR) for a scope and restores round-to-nearest,
// so a failing assertion cannot leave the rest of the binary in a directed mode.
class RoundingScope {
 public:
  explicit RoundingScope(int fe) : ok_(std::fesetround(fe) == 0) {}
  ~RoundingScope() { std::fesetround(FE_TONEAREST); }
  bool ok() const { return ok_; }

 private:
  bool ok_;
};

unsigned status_from_fe(int fe) {
  return ((fe & FE_INEXACT) ? kInexact : 0) | ((fe & FE_UNDERFLOW) ? kUnderflow : 0) |
         ((fe & FE_OVERFLOW) ? kOverflow : 0) | ((fe & FE_INVALID) ? kInvalid : 0);
}

// The operations under test are out of line, with volatile operands and results, so the compiler
// can neither fold them at compile time nor move them across the flag accesses.
__attribute__((noinline)) float cpu_f64_to_f32(double d, unsigned& status) {
  volatile double in = d;
  std::feclearexcept(FE_ALL_EXCEPT);
  volatile float out = static_cast<float>(in);
  status = status_from_fe(std::fetestexcept(FE_ALL_EXCEPT));
  return out;
}

__attribute__((noinline)) float cpu_mul(float a, float b, unsigned& status) {
  volatile float va = a, vb = b;
  std::feclearexcept(FE_ALL_EXCEPT);
  volatile float out = va * vb;
  status = status_from_fe(std::fetestexcept(FE_ALL_EXCEPT));
  return out;
}

__attribute__((noinline)) float cpu_add(float a, float b, unsigned& status) {
  volatile float va = a, vb = b;
  std::feclearexcept(FE_ALL_EXCEPT);
  volatile float out = va + vb;
  status = status_from_fe(std::fetestexcept(FE_ALL_EXCEPT));
  return out;
}

bool fp32_is_nan(std::uint32_t c) { return (c & 0x7F800000u) == 0x7F800000u && (c & 0x7FFFFFu); }
bool fp16_is_nan(std::uint32_t c) { return (c & 0x7C00u) == 0x7C00u && (c & 0x3FFu); }
bool bf16_is_nan(std::uint32_t c) { return (c & 0x7F80u) == 0x7F80u && (c & 0x7Fu); }

float f32_from_bits(std::uint32_t b) { return std::bit_cast<float>(b); }

// fp64 inputs that matter for fp32: for a spread of fp32 codes in every binade (subnormals
// included), the code itself and the midpoint to the next code, each with its two fp64 neighbours
// on either side; the values straddling 2^-126 where tininess before and after rounding differ;
// specials; then random doubles over the fp32 range and beyond, and random bit patterns.
std::vector<double> f64_to_f32_inputs() {
  std::vector<double> in;
  std::mt19937_64 rng(99);
  auto with_neighbours = [&](double a) {
    double up = a, down = a;
    in.push_back(a);
    for (int i = 0; i < 2; ++i) {
      up = std::nextafter(up, INFINITY);
      down = std::nextafter(down, -INFINITY);
      in.push_back(up);
      in.push_back(down);
    }
  };
  for (std::uint32_t e = 0; e <= 254; ++e) {
    std::vector<std::uint32_t> mants = {0, 1, 2, 3, 0x400000, 0x3FFFFF, 0x400001, 0x7FFFFE, 0x7FFFFF};
    for (int i = 0; i < 3; ++i) mants.push_back(std::uint32_t(rng()) & 0x7FFFFF);
    for (std::uint32_t m : mants) {
      const double v = f32_from_bits((e << 23) | m);
      const double half_ulp = std::ldexp(1.0, int(std::max(e, 1u)) - 151);
      for (double s : {1.0, -1.0}) {
        with_neighbours(s * v);
        with_neighbours(s * (v + half_ulp));
      }
    }
  }
  // Just below 2^-126: rounded to 24 bits with unbounded exponent these stay tiny or reach 2^-126.
  for (int k = 0; k <= 16; ++k)
    for (double s : {1.0, -1.0}) with_neighbours(s * (std::ldexp(1.0, -126) - k * std::ldexp(1.0, -153)));
  const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, std::numeric_limits<double>::quiet_NaN(),
                             -std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::max(),
                             -std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min(),
                             -std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::min()};
  for (double v : specials) in.push_back(v);
  in.push_back(std::bit_cast<double>(std::uint64_t{0x7FF8000000000123}));  // quiet nan with a payload
  std::uniform_int_distribution<int> exp_dist(1023 - 155, 1023 + 130);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t r = rng();
    const std::uint64_t bits = (r & 0x800FFFFFFFFFFFFFull) | (std::uint64_t(exp_dist(rng)) << 52);
    in.push_back(std::bit_cast<double>(bits));
  }
  for (int i = 0; i < 30000; ++i) {
    const double v = std::bit_cast<double>(rng());
    if (!std::isnan(v) || (std::bit_cast<std::uint64_t>(v) & (std::uint64_t{1} << 51)))
      in.push_back(v);  // signalling nans are checked separately
  }
  return in;
}

TEST(NativeIeee, Fp64ToFp32MatchesTheCpuInAllFourDirectionsWithFlags) {
  const std::vector<double> inputs = f64_to_f32_inputs();
  Mismatches mm;
  for (const FeMode& m : kFeModes) {
    const RoundSpec spec{m.bitsim, Overflow::Ieee};
    std::vector<std::pair<float, unsigned>> cpu(inputs.size());
    {
      RoundingScope scope(m.fe);
      ASSERT_TRUE(scope.ok());
      for (std::size_t i = 0; i < inputs.size(); ++i) cpu[i].first = cpu_f64_to_f32(inputs[i], cpu[i].second);
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const auto want = std::bit_cast<std::uint32_t>(cpu[i].first);
      const Quantized got = quantize(kFp32, Exact::from_double(inputs[i]), spec);
      // nan payloads are not part of the spec: bitsim always gives the canonical quiet nan.
      const bool code_ok = fp32_is_nan(want) ? fp32_is_nan(std::uint32_t(got.code)) : got.code == want;
      mm.compared();
      if (!code_ok || got.status != cpu[i].second)
        mm.add(std::string("fp64->fp32 ") + m.name + " input " + hexfloat(inputs[i]) + ": cpu " + hex(want) + " " +
               status_string(cpu[i].second) + ", bitsim " + hex(got.code) + " " + status_string(got.status));
    }
  }
  mm.expect_none();
}

TEST(NativeIeee, Fp64SignallingNanToFp32IsNan) {
  // The CPU raises invalid when it quiets a signalling nan; bitsim's exact values have no signalling
  // nans (docs/arith.md: nan input gives the quiet nan with no flag), so only the code is compared.
  const double snan = std::bit_cast<double>(std::uint64_t{0x7FF0000000000001});
  unsigned st = 0;
  const auto want = std::bit_cast<std::uint32_t>(cpu_f64_to_f32(snan, st));
  EXPECT_TRUE(fp32_is_nan(want));
  EXPECT_EQ(st, unsigned(kInvalid));
  EXPECT_TRUE(fp32_is_nan(std::uint32_t(quantize(kFp32, Exact::from_double(snan), {}).code)));
}

// ---- F16C: fp32 -> fp16 with the rounding direction in the immediate ----

template <int kImm>
__attribute__((target("f16c"), noinline)) std::uint16_t f16c_round(float f, unsigned& status) {
  const __m128 in = _mm_set_ss(f);  // the other lanes are zero and raise nothing
  std::feclearexcept(FE_ALL_EXCEPT);
  const __m128i out = _mm_cvtps_ph(in, kImm);
  // The conversion must complete before the flags are read: make its result observable first.
  volatile std::uint16_t code = std::uint16_t(_mm_extract_epi16(out, 0));
  status = status_from_fe(std::fetestexcept(FE_ALL_EXCEPT));
  return code;
}

using F16cFn = std::uint16_t (*)(float, unsigned&);
// Same order as kFeModes. VCVTPS2PH ignores imm8 bits 7:3 (_MM_FROUND_NO_EXC), so MXCSR flags still
// update, which the flag comparison relies on.
constexpr F16cFn kF16cFns[] = {
    f16c_round<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>,
    f16c_round<_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC>,
    f16c_round<_MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC>,
    f16c_round<_MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC>,
};

// Eight at a time, codes only, for the exhaustive run.
template <int kImm>
__attribute__((target("avx,f16c"))) void f16c_round8(const std::uint32_t* in, std::uint16_t* out) {
  const __m256 v = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_cvtps_ph(v, kImm));
}
using F16c8Fn = void (*)(const std::uint32_t*, std::uint16_t*);
constexpr F16c8Fn kF16c8Fns[] = {
    f16c_round8<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>,
    f16c_round8<_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC>,
    f16c_round8<_MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC>,
    f16c_round8<_MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC>,
};

bool has_f16c() { return __builtin_cpu_supports("f16c"); }

// fp32 patterns around every fp16 value: the value itself and the midpoint to the next fp16 value
// (ties), each with its fp32 neighbours two ulps either way, for every fp16 code of both signs
// (subnormals, the overflow threshold 65520 and the values below the smallest subnormal included);
// the values just below 2^-14 where tininess after rounding matters; fp32 specials.
std::vector<std::uint32_t> fp16_boundary_patterns() {
  std::vector<std::uint32_t> in;
  auto with_neighbours = [&](float a) {
    const auto b = std::bit_cast<std::uint32_t>(a);
    for (int d = -2; d <= 2; ++d) in.push_back(b + std::uint32_t(d));  // same sign: stays in its half
  };
  for (std::uint32_t c = 0; c < 0x7C00; ++c) {
    const double v = c < 0x400 ? std::ldexp(double(c), -24) : std::ldexp(double(0x400 | (c & 0x3FF)), int(c >> 10) - 25);
    const double ulp = std::ldexp(1.0, std::max(int(c >> 10), 1) - 25);
    for (double s : {1.0, -1.0}) {
      if (c != 0) with_neighbours(float(s * v));
      with_neighbours(float(s * (v + ulp / 2)));  // exact in fp32: 12 significant bits
    }
  }
  for (int k = 0; k <= 16; ++k)
    for (float s : {1.0f, -1.0f}) with_neighbours(s * float(std::ldexp(1.0, -14) - k * std::ldexp(1.0, -27)));
  for (std::uint32_t b : {0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x7F7FFFFFu, 0xFF7FFFFFu,
                          0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x7FC00001u, 0x00800000u})
    in.push_back(b);
  return in;
}

// A sample of all 2^32 fp32 patterns (a stride coprime to 2^32) plus the fp16 boundaries.
std::vector<std::uint32_t> fp16_sample_patterns() {
  std::vector<std::uint32_t> in = fp16_boundary_patterns();
  for (std::uint64_t p = 12345; p < (std::uint64_t{1} << 32); p += 997) in.push_back(std::uint32_t(p));
  return in;
}

bool is_signalling_nan32(std::uint32_t b) { return fp32_is_nan(b) && !(b & 0x400000u); }

TEST(NativeIeee, Fp32ToFp16MatchesF16cWithFlags) {
  if (!has_f16c()) GTEST_SKIP() << "CPU lacks F16C";
  const std::vector<std::uint32_t> inputs = fp16_sample_patterns();
  Mismatches mm;
  for (std::size_t mi = 0; mi < std::size(kFeModes); ++mi) {
    const FeMode& m = kFeModes[mi];
    const RoundSpec spec{m.bitsim, Overflow::Ieee};
    for (std::uint32_t b : inputs) {
      unsigned st = 0;
      const std::uint16_t want = kF16cFns[mi](f32_from_bits(b), st);
      const Quantized got = quantize(kFp16, Exact::from_float(f32_from_bits(b)), spec);
      const bool code_ok = fp16_is_nan(want) ? fp16_is_nan(std::uint32_t(got.code)) : got.code == want;
      // A signalling nan raises invalid on the CPU; bitsim has no signalling nans (see above).
      const bool flags_ok = is_signalling_nan32(b) || got.status == st;
      mm.compared();
      if (!code_ok || !flags_ok)
        mm.add(std::string("fp32->fp16 ") + m.name + " input " + hex(b) + " (" + hexfloat(f32_from_bits(b)) +
               "): F16C " + hex(want) + " " + status_string(st) + ", bitsim " + hex(got.code) + " " +
               status_string(got.status));
    }
  }
  mm.expect_none();
}

bool long_tests_enabled() {
  const char* e = std::getenv("BITSIM_LONG_TESTS");
  return e && *e && std::string(e) != "0";
}

TEST(NativeIeee, LongExhaustiveFp32ToFp16MatchesF16c) {
  // All 2^32 inputs in four directions: about ten minutes on one core, so it runs only on request.
  if (!long_tests_enabled()) GTEST_SKIP() << "set BITSIM_LONG_TESTS=1 to run";
  if (!has_f16c()) GTEST_SKIP() << "CPU lacks F16C";
  Mismatches mm;
  for (std::size_t mi = 0; mi < std::size(kFeModes); ++mi) {
    const RoundSpec spec{kFeModes[mi].bitsim, Overflow::Ieee};
    std::uint32_t in[8];
    std::uint16_t out[8];
    for (std::uint64_t base = 0; base < (std::uint64_t{1} << 32); base += 8) {
      for (int j = 0; j < 8; ++j) in[j] = std::uint32_t(base + j);
      kF16c8Fns[mi](in, out);
      for (int j = 0; j < 8; ++j) {
        const Quantized got = quantize(kFp16, Exact::from_float(f32_from_bits(in[j])), spec);
        const bool ok = fp16_is_nan(out[j]) ? fp16_is_nan(std::uint32_t(got.code)) : got.code == out[j];
        mm.compared();
        if (!ok)
          mm.add(std::string("fp32->fp16 ") + kFeModes[mi].name + " input " + hex(in[j]) + ": F16C " + hex(out[j]) +
                 ", bitsim " + hex(got.code));
      }
    }
  }
  mm.expect_none();
}

// ---- decoding fp16 and bf16 ----

__attribute__((target("f16c"))) float f16c_decode(std::uint16_t c) { return _cvtsh_ss(c); }

TEST(NativeIeee, Fp16DecodeMatchesF16cForAllCodes) {
  if (!has_f16c()) GTEST_SKIP() << "CPU lacks F16C";
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    const auto want = std::bit_cast<std::uint32_t>(f16c_decode(std::uint16_t(c)));
    // Every fp16 value is an fp32 value, so re-encoding the decoded exact value is exact.
    const Quantized got = quantize(kFp32, decode(kFp16, c), {});
    if (fp16_is_nan(c)) {
      EXPECT_TRUE(fp32_is_nan(want) && fp32_is_nan(std::uint32_t(got.code))) << hex(c);
    } else {
      EXPECT_EQ(got.code, want) << "fp16 code " << hex(c);
      EXPECT_EQ(got.status, 0u) << "fp16 code " << hex(c);
    }
  }
}

TEST(NativeIeee, Bf16DecodeIsTheTopHalfOfFp32ForAllCodes) {
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    const std::uint32_t want = c << 16;  // bf16 is fp32 with the low 16 mantissa bits dropped
    const Quantized got = quantize(kFp32, decode(kBf16, c), {});
    if (bf16_is_nan(c)) {
      EXPECT_TRUE(fp32_is_nan(std::uint32_t(got.code))) << hex(c);
    } else {
      EXPECT_EQ(got.code, want) << "bf16 code " << hex(c);
      EXPECT_EQ(got.status, 0u) << "bf16 code " << hex(c);
    }
  }
}

// ---- rounding fp32 to bf16 ----

// The well-known integer formulation of fp32 -> bf16 rounding (as in TensorFlow and PyTorch):
// round to nearest even by adding 0x7FFF plus the kept LSB; directed modes by truncating the
// magnitude and adding one when inexact and the direction points away from zero. Carries into the
// exponent field renormalise and overflow into inf exactly as IEEE prescribes.
std::uint16_t bf16_integer_reference(std::uint32_t b, Rounding r) {
  const bool neg = b >> 31;
  const bool inexact = (b & 0xFFFFu) != 0;
  switch (r) {
    case Rounding::NearestEven: return std::uint16_t((b + 0x7FFFu + ((b >> 16) & 1)) >> 16);
    case Rounding::TowardZero: return std::uint16_t(b >> 16);
    case Rounding::Up: return std::uint16_t((b >> 16) + (inexact && !neg ? 1 : 0));
    case Rounding::Down: return std::uint16_t((b >> 16) + (inexact && neg ? 1 : 0));
    default: return 0;
  }
}

std::vector<std::uint32_t> bf16_sample_patterns() {
  std::vector<std::uint32_t> in;
  // Around every bf16 code: the code, the tie, and one fp32 ulp either side of each.
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    if (bf16_is_nan(c) || (c & 0x7FFF) == 0x7F80) continue;  // inf + anything is nan
    const std::uint32_t base = c << 16;
    for (std::uint32_t d : {0u, 1u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) in.push_back(base | d);
  }
  for (std::uint64_t p = 777; p < (std::uint64_t{1} << 32); p += 4099) in.push_back(std::uint32_t(p));
  return in;
}

void check_bf16_against_integer_reference(const std::vector<std::uint32_t>& inputs, Mismatches& mm) {
  for (const FeMode& m : kFeModes) {
    const RoundSpec spec{m.bitsim, Overflow::Ieee};
    for (std::uint32_t b : inputs) {
      if (fp32_is_nan(b)) continue;  // the integer formula would corrupt nans; covered elsewhere
      const std::uint16_t want = bf16_integer_reference(b, m.bitsim);
      const Quantized got = quantize(kBf16, Exact::from_float(f32_from_bits(b)), spec);
      mm.compared();
      if (got.code != want)
        mm.add(std::string("fp32->bf16 ") + m.name + " input " + hex(b) + ": integer reference " + hex(want) +
               ", bitsim " + hex(got.code) + " " + status_string(got.status));
    }
  }
}

TEST(NativeIeee, Fp32ToBf16MatchesTheIntegerFormulation) {
  Mismatches mm;
  check_bf16_against_integer_reference(bf16_sample_patterns(), mm);
  mm.expect_none();
}

TEST(NativeIeee, LongExhaustiveFp32ToBf16MatchesTheIntegerFormulation) {
  if (!long_tests_enabled()) GTEST_SKIP() << "set BITSIM_LONG_TESTS=1 to run";
  Mismatches mm;
  std::vector<std::uint32_t> chunk(std::size_t{1} << 24);
  for (std::uint64_t base = 0; base < (std::uint64_t{1} << 32); base += chunk.size()) {
    for (std::size_t j = 0; j < chunk.size(); ++j) chunk[j] = std::uint32_t(base + j);
    check_bf16_against_integer_reference(chunk, mm);
  }
  mm.expect_none();
}

// VCVTNEPS2BF16 (AVX-512 BF16): round to nearest even, no flags, and (Intel SDM pseudo-code)
// denormal inputs become zero of the same sign and nans are quieted; other inputs must match.
__attribute__((target("avx512f,avx512bf16"))) void avx512_bf16_round16(const std::uint32_t* in, std::uint16_t* out) {
  const __m512 v = _mm512_castsi512_ps(_mm512_loadu_si512(in));
  const __m256bh r = _mm512_cvtneps_pbh(v);
  std::memcpy(out, &r, sizeof r);
}

TEST(NativeIeee, Fp32ToBf16MatchesAvx512Bf16) {
  if (!__builtin_cpu_supports("avx512bf16")) GTEST_SKIP() << "CPU lacks AVX-512 BF16";
  std::vector<std::uint32_t> inputs = bf16_sample_patterns();
  while (inputs.size() % 16) inputs.push_back(0);
  Mismatches mm;
  std::uint16_t out[16];
  for (std::size_t i = 0; i < inputs.size(); i += 16) {
    avx512_bf16_round16(&inputs[i], out);
    for (int j = 0; j < 16; ++j) {
      const std::uint32_t b = inputs[i + j];
      const Quantized got = quantize(kBf16, Exact::from_float(f32_from_bits(b)), {Rounding::NearestEven, Overflow::Ieee});
      bool ok;
      if (fp32_is_nan(b)) ok = bf16_is_nan(out[j]) && bf16_is_nan(std::uint32_t(got.code));
      else if ((b & 0x7F800000u) == 0) ok = out[j] == ((b >> 16) & 0x8000u);  // the instruction's DAZ
      else ok = got.code == out[j];
      mm.compared();
      if (!ok)
        mm.add("fp32->bf16 input " + hex(b) + ": VCVTNEPS2BF16 " + hex(out[j]) + ", bitsim " + hex(got.code));
    }
  }
  mm.expect_none();
}

// ---- fp32 products and sums ----

struct F32Parts {
  bool neg;
  std::int64_t sig;  // value = sig * 2^exp, sig < 2^24
  int exp;
};

F32Parts parts(float f) {
  const auto b = std::bit_cast<std::uint32_t>(f);
  const int e = int((b >> 23) & 0xFF);
  const std::uint32_t m = b & 0x7FFFFF;
  return {bool(b >> 31), e ? std::int64_t(m | 0x800000) : std::int64_t(m), (e ? e : 1) - 150};
}

// The exact sum of two finite floats, built from their integer significands. When the exponents
// are more than 100 apart the smaller operand lies far below half an ulp of the larger (which is
// then normal), and only its sign matters to every rounding: it is replaced by a tiny stand-in of
// the same sign. An exact zero takes its sign from IEEE 754 6.3, which is the adder's business and
// not the quantizer's: -0 only for -0 + -0, or for x + (-x) when rounding down.
Exact exact_sum(float a, float b, Rounding r) {
  F32Parts pa = parts(a), pb = parts(b);
  if (pa.sig == 0 && pb.sig == 0) return Exact::zero(pa.neg && pb.neg ? true : (pa.neg != pb.neg && r == Rounding::Down));
  if (pa.sig == 0) return Exact::from_float(b);
  if (pb.sig == 0) return Exact::from_float(a);
  if (pa.exp < pb.exp) std::swap(pa, pb);
  if (pa.exp - pb.exp > 100) pb = {pb.neg, 1, pa.exp - 100};
  const int shift = pa.exp - pb.exp;
  const i128 sa = i128(pa.sig) << shift, sb = i128(pb.sig);
  const i128 sum = (pa.neg ? -sa : sa) + (pb.neg ? -sb : sb);
  if (sum == 0) return Exact::zero(r == Rounding::Down);
  return Exact::from_int(sum, pb.exp);
}

// Random operand pairs: random signs and mantissas (often short, so exact results and ties occur),
// with exponents chosen so that results land in the normal range, around the subnormal threshold,
// around the overflow threshold, or anywhere.
float random_float(std::mt19937_64& rng, int exp_field) {
  const std::uint64_t r = rng();
  std::uint32_t m = std::uint32_t(r) & 0x7FFFFF;
  if ((r >> 32) & 1) m &= ~0u << ((r >> 33) % 24);  // a short mantissa
  return f32_from_bits((std::uint32_t((r >> 40) & 1) << 31) | (std::uint32_t(std::clamp(exp_field, 0, 254)) << 23) | m);
}

std::vector<std::pair<float, float>> product_pairs() {
  std::mt19937_64 rng(31337);
  std::vector<std::pair<float, float>> v;
  std::uniform_int_distribution<int> any(0, 254);
  for (int i = 0; i < 120000; ++i) {
    const int ea = any(rng);
    int target;  // the biased exponent field the product should land near
    switch (i % 4) {
      case 0: target = 127 + int(rng() % 21) - 10; break;  // near 1
      case 1: target = int(rng() % 30) - 24; break;        // subnormal results and tininess
      case 2: target = 252 + int(rng() % 6); break;        // overflow threshold
      default: target = any(rng); break;
    }
    const int eb = target - ea + 127;
    if (eb < 0 || eb > 254) {
      --i;
      continue;
    }
    v.emplace_back(random_float(rng, ea), random_float(rng, eb));
  }
  for (float a : {0.0f, -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::min()})
    for (float b : {0.0f, -0.0f, 0.5f, -2.0f, std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                    std::numeric_limits<float>::epsilon()})
      v.emplace_back(a, b);
  return v;
}

std::vector<std::pair<float, float>> sum_pairs() {
  std::mt19937_64 rng(4242);
  std::vector<std::pair<float, float>> v;
  std::uniform_int_distribution<int> any(0, 254);
  for (int i = 0; i < 120000; ++i) {
    int ea;
    switch (i % 4) {
      case 0: ea = any(rng); break;
      case 1: ea = int(rng() % 30); break;     // subnormal sums
      case 2: ea = 250 + int(rng() % 5); break;  // overflow threshold
      default: ea = any(rng); break;
    }
    const int diff = (i % 8 == 7) ? int(rng() % 300) : int(rng() % 30);  // mostly close exponents
    const float a = random_float(rng, ea), b = random_float(rng, ea - diff);
    v.emplace_back(a, b);
    if (i % 16 == 0) v.emplace_back(a, -a);  // exact cancellation: the sign-of-zero rule
  }
  for (float a : {0.0f, -0.0f, 1.0f, std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()})
    for (float b : {0.0f, -0.0f, -1.0f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::denorm_min()})
      v.emplace_back(a, b);
  return v;
}

TEST(NativeIeee, ExactSumHelperAgreesWithFp64WhereFp64IsExact) {
  // The test's own exact sum must be right before it judges bitsim: fp64 holds the sum exactly when
  // the exponents are less than 29 apart.
  for (const auto& [a, b] : sum_pairs()) {
    const F32Parts pa = parts(a), pb = parts(b);
    if (pa.sig == 0 || pb.sig == 0 || std::abs(pa.exp - pb.exp) > 28) continue;
    const double want = double(a) + double(b);
    if (want == 0) continue;
    ASSERT_EQ(exact_sum(a, b, Rounding::NearestEven).to_double(), want) << hexfloat(a) << " + " << hexfloat(b);
  }
}

template <class CpuOp, class ExactOp>
void check_binary_op(const char* name, const std::vector<std::pair<float, float>>& pairs, CpuOp cpu, ExactOp exact) {
  Mismatches mm;
  for (const FeMode& m : kFeModes) {
    const RoundSpec spec{m.bitsim, Overflow::Ieee};
    std::vector<std::pair<float, unsigned>> results(pairs.size());
    {
      RoundingScope scope(m.fe);
      ASSERT_TRUE(scope.ok());
      for (std::size_t i = 0; i < pairs.size(); ++i)
        results[i].first = cpu(pairs[i].first, pairs[i].second, results[i].second);
    }
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      const auto [a, b] = pairs[i];
      const auto want = std::bit_cast<std::uint32_t>(results[i].first);
      const Quantized got = quantize(kFp32, exact(a, b, m.bitsim), spec);
      mm.compared();
      if (got.code != want || got.status != results[i].second)
        mm.add(std::string(name) + " " + m.name + " " + hexfloat(a) + ", " + hexfloat(b) + ": cpu " + hex(want) + " " +
               status_string(results[i].second) + ", bitsim " + hex(got.code) + " " + status_string(got.status));
    }
  }
  mm.expect_none();
}

TEST(NativeIeee, Fp32ProductsMatchTheCpuInAllFourDirectionsWithFlags) {
  // A product of two fp32 values has at most 48 significant bits and an exponent well inside fp64's
  // range, so the fp64 product is exact whatever the rounding direction.
  check_binary_op("mul", product_pairs(), cpu_mul,
                  [](float a, float b, Rounding) { return Exact::from_double(double(a) * double(b)); });
}

TEST(NativeIeee, Fp32SumsMatchTheCpuInAllFourDirectionsWithFlags) {
  check_binary_op("add", sum_pairs(), cpu_add, exact_sum);
}

}  // namespace
