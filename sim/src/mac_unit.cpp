// MAC unit: wiring of Multiplier, Accumulator and the optional output stage; no arithmetic of its
// own. mac_reference() is the same computation written with arith only.
#include "bitsim/sim/mac_unit.hpp"

#include <stdexcept>

#include "bitsim/arith/ops.hpp"

namespace bitsim::sim {

MacUnit::MacUnit(sc_core::sc_module_name name, const MacConfig& cfg)
    : sc_core::sc_module(name),
      cfg_(cfg),
      mul_("mul", cfg.a, cfg.b, cfg.mul_stages),
      acc_("acc", arith::product_format(cfg.a, cfg.b), cfg.acc, cfg.acc_spec, cfg.acc_sr) {
  mul_.clk(clk);
  mul_.rst(rst);
  mul_.in_valid(in_valid);
  mul_.in_ready(in_ready);
  mul_.in_a(in_a);
  mul_.in_b(in_b);
  mul_.in_last(in_last);
  mul_.out_valid(p_valid_);
  mul_.out_ready(p_ready_);
  mul_.out_code(p_code_);
  mul_.out_status(p_status_);
  mul_.out_last(p_last_);

  acc_.clk(clk);
  acc_.rst(rst);
  acc_.in_valid(p_valid_);
  acc_.in_ready(p_ready_);
  acc_.in_code(p_code_);
  acc_.in_last(p_last_);

  if (cfg_.output == MacOutput::Accumulator) {
    acc_.out_valid(out_valid);
    acc_.out_ready(out_ready);
    acc_.out_code(out_code);
    acc_.out_status(out_status);
    return;
  }
  acc_.out_valid(s_valid_);
  acc_.out_ready(s_ready_);
  acc_.out_code(s_code_);
  acc_.out_status(s_status_);
  auto bind = [&](auto& stage) {
    stage.clk(clk);
    stage.rst(rst);
    stage.in_valid(s_valid_);
    stage.in_ready(s_ready_);
    stage.in_code(s_code_);
    stage.out_valid(out_valid);
    stage.out_ready(out_ready);
    stage.out_code(out_code);
    stage.out_status(out_status);
  };
  if (cfg_.output == MacOutput::Requantize) {
    if (!(cfg_.acc == arith::Format::fixed(32, 0)))
      throw std::invalid_argument("MacUnit: requantization needs a fixed<32,0> accumulator");
    requant_ = std::make_unique<RequantUnit>("requant", cfg_.requant, cfg_.out);
    bind(*requant_);
  } else {
    sr_ = std::make_unique<SrUnit>("sr", cfg_.acc, cfg_.out, cfg_.out_spec, cfg_.out_sr);
    bind(*sr_);
  }
}

MacResult mac_reference(const MacConfig& cfg, const arith::u128* a, const arith::u128* b, std::size_t k,
                        std::uint64_t group) {
  arith::Accumulator acc(cfg.acc, cfg.acc_spec, cfg.acc_sr);
  acc.reset();
  for (std::size_t i = 0; i < k; ++i) acc.mac(cfg.a, a[i], cfg.b, b[i]);
  switch (cfg.output) {
    case MacOutput::Accumulator: return {acc.code(), acc.status()};
    case MacOutput::Requantize: return {RequantUnit::apply(cfg.requant, cfg.out, acc.code()), 0};
    case MacOutput::Stochastic: {
      arith::RoundSpec spec = cfg.out_spec;
      spec.rounding = arith::Rounding::Stochastic;
      const arith::Quantized q =
          arith::quantize(cfg.out, acc.value(), spec, cfg.out_sr.bits(group, spec.sr_bits));
      return {q.code, q.status};
    }
  }
  return {};
}

}  // namespace bitsim::sim
