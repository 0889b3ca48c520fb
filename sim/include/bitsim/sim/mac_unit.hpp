// MAC unit: pipelined exact multiplier feeding an accumulator, with an optional output stage
// (integer requantization or stochastic rounding) for the finished dot product.
#pragma once

#include <memory>

#include <systemc>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/arith/requantize.hpp"
#include "bitsim/sim/accumulator.hpp"
#include "bitsim/sim/code.hpp"
#include "bitsim/sim/multiplier.hpp"
#include "bitsim/sim/requant_unit.hpp"
#include "bitsim/sim/sr_unit.hpp"

namespace bitsim::sim {

enum class MacOutput : std::uint8_t {
  Accumulator,  // the accumulator code itself
  Requantize,   // RequantUnit: acc must be fixed<32,0>, out a fixed-point format
  Stochastic,   // SrUnit: acc code stochastically rounded into `out`
};

struct MacConfig {
  arith::Format a = arith::Format::fixed(8, 0);
  arith::Format b = arith::Format::fixed(8, 0);
  int mul_stages = 1;
  arith::Format acc = arith::Format::fixed(32, 0);
  arith::RoundSpec acc_spec;
  arith::SrStream acc_sr;  // random bits of a stochastic accumulator (index = add number in the group)
  MacOutput output = MacOutput::Accumulator;
  arith::Format out = arith::Format::fixed(8, 0);
  arith::Requantizer requant;  // MacOutput::Requantize
  arith::RoundSpec out_spec;   // MacOutput::Stochastic (rounding forced to Stochastic; k = sr_bits)
  arith::SrStream out_sr;      // MacOutput::Stochastic (index = dot products emitted since reset)

  int output_stages() const { return output == MacOutput::Accumulator ? 0 : 1; }
  // Edges from an input transfer to the earliest transfer of the result it ends (in_last):
  // multiplier stages + 1 (accumulator register) + output stages.
  int latency() const { return mul_stages + 1 + output_stages(); }
  // Cycles of a run of `groups` dot products of length k each, with a source that is always valid
  // and a sink that is always ready, counted from the edge of the first input transfer to the
  // edge of the last output transfer, both included: groups * k + latency().
  long cycles(long groups, long k) const { return groups * k + latency(); }
};

// Each input transfer multiplies a (code of cfg.a) by b (code of cfg.b) exactly and adds the
// product to the accumulator with one rounding (arith::Accumulator::mac); the transfer with
// in_last ends the dot product, whose result leaves through the output stage. Throughput: one
// product per cycle, no bubbles between dot products.
class MacUnit : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);

  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_a);
  sc_core::sc_in<Code> SC_NAMED(in_b);
  sc_core::sc_in<bool> SC_NAMED(in_last);

  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_code);
  sc_core::sc_out<unsigned> SC_NAMED(out_status);

  MacUnit(sc_core::sc_module_name name, const MacConfig& cfg);

  const MacConfig& config() const { return cfg_; }
  // The result format (cfg.acc, or cfg.out with an output stage).
  const arith::Format& out_format() const {
    return cfg_.output == MacOutput::Accumulator ? cfg_.acc : cfg_.out;
  }

 private:
  MacConfig cfg_;
  Multiplier mul_;
  Accumulator acc_;
  std::unique_ptr<RequantUnit> requant_;
  std::unique_ptr<SrUnit> sr_;

  // multiplier -> accumulator
  sc_core::sc_signal<bool> SC_NAMED(p_valid_);
  sc_core::sc_signal<bool> SC_NAMED(p_ready_);
  sc_core::sc_signal<Code> SC_NAMED(p_code_);
  sc_core::sc_signal<unsigned> SC_NAMED(p_status_);  // unused: arith::Accumulator::mac has no 0*inf flag
  sc_core::sc_signal<bool> SC_NAMED(p_last_);
  // accumulator -> output stage
  sc_core::sc_signal<bool> SC_NAMED(s_valid_);
  sc_core::sc_signal<bool> SC_NAMED(s_ready_);
  sc_core::sc_signal<Code> SC_NAMED(s_code_);
  sc_core::sc_signal<unsigned> SC_NAMED(s_status_);  // accumulator status, dropped by the output stage
};

// The reference: the code and status MacUnit emits for one dot product, from arith alone.
// `group` is the dot product's number since reset (the SrUnit's stream index).
struct MacResult {
  arith::u128 code = 0;
  unsigned status = 0;
};
MacResult mac_reference(const MacConfig& cfg, const arith::u128* a, const arith::u128* b, std::size_t k,
                        std::uint64_t group);

}  // namespace bitsim::sim
