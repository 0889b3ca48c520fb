// What a run asks of the hardware, described for the cost pipeline (costmodel/pipeline.hpp): the
// GEMMs of its steps per layer and phase with their shapes and formats, how often each runs, and
// the optimizer's element-wise update. nn describes the work; it computes no energy itself.
#pragma once

#include <cstdint>
#include <vector>

#include "bitsim/costmodel/pipeline.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/layers.hpp"
#include "bitsim/nn/topology.hpp"

namespace bitsim::nn {

// How many examples a run put through each kind of pass.
struct RunVolume {
  std::int64_t train_examples_per_epoch = 0, test_examples_per_epoch = 0;
  int epochs = 0;
  std::int64_t batch = 1;       // the batch size the GEMMs were recorded at
  std::int64_t eval_batch = 1;  // the batch size of the evaluation passes
  std::int64_t parameters = 0;  // updated once per training step
};

// Each GEMM layer's position and name in network order: conv1, conv2, ..., fc1, fc2, ...
std::vector<costmodel::LayerId> gemm_layer_ids(const Experiment& x);

// `gemms`: the GEMMs of one training step at batch size `v.batch` (forward, backward-data and
// backward-weight of every GEMM layer), as the layers record them. The workload: every training
// step of every epoch (the last partial batch at its own size), the test pass after each epoch at
// the evaluation batch, and the optimizer's update.
costmodel::Workload training_workload(const Experiment& x, const std::vector<GemmRecord>& gemms, const RunVolume& v);

// `forward`: the forward GEMMs of one batch of `batch` examples; the workload of `examples`
// examples at that batch size (the last batch at its own size), as inference.
costmodel::Workload inference_workload(const Experiment& x, const std::vector<GemmRecord>& forward, std::int64_t batch,
                                       std::int64_t examples);

// A topology file costed as the executor would cost an inference run of that network, without
// running it. topology_experiment: x's hardware and default numerics (its per-layer overrides and
// the classifier rule do not apply), with one GEMM layer per topology layer, named as in the file.
Experiment topology_experiment(const Experiment& x, const Topology& t);
// The forward GEMMs of one batch of `batch` images (GEMM files: M x batch rows) through the
// topology's layers, as the executor's layers record them: conv layers with their ConvShape,
// operand formats as Numerics::apply gives them (fp32, scalar or binary numerics; a block or scaled
// format depends on the data and throws std::invalid_argument naming the class). y: topology_experiment.
std::vector<GemmRecord> topology_records(const Experiment& y, const Topology& t, std::int64_t batch);
// inference_workload of those records for one batch, a depthwise layer's GEMMs and units repeated
// once per channel; GemmWork::path is "topology".
costmodel::Workload topology_workload(const Experiment& x, const Topology& t, std::int64_t batch);

}  // namespace bitsim::nn
