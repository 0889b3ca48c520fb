// `bitsim verify`: N training steps of the experiment in lockstep with an fp32 twin (same initial
// weights, same batches), the deviation of every layer's GEMM outputs per phase (SQNR, max absolute
// error, max ULP distance in fp32), and sampled GEMMs of the run prepared for a replay through the
// SystemC systolic array (which the caller runs: nn does not link SystemC).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/sim/gemm_reference.hpp"

#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/trainer.hpp"

namespace bitsim::nn {

struct VerifyOptions {
  int steps = 2;
  int samples = 8;           // GEMMs replayed through the SystemC array (one per layer and phase, in order)
  std::int64_t sample_rows = 8;  // rows of C per sampled GEMM (all columns, the whole reduction)
  ProgressFn progress;
};

// A sampled GEMM of the run: the array's configuration with the GEMM's numerics and stream, its
// operand codes, and the outputs the executor computed for those rows.
struct ReplayCase {
  nlohmann::json description;  // layer, phase, rows, first_row, n, k, formats, GEMM path
  std::string skipped;         // why it cannot be replayed ("": it can)
  sim::ArrayConfig config;
  sim::GemmOperands operands;
  arith::Format acc;
  std::vector<float> want;
};

struct VerifyResult {
  nlohmann::json report;  // experiment, steps, batch, deviation_from_fp32, cost
  costmodel::RunCost cost;  // of the steps it ran
  std::vector<ReplayCase> replays;
};

VerifyResult verify(const Experiment& x, const VerifyOptions& opt);

// How many of the array's output codes decode to exactly the executor's fp32 outputs.
std::int64_t count_matches(const ReplayCase& rc, const std::vector<arith::u128>& codes);

}  // namespace bitsim::nn
