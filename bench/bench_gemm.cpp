// The int8 GEMM (each kernel this CPU runs) against OpenBLAS SGEMM on the same square shapes,
// measured in the same run on one thread; prints each kernel's throughput as a ratio of SGEMM's.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <fmt/format.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "bitsim/arith/gemm_int8.hpp"
#include "ratio_reporter.hpp"

extern "C" void openblas_set_num_threads(int);

using namespace bitsim::arith;

namespace {

constexpr std::int64_t kSizes[] = {256, 512, 1024};

// Codes of dfx<8>-like operands: signed bytes, and the same values as floats for SGEMM.
struct Operands {
  std::vector<std::uint8_t> a, b;
  std::vector<float> af, bf;
};

const Operands& operands(std::int64_t s) {
  static std::map<std::int64_t, Operands> cache;
  Operands& o = cache[s];
  if (o.a.empty()) {
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> d(-128, 127);
    for (auto* v : {&o.a, &o.b}) {
      v->resize(std::size_t(s * s));
      for (auto& x : *v) x = std::uint8_t(d(rng));
    }
    for (const auto& [codes, floats] : {std::pair{&o.a, &o.af}, std::pair{&o.b, &o.bf}})
      for (std::uint8_t x : *codes) floats->push_back(float(std::int8_t(x)));
  }
  return o;
}

void set_ops(benchmark::State& state, std::int64_t s) {
  state.SetItemsProcessed(std::int64_t(state.iterations()) * 2 * s * s * s);  // multiplies and adds
}

void BM_Sgemm(benchmark::State& state) {
  const std::int64_t s = state.range(0);
  const Operands& o = operands(s);
  std::vector<float> c(std::size_t(s * s));
  openblas_set_num_threads(1);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(s), int(s), int(s), 1.0f, o.af.data(), int(s),
                o.bf.data(), int(s), 0.0f, c.data(), int(s));
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_ops(state, s);
}

// One whole call, B's packing included (SGEMM packs its operands too).
void BM_Int8(benchmark::State& state, Int8Kernel kernel) {
  const std::int64_t s = state.range(0);
  const Operands& o = operands(s);
  std::vector<std::int32_t> c(std::size_t(s * s));
  for (auto _ : state) {
    gemm_int8(kernel, {o.a.data(), s, true, false}, {o.b.data(), s, true, false}, s, s, s, c.data(), s);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_ops(state, s);
}

using bitsim::bench::RatioReporter;

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::string> kernels;
  for (Int8Kernel k : {Int8Kernel::Scalar, Int8Kernel::Avx2, Int8Kernel::Avx512Vnni})
    if (available(k)) {
      kernels.emplace_back(to_string(k));
      auto* b = benchmark::RegisterBenchmark(fmt::format("BM_Int8/{}", to_string(k)).c_str(), BM_Int8, k);
      for (std::int64_t s : kSizes) b->Arg(s)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  auto* sgemm = benchmark::RegisterBenchmark("BM_Sgemm", BM_Sgemm);
  for (std::int64_t s : kSizes) sgemm->Arg(s)->Unit(benchmark::kMillisecond)->UseRealTime();
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  fmt::print("\n{:<36} {:>10} {:>10}\n", "square GEMM, one thread", "Gop/s", "vs SGEMM");
  for (std::int64_t s : kSizes) {
    const double sgemm_ops = rep.items_per_second[fmt::format("BM_Sgemm/{}/real_time", s)];
    if (sgemm_ops <= 0) continue;
    fmt::print("{:<36} {:>10.1f} {:>9.2f}x\n", fmt::format("{}: OpenBLAS SGEMM", s), sgemm_ops / 1e9, 1.0);
    for (const std::string& k : kernels) {
      const double ops = rep.items_per_second[fmt::format("BM_Int8/{}/{}/real_time", k, s)];
      if (ops > 0) fmt::print("{:<36} {:>10.1f} {:>9.2f}x\n", fmt::format("{}: int8 {}", s, k), ops / 1e9, ops / sgemm_ops);
    }
  }
  return 0;
}
