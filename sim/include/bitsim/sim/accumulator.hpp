// Clocked accumulator: acc <- round(acc + x) per accepted input, exactly arith::Accumulator (which
// it calls), emitting the sum of a group of inputs ended by `last`.
#pragma once

#include <systemc>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim {

// Each input transfer (in_valid && in_ready at a rising edge) adds x (a code of `in_format`) with
// one rounding into the accumulator format under `spec` (its overflow mode, and for stochastic
// rounding the random bits of add number i of the group from `sr`, as arith::Accumulator draws
// them). The transfer that carries in_last also loads the sum and the OR of the group's statuses
// into the output register and restarts the accumulator at code 0, so the next group can start
// on the next edge: latency 1 (a last input at edge t is transferable on the output at edge t+1).
// in_ready = !(out_valid && !out_ready): it waits only while an unread sum blocks the register.
class Accumulator : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);  // synchronous, active high: acc <- 0, output emptied

  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_code);
  sc_core::sc_in<bool> SC_NAMED(in_last);

  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_code);
  sc_core::sc_out<unsigned> SC_NAMED(out_status);

  Accumulator(sc_core::sc_module_name name, const arith::Format& in_format, const arith::Format& format,
              const arith::RoundSpec& spec, arith::SrStream sr = {});

  const arith::Format& format() const { return acc_.format(); }

 private:
  void tick();
  void ready_logic();

  arith::Format in_format_;
  arith::Accumulator acc_;
  bool out_full_ = false;
  sc_core::sc_signal<bool> SC_NAMED(out_full_sig_);
};

}  // namespace bitsim::sim
