// Block-scaled quantization: choose one shared exponent per group, then round every element with
// the scalar quantize() (the only rounding in bitsim). The exponent rules are in docs/block.md.
#include "bitsim/arith/block.hpp"
#include "bitsim/arith/kernels.hpp"

#include "spec_text.hpp"

#include <cmath>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace bitsim::arith {
namespace {

// ---- spec strings ----

struct NamedMx {
  std::string_view name;
  std::string_view element;
};

// The concrete formats of OCP MX v1.0 section 5 (Table 1): all use k = 32 and an E8M0 scale.
// MXINT8 elements are 8-bit two's complement with an implicit scale of 2^-6.
constexpr std::array kNamedMx{
    NamedMx{"mxfp8e4m3", "fp8e4m3"}, NamedMx{"mxfp8e5m2", "fp8e5m2"}, NamedMx{"mxfp6e3m2", "fp6e3m2"},
    NamedMx{"mxfp6e2m3", "fp6e2m3"}, NamedMx{"mxfp4e2m1", "fp4e2m1"}, NamedMx{"mxint8", "fixed<8,6>"},
};
constexpr std::size_t kMxBlock = 32;

using spec_text::trim;

[[noreturn]] void fail(std::string_view spec, std::string_view why) {
  throw FormatError(fmt::format("bad block format {}: {}", quoted(spec), why));
}

template <class Int>
Int parse_number(std::string_view spec, std::string_view tok, std::string_view what) {
  const auto v = spec_text::parse_integer<Int>(tok);
  if (!v) fail(spec, fmt::format("{} is not a valid {}", quoted(trim(tok)), what));
  return *v;
}

// Shared checks of parse() and validate(); `spec` names the string being checked.
void check(const BlockFormat& f, std::string_view spec) {
  if (f.grouping == Grouping::Block && f.block_size == 0) fail(spec, "block size 0 (expected at least 1)");
  if (f.scaling == BlockScaling::DynamicFixed) {
    const Format& e = f.element;
    if (e.is_float() || !e.is_signed || e.fl != 0)
      fail(spec, fmt::format("dynamic fixed point elements must be int<wl>, not {}", e.spec()));
    if (e.wl < 2 || e.wl > 128) fail(spec, fmt::format("word length {} is outside 2..128", e.wl));
    return;
  }
  const Format& e = f.element;
  if (!e.is_signed || !e.has_zero)
    fail(spec, fmt::format("element format '{}' must be signed and have a zero", e.spec()));
  if (!e.is_float() && e.wl < 2) fail(spec, fmt::format("element format '{}' has no positive value", e.spec()));
  if (f.grouping != Grouping::Block) fail(spec, "MX formats group elements in blocks");
}

// ---- exact-value helpers ----

int msb(u128 v) {  // index of the highest set bit; v != 0
  const auto hi = std::uint64_t(v >> 64);
  return hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(std::uint64_t(v));
}

bool is_nonzero_finite(const Exact& x) { return x.cls == Exact::Class::Finite && !x.is_zero(); }

// floor(log2 |x|) for a finite nonzero x. A value with sig == 0 and only the sticky bit lies in
// (0, 2^exp); like the scalar quantizer, treat it as lying in the binade just below 2^exp.
int floor_log2(const Exact& x) { return x.sig ? msb(x.sig) + x.exp : x.exp - 1; }

// Compare |a| with |b| exactly (both finite and nonzero): -1, 0 or 1.
int compare_magnitude(const Exact& a, const Exact& b) {
  const int ea = floor_log2(a), eb = floor_log2(b);
  if (ea != eb) return ea < eb ? -1 : 1;
  // Same binade: align both significands at bit 127, then the sticky bit breaks a tie.
  const u128 na = a.sig ? a.sig << (127 - msb(a.sig)) : 0;
  const u128 nb = b.sig ? b.sig << (127 - msb(b.sig)) : 0;
  if (na != nb) return na < nb ? -1 : 1;
  return int(a.sticky) - int(b.sticky);
}

// x * 2^k, exactly (only the exponent moves).
Exact scaled(Exact x, int k) {
  if (x.cls == Exact::Class::Finite) x.exp += k;
  return x;
}

std::uint32_t random_bits(const RoundSpec& spec, const SrStream& sr, std::size_t index) {
  return spec.rounding == Rounding::Stochastic ? sr.bits(index, spec.sr_bits) : 0;
}

// ---- dynamic fixed point ----

// fixed<wl,fl> for any fl. Format::fixed() limits |fl| to 16384 for spec strings; an Exact input
// far outside that range still has a well-defined exponent, and quantize() accepts any fl.
Format fixed_with_fraction(const Format& int_wl, int fl) {
  Format f = int_wl;
  f.fl = fl;
  return f;
}

// Would x overflow fixed<wl,fl> for some value of the random bits? Deterministic modes have one
// outcome. Stochastic rounding increments the magnitude most often with r = 2^k - 1 for x >= 0 and
// r = 0 for x < 0 (two's complement: see round_up_magnitude), so those two draws are the worst case.
bool may_overflow(const Format& fx, const Exact& x, const RoundSpec& spec) {
  std::uint32_t worst = 0;
  if (spec.rounding == Rounding::Stochastic && !x.neg)
    worst = spec.sr_bits >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << spec.sr_bits) - 1;
  return quantize(fx, x, spec, worst).status & kOverflow;
}

// The group's fraction length: the largest fl such that no finite element overflows fixed<wl,fl>
// after rounding under `spec` (docs/block.md). Rounding is monotonic within each sign, so only the
// largest positive and the most negative element need checking. With e = floor(log2 max|x|) and
// fl0 = wl - 2 - e, the max scaled by 2^fl0 lies in [2^(wl-2), 2^(wl-1)):
//   fl0 + 1 fits only a negative max that rounds to exactly -2^(wl-1) (two's complement);
//   fl0 fits unless an extreme rounds to magnitude 2^(wl-1) and the range lacks that code;
//   fl0 - 1 always fits (the max rounds to at most 2^(wl-2) <= 2^(wl-1) - 1 for wl >= 2);
//   fl0 + 2 never does (the max scales to at least 2^wl).
// A group without a finite nonzero element gets fl = 0.
int dfx_fraction_bits(const Format& int_wl, std::span<const Exact> group, const RoundSpec& spec) {
  const Exact* max_pos = nullptr;
  const Exact* min_neg = nullptr;
  for (const Exact& x : group) {
    if (!is_nonzero_finite(x)) continue;
    const Exact*& extreme = x.neg ? min_neg : max_pos;
    if (!extreme || compare_magnitude(x, *extreme) > 0) extreme = &x;
  }
  if (!max_pos && !min_neg) return 0;
  int e = max_pos ? floor_log2(*max_pos) : floor_log2(*min_neg);
  if (max_pos && min_neg) e = std::max(e, floor_log2(*min_neg));
  const int fl0 = int_wl.wl - 2 - e;
  for (const int fl : {fl0 + 1, fl0}) {
    const Format fx = fixed_with_fraction(int_wl, fl);
    if ((!max_pos || !may_overflow(fx, *max_pos, spec)) && (!min_neg || !may_overflow(fx, *min_neg, spec)))
      return fl;
  }
  return fl0 - 1;
}

void quantize_dfx_group(const BlockFormat& f, std::span<const Exact> x, BlockGroup g, const RoundSpec& spec,
                        const SrStream& sr, BlockQuantized& out) {
  const int fl = dfx_fraction_bits(f.element, x.subspan(g.first, g.size), spec);
  const Format fx = fixed_with_fraction(f.element, fl);
  for (std::size_t i = g.first; i < g.first + g.size; ++i) {
    // The code of fixed<wl,fl> is the int<wl> code of x * 2^fl: stored as int<wl> with scale 2^-fl.
    const Quantized q = quantize(fx, x[i], spec, random_bits(spec, sr, i));
    out.codes[i] = q.code;
    out.status |= q.status;
  }
  out.scale_exp.push_back(-fl);
}

// ---- OCP microscaling ----

void quantize_mx_group(const BlockFormat& f, std::span<const Exact> x, BlockGroup g, const RoundSpec& spec,
                       const SrStream& sr, BlockQuantized& out) {
  bool any_nan = false, any_inf = false, all_nan = true;
  bool any_nonzero = false;
  int max_log2 = 0;  // floor(log2 max|x|) = max floor(log2 |x_i|), since floor(log2) is monotonic
  for (std::size_t i = g.first; i < g.first + g.size; ++i) {
    any_nan |= x[i].is_nan();
    any_inf |= x[i].is_inf();
    all_nan &= x[i].is_nan();
    if (!is_nonzero_finite(x[i])) continue;
    max_log2 = any_nonzero ? std::max(max_log2, floor_log2(x[i])) : floor_log2(x[i]);
    any_nonzero = true;
  }
  // Section 6.3: X = the largest power of two <= max|V_i|, divided by the largest power of two of
  // the element format (Algorithm 1: shared_exp = floor(log2 max|V_i|) - emax_elem). E8M0 holds
  // 2^-127..2^127 and nan, no zero and no infinity. Below the range X clamps to 2^-127 (as
  // microxcaling's _shared_exponents and torchao's to_mx do); an all-zero block therefore gets
  // X = 2^-127 (floor(log2 0) = -inf, clamped). Above the range, and when max|V_i| is inf or nan,
  // no power of two qualifies and X is E8M0's nan (microxcaling: "Overflow to Inf" -> NaN; torchao:
  // exponent 128 -> 0xFF). Section 6.3 leaves these cases to the implementation.
  int shared_exp = kE8m0MinExp;
  if (any_nonzero) shared_exp = std::max(max_log2 - mx_element_emax(f.element), kE8m0MinExp);
  const bool scale_overflow = shared_exp > kE8m0MaxExp;
  if (any_nan || any_inf || scale_overflow) {
    // The spec's special values: when X is nan every value of the block is nan, whatever P_i holds,
    // so P_i is set to code 0. A block of nothing but nan passes a quiet nan through with no flag,
    // as quantize() does; any other element loses its value (invalid). An E8M0 overflow is also an
    // overflow, as in quantize(e8m0, 2^shared_exp) with IEEE overflow handling.
    for (std::size_t i = g.first; i < g.first + g.size; ++i) out.codes[i] = 0;
    if (!all_nan) out.status |= kInvalid;
    if (scale_overflow && !any_nan && !any_inf) out.status |= kOverflow | kInexact;
    out.scale_exp.push_back(kNanScale);
    return;
  }
  // P_i = V_i / X rounded into the element format; "normal numbers that exceed the max normal
  // representation of the element data type should be clamped to the max normal, preserving the
  // sign" (section 6.3): overflow saturates. Dividing by X = 2^shared_exp is exact.
  RoundSpec element_spec = spec;
  element_spec.overflow = Overflow::Saturate;
  for (std::size_t i = g.first; i < g.first + g.size; ++i) {
    const Quantized q = quantize(f.element, scaled(x[i], -shared_exp), element_spec, random_bits(spec, sr, i));
    out.codes[i] = q.code;
    out.status |= q.status;
  }
  out.scale_exp.push_back(shared_exp);
}

}  // namespace

// ---- BlockFormat ----

BlockFormat BlockFormat::dynamic_fixed(int wl, Grouping grouping, std::size_t block_size) {
  BlockFormat f;
  f.scaling = BlockScaling::DynamicFixed;
  f.grouping = grouping;
  f.block_size = grouping == Grouping::Block ? block_size : 0;
  f.element.kind = FormatKind::Fixed;
  f.element.wl = wl;
  f.element.fl = 0;
  f.validate();
  return f;
}

BlockFormat BlockFormat::microscaling(const Format& element, std::size_t block_size) {
  BlockFormat f;
  f.scaling = BlockScaling::Microscaling;
  f.grouping = Grouping::Block;
  f.block_size = block_size;
  f.element = element;
  f.validate();
  return f;
}

void BlockFormat::validate() const { check(*this, spec()); }

BlockFormat BlockFormat::parse(std::string_view text) {
  const std::string_view spec = trim(text);
  if (spec.empty()) fail(text, "empty format");
  for (const auto& m : kNamedMx)
    if (m.name == spec) return microscaling(Format::parse(m.element), kMxBlock);

  const auto lt = spec.find('<');
  const std::string_view name = trim(spec.substr(0, lt));
  if (name != "dfx" && name != "mx")
    fail(spec, fmt::format("unknown block format {} (expected dfx<wl[,channel|,block=n]>, mx<element,k> "
                           "or one of mxfp8e4m3, mxfp8e5m2, mxfp6e3m2, mxfp6e2m3, mxfp4e2m1, mxint8)",
                           quoted(name)));
  if (lt == std::string_view::npos) fail(spec, fmt::format("{} takes arguments in <...>", quoted(name)));
  if (spec.back() != '>') fail(spec, "expected '>' at the end");
  const std::string_view inner = spec.substr(lt + 1, spec.size() - lt - 2);

  if (name == "mx") {
    // The element spec may itself contain commas ("float<4,3,fn>"); the block size is after the last.
    const auto comma = inner.rfind(',');
    if (comma == std::string_view::npos) fail(spec, "mx takes <element,k>");
    const auto k = parse_number<std::size_t>(spec, inner.substr(comma + 1), "block size");
    BlockFormat f;
    f.scaling = BlockScaling::Microscaling;
    f.grouping = Grouping::Block;
    f.block_size = k;
    f.element = Format::parse(trim(inner.substr(0, comma)));
    check(f, spec);
    return f;
  }
  // dfx<wl[,channel|,block=n]>
  const auto comma = inner.find(',');
  const int wl = parse_number<int>(spec, inner.substr(0, comma), "word length");
  BlockFormat f;
  f.scaling = BlockScaling::DynamicFixed;
  f.element.kind = FormatKind::Fixed;
  f.element.wl = wl;
  if (comma != std::string_view::npos) {
    const std::string_view opt = trim(inner.substr(comma + 1));
    constexpr std::string_view kBlock = "block=";
    if (opt == "channel") {
      f.grouping = Grouping::Channel;
    } else if (opt.starts_with(kBlock)) {
      f.grouping = Grouping::Block;
      f.block_size = parse_number<std::size_t>(spec, opt.substr(kBlock.size()), "block size");
    } else {
      fail(spec, fmt::format("unknown dfx option {} (expected channel or block=n)", quoted(opt)));
    }
  }
  check(f, spec);
  return f;
}

std::string BlockFormat::spec() const {
  if (scaling == BlockScaling::DynamicFixed) {
    switch (grouping) {
      case Grouping::Tensor: return fmt::format("dfx<{}>", element.wl);
      case Grouping::Channel: return fmt::format("dfx<{},channel>", element.wl);
      case Grouping::Block: return fmt::format("dfx<{},block={}>", element.wl, block_size);
    }
  }
  if (block_size == kMxBlock)
    for (const auto& m : kNamedMx)
      if (Format::parse(m.element) == element) return std::string(m.name);
  return fmt::format("mx<{},{}>", element.spec(), block_size);
}

// ---- groups ----

std::vector<BlockGroup> block_groups(const BlockFormat& f, std::size_t n, MatrixShape shape) {
  const std::size_t cols = shape.cols == 0 ? n : shape.cols;
  const std::size_t rows = shape.cols == 0 ? 1 : shape.rows;
  if (rows * cols != n) throw std::invalid_argument("block quantizer: rows * cols != tensor size");
  std::vector<BlockGroup> groups;
  if (n == 0) return groups;
  switch (f.grouping) {
    case Grouping::Tensor: groups.push_back({0, n}); break;
    case Grouping::Channel:
      for (std::size_t r = 0; r < rows; ++r) groups.push_back({r * cols, cols});
      break;
    case Grouping::Block:
      if (f.block_size == 0) throw FormatError("block quantizer: block size 0");
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; c += f.block_size)
          groups.push_back({r * cols + c, std::min(f.block_size, cols - c)});
      break;
  }
  return groups;
}

// ---- scales ----

int mx_element_emax(const Format& element) {
  if (element.is_float()) return element.emax();
  return msb(max_code(element)) - element.fl;  // the largest code of a signed format is positive
}

std::uint8_t e8m0_code(int scale_exp) {
  if (scale_exp == kNanScale) return 0xFF;
  if (scale_exp < kE8m0MinExp || scale_exp > kE8m0MaxExp)
    throw std::out_of_range(fmt::format("E8M0 holds 2^-127..2^127, not 2^{}", scale_exp));
  return std::uint8_t(scale_exp + 127);
}

// ---- quantize / decode ----

BlockQuantized quantize_block(const BlockFormat& f, std::span<const Exact> x, const RoundSpec& spec,
                              const SrStream& sr, MatrixShape shape) {
  f.validate();
  if (f.scaling == BlockScaling::DynamicFixed) check_overflow_applies(f.element, spec.overflow);
  BlockQuantized out;
  out.codes.resize(x.size());
  const auto groups = block_groups(f, x.size(), shape);
  out.scale_exp.reserve(groups.size());
  for (const BlockGroup& g : groups) {
    if (f.scaling == BlockScaling::DynamicFixed) quantize_dfx_group(f, x, g, spec, sr, out);
    else quantize_mx_group(f, x, g, spec, sr, out);
  }
  return out;
}

BlockQuantized quantize_block(const BlockFormat& f, std::span<const float> x, const RoundSpec& spec,
                              const SrStream& sr, MatrixShape shape) {
  std::vector<Exact> exact(x.size());
  std::transform(x.begin(), x.end(), exact.begin(), Exact::from_float);
  return quantize_block(f, std::span<const Exact>(exact), spec, sr, shape);
}

std::vector<Exact> decode_block(const BlockFormat& f, const BlockQuantized& q, MatrixShape shape) {
  const auto groups = block_groups(f, q.codes.size(), shape);
  if (groups.size() != q.scale_exp.size())
    throw std::invalid_argument("block decoder: one scale per group expected");
  std::vector<Exact> values(q.codes.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const int s = q.scale_exp[g];
    for (std::size_t i = groups[g].first; i < groups[g].first + groups[g].size; ++i)
      values[i] = s == kNanScale ? Exact::nan() : scaled(decode(f.element, q.codes[i]), s);
  }
  return values;
}

// Dynamic fixed point on fp32 tensors, group by group: the fraction length from the group's two
// extremes (all dfx_fraction_bits looks at), then the SIMD quantize_f32 on fixed<wl,fl>, whose
// values fp32 holds exactly. False when some group's grid does not fit fp32 (the caller then takes
// the general path); `out` is then unspecified.
bool fake_quantize_dfx_f32(const BlockFormat& f, std::span<const float> in, std::span<float> out,
                           const RoundSpec& spec, const SrStream& sr, MatrixShape shape, std::vector<int>* scale_exp) {
  if (scale_exp) scale_exp->clear();
  for (const BlockGroup& g : block_groups(f, in.size(), shape)) {
    const auto [max_pos, min_neg] = finite_extremes_f32(in.subspan(g.first, g.size));
    std::vector<Exact> extremes;
    for (float v : {max_pos, min_neg})
      if (v != 0) extremes.push_back(Exact::from_float(v));
    const Format fx = fixed_with_fraction(f.element, dfx_fraction_bits(f.element, extremes, spec));
    if (!fits_fp32(fx)) return false;
    quantize_f32(fx, spec, in.subspan(g.first, g.size), out.subspan(g.first, g.size), sr, g.first);
    if (scale_exp) scale_exp->push_back(-fx.fl);
  }
  return true;
}

void fake_quantize_block(const BlockFormat& f, std::span<const float> in, std::span<float> out,
                         const RoundSpec& spec, const SrStream& sr, MatrixShape shape, std::vector<int>* scale_exp) {
  if (out.size() != in.size()) throw std::invalid_argument("fake_quantize_block: in and out differ in size");
  if (f.scaling == BlockScaling::DynamicFixed && fake_quantize_dfx_f32(f, in, out, spec, sr, shape, scale_exp)) return;
  const BlockQuantized q = quantize_block(f, in, spec, sr, shape);
  if (scale_exp) *scale_exp = q.scale_exp;
  const std::vector<Exact> values = decode_block(f, q, shape);
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = to_f32(values[i]);
}

}  // namespace bitsim::arith
