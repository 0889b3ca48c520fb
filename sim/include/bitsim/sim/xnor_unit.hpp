// Matrix-vector-threshold unit for binarized layers, as in FINN (Umuroglu et al. 2017): PE neurons
// in parallel, each taking SIMD input bits per cycle, XNOR with its weights, popcount into an
// accumulator, and BatchNorm + sign folded into one threshold compare (arith::BinaryThreshold).
#pragma once

#include <cstdint>
#include <vector>

#include <systemc>

#include "bitsim/arith/binary.hpp"
#include "bitsim/sim/code.hpp"

namespace bitsim::sim {

struct XnorLayer {
  std::int64_t fan_in = 1;  // K input bits per neuron
  int neurons = 1;          // N
  int pe = 1;               // neurons computed in parallel
  int simd = 1;             // input bits per neuron and cycle (1..64)
  std::vector<std::vector<std::uint64_t>> weights;  // N rows of K packed bits (1 = +1)
  std::vector<arith::BinaryThreshold> thresholds;   // one per neuron

  std::int64_t synapse_folds() const { return (fan_in + simd - 1) / simd; }  // SF
  std::int64_t neuron_folds() const { return (neurons + pe - 1) / pe; }      // NF
  // Cycles for `vectors` input vectors with a source that is always valid and a sink that is
  // always ready, from the edge of the first input transfer to the edge of the last output
  // transfer, both included: vectors * NF * SF + 1.
  std::int64_t cycles(std::int64_t vectors) const { return vectors * neuron_folds() * synapse_folds() + 1; }
  void validate() const;  // throws std::invalid_argument
};

// Input: an input vector arrives as SF transfers of SIMD bits (bit i of transfer s is input bit
// s * SIMD + i; the last transfer's bits past K are ignored). The unit keeps the vector in its input
// buffer and makes NF passes over it, one per group of PE neurons; each pass takes SF cycles and
// ends with one output transfer whose bit j is neuron (pass * PE + j)'s output. It accepts input only
// during the first pass (in_ready), and the whole unit stalls while an unread output blocks its
// register.
class XnorUnit : public sc_core::sc_module {
 public:
  sc_core::sc_in<bool> SC_NAMED(clk);
  sc_core::sc_in<bool> SC_NAMED(rst);
  sc_core::sc_in<bool> SC_NAMED(in_valid);
  sc_core::sc_out<bool> SC_NAMED(in_ready);
  sc_core::sc_in<Code> SC_NAMED(in_bits);
  sc_core::sc_out<bool> SC_NAMED(out_valid);
  sc_core::sc_in<bool> SC_NAMED(out_ready);
  sc_core::sc_out<Code> SC_NAMED(out_bits);

  XnorUnit(sc_core::sc_module_name name, XnorLayer layer);

  std::uint64_t toggles() const { return toggles_; }  // popcount-accumulator register bit flips

 private:
  void tick();
  void ready_logic();
  std::uint64_t weight_chunk(int neuron, std::int64_t sf) const;

  XnorLayer layer_;
  std::vector<std::uint64_t> buffer_;  // the current input vector, SF chunks
  std::vector<std::int64_t> acc_;      // PE popcount accumulators
  std::int64_t sf_ = 0, nf_ = 0;
  bool out_full_ = false;
  std::uint64_t toggles_ = 0;
  sc_core::sc_signal<bool> SC_NAMED(out_full_sig_);
  sc_core::sc_signal<bool> SC_NAMED(first_pass_sig_);
};

// The reference: output bits of every neuron for one input vector (packed K bits), from arith.
std::vector<bool> xnor_layer_reference(const XnorLayer& layer, const std::vector<std::uint64_t>& input);

}  // namespace bitsim::sim
