// One LeNet-5 training step (batch 64, forward + backward + Adam) in each experiment's numerics,
// against the fp32 step of the same executor measured in the same run; the fp32 epoch time; and
// order-faithful GEMMs into fp16 and bf16 accumulators, MacDatapath one add at a time against
// arith's FloatMac (vectorised across outputs), in ns per MAC on one thread.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bitsim/arith/float_mac.hpp"
#include "bitsim/arith/kernels.hpp"
#include "bitsim/nn/gemm.hpp"
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

// An order-faithful GEMM: operands of `operands`, accumulator `acc`, C (M x N) = A (M x K) B (K x N).
struct GemmCase {
  const char* name;
  const char *operands, *acc, *rounding;
  std::int64_t m, n, k;
};

const GemmCase kGemms[] = {
    {"fp16_acc/fp8e4m3/64x64x256", "fp8e4m3", "fp16", "nearest-even", 64, 64, 256},
    {"bf16_acc/bf16/64x64x256", "bf16", "bf16", "nearest-even", 64, 64, 256},
    // LeNet-5's second convolution at batch 8: 8 x 10 x 10 output pixels, 16 channels, 6 x 5 x 5.
    {"fp16_acc/fp8e4m3/lenet_conv2", "fp8e4m3", "fp16", "nearest-even", 800, 16, 150},
    {"bf16_acc/bf16/lenet_conv2", "bf16", "bf16", "nearest-even", 800, 16, 150},
    {"fp16_acc/fp8e4m3/64x64x256/sr", "fp8e4m3", "fp16", "stochastic", 64, 64, 256},
    {"bf16_acc/bf16/64x64x256/sr", "bf16", "bf16", "stochastic", 64, 64, 256},
};

std::string gemm_name(const GemmCase& g, GemmPath p) { return fmt::format("BM_Gemm/{}/{}", g.name, to_string(p)); }

// One thread: the ns per MAC of one core. `path`: OrderFaithful forces MacDatapath by masking the
// vector path off.
void BM_Gemm(benchmark::State& state, GemmCase g, GemmPath path) {
  using bitsim::arith::Format;
  const Format f = Format::parse(g.operands);
  const Accumulation acc = Accumulation::parse(g.acc, g.rounding);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> a(std::size_t(g.m * g.k)), b(std::size_t(g.k * g.n)), c(std::size_t(g.m * g.n));
  for (auto& v : a) v = d(rng);
  for (auto& v : b) v = d(rng);
  const bitsim::arith::RoundSpec nearest{bitsim::arith::Rounding::NearestEven, bitsim::arith::default_overflow(f)};
  bitsim::arith::quantize_f32(f, nearest, a, a);
  bitsim::arith::quantize_f32(f, nearest, b, b);
  const int threads_before = threads();
  set_threads(1);
  if (path == GemmPath::OrderFaithful) set_gemm_paths(kAllGemmPaths & ~path_bit(GemmPath::OrderFaithfulSimd));
  for (auto _ : state) {
    if (gemm(acc, f, f, false, false, g.m, g.n, g.k, a.data(), b.data(), c.data(), {1, 2}, false) != path) {
      state.SkipWithError("the GEMM took another path");
      break;
    }
    benchmark::DoNotOptimize(c.data());
  }
  set_gemm_paths(kAllGemmPaths);
  set_threads(threads_before);
  state.counters["MAC/s"] = benchmark::Counter(double(g.m * g.n * g.k), benchmark::Counter::kIsIterationInvariantRate);
}

class Reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds, cpu_seconds;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      seconds[r.benchmark_name()] = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
      cpu_seconds[r.benchmark_name()] = r.GetAdjustedCPUTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    }
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
  for (const GemmCase& g : kGemms)
    for (GemmPath p : {GemmPath::OrderFaithful, GemmPath::OrderFaithfulSimd}) {
      if (p == GemmPath::OrderFaithfulSimd && !bitsim::arith::FloatMac::available()) continue;
      benchmark::RegisterBenchmark(gemm_name(g, p).c_str(), BM_Gemm, g, p)->Unit(benchmark::kMillisecond);
    }
  Reporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  bool gemm_header = false;
  // CPU time: on one thread it is the GEMM's own, which a loaded machine's waits do not inflate.
  for (const GemmCase& g : kGemms) {
    const double scalar = rep.cpu_seconds[gemm_name(g, GemmPath::OrderFaithful)];
    const double simd = rep.cpu_seconds[gemm_name(g, GemmPath::OrderFaithfulSimd)];
    if (scalar <= 0 || simd <= 0) continue;
    if (!gemm_header) {
      fmt::print("\n{:<32} {:>18} {:>18} {:>8}\n", "order-faithful GEMM, 1 thread", "MacDatapath ns/MAC",
                 "FloatMac ns/MAC", "speedup");
      gemm_header = true;
    }
    const double macs = double(g.m * g.n * g.k);
    fmt::print("{:<32} {:>18.2f} {:>18.3f} {:>7.1f}x\n", g.name, scalar * 1e9 / macs, simd * 1e9 / macs, scalar / simd);
  }
  if (gemm_header) fmt::print("(CPU time; MacDatapath forced by masking the order-faithful-simd path off)\n");
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
