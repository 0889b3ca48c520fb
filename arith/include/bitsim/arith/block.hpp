// Block- and tensor-scaled formats: dynamic fixed point / block floating point (one shared exponent
// per tensor, channel or block) and the OCP Microscaling (MX) formats v1.0. Rules: docs/block.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::arith {

enum class BlockScaling : std::uint8_t {
  // Dynamic fixed point / block floating point (Courbariaux et al. 2014, Flexpoint, Park et al.
  // 2018): int<wl> element codes, value = code * 2^scale_exp, with the largest 2^-scale_exp that
  // lets no finite element overflow after rounding.
  DynamicFixed,
  // OCP MX v1.0: value = X * P_i with X = 2^scale_exp an E8M0 scale chosen per spec section 6.3 and
  // P_i in the element format, clamped to its largest finite value.
  Microscaling,
};

enum class Grouping : std::uint8_t {
  Tensor,   // one shared exponent for the whole tensor
  Channel,  // one per row of a row-major rows x cols matrix (per output channel of a weight matrix)
  Block,    // one per block_size consecutive elements of a row; a row's last block may be shorter
};

// A block-scaled format: the element format plus how elements are grouped under one scale.
struct BlockFormat {
  BlockScaling scaling = BlockScaling::DynamicFixed;
  Grouping grouping = Grouping::Tensor;
  std::size_t block_size = 0;  // elements per group when grouping == Block (MX: k, 32 in OCP MX)
  Format element;              // DynamicFixed: int<wl>; Microscaling: the element format of P_i

  // "dfx<wl>" (per tensor), "dfx<wl,channel>", "dfx<wl,block=n>"; "mxfp8e4m3", "mxfp8e5m2",
  // "mxfp6e3m2", "mxfp6e2m3", "mxfp4e2m1", "mxint8" (k = 32); "mx<element,k>" for another element
  // format (any signed format with a zero, e.g. "mx<fp8e4m3,16>") or block size. Throws FormatError
  // naming the bad token.
  static BlockFormat parse(std::string_view spec);
  static BlockFormat dynamic_fixed(int wl, Grouping grouping = Grouping::Tensor, std::size_t block_size = 0);
  static BlockFormat microscaling(const Format& element, std::size_t block_size = 32);

  // Canonical spec string; BlockFormat::parse(f.spec()) == f.
  std::string spec() const;
  // Throws FormatError when the combination is not one parse() could produce.
  void validate() const;

  bool operator==(const BlockFormat&) const = default;
};

// The tensor as a row-major rows x cols matrix; cols == 0 means a 1-D tensor (1 x n).
struct MatrixShape {
  std::size_t rows = 1;
  std::size_t cols = 0;
};

// One group: elements [first, first + size) share a scale. Groups tile the tensor in order.
struct BlockGroup {
  std::size_t first = 0;
  std::size_t size = 0;
};

// The groups of an n-element tensor. Throws std::invalid_argument when rows * cols != n.
std::vector<BlockGroup> block_groups(const BlockFormat& f, std::size_t n, MatrixShape shape = {});

// OCP MX E8M0 scale: 2^e for e in [-127, 127], code e + 127; code 0xFF is nan.
inline constexpr int kE8m0MinExp = -127;
inline constexpr int kE8m0MaxExp = 127;
inline constexpr int kNanScale = std::numeric_limits<int>::min();  // an MX block whose X is nan

// emax_elem of OCP MX Algorithm 1: the exponent of the largest finite value of the element format
// (floats: Format::emax(); fixed: floor(log2(max code)) - fl). E4M3 8, E5M2 15, E3M2 4, E2M3 2,
// E2M1 2, MXINT8 (fixed<8,6>) 0.
int mx_element_emax(const Format& element);
// The E8M0 code of scale 2^scale_exp (0xFF for kNanScale); scale_exp must lie in [-127, 127].
std::uint8_t e8m0_code(int scale_exp);

struct BlockQuantized {
  std::vector<u128> codes;     // one element code per element (low width() bits, as in Quantized)
  std::vector<int> scale_exp;  // one per group: value = 2^scale_exp * decode(element, code); DFX: -fl
  unsigned status = 0;         // Status flags OR-ed over all elements
};

// Quantize a tensor. spec.rounding rounds every element (through the scalar quantize()); stochastic
// rounding draws element i's random bits from sr.bits(i, spec.sr_bits), i = index in the tensor.
// DynamicFixed uses spec.overflow for its range (saturate-symmetric excludes the most negative code)
// and for +-inf inputs; Microscaling always clamps (saturates), as OCP MX section 6.3 requires.
BlockQuantized quantize_block(const BlockFormat& f, std::span<const Exact> x, const RoundSpec& spec = {},
                              const SrStream& sr = {}, MatrixShape shape = {});
BlockQuantized quantize_block(const BlockFormat& f, std::span<const float> x, const RoundSpec& spec = {},
                              const SrStream& sr = {}, MatrixShape shape = {});

// The exact values of a quantized tensor (nan for every element of an MX block whose X is nan).
std::vector<Exact> decode_block(const BlockFormat& f, const BlockQuantized& q, MatrixShape shape = {});

// Fake quantization: out[i] = decode_block(quantize_block(in))[i] rounded to fp32 (nearest-even).
// Exact, since rounding an fp32 number onto any grid inside its binade gives an fp32 number, except
// that a dfx maximum near FLT_MAX may round up to 2^128 (+inf). `in` and `out` may be the same array.
// `scale_exp`, when given, receives each group's scale exponent (as BlockQuantized::scale_exp).
void fake_quantize_block(const BlockFormat& f, std::span<const float> in, std::span<float> out,
                         const RoundSpec& spec = {}, const SrStream& sr = {}, MatrixShape shape = {},
                         std::vector<int>* scale_exp = nullptr);

}  // namespace bitsim::arith
