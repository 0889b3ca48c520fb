// SystemC systolic-array simulation speed: a 16x16 array on a 256x256x256 GEMM, in PE-cycles per
// second, beside two baselines measured in the same run: arith's reference GEMM (one
// arith::Accumulator per output, the functional model the array is checked against) and the
// closed-form cycle model for the same shape.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <random>
#include <string>

#include "bitsim/sim/array_model.hpp"
#include "bitsim/sim/gemm_run.hpp"

int sc_main(int, char*[]) { return 0; }

namespace {

using namespace bitsim;
using namespace bitsim::sim;

struct Case {
  const char* name;
  Dataflow dataflow;
  const char *a, *w, *acc;
  std::int64_t size;
};
const Case kCases[] = {
    {"int8_int32_ws", Dataflow::WeightStationary, "int<8>", "int<8>", "int<32>", 256},
    {"int8_int32_os", Dataflow::OutputStationary, "int<8>", "int<8>", "int<32>", 256},
    {"bf16_fp32_ws", Dataflow::WeightStationary, "bf16", "bf16", "fp32", 128},
};

ArrayConfig config(const Case& c) {
  ArrayConfig cfg;
  cfg.dataflow = c.dataflow;
  cfg.a = arith::Format::parse(c.a);
  cfg.w = arith::Format::parse(c.w);
  cfg.acc = arith::Format::parse(c.acc);
  cfg.acc_spec = {arith::Rounding::NearestEven, arith::default_overflow(cfg.acc)};
  return cfg;
}

GemmOperands operands(const ArrayConfig& cfg, std::int64_t size) {
  std::mt19937_64 rng(1);
  GemmOperands ops{{size, size, size}, {}, {}};
  // Random finite codes: small integers for the fixed formats, values near 1 for floats.
  auto code = [&](const arith::Format& f) -> arith::u128 {
    if (!f.is_float()) return rng() & f.code_mask();
    return (arith::u128(f.bias() - 1 + (rng() & 1)) << f.man_bits | (rng() & ((1u << f.man_bits) - 1))) |
           (rng() & 1 ? arith::u128(1) << (f.width() - 1) : 0);
  };
  for (std::int64_t i = 0; i < size * size; ++i) ops.a.push_back(code(cfg.a)), ops.w.push_back(code(cfg.w));
  return ops;
}

std::map<std::string, std::unique_ptr<ArrayHarness>> g_harness;  // elaborated before the first run

void BM_Sim(benchmark::State& state, const Case& c) {
  ArrayHarness& h = *g_harness.at(c.name);
  const GemmOperands ops = operands(h.array().config(), c.size);
  double pe_cycles = 0;
  for (auto _ : state) {
    const GemmResult r = h.run(ops);
    pe_cycles += double(r.stats.pes) * double(r.stats.cycles);
  }
  state.counters["pe_cycles_per_s"] = benchmark::Counter(pe_cycles, benchmark::Counter::kIsRate);
}

void BM_ArithReference(benchmark::State& state, const Case& c) {
  const ArrayConfig cfg = config(c);
  const GemmOperands ops = operands(cfg, c.size);
  for (auto _ : state) benchmark::DoNotOptimize(gemm_reference(cfg, ops));
}

void BM_ClosedForm(benchmark::State& state, const Case& c) {
  const ArrayConfig cfg = config(c);
  for (auto _ : state) benchmark::DoNotOptimize(array_model(cfg, {c.size, c.size, c.size}));
}

// Console output as usual; keeps each run's real time and counters for the summary.
class Reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds, pe_rate;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      seconds[run.benchmark_name()] = run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
      const auto it = run.counters.find("pe_cycles_per_s");
      if (it != run.counters.end()) pe_rate[run.benchmark_name()] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  benchmark::Initialize(&argc, argv);
  for (const Case& c : kCases) {
    g_harness[c.name] = std::make_unique<ArrayHarness>(c.name, config(c));
    benchmark::RegisterBenchmark(fmt::format("BM_Sim/{}", c.name).c_str(), BM_Sim, c)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(fmt::format("BM_ArithReference/{}", c.name).c_str(), BM_ArithReference, c)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(fmt::format("BM_ClosedForm/{}", c.name).c_str(), BM_ClosedForm, c)
        ->Unit(benchmark::kMicrosecond);
  }
  Reporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  fmt::print("\n{:<16} {:>6} {:>16} {:>14} {:>16} {:>14}\n", "16x16 array", "M=K=N", "M PE-cycles/s",
             "sim / arith", "closed form", "sim / closed");
  for (const Case& c : kCases) {
    const std::string n = c.name;
    const auto sim = rep.seconds.find("BM_Sim/" + n), ref = rep.seconds.find("BM_ArithReference/" + n),
               cf = rep.seconds.find("BM_ClosedForm/" + n);
    if (sim == rep.seconds.end() || ref == rep.seconds.end() || cf == rep.seconds.end()) continue;
    fmt::print("{:<16} {:>6} {:>16.1f} {:>14.2f} {:>13.1f} us {:>14.0f}\n", n, c.size, rep.pe_rate["BM_Sim/" + n] / 1e6,
               sim->second / ref->second, cf->second * 1e6, sim->second / cf->second);
  }
  return 0;
}
