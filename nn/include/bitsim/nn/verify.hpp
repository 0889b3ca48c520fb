// `bitsim verify`: N training steps of the experiment in lockstep with an fp32 twin (same initial
// weights, same batches), the deviation of every layer's GEMM outputs per phase (SQNR, max absolute
// error, max ULP distance in fp32), and sampled GEMMs of the run replayed through the SystemC
// systolic array, bit for bit. SystemC elaborates once per process: call verify() once.
#pragma once

#include <nlohmann/json.hpp>

#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/trainer.hpp"

namespace bitsim::nn {

struct VerifyOptions {
  int steps = 2;
  int samples = 8;           // GEMMs replayed through the SystemC array (one per layer and phase, in order)
  std::int64_t sample_rows = 8;  // rows of C per sampled GEMM (all columns, the whole reduction)
  ProgressFn progress;
};

nlohmann::json verify(const Experiment& x, const VerifyOptions& opt);

}  // namespace bitsim::nn
