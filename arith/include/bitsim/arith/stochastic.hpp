// Counter-based random bits for stochastic rounding: bits = f(seed, stream, index).
// Results never depend on thread count or call order because no generator state is shared.
#pragma once

#include <array>
#include <cstdint>

namespace bitsim::arith {

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), bit-exact
// with Random123's philox4x32_R(10, ctr, key); tests check the published known-answer vectors.
constexpr std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> ctr,
                                                     std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t kM0 = 0xD2511F53, kM1 = 0xCD9E8D57;
  constexpr std::uint32_t kW0 = 0x9E3779B9, kW1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kW0;
      key[1] += kW1;
    }
    const std::uint64_t p0 = std::uint64_t{kM0} * ctr[0];
    const std::uint64_t p1 = std::uint64_t{kM1} * ctr[2];
    ctr = {std::uint32_t(p1 >> 32) ^ ctr[1] ^ key[0], std::uint32_t(p1),
           std::uint32_t(p0 >> 32) ^ ctr[3] ^ key[1], std::uint32_t(p0)};
  }
  return ctr;
}

// The stochastic-rounding stream. Block b of stream `stream` under `seed` is Philox4x32-10 with
// key = (seed low, seed high) and counter = (b low, b high, stream low, stream high): four 32-bit
// words. For k <= 16 each word serves two elements (a 32-bit generator feeding two 16-bit
// stochastic-rounding units): element `index` takes half (index mod 2) of word (index/2 mod 4) of
// block index/8, the high half first, and r is that half's top k bits. For 16 < k <= 32 element
// `index` takes word (index mod 4) of block index/4 and r is its top k bits.
struct SrStream {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;

  std::array<std::uint32_t, 4> block(std::uint64_t block_index) const {
    return philox4x32_10({std::uint32_t(block_index), std::uint32_t(block_index >> 32),
                          std::uint32_t(stream), std::uint32_t(stream >> 32)},
                         {std::uint32_t(seed), std::uint32_t(seed >> 32)});
  }
  // Elements per block for k random bits.
  static constexpr int per_block(int k) { return k <= 16 ? 8 : 4; }
  // r of every element of block `block_index`, in element order (what bits() gives them) into
  // out; returns per_block(k).
  int block_bits(std::uint64_t block_index, int k, std::uint32_t* out) const {
    const std::array<std::uint32_t, 4> w = block(block_index);
    for (int q = 0; q < 4; ++q) {
      if (k > 16) {
        *out++ = w[std::size_t(q)] >> (32 - k);
      } else {
        *out++ = (w[std::size_t(q)] >> 16) >> (16 - k);
        *out++ = (w[std::size_t(q)] & 0xffff) >> (16 - k);
      }
    }
    return per_block(k);
  }
  // r in [0, 2^k) for element `index`; k in 1..32.
  std::uint32_t bits(std::uint64_t index, int k) const {
    if (k <= 16) {
      const std::uint32_t w = block(index >> 3)[(index >> 1) & 3];
      const std::uint32_t half = (index & 1) ? (w & 0xffff) : (w >> 16);
      return half >> (16 - k);
    }
    return block(index >> 2)[index & 3] >> (32 - k);
  }
};

}  // namespace bitsim::arith
