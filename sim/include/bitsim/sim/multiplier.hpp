// Pipelined multiplier of two codes to the exact product code (arith::product_format), with a
// valid/ready handshake, plus structural cell counts of array and radix-4 Booth multipliers.
#pragma once

#include <vector>

#include <systemc>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/rounding.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim {

// Cells of a combinational n x m multiplier (n: multiplicand bits, m: multiplier bits), counted
// under the conventions in docs/sim.md. Adders are 1-bit cells: a full adder adds three bits, a
// half adder two.
struct MultiplierCells {
  int partial_products = 0;  // rows to be summed
  int and_gates = 0;         // array: one AND per partial-product bit
  int booth_encoders = 0;    // Booth: one encoder per row (3 multiplier bits -> 0, +-1, +-2)
  int booth_selectors = 0;   // Booth: one mux/XOR cell per row bit (n + 1 per row)
  int full_adders = 0;
  int half_adders = 0;
  int adders() const { return full_adders + half_adders; }
};

// Unsigned ripple-carry array multiplier: m rows of n ANDs; row j (j >= 1) is an n-bit
// ripple-carry adder onto the running sum. Every bit column is summed with exactly as many cells
// as it needs, so for n, m >= 2: HA = m, FA = (n - 1)(m - 1) - 1, n(m - 1) adders in all; no
// adders when n or m is 1.
MultiplierCells array_multiplier_cells(int n, int m);

// Radix-4 Booth (two's complement m-bit multiplier): ceil(m/2) rows, each n + 1 bits wide
// (selects 0, +-a, +-2a) plus a negate bit folded into the next row; sign extension by the
// "1, ~s" constant trick makes every row n + 3 bits. Rows are summed with a ripple array of
// (rows - 1) adders of width n + 3: FA = (rows - 1)(n + 2), HA = rows - 1.
MultiplierCells booth4_multiplier_cells(int n, int m);

// Accepts (a, b, last) when in_valid && in_ready at a rising edge; `stages` rising edges later
// (stages >= 1) the product is transferable on the output: a transfer on the input at edge t
// makes out_valid visible after edge t + stages - 1, so the earliest output transfer is edge
// t + stages. The whole pipeline stalls while its last stage holds a result the sink refuses
// (in_ready = !(out_valid && !out_ready)), so with a ready sink it accepts one input per cycle.
// `last` travels with the data unchanged (it marks the end of a dot product for a MAC).
class Multiplier : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);  // synchronous, active high: empties the pipeline

  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_a);
  sc_core::sc_in<Code> SC_NAMED(in_b);
  sc_core::sc_in<bool> SC_NAMED(in_last);

  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_code);
  sc_core::sc_out<unsigned> SC_NAMED(out_status);  // arith::Status of the product (kInvalid: 0 * inf)
  sc_core::sc_out<bool> SC_NAMED(out_last);

  Multiplier(sc_core::sc_module_name name, const arith::Format& fa, const arith::Format& fb,
             int stages = 1);

  const arith::Format& out_format() const { return product_; }
  int latency() const { return int(pipe_.size()); }

 private:
  struct Slot {
    bool valid = false;
    arith::u128 code = 0;
    unsigned status = 0;
    bool last = false;
  };
  void tick();
  void ready_logic();
  void drive_outputs();

  arith::Format fa_, fb_, product_;
  arith::RoundSpec exact_spec_;  // never rounds: product_ holds every product
  std::vector<Slot> pipe_;  // pipe_[0] is filled from the input, pipe_.back() drives the outputs
  sc_core::sc_signal<bool> SC_NAMED(tail_valid_);
};

}  // namespace bitsim::sim
