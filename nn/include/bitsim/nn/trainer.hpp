// Training and inference runs: the loop, evaluation against the test split, per-epoch metrics,
// atomic checkpoints with everything needed to resume bit-identically, and the run's report.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/costmodel/pipeline.hpp"
#include "bitsim/nn/data.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/integer.hpp"
#include "bitsim/nn/model.hpp"
#include "bitsim/nn/popcount.hpp"

namespace bitsim::nn {

// The evaluation batch (and the smallest batch a run's memory is estimated for).
inline constexpr std::int64_t kEvalBatch = 256;

// A checkpoint that cannot be loaded: missing, corrupt (its CRC-32 fails), or of another network.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The run directory cannot be used: not writable, or locked by another run.
struct RunDirectoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The weights or the loss stopped being finite numbers.
struct TrainingDiverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
  // Check everything and cost the run from its shapes (the cost a training run reports), without
  // training: report.json (mode "cost") and the cost plots.
  bool cost_only = false;
  // Whether a cost-only run draws its energy and roofline plots (a sweep's thousand points need
  // none: each would cost two gnuplot runs).
  bool cost_plots = true;
};

struct RunResult {
  std::vector<EpochMetrics> epochs;
  costmodel::RunCost cost;
  nlohmann::json report;
};

// The schema of report.json, written by train and infer.
inline constexpr const char* kReportSchema = "bitsim-report/2";

// The GEMMs of one training step, from a canonical step: the experiment's initial weights on the
// first examples of the training split (one batch, unshuffled), forward and backward, no update. A run is costed from it, so its cost
// does not depend on where a process started (a resumed run costs what the uninterrupted one does).
std::vector<GemmRecord> record_training_step(const Experiment& x, const Dataset& train_set);


Network build_network(const Experiment& x, const Shape& input);
// The layer a spec describes (its `input` is the network's to route).
std::unique_ptr<Layer> make_layer(const LayerSpec& s);
// The experiment's optimizer with its master-weight format and lazy update.
Optimizer make_optimizer(const Experiment& x);
// The experiment's train and test splits (limits applied).
Dataset load_split(const Experiment& x, bool train);
// A split's size (limits applied) and its first `count` examples (count < 0: all), reading no more
// of a file than that.
DataPreview preview_split(const Experiment& x, bool train, std::int64_t count);

// Accuracy and mean loss of `net` on `data` (inference: BatchNorm running statistics, no dropout).
// `first_batch_gemms`: when given, the GEMMs of the first batch are recorded there (what infer costs).
// `logits`: when given, every example's outputs, example after example.
std::pair<double, double> evaluate(const Experiment& x, Network& net, const Dataset& data, std::uint64_t step,
                                   std::vector<GemmRecord>* first_batch_gemms = nullptr, std::vector<float>* logits = nullptr);

RunResult train(const Experiment& x, const RunOptions& opt);

struct InferOptions {
  std::string checkpoint;     // "" with a model.onnx experiment: the model file's weights
  std::string out_dir;        // report.json and the cost plots; "" = write nothing
  bool fold_batchnorm = false;
  // Integer-only inference (nn/integer.hpp) of the checkpoint's weights: calibrated on the training
  // split (or from the ranges quantization-aware training tracked), run in integers, reported
  // beside the accuracy of the network under the experiment's numerics (the reference: fp32 for an
  // fp32 experiment, the fake-quantized network for a quantization-aware one), and costed as int8
  // MACs, int32 bias adds and requantizers.
  std::optional<IntegerOptions> integer_only;
  // Binarized layers as XNOR-popcount with BatchNorm and sign folded into thresholds
  // (nn/popcount.hpp), reported beside the float-BatchNorm network's accuracy and predictions.
  bool popcount = false;
  // A CSV of every test example's outputs (example, label, prediction, the logits), for the plain
  // path (neither integer_only nor popcount); "" = none.
  std::string outputs;
};
// Test accuracy and loss of a checkpoint's weights under the experiment's numerics, and the cost of
// that inference pass; report.json has the train report's schema (mode "infer", no epochs).
RunResult infer(const Experiment& x, const InferOptions& opt);

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

// Checkpoints: parameters, optimizer state, BatchNorm statistics, and the metrics so far, closed by
// a CRC-32. `extra`: more run state for the header (the loss scale, the experiment's fingerprint),
// returned by load_checkpoint. Loading checks the checksum, every size against `net` and every value
// for finiteness before it changes anything, and throws CheckpointError naming the file.
void save_checkpoint(const std::string& path, Network& net, Optimizer& optim, const std::vector<EpochMetrics>& metrics,
                     const nlohmann::json& extra = nlohmann::json::object());
std::vector<EpochMetrics> load_checkpoint(const std::string& path, Network& net, Optimizer& optim,
                                          nlohmann::json* extra = nullptr);
// optim == nullptr: the weights and BatchNorm statistics only (inference under any numerics).
std::vector<EpochMetrics> load_checkpoint(const std::string& path, Network& net, Optimizer* optim,
                                          nlohmann::json* extra = nullptr);

// What must not change when a run is resumed (the experiment without its name, data location,
// hardware, and, with a constant learning rate, its epoch count), and the differences between two
// such fingerprints as "key old -> new" lines.
nlohmann::json training_fingerprint(const Experiment& x);
std::vector<std::string> resume_differences(const nlohmann::json& saved, const nlohmann::json& now);

// Refuses a data split pair that cannot be trained on (empty, images of different sizes), and a
// network whose output is not one value per class; ExperimentError names the file and key.
void check_splits(const Experiment& x, const DataPreview& train, const DataPreview& test);
void check_classifier(const Experiment& x, const Network& net, int classes);

// An exclusive lock (flock) on a run directory, created if needed and checked writable; a second
// run on the same directory gets RunDirectoryError. Released when destroyed or the process ends.
class RunLock {
 public:
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace bitsim::nn
