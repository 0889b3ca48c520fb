// Closed-form cycle, buffer and DRAM model of the systolic array (docs/sim.md, "Systolic array").
#include "bitsim/sim/array_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <queue>
#include <stdexcept>
#include <vector>

#include "array_model_internal.hpp"
#include "bitsim/arith/ops.hpp"

namespace bitsim::sim {

std::string_view to_string(Dataflow d) {
  switch (d) {
    case Dataflow::WeightStationary: return "ws";
    case Dataflow::OutputStationary: return "os";
    case Dataflow::InputStationary: return "is";
  }
  return "?";
}

Dataflow parse_dataflow(std::string_view s) {
  if (s == "ws") return Dataflow::WeightStationary;
  if (s == "os") return Dataflow::OutputStationary;
  if (s == "is") return Dataflow::InputStationary;
  throw std::invalid_argument(fmt::format("bad dataflow {}: expected ws, os or is", arith::quoted(s)));
}

namespace detail {

// Input-stationary as the weight-stationary schedule of C^T = W^T A^T: M and N trade places, and
// so do the A and W operands with their widths and buffers.
ArraySpec transposed(const ArraySpec& s) {
  ArraySpec t = s;
  t.dataflow = Dataflow::WeightStationary;
  std::swap(t.buffer_a_bytes, t.buffer_w_bytes);
  return t;
}
OperandBits transposed(const OperandBits& b) {
  OperandBits t = b;
  std::swap(t.a, t.w);
  return t;
}
GemmShape transposed(const GemmShape& s) { return {s.n, s.k, s.m}; }
Mapping transposed(const Mapping& m) {
  std::string o(to_string(m.order));
  for (char& c : o) c = c == 'm' ? 'n' : c == 'n' ? 'm' : c;
  Mapping t = m;
  for (const LoopOrder l : {LoopOrder::Fixed, LoopOrder::MNK, LoopOrder::MKN, LoopOrder::NMK, LoopOrder::NKM, LoopOrder::KMN, LoopOrder::KNM})
    if (to_string(l) == o) t.order = l;
  return t;
}
ArrayStats transposed(ArrayStats s) {
  std::swap(s.buf_a, s.buf_w);
  std::swap(s.dram.read_a, s.dram.read_w);
  std::swap(s.toggles.mul_a, s.toggles.mul_w);
  return s;
}

}  // namespace detail

ArrayDims parse_array_dims(std::string_view s, std::string_view what) {
  const auto bad = [&] {
    return std::invalid_argument(
        fmt::format("bad {} {}: expected RxC with integers 1..{}, e.g. 16x16", what, arith::quoted(s), kMaxArrayDim));
  };
  const auto x = s.find('x');
  if (x == std::string_view::npos) throw bad();
  auto dim = [&](std::string_view t) {
    int v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size() || v < 1 || v > kMaxArrayDim) throw bad();
    return v;
  };
  return {dim(s.substr(0, x)), dim(s.substr(x + 1))};
}

GemmShape ConvShape::gemm() const {
  if (batch < 1 || in_channels < 1 || height < 1 || width < 1 || out_channels < 1 || kernel_h < 1 ||
      kernel_w < 1 || stride < 1 || padding < 0)
    throw std::invalid_argument("convolution: sizes, kernel and stride must be positive, padding non-negative");
  if (height + 2 * padding < kernel_h || width + 2 * padding < kernel_w)
    throw std::invalid_argument(fmt::format("convolution: kernel {}x{} larger than the padded input {}x{}", kernel_h,
                                            kernel_w, height + 2 * padding, width + 2 * padding));
  return {batch * out_height() * out_width(), in_channels * kernel_h * kernel_w, out_channels};
}

void ArraySpec::validate() const {
  if (rows < 1 || cols < 1) throw std::invalid_argument(fmt::format("bad array {}x{}: rows and columns must be positive", rows, cols));
  if (buffer_a_bytes < 0 || buffer_w_bytes < 0 || buffer_o_bytes < 0)
    throw std::invalid_argument("buffer sizes must be non-negative");
  if (std::max({buffer_a_bytes, buffer_w_bytes, buffer_o_bytes}) > kMaxBufferBytes)
    throw std::invalid_argument(fmt::format("buffer sizes must be at most {} bytes (1 TiB)", kMaxBufferBytes));
  if (!(dram_bytes_per_cycle >= 0) || !std::isfinite(dram_bytes_per_cycle) ||
      (dram_bytes_per_cycle > 0 && dram_bytes_per_cycle < kMinDramBytesPerCycle))
    throw std::invalid_argument(fmt::format("DRAM bandwidth must be 0 (unlimited) or at least {} bytes per cycle, got {}",
                                            kMinDramBytesPerCycle, dram_bytes_per_cycle));
}

void OperandBits::validate() const {
  if (a < 1 || a > kMaxOperandBits || w < 1 || w > kMaxOperandBits)
    throw std::invalid_argument(fmt::format("operand widths must be 1..{} bits (got {} and {})", kMaxOperandBits, a, w));
  if (acc < 1 || acc > kMaxAccBits)
    throw std::invalid_argument(fmt::format("accumulator width must be 1..{} bits (got {})", kMaxAccBits, acc));
  if (out < 0 || out > acc)
    throw std::invalid_argument(fmt::format("result width must be 0 (the accumulator's) or 1..{} bits (got {})", acc, out));
}

void ArrayConfig::validate() const {
  ArraySpec::validate();
  if (a.width() > 64 || w.width() > 64)
    throw std::invalid_argument(fmt::format("operand formats must be at most 64 bits wide (got {} and {})", a.spec(), w.spec()));
  arith::product_format(a, w);                          // throws: mixed fixed/float, too wide
  arith::check_overflow_applies(acc, acc_spec.overflow);  // throws: e.g. wrap on a float
  if (acc_spec.sr_bits < 1 || acc_spec.sr_bits > 32)
    throw std::invalid_argument(fmt::format("bad stochastic rounding width {}: expected 1..32 bits", acc_spec.sr_bits));
  bits().validate();
}

namespace detail {

LruBuffer::LruBuffer(std::int64_t capacity, std::int64_t ids, std::int64_t largest)
    : cap_(capacity), never_evicts_(largest <= capacity / ids), nodes_(std::size_t(ids) + 1), head_(ids) {
  nodes_[std::size_t(head_)].prev = nodes_[std::size_t(head_)].next = head_;
}

void LruBuffer::link_front(std::int64_t id) {
  Node& n = nodes_[std::size_t(id)];
  Node& head = nodes_[std::size_t(head_)];
  n.prev = head_, n.next = head.next;
  nodes_[std::size_t(head.next)].prev = id;
  head.next = id;
}

void LruBuffer::unlink(std::int64_t id) {
  Node& n = nodes_[std::size_t(id)];
  nodes_[std::size_t(n.prev)].next = n.next;
  nodes_[std::size_t(n.next)].prev = n.prev;
  n.prev = n.next = -1;
}

bool LruBuffer::access(std::int64_t id, std::int64_t bytes) {
  if (nodes_[std::size_t(id)].prev >= 0) {
    if (!never_evicts_) unlink(id), link_front(id);
    return true;
  }
  if (bytes > cap_) return false;
  while (used_ + bytes > cap_) {
    const std::int64_t back = nodes_[std::size_t(head_)].prev;
    used_ -= nodes_[std::size_t(back)].bytes;
    unlink(back);
  }
  nodes_[std::size_t(id)].bytes = bytes;
  link_front(id);
  used_ += bytes;
  return false;
}

ConvRows::ConvRows(const ConvShape& cv)
    : cv_(cv), ow_(cv.out_width()), oh_(cv.out_height()), reach_(std::size_t(cv.kernel_w)),
      whole_row_reads_(std::size_t(cv.kernel_w) + 1, 0), at_(std::size_t(cv.in_channels * cv.kernel_h * cv.kernel_w)) {
  // Column sx is under an input column for o s + sx - P in [0, W): o from ceil((P - sx) / s) to
  // floor((W - 1 + P - sx) / s).
  for (std::int64_t sx = 0; sx < cv.kernel_w; ++sx) {
    const std::int64_t lo = cv.padding - sx, hi = cv.width - 1 + cv.padding - sx;
    reach_[std::size_t(sx)] = hi < 0 ? std::pair<std::int64_t, std::int64_t>{0, -1}
                                     : std::pair{lo <= 0 ? 0 : (lo + cv.stride - 1) / cv.stride, hi / cv.stride};
    whole_row_reads_[std::size_t(sx) + 1] = whole_row_reads_[std::size_t(sx)] + reads(sx, 0, ow_);
  }
  for (std::int64_t k = 0; k < std::int64_t(at_.size()); ++k)
    at_[std::size_t(k)] = {k / (cv.kernel_h * cv.kernel_w), k / cv.kernel_w % cv.kernel_h, k % cv.kernel_w};
}

bool ConvRows::reads(std::int64_t sx, std::int64_t ox0, std::int64_t ox1) const {
  const auto [lo, hi] = reach_[std::size_t(sx)];
  return std::max(lo, ox0) <= std::min(hi, ox1 - 1);
}

// For one output row of the block and one channel c, the rows read are one interval of y: the
// pairs (c, ry) of [k0, k1) are contiguous and only the first and last pair of the range can miss
// the input where a whole pair reads it. Over the block's successive output rows of one image that
// interval starts no lower (oy grows, ry moves by at most one), so their union comes out in order,
// and it is the same for every channel but the range's first and last. Images, then channels, in
// order are id order: no sort.
const std::vector<std::int64_t>& ConvRows::operator()(std::int64_t m0, std::int64_t m1, std::int64_t k0, std::int64_t k1) {
  const ConvShape& cv = cv_;
  const std::int64_t R = cv.kernel_h, S = cv.kernel_w;
  const Kernel first = at_[std::size_t(k0)], last = at_[std::size_t(k1 - 1)];
  const bool one_pair = first.c == last.c && first.ry == last.ry;
  rows_.clear();
  std::int64_t m = m0, b = m0 / ow_ / oh_, oy = m0 / ow_ % oh_, ox0 = m0 % ow_;
  while (m < m1) {
    const std::int64_t image = b;
    segments_.clear();
    while (m < m1 && b == image) {
      const std::int64_t ox1 = std::min(ow_, ox0 + (m1 - m));  // this output row's pixels in the block
      auto any = [&](std::int64_t lo, std::int64_t hi) {  // some column in [lo, hi] reads the input
        if (ox0 == 0 && ox1 == ow_) return whole_row_reads_[std::size_t(hi) + 1] > whole_row_reads_[std::size_t(lo)];
        for (std::int64_t sx = lo; sx <= hi; ++sx)
          if (reads(sx, ox0, ox1)) return true;
        return false;
      };
      if (any(0, S - 1)) {
        const bool first_reads = any(first.sx, one_pair ? last.sx : S - 1);
        segments_.push_back({oy * cv.stride - cv.padding, first_reads, one_pair ? first_reads : any(0, last.sx)});
      }
      m += ox1 - ox0, ox0 = 0;
      if (++oy == oh_) oy = 0, ++b;
    }
    for (std::int64_t c = first.c; c <= last.c; ++c) {
      if (c == first.c || c == last.c || c == first.c + 1) {  // the rows of c differ from those of c - 1
        const std::int64_t ra = c == first.c ? first.ry : 0, rb = c == last.c ? last.ry : R - 1;
        ys_.clear();
        std::int64_t next = 0;  // rows below it are out already
        for (const Segment& sg : segments_) {
          const std::int64_t y0 = std::max({sg.y + ra + (c == first.c && !sg.first), std::int64_t(0), next});
          const std::int64_t y1 = std::min(sg.y + rb - (c == last.c && !sg.last), cv.height - 1);
          if (y0 > y1) continue;
          for (std::int64_t y = y0; y <= y1; ++y) ys_.push_back(y);
          next = y1 + 1;
        }
      }
      const std::int64_t base = (image * cv.in_channels + c) * cv.height;
      for (const std::int64_t y : ys_) rows_.push_back(base + y);
    }
  }
  return rows_;
}

}  // namespace detail

namespace {

using detail::LruBuffer;

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

void check_shape(const GemmShape& s) {
  if (s.m < 1 || s.k < 1 || s.n < 1) throw std::invalid_argument("GEMM sizes must be positive");
}

// Extent of fold i of a dimension of size n cut into pieces of p.
std::int64_t extent(std::int64_t n, std::int64_t p, std::int64_t i) { return std::min(p, n - i * p); }

// What one tile needs from and gives to DRAM (bytes), and its extents as the timeline sees them.
struct TileCost {
  std::int64_t r = 0, c = 0, mt = 0;  // PE rows and columns, rows streamed (os: r)
  std::int64_t block = 0, kt = 0;     // ws: the (m-block, n-fold) it adds to, and its k-fold
  std::int64_t fetch = 0, write = 0;
};

// Cycles a request of b bytes holds the DRAM channel: ceil(b / bandwidth), 0 when unlimited.
double transfer_cycles(double bytes_per_cycle, std::int64_t b) {
  return (bytes_per_cycle == 0 || b == 0) ? 0 : std::ceil(double(b) / bytes_per_cycle);
}

// One DRAM channel serving requests in the order they are issued: a request of b bytes issued at
// cycle s starts when the channel is free and its data is usable ceil(b / bandwidth) cycles later.
class Channel {
 public:
  explicit Channel(double bytes_per_cycle) : bw_(bytes_per_cycle) {}
  std::int64_t issue(std::int64_t at, std::int64_t b) {
    const double done = double(std::max(free_, at)) + transfer_cycles(bw_, b);
    // Cycle counts stay exact integers far below 2^63; a channel that slow is refused, not wrapped.
    if (done > 0x1p62)
      throw std::invalid_argument(fmt::format("at {} DRAM bytes per cycle this GEMM needs more than 2^62 cycles", bw_));
    free_ = std::int64_t(done);
    return free_;
  }

 private:
  double bw_;
  std::int64_t free_ = 0;
};

// One tile of a mapping: block indices and extents.
struct Span {
  std::int64_t mb = 0, kt = 0, nt = 0;  // m-block, k-fold, n-fold
  std::int64_t m0 = 0, mt = 0, k0 = 0, r = 0, n0 = 0, c = 0;
};

// The tiles of a resolved mapping in the order they run. ws: m-blocks of tile_m rows, k-folds of R,
// n-folds of C; os: m-folds of R rows spanning K, n-folds of C.
std::vector<Span> schedule(const ArraySpec& spec, const GemmShape& s, const Mapping& mp) {
  const bool ws = spec.dataflow == Dataflow::WeightStationary;
  const std::int64_t pm = ws ? mp.tile_m : spec.rows, pk = ws ? spec.rows : s.k, pn = spec.cols;
  const std::int64_t f[3] = {ceil_div(s.m, pm), ceil_div(s.k, pk), ceil_div(s.n, pn)};  // folds of m, k, n
  // Dimension (0 = m, 1 = k, 2 = n) of each loop, outermost first.
  int dim[3] = {0, 1, 2};
  switch (mp.order) {
    case LoopOrder::MNK: dim[0] = 0, dim[1] = 2, dim[2] = 1; break;
    case LoopOrder::MKN: dim[0] = 0, dim[1] = 1, dim[2] = 2; break;
    case LoopOrder::NMK: dim[0] = 2, dim[1] = 0, dim[2] = 1; break;
    case LoopOrder::NKM: dim[0] = 2, dim[1] = 1, dim[2] = 0; break;
    case LoopOrder::KMN: dim[0] = 1, dim[1] = 0, dim[2] = 2; break;
    case LoopOrder::KNM: dim[0] = 1, dim[1] = 2, dim[2] = 0; break;
    case LoopOrder::Fixed: throw std::logic_error("schedule: unresolved mapping");
  }
  std::vector<Span> out;
  out.reserve(std::size_t(f[0] * f[1] * f[2]));
  std::int64_t i[3];
  for (i[dim[0]] = 0; i[dim[0]] < f[dim[0]]; ++i[dim[0]])
    for (i[dim[1]] = 0; i[dim[1]] < f[dim[1]]; ++i[dim[1]])
      for (i[dim[2]] = 0; i[dim[2]] < f[dim[2]]; ++i[dim[2]]) {
        Span t;
        t.mb = i[0], t.kt = i[1], t.nt = i[2];
        t.m0 = i[0] * pm, t.mt = extent(s.m, pm, i[0]);
        t.k0 = i[1] * pk, t.r = extent(s.k, pk, i[1]);
        t.n0 = i[2] * pn, t.c = extent(s.n, pn, i[2]);
        out.push_back(t);
      }
  return out;
}

// The tile's extents and partial-sum block; no traffic.
TileCost extents(const Span& t, bool ws, std::int64_t fn) {
  TileCost tc;
  tc.r = ws ? t.r : t.mt, tc.c = t.c, tc.mt = t.mt;
  tc.block = t.mb * fn + t.nt, tc.kt = t.kt;
  return tc;
}

struct Timing {
  std::int64_t cycles = 0, compute = 0;  // compute: the cycles in which some tile loads, streams or drains
};

// When each tile loads (L), streams (S: its first operand enters PE(0, 0)) and ends (E: its last
// result reaches the output buffer), and when the DRAM channel serves each request. Tile t + 1's
// operands are requested when tile t starts (at L), tile t's results in the cycle after E; requests
// issued in one cycle, fetch before write, and writes in E order (then tile order).
//   serialized:  L = max(F, E' + 1) (F: the tile's operands on chip; ' the previous tile)
//   overlapped ws:  L = max(F, S' + min(c', c) - 1)  (the shadow weights are free once every PE
//                       the load reaches has taken the previous tile's)
//                   S = max(L + r, S' + Mt' + max(0, r' - r), Sq + rq)  (the rows' input ports;
//                       the columns' output ports; q: the block's previous k-fold, whose partial
//                       sums the top row reads)
//   overlapped os:  L = S = max(F, S' + max(K, 2 r' - 1))  (the input ports; the output registers
//                       drained)
//   ws S = L + r (serialized), E = S + Mt + r + c - 2;  os E = S + K + 2 r + c - 3.
// docs/sim.md derives the rules.
Timing timeline(const ArraySpec& spec, std::int64_t K, const std::vector<TileCost>& tiles, std::int64_t blocks) {
  const bool ws = spec.dataflow != Dataflow::OutputStationary;
  Channel dram(spec.dram_bytes_per_cycle);
  struct Write {
    std::int64_t end, tile, bytes;
    bool operator>(const Write& o) const { return end != o.end ? end > o.end : tile > o.tile; }
  };
  std::priority_queue<Write, std::vector<Write>, std::greater<>> writes;
  std::int64_t served = 0;  // when the last request issued is served
  auto write_before = [&](std::int64_t cycle) {  // the writes of tiles that ended before this cycle
    while (!writes.empty() && writes.top().end < cycle) {
      served = dram.issue(writes.top().end + 1, writes.top().bytes);
      writes.pop();
    }
  };
  std::vector<std::pair<std::int64_t, std::int64_t>> fold(std::size_t(spec.overlap && ws ? blocks : 0));  // block: S, r of its last k-fold
  Timing tm;
  std::int64_t ready = dram.issue(0, tiles[0].fetch), covered = -1;  // covered: the last cycle some tile was active
  std::int64_t S = 0, E = 0;
  for (std::size_t t = 0; t < tiles.size(); ++t) {
    const TileCost& T = tiles[t];
    const TileCost* P = t > 0 ? &tiles[t - 1] : nullptr;
    std::int64_t L = ready;
    if (P && !spec.overlap) L = std::max(L, E + 1);
    if (P && spec.overlap) L = std::max(L, ws ? S + std::min(P->c, T.c) - 1 : S + std::max(K, 2 * P->r - 1));
    std::int64_t next_s = ws ? L + T.r : L;
    if (P && spec.overlap && ws) {
      next_s = std::max(next_s, S + P->mt + std::max<std::int64_t>(0, P->r - T.r));
      if (T.kt > 0) next_s = std::max(next_s, fold[std::size_t(T.block)].first + fold[std::size_t(T.block)].second);
    }
    S = next_s;
    if (!fold.empty()) fold[std::size_t(T.block)] = {S, T.r};
    E = ws ? S + T.mt + T.r + T.c - 2 : S + K + 2 * T.r + T.c - 3;
    write_before(L);
    if (t + 1 < tiles.size()) ready = dram.issue(L, tiles[t + 1].fetch);
    writes.push({E, std::int64_t(t), T.write});
    tm.compute += std::max<std::int64_t>(0, E - std::max(L, covered + 1) + 1);
    covered = std::max(covered, E);
  }
  write_before(std::numeric_limits<std::int64_t>::max());
  tm.cycles = std::max(covered + 1, served);
  return tm;
}

// The folds a dimension of n cuts into with folds of p come in at most two sizes: {how many,
// extent} of the full ones, then of the remainder (none when p divides n).
using Folds = std::array<std::pair<std::int64_t, std::int64_t>, 2>;
Folds folds(std::int64_t n, std::int64_t p) { return {std::pair{n / p, p}, std::pair{std::int64_t(n % p != 0), n % p}}; }

// Bytes of each p1 x p2 block of an n1 x n2 matrix, packed, summed: the DRAM bytes of one fetch
// of every block.
std::int64_t block_bytes(std::int64_t n1, std::int64_t p1, std::int64_t n2, std::int64_t p2, int bits) {
  std::int64_t sum = 0;
  for (const auto& [c1, e1] : folds(n1, p1))
    for (const auto& [c2, e2] : folds(n2, p2)) sum += c1 * c2 * packed_bytes(e1 * e2, bits);
  return sum;
}

// ws partial sums: the blocks live while a block's k-folds run are those that share the loop
// indices outside k; they stay in the O buffer when all of them fit together, and otherwise every
// k-fold but the last writes its block to DRAM and the next reads it back. Which blocks stay
// depends only on the sizes of their m-block and n-fold (size i: 0 full, 1 the remainder).
class PartialSums {
 public:
  // mp: resolved, on a weight-stationary array.
  PartialSums(const ArraySpec& spec, const GemmShape& s, const Mapping& mp, int acc_bits)
      : full_m_(s.m / mp.tile_m), full_n_(s.n / spec.cols) {
    const Folds m = folds(s.m, mp.tile_m), n = folds(s.n, spec.cols);
    const std::string_view o = to_string(mp.order);
    const bool m_fixed = o.find('m') < o.find('k'), n_fixed = o.find('n') < o.find('k');  // a loop outside k
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        std::int64_t live = 0;  // bytes of the blocks that share a block of sizes (i, j)'s indices outside k
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) {
            const std::int64_t blocks = (m_fixed ? std::int64_t(a == i) : m[std::size_t(a)].first) *
                                        (n_fixed ? std::int64_t(b == j) : n[std::size_t(b)].first);
            live += blocks * packed_bytes(m[std::size_t(a)].second * n[std::size_t(b)].second, acc_bits);
          }
        kept_[i][j] = live <= spec.buffer_o_bytes;
      }
  }
  bool kept_sizes(int i, int j) const { return kept_[i][j]; }
  bool kept(std::int64_t mb, std::int64_t nt) const { return kept_[mb >= full_m_][nt >= full_n_]; }

 private:
  std::int64_t full_m_, full_n_;  // m-blocks and n-folds of the full size
  bool kept_[2][2] = {};
};

// Raises k.cycles to the cycles the channel needs for k's DRAM bytes: a request of b bytes takes
// ceil(b / bandwidth) cycles and requests take turns, so all take at least total / bandwidth
// (1e-9 less, for the rounding of doubles). The stalls are at least the cycles less the compute
// cycles where those are exact; overlapped tiles that stall overlap less, so there k's compute
// cycles are only a lower bound, and so are no stalls.
void raise_to_channel(ArrayStats& k, const ArraySpec& spec) {
  const double bytes_per_cycle = spec.dram_bytes_per_cycle;
  if (bytes_per_cycle > 0) {
    const double busy = std::floor(double(k.dram.total()) / bytes_per_cycle * (1 - 1e-9));
    k.cycles = std::max(k.cycles, std::int64_t(std::min(busy, 0x1p62)));
  }
  k.stall_cycles = spec.overlap && bytes_per_cycle > 0 ? 0 : k.cycles - k.compute_cycles;
}

// The mapping's final counts as far as they are known before its tiles are walked, each at most
// its final value. Exact but for the operand fetches of a block (or input row) fetched before,
// which depend on what the LRU buffers hold, and for the stalls between the first fetch and the
// last write. mp: resolved.
// conv_stationary: the convolution's im2col operand is W (an input-stationary problem transposed),
// its rows fetched for the stationary tiles; otherwise a convolution's is A.
ArrayStats known_counts(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const Mapping& mp,
                        const ConvShape* conv, bool conv_stationary = false) {
  const bool ws = spec.dataflow == Dataflow::WeightStationary;
  std::optional<PartialSums> psums;
  if (ws) psums.emplace(spec, s, mp, bits.acc);
  const std::int64_t pm = ws ? mp.tile_m : spec.rows, pk = ws ? spec.rows : s.k;  // block extents, as in schedule()
  const std::int64_t fm = ceil_div(s.m, pm), fk = ceil_div(s.k, pk), fn = ceil_div(s.n, spec.cols);
  ArrayStats k;
  k.macs = s.m * s.k * s.n;
  k.pes = std::int64_t(spec.rows) * spec.cols;
  k.tiles = fm * fk * fn;
  k.compute_cycles = compute_cycles(spec, s, mp);
  k.buf_a.reads = fn * s.m * s.k;  // each n-fold streams all of A
  k.buf_w.reads = fm * s.k * s.n;  // each m-block loads all of W
  // One fetch of every W block, and of every A block or every input row that some tile reads
  // (those the whole im2col block reads: as many in every image). The first tile's operands are
  // all fetched: its W block, and its A block or (at least) the rows its first image reads.
  const std::int64_t r0 = std::min(pk, s.k), c0 = std::min<std::int64_t>(spec.cols, s.n);
  std::int64_t first_fetch = 0;
  if (conv && conv_stationary) {
    detail::ConvRows conv_rows(*conv);
    const std::int64_t image = conv->out_height() * conv->out_width(), row_bytes = packed_bytes(conv->width, bits.w);
    const std::int64_t rows = conv->batch * std::int64_t(conv_rows(0, image, 0, s.k).size());
    k.buf_w.writes = rows * conv->width, k.dram.read_w = rows * row_bytes;
    first_fetch += std::int64_t(conv_rows(0, std::min({c0, image}), 0, r0).size()) * row_bytes;
  } else {
    first_fetch += packed_bytes(r0 * c0, bits.w);
    k.buf_w.writes = s.k * s.n, k.dram.read_w = block_bytes(s.k, pk, s.n, spec.cols, bits.w);
  }
  if (conv && !conv_stationary) {
    detail::ConvRows conv_rows(*conv);
    const std::int64_t image = conv->out_height() * conv->out_width(), row_bytes = packed_bytes(conv->width, bits.a);
    const std::int64_t rows = conv->batch * std::int64_t(conv_rows(0, image, 0, s.k).size());
    k.buf_a.writes = rows * conv->width, k.dram.read_a = rows * row_bytes;
    first_fetch += std::int64_t(conv_rows(0, std::min({pm, s.m, image}), 0, r0).size()) * row_bytes;
  } else {
    k.buf_a.writes = s.m * s.k, k.dram.read_a = block_bytes(s.m, pm, s.k, pk, bits.a);
    first_fetch += packed_bytes(std::min(pm, s.m) * r0, bits.a);
  }
  // The e sums of an (m-block, n-fold) leave the array on each k-fold and enter it again on each
  // but the first; kept, they go to DRAM once, else on every k-fold and come back on every one but
  // the first. Spilled partial sums travel at the accumulator's width, finished results at out's.
  const Folds m = folds(s.m, pm), n = folds(s.n, spec.cols);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      const std::int64_t blocks = m[std::size_t(i)].first * n[std::size_t(j)].first;
      const std::int64_t e = m[std::size_t(i)].second * n[std::size_t(j)].second, bytes = packed_bytes(e, bits.acc);
      const std::int64_t spills = psums && !psums->kept_sizes(i, j) ? fk - 1 : 0;
      k.buf_o.writes += blocks * (fk + spills) * e, k.buf_o.reads += blocks * (fk + spills) * e;
      k.dram.read_psum += blocks * spills * bytes;
      k.dram.write_c += blocks * (spills * bytes + packed_bytes(e, bits.out_bits()));
    }
  // Cycles at least: the first tile waits for its operands, the tiles compute one after another,
  // and the last one's results (its k-fold is the last) leave after it; or what the channel needs.
  const double bw = spec.dram_bytes_per_cycle;
  // Overlapped, the tile that ends last need not be the last one started: no write is known to come last.
  const std::int64_t last_write =
      spec.overlap ? 0 : packed_bytes(extent(s.m, pm, fm - 1) * extent(s.n, spec.cols, fn - 1), bits.out_bits());
  const double path = transfer_cycles(bw, first_fetch) + double(k.compute_cycles) + transfer_cycles(bw, last_write);
  k.cycles = std::int64_t(std::min(path, 0x1p62));
  raise_to_channel(k, spec);
  return k;
}

// Buffer accesses the walk makes between two tests of give_up: a test scores a metric (the
// pipeline's energy takes a microsecond or two), an access and its share of a tile some ten
// nanoseconds.
constexpr std::int64_t kAccessesPerTest = 512;

// The GEMM model, with A read either as blocks of the M x K matrix (conv == nullptr) or as input
// rows. Nothing when give_up holds for a lower bound of the counts: tested before the walk, every
// kAccessesPerTest buffer accesses and after the last tile.
std::optional<ArrayStats> model_of(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const Mapping& mapping,
                                   const ConvShape* conv, bool conv_stationary, const detail::GiveUp& give_up) {
  spec.validate();
  bits.validate();
  check_shape(s);
  const Mapping mp = resolve(mapping, spec.dataflow, s);
  const int ab = bits.a, wb = bits.w, cb = bits.acc, ob = bits.out_bits();
  const bool ws = spec.dataflow == Dataflow::WeightStationary;
  // The convolution's operand: A (streamed, or os) or, transposed input-stationary, W (stationary).
  const ConvShape* conv_a = conv_stationary ? nullptr : conv;
  const ConvShape* conv_w = conv_stationary ? conv : nullptr;
  std::optional<ArrayStats> known;
  if (give_up) {
    known = known_counts(spec, bits, s, mp, conv, conv_stationary);
    if (give_up(*known)) return std::nullopt;
  }
  std::optional<PartialSums> psums;
  if (ws) psums.emplace(spec, s, mp, cb);
  ArrayStats st;
  st.macs = s.m * s.k * s.n;
  st.pes = std::int64_t(spec.rows) * spec.cols;
  const std::vector<Span> spans = schedule(spec, s, mp);
  const std::int64_t fm = ceil_div(s.m, ws ? mp.tile_m : spec.rows), fk = ceil_div(s.k, spec.rows);
  const std::int64_t fn = ceil_div(s.n, spec.cols);

  std::vector<TileCost> tiles;
  tiles.reserve(spans.size());
  std::int64_t accesses = 0, next_test = kAccessesPerTest;  // of the A and W buffers
  auto fetch = [&](BufferCounts& buf, std::int64_t& dram, std::int64_t elements, int bits_per) {
    buf.writes += elements;
    dram += packed_bytes(elements, bits_per);
    return packed_bytes(elements, bits_per);
  };
  // Block ids: A (m-block, k-fold) or input row, W (k-fold, n-fold) or input row; os blocks span K.
  const std::int64_t conv_ids = conv ? conv->batch * conv->in_channels * conv->height : 0;
  const std::int64_t ids_a = conv_a ? conv_ids : ws ? fm * fk : fm;
  const std::int64_t ids_w = conv_w ? conv_ids : ws ? fk * fn : fn;
  LruBuffer buf_a(spec.buffer_a_bytes, ids_a,
                  conv_a ? packed_bytes(conv->width, ab) : packed_bytes((ws ? mp.tile_m : spec.rows) * (ws ? spec.rows : s.k), ab));
  LruBuffer buf_w(spec.buffer_w_bytes, ids_w,
                  conv_w ? packed_bytes(conv->width, wb) : packed_bytes((ws ? spec.rows : s.k) * spec.cols, wb));
  // known has one fetch of every block and row; with the fetches of those fetched before added,
  // it stays a lower bound of the final counts as the walk goes.
  std::vector<bool> fetched_a(std::size_t(known ? ids_a : 0)), fetched_w(std::size_t(known ? ids_w : 0));
  auto fetched_before = [](std::vector<bool>& fetched, std::int64_t id) {
    const bool before = fetched[std::size_t(id)];
    fetched[std::size_t(id)] = true;
    return before;
  };
  auto miss_a = [&](std::int64_t id, std::int64_t elements) {
    if (known && fetched_before(fetched_a, id)) fetch(known->buf_a, known->dram.read_a, elements, ab);
    return fetch(st.buf_a, st.dram.read_a, elements, ab);
  };
  std::optional<detail::ConvRows> conv_rows;
  if (conv) conv_rows.emplace(*conv);
  // A: a block of the A matrix, or (convolution) every input row the block reads, through the A
  // buffer; the DRAM bytes fetched.
  // Every input row of the convolution's im2col block of pixels [m0, m1) and reductions [k0, k1)
  // through `buf` (widths `bits`); `miss` counts a row fetched. The DRAM bytes fetched.
  auto fetch_rows = [&](LruBuffer& buf, int bits, const auto& miss, std::int64_t m0, std::int64_t m1, std::int64_t k0,
                        std::int64_t k1) {
    const std::vector<std::int64_t>& rows = (*conv_rows)(m0, m1, k0, k1);
    accesses += std::int64_t(rows.size());
    const std::int64_t row_bytes = packed_bytes(conv->width, bits);
    std::int64_t b = 0;
    for (const std::int64_t row : rows)
      if (!buf.access(row, row_bytes)) b += miss(row, conv->width);
    return b;
  };
  auto fetch_a = [&](std::int64_t id, std::int64_t m0, std::int64_t mt, std::int64_t k0, std::int64_t kt_len) {
    if (conv_a) return fetch_rows(buf_a, ab, miss_a, m0, m0 + mt, k0, k0 + kt_len);
    ++accesses;
    return buf_a.access(id, packed_bytes(mt * kt_len, ab)) ? 0 : miss_a(id, mt * kt_len);
  };
  auto miss_w = [&](std::int64_t id, std::int64_t elements) {
    if (known && fetched_before(fetched_w, id)) fetch(known->buf_w, known->dram.read_w, elements, wb);
    return fetch(st.buf_w, st.dram.read_w, elements, wb);
  };
  auto fetch_w = [&](std::int64_t id, std::int64_t elements) -> std::int64_t {
    ++accesses;
    return buf_w.access(id, packed_bytes(elements, wb)) ? 0 : miss_w(id, elements);
  };
  for (const Span& t : spans) {
    if (known && accesses >= next_test) {
      raise_to_channel(*known, spec);
      if (give_up(*known)) return std::nullopt;
      next_test = accesses + kAccessesPerTest;
    }
    TileCost tc = extents(t, ws, fn);
    if (ws) {
      const bool kept = psums->kept(t.mb, t.nt), last_k = t.kt == fk - 1;
      // Transposed input-stationary convolution: the stationary tile (pixels [n0, n0 + c), reductions
      // [k0, k0 + r)) as the input rows it reads, through the W buffer.
      tc.fetch += conv_w ? fetch_rows(buf_w, wb, miss_w, t.n0, t.n0 + t.c, t.k0, t.k0 + t.r) : fetch_w(t.kt * fn + t.nt, t.r * t.c);
      tc.fetch += fetch_a(t.mb * fk + t.kt, t.m0, t.mt, t.k0, t.r);
      if (t.kt > 0 && !kept) tc.fetch += fetch(st.buf_o, st.dram.read_psum, t.mt * t.c, cb);
      if (last_k || !kept) {
        tc.write = packed_bytes(t.mt * t.c, last_k ? ob : cb);
        st.dram.write_c += tc.write;
        st.buf_o.reads += t.mt * t.c;
      }
      st.buf_w.reads += t.r * t.c;
      st.buf_a.reads += t.mt * t.r;
      if (t.kt > 0) st.buf_o.reads += t.mt * t.c;  // partial sums into the top row
      st.buf_o.writes += t.mt * t.c;               // sums out of the bottom row
    } else {
      const std::int64_t r = t.mt;  // an os tile's PE rows are its output rows
      tc.fetch += fetch_a(t.mb, t.m0, r, 0, s.k);
      tc.fetch += fetch_w(t.nt, s.k * t.c);
      tc.write = packed_bytes(r * t.c, ob);
      st.dram.write_c += tc.write;
      st.buf_a.reads += r * s.k;
      st.buf_w.reads += s.k * t.c;
      st.buf_o.writes += r * t.c;
      st.buf_o.reads += r * t.c;
    }
    tiles.push_back(tc);
  }
  if (known) {
    raise_to_channel(*known, spec);
    if (give_up(*known)) return std::nullopt;
  }

  const Timing tm = timeline(spec, s.k, tiles, fm * fn);
  st.cycles = tm.cycles;
  st.compute_cycles = tm.compute;
  st.stall_cycles = st.cycles - st.compute_cycles;
  st.tiles = std::int64_t(tiles.size());
  return st;
}

bool input_stationary(const ArraySpec& spec) { return spec.dataflow == Dataflow::InputStationary; }

// The model of any dataflow: an input-stationary problem as its transposed weight-stationary one
// (a convolution's rows then feed the stationary tiles), counted back in A and W terms.
std::optional<ArrayStats> model(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const Mapping& mapping,
                                const ConvShape* conv, const detail::GiveUp& give_up) {
  if (!input_stationary(spec)) return model_of(spec, bits, s, mapping, conv, false, give_up);
  using detail::transposed;
  detail::GiveUp back;
  if (give_up) back = [&](const ArrayStats& k) { return give_up(transposed(k)); };
  std::optional<ArrayStats> r =
      model_of(transposed(spec), transposed(bits), transposed(s), transposed(mapping), conv, conv != nullptr, back);
  if (r) *r = transposed(*r);
  return r;
}

// known_counts of a mapping resolved for `spec`'s dataflow, any dataflow.
ArrayStats known_of(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const Mapping& mp,
                    const ConvShape* conv) {
  if (!input_stationary(spec)) return known_counts(spec, bits, s, mp, conv);
  using detail::transposed;
  return transposed(known_counts(transposed(spec), transposed(bits), transposed(s), transposed(mp), conv, conv != nullptr));
}

}  // namespace

std::string_view to_string(LoopOrder o) {
  switch (o) {
    case LoopOrder::Fixed: return "fixed";
    case LoopOrder::MNK: return "mnk";
    case LoopOrder::MKN: return "mkn";
    case LoopOrder::NMK: return "nmk";
    case LoopOrder::NKM: return "nkm";
    case LoopOrder::KMN: return "kmn";
    case LoopOrder::KNM: return "knm";
  }
  return "?";
}

std::string Mapping::to_string() const {
  if (order == LoopOrder::Fixed && tile_m == 0) return "fixed";
  if (tile_m == 0) return fmt::format("order {}", sim::to_string(order));
  return fmt::format("order {}, M tile {}", sim::to_string(order), tile_m);
}

Mapping resolve(const Mapping& m, Dataflow d, const GemmShape& s) {
  if (m.tile_m < 0) throw std::invalid_argument(fmt::format("bad mapping: M tile {} is negative", m.tile_m));
  if (d == Dataflow::InputStationary)
    return detail::transposed(resolve(detail::transposed(m), Dataflow::WeightStationary, detail::transposed(s)));
  Mapping r = m;
  if (d == Dataflow::WeightStationary) {
    if (r.order == LoopOrder::Fixed) r.order = LoopOrder::NMK;
    r.tile_m = (r.tile_m == 0 || r.tile_m > s.m) ? s.m : r.tile_m;
    return r;
  }
  if (r.order == LoopOrder::Fixed) r.order = LoopOrder::MNK;
  if (r.order != LoopOrder::MNK && r.order != LoopOrder::NMK)
    throw std::invalid_argument(fmt::format("bad mapping: order {} on an output-stationary array (its tiles span K): "
                                            "expected mnk or nmk", sim::to_string(r.order)));
  if (r.tile_m != 0) throw std::invalid_argument("bad mapping: an output-stationary tile is R rows of M (M tile must be 0)");
  return r;
}

std::int64_t compute_cycles(const ArraySpec& spec, const GemmShape& s, const Mapping& mapping) {
  if (input_stationary(spec))
    return compute_cycles(detail::transposed(spec), detail::transposed(s), detail::transposed(mapping));
  if (spec.overlap) {  // no closed sum: the tiles' timeline without traffic
    spec.validate();
    check_shape(s);
    const Mapping mp = resolve(mapping, spec.dataflow, s);
    const bool ws = spec.dataflow == Dataflow::WeightStationary;
    const std::int64_t fm = ceil_div(s.m, ws ? mp.tile_m : spec.rows), fn = ceil_div(s.n, spec.cols);
    ArraySpec unlimited = spec;
    unlimited.dram_bytes_per_cycle = 0;
    std::vector<TileCost> tiles;
    for (const Span& t : schedule(spec, s, mp)) tiles.push_back(extents(t, ws, fn));
    return timeline(unlimited, s.k, tiles, fm * fn).compute;
  }
  if (spec.dataflow == Dataflow::WeightStationary) {
    const Mapping mp = resolve(mapping, spec.dataflow, s);
    const std::int64_t fm = ceil_div(s.m, mp.tile_m), fk = ceil_div(s.k, spec.rows), fn = ceil_div(s.n, spec.cols);
    // sum over tiles of 2 r + Mt + c - 1, with sum r = K per (m-block, n-fold), sum Mt = M per
    // (k-fold, n-fold) and sum c = N per (m-block, k-fold)
    return 2 * s.k * fm * fn + fk * fn * s.m + fm * fk * s.n - fm * fk * fn;
  }
  const std::int64_t fm = ceil_div(s.m, spec.rows), fn = ceil_div(s.n, spec.cols);
  // sum over tiles of K + 2 r + c - 2, with sum r = M per n-fold and sum c = N per m-fold
  return fm * fn * (s.k - 2) + 2 * s.m * fn + fm * s.n;
}

ArrayStats array_model(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const Mapping& mapping) {
  return *model(spec, bits, s, mapping, nullptr, {});
}

ArrayStats conv_model(const ArraySpec& spec, const OperandBits& bits, const ConvShape& cv, const Mapping& mapping) {
  return *model(spec, bits, cv.gemm(), mapping, &cv, {});
}

namespace detail {

std::string tile_order(const ArraySpec& spec, const GemmShape& s, const Mapping& mapping) {
  if (input_stationary(spec)) {  // the transposed problem's loops, named in this one's letters
    std::string o = tile_order(transposed(spec), transposed(s), transposed(mapping));
    for (char& c : o) c = c == 'm' ? 'n' : c == 'n' ? 'm' : c;
    return o;
  }
  spec.validate();
  check_shape(s);
  const Mapping mp = resolve(mapping, spec.dataflow, s);
  const bool ws = spec.dataflow == Dataflow::WeightStationary;
  const std::int64_t fm = ceil_div(s.m, ws ? mp.tile_m : spec.rows), fk = ws ? ceil_div(s.k, spec.rows) : 1;
  const std::int64_t fn = ceil_div(s.n, spec.cols);
  std::string out;
  for (const char d : to_string(mp.order))
    if ((d == 'm' ? fm : d == 'k' ? fk : fn) > 1) out += d;
  return out;
}

MappingCounts::MappingCounts(const ArraySpec& spec, const OperandBits& bits, const GemmShape& shape, const ConvShape* conv)
    : spec_(spec), bits_(bits), shape_(shape), conv_(conv) {}

ArrayStats MappingCounts::known(const Mapping& mapping) const {
  spec_.validate();
  bits_.validate();
  check_shape(shape_);
  return known_of(spec_, bits_, shape_, resolve(mapping, spec_.dataflow, shape_), conv_);
}

const ArrayStats* MappingCounts::operator()(const Mapping& mapping, const GiveUp& give_up) {
  const Mapping mp = resolve(mapping, spec_.dataflow, shape_);
  const auto [it, fresh] = counted_.try_emplace({mp.tile_m, tile_order(spec_, shape_, mp)});
  if (fresh) it->second = model(spec_, bits_, shape_, mp, conv_, give_up);
  return it->second ? &*it->second : nullptr;
}

}  // namespace detail

}  // namespace bitsim::sim
