// The systolic array's controller, DMA channel, buffers and PE registers, one cycle per edge.
// Cycle counts emerge from the register transfers (a tile ends when its last result has left the
// array); tests hold them to the closed form in sim/src/array_model.cpp.
#include "bitsim/sim/systolic.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

#include "array_model_internal.hpp"
#include "bitsim/arith/stochastic.hpp"

namespace bitsim::sim {

using arith::u128;

namespace {
unsigned popcount(u128 x) { return unsigned(std::popcount(std::uint64_t(x)) + std::popcount(std::uint64_t(x >> 64))); }
}  // namespace

bool SystolicArray::BlockBuffer::access(std::int64_t id, std::int64_t size) {
  for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
    if (it->first == id) {
      blocks_.splice(blocks_.begin(), blocks_, it);
      return true;
    }
  if (size > cap_) return false;  // streams through
  while (used_ + size > cap_) {
    used_ -= blocks_.back().second;
    blocks_.pop_back();
  }
  blocks_.emplace_front(id, size);
  used_ += size;
  return false;
}

SystolicArray::SystolicArray(sc_core::sc_module_name name, const ArrayConfig& cfg)
    : sc_core::sc_module(name),
      cfg_((cfg.validate(), cfg)),
      is_(cfg.dataflow == Dataflow::InputStationary),
      dp_(cfg.a, cfg.w, cfg.acc, cfg.acc_spec),
      ab_(is_ ? cfg.w.width() : cfg.a.width()),
      wb_(is_ ? cfg.a.width() : cfg.w.width()),
      cb_(cfg.acc.width()),
      ob_(cfg.bits().out_bits()),
      out_sig_("out", std::size_t(cfg.cols)) {
  pes_.resize(std::size_t(cfg.rows) * std::size_t(cfg.cols));
  using SC_CURRENT_USER_MODULE = SystolicArray;  // what SC_CTOR declares; SystemC 2.3 needs it
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
}

void SystolicArray::load(GemmOperands ops, const Mapping& mapping) {
  const GemmShape& s = ops.shape;
  if (s.m < 1 || s.k < 1 || s.n < 1) throw std::invalid_argument("GEMM sizes must be positive");
  if (ops.a.size() != std::size_t(s.m * s.k) || ops.w.size() != std::size_t(s.k * s.n))
    throw std::invalid_argument("GEMM operands do not match the shape");
  resolve(mapping, cfg_.dataflow, s);  // throws on a mapping this array cannot run
  if (is_) {  // W^T (N x K) streams, A^T (K x M) stays
    GemmOperands t{{s.n, s.k, s.m}, std::vector<u128>(ops.w.size()), std::vector<u128>(ops.a.size())};
    for (std::int64_t k = 0; k < s.k; ++k)
      for (std::int64_t n = 0; n < s.n; ++n) t.a[std::size_t(n * s.k + k)] = ops.w[std::size_t(k * s.n + n)];
    for (std::int64_t m = 0; m < s.m; ++m)
      for (std::int64_t k = 0; k < s.k; ++k) t.w[std::size_t(k * s.m + m)] = ops.a[std::size_t(m * s.k + k)];
    ops = std::move(t);
  }
  ops_ = std::move(ops);
  mapping_ = mapping;
  conv_mode_ = false, loaded_ = true;
  ifmap_.clear();
}

void SystolicArray::load(ConvOperands ops, const Mapping& mapping) {
  const GemmShape g = ops.shape.gemm();  // throws on a bad shape
  resolve(mapping, cfg_.dataflow, g);
  const ConvShape& cv = ops.shape;
  if (ops.ifmap.size() != std::size_t(cv.batch * cv.in_channels * cv.height * cv.width) ||
      ops.filter.size() != std::size_t(g.k * g.n))
    throw std::invalid_argument("convolution operands do not match the shape");
  if (is_) {  // the filter transposed streams; the im2col operand stays, formed from ifmap_
    std::vector<u128> t(ops.filter.size());
    for (std::int64_t k = 0; k < g.k; ++k)
      for (std::int64_t n = 0; n < g.n; ++n) t[std::size_t(n * g.k + k)] = ops.filter[std::size_t(k * g.n + n)];
    ops_ = GemmOperands{{g.n, g.k, g.m}, std::move(t), {}};
  } else {
    ops_ = GemmOperands{g, {}, std::move(ops.filter)};
  }
  conv_ = cv;
  mapping_ = mapping;
  ifmap_ = std::move(ops.ifmap);
  conv_mode_ = true, loaded_ = true;
}

// The im2col unit between the input-row buffer and the array: element (m, k) of the operand
// matrix, read from the input row that holds it, or zero in the padding.
u128 SystolicArray::im2col_at(std::int64_t m, std::int64_t k) const {
  const ConvShape& cv = conv_;
  const std::int64_t OH = cv.out_height(), OW = cv.out_width();
  const std::int64_t b = m / (OH * OW), oy = (m / OW) % OH, ox = m % OW;
  const std::int64_t c = k / (cv.kernel_h * cv.kernel_w), ry = (k / cv.kernel_w) % cv.kernel_h, sx = k % cv.kernel_w;
  const std::int64_t y = oy * cv.stride + ry - cv.padding, x = ox * cv.stride + sx - cv.padding;
  if (y < 0 || y >= cv.height || x < 0 || x >= cv.width) return 0;
  return ifmap_[std::size_t(((b * cv.in_channels + c) * cv.height + y) * cv.width + x)];
}

u128 SystolicArray::a_at(std::int64_t m, std::int64_t k) const {
  return conv_mode_ && !is_ ? im2col_at(m, k) : ops_.a[std::size_t(m * ops_.shape.k + k)];
}

// Input-stationary: element (k, n) of A^T is the im2col operand's (n, k).
u128 SystolicArray::w_at(std::int64_t k, std::int64_t n) const {
  return conv_mode_ && is_ ? im2col_at(n, k) : ops_.w[std::size_t(k * ops_.shape.n + n)];
}

// The input rows (id (b C + c) H + y) holding the elements of the im2col block of pixels [m0, m1)
// and reductions [k0, k1), ascending: found by walking its addresses, as the DMA's address
// generator would.
std::vector<std::int64_t> SystolicArray::conv_tile_rows(std::int64_t m0, std::int64_t m1, std::int64_t k0, std::int64_t k1) const {
  const ConvShape& cv = conv_;
  const std::int64_t OH = cv.out_height(), OW = cv.out_width();
  std::vector<std::int64_t> rows;
  for (std::int64_t m = m0; m < m1; ++m)
    for (std::int64_t k = k0; k < k1; ++k) {
      const std::int64_t b = m / (OH * OW), oy = (m / OW) % OH, ox = m % OW;
      const std::int64_t c = k / (cv.kernel_h * cv.kernel_w), ry = (k / cv.kernel_w) % cv.kernel_h, sx = k % cv.kernel_w;
      const std::int64_t y = oy * cv.stride + ry - cv.padding, x = ox * cv.stride + sx - cv.padding;
      if (y >= 0 && y < cv.height && x >= 0 && x < cv.width) rows.push_back((b * cv.in_channels + c) * cv.height + y);
    }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

void SystolicArray::trace(sc_core::sc_trace_file* tf) const {
  sc_core::sc_trace(tf, clk, clk.name());
  sc_core::sc_trace(tf, rst, rst.name());
  sc_core::sc_trace(tf, start, start.name());
  sc_core::sc_trace(tf, busy, busy.name());
  sc_core::sc_trace(tf, done, done.name());
  sc_core::sc_trace(tf, tile_sig_, tile_sig_.name());
  sc_core::sc_trace(tf, phase_sig_, phase_sig_.name());
  sc_core::sc_trace(tf, active_sig_, active_sig_.name());
  sc_core::sc_trace(tf, dram_busy_sig_, dram_busy_sig_.name());
  for (const auto& s : out_sig_) sc_core::sc_trace(tf, s, s.name());
  const_cast<SystolicArray*>(this)->tracing_ = true;
}

void SystolicArray::reset_state() {
  for (Pe& p : pes_) p = Pe{};
  result_ = GemmResult{};
  tiles_.clear();
  dram_.clear();
  fetch_req_.clear();
  dram_head_ = 0;
  dram_free_ = 0;
  phase_ = Phase::Idle;
  now_ = 0;
  tile_ = 0;
  phase_cycle_ = 0;
  collected_ = 0;
  tile_macs_ = 0;
  active_pes_ = 0;
  times_.clear();
  next_load_ = next_stream_ = open_ = 0;
  fold_ready_.clear();
  folds_.clear();
}

void SystolicArray::tick() {
  if (rst.read()) {
    reset_state();
    publish();
    return;
  }
  if (phase_ == Phase::Idle) {
    if (!start.read()) return;
    build_schedule();
  }
  if (phase_ != Phase::Done) {
    cycle();
    ++now_;
  }
  publish();
}

void SystolicArray::publish() {
  busy.write(phase_ != Phase::Idle && phase_ != Phase::Done);
  done.write(phase_ == Phase::Done);
  if (!tracing_) return;
  tile_sig_.write(int(tile_));
  phase_sig_.write(int(phase_));
  active_sig_.write(active_pes_);
  dram_busy_sig_.write(dram_free_ > now_);
  for (int j = 0; j < cfg_.cols; ++j) out_sig_[std::size_t(j)].write(to_code(pe(cfg_.rows - 1, j).p));
}

void SystolicArray::build_schedule() {
  const GemmShape& s = ops_.shape;
  if (!loaded_) throw std::logic_error("SystolicArray: start without operands (call load first)");
  const std::int64_t R = cfg_.rows, C = cfg_.cols;
  result_.c.assign(std::size_t(s.m * s.n), 0);
  result_.status.assign(result_.c.size(), 0);
  result_.stats.pes = R * C;
  buf_a_.reset(is_ ? cfg_.buffer_w_bytes : cfg_.buffer_a_bytes);  // the streamed operand's
  buf_w_.reset(is_ ? cfg_.buffer_a_bytes : cfg_.buffer_w_bytes);  // the stationary one's
  const bool ws = cfg_.dataflow != Dataflow::OutputStationary;
  const Mapping mp = is_ ? resolve(detail::transposed(mapping_), Dataflow::WeightStationary, s) : resolve(mapping_, cfg_.dataflow, s);
  // Block sizes along m, k, n and the loop nest, outermost first, as the order's letters say.
  const std::int64_t size[3] = {ws ? mp.tile_m : R, ws ? R : s.k, C};
  const std::int64_t total[3] = {s.m, s.k, s.n};
  const std::string_view order = to_string(mp.order);
  int dim[3];
  for (int l = 0; l < 3; ++l) dim[l] = order[std::size_t(l)] == 'm' ? 0 : order[std::size_t(l)] == 'k' ? 1 : 2;
  std::int64_t idx[3];
  for (idx[dim[0]] = 0; idx[dim[0]] * size[dim[0]] < total[dim[0]]; ++idx[dim[0]])
    for (idx[dim[1]] = 0; idx[dim[1]] * size[dim[1]] < total[dim[1]]; ++idx[dim[1]])
      for (idx[dim[2]] = 0; idx[dim[2]] * size[dim[2]] < total[dim[2]]; ++idx[dim[2]]) {
        Tile t;
        t.mb = idx[0], t.kt = idx[1], t.nt = idx[2];
        t.m0 = idx[0] * size[0], t.k0 = idx[1] * size[1], t.n0 = idx[2] * size[2];
        const std::int64_t mt = std::min(size[0], s.m - t.m0);
        t.mt = mt;
        t.r = int(ws ? std::min(R, s.k - t.k0) : mt);
        t.c = int(std::min(C, s.n - t.n0));
        tiles_.push_back(t);
      }
  // ws partial sums: a block (m-block, n-fold) lives from its first k-fold's tile to its last. Its
  // partial sums stay on chip when, at every tile of its life, the blocks alive then fit the O
  // buffer together; otherwise each of its k-folds but the last spills them.
  if (ws) {
    std::vector<std::int64_t> live_bytes(tiles_.size(), 0);
    std::map<std::pair<std::int64_t, std::int64_t>, std::pair<std::size_t, std::size_t>> life;  // block: first, last tile
    for (std::size_t i = 0; i < tiles_.size(); ++i) {
      auto [it, fresh] = life.try_emplace({tiles_[i].mb, tiles_[i].nt}, i, i);
      it->second.second = i;
    }
    for (const auto& [block, span] : life)
      for (std::size_t i = span.first; i <= span.second; ++i)
        live_bytes[i] += packed_bytes(std::min(mp.tile_m, s.m - block.first * mp.tile_m) * std::min(C, s.n - block.second * C), cb_);
    for (Tile& t : tiles_) {
      const auto& span = life.at({t.mb, t.nt});
      std::int64_t peak = 0;
      for (std::size_t i = span.first; i <= span.second; ++i) peak = std::max(peak, live_bytes[i]);
      t.keep_psum = peak <= cfg_.buffer_o_bytes;
    }
  }
  fetch_req_.assign(tiles_.size(), 0);
  issue_fetch(0);
  phase_ = Phase::WaitFetch;
  if (cfg_.overlap) {
    times_.assign(tiles_.size(), Times{});
    fold_ready_.assign(std::size_t(tiles_.back().mb + 1) * std::size_t((s.n + C - 1) / C), 0);
    folds_.assign(result_.c.size(), 0);
    port_.assign(std::size_t(C), -1);
    phase_ = Phase::Overlapped;
  }
}

// The operands tile t needs that are not on chip, as one DRAM read; blocks are looked up in the
// buffers in tile order, which is issue order.
void SystolicArray::issue_fetch(std::size_t t) {
  const Tile& T = tiles_[t];
  const GemmShape& s = ops_.shape;
  ArrayStats& st = result_.stats;
  std::int64_t b = 0;
  auto fill = [&](BufferCounts& buf, std::int64_t& dram, std::int64_t elements, int bits) {
    buf.writes += elements;
    dram += packed_bytes(elements, bits);
    b += packed_bytes(elements, bits);
  };
  // A convolution's im2col operand: every input row of the block that the buffer does not hold.
  auto fetch_rows = [&](BlockBuffer& buf, BufferCounts& counts, std::int64_t& dram, int bits, std::int64_t m0,
                        std::int64_t m1, std::int64_t k0, std::int64_t k1) {
    for (const std::int64_t row : conv_tile_rows(m0, m1, k0, k1))
      if (!buf.access(row, packed_bytes(conv_.width, bits))) fill(counts, dram, conv_.width, bits);
  };
  if (cfg_.dataflow != Dataflow::OutputStationary) {
    const std::int64_t fk = (s.k + cfg_.rows - 1) / cfg_.rows, fn = (s.n + cfg_.cols - 1) / cfg_.cols;
    if (conv_mode_ && is_) fetch_rows(buf_w_, st.buf_w, st.dram.read_w, wb_, T.n0, T.n0 + T.c, T.k0, T.k0 + T.r);
    else if (!buf_w_.access(T.kt * fn + T.nt, packed_bytes(std::int64_t(T.r) * T.c, wb_)))
      fill(st.buf_w, st.dram.read_w, std::int64_t(T.r) * T.c, wb_);
    if (conv_mode_ && !is_) fetch_rows(buf_a_, st.buf_a, st.dram.read_a, ab_, T.m0, T.m0 + T.mt, T.k0, T.k0 + T.r);
    else if (!buf_a_.access(T.mb * fk + T.kt, packed_bytes(T.mt * T.r, ab_))) fill(st.buf_a, st.dram.read_a, T.mt * T.r, ab_);
    if (T.kt > 0 && !T.keep_psum) fill(st.buf_o, st.dram.read_psum, T.mt * T.c, cb_);
  } else {
    if (conv_mode_) fetch_rows(buf_a_, st.buf_a, st.dram.read_a, ab_, T.m0, T.m0 + T.mt, 0, s.k);
    else if (!buf_a_.access(T.mb, packed_bytes(T.r * s.k, ab_))) fill(st.buf_a, st.dram.read_a, T.r * s.k, ab_);
    if (!buf_w_.access(T.nt, packed_bytes(s.k * T.c, wb_))) fill(st.buf_w, st.dram.read_w, s.k * T.c, wb_);
  }
  fetch_req_[t] = dram_issue(now_, b);
}

std::size_t SystolicArray::dram_issue(std::int64_t at, std::int64_t b) {
  dram_.push_back({at, b, -1});
  dram_step();
  return dram_.size() - 1;
}

// The channel serves requests in issue order, one at a time: a request starts in the first cycle
// at which it has been issued and the channel is free, and its data is usable ceil(bytes /
// bandwidth) cycles later.
void SystolicArray::dram_step() {
  while (dram_head_ < dram_.size() && dram_[dram_head_].issue <= now_ && dram_free_ <= now_) {
    Request& r = dram_[dram_head_++];
    const double bw = cfg_.dram_bytes_per_cycle;
    const std::int64_t d = (bw == 0 || r.bytes == 0) ? 0 : std::int64_t(std::ceil(double(r.bytes) / bw));
    r.ready = now_ + d;
    dram_free_ = r.ready;
  }
}

bool SystolicArray::start_tile_if_ready() {
  const Request& f = dram_[fetch_req_[tile_]];
  if (f.ready < 0 || f.ready > now_) return false;
  if (tile_ + 1 < tiles_.size()) issue_fetch(tile_ + 1);  // prefetch while this tile computes
  phase_ = cfg_.dataflow != Dataflow::OutputStationary ? Phase::Load : Phase::Stream;
  phase_cycle_ = 0;
  collected_ = 0;
  tile_macs_ = 0;
  ++result_.stats.tiles;
  return true;
}

void SystolicArray::cycle() {
  dram_step();
  active_pes_ = 0;
  if (phase_ == Phase::Overlapped) {
    overlap_control();
    const bool active = open_ < next_load_;  // some tile has started and not ended
    cfg_.dataflow != Dataflow::OutputStationary ? ws_overlap_cycle() : os_overlap_cycle();
    if (active) ++result_.stats.compute_cycles;
    tile_ = open_;
    if (open_ == tiles_.size()) phase_ = Phase::WaitWrite;
    return;
  }
  if (phase_ == Phase::WaitFetch && !start_tile_if_ready()) return;
  switch (phase_) {
    case Phase::Load: ws_load_cycle(); break;
    case Phase::Stream: cfg_.dataflow != Dataflow::OutputStationary ? ws_stream_cycle() : os_stream_cycle(); break;
    case Phase::Drain: os_drain_cycle(); break;
    case Phase::WaitWrite:
      if (dram_[last_write_req_].ready >= 0 && dram_[last_write_req_].ready <= now_) {
        result_.stats.cycles = now_;
        result_.stats.stall_cycles = now_ - result_.stats.compute_cycles;
        if (is_) untranspose();
        phase_ = Phase::Done;
      }
      return;
    default: return;
  }
  ++result_.stats.compute_cycles;
}

void SystolicArray::count_toggles(u128& reg, u128 value, std::uint64_t& counter) {
  counter += popcount(reg ^ value);
  reg = value;
}

void SystolicArray::mac(Pe& p, u128 psum_in, unsigned status_in, u128 a, u128 w, std::int64_t m, std::int64_t k,
                        std::int64_t n) {
  std::uint32_t r = 0;
  // Output (m, n) draws from stream base + m N + n; input-stationary's (m, n) is output (n, m).
  const std::int64_t stream = is_ ? n * ops_.shape.m + m : m * ops_.shape.n + n;
  if (dp_.stochastic()) r = arith::SrStream{cfg_.seed, cfg_.stream_base + std::uint64_t(stream)}.bits(std::uint64_t(k), cfg_.acc_spec.sr_bits);
  Toggles& t = result_.stats.toggles;
  // The datapath multiplies an A code by a W code: input-stationary streams W and holds A.
  if (is_) std::swap(a, w);
  count_toggles(p.prod, dp_.product(a, w), t.product);
  const arith::Quantized q = dp_(psum_in, a, w, r);
  count_toggles(p.p, q.code, t.acc);
  p.status = status_in | q.status;
  ++result_.stats.macs;
  ++tile_macs_;
  ++active_pes_;
}

// Weight load: rows of the weight tile enter at the top, one per cycle, and shift down; after r
// cycles PE(i, j) holds W[k0 + i][n0 + j].
void SystolicArray::ws_load_cycle() {
  const Tile& T = tiles_[tile_];
  Toggles& tg = result_.stats.toggles;
  const std::int64_t k = T.k0 + (T.r - 1 - phase_cycle_);
  for (int j = 0; j < T.c; ++j) {
    for (int i = T.r - 1; i > 0; --i) count_toggles(pe(i, j).w, pe(i - 1, j).w, tg.mul_w);
    count_toggles(pe(0, j).w, w_at(k, T.n0 + j), tg.mul_w);
  }
  result_.stats.buf_w.reads += T.c;
  if (++phase_cycle_ == T.r) phase_ = Phase::Stream, phase_cycle_ = 0;
}

// Weight-stationary stream, cycle t: row i receives A[t - i][k0 + i] at its left edge (skew i); a
// moves right one PE per cycle and the partial sum of row m moves down one PE per cycle, so both
// meet at PE(i, j) in cycle m + i + j. The top row starts from the previous k-fold's partial sum
// (zero in the first); the bottom row's sums go to the output buffer in the next cycle.
void SystolicArray::ws_stream_cycle() {
  const Tile& T = tiles_[tile_];
  const GemmShape& s = ops_.shape;
  ArrayStats& st = result_.stats;
  const std::int64_t t = phase_cycle_;
  for (int j = 0; j < T.c; ++j) {
    const Pe& b = pe(T.r - 1, j);
    if (b.p_tag < 0) continue;
    const std::size_t o = std::size_t(b.p_tag * s.n + T.n0 + j);
    result_.c[o] = b.p;
    result_.status[o] = b.status;
    ++st.buf_o.writes;
    ++collected_;
  }
  for (int i = T.r - 1; i >= 0; --i)
    for (int j = T.c - 1; j >= 0; --j) {
      Pe& p = pe(i, j);
      std::int64_t m = -1;
      u128 a = 0;
      if (j == 0) {
        if (t - i >= 0 && t - i < T.mt) {
          m = T.m0 + t - i;
          a = a_at(m, T.k0 + i);
          ++st.buf_a.reads;
        }
      } else if (pe(i, j - 1).a_tag >= 0) {
        m = pe(i, j - 1).a_tag;
        a = pe(i, j - 1).a;
      }
      if (m < 0) {
        p.a_tag = p.p_tag = -1;  // valid bits drop; data registers hold
        continue;
      }
      u128 psum = 0;
      unsigned status = 0;
      if (i == 0) {
        if (T.kt > 0) {
          const std::size_t o = std::size_t(m * s.n + T.n0 + j);
          psum = result_.c[o];
          status = result_.status[o];
          ++st.buf_o.reads;
        }
      } else {
        const Pe& up = pe(i - 1, j);
        if (up.p_tag != m) throw std::logic_error("systolic array: partial sum and activation out of step");
        psum = up.p;
        status = up.status;
      }
      mac(p, psum, status, a, p.w, m, T.k0 + i, T.n0 + j);
      p.p_tag = m;
      count_toggles(p.a, a, st.toggles.mul_a);
      p.a_tag = m;
    }
  ++phase_cycle_;
  if (collected_ == T.mt * T.c) end_tile();
}

// Output-stationary stream, cycle t: row i receives A[m0 + i][t - i] from the left and column j
// receives W[t - j][n0 + j] from the top; they meet at PE(i, j) in cycle k + i + j, which adds
// their product to its own accumulator.
void SystolicArray::os_stream_cycle() {
  const Tile& T = tiles_[tile_];
  const GemmShape& s = ops_.shape;
  ArrayStats& st = result_.stats;
  const std::int64_t t = phase_cycle_;
  for (int i = T.r - 1; i >= 0; --i)
    for (int j = T.c - 1; j >= 0; --j) {
      Pe& p = pe(i, j);
      std::int64_t ka = -1, kw = -1;
      u128 a = 0, w = 0;
      if (j == 0) {
        if (t - i >= 0 && t - i < s.k) {
          ka = t - i;
          a = a_at(T.m0 + i, ka);
          ++st.buf_a.reads;
        }
      } else if (pe(i, j - 1).a_tag >= 0) {
        ka = pe(i, j - 1).a_tag;
        a = pe(i, j - 1).a;
      }
      if (i == 0) {
        if (t - j >= 0 && t - j < s.k) {
          kw = t - j;
          w = ops_.w[std::size_t(kw * s.n + T.n0 + j)];
          ++st.buf_w.reads;
        }
      } else if (pe(i - 1, j).w_tag >= 0) {
        kw = pe(i - 1, j).w_tag;
        w = pe(i - 1, j).w;
      }
      if (ka != kw) throw std::logic_error("systolic array: activation and weight out of step");
      p.a_tag = p.w_tag = ka;
      if (ka < 0) continue;
      mac(p, p.p, p.status, a, w, T.m0 + i, ka, T.n0 + j);
      count_toggles(p.a, a, st.toggles.mul_a);
      count_toggles(p.w, w, st.toggles.mul_w);
    }
  ++phase_cycle_;
  if (tile_macs_ == std::int64_t(T.r) * T.c * s.k) phase_ = Phase::Drain, phase_cycle_ = 0;
}

// Output-stationary drain: each cycle the bottom row's accumulators go to the output buffer and
// every row shifts down one; zeros enter at the top, so the array is clear for the next tile.
void SystolicArray::os_drain_cycle() {
  const Tile& T = tiles_[tile_];
  ArrayStats& st = result_.stats;
  const std::int64_t m = T.m0 + T.r - 1 - phase_cycle_;
  for (int i = 0; i < T.r; ++i)  // no operands enter while draining: valid bits drop
    for (int j = 0; j < T.c; ++j) pe(i, j).a_tag = pe(i, j).w_tag = -1;
  for (int j = 0; j < T.c; ++j) {
    const std::size_t o = std::size_t(m * ops_.shape.n + T.n0 + j);
    result_.c[o] = pe(T.r - 1, j).p;
    result_.status[o] = pe(T.r - 1, j).status;
    ++st.buf_o.writes;
    for (int i = T.r - 1; i > 0; --i) {
      count_toggles(pe(i, j).p, pe(i - 1, j).p, st.toggles.acc);
      pe(i, j).status = pe(i - 1, j).status;
    }
    count_toggles(pe(0, j).p, 0, st.toggles.acc);
    pe(0, j).status = 0;
  }
  if (++phase_cycle_ == T.r) end_tile();
}

void SystolicArray::end_tile() {
  write_back(tiles_[tile_]);
  phase_ = ++tile_ < tiles_.size() ? Phase::WaitFetch : Phase::WaitWrite;
}

// The tile's results (or spilled partial sums) go to DRAM from the cycle after its last one.
void SystolicArray::write_back(const Tile& T) {
  const GemmShape& s = ops_.shape;
  ArrayStats& st = result_.stats;
  std::int64_t out = 0;
  int bits = ob_;  // finished results; spilled partial sums at the accumulator's width
  if (cfg_.dataflow != Dataflow::OutputStationary) {
    const bool last_fold = (T.k0 + T.r == s.k);
    if (last_fold || !T.keep_psum) out = T.mt * T.c;
    if (!last_fold) bits = cb_;
  } else {
    out = std::int64_t(T.r) * T.c;
  }
  st.buf_o.reads += out;
  st.dram.write_c += packed_bytes(out, bits);
  last_write_req_ = dram_issue(now_ + 1, packed_bytes(out, bits));
}

// ---- Overlapped tiles ----

// Starts tiles by the rules of docs/sim.md ("Overlapped tiles"), streams before loads (a load may
// start in the cycle the previous tile starts streaming). ws: a tile streams once its weights are
// in the shadow registers, the previous tile's last row has entered (the rows' input ports), its
// last result leaves before this tile's first (the columns' output ports) and the block's previous
// k-fold's partial sums have left the array; it loads once its operands are on chip and every PE
// the load reaches has taken the previous tile's weight. os: a tile streams once its operands are
// on chip, the previous tile's last operands have entered and its sums will have drained from the
// output registers before this tile's reach them. The next tile's operands are requested when a
// tile starts.
void SystolicArray::overlap_control() {
  const std::size_t n = tiles_.size();
  auto fetched = [&](std::size_t t) {
    const Request& f = dram_[fetch_req_[t]];
    return f.ready >= 0 && f.ready <= now_;
  };
  auto begin = [&](std::size_t t) {
    times_[t].load = now_;
    next_load_ = t + 1;
    ++result_.stats.tiles;
    if (t + 1 < n) issue_fetch(t + 1);
  };
  const std::size_t u = next_stream_;
  if (cfg_.dataflow == Dataflow::OutputStationary) {
    if (u < n && fetched(u) &&
        (u == 0 || now_ >= times_[u - 1].stream + std::max<std::int64_t>(ops_.shape.k, 2 * std::int64_t(tiles_[u - 1].r) - 1))) {
      times_[u].stream = now_;
      next_stream_ = u + 1;
      begin(u);
    }
    return;
  }
  const std::int64_t fn = (ops_.shape.n + cfg_.cols - 1) / cfg_.cols;
  if (u < next_load_) {
    const Tile& T = tiles_[u];
    std::int64_t& ready = fold_ready_[std::size_t(T.mb * fn + T.nt)];
    bool go = now_ >= times_[u].load + T.r && (T.kt == 0 || now_ >= ready);
    if (u > 0) go = go && now_ >= times_[u - 1].stream + tiles_[u - 1].mt + std::max(0, tiles_[u - 1].r - T.r);
    if (go) times_[u].stream = now_, ready = now_ + T.r, next_stream_ = u + 1;
  }
  const std::size_t l = next_load_;
  if (l < n && fetched(l) &&
      (l == 0 || (times_[l - 1].stream >= 0 && now_ >= times_[l - 1].stream + std::min(tiles_[l - 1].c, tiles_[l].c) - 1)))
    begin(l);
}

// A result leaving the array at column j's output port: one per port and cycle.
void SystolicArray::take_result(int j, std::int64_t m, std::int64_t n0, u128 code, unsigned status, std::size_t u) {
  if (port_[std::size_t(j)] == now_)
    throw std::logic_error("systolic array: two results at the output port of column " + std::to_string(j) + " in one cycle");
  port_[std::size_t(j)] = now_;
  const std::size_t o = std::size_t(m * ops_.shape.n + n0 + j);
  result_.c[o] = code;
  result_.status[o] = status;
  ++result_.stats.buf_o.writes;
  Times& tm = times_[u];
  const Tile& T = tiles_[u];
  if (++tm.collected == T.mt * T.c) write_back(T);
}

// Moves open_ past the tiles whose results have all left.
void SystolicArray::close_tiles() {
  while (open_ < tiles_.size() && times_[open_].collected == tiles_[open_].mt * tiles_[open_].c) ++open_;
}

// Weight-stationary, overlapped: the tile-tagged form of ws_load_cycle and ws_stream_cycle over the
// whole array, where tiles of different extents may be in flight together.
void SystolicArray::ws_overlap_cycle() {
  const GemmShape& s = ops_.shape;
  ArrayStats& st = result_.stats;
  // Results leave the bottom row of their own tile, in the cycle after its MAC.
  for (std::size_t u = open_; u < next_stream_; ++u) {
    const Tile& T = tiles_[u];
    for (int j = 0; j < T.c && times_[u].collected < T.mt * T.c; ++j) {
      const Pe& b = pe(T.r - 1, j);
      if (b.p_tag < 0 || b.p_tile != std::int64_t(u)) continue;
      std::int64_t& folds = folds_[std::size_t(b.p_tag * s.n + T.n0 + j)];
      if (folds != T.kt) throw std::logic_error("systolic array: partial sums of an output left out of k-fold order");
      ++folds;
      take_result(j, b.p_tag, T.n0, b.p, b.status, u);
    }
  }
  close_tiles();
  // The tile whose rows enter row i's input port this cycle.
  auto feeding = [&](int i) -> std::int64_t {
    for (std::size_t u = open_; u < next_stream_; ++u) {
      const std::int64_t t = now_ - times_[u].stream - i;
      if (i < tiles_[u].r && t >= 0 && t < tiles_[u].mt) return std::int64_t(u);
    }
    return -1;
  };
  for (int i = cfg_.rows - 1; i >= 0; --i)
    for (int j = cfg_.cols - 1; j >= 0; --j) {
      Pe& p = pe(i, j);
      std::int64_t m = -1, u = -1;
      u128 a = 0;
      if (j == 0) {
        u = feeding(i);
        if (u >= 0) {
          const Tile& T = tiles_[std::size_t(u)];
          m = T.m0 + now_ - times_[std::size_t(u)].stream - i;
          a = a_at(m, T.k0 + i);
          ++st.buf_a.reads;
        }
      } else if (const Pe& left = pe(i, j - 1); left.a_tag >= 0 && j < tiles_[std::size_t(left.a_tile)].c) {
        m = left.a_tag, u = left.a_tile, a = left.a;
      }
      if (m < 0) {
        p.a_tag = p.p_tag = p.a_tile = p.p_tile = -1;  // valid bits drop; data registers hold
        continue;
      }
      const Tile& T = tiles_[std::size_t(u)];
      if (p.w_tile != u) {  // the first activation of a new tile: the weight moves up from the shadow
        if (p.sw_tile != u)
          throw std::logic_error("systolic array: PE (" + std::to_string(i) + ", " + std::to_string(j) + ") has no weight of tile " +
                                 std::to_string(u));
        count_toggles(p.w, p.sw, st.toggles.mul_w);
        p.w_tile = u, p.sw_tile = -1;
      }
      u128 psum = 0;
      unsigned status = 0;
      if (i == 0) {
        if (T.kt > 0) {
          const std::size_t o = std::size_t(m * s.n + T.n0 + j);
          if (folds_[o] != T.kt) throw std::logic_error("systolic array: a partial sum read before the previous k-fold wrote it");
          psum = result_.c[o];
          status = result_.status[o];
          ++st.buf_o.reads;
        }
      } else {
        const Pe& up = pe(i - 1, j);
        if (up.p_tag != m || up.p_tile != u) throw std::logic_error("systolic array: partial sum and activation out of step");
        psum = up.p;
        status = up.status;
      }
      mac(p, psum, status, a, p.w, m, T.k0 + i, T.n0 + j);
      p.p_tag = m, p.p_tile = u;
      count_toggles(p.a, a, st.toggles.mul_a);
      p.a_tag = m, p.a_tile = u;
    }
  // The tile loading: rows of its weights enter the shadow registers at the top, one per cycle,
  // bottom row first, each moving down behind the one before (a shadow register takes the one
  // above only once it holds this tile's weight). Only the latest tile can be loading.
  if (next_load_ == 0) return;
  const std::size_t l = next_load_ - 1;
  const Tile& T = tiles_[l];
  const std::int64_t q = now_ - times_[l].load;
  if (q >= T.r) return;
  auto shadow = [&](Pe& d, u128 w) {
    if (d.sw_tile >= 0 && d.sw_tile != std::int64_t(l))
      throw std::logic_error("systolic array: the weight of tile " + std::to_string(d.sw_tile) +
                             " overwritten before its PE took it");
    d.sw = w, d.sw_tile = std::int64_t(l);
  };
  for (int j = 0; j < T.c; ++j) {
    for (int i = T.r - 1; i > 0; --i)
      if (pe(i - 1, j).sw_tile == std::int64_t(l)) shadow(pe(i, j), pe(i - 1, j).sw);
    shadow(pe(0, j), w_at(T.k0 + (T.r - 1 - q), T.n0 + j));
  }
  st.buf_w.reads += T.c;
}

// Output-stationary, overlapped. Each PE has an output register beside its accumulator: in the
// cycle after its last MAC of a tile it hands the sum over and is free for the next tile's. Column j
// of a tile drains in cycles D .. D + r - 1, D = S + K + r - 1 + j: first the bottom row's sum
// straight from its accumulator, then the output registers, shifted down one row per cycle
// (zeros entering at the top).
void SystolicArray::os_overlap_cycle() {
  const GemmShape& s = ops_.shape;
  const std::int64_t K = s.k;
  ArrayStats& st = result_.stats;
  auto where = [](int i, int j) { return "PE (" + std::to_string(i) + ", " + std::to_string(j) + ")"; };
  for (std::size_t u = open_; u < next_stream_; ++u) {
    const Tile& T = tiles_[u];
    for (int j = 0; j < T.c; ++j) {
      const std::int64_t q = now_ - (times_[u].stream + K + T.r - 1 + j);
      if (q < 0 || q >= T.r) continue;
      Pe& b = pe(T.r - 1, j);
      u128 code;
      unsigned status;
      if (q == 0) {
        if (b.p_tile != std::int64_t(u) || b.p_tag != K - 1) throw std::logic_error("systolic array: " + where(T.r - 1, j) + " has not finished its sum");
        if (T.r > 1 && b.o_tile >= 0) throw std::logic_error("systolic array: the output register of " + where(T.r - 1, j) + " overwritten before it drained");
        code = b.p, status = b.status;
        b.p_tag = b.p_tile = -1;
      } else {
        if (b.o_tile != std::int64_t(u)) throw std::logic_error("systolic array: output registers out of step in column " + std::to_string(j));
        code = b.o, status = b.o_status;
      }
      for (int i = T.r - 1; i > 0; --i) {
        Pe& d = pe(i, j);
        const Pe& up = pe(i - 1, j);
        count_toggles(d.o, up.o, st.toggles.acc);
        d.o_status = up.o_status, d.o_tile = up.o_tile;
      }
      count_toggles(pe(0, j).o, 0, st.toggles.acc);
      pe(0, j).o_status = 0, pe(0, j).o_tile = -1;
      take_result(j, T.m0 + T.r - 1 - q, T.n0, code, status, u);
    }
  }
  // Sums finished in the previous cycle move to the output registers (the bottom row's leave straight).
  for (int i = 0; i < cfg_.rows; ++i)
    for (int j = 0; j < cfg_.cols; ++j) {
      Pe& p = pe(i, j);
      if (p.p_tag != K - 1 || p.p_tile < 0 || i == tiles_[std::size_t(p.p_tile)].r - 1) continue;
      if (p.o_tile >= 0) throw std::logic_error("systolic array: the output register of " + where(i, j) + " overwritten before it drained");
      count_toggles(p.o, p.p, st.toggles.acc);
      p.o_status = p.status, p.o_tile = p.p_tile;
      p.p_tag = p.p_tile = -1;
    }
  close_tiles();
  // The tile whose operands enter row i's (column j's) input port this cycle, and their k.
  auto feeding = [&](int index, bool row) -> std::pair<std::int64_t, std::int64_t> {
    for (std::size_t u = open_; u < next_stream_; ++u) {
      const std::int64_t k = now_ - times_[u].stream - index;
      if (index < (row ? tiles_[u].r : tiles_[u].c) && k >= 0 && k < K) return {std::int64_t(u), k};
    }
    return {-1, -1};
  };
  for (int i = cfg_.rows - 1; i >= 0; --i)
    for (int j = cfg_.cols - 1; j >= 0; --j) {
      Pe& p = pe(i, j);
      std::int64_t ka = -1, kw = -1, ua = -1, uw = -1;
      u128 a = 0, w = 0;
      if (j == 0) {
        std::tie(ua, ka) = feeding(i, true);
        if (ua >= 0) a = a_at(tiles_[std::size_t(ua)].m0 + i, ka), ++st.buf_a.reads;
      } else if (const Pe& left = pe(i, j - 1); left.a_tag >= 0 && j < tiles_[std::size_t(left.a_tile)].c) {
        ka = left.a_tag, ua = left.a_tile, a = left.a;
      }
      if (i == 0) {
        std::tie(uw, kw) = feeding(j, false);
        if (uw >= 0) w = ops_.w[std::size_t(kw * s.n + tiles_[std::size_t(uw)].n0 + j)], ++st.buf_w.reads;
      } else if (const Pe& up = pe(i - 1, j); up.w_tag >= 0 && i < tiles_[std::size_t(up.w_tile)].r) {
        kw = up.w_tag, uw = up.w_tile, w = up.w;
      }
      if (ka != kw || ua != uw) throw std::logic_error("systolic array: activation and weight out of step");
      p.a_tag = p.w_tag = ka;
      p.a_tile = p.w_tile = ua;
      if (ka < 0) continue;
      const Tile& T = tiles_[std::size_t(ua)];
      u128 psum = 0;
      unsigned status = 0;
      if (ka == 0) {
        if (p.p_tag >= 0) throw std::logic_error("systolic array: the accumulator of " + where(i, j) + " still holds a sum");
      } else {
        if (p.p_tile != ua || p.p_tag != ka - 1) throw std::logic_error("systolic array: accumulator out of step at " + where(i, j));
        psum = p.p, status = p.status;
      }
      mac(p, psum, status, a, w, T.m0 + i, ka, T.n0 + j);
      p.p_tag = ka, p.p_tile = ua;
      count_toggles(p.a, a, st.toggles.mul_a);
      count_toggles(p.w, w, st.toggles.mul_w);
    }
}

// Input-stationary: C^T (N x M) back to C (M x N), and the counts named in A and W terms.
void SystolicArray::untranspose() {
  const std::int64_t n = ops_.shape.m, m = ops_.shape.n;  // C^T is N x M
  std::vector<u128> c(result_.c.size());
  std::vector<unsigned> status(result_.status.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < m; ++j) {
      c[std::size_t(j * n + i)] = result_.c[std::size_t(i * m + j)];
      status[std::size_t(j * n + i)] = result_.status[std::size_t(i * m + j)];
    }
  result_.c = std::move(c);
  result_.status = std::move(status);
  result_.stats = detail::transposed(result_.stats);
}

}  // namespace bitsim::sim
