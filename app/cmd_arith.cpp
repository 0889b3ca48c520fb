// `bitsim formats` and `bitsim quantize`: the format calculator on top of arith.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bitsim/arith/block.hpp"
#include "bitsim/arith/format.hpp"
#include "bitsim/arith/ops.hpp"
#include "bitsim/arith/qgemm.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/requantize.hpp"
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
  pow2<w>           sign + (w-1)-bit exponent, logarithmic: float<w-1,0,fin>
  float<e,m[,opt]>  sign, e exponent bits (bias 2^(e-1)-1), m mantissa bits; IEEE 754 by default
     opt fn         no infinities; exponent and mantissa all ones is nan (OCP FP8 E4M3)
     opt fin        finite only: no inf, no nan (OCP FP6/FP4)
     opt ftz        no subnormals: subnormal results flush to zero, subnormal codes read as zero
     opt u          unsigned (no sign bit)
     opt nz         no zero: exponent field 0 is a normal binade (E8M0)
  Names: fp64 fp32 tf32 fp16 bf16 fp8e4m3 fp8e5m2 fp6e3m2 fp6e2m3 fp4e2m1 e8m0
Block formats (all values given form one tensor; --shape ROWSxCOLS for channel grouping):
  dfx<wl>, dfx<wl,channel>, dfx<wl,block=n>   dynamic fixed point: int<wl> codes, shared exponent
  mxfp8e4m3 mxfp8e5m2 mxfp6e3m2 mxfp6e2m3 mxfp4e2m1 mxint8   OCP MX v1.0 (blocks of 32, E8M0 scale)
  mx<element,k>                                 MX with another element format or block size
Note: SystemC's sc_fixed<W,I> counts integer bits I; bitsim's fixed<wl,fl> counts fraction bits,
so sc_fixed<W,I> is fixed<W,W-I>.
Rounding: nearest-even nearest-away nearest-zero nearest-up nearest-down toward-zero down up odd
          stochastic
Overflow: saturate saturate-zero saturate-symmetric wrap (fixed point); ieee saturate (floats)
)";

constexpr std::string_view kQGemmHelp = R"(The case is gemmlowp's GemmWithOutputPipeline<uint8_t, uint8_t, DefaultL8R8BitDepthParams>
with the pipeline (OutputStageBiasAddition, OutputStageQuantizeDownInt32ByFixedPoint,
OutputStageClamp, OutputStageSaturatingCastToUint8). Input: one JSON object per stdin line (or per
argument) with gemmlowp's names, all required except bias and bias_shape (both or neither):
  M, N, K                       integers >= 1; M*N <= 2^24 and M*N*K <= 2^30
  lhs                           M*K integers 0..255, row-major
  rhs                           K*N integers 0..255, row-major
  lhs_offset, rhs_offset        -255..255, added to every lhs / rhs entry (minus the zero point)
  bias_shape                    "col": bias has M entries, bias[m] is added to row m;
                                "row": bias has N entries, bias[n] is added to column n
  bias                          int32s
  result_fixedpoint_multiplier  int32, a Q31 fraction
  result_shift                  0..31, a right shift
  result_offset_after_shift     int32
  clamp_min, clamp_max          int32, clamp_min <= clamp_max
Output: one JSON object per case, each array M*N entries, row-major:
  acc_int32     sum_k (lhs[m,k] + lhs_offset) * (rhs[k,n] + rhs_offset)
  scaled_int32  RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc + bias,
                result_fixedpoint_multiplier), result_shift) + result_offset_after_shift
  out_uint8     clamp(clamp(scaled, clamp_min, clamp_max), 0, 255)
where SaturatingRoundingDoublingHighMul(a, b) = round(a * b / 2^31), ties up, and INT32_MIN^2
saturates to INT32_MAX; RoundingDivideByPOT(x, s) = round(x / 2^s), ties away from zero.
K is limited so that no int32 sum can overflow whatever the data, neither acc nor gemmlowp's
partial sums (it adds the offsets' terms to the raw products' sum): K * (255 + max(lhs_offset, 0))
* (255 + max(rhs_offset, 0)) <= 2^31 - 1, so K <= 33025 for offsets <= 0. A case in
which acc + bias or the addition of result_offset_after_shift leaves int32 is refused: gemmlowp
adds in int32 without saturation (wrapping in its SIMD paths, undefined in its C++ path). A bad
line stops the run with one error naming the line and the key, exit status 2; the cases before it
are printed.
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
  std::string format, rounding = "nearest-even", overflow, in_bits, shape;
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

void print_quantized(const QuantizeArgs& a, const std::string& token, const std::string& value,
                     const std::string& code, unsigned status, const std::string& scale) {
  if (a.json) {
    nlohmann::json j{{"input", token}, {"value", value}, {"code", code}};
    if (scale.empty()) j["status"] = status_string(status);  // block formats report the tensor's
    else j["scale_exp"] = scale;
    fmt::print("{}\n", j.dump());
  } else if (scale.empty()) {
    fmt::print("{:<24} {:<24} {} {}\n", token, value, code, status_string(status));
  } else {
    fmt::print("{:<24} {:<24} {} scale 2^{}\n", token, value, code, scale);
  }
}

// Block formats quantize all values together as one tensor (rows x cols with --shape).
void run_quantize_block(const QuantizeArgs& a, const BlockFormat& f) {
  const RoundSpec spec = make_round_spec(f.element, a.rounding, a.overflow, a.sr_bits);
  std::vector<std::string> tokens;
  std::vector<Exact> values;
  for_each_input(a.values, [&](const std::string& token) {
    values.push_back(read_value(token, a.in_bits));
    tokens.push_back(token);
  });
  MatrixShape shape{1, values.size()};
  if (!a.shape.empty()) {
    const auto x = a.shape.find('x');
    const auto bad = [&] { return FormatError(fmt::format("bad --shape {}: expected ROWSxCOLS with ROWS*COLS = {} values", arith::quoted(a.shape), values.size())); };
    if (x == std::string::npos) throw bad();
    try {
      std::size_t used = 0;
      shape.rows = std::stoul(a.shape.substr(0, x), &used);
      if (used != x) throw bad();
      shape.cols = std::stoul(a.shape.substr(x + 1), &used);
      if (used != a.shape.size() - x - 1) throw bad();
    } catch (const std::logic_error&) {
      throw bad();
    }
    if (shape.rows * shape.cols != values.size()) throw bad();
  }
  const BlockQuantized q = quantize_block(f, values, spec, SrStream{a.seed, a.stream}, shape);
  const std::vector<Exact> decoded = decode_block(f, q, shape);
  const auto groups = block_groups(f, values.size(), shape);
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t i = groups[g].first; i < groups[g].first + groups[g].size; ++i) {
      const std::string scale = q.scale_exp[g] == kNanScale ? "nan" : std::to_string(q.scale_exp[g]);
      print_quantized(a, tokens[i], decoded[i].to_decimal(), hex_code(f.element, q.codes[i]), 0, scale);
    }
  if (a.json) fmt::print("{}\n", nlohmann::json{{"format", f.spec()}, {"status", status_string(q.status)}}.dump());
  else fmt::print("# {}: {} values in {} groups, {}\n", f.spec(), values.size(), groups.size(), status_string(q.status));
}

bool is_block_spec(std::string_view spec) {
  const auto s = spec.substr(spec.find_first_not_of(" \t") == std::string_view::npos ? 0 : spec.find_first_not_of(" \t"));
  return s.starts_with("dfx") || s.starts_with("mx");
}

void run_quantize(const QuantizeArgs& a) {
  if (!a.in_bits.empty() && a.in_bits != "f32" && a.in_bits != "f64")
    throw FormatError(fmt::format("bad --in-bits {}: expected f32 or f64", arith::quoted(a.in_bits)));
  if (is_block_spec(a.format)) return run_quantize_block(a, BlockFormat::parse(a.format));
  if (!a.shape.empty()) throw FormatError(fmt::format("--shape applies to block formats (dfx, mx), not {}", a.format));
  const Format f = Format::parse(a.format);
  const RoundSpec spec = make_round_spec(f, a.rounding, a.overflow, a.sr_bits);
  const SrStream sr{a.seed, a.stream};
  std::uint64_t index = 0;
  for_each_input(a.values, [&](const std::string& token) {
    const Exact x = read_value(token, a.in_bits);
    const std::uint32_t r = spec.rounding == Rounding::Stochastic ? sr.bits(index, spec.sr_bits) : 0;
    const Quantized q = quantize(f, x, spec, r);
    print_quantized(a, token, decode(f, q.code).to_decimal(), hex_code(f, q.code), q.status, "");
    ++index;
  });
}

struct OpArgs {
  std::string op, format, out_format, rounding = "nearest-even", overflow;
  std::uint64_t seed = 0, stream = 0;
  int sr_bits = 16;
  bool codes = false, json = false;
  std::vector<std::string> operands;
};

void run_op(const OpArgs& a) {
  const Format in = Format::parse(a.format);
  const Format out = a.out_format.empty() ? in : Format::parse(a.out_format);
  const RoundSpec spec = make_round_spec(out, a.rounding, a.overflow, a.sr_bits);
  const std::size_t arity = a.op == "fma" ? 3 : 2;
  const SrStream sr{a.seed, a.stream};
  std::uint64_t index = 0;

  // An operand is a code (--codes) or a value, which must be exactly representable in `in`.
  auto operand = [&](const std::string& tok) -> u128 {
    if (a.codes) return parse_hex_code(tok, in.width());
    const Exact x = parse_exact(tok);
    const Quantized q = quantize(in, x, {Rounding::NearestEven, default_overflow(in)});
    if (q.status & ~unsigned(kInvalid))
      throw FormatError(fmt::format("operand '{}' is not a value of {} (nearest is {}); round it with "
                                    "`bitsim quantize` or pass --codes", tok, in.spec(), decode(in, q.code).to_decimal()));
    return q.code;
  };
  auto one_case = [&](const std::vector<std::string>& toks) {
    if (toks.size() != arity)
      throw FormatError(fmt::format("{} takes {} operands, got {}", a.op, arity, toks.size()));
    const u128 x = operand(toks[0]), y = operand(toks[1]);
    const std::uint32_t r = spec.rounding == Rounding::Stochastic ? sr.bits(index, spec.sr_bits) : 0;
    Quantized q;
    if (a.op == "add") q = add(in, x, y, out, spec, r);
    else if (a.op == "sub") q = sub(in, x, y, out, spec, r);
    else if (a.op == "mul") q = mul(in, x, y, out, spec, r);
    else q = fma(in, x, y, in, operand(toks[2]), out, spec, r);
    const std::string value = decode(out, q.code).to_decimal();
    if (a.json) {
      nlohmann::json j{{"operands", toks}, {"code", hex_code(out, q.code)}, {"value", value},
                       {"status", status_string(q.status)}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("{} {:<24} {}\n", hex_code(out, q.code), value, status_string(q.status));
    }
    ++index;
  };
  if (!a.operands.empty()) return one_case(a.operands);
  for_each_input({}, [&](const std::string& line) { one_case(split_ws(line)); });
}

std::int32_t parse_i32(const std::string& tok, std::string_view what) {
  const Exact x = parse_exact(tok);
  const Quantized q = quantize(Format::parse("int<32>"), x, {Rounding::NearestEven, Overflow::Saturate});
  if (q.status) throw FormatError(fmt::format("bad {} {}: expected an int32", what, arith::quoted(tok)));
  return std::int32_t(std::uint32_t(q.code));
}

// Runs fn on the operands given, or on each stdin line split on whitespace; prints one int32 per case.
template <class Fn>
void int32_cases(const std::vector<std::string>& args, std::size_t arity, Fn&& fn) {
  auto one = [&](const std::vector<std::string>& toks) {
    if (toks.size() != arity) throw FormatError(fmt::format("expected {} integers per case, got {}", arity, toks.size()));
    fmt::print("{}\n", fn(toks));
  };
  if (!args.empty()) {
    if (arity == 1) for (const auto& t : args) one({t});
    else one(args);
    return;
  }
  for_each_input({}, [&](const std::string& line) { one(split_ws(line)); });
}

void add_op_command(CLI::App& app) {
  auto* op = app.add_subcommand("op", "Bit-exact arithmetic on codes or values, rounded once");
  op->require_subcommand(1);
  for (const char* name : {"add", "sub", "mul", "fma"}) {
    auto a = std::make_shared<OpArgs>();
    a->op = name;
    auto* c = op->add_subcommand(name, std::string(name) == "fma" ? "a * b + c, rounded once" : std::string("a ") + name + " b, rounded once");
    c->add_option("--format,-f", a->format, "Operand format")->required();
    c->add_option("--out-format", a->out_format, "Result format (default: the operand format)");
    c->add_option("--rounding,-r", a->rounding, "Rounding mode")->capture_default_str();
    c->add_option("--overflow,-o", a->overflow, "Overflow mode (default: saturate, or ieee for floats)");
    c->add_option("--seed", a->seed, "Seed of the stochastic-rounding stream");
    c->add_option("--stream", a->stream, "Stream id of the stochastic-rounding stream");
    c->add_option("--sr-bits", a->sr_bits, "Random bits per stochastic rounding (1..32)")->capture_default_str();
    c->add_flag("--codes", a->codes, "Operands are hex codes, not values");
    c->add_flag("--json", a->json, "One JSON object per line");
    c->add_option("operands", a->operands, "A B [C]; without operands, one case per stdin line");
    c->callback([a] { run_op(*a); });
  }

  auto rq = std::make_shared<std::tuple<std::string, std::string, std::string, std::string, std::string, std::vector<std::string>>>();
  auto* r = op->add_subcommand("requantize", "int32 accumulator -> multiplier, shift, zero point, clamp (gemmlowp/TFLite)");
  r->add_option("--multiplier", std::get<0>(*rq), "Q31 multiplier (int32)")->required();
  r->add_option("--shift", std::get<1>(*rq), "Left shift (> 0) or right shift (< 0)")->required();
  r->add_option("--zero-point", std::get<2>(*rq), "Output zero point")->required();
  r->add_option("--min", std::get<3>(*rq), "Clamp minimum (default INT32_MIN)");
  r->add_option("--max", std::get<4>(*rq), "Clamp maximum (default INT32_MAX)");
  r->add_option("acc", std::get<5>(*rq), "int32 accumulators; stdin, one per line, if none");
  r->callback([rq] {
    auto& [m, s, z, lo, hi, accs] = *rq;
    Requantizer q;
    q.multiplier = parse_i32(m, "--multiplier");
    q.shift = parse_i32(s, "--shift");
    if (q.shift < -31 || q.shift > 30) throw FormatError(fmt::format("bad --shift {}: expected -31..30", arith::quoted(s)));
    q.zero_point = parse_i32(z, "--zero-point");
    if (!lo.empty()) q.min = parse_i32(lo, "--min");
    if (!hi.empty()) q.max = parse_i32(hi, "--max");
    if (q.min > q.max) throw FormatError(fmt::format("bad clamp: --min {} is above --max {}", q.min, q.max));
    int32_cases(accs, 1, [&](const std::vector<std::string>& t) { return q(parse_i32(t[0], "accumulator")); });
  });

  auto qgemm_cases = std::make_shared<std::vector<std::string>>();
  auto* g = op->add_subcommand("qgemm", "gemmlowp uint8 GEMM with offsets, bias, fixed-point quantize-down and clamp (JSON lines)");
  g->add_option("cases", *qgemm_cases, "JSON objects; stdin, one per line, if none");
  g->footer(std::string(kQGemmHelp));
  g->callback([qgemm_cases] {
    // Errors name the argument as for_each_input names the stdin line: cases are long, and the
    // first of several bad ones is not always the one a reader would guess.
    std::size_t index = 0;
    for_each_input(*qgemm_cases, [&](const std::string& text) {
      ++index;
      try {
        fmt::print("{}\n", to_json(qgemm(QGemmCase::parse_json(text))));
      } catch (const FormatError& e) {
        if (qgemm_cases->empty()) throw;
        throw FormatError(fmt::format("argument {}: {}", index, e.what()));
      }
    });
  });

  auto srdhm = std::make_shared<std::vector<std::string>>();
  auto* h = op->add_subcommand("srdhm", "gemmlowp SaturatingRoundingDoublingHighMul(A, B)");
  h->add_option("operands", *srdhm, "A B (int32); stdin, one pair per line, if none");
  h->callback([srdhm] {
    int32_cases(*srdhm, 2, [](const std::vector<std::string>& t) {
      return saturating_rounding_doubling_high_mul(parse_i32(t[0], "A"), parse_i32(t[1], "B"));
    });
  });
  auto rdiv = std::make_shared<std::vector<std::string>>();
  auto* d = op->add_subcommand("rdivpot", "gemmlowp RoundingDivideByPOT(X, EXP)");
  d->add_option("operands", *rdiv, "X EXP (int32, 0..31); stdin, one pair per line, if none");
  d->callback([rdiv] {
    int32_cases(*rdiv, 2, [](const std::vector<std::string>& t) {
      const std::int32_t e = parse_i32(t[1], "EXP");
      if (e < 0 || e > 31) throw FormatError(fmt::format("bad EXP {}: expected 0..31", arith::quoted(t[1])));
      return rounding_divide_by_pot(parse_i32(t[0], "X"), e);
    });
  });
}

}  // namespace

void add_arith_commands(CLI::App& app) {
  add_op_command(app);
  auto* formats = app.add_subcommand("formats", "Spec grammar, or range, step and bit layout of a format");
  auto spec = std::make_shared<std::string>();
  formats->add_option("format", *spec, "A format spec such as fixed<8,4> or fp8e4m3");
  formats->callback([spec] {
    if (spec->empty()) return fmt::print("{}", kGrammar);
    if (!is_block_spec(*spec)) return describe(Format::parse(*spec));
    const BlockFormat b = BlockFormat::parse(*spec);
    const bool mx = b.scaling == BlockScaling::Microscaling;
    const std::string groups = b.grouping == Grouping::Tensor    ? "one per tensor"
                               : b.grouping == Grouping::Channel ? "one per row (channel)"
                                                                 : fmt::format("one per {} elements of a row", b.block_size);
    fmt::print("{}\n  {:<14} {}\n  {:<14} {}, {}\n", b.spec(), "shared scale", groups,
               "scale format", mx ? "e8m0 (2^-127 .. 2^127, 0xff = nan)" : "2^-fl, fl chosen from max |x|",
               mx ? "from floor(log2 max|x|) - emax of the element (OCP MX 6.3)" : "so that no element overflows");
    fmt::print("element format:\n");
    describe(b.element);
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
  q->add_option("--shape", a->shape, "Block formats: the tensor as ROWSxCOLS (row-major), for channel/block groups");
  q->add_flag("--json", a->json, "One JSON object per line");
  q->add_option("values", a->values, "Values (decimal or C99 hex float); stdin, one per line, if none");
  q->callback([a] { run_quantize(*a); });
}

}  // namespace bitsim::app
