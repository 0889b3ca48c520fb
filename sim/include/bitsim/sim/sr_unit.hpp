// Stochastic-rounding unit: k random bits from the counter-based stream arith::SrStream are added
// below the kept LSB and the sum truncated, i.e. arith::quantize with Rounding::Stochastic.
#pragma once

#include <cstdint>

#include <systemc>

#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/stochastic.hpp"
#include "bitsim/sim/code.hpp"
#include "bitsim/sim/lfsr.hpp"

namespace bitsim::sim {

// The i-th input transfer since reset (i = 0, 1, ...) x, a code of `in_format`, leaves as
//   arith::quantize(out_format, decode(in_format, x), {Stochastic, spec.overflow, k}, sr.bits(i, k))
// with k = spec.sr_bits: the element index of the random stream is the count of accepted inputs,
// so the hardware and the functional executor draw the same bits whatever the stalls. One
// register stage: latency 1; in_ready = !(out_valid && !out_ready).
// With SrSource::Lfsr the bits come from an Lfsr32 (sim/lfsr.hpp) seeded with lfsr_seed at reset,
// one element per accepted input: the output is quantize(..., Lfsr32::next(k)) in order.
enum class SrSource : std::uint8_t { Philox, Lfsr };

class SrUnit : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);  // synchronous, active high: index <- 0, output emptied

  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_code);

  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_code);
  sc_core::sc_out<unsigned> SC_NAMED(out_status);

  SrUnit(sc_core::sc_module_name name, const arith::Format& in_format, const arith::Format& out_format,
         const arith::RoundSpec& spec, arith::SrStream sr, SrSource source = SrSource::Philox,
         std::uint32_t lfsr_seed = 1);

  std::uint64_t index() const { return index_; }  // inputs accepted since reset

 private:
  void tick();
  void ready_logic();

  arith::Format in_format_, out_format_;
  arith::RoundSpec spec_;
  arith::SrStream sr_;
  SrSource source_;
  std::uint32_t lfsr_seed_;
  Lfsr32 lfsr_;
  std::uint64_t index_ = 0;
  bool out_full_ = false;
  sc_core::sc_signal<bool> SC_NAMED(out_full_sig_);
};

}  // namespace bitsim::sim
