// Internals of the closed-form array model (array_model.cpp), not part of sim's interface: here so
// that tests/sim/test_array_model.cpp can hold them to the plain implementations they replaced.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/sim/array_model.hpp"

namespace bitsim::sim::detail {

// Input-stationary as the weight-stationary schedule of C^T = W^T A^T: the spec with the W and A
// buffers swapped (and dataflow ws), the operand widths swapped, M and N swapped, a mapping's loop
// letters m and n swapped; and counts of the transposed problem named back (A and W buffers, DRAM
// reads and multiplier toggles swapped).
ArraySpec transposed(const ArraySpec& s);
OperandBits transposed(const OperandBits& b);
GemmShape transposed(const GemmShape& s);
Mapping transposed(const Mapping& m);
ArrayStats transposed(ArrayStats s);

// An LRU buffer of whole blocks with ids in [0, ids) (the same policy as the SystemC array's A and
// W buffers): a hit moves the block to the front; a miss keeps the block, evicting from the back,
// unless it is larger than the buffer, in which case it streams through. The ids of a tiled GEMM
// are dense and bounded, so the recency list is threaded through arrays indexed by id: no hashing
// and no allocation per access. When ids blocks of the largest size fit together nothing is ever
// evicted, so the recency order is never consulted and a hit leaves the list as it is.
class LruBuffer {
 public:
  LruBuffer(std::int64_t capacity, std::int64_t ids, std::int64_t largest);  // largest: bytes of the largest block
  bool access(std::int64_t id, std::int64_t bytes);  // true on a hit

 private:
  struct Node {
    std::int64_t prev = -1, next = -1;  // prev == -1: not held
    std::int64_t bytes = 0;
  };
  void link_front(std::int64_t id);
  void unlink(std::int64_t id);
  std::int64_t cap_, used_ = 0;
  bool never_evicts_;
  std::vector<Node> nodes_;  // one per id, then the list's head (front: head.next, back: head.prev)
  std::int64_t head_;
};

// The input rows (image b, channel c, row y: id (b C + c) H + y) that the im2col block of output
// pixels [m0, m1) (m = (b OH + oy) OW + ox) and reductions [k0, k1) (k = (c R + ry) S + sx) reads:
// row y of channel c for each (c, ry, sx) and output row whose window puts a real input element
// (not padding) there. Ascending ids, no repeats.
class ConvRows {
 public:
  explicit ConvRows(const ConvShape& cv);
  // Valid until the next call.
  const std::vector<std::int64_t>& operator()(std::int64_t m0, std::int64_t m1, std::int64_t k0, std::int64_t k1);

 private:
  bool reads(std::int64_t sx, std::int64_t ox0, std::int64_t ox1) const;  // column sx, for some of [ox0, ox1)

  // An output row of the block whose window reaches the input: its first input row oy s - P, and
  // whether some column under the first pair (c, ry) of [k0, k1) and under its last pair does.
  struct Segment {
    std::int64_t y = 0;
    bool first = false, last = false;
  };
  struct Kernel {
    std::int64_t c = 0, ry = 0, sx = 0;  // k = (c R + ry) S + sx
  };
  ConvShape cv_;
  std::int64_t ow_, oh_;
  std::vector<std::pair<std::int64_t, std::int64_t>> reach_;  // [sx]: the output columns it puts an input column under
  std::vector<std::int64_t> whole_row_reads_;  // [sx]: how many columns below sx read the input for a whole output row
  std::vector<Kernel> at_;                     // [k]
  // Scratch kept across calls: one image's segments, the rows y of one channel, the result.
  std::vector<Segment> segments_;
  std::vector<std::int64_t> ys_, rows_;
};

// The loops of the resolved mapping that have more than one fold, outermost first ("mk", "nmk", ""
// for a single tile). A loop of one fold runs once wherever it stands, and which partial sums are
// alive together depends only on the loops of several folds, so the closed form counts two
// mappings with the same M tile and tile order alike. Throws what the closed form throws for a bad
// spec, shape or mapping.
std::string tile_order(const ArraySpec& spec, const GemmShape& shape, const Mapping& mapping);

// A test of a lower bound of a mapping's counts (every field at most its final value): true when
// no mapping with counts at least these is wanted, so that the closed form may stop counting it.
using GiveUp = std::function<bool(const ArrayStats& lower)>;

// The closed form over many mappings of one GEMM or convolution (the mapper's candidates), each
// (M tile, tile order) counted once. Equals array_model / conv_model for every mapping, or is null
// when give_up held on the way: for known(mapping) before the tiles are walked, then every few
// hundred buffer accesses and after the last tile for known(mapping) plus the fetches so far of
// blocks fetched before and the cycles the channel needs for them. A count given up stays given
// up, so give_up may only grow more eager from call to call (the mapper's does: its best only
// improves).
class MappingCounts {
 public:
  MappingCounts(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape, const ConvShape* conv);
  const ArrayStats* operator()(const Mapping& mapping, const GiveUp& give_up = {});
  // The counts as far as they are known before the walk, each at most the final one: all but the
  // fetches of operand blocks (or input rows) fetched before, which depend on what the LRU buffers
  // hold, and the stalls between the first fetch and the last write (cycles: at least those of
  // the first fetch, the compute, the last write, and what the channel needs for the bytes).
  ArrayStats known(const Mapping& mapping) const;

 private:
  ArraySpec spec_;
  OperandBits bits_;
  GemmShape shape_;
  const ConvShape* conv_;
  std::map<std::pair<std::int64_t, std::string>, std::optional<ArrayStats>> counted_;
};

}  // namespace bitsim::sim::detail
