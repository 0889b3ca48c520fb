// Closed-form cycle, buffer and DRAM model of the systolic array (docs/sim.md, "Systolic array").
#include "bitsim/sim/array_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <list>
#include <stdexcept>
#include <unordered_map>
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
}

void ArrayConfig::validate() const {
  ArraySpec::validate();
  if (a.width() > 64 || w.width() > 64)
    throw std::invalid_argument(fmt::format("operand formats must be at most 64 bits wide (got {} and {})", a.spec(), w.spec()));
  arith::product_format(a, w);                          // throws: mixed fixed/float, too wide
  arith::check_overflow_applies(acc, acc_spec.overflow);  // throws: e.g. wrap on a float
  if (acc_spec.sr_bits < 1 || acc_spec.sr_bits > 32)
    throw std::invalid_argument(fmt::format("bad stochastic rounding width {}: expected 1..32 bits", acc_spec.sr_bits));
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

// An LRU buffer of whole blocks (the same policy as the SystemC array's A and W buffers): a hit
// moves the block to the front; a miss keeps the block, evicting from the back, unless it is
// larger than the buffer, in which case it streams through.
class LruBuffer {
 public:
  explicit LruBuffer(std::int64_t capacity) : cap_(capacity) {}
  bool access(std::int64_t id, std::int64_t bytes) {
    if (const auto it = where_.find(id); it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    if (bytes > cap_) return false;
    while (used_ + bytes > cap_) {
      used_ -= order_.back().second;
      where_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(id, bytes);
    where_[id] = order_.begin();
    used_ += bytes;
    return false;
  }

 private:
  std::int64_t cap_, used_ = 0;
  std::list<std::pair<std::int64_t, std::int64_t>> order_;
  std::unordered_map<std::int64_t, std::list<std::pair<std::int64_t, std::int64_t>>::iterator> where_;
};

// Input coordinate of output coordinate o at kernel offset f, or -1 in the padding.
std::int64_t input_at(const ConvShape& cv, std::int64_t o, std::int64_t f, std::int64_t size) {
  const std::int64_t x = o * cv.stride + f - cv.padding;
  return x >= 0 && x < size ? x : -1;
}

// Whether kernel offset f reads the input (not only padding) for some output coordinate in [o0, o1).
bool offset_reads_input(const ConvShape& cv, std::int64_t f, std::int64_t o0, std::int64_t o1, std::int64_t size) {
  for (std::int64_t o = o0; o < o1; ++o)
    if (input_at(cv, o, f, size) >= 0) return true;
  return false;
}

// The input rows (image b, channel c, row y: id (b C + c) H + y) that a weight-stationary tile
// reads: its k-fold [k0, k0 + r) for every output pixel. A row is read when some (c, ry, sx) of the
// fold puts a real input element (not padding) under some output pixel. Ascending ids.
std::vector<std::int64_t> ws_conv_rows(const ConvShape& cv, std::int64_t k0, std::int64_t r) {
  const std::int64_t RS = cv.kernel_h * cv.kernel_w;
  std::vector<char> need(std::size_t(cv.in_channels * cv.height), 0);  // (c, y) for every image
  for (std::int64_t k = k0; k < k0 + r; ++k) {
    const std::int64_t c = k / RS, ry = (k / cv.kernel_w) % cv.kernel_h, sx = k % cv.kernel_w;
    if (!offset_reads_input(cv, sx, 0, cv.out_width(), cv.width)) continue;
    for (std::int64_t oy = 0; oy < cv.out_height(); ++oy)
      if (const std::int64_t y = input_at(cv, oy, ry, cv.height); y >= 0) need[std::size_t(c * cv.height + y)] = 1;
  }
  std::vector<std::int64_t> rows;
  for (std::int64_t b = 0; b < cv.batch; ++b)
    for (std::int64_t i = 0; i < std::int64_t(need.size()); ++i)
      if (need[std::size_t(i)]) rows.push_back(b * cv.in_channels * cv.height + i);
  return rows;
}

// The input rows an output-stationary tile reads: its output pixels [m0, m0 + r) (m = (b OH + oy)
// OW + ox) over the whole reduction, i.e. every channel of the rows under the kernel window of
// each output row the tile touches (the halo), where some column of the window is real input.
std::vector<std::int64_t> os_conv_rows(const ConvShape& cv, std::int64_t m0, std::int64_t r) {
  const std::int64_t OW = cv.out_width(), OH = cv.out_height();
  std::vector<std::int64_t> ids;  // (b, y) once each, ascending
  for (std::int64_t m = m0; m < m0 + r;) {
    const std::int64_t b = m / (OH * OW), oy = (m / OW) % OH, ox0 = m % OW;
    const std::int64_t ox1 = std::min(OW, ox0 + (m0 + r - m));  // this output row's pixels in the tile
    bool any_column = false;
    for (std::int64_t sx = 0; sx < cv.kernel_w && !any_column; ++sx) any_column = offset_reads_input(cv, sx, ox0, ox1, cv.width);
    if (any_column)
      for (std::int64_t ry = 0; ry < cv.kernel_h; ++ry)
        if (const std::int64_t y = input_at(cv, oy, ry, cv.height); y >= 0) ids.push_back(b * cv.height + y);
    m += ox1 - ox0;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<std::int64_t> rows;
  for (const std::int64_t by : ids) {
    const std::int64_t b = by / cv.height, y = by % cv.height;
    for (std::int64_t c = 0; c < cv.in_channels; ++c) rows.push_back((b * cv.in_channels + c) * cv.height + y);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

// The GEMM model, with A read either as M x K blocks (conv == nullptr) or as input rows.
ArrayStats model(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s, const ConvShape* conv) {
  spec.validate();
  bits.validate();
  if (s.m < 1 || s.k < 1 || s.n < 1) throw std::invalid_argument("GEMM sizes must be positive");
  const int ab = bits.a, wb = bits.w, cb = bits.acc;
  ArrayStats st;
  st.macs = s.m * s.k * s.n;
  st.pes = std::int64_t(spec.rows) * spec.cols;

  std::vector<TileCost> tiles;
  auto fetch = [&](BufferCounts& buf, std::int64_t& dram, std::int64_t elements, int bits_per) {
    buf.writes += elements;
    dram += packed_bytes(elements, bits_per);
    return packed_bytes(elements, bits_per);
  };
  // A convolution's A side: the tile's input rows through the LRU A buffer, each miss one DRAM read.
  LruBuffer rows_buf(spec.buffer_a_bytes);
  auto fetch_rows = [&](const std::vector<std::int64_t>& rows) {
    std::int64_t b = 0;
    for (const std::int64_t row : rows)
      if (!rows_buf.access(row, packed_bytes(conv->width, ab))) b += fetch(st.buf_a, st.dram.read_a, conv->width, ab);
    return b;
  };
  if (spec.dataflow == Dataflow::WeightStationary) {
    const std::int64_t fk = ceil_div(s.k, spec.rows), fn = ceil_div(s.n, spec.cols);
    // A's k-blocks are scanned in the same order for every n-fold.
    CyclicScan a_scan{spec.buffer_a_bytes};
    std::vector<std::vector<std::int64_t>> k_rows;  // convolution: the input rows of each k-fold
    for (std::int64_t kt = 0; kt < fk; ++kt) {
      if (conv) k_rows.push_back(ws_conv_rows(*conv, kt * spec.rows, extent(s.k, spec.rows, kt)));
      else if (const std::int64_t b = packed_bytes(s.m * extent(s.k, spec.rows, kt), ab); b <= spec.buffer_a_bytes) a_scan.kept_bytes += b;
    }
    for (std::int64_t nt = 0; nt < fn; ++nt) {
      const std::int64_t c = extent(s.n, spec.cols, nt);
      const bool psum_fits = packed_bytes(s.m * c, cb) <= spec.buffer_o_bytes;
      for (std::int64_t kt = 0; kt < fk; ++kt) {
        const std::int64_t r = extent(s.k, spec.rows, kt);
        TileCost t;
        t.compute = r + s.m + r + c - 1;
        t.fetch += fetch(st.buf_w, st.dram.read_w, r * c, wb);
        if (conv) t.fetch += fetch_rows(k_rows[std::size_t(kt)]);
        else if (a_scan.fetched(packed_bytes(s.m * r, ab), nt == 0)) t.fetch += fetch(st.buf_a, st.dram.read_a, s.m * r, ab);
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
    const std::int64_t fm = ceil_div(s.m, spec.rows), fn = ceil_div(s.n, spec.cols);
    // W's n-blocks are scanned in the same order for every m-fold; A's m-block is reused across
    // the n-folds (kept unless it is larger than the buffer).
    CyclicScan w_scan{spec.buffer_w_bytes};
    for (std::int64_t nt = 0; nt < fn; ++nt)
      if (const std::int64_t b = packed_bytes(s.k * extent(s.n, spec.cols, nt), wb); b <= spec.buffer_w_bytes) w_scan.kept_bytes += b;
    for (std::int64_t mt = 0; mt < fm; ++mt) {
      const std::int64_t r = extent(s.m, spec.rows, mt);
      const bool a_fits = packed_bytes(r * s.k, ab) <= spec.buffer_a_bytes;
      const std::vector<std::int64_t> m_rows = conv ? os_conv_rows(*conv, mt * spec.rows, r) : std::vector<std::int64_t>{};
      for (std::int64_t nt = 0; nt < fn; ++nt) {
        const std::int64_t c = extent(s.n, spec.cols, nt);
        TileCost t;
        t.compute = s.k + r + c - 2 + r;
        if (conv) t.fetch += fetch_rows(m_rows);
        else if (nt == 0 || !a_fits) t.fetch += fetch(st.buf_a, st.dram.read_a, r * s.k, ab);
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
  Channel dram(spec.dram_bytes_per_cycle);
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

}  // namespace

std::int64_t compute_cycles(const ArraySpec& spec, const GemmShape& s) {
  if (spec.dataflow == Dataflow::WeightStationary) {
    const std::int64_t fk = ceil_div(s.k, spec.rows), fn = ceil_div(s.n, spec.cols);
    // sum over tiles of 2 r + M + c - 1, with sum r = K per n-fold and sum c = N per k-fold
    return 2 * s.k * fn + fk * fn * (s.m - 1) + fk * s.n;
  }
  const std::int64_t fm = ceil_div(s.m, spec.rows), fn = ceil_div(s.n, spec.cols);
  // sum over tiles of K + 2 r + c - 2, with sum r = M per n-fold and sum c = N per m-fold
  return fm * fn * (s.k - 2) + 2 * s.m * fn + fm * s.n;
}

ArrayStats array_model(const ArraySpec& spec, const OperandBits& bits, const GemmShape& s) {
  return model(spec, bits, s, nullptr);
}

ArrayStats conv_model(const ArraySpec& spec, const OperandBits& bits, const ConvShape& cv) {
  return model(spec, bits, cv.gemm(), &cv);
}

}  // namespace bitsim::sim
