// Clocked accumulator around arith::Accumulator: the model owns the handshake and the group
// boundaries; every rounding is arith's.
#include "bitsim/sim/accumulator.hpp"

namespace bitsim::sim {

Accumulator::Accumulator(sc_core::sc_module_name name, const arith::Format& in_format,
                         const arith::Format& format, const arith::RoundSpec& spec, arith::SrStream sr)
    : sc_core::sc_module(name), in_format_(in_format), acc_(format, spec, sr) {
  acc_.reset();
  using SC_CURRENT_USER_MODULE = Accumulator;  // what SC_CTOR declares; SystemC 2.3 needs it
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
  SC_METHOD(ready_logic);
  sensitive << out_full_sig_ << out_ready;
}

void Accumulator::ready_logic() { in_ready.write(!(out_full_sig_.read() && !out_ready.read())); }

void Accumulator::tick() {
  if (rst.read()) {
    acc_.reset();
    out_full_ = false;
  } else {
    if (out_full_ && out_ready.read()) out_full_ = false;
    if (in_valid.read() && !out_full_) {
      acc_.add(arith::decode(in_format_, to_u128(in_code.read())));
      if (in_last.read()) {
        out_code.write(to_code(acc_.code()));
        out_status.write(acc_.status());
        out_full_ = true;
        acc_.reset();
      }
    }
  }
  out_valid.write(out_full_);
  out_full_sig_.write(out_full_);
}

}  // namespace bitsim::sim
