// `bitsim hw gemm`: random operands through the SystemC systolic array, every output checked bit
// for bit against arith, and the run's counters next to the closed-form model's.
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
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
#include "bitsim/sim/mapper.hpp"

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
  // hw conv
  std::string ifmap = "28x28x1", filter = "5x5x6", stride = "1", padding = "0", batch = "1";
  std::string a_format = "int<8>", w_format = "int<8>", acc_format = "int<32>";
  std::string rounding = "nearest-even", overflow;
  int sr_bits = 16;
  std::uint64_t seed = 1;
  std::string buffer_kib = "256", bandwidth = "0";
  std::string vcd;
  std::string mapper = "fixed";
  bool overlap = false, json = false;
};

// GEMM sizes and array dimensions: positive, and small enough that products of them fit 64 bits.
std::int64_t parse_size(const std::string& tok, std::string_view what) {
  return std::int64_t(parse_count(tok, what, std::uint64_t(1) << 31));
}

// "AxBxC": three positive integers; the error names the option, the token and the expected form.
std::array<std::int64_t, 3> parse_dims3(const std::string& tok, std::string_view what, std::string_view form) {
  std::array<std::int64_t, 3> v{};
  std::size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    const std::size_t x = i < 2 ? tok.find('x', at) : tok.size();
    std::uint64_t d = 0;
    const std::string part = x == std::string::npos ? "" : tok.substr(at, x - at);
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), d);
    if (x == std::string::npos || part.empty() || ec != std::errc{} || end != part.data() + part.size() || d < 1 ||
        d > (std::uint64_t(1) << 31))
      throw std::invalid_argument(fmt::format("bad {} {}: expected {} with positive integers", what, arith::quoted(tok), form));
    v[std::size_t(i)] = std::int64_t(d);
    at = x + 1;
  }
  return v;
}

sim::ArrayConfig make_config(const GemmArgs& g) {
  sim::ArrayConfig c;
  const sim::ArrayDims dims = sim::parse_array_dims(g.array, "--array");
  c.rows = dims.rows, c.cols = dims.cols;
  c.dataflow = sim::parse_dataflow(g.dataflow);
  c.overlap = g.overlap;
  c.a = Format::parse(g.a_format);
  c.w = Format::parse(g.w_format);
  c.acc = Format::parse(g.acc_format);
  c.acc_spec = make_round_spec(c.acc, g.rounding, g.overflow, g.sr_bits);
  c.seed = g.seed;
  c.buffer_a_bytes = c.buffer_w_bytes = c.buffer_o_bytes = parse_buffer_kib(g.buffer_kib, true);
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

// The mapping a run uses: the fixed one, or the mapper's best by cycles or DRAM bytes.
sim::Mapping choose_mapping(const GemmArgs& g, const sim::ArrayConfig& cfg, const sim::GemmShape& shape,
                            const sim::ConvShape* conv) {
  if (g.mapper == "fixed") return {};
  sim::Metric metric;
  if (g.mapper == "cycles") metric = sim::cycles_metric;
  else if (g.mapper == "dram") metric = sim::dram_bytes_metric;
  else throw std::invalid_argument(fmt::format("bad --mapper {}: expected fixed, cycles or dram", arith::quoted(g.mapper)));
  return conv ? sim::best_conv_mapping(cfg, cfg.bits(), *conv, metric).mapping : sim::best_mapping(cfg, cfg.bits(), shape, metric).mapping;
}

// Refused before anything is allocated or simulated (or mapped): operands that do not fit in
// memory. `args` names the options that set the size.
void check_memory(const sim::GemmShape& shape, const std::string& args) {
  nn::require_memory(16.0 * (double(shape.m) * double(shape.k) + double(shape.k) * double(shape.n)) +
                         40.0 * double(shape.m) * double(shape.n),
                     fmt::format("{}: the operands, outputs and reference", args));
}

// Refused before simulating: runs whose cycle count (the closed form knows it exactly) would take
// hours. `kind` is what is simulated ("GEMM", "convolution").
void check_cycles(const ArrayStats& model, const std::string& kind) {
  constexpr double kMaxSimulatedCycles = 2e9;
  if (double(model.cycles) > kMaxSimulatedCycles)
    throw std::invalid_argument(fmt::format("this {} takes {:.3g} cycles on the array ({:.3g} waiting for DRAM), more than "
                                            "the {:.0e} a simulation is allowed; raise --bandwidth or shrink the {}",
                                            kind, double(model.cycles), double(model.stall_cycles), kMaxSimulatedCycles, kind));
}

// Runs `simulate` on a harness for cfg and prints its counters beside the closed form's and how
// many outputs equal `want`; throws CheckFailed on any difference. `workload` is the JSON of what
// ran and `title` its one-line description.
void simulate_and_report(const GemmArgs& g, const sim::ArrayConfig& cfg, const sim::GemmShape& shape,
                         const sim::Mapping& mapping, const ArrayStats& model,
                         const sim::GemmResult& want, const nlohmann::json& workload, const std::string& title,
                         const std::function<sim::GemmResult(sim::ArrayHarness&, const std::function<void(double)>&)>& simulate) {
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
    got = simulate(h, [&](double f) { bar.update(f); });
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
  const bool cycles_agree = s.cycles == model.cycles && s.compute_cycles == model.compute_cycles && s.tiles == model.tiles &&
                            s.buf_a == model.buf_a && s.buf_w == model.buf_w && s.buf_o == model.buf_o && s.dram == model.dram;
  const double pe_cycles_per_s = seconds > 0 ? double(s.pes) * double(s.cycles) / seconds : 0;

  if (g.json) {
    nlohmann::json j = {
        {"array", {{"rows", cfg.rows}, {"cols", cfg.cols}, {"dataflow", std::string(sim::to_string(cfg.dataflow))},
                   {"overlap", cfg.overlap}}},
        {"gemm", {{"m", shape.m}, {"k", shape.k}, {"n", shape.n}}},
        {"mapping", mapping.to_string()},
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
    for (const auto& [key, value] : workload.items()) j[key] = value;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}x{} {}{} array, {}: {} x {} -> {} ({}, {})\n", cfg.rows, cfg.cols, sim::to_string(cfg.dataflow),
               cfg.overlap ? " overlapped" : "", title,
               cfg.a.spec(), cfg.w.spec(), cfg.acc.spec(), arith::to_string(cfg.acc_spec.rounding),
               arith::to_string(cfg.acc_spec.overflow));
    fmt::print("  mapping: {}\n", mapping.to_string());
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

void run_gemm(const GemmArgs& g) {
  const sim::ArrayConfig cfg = make_config(g);
  const sim::GemmShape shape{parse_size(g.m, "--m"), parse_size(g.k, "--k"), parse_size(g.n, "--n")};
  check_memory(shape, fmt::format("--m {} --k {} --n {}", shape.m, shape.k, shape.n));
  const sim::Mapping mapping = choose_mapping(g, cfg, shape, nullptr);
  const ArrayStats model = sim::array_model(cfg, shape, mapping);
  check_cycles(model, "GEMM");
  std::mt19937_64 rng(g.seed);
  sim::GemmOperands ops{shape, {}, {}};
  ops.a.resize(std::size_t(shape.m * shape.k));
  ops.w.resize(std::size_t(shape.k * shape.n));
  for (auto& x : ops.a) x = random_finite(cfg.a, rng);
  for (auto& x : ops.w) x = random_finite(cfg.w, rng);
  const sim::GemmResult want = sim::gemm_reference(cfg, ops);
  simulate_and_report(g, cfg, shape, mapping, model, want, nlohmann::json::object(),
                      fmt::format("GEMM M={} K={} N={}", shape.m, shape.k, shape.n),
                      [&](sim::ArrayHarness& h, const std::function<void(double)>& p) { return h.run(ops, mapping, p); });
}

// A convolution: random input and filters through the array (input rows from DRAM, im2col on
// chip), checked against arith's GEMM over the im2col matrix.
void run_conv(const GemmArgs& g) {
  const sim::ArrayConfig cfg = make_config(g);
  const auto in = parse_dims3(g.ifmap, "--ifmap", "HxWxC, e.g. 28x28x1");
  const auto f = parse_dims3(g.filter, "--filter", "RxSxN (kernel rows x columns x filters), e.g. 5x5x6");
  sim::ConvShape cv;
  cv.batch = parse_size(g.batch, "--batch");
  cv.height = in[0], cv.width = in[1], cv.in_channels = in[2];
  cv.kernel_h = f[0], cv.kernel_w = f[1], cv.out_channels = f[2];
  cv.stride = parse_size(g.stride, "--stride");
  cv.padding = g.padding == "0" ? 0 : parse_size(g.padding, "--padding");
  if (cv.kernel_h > cv.height + 2 * cv.padding || cv.kernel_w > cv.width + 2 * cv.padding)
    throw std::invalid_argument(fmt::format("bad --filter {}: the {}x{} kernel is larger than the padded {}x{} input",
                                            arith::quoted(g.filter), cv.kernel_h, cv.kernel_w, cv.height + 2 * cv.padding,
                                            cv.width + 2 * cv.padding));
  const double elements = double(cv.batch) * double(cv.in_channels) * double(cv.height) * double(cv.width);
  if (elements > double(std::int64_t(1) << 40))
    throw std::invalid_argument(fmt::format("bad --ifmap {}: {:.3g} input elements is too many", arith::quoted(g.ifmap), elements));
  const sim::GemmShape shape = cv.gemm();
  check_memory(shape, fmt::format("--ifmap {} --filter {} --batch {}", g.ifmap, g.filter, cv.batch));
  const sim::Mapping mapping = choose_mapping(g, cfg, shape, &cv);
  const ArrayStats model = sim::conv_model(cfg, cv, mapping);
  check_cycles(model, "convolution");
  std::mt19937_64 rng(g.seed);
  sim::ConvOperands ops{cv, {}, {}};
  ops.ifmap.resize(std::size_t(elements));
  ops.filter.resize(std::size_t(shape.k * shape.n));
  for (auto& x : ops.ifmap) x = random_finite(cfg.a, rng);
  for (auto& x : ops.filter) x = random_finite(cfg.w, rng);
  const sim::GemmResult want = sim::gemm_reference(cfg, sim::im2col(ops));
  const nlohmann::json workload = {
      {"conv", {{"batch", cv.batch}, {"height", cv.height}, {"width", cv.width}, {"in_channels", cv.in_channels},
                {"kernel_h", cv.kernel_h}, {"kernel_w", cv.kernel_w}, {"out_channels", cv.out_channels},
                {"stride", cv.stride}, {"padding", cv.padding}, {"out_height", cv.out_height()}, {"out_width", cv.out_width()}}}};
  simulate_and_report(g, cfg, shape, mapping, model, want, workload,
                      fmt::format("convolution {}x{}x{} (batch {}) * {}x{}x{} stride {} padding {} = GEMM M={} K={} N={}",
                                  cv.height, cv.width, cv.in_channels, cv.batch, cv.kernel_h, cv.kernel_w, cv.out_channels,
                                  cv.stride, cv.padding, shape.m, shape.k, shape.n),
                      [&](sim::ArrayHarness& h, const std::function<void(double)>& p) { return h.run(ops, mapping, p); });
}

}  // namespace

void add_hw_commands(CLI::App& app) {
  auto* hw = app.add_subcommand("hw", "SystemC hardware models: the systolic MAC array");
  hw->require_subcommand(1);
  // Options every array run takes: the array, the numerics, buffers and bandwidth, output.
  auto common = [](CLI::App* c, GemmArgs& g) {
    c->add_option("--array", g.array, "PE rows x columns, RxC")->capture_default_str();
    c->add_option("--dataflow", g.dataflow, "ws (weight-stationary), os (output-stationary) or is (input-stationary)")->capture_default_str();
    c->add_flag("--overlap", g.overlap, "Overlap each tile's drain with the next one's fill: double-buffered PE registers (docs/sim.md)");
    c->add_option("--a-format", g.a_format, "Activation format")->capture_default_str();
    c->add_option("--w-format", g.w_format, "Weight format")->capture_default_str();
    c->add_option("--acc-format", g.acc_format, "Accumulator format (and of C)")->capture_default_str();
    c->add_option("--rounding", g.rounding, "Rounding of every accumulator add")->capture_default_str();
    c->add_option("--overflow", g.overflow, "Accumulator overflow mode (default: saturate for fixed, ieee for float)");
    c->add_option("--sr-bits", g.sr_bits, "Random bits per stochastic rounding")->capture_default_str();
    c->add_option("--seed", g.seed, "Seed of the operands and of stochastic rounding")->capture_default_str();
    c->add_option("--buffer-kib", g.buffer_kib, "Size of each on-chip buffer (A, W, output) in KiB")->capture_default_str();
    c->add_option("--bandwidth", g.bandwidth, "DRAM bytes per cycle (0: unlimited)")->capture_default_str();
    c->add_option("--vcd", g.vcd, "Write a VCD waveform of the array's control and output signals");
    c->add_option("--mapper", g.mapper, "Mapping: fixed (today's loop order), or the mapper's best by cycles or dram bytes")
        ->capture_default_str();
    c->add_flag("--json", g.json, "Print JSON");
  };
  auto g = std::make_shared<GemmArgs>();
  auto* c = hw->add_subcommand("gemm", "Random operands through the SystemC array; counters, toggles and a bit-exact check");
  common(c, *g);
  c->add_option("--m", g->m, "Rows of A and C")->capture_default_str();
  c->add_option("--k", g->k, "Columns of A, rows of W (the reduction)")->capture_default_str();
  c->add_option("--n", g->n, "Columns of W and C")->capture_default_str();
  c->callback([g] { run_gemm(*g); });
  auto cg = std::make_shared<GemmArgs>();
  auto* cc = hw->add_subcommand(
      "conv", "A random convolution through the SystemC array (input rows from DRAM, im2col on chip); as hw gemm");
  common(cc, *cg);
  cc->add_option("--ifmap", cg->ifmap, "Input feature map HxWxC")->capture_default_str();
  cc->add_option("--filter", cg->filter, "Kernel rows x columns x filters, RxSxN")->capture_default_str();
  cc->add_option("--stride", cg->stride, "Stride")->capture_default_str();
  cc->add_option("--padding", cg->padding, "Zero rows and columns around the input")->capture_default_str();
  cc->add_option("--batch", cg->batch, "Images")->capture_default_str();
  cc->callback([cg] { run_conv(*cg); });
}

}  // namespace bitsim::app
