// Requantization stage: the arithmetic is arith::Requantizer; this file adds the register and the
// handshake.
#include "bitsim/sim/requant_unit.hpp"

#include <cstdint>
#include <stdexcept>

namespace bitsim::sim {

RequantUnit::RequantUnit(sc_core::sc_module_name name, const arith::Requantizer& requant,
                         const arith::Format& out_format)
    : sc_core::sc_module(name), requant_(requant), out_format_(out_format) {
  if (out_format_.is_float()) throw std::invalid_argument("RequantUnit: the output format must be fixed point");
  using SC_CURRENT_USER_MODULE = RequantUnit;  // what SC_CTOR declares; SystemC 2.3 needs it
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
  SC_METHOD(ready_logic);
  sensitive << out_full_sig_ << out_ready;
}

arith::u128 RequantUnit::apply(const arith::Requantizer& requant, const arith::Format& out_format,
                               arith::u128 acc_code) {
  const auto acc = static_cast<std::int32_t>(static_cast<std::uint32_t>(acc_code));
  const std::int32_t v = requant(acc);
  return arith::u128(arith::i128(v)) & out_format.code_mask();
}

void RequantUnit::ready_logic() { in_ready.write(!(out_full_sig_.read() && !out_ready.read())); }

void RequantUnit::tick() {
  if (rst.read()) {
    out_full_ = false;
  } else {
    if (out_full_ && out_ready.read()) out_full_ = false;
    if (in_valid.read() && !out_full_) {
      out_code.write(to_code(apply(requant_, out_format_, to_u128(in_code.read()))));
      out_status.write(0u);
      out_full_ = true;
    }
  }
  out_valid.write(out_full_);
  out_full_sig_.write(out_full_);
}

}  // namespace bitsim::sim
