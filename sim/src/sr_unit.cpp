// Stochastic-rounding unit: the stream index is the unit's count of accepted inputs; the rounding
// itself is arith::quantize's.
#include "bitsim/sim/sr_unit.hpp"

namespace bitsim::sim {

SrUnit::SrUnit(sc_core::sc_module_name name, const arith::Format& in_format, const arith::Format& out_format,
               const arith::RoundSpec& spec, arith::SrStream sr, SrSource source, std::uint32_t lfsr_seed)
    : sc_core::sc_module(name),
      in_format_(in_format),
      out_format_(out_format),
      spec_(spec),
      sr_(sr),
      source_(source),
      lfsr_seed_(lfsr_seed),
      lfsr_(lfsr_seed) {
  spec_.rounding = arith::Rounding::Stochastic;
  arith::check_overflow_applies(out_format_, spec_.overflow);
  using SC_CURRENT_USER_MODULE = SrUnit;  // what SC_CTOR declares; SystemC 2.3 needs it
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
  SC_METHOD(ready_logic);
  sensitive << out_full_sig_ << out_ready;
}

void SrUnit::ready_logic() { in_ready.write(!(out_full_sig_.read() && !out_ready.read())); }

void SrUnit::tick() {
  if (rst.read()) {
    index_ = 0;
    lfsr_ = Lfsr32(lfsr_seed_);
    out_full_ = false;
  } else {
    if (out_full_ && out_ready.read()) out_full_ = false;
    if (in_valid.read() && !out_full_) {
      const std::uint32_t r =
          source_ == SrSource::Philox ? sr_.bits(index_, spec_.sr_bits) : lfsr_.next(spec_.sr_bits);
      ++index_;
      const arith::Quantized q =
          arith::quantize(out_format_, arith::decode(in_format_, to_u128(in_code.read())), spec_, r);
      out_code.write(to_code(q.code));
      out_status.write(q.status);
      out_full_ = true;
    }
  }
  out_valid.write(out_full_);
  out_full_sig_.write(out_full_);
}

}  // namespace bitsim::sim
