// Pipelined exact multiplier: the product is computed by arith (decode, exact_mul, quantize into
// product_format, which is exact by construction) in the first stage and then only delayed.
#include "bitsim/sim/multiplier.hpp"

#include <stdexcept>

#include "bitsim/arith/ops.hpp"

namespace bitsim::sim {

MultiplierCells array_multiplier_cells(int n, int m) {
  if (n < 1 || m < 1) throw std::invalid_argument("array_multiplier_cells: widths must be >= 1");
  MultiplierCells c;
  c.partial_products = m;
  c.and_gates = n * m;
  if (n >= 2 && m >= 2) {
    c.half_adders = m;
    c.full_adders = (n - 1) * (m - 1) - 1;
  }
  return c;
}

MultiplierCells booth4_multiplier_cells(int n, int m) {
  if (n < 1 || m < 1) throw std::invalid_argument("booth4_multiplier_cells: widths must be >= 1");
  MultiplierCells c;
  const int rows = (m + 1) / 2;
  c.partial_products = rows;
  c.booth_encoders = rows;
  c.booth_selectors = rows * (n + 1);
  c.full_adders = (rows - 1) * (n + 2);
  c.half_adders = rows - 1;
  return c;
}

Multiplier::Multiplier(sc_core::sc_module_name name, const arith::Format& fa, const arith::Format& fb,
                       int stages)
    : sc_core::sc_module(name), fa_(fa), fb_(fb), product_(arith::product_format(fa, fb)) {
  exact_spec_.overflow = arith::default_overflow(product_);
  if (stages < 1) throw std::invalid_argument("Multiplier: stages must be >= 1");
  pipe_.resize(std::size_t(stages));
  // SystemC 2.3's SC_METHOD needs the module type under this name (what SC_CTOR/SC_HAS_PROCESS
  // declare); SystemC 3 deduces it.
  using SC_CURRENT_USER_MODULE = Multiplier;
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
  SC_METHOD(ready_logic);
  sensitive << tail_valid_ << out_ready;
}

void Multiplier::ready_logic() { in_ready.write(!(tail_valid_.read() && !out_ready.read())); }

void Multiplier::drive_outputs() {
  const Slot& s = pipe_.back();
  out_valid.write(s.valid);
  tail_valid_.write(s.valid);
  out_code.write(to_code(s.code));
  out_status.write(s.status);
  out_last.write(s.last);
}

void Multiplier::tick() {
  if (rst.read()) {
    for (Slot& s : pipe_) s = Slot{};
    drive_outputs();
    return;
  }
  const bool stall = pipe_.back().valid && !out_ready.read();
  if (stall) return;
  for (std::size_t i = pipe_.size() - 1; i > 0; --i) pipe_[i] = pipe_[i - 1];
  Slot in;
  if (in_valid.read()) {
    // arith::mul for operands of two formats: the exact product, "rounded" into a format that
    // holds it exactly, and kInvalid for 0 * inf.
    const arith::Exact x = arith::decode(fa_, to_u128(in_a.read()));
    const arith::Exact y = arith::decode(fb_, to_u128(in_b.read()));
    const arith::Exact p = arith::exact_mul(x, y);
    arith::Quantized q = arith::quantize(product_, p, exact_spec_);
    if (p.is_nan() && !x.is_nan() && !y.is_nan()) q.status |= arith::kInvalid;
    in = Slot{true, q.code, q.status, in_last.read()};
  }
  pipe_[0] = in;
  drive_outputs();
}

}  // namespace bitsim::sim
