// Rounding and overflow modes, IEEE status flags, and the one function that decides every rounding.
// Every quantizer in bitsim (scalar, vector, SystemC) calls round_up_magnitude() or mirrors it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bitsim/arith/format.hpp"

namespace bitsim::arith {

enum class Rounding : std::uint8_t {
  NearestEven,  // ties to even (IEEE roundTiesToEven, SystemC SC_RND_CONV)
  NearestAway,  // ties away from zero (IEEE roundTiesToAway, SC_RND_INF, gemmlowp RoundingDivideByPOT)
  NearestZero,  // ties toward zero (SC_RND_ZERO)
  NearestUp,    // ties toward +inf (SC_RND, gemmlowp SaturatingRoundingDoublingHighMul)
  NearestDown,  // ties toward -inf (SC_RND_MIN_INF)
  TowardZero,   // truncate the magnitude (IEEE roundTowardZero, SC_TRN_ZERO)
  Down,         // floor (IEEE roundTowardNegative, SC_TRN)
  Up,           // ceil (IEEE roundTowardPositive)
  Odd,          // round to odd: inexact results get an odd last bit
  Stochastic,   // add k random bits below the kept LSB, then truncate (see stochastic.hpp)
};

enum class Overflow : std::uint8_t {
  Saturate,           // clamp to the nearest end of the range (SC_SAT)
  SaturateZero,       // out-of-range results become zero (SC_SAT_ZERO)
  SaturateSymmetric,  // clamp to [-max, max]; the most negative code is never produced (SC_SAT_SYM)
  Wrap,               // keep the low wl bits of the two's complement result (SC_WRAP)
  Ieee,               // floats: IEEE 754 7.4 (inf or max per rounding direction); see docs/arith.md
};

// IEEE 754 exception flags, OR-ed together.
enum Status : std::uint8_t {
  kExact = 0,
  kInexact = 1,
  kUnderflow = 2,  // tiny and inexact (IEEE "after rounding" tininess detection)
  kOverflow = 4,   // the rounded result exceeded the largest finite value
  kInvalid = 8,    // nan operand or result (or nan into a format without nan)
};

struct RoundSpec {
  Rounding rounding = Rounding::NearestEven;
  Overflow overflow = Overflow::Saturate;
  int sr_bits = 16;  // k, random bits per stochastic rounding (1..32)
};

std::string_view to_string(Rounding r);
std::string_view to_string(Overflow o);
// Parse the command-line names; throw FormatError naming the token when unknown.
Rounding parse_rounding(std::string_view name);
Overflow parse_overflow(std::string_view name);
std::string status_string(unsigned status);  // "inexact|overflow", or "exact"

// The mode a format uses when the user names none: saturate for fixed point, IEEE for floats.
Overflow default_overflow(const Format& f);
// Throws FormatError when the pair is meaningless (wrap on a float, ieee on fixed point).
void check_overflow_applies(const Format& f, Overflow o);

// The bits below the kept LSB, as a fraction of one LSB of the *magnitude*:
// top 64 bits in `frac` (bit 63 weighs 1/2), and `sticky` when anything nonzero lies below them.
struct LostBits {
  std::uint64_t frac = 0;
  bool sticky = false;
  constexpr bool inexact() const { return frac != 0 || sticky; }
};

// Decide whether the truncated magnitude must be incremented by one LSB.
//   negative: sign of the value; lsb_odd: last kept bit of the truncated magnitude;
//   random: the k-bit random number for stochastic rounding (ignored otherwise);
//   twos_complement: stochastic rounding adds the random bits to a two's complement code (fixed
//   point hardware) rather than to a magnitude (float significands). Both are unbiased; they differ
//   only in how fraction bits below the k random bits are truncated.
constexpr bool round_up_magnitude(Rounding mode, bool negative, bool lsb_odd, LostBits lost,
                                  std::uint32_t random, int k, bool twos_complement) {
  if (!lost.inexact()) return false;
  constexpr std::uint64_t half = std::uint64_t{1} << 63;
  const bool above_half = lost.frac > half || (lost.frac == half && lost.sticky);
  const bool tie = lost.frac == half && !lost.sticky;
  switch (mode) {
    case Rounding::NearestEven: return above_half || (tie && lsb_odd);
    case Rounding::NearestAway: return above_half || tie;
    case Rounding::NearestZero: return above_half;
    case Rounding::NearestUp: return above_half || (tie && !negative);
    case Rounding::NearestDown: return above_half || (tie && negative);
    case Rounding::TowardZero: return false;
    case Rounding::Down: return negative;
    case Rounding::Up: return !negative;
    case Rounding::Odd: return !lsb_odd;
    case Rounding::Stochastic: {
      const std::uint64_t top = lost.frac >> (64 - k);  // the k fraction bits the adder sees
      if (twos_complement && negative) {
        // A two's complement code holds 1 - frac below the LSB; floor(code + r) keeps the magnitude
        // rounded up exactly when r < top + (bits below the top k are nonzero).
        const bool below = (k < 64 && (lost.frac << k) != 0) || lost.sticky;
        return std::uint64_t{random} < top + (below ? 1 : 0);
      }
      return top + random >= (std::uint64_t{1} << k);
    }
  }
  return false;
}

}  // namespace bitsim::arith
