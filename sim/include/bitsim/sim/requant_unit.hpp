// Integer requantization stage (gemmlowp / TFLite): an int32 accumulator code through
// arith::Requantizer to a narrow integer code, one register stage.
#pragma once

#include <systemc>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/requantize.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim {

// Input: a code of fixed<32,0> (two's complement int32). Output: requant(acc) as a code of
// `out_format` (a fixed-point format; the value is written as its low width() two's complement
// bits, so requant.min/max should lie inside the format's range). Latency 1;
// in_ready = !(out_valid && !out_ready).
class RequantUnit : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);

  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_code);

  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_code);
  sc_core::sc_out<unsigned> SC_NAMED(out_status);  // always 0: the requantizer saturates silently

  RequantUnit(sc_core::sc_module_name name, const arith::Requantizer& requant, const arith::Format& out_format);

  // The code the stage produces for an int32 accumulator value (the reference for tests too).
  static arith::u128 apply(const arith::Requantizer& requant, const arith::Format& out_format, arith::u128 acc_code);

 private:
  void tick();
  void ready_logic();

  arith::Requantizer requant_;
  arith::Format out_format_;
  bool out_full_ = false;
  sc_core::sc_signal<bool> SC_NAMED(out_full_sig_);
};

}  // namespace bitsim::sim
