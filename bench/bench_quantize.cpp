// Quantizing a 16M-element fp32 array on one thread, against a plain copy of the same array
// measured in the same run; prints each format's throughput as a ratio of the copy's, for
// quantize_f32 (BM_Quantize: the CPU's best kernel level) and its AVX2 level (BM_QuantizeAvx2).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bitsim/arith/kernels.hpp"
#include "ratio_reporter.hpp"

using namespace bitsim::arith;

namespace {

constexpr std::size_t kElements = std::size_t{1} << 24;

const std::vector<float>& input() {
  static const std::vector<float> v = [] {
    std::vector<float> x(kElements);
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 2.0f);
    for (auto& e : x) e = d(rng);
    return x;
  }();
  return v;
}

void BM_Copy(benchmark::State& state) {
  const auto& in = input();
  std::vector<float> out(in.size());
  for (auto _ : state) {
    std::memcpy(out.data(), in.data(), in.size() * sizeof(float));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(in.size()));
}
BENCHMARK(BM_Copy)->Unit(benchmark::kMillisecond)->UseRealTime();

void quantize_loop(benchmark::State& state, const char* format, Rounding r, QuantizeKernel level) {
  if (!available(level)) {
    state.SkipWithError("this CPU lacks the kernel level");
    return;
  }
  const auto& in = input();
  std::vector<float> out(in.size());
  const Format f = Format::parse(format);
  const RoundSpec spec{r, default_overflow(f), 16};
  std::uint64_t first = 0;
  for (auto _ : state) {
    quantize_f32_with(level, f, spec, in, out, SrStream{1, 2}, first);
    first += in.size();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(in.size()));
}

// quantize_f32 as it runs (the best kernel level of this CPU), and the AVX2 level beside it.
void BM_Quantize(benchmark::State& state, const char* format, Rounding r) {
  quantize_loop(state, format, r, best_quantize_kernel());
}
void BM_QuantizeAvx2(benchmark::State& state, const char* format, Rounding r) {
  quantize_loop(state, format, r, QuantizeKernel::Avx2);
}

#define BITSIM_QUANTIZE_BENCH(name, fmt, mode)                                                           \
  BENCHMARK_CAPTURE(BM_Quantize, name, fmt, Rounding::mode)->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(BM_QuantizeAvx2, name, fmt, Rounding::mode)->Unit(benchmark::kMillisecond)->UseRealTime()
BITSIM_QUANTIZE_BENCH(fixed8_4_nearest, "fixed<8,4>", NearestEven);
BITSIM_QUANTIZE_BENCH(fixed16_8_nearest, "fixed<16,8>", NearestEven);
BITSIM_QUANTIZE_BENCH(fp16_nearest, "fp16", NearestEven);
BITSIM_QUANTIZE_BENCH(bf16_nearest, "bf16", NearestEven);
BITSIM_QUANTIZE_BENCH(fp8e4m3_nearest, "fp8e4m3", NearestEven);
BITSIM_QUANTIZE_BENCH(fp8e5m2_nearest, "fp8e5m2", NearestEven);
BITSIM_QUANTIZE_BENCH(fixed8_4_stochastic, "fixed<8,4>", Stochastic);
BITSIM_QUANTIZE_BENCH(fp8e4m3_stochastic, "fp8e4m3", Stochastic);
BITSIM_QUANTIZE_BENCH(fp8e5m2_stochastic, "fp8e5m2", Stochastic);
BITSIM_QUANTIZE_BENCH(fp16_stochastic, "fp16", Stochastic);
BITSIM_QUANTIZE_BENCH(bf16_stochastic, "bf16", Stochastic);

// Console output as usual, plus the throughput of every run kept for the ratio table.
using bitsim::bench::RatioReporter;

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double copy = 0;
  for (const auto& [name, ips] : reporter.items_per_second)
    if (name.rfind("BM_Copy", 0) == 0) copy = ips;
  if (copy <= 0) return 0;
  fmt::print("\n{:<44} {:>12} {:>10}\n", fmt::format("quantize 16M fp32 (one thread, {})", to_string(best_quantize_kernel())),
             "Melem/s", "vs copy");
  for (const auto& [name, ips] : reporter.items_per_second)
    fmt::print("{:<44} {:>12.1f} {:>9.0f}%\n", name, ips / 1e6, 100.0 * ips / copy);
  return 0;
}
