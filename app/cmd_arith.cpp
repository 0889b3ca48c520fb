// `bitsim formats` and `bitsim quantize`: the format calculator on top of arith.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/stochastic.hpp"
#include "cli_util.hpp"
#include "commands.hpp"

namespace bitsim::app {
namespace {

using namespace bitsim::arith;

constexpr std::string_view kGrammar = R"(Format specs:
  fixed<wl,fl>      signed two's complement, value = code * 2^-fl (wl 1..128; fl any, may be < 0 or > wl)
  ufixed<wl,fl>     unsigned fixed point
  int<w>, uint<w>   fixed<w,0>, ufixed<w,0>
  float<e,m[,opt]>  sign, e exponent bits (bias 2^(e-1)-1), m mantissa bits; IEEE 754 by default
     opt fn         no infinities; exponent and mantissa all ones is nan (OCP FP8 E4M3)
     opt fin        finite only: no inf, no nan (OCP FP6/FP4)
     opt ftz        no subnormals: subnormal results flush to zero, subnormal codes read as zero
     opt u          unsigned (no sign bit)
     opt nz         no zero: exponent field 0 is a normal binade (E8M0)
  Names: fp64 fp32 tf32 fp16 bf16 fp8e4m3 fp8e5m2 fp6e3m2 fp6e2m3 fp4e2m1 e8m0
Note: SystemC's sc_fixed<W,I> counts integer bits I; bitsim's fixed<wl,fl> counts fraction bits,
so sc_fixed<W,I> is fixed<W,W-I>.
Rounding: nearest-even nearest-away nearest-zero nearest-up nearest-down toward-zero down up odd
          stochastic
Overflow: saturate saturate-zero saturate-symmetric wrap (fixed point); ieee saturate (floats)
)";

std::string bits_layout(const Format& f) {
  if (!f.is_float()) {
    return fmt::format("{} integer{} . {} fraction, LSB 2^{}", f.wl - f.fl,
                       f.is_signed ? " (incl. sign)" : "", f.fl, -f.fl);
  }
  return fmt::format("{}{}{}", f.is_signed ? "s " : "", std::string(f.exp_bits, 'e'),
                     f.man_bits ? " " + std::string(f.man_bits, 'm') : "");
}

void describe(const Format& f) {
  auto show = [&](std::string_view label, u128 code) {
    fmt::print("  {:<14} {} (code {})\n", label, decode(f, code).to_decimal(), hex_code(f, code));
  };
  fmt::print("{}\n  {:<14} {} bits: {}\n", f.spec(), "layout", f.width(), bits_layout(f));
  if (f.is_float()) {
    fmt::print("  {:<14} bias {}, normal exponents {}..{}\n", "exponent", f.bias(), f.emin(), f.emax());
    fmt::print("  {:<14} {}{}{}\n", "specials", f.has_inf() ? "inf " : "", f.has_nan() ? "nan " : "",
               f.subnormals ? "subnormals" : (f.has_zero ? "flush-to-zero" : "no zero"));
  }
  show("max", max_code(f));
  show("min", min_code(f));
  show("min positive", min_positive_code(f));
  fmt::print("  {:<14} {}\n", "default overflow", to_string(default_overflow(f)));
}

struct QuantizeArgs {
  std::string format, rounding = "nearest-even", overflow, in_bits;
  std::uint64_t seed = 0, stream = 0;
  int sr_bits = 16;
  bool json = false;
  std::vector<std::string> values;
};

Exact read_value(const std::string& token, const std::string& in_bits) {
  if (in_bits.empty()) return parse_exact(token);
  const Format f = Format::parse(in_bits == "f32" ? "fp32" : "fp64");
  return decode(f, parse_hex_code(token, f.width()));
}

void run_quantize(const QuantizeArgs& a) {
  const Format f = Format::parse(a.format);
  const RoundSpec spec = make_round_spec(f, a.rounding, a.overflow, a.sr_bits);
  if (!a.in_bits.empty() && a.in_bits != "f32" && a.in_bits != "f64")
    throw FormatError(fmt::format("bad --in-bits '{}': expected f32 or f64", a.in_bits));
  const SrStream sr{a.seed, a.stream};

  std::uint64_t index = 0;
  auto one = [&](const std::string& token) {
    const Exact x = read_value(token, a.in_bits);
    const std::uint32_t r = spec.rounding == Rounding::Stochastic ? sr.bits(index, spec.sr_bits) : 0;
    const Quantized q = quantize(f, x, spec, r);
    const std::string value = decode(f, q.code).to_decimal();
    if (a.json) {
      nlohmann::json j{{"input", token}, {"value", value}, {"code", hex_code(f, q.code)},
                       {"status", status_string(q.status)}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("{:<24} {:<24} {} {}\n", token, value, hex_code(f, q.code), status_string(q.status));
    }
    ++index;
  };
  for_each_input(a.values, one);
}

}  // namespace

void add_arith_commands(CLI::App& app) {
  auto* formats = app.add_subcommand("formats", "Spec grammar, or range, step and bit layout of a format");
  auto spec = std::make_shared<std::string>();
  formats->add_option("format", *spec, "A format spec such as fixed<8,4> or fp8e4m3");
  formats->callback([spec] {
    if (spec->empty()) fmt::print("{}", kGrammar);
    else describe(Format::parse(*spec));
  });

  auto a = std::make_shared<QuantizeArgs>();
  auto* q = app.add_subcommand("quantize", "Round values into a format; prints value, code and status");
  q->add_option("--format,-f", a->format, "Target format spec")->required();
  q->add_option("--rounding,-r", a->rounding, "Rounding mode")->capture_default_str();
  q->add_option("--overflow,-o", a->overflow, "Overflow mode (default: saturate, or ieee for floats)");
  q->add_option("--seed", a->seed, "Seed of the stochastic-rounding stream")->capture_default_str();
  q->add_option("--stream", a->stream, "Stream id of the stochastic-rounding stream")->capture_default_str();
  q->add_option("--sr-bits", a->sr_bits, "Random bits per stochastic rounding (1..32)")->capture_default_str();
  q->add_option("--in-bits", a->in_bits, "Read inputs as raw hex bits of f32 or f64");
  q->add_flag("--json", a->json, "One JSON object per line");
  q->add_option("values", a->values, "Values (decimal or C99 hex float); stdin, one per line, if none");
  q->callback([a] { run_quantize(*a); });
}

}  // namespace bitsim::app
