// Systolic MAC array (R x C processing elements, weight- or output-stationary) running a tiled
// GEMM with operand skew, fill and drain, on-chip buffers and a DRAM channel: a clocked SystemC
// module whose every PE step is arith::MacDatapath, so each output equals arith::Accumulator
// summing its products in k order.
#pragma once

#include <cstdint>
#include <list>
#include <vector>

#include <systemc>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/sim/array_model.hpp"
#include "bitsim/sim/gemm_reference.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim {


// One SC_METHOD clocks the whole array. Each rising edge is one cycle: the controller, the DMA
// channel and every PE register advance once. PEs are updated from the bottom-right corner back
// to the top-left, so every PE reads its left and upper neighbours' registers before they are
// overwritten: the same values a two-phase (compute all, then commit all) update would give, i.e.
// what R x C registers clocked by one edge hold. A process per PE would be as exact and about two
// orders of magnitude slower (SystemC schedules every process and signal each cycle), for nothing
// a PE could observe.
//
// Registers hold their value while no valid data arrives (clock gating), so toggles count only
// real data movement. Start: raise `start` for one edge while idle; `done` rises with the edge
// after the last DRAM write of C and stays high until reset.
//
// With ArraySpec::overlap the tiles overlap: every register's data carries the tile it belongs to,
// and the PEs act on those tags (a weight-stationary PE takes its shadow weight when the first
// activation of a new tile reaches it; an output-stationary PE hands its sum to its output register
// and starts the next). The controller starts each tile's load and stream by the rules of
// docs/sim.md; the datapath checks every hazard those rules must prevent (a shadow weight
// overwritten before use, an output port taking two results in a cycle, a partial sum read before
// the previous k-fold wrote it, an output register overwritten before it drained) and throws
// std::logic_error if one occurs.
class SystolicArray : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);  // synchronous, active high
  sc_core::sc_in<bool> SC_NAMED(start);
  sc_core::sc_out<bool> SC_NAMED(busy);
  sc_core::sc_out<bool> SC_NAMED(done);

  SystolicArray(sc_core::sc_module_name name, const ArrayConfig& cfg);

  // The DRAM image for the next run (before `start`). Throws std::invalid_argument on a bad shape.
  void load(GemmOperands ops, const Mapping& mapping = {});
  // A convolution for the next run: the DMA fetches input rows into the A buffer and the controller
  // forms the im2col operand rows from them on chip. The result is the im2col GEMM's C (M x N).
  void load(ConvOperands ops, const Mapping& mapping = {});
  const GemmResult& result() const { return result_; }
  const ArrayConfig& config() const { return cfg_; }

  // Adds the ports and the controller's signals (tile, phase, stall, DRAM busy, active PEs, the
  // output column codes) to a VCD trace file.
  void trace(sc_core::sc_trace_file* tf) const;

 private:
  // Overlapped tiles run in phase Overlapped from the first load to the last result.
  enum class Phase : int { Idle = 0, WaitFetch = 1, Load = 2, Stream = 3, Drain = 4, WaitWrite = 5, Done = 6, Overlapped = 7 };

  // One tile of the schedule: its block indices and extents.
  struct Tile {
    std::int64_t m0 = 0, k0 = 0, n0 = 0;  // origin in M, K, N
    int r = 0, c = 0;                     // PE rows and columns used
    std::int64_t mt = 0;                  // rows of M streamed (ws; os: r)
    std::int64_t mb = 0, kt = 0, nt = 0;  // m-block (os: m-fold), k-fold, n-fold
    bool keep_psum = true;                // ws: the partial sums stay in the O buffer between k-folds
  };
  // A DRAM request: issued at a cycle, served in order, usable when `ready` (set once started).
  struct Request {
    std::int64_t issue = 0, bytes = 0, ready = -1;
  };
  // An on-chip buffer of whole operand blocks with LRU replacement; accessing a missing block
  // fetches it (a block larger than the buffer streams through and is never kept).
  class BlockBuffer {
   public:
    void reset(std::int64_t capacity) { cap_ = capacity, used_ = 0, blocks_.clear(); }
    bool access(std::int64_t id, std::int64_t bytes);  // true: hit
   private:
    std::int64_t cap_ = 0, used_ = 0;
    std::list<std::pair<std::int64_t, std::int64_t>> blocks_;  // (id, bytes), most recent first
  };
  // One PE's registers. WS: w is the stationary weight, p the partial sum passing down.
  // OS: w is the weight passing down, p the stationary accumulator.
  struct Pe {
    arith::u128 a = 0, w = 0, p = 0, prod = 0;
    unsigned status = 0;
    std::int64_t a_tag = -1;  // a's row m (ws) or k (os); -1: no valid data
    std::int64_t p_tag = -1;  // ws: the partial sum's row m; -1: none
    std::int64_t w_tag = -1;  // os: the passing weight's k
    // Overlapped tiles: the tile of the activation, the partial sum or accumulator, and the weight
    // (ws: the active one; os: the passing one); -1 none. os: p_tag is the k last added to p.
    std::int64_t a_tile = -1, p_tile = -1, w_tile = -1;
    arith::u128 sw = 0;        // ws: the shadow weight, loaded while another tile streams
    std::int64_t sw_tile = -1;  //   its tile; -1 once taken
    arith::u128 o = 0;         // os: the output register a finished sum waits in to drain
    unsigned o_status = 0;
    std::int64_t o_tile = -1;
  };
  // Overlapped tiles: when each loads (ws) and streams, and how many results have left it.
  struct Times {
    std::int64_t load = -1, stream = -1, collected = 0;
  };

  std::vector<std::int64_t> conv_tile_rows(std::int64_t m0, std::int64_t m1, std::int64_t k0, std::int64_t k1) const;
  arith::u128 im2col_at(std::int64_t m, std::int64_t k) const;
  arith::u128 a_at(std::int64_t m, std::int64_t k) const;  // the streamed operand
  arith::u128 w_at(std::int64_t k, std::int64_t n) const;  // the stationary (ws, is) or passing (os) one
  void tick();
  void reset_state();
  void build_schedule();
  void cycle();
  bool start_tile_if_ready();
  void ws_load_cycle();
  void ws_stream_cycle();
  void os_stream_cycle();
  void os_drain_cycle();
  void end_tile();
  void overlap_control();
  void ws_overlap_cycle();
  void os_overlap_cycle();
  void write_back(const Tile& T);
  void take_result(int j, std::int64_t m, std::int64_t n0, arith::u128 code, unsigned status, std::size_t u);
  void close_tiles();
  void issue_fetch(std::size_t t);
  std::size_t dram_issue(std::int64_t at, std::int64_t bytes);
  void dram_step();
  void mac(Pe& pe, arith::u128 psum_in, unsigned status_in, arith::u128 a, arith::u128 w, std::int64_t m,
           std::int64_t k, std::int64_t n);
  void count_toggles(arith::u128& reg, arith::u128 value, std::uint64_t& counter);
  Pe& pe(int i, int j) { return pes_[std::size_t(i) * std::size_t(cfg_.cols) + std::size_t(j)]; }
  void publish();
  void untranspose();

  ArrayConfig cfg_;
  // Input-stationary runs the weight-stationary schedule of C^T = W^T A^T: ops_ holds W^T as the
  // streamed operand and A^T as the stationary one (or its convolution, from ifmap_), the results
  // and counts are turned back when the run ends.
  bool is_;
  arith::MacDatapath dp_;
  int ab_, wb_, cb_, ob_;  // streamed and stationary operand, accumulator and finished-result widths in bits
  GemmOperands ops_;        // a convolution leaves its im2col operand empty: it comes from ifmap_
  bool conv_mode_ = false, loaded_ = false;
  Mapping mapping_;         // as given to load(); resolved when the schedule is built
  ConvShape conv_;
  std::vector<arith::u128> ifmap_;
  GemmResult result_;
  std::vector<Pe> pes_;
  std::vector<Tile> tiles_;
  BlockBuffer buf_a_, buf_w_;
  std::vector<Request> dram_;               // every request in issue order
  std::size_t dram_head_ = 0;               // first request not started
  std::int64_t dram_free_ = 0;              // cycle the channel is free from
  std::vector<std::size_t> fetch_req_;      // per tile: index of its fetch request
  std::size_t last_write_req_ = 0;

  Phase phase_ = Phase::Idle;
  std::int64_t now_ = 0;          // cycle number since start
  std::size_t tile_ = 0;          // current tile
  std::int64_t phase_cycle_ = 0;  // cycle within the phase
  std::int64_t collected_ = 0;    // results written back in this tile
  std::int64_t tile_macs_ = 0;    // MACs done in this tile
  int active_pes_ = 0;
  bool tracing_ = false;
  // Overlapped tiles.
  std::vector<Times> times_;
  std::size_t next_load_ = 0, next_stream_ = 0;  // the next tile to start loading (ws) and streaming
  std::size_t open_ = 0;                          // the first tile whose results have not all left
  std::vector<std::int64_t> fold_ready_;          // ws, per (m-block, n-fold): when its next k-fold may stream
  std::vector<std::int64_t> folds_;               // ws, per output: k-folds whose partial sums left the array
  std::vector<std::int64_t> port_;                // per column: the last cycle its output port took a result

  sc_core::sc_signal<int> SC_NAMED(tile_sig_);
  sc_core::sc_signal<int> SC_NAMED(phase_sig_);
  sc_core::sc_signal<int> SC_NAMED(active_sig_);
  sc_core::sc_signal<bool> SC_NAMED(dram_busy_sig_);
  sc_core::sc_vector<sc_core::sc_signal<Code>> out_sig_;
};

}  // namespace bitsim::sim
