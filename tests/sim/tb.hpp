// Testbench parts for the sim tests: a source and a sink with random stalls on the valid/ready
// handshake, each recording the clock edge of every transfer, and corner-code generators.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <systemc>

#include "bitsim/arith/quantize.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim::test {

using arith::u128;

struct Item {
  std::vector<u128> data;  // one code per data port
  bool last = false;
};

// Offers items in order; when it has none on the wire it raises valid with probability
// 1 - p_stall on each edge, and holds valid and data until the transfer (AXI-stream rule).
class Source : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);
  sc_core::sc_out<bool> SC_NAMED(valid);
  sc_core::sc_in<bool> SC_NAMED(ready);
  sc_core::sc_vector<sc_core::sc_out<Code>> data;
  sc_core::sc_out<bool> SC_NAMED(last);

  std::vector<long> transfer_edge;  // edge number of each item's transfer

  Source(sc_core::sc_module_name name, std::vector<Item> items, int ports, double p_stall, unsigned seed)
      : sc_core::sc_module(name), data("data", std::size_t(ports)), items_(std::move(items)), p_stall_(p_stall),
        rng_(seed) {
    using SC_CURRENT_USER_MODULE = Source;
    SC_METHOD(tick);
    sensitive << clk.pos();
    dont_initialize();
  }

 private:
  void tick() {
    ++edge_;
    if (rst.read()) {
      valid.write(false);
      return;
    }
    if (on_wire_ && ready.read()) {
      transfer_edge.push_back(edge_);
      ++next_;
      on_wire_ = false;
    }
    if (!on_wire_ && next_ < items_.size() && std::uniform_real_distribution<>(0, 1)(rng_) >= p_stall_) {
      for (std::size_t i = 0; i < data.size(); ++i) data[i].write(to_code(items_[next_].data[i]));
      last.write(items_[next_].last);
      on_wire_ = true;
    }
    valid.write(on_wire_);
  }

  std::vector<Item> items_;
  double p_stall_;
  std::mt19937 rng_;
  std::size_t next_ = 0;
  bool on_wire_ = false;
  long edge_ = 0;
};

// Raises ready with probability 1 - p_stall on each edge; records every transfer and stops the
// simulation after `expected` of them.
class Sink : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);
  sc_core::sc_in<bool> SC_NAMED(valid);
  sc_core::sc_out<bool> SC_NAMED(ready);
  sc_core::sc_in<Code> SC_NAMED(code);
  sc_core::sc_in<unsigned> SC_NAMED(status);
  sc_core::sc_in<bool> SC_NAMED(last);

  struct Record {
    u128 code;
    unsigned status;
    bool last;
    long edge;
  };
  std::vector<Record> got;

  Sink(sc_core::sc_module_name name, std::size_t expected, double p_stall, unsigned seed)
      : sc_core::sc_module(name), expected_(expected), p_stall_(p_stall), rng_(seed) {
    using SC_CURRENT_USER_MODULE = Sink;
    SC_METHOD(tick);
    sensitive << clk.pos();
    dont_initialize();
  }

 private:
  void tick() {
    ++edge_;
    if (rst.read()) {
      ready.write(false);
      return;
    }
    if (ready_ && valid.read()) {
      got.push_back({to_u128(code.read()), status.read(), last.read(), edge_});
      if (got.size() == expected_) sc_core::sc_stop();
    }
    ready_ = std::uniform_real_distribution<>(0, 1)(rng_) >= p_stall_;
    ready.write(ready_);
  }

  std::size_t expected_;
  double p_stall_;
  std::mt19937 rng_;
  bool ready_ = false;
  long edge_ = 0;
};

// Codes every test should see: zero, one LSB, both ends of the range, the sign bit alone, all ones,
// and for floats +-inf, nans, the largest subnormal and the smallest normal.
inline std::vector<u128> corner_codes(const arith::Format& f) {
  const u128 mask = f.code_mask();
  const int w = f.width();
  std::vector<u128> c = {0, 1, mask, u128(1) << (w - 1), (u128(1) << (w - 1)) - 1, arith::max_code(f),
                         arith::min_code(f), arith::min_positive_code(f)};
  if (f.is_float()) {
    const u128 exp_one = u128(1) << f.man_bits;
    const u128 exp_all = ((u128(1) << f.exp_bits) - 1) << f.man_bits;
    const u128 sign = f.is_signed ? u128(1) << (w - 1) : 0;
    for (u128 s : {u128(0), sign}) {
      c.push_back(s | exp_all);                // inf (or nan / a finite number, per format)
      c.push_back(s | exp_all | 1);            // nan (or finite)
      c.push_back(s | (exp_one - 1));          // largest subnormal
      c.push_back(s | exp_one);                // smallest normal
      c.push_back(s | (exp_all - exp_one));    // the binade below the top
    }
  }
  for (u128& x : c) x &= mask;
  return c;
}

// A corner code with probability p_corner, else a uniformly random code.
inline u128 random_code(const arith::Format& f, std::mt19937_64& rng, double p_corner = 0.3) {
  if (std::uniform_real_distribution<>(0, 1)(rng) < p_corner) {
    const std::vector<u128> corners = corner_codes(f);
    return corners[rng() % corners.size()];
  }
  return ((u128(rng()) << 64) | rng()) & f.code_mask();
}

}  // namespace bitsim::sim::test
