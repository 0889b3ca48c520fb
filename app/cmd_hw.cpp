// `bitsim hw gemm`: random operands through the SystemC systolic array, every output checked bit
// for bit against arith, and the run's counters next to the closed-form model's.
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "bitsim/arith/quantize.hpp"
#include "cli_util.hpp"
#include "bitsim/nn/memory.hpp"
#include "commands.hpp"
#include "progress.hpp"
#include "bitsim/sim/array_model.hpp"
#include "bitsim/sim/gemm_run.hpp"

// libsystemc.so carries a main() that calls sc_main(); bitsim's own main() wins the link, but the
// library's reference to sc_main must resolve.
int sc_main(int, char*[]) { return 0; }

namespace bitsim::app {
namespace {

using arith::Format;
using sim::ArrayStats;

struct GemmArgs {
  std::string array = "16x16", dataflow = "ws";
  std::string m = "64", k = "64", n = "64";
  std::string a_format = "int<8>", w_format = "int<8>", acc_format = "int<32>";
  std::string rounding = "nearest-even", overflow;
  int sr_bits = 16;
  std::uint64_t seed = 1;
  std::string buffer_kib = "256", bandwidth = "0";
  std::string vcd;
  bool json = false;
};

// GEMM sizes and array dimensions: positive, and small enough that products of them fit 64 bits.
std::int64_t parse_size(const std::string& tok, std::string_view what) {
  return std::int64_t(parse_count(tok, what, std::uint64_t(1) << 31));
}

sim::ArrayConfig make_config(const GemmArgs& g) {
  sim::ArrayConfig c;
  const sim::ArrayDims dims = sim::parse_array_dims(g.array, "--array");
  c.rows = dims.rows, c.cols = dims.cols;
  c.dataflow = sim::parse_dataflow(g.dataflow);
  c.a = Format::parse(g.a_format);
  c.w = Format::parse(g.w_format);
  c.acc = Format::parse(g.acc_format);
  c.acc_spec = make_round_spec(c.acc, g.rounding, g.overflow, g.sr_bits);
  c.seed = g.seed;
  const double kib = parse_number(g.buffer_kib, "--buffer-kib", "KiB", true);
  if (kib * 1024 > double(sim::ArrayConfig::kMaxBufferBytes))
    throw std::invalid_argument(fmt::format("bad --buffer-kib {}: at most {} KiB (1 TiB)", arith::quoted(g.buffer_kib),
                                            sim::ArrayConfig::kMaxBufferBytes / 1024));
  c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = std::int64_t(kib * 1024);
  c.dram_bytes_per_cycle = parse_number(g.bandwidth, "--bandwidth", "bytes per cycle", true);
  if (c.dram_bytes_per_cycle > 0 && c.dram_bytes_per_cycle < sim::ArrayConfig::kMinDramBytesPerCycle)
    throw std::invalid_argument(fmt::format("bad --bandwidth {}: expected 0 (unlimited) or at least {} bytes per cycle",
                                            arith::quoted(g.bandwidth), sim::ArrayConfig::kMinDramBytesPerCycle));
  c.validate();
  return c;
}

// A uniformly random code of f that denotes a finite number (nan and inf would swamp every sum).
arith::u128 random_finite(const Format& f, std::mt19937_64& rng) {
  for (;;) {
    const arith::u128 code = ((arith::u128(rng()) << 64) | rng()) & f.code_mask();
    const arith::Exact x = arith::decode(f, code);
    if (!x.is_nan() && !x.is_inf()) return code;
  }
}

nlohmann::json stats_json(const ArrayStats& s, bool with_toggles) {
  nlohmann::json j = {
      {"cycles", s.cycles}, {"compute_cycles", s.compute_cycles}, {"stall_cycles", s.stall_cycles},
      {"tiles", s.tiles}, {"macs", s.macs}, {"utilization", s.utilization()},
      {"buffers", {{"a", {{"reads", s.buf_a.reads}, {"writes", s.buf_a.writes}}},
                   {"w", {{"reads", s.buf_w.reads}, {"writes", s.buf_w.writes}}},
                   {"o", {{"reads", s.buf_o.reads}, {"writes", s.buf_o.writes}}}}},
      {"dram_bytes", {{"read_a", s.dram.read_a}, {"read_w", s.dram.read_w}, {"read_psum", s.dram.read_psum},
                      {"write_c", s.dram.write_c}, {"total", s.dram.total()}}}};
  if (with_toggles)
    j["toggles"] = {{"mul_a", s.toggles.mul_a}, {"mul_w", s.toggles.mul_w}, {"product", s.toggles.product},
                    {"acc", s.toggles.acc}, {"per_cycle", s.cycles ? double(s.toggles.total()) / double(s.cycles) : 0.0}};
  return j;
}

void run_gemm(const GemmArgs& g) {
  const sim::ArrayConfig cfg = make_config(g);
  const sim::GemmShape shape{parse_size(g.m, "--m"), parse_size(g.k, "--k"), parse_size(g.n, "--n")};
  const ArrayStats model = sim::array_model(cfg, shape);
  // Refused before anything is allocated or simulated: operands that do not fit in memory, and
  // runs whose cycle count (the closed form knows it exactly) would take hours to simulate.
  nn::require_memory(16.0 * (double(shape.m) * double(shape.k) + double(shape.k) * double(shape.n)) +
                         40.0 * double(shape.m) * double(shape.n),
                     fmt::format("--m {} --k {} --n {}: the operands, outputs and reference", shape.m, shape.k, shape.n));
  constexpr double kMaxSimulatedCycles = 2e9;
  if (double(model.cycles) > kMaxSimulatedCycles)
    throw std::invalid_argument(fmt::format("this GEMM takes {:.3g} cycles on the array ({:.3g} waiting for DRAM), more than "
                                            "the {:.0e} a simulation is allowed; raise --bandwidth or shrink the GEMM",
                                            double(model.cycles), double(model.stall_cycles), kMaxSimulatedCycles));

  std::mt19937_64 rng(g.seed);
  sim::GemmOperands ops{shape, {}, {}};
  ops.a.resize(std::size_t(shape.m * shape.k));
  ops.w.resize(std::size_t(shape.k * shape.n));
  for (auto& x : ops.a) x = random_finite(cfg.a, rng);
  for (auto& x : ops.w) x = random_finite(cfg.w, rng);
  const sim::GemmResult want = sim::gemm_reference(cfg, ops);

  // The trace goes to a temporary name (SystemC appends ".vcd") and is renamed once complete.
  namespace fs = std::filesystem;
  const std::string vcd_tmp = g.vcd.empty() ? "" : g.vcd + ".partial";
  if (!g.vcd.empty()) {
    // SystemC does not report a trace file it cannot create (it crashes later): check first.
    std::FILE* f = std::fopen((vcd_tmp + ".vcd").c_str(), "w");
    if (!f) throw std::runtime_error(fmt::format("cannot write --vcd {}: {}", arith::quoted(g.vcd), std::strerror(errno)));
    std::fclose(f);
  }
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
  sim::GemmResult got;
  double seconds = 0;
  {
    sim::ArrayHarness h("array", cfg, vcd_tmp);
    Progress bar("simulating");
    const auto t0 = std::chrono::steady_clock::now();
    got = h.run(ops, [&](double f) { bar.update(f); });
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!g.vcd.empty()) fs::rename(vcd_tmp + ".vcd", g.vcd);

  std::int64_t matched = 0, first_bad = -1;
  for (std::size_t i = 0; i < want.c.size(); ++i) {
    const bool ok = got.c[i] == want.c[i] && got.status[i] == want.status[i];
    matched += ok;
    if (!ok && first_bad < 0) first_bad = std::int64_t(i);
  }
  const std::int64_t outputs = std::int64_t(want.c.size());
  const ArrayStats& s = got.stats;
  const bool cycles_agree = s.cycles == model.cycles && s.buf_a == model.buf_a && s.buf_w == model.buf_w &&
                            s.buf_o == model.buf_o && s.dram == model.dram;
  const double pe_cycles_per_s = seconds > 0 ? double(s.pes) * double(s.cycles) / seconds : 0;

  if (g.json) {
    nlohmann::json j = {
        {"array", {{"rows", cfg.rows}, {"cols", cfg.cols}, {"dataflow", std::string(sim::to_string(cfg.dataflow))}}},
        {"gemm", {{"m", shape.m}, {"k", shape.k}, {"n", shape.n}}},
        {"formats", {{"a", cfg.a.spec()}, {"w", cfg.w.spec()}, {"acc", cfg.acc.spec()},
                     {"rounding", std::string(arith::to_string(cfg.acc_spec.rounding))},
                     {"overflow", std::string(arith::to_string(cfg.acc_spec.overflow))}}},
        {"seed", g.seed},
        {"buffer_bytes", cfg.buffer_a_bytes},
        {"dram_bytes_per_cycle", cfg.dram_bytes_per_cycle},
        {"simulated", stats_json(s, true)},
        {"closed_form", stats_json(model, false)},
        {"closed_form_agrees", cycles_agree},
        {"outputs", outputs},
        {"outputs_matching_arith", matched},
        {"sim_seconds", seconds},
        {"pe_cycles_per_second", pe_cycles_per_s}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}x{} {} array, GEMM M={} K={} N={}: {} x {} -> {} ({}, {})\n", cfg.rows, cfg.cols,
               sim::to_string(cfg.dataflow), shape.m, shape.k, shape.n, cfg.a.spec(), cfg.w.spec(), cfg.acc.spec(),
               arith::to_string(cfg.acc_spec.rounding), arith::to_string(cfg.acc_spec.overflow));
    fmt::print("  {:<24} {:>14} {:>14}\n", "", "simulated", "closed form");
    auto row = [](const char* name, std::int64_t a, std::int64_t b) { fmt::print("  {:<24} {:>14} {:>14}\n", name, a, b); };
    row("cycles", s.cycles, model.cycles);
    row("  computing", s.compute_cycles, model.compute_cycles);
    row("  waiting for DRAM", s.stall_cycles, model.stall_cycles);
    row("tiles", s.tiles, model.tiles);
    fmt::print("  {:<24} {:>13.1f}% {:>13.1f}%\n", "PE utilization", 100 * s.utilization(), 100 * model.utilization());
    row("buffer A reads", s.buf_a.reads, model.buf_a.reads);
    row("buffer A writes", s.buf_a.writes, model.buf_a.writes);
    row("buffer W reads", s.buf_w.reads, model.buf_w.reads);
    row("buffer W writes", s.buf_w.writes, model.buf_w.writes);
    row("buffer O reads", s.buf_o.reads, model.buf_o.reads);
    row("buffer O writes", s.buf_o.writes, model.buf_o.writes);
    row("DRAM bytes read A", s.dram.read_a, model.dram.read_a);
    row("DRAM bytes read W", s.dram.read_w, model.dram.read_w);
    row("DRAM bytes read psum", s.dram.read_psum, model.dram.read_psum);
    row("DRAM bytes written C", s.dram.write_c, model.dram.write_c);
    fmt::print("  toggles: multiplier in A {}, in W {}, out {}, accumulators {} ({:.1f} per cycle)\n", s.toggles.mul_a,
               s.toggles.mul_w, s.toggles.product, s.toggles.acc,
               s.cycles ? double(s.toggles.total()) / double(s.cycles) : 0.0);
    fmt::print("  outputs matching arith bit for bit: {} of {}{}\n", matched, outputs,
               matched == outputs ? "" : fmt::format(" (first mismatch at output {})", first_bad));
    fmt::print("  simulation: {:.3f} s, {:.1f} M PE-cycles/s\n", seconds, pe_cycles_per_s / 1e6);
  }
  if (matched != outputs)
    throw CheckFailed(fmt::format("{} of {} outputs differ from arith", outputs - matched, outputs));
  if (!cycles_agree) throw CheckFailed("the simulated counters differ from the closed-form model");
}

}  // namespace

void add_hw_commands(CLI::App& app) {
  auto* hw = app.add_subcommand("hw", "SystemC hardware models: the systolic MAC array");
  hw->require_subcommand(1);
  auto g = std::make_shared<GemmArgs>();
  auto* c = hw->add_subcommand("gemm", "Random operands through the SystemC array; counters, toggles and a bit-exact check");
  c->add_option("--array", g->array, "PE rows x columns, RxC")->capture_default_str();
  c->add_option("--dataflow", g->dataflow, "ws (weight-stationary) or os (output-stationary)")->capture_default_str();
  c->add_option("--m", g->m, "Rows of A and C")->capture_default_str();
  c->add_option("--k", g->k, "Columns of A, rows of W (the reduction)")->capture_default_str();
  c->add_option("--n", g->n, "Columns of W and C")->capture_default_str();
  c->add_option("--a-format", g->a_format, "Activation format")->capture_default_str();
  c->add_option("--w-format", g->w_format, "Weight format")->capture_default_str();
  c->add_option("--acc-format", g->acc_format, "Accumulator format (and of C)")->capture_default_str();
  c->add_option("--rounding", g->rounding, "Rounding of every accumulator add")->capture_default_str();
  c->add_option("--overflow", g->overflow, "Accumulator overflow mode (default: saturate for fixed, ieee for float)");
  c->add_option("--sr-bits", g->sr_bits, "Random bits per stochastic rounding")->capture_default_str();
  c->add_option("--seed", g->seed, "Seed of the operands and of stochastic rounding")->capture_default_str();
  c->add_option("--buffer-kib", g->buffer_kib, "Size of each on-chip buffer (A, W, output) in KiB")->capture_default_str();
  c->add_option("--bandwidth", g->bandwidth, "DRAM bytes per cycle (0: unlimited)")->capture_default_str();
  c->add_option("--vcd", g->vcd, "Write a VCD waveform of the array's control and output signals");
  c->add_flag("--json", g->json, "Print JSON");
  c->callback([g] { run_gemm(*g); });
}

}  // namespace bitsim::app
