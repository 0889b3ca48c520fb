// Closed-form cycle, buffer and DRAM model of the systolic array (docs/sim.md, "Systolic array").
#include "bitsim/sim/array_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "bitsim/arith/ops.hpp"

namespace bitsim::sim {

std::string_view to_string(Dataflow d) { return d == Dataflow::WeightStationary ? "ws" : "os"; }

Dataflow parse_dataflow(std::string_view s) {
  if (s == "ws") return Dataflow::WeightStationary;
  if (s == "os") return Dataflow::OutputStationary;
  throw std::invalid_argument(fmt::format("bad dataflow {}: expected ws or os", arith::quoted(s)));
}

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

void ArrayConfig::validate() const {
  if (rows < 1 || cols < 1) throw std::invalid_argument(fmt::format("bad array {}x{}: rows and columns must be positive", rows, cols));
  if (a.width() > 64 || w.width() > 64)
    throw std::invalid_argument(fmt::format("operand formats must be at most 64 bits wide (got {} and {})", a.spec(), w.spec()));
  arith::product_format(a, w);                          // throws: mixed fixed/float, too wide
  arith::check_overflow_applies(acc, acc_spec.overflow);  // throws: e.g. wrap on a float
  if (acc_spec.sr_bits < 1 || acc_spec.sr_bits > 32)
    throw std::invalid_argument(fmt::format("bad stochastic rounding width {}: expected 1..32 bits", acc_spec.sr_bits));
  if (buffer_a_bytes < 0 || buffer_w_bytes < 0 || buffer_o_bytes < 0)
    throw std::invalid_argument("buffer sizes must be non-negative");
  if (std::max({buffer_a_bytes, buffer_w_bytes, buffer_o_bytes}) > kMaxBufferBytes)
    throw std::invalid_argument(fmt::format("buffer sizes must be at most {} bytes (1 TiB)", kMaxBufferBytes));
  if (!(dram_bytes_per_cycle >= 0) || !std::isfinite(dram_bytes_per_cycle) ||
      (dram_bytes_per_cycle > 0 && dram_bytes_per_cycle < kMinDramBytesPerCycle))
    throw std::invalid_argument(fmt::format("DRAM bandwidth must be 0 (unlimited) or at least {} bytes per cycle, got {}",
                                            kMinDramBytesPerCycle, dram_bytes_per_cycle));
}

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Extent of fold i of a dimension of size n cut into pieces of p.
std::int64_t extent(std::int64_t n, std::int64_t p, std::int64_t i) { return std::min(p, n - i * p); }

// An LRU buffer scanned cyclically by blocks of these sizes: a block larger than the buffer
// streams through and is never kept; the others stay after their first use when all of them fit
// together, and otherwise each use misses (the block needed next is always the least recently
// used, so it is the first evicted).
struct CyclicScan {
  std::int64_t capacity;
  std::int64_t kept_bytes = 0;  // bytes of the blocks small enough to keep
  bool fetched(std::int64_t block_bytes, bool first_pass) const {
    return first_pass || block_bytes > capacity || kept_bytes > capacity;
  }
};

// What one tile needs from and gives to DRAM, and how long it computes.
struct TileCost {
  std::int64_t compute = 0, fetch = 0, write = 0;  // cycles; bytes; bytes
};

// One DRAM channel serving requests in the order they are issued: a request of b bytes issued at
// cycle s starts when the channel is free and its data is usable ceil(b / bandwidth) cycles later.
class Channel {
 public:
  explicit Channel(double bytes_per_cycle) : bw_(bytes_per_cycle) {}
  std::int64_t issue(std::int64_t at, std::int64_t b) {
    const double d = (bw_ == 0 || b == 0) ? 0 : std::ceil(double(b) / bw_);
    const double done = double(std::max(free_, at)) + d;
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

}  // namespace

std::int64_t compute_cycles(const ArrayConfig& cfg, const GemmShape& s) {
  if (cfg.dataflow == Dataflow::WeightStationary) {
    const std::int64_t fk = ceil_div(s.k, cfg.rows), fn = ceil_div(s.n, cfg.cols);
    // sum over tiles of 2 r + M + c - 1, with sum r = K per n-fold and sum c = N per k-fold
    return 2 * s.k * fn + fk * fn * (s.m - 1) + fk * s.n;
  }
  const std::int64_t fm = ceil_div(s.m, cfg.rows), fn = ceil_div(s.n, cfg.cols);
  // sum over tiles of K + 2 r + c - 2, with sum r = M per n-fold and sum c = N per m-fold
  return fm * fn * (s.k - 2) + 2 * s.m * fn + fm * s.n;
}

ArrayStats array_model(const ArrayConfig& cfg, const GemmShape& s) {
  cfg.validate();
  if (s.m < 1 || s.k < 1 || s.n < 1) throw std::invalid_argument("GEMM sizes must be positive");
  const int ab = cfg.a.width(), wb = cfg.w.width(), cb = cfg.acc.width();
  ArrayStats st;
  st.macs = s.m * s.k * s.n;
  st.pes = std::int64_t(cfg.rows) * cfg.cols;

  std::vector<TileCost> tiles;
  auto fetch = [&](BufferCounts& buf, std::int64_t& dram, std::int64_t elements, int bits) {
    buf.writes += elements;
    dram += packed_bytes(elements, bits);
    return packed_bytes(elements, bits);
  };
  if (cfg.dataflow == Dataflow::WeightStationary) {
    const std::int64_t fk = ceil_div(s.k, cfg.rows), fn = ceil_div(s.n, cfg.cols);
    // A's k-blocks are scanned in the same order for every n-fold.
    CyclicScan a_scan{cfg.buffer_a_bytes};
    for (std::int64_t kt = 0; kt < fk; ++kt)
      if (const std::int64_t b = packed_bytes(s.m * extent(s.k, cfg.rows, kt), ab); b <= cfg.buffer_a_bytes) a_scan.kept_bytes += b;
    for (std::int64_t nt = 0; nt < fn; ++nt) {
      const std::int64_t c = extent(s.n, cfg.cols, nt);
      const bool psum_fits = packed_bytes(s.m * c, cb) <= cfg.buffer_o_bytes;
      for (std::int64_t kt = 0; kt < fk; ++kt) {
        const std::int64_t r = extent(s.k, cfg.rows, kt);
        TileCost t;
        t.compute = r + s.m + r + c - 1;
        t.fetch += fetch(st.buf_w, st.dram.read_w, r * c, wb);
        if (a_scan.fetched(packed_bytes(s.m * r, ab), nt == 0)) t.fetch += fetch(st.buf_a, st.dram.read_a, s.m * r, ab);
        if (kt > 0 && !psum_fits) t.fetch += fetch(st.buf_o, st.dram.read_psum, s.m * c, cb);
        if (kt == fk - 1 || !psum_fits) {
          t.write = packed_bytes(s.m * c, cb);
          st.dram.write_c += t.write;
          st.buf_o.reads += s.m * c;
        }
        st.buf_w.reads += r * c;
        st.buf_a.reads += s.m * r;
        if (kt > 0) st.buf_o.reads += s.m * c;  // partial sums into the top row
        st.buf_o.writes += s.m * c;             // sums out of the bottom row
        tiles.push_back(t);
      }
    }
  } else {
    const std::int64_t fm = ceil_div(s.m, cfg.rows), fn = ceil_div(s.n, cfg.cols);
    // W's n-blocks are scanned in the same order for every m-fold; A's m-block is reused across
    // the n-folds (kept unless it is larger than the buffer).
    CyclicScan w_scan{cfg.buffer_w_bytes};
    for (std::int64_t nt = 0; nt < fn; ++nt)
      if (const std::int64_t b = packed_bytes(s.k * extent(s.n, cfg.cols, nt), wb); b <= cfg.buffer_w_bytes) w_scan.kept_bytes += b;
    for (std::int64_t mt = 0; mt < fm; ++mt) {
      const std::int64_t r = extent(s.m, cfg.rows, mt);
      const bool a_fits = packed_bytes(r * s.k, ab) <= cfg.buffer_a_bytes;
      for (std::int64_t nt = 0; nt < fn; ++nt) {
        const std::int64_t c = extent(s.n, cfg.cols, nt);
        TileCost t;
        t.compute = s.k + r + c - 2 + r;
        if (nt == 0 || !a_fits) t.fetch += fetch(st.buf_a, st.dram.read_a, r * s.k, ab);
        if (w_scan.fetched(packed_bytes(s.k * c, wb), mt == 0)) t.fetch += fetch(st.buf_w, st.dram.read_w, s.k * c, wb);
        t.write = packed_bytes(r * c, cb);
        st.dram.write_c += t.write;
        st.buf_a.reads += r * s.k;
        st.buf_w.reads += s.k * c;
        st.buf_o.writes += r * c;
        st.buf_o.reads += r * c;
        tiles.push_back(t);
      }
    }
  }

  // Tile t+1's operands are fetched while tile t computes; tile t's results are written when it
  // ends. Channel order: fetch 0, fetch 1, write 0, fetch 2, write 1, ..., write T-1.
  Channel dram(cfg.dram_bytes_per_cycle);
  const std::size_t n = tiles.size();
  std::int64_t ready = dram.issue(0, tiles[0].fetch);  // next tile's operands usable from here
  std::int64_t end = 0;
  for (std::size_t t = 0; t < n; ++t) {
    const std::int64_t start = std::max(end, ready);
    if (t > 0) dram.issue(end, tiles[t - 1].write);
    if (t + 1 < n) ready = dram.issue(start, tiles[t + 1].fetch);
    end = start + tiles[t].compute;
    st.compute_cycles += tiles[t].compute;
  }
  st.cycles = std::max(end, dram.issue(end, tiles[n - 1].write));
  st.stall_cycles = st.cycles - st.compute_cycles;
  st.tiles = std::int64_t(n);
  return st;
}

}  // namespace bitsim::sim
