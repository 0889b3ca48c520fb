// A top level for the systolic array: clock, reset and start/done handshake around one
// SystolicArray, an optional VCD trace, and run() to put GEMMs through it one after another.
// SystemC elaborates once per process, so create one harness per configuration before the first
// run (several may exist side by side; they share the simulation).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <systemc>

#include "bitsim/sim/systolic.hpp"

namespace bitsim::sim {

class ArrayHarness {
 public:
  // name: unique module name; vcd_path: write a VCD trace there ("" = none; ".vcd" is appended by
  // SystemC, so pass the path without it).
  ArrayHarness(const std::string& name, const ArrayConfig& cfg, const std::string& vcd_path = "");
  ~ArrayHarness();

  // Resets the array, loads the operands, pulses start and simulates until done; `progress`, if
  // given, is called now and then with the fraction of the MACs done.
  GemmResult run(GemmOperands ops, const std::function<void(double)>& progress = {}) { return run(std::move(ops), Mapping{}, progress); }
  GemmResult run(GemmOperands ops, const Mapping& mapping, const std::function<void(double)>& progress = {});
  // The same for a convolution: the result is its im2col GEMM's C (M x N).
  GemmResult run(ConvOperands ops, const std::function<void(double)>& progress = {}) { return run(std::move(ops), Mapping{}, progress); }
  GemmResult run(ConvOperands ops, const Mapping& mapping, const std::function<void(double)>& progress = {});
  SystolicArray& array() { return *array_; }

 private:
  GemmResult simulate(double macs, const std::function<void(double)>& progress);
  std::unique_ptr<sc_core::sc_clock> clk_;
  sc_core::sc_signal<bool> rst_, start_, busy_, done_;
  std::unique_ptr<SystolicArray> array_;
  sc_core::sc_trace_file* vcd_ = nullptr;
};

}  // namespace bitsim::sim
