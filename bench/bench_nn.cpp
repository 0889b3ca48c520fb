// One LeNet-5 training step (batch 64, forward + backward + Adam) in each experiment's numerics,
// against the fp32 step of the same executor measured in the same run; and the fp32 epoch time.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "bitsim/nn/trainer.hpp"

namespace {

using namespace bitsim::nn;

struct Setup {
  Experiment x;
  Network net;
  Optimizer optim;
  Tensor input;
  std::vector<std::uint8_t> labels;
};

Setup make(const std::string& file, std::int64_t batch) {
  Experiment x = Experiment::load(std::string(BITSIM_SOURCE_DIR) + "/" + file);
  x.batch = batch;
  const Dataset d = synthetic(batch, 1, 28, 28, 10, 1);
  Network net = build_network(x, {batch, 1, 28, 28});
  Optimizer optim = make_optimizer(x);
  Tensor input({batch, 1, 28, 28});
  input.v = d.images;
  return {std::move(x), std::move(net), std::move(optim), std::move(input), d.labels};
}

void BM_TrainStep(benchmark::State& state, const std::string& file) {
  Setup s = make(file, 64);
  Tensor dlogits;
  std::uint64_t step = 0;
  for (auto _ : state) {
    std::mt19937_64 rng(step);
    Context ctx{true, 1, step, &rng, nullptr, nullptr};
    const Tensor& logits = s.net.forward(s.input, ctx);
    benchmark::DoNotOptimize(softmax_cross_entropy(logits, s.labels.data(), dlogits));
    s.net.backward(dlogits, ctx);
    s.optim.step(s.net.params(), 1e-3, 1, step++);
  }
}

class Reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) seconds[r.benchmark_name()] = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // BITSIM_THREADS=N runs the steps on N threads (default: every core), for peer_pytorch.sh.
  if (const char* t = std::getenv("BITSIM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(t, &end, 10);
    if (end == t || *end != '\0' || n < 1 || n > 1024) {
      fmt::print(stderr, "bench_nn: bad BITSIM_THREADS '{}': expected a thread count 1..1024\n", t);
      return 2;
    }
    set_threads(int(n));
  }
  const std::pair<const char*, const char*> cases[] = {
      {"fp32", "experiments/lenet5/fp32.toml"},
      {"int8", "experiments/lenet5/int8.toml"},
  };
  for (const auto& [name, file] : cases)
    benchmark::RegisterBenchmark(fmt::format("BM_TrainStep/lenet5_{}", name).c_str(), BM_TrainStep, std::string(file))
        ->Unit(benchmark::kMillisecond);
  Reporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  const double fp32 = rep.seconds["BM_TrainStep/lenet5_fp32"];
  if (fp32 <= 0) return 0;
  fmt::print("\n{:<28} {:>10} {:>10} {:>16}\n", "LeNet-5 step, batch 64", "ms", "vs fp32", "fp32 epoch (s)");
  for (const auto& [name, file] : cases) {
    const double t = rep.seconds[fmt::format("BM_TrainStep/lenet5_{}", name)];
    fmt::print("{:<28} {:>10.2f} {:>9.2f}x {:>16}\n", name, t * 1e3, t / fp32,
               std::string(name) == "fp32" ? fmt::format("{:.1f}", t * 60000 / 64) : "");
  }
  fmt::print("(threads: {}; the epoch estimate is 938 steps, without evaluation)\n", threads());
  return 0;
}
