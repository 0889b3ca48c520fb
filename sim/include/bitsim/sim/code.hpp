// The code type on every SystemC port (a 128-bit unsigned bit vector holding an arith code in its
// low width() bits) and the conversions to and from arith's u128.
#pragma once

#include <cstdint>

#include <systemc>

#include "bitsim/arith/format.hpp"

namespace bitsim::sim {

using Code = sc_dt::sc_biguint<128>;

inline Code to_code(arith::u128 v) {
  Code c = std::uint64_t(v >> 64);
  c <<= 64;
  c |= Code(std::uint64_t(v));
  return c;
}

inline arith::u128 to_u128(const Code& c) {
  return (arith::u128(c.range(127, 64).to_uint64()) << 64) | arith::u128(c.range(63, 0).to_uint64());
}

}  // namespace bitsim::sim
