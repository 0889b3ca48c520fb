#include "bitsim/nn/numerics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "bitsim/arith/binary.hpp"
#include "bitsim/arith/kernels.hpp"

namespace bitsim::nn {

using arith::Format;

Numerics Numerics::parse(std::string_view format, std::string_view rounding, std::string_view overflow, int sr_bits) {
  Numerics n;
  if (format == "fp32" || format == "none") return n;
  if (format == "binary") {
    n.kind = Kind::Binary;
    n.spec.rounding = arith::parse_rounding(rounding);
    if (n.spec.rounding != arith::Rounding::NearestEven && n.spec.rounding != arith::Rounding::Stochastic)
      throw arith::FormatError(fmt::format("binary takes nearest-even (sign) or stochastic rounding, not '{}'", rounding));
    if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
    n.spec.sr_bits = sr_bits;
    return n;
  }
  if (format.starts_with("dfx") || format.starts_with("mx")) {
    n.kind = Kind::Block;
    n.block = arith::BlockFormat::parse(format);
  } else {
    n.kind = Kind::Scalar;
    n.format = Format::parse(format);
    if (!arith::fits_fp32(n.format))
      throw arith::FormatError(fmt::format("format '{}' has values fp32 cannot hold; tensors are stored as fp32", format));
  }
  n.spec.rounding = arith::parse_rounding(rounding);
  const Format& f = n.kind == Kind::Block ? n.block.element : n.format;
  n.spec.overflow = overflow.empty() ? arith::default_overflow(f) : arith::parse_overflow(overflow);
  if (n.kind == Kind::Scalar) arith::check_overflow_applies(f, n.spec.overflow);
  if (sr_bits < 1 || sr_bits > 32) throw arith::FormatError(fmt::format("bad sr_bits {}: expected 1..32", sr_bits));
  n.spec.sr_bits = sr_bits;
  return n;
}

std::string Numerics::describe() const {
  if (is_fp32()) return "fp32";
  if (kind == Kind::Binary) return stochastic() ? "binary stochastic" : "binary";
  const std::string f = kind == Kind::Block ? block.spec() : format.spec();
  return fmt::format("{} {} {}", f, arith::to_string(spec.rounding), arith::to_string(spec.overflow));
}

int Numerics::storage_bits() const {
  switch (kind) {
    case Kind::Fp32: return 32;
    case Kind::Scalar: return format.width();
    case Kind::Block: return block.element.width();
    case Kind::Binary: return 1;
  }
  return 32;
}

Format Numerics::apply(std::span<float> x, arith::MatrixShape shape, const arith::SrStream& sr,
                       std::uint64_t first_index) const {
  switch (kind) {
    case Kind::Fp32: return format;
    case Kind::Scalar:
      arith::quantize_f32(format, spec, x, x, sr, first_index);
      return format;
    case Kind::Binary:
      if (stochastic()) arith::binarize_stochastic(x, x, sr, first_index, spec.sr_bits);
      else arith::binarize(x, x);
      return Format::fixed(2, 0);  // holds -1 and +1
    case Kind::Block: break;
  }
  // Block formats: stochastic rounding indexes elements from 0 within the tensor, so the caller's
  // offset goes into the stream id instead.
  const arith::SrStream s{sr.seed, sr.stream + first_index};
  std::vector<int> scale_exp;
  arith::fake_quantize_block(block, x, x, spec, s, shape.cols ? shape : arith::MatrixShape{1, x.size()}, &scale_exp);
  if (block.scaling != arith::BlockScaling::DynamicFixed || scale_exp.empty()) return fixed_carrier(x);
  // Dynamic fixed point: group g holds fixed<wl, fl_g> values (fl_g = -scale_exp), so one
  // fixed<wl + fl_max - fl_min, fl_max> holds them all.
  const auto [lo, hi] = std::minmax_element(scale_exp.begin(), scale_exp.end());
  const int fl_max = -*lo, fl_min = -*hi, wl = block.element.wl + fl_max - fl_min;
  return wl <= 64 ? Format::fixed(wl, fl_max) : fixed_carrier(x);
}

Format fixed_carrier(std::span<const float> x) {
  // Each finite nonzero v = sig * 2^e2 (an integer significand from the fp32 fields): the grid needs
  // -(e2 + trailing zeros of sig) fraction bits, the magnitude e2 + bit width of sig integer bits,
  // plus a sign bit.
  int fl = -1000, top = -1000;
  for (float v : x) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const std::uint32_t biased = (bits >> 23) & 0xff, mant = bits & 0x7fffff;
    if (biased == 0xff || (biased == 0 && mant == 0)) continue;  // inf, nan, zero
    const std::uint32_t sig = biased ? (mant | 0x800000u) : mant;
    const int e2 = biased ? int(biased) - 150 : -149;
    fl = std::max(fl, -(e2 + std::countr_zero(sig)));
    top = std::max(top, e2 + int(std::bit_width(sig)));
  }
  if (top == -1000) return Format::fixed(1, 0);
  const int wl = top + fl + 1;
  if (wl > 64) return Format::floating(8, 23);
  return Format::fixed(wl, fl);
}

}  // namespace bitsim::nn
