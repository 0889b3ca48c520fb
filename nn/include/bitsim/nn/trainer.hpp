// Training and inference runs: the loop, evaluation against the test split, per-epoch metrics,
// atomic checkpoints with everything needed to resume bit-identically, and the run's report.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/nn/data.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/model.hpp"

namespace bitsim::nn {

struct EpochMetrics {
  int epoch = 0;
  double lr = 0, train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0, seconds = 0;
};

// Called during training: fraction of all steps done, and a short note (epoch, loss).
using ProgressFn = std::function<void(double, const std::string&)>;

struct RunOptions {
  std::string out_dir;  // report.json, metrics.csv, checkpoint.bin, plots; "" = write nothing
  bool resume = false;  // continue from out_dir/checkpoint.bin
  ProgressFn progress;
};

struct RunResult {
  std::vector<EpochMetrics> epochs;
  nlohmann::json report;
};

Network build_network(const Experiment& x, const Shape& input);
// The experiment's optimizer with its master-weight format and lazy update.
Optimizer make_optimizer(const Experiment& x);
// The experiment's train and test splits (limits applied).
Dataset load_split(const Experiment& x, bool train);

// Accuracy and mean loss of `net` on `data` (inference: BatchNorm running statistics, no dropout).
std::pair<double, double> evaluate(const Experiment& x, Network& net, const Dataset& data, std::uint64_t step);

RunResult train(const Experiment& x, const RunOptions& opt);

// The pieces of a training step that train() and verify() share.
// The order of the n training examples in `epoch`: a function of (seed, epoch) only, so a resumed
// run sees the same batches.
std::vector<std::int64_t> epoch_order(const Experiment& x, std::int64_t n, int epoch);
// Examples order[first .. first + count) as a batch and its labels.
void gather_batch(const Dataset& d, const std::vector<std::int64_t>& order, std::int64_t first, std::int64_t count,
                  Tensor& x, std::vector<std::uint8_t>& y);
// The experiment's loss of a batch of logits, and its gradient in dlogits.
double loss_and_gradient(const Experiment& x, const Tensor& logits, const std::uint8_t* labels, Tensor& dlogits);
// The random engine of training step `step` (dropout masks).
std::mt19937_64 step_rng(const Experiment& x, std::uint64_t step);

// Checkpoints: parameters, optimizer state, BatchNorm statistics, and the metrics so far.
// `extra`: more run state for the header (the loss scale), returned by load_checkpoint.
void save_checkpoint(const std::string& path, Network& net, Optimizer& optim, const std::vector<EpochMetrics>& metrics,
                     const nlohmann::json& extra = nlohmann::json::object());
std::vector<EpochMetrics> load_checkpoint(const std::string& path, Network& net, Optimizer& optim,
                                          nlohmann::json* extra = nullptr);

}  // namespace bitsim::nn
