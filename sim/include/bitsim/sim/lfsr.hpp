// Leap-forward LFSR random source for the SR unit, and its functional twin (this class is both:
// the SystemC unit holds one and steps it once per accepted input).
#pragma once

#include <cstdint>
#include <stdexcept>

namespace bitsim::sim {

// 32-bit Galois LFSR, right-shifting, feedback mask 0x80200003: the primitive polynomial
// x^32 + x^22 + x^2 + x + 1 (Xilinx XAPP052 taps 32, 22, 2, 1), period 2^32 - 1 over
// nonzero states (test SimLfsr.PolynomialIsPrimitive proves it). One element takes 32 steps (a
// leap-forward LFSR does them in one cycle, so consecutive elements share no state bits) and its
// k random bits are the top k bits of the new state. Cheaper than Philox, but not counter-based:
// the bits depend on how many elements came before, which is why Philox is bitsim's default.
class Lfsr32 {
 public:
  static constexpr std::uint32_t kFeedback = 0x80200003u;

  explicit constexpr Lfsr32(std::uint32_t seed = 1) : state_(seed) {
    if (seed == 0) throw std::invalid_argument("Lfsr32: the all-zero state is a fixed point");
  }
  constexpr void step() { state_ = (state_ >> 1) ^ ((state_ & 1u) ? kFeedback : 0u); }
  // The k (1..32) random bits of the next element.
  constexpr std::uint32_t next(int k) {
    for (int i = 0; i < 32; ++i) step();
    return state_ >> (32 - k);
  }
  constexpr std::uint32_t state() const { return state_; }

 private:
  std::uint32_t state_;
};

}  // namespace bitsim::sim
