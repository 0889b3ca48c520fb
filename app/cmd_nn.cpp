// `bitsim train | infer`: the executor on an experiment file, with a progress bar, a summary table,
// and the run directory (report.json, metrics.csv, checkpoint.bin).
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <systemc>
#include <string>
#include <vector>

#include "bitsim/nn/gemm.hpp"
#include "bitsim/sim/gemm_run.hpp"
#include "bitsim/nn/trainer.hpp"
#include "bitsim/nn/verify.hpp"
#include "commands.hpp"
#include "progress.hpp"
#include "bitsim/sim/array_model.hpp"

namespace bitsim::app {
namespace {

struct TrainArgs {
  std::string experiment, out, checkpoint, outputs;
  std::vector<std::string> set;
  int threads = 0;
  bool resume = false, json = false, fold = false, cost_only = false;
  int steps = 2, samples = 8;
  // infer --integer-only
  bool integer_only = false, popcount = false;
  std::string calibration = "minmax", weights = "per-channel";
  int calibration_batches = 8;
};

// v in SI units with a prefix that puts it in [1, 1000): "20.1 J", "3.4 mJ", "1.2 G".
std::string si(double v, const char* unit) {
  static const char* const up[] = {"", "k", "M", "G", "T", "P", "E"};
  static const char* const down[] = {"", "m", "u", "n", "p", "f"};
  int i = 0;
  if (v == 0) return fmt::format("0 {}", unit);
  if (std::abs(v) >= 1) {
    while (std::abs(v) >= 1000 && i < 6) v /= 1000, ++i;
    return fmt::format("{:.3g} {}{}", v, up[i], unit);
  }
  while (std::abs(v) < 1 && i < 5) v *= 1000, ++i;
  return fmt::format("{:.3g} {}{}", v, down[i], unit);
}

// The cost table every run prints: per phase, per layer, the total, time at the clock, and area.
void print_cost(const costmodel::RunCost& c) {
  fmt::print("\nhardware cost ({} array at {} GHz, mappings by {}; {}):\n", c.array, c.clock_ghz, c.mapping, c.technology);
  fmt::print("  {:<16} {:>10} {:>10} {:>11} {:>10}\n", "phase", "MACs", "cycles", "DRAM bytes", "energy");
  auto row = [](const std::string& name, const costmodel::CostLine& l) {
    fmt::print("  {:<16} {:>10} {:>10} {:>11} {:>10}\n", name, si(l.macs, ""), si(l.cycles, ""), si(l.dram_bytes, "B"),
               si(l.energy_total_pj() * 1e-12, "J"));
  };
  for (const auto& [phase, line] : c.by_phase) row(std::string(costmodel::to_string(phase)), line);
  row("total", c.total);
  fmt::print("  {:<16} {:>10} {:>10} {:>11} {:>10}\n", "layer", "MACs", "cycles", "DRAM bytes", "energy");
  for (const auto& [id, line] : c.by_layer) row(id.name, line);
  fmt::print("  {:.3g} s at the array's clock", c.seconds_at_clock);
  if (c.area) fmt::print("; array area {:.4g} mm^2 of {} MAC units", c.area->array_um2 * 1e-6, c.area->mac_formats);
  fmt::print("\n");
}

void print_summary(const nn::RunResult& r) {
  fmt::print("\n{:>5} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8}\n", "epoch", "lr", "train loss", "train acc", "test loss",
             "test acc", "seconds");
  for (const auto& m : r.epochs)
    fmt::print("{:>5} {:>9.3g} {:>10.4f} {:>8.2f}% {:>10.4f} {:>8.2f}% {:>8.1f}\n", m.epoch, m.lr, m.train_loss,
               100 * m.train_accuracy, m.test_loss, 100 * m.test_accuracy, m.seconds);
  print_cost(r.cost);
}

void run_train(const TrainArgs& a) {
  nn::set_threads(a.threads);
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  Progress bar("training");
  nn::RunOptions opt{a.out, a.resume, [&](double f, const std::string& note) { bar.update(f, note); }, a.cost_only};
  const nn::RunResult r = nn::train(x, opt);
  bar.finish();
  if (a.json) {
    fmt::print("{}\n", r.report.dump(2));
    return;
  }
  if (a.cost_only) {
    fmt::print("{}: not trained; the run would cost", x.name);
    print_cost(r.cost);
    if (!a.out.empty()) fmt::print("\nrun directory: {} (report.json, plots)\n", a.out);
    return;
  }
  print_summary(r);
  if (!a.out.empty()) fmt::print("\nrun directory: {} (report.json, metrics.csv, checkpoint.bin, plots)\n", a.out);
}

void run_infer(const TrainArgs& a) {
  nn::set_threads(a.threads);
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  nn::InferOptions opt{a.checkpoint, a.out, a.fold, std::nullopt, a.popcount, a.outputs};
  if (a.integer_only) {
    nn::IntegerOptions io;
    io.set_calibration(a.calibration);
    io.batches = a.calibration_batches;
    io.per_channel = a.weights == "per-channel";
    opt.integer_only = io;
  }
  const nn::RunResult r = nn::infer(x, opt);
  if (a.json) {
    fmt::print("{}\n", r.report.dump(2));
    return;
  }
  const int folded = r.report["batchnorms_folded"].get<int>();
  fmt::print("{} test examples: accuracy {:.2f}%, loss {:.4f}{}\n", r.report["data"]["test_examples"].get<std::int64_t>(),
             100 * r.report["accuracy"]["test"].get<double>(), r.report["loss"]["test"].get<double>(),
             a.fold || a.integer_only ? fmt::format(" ({} BatchNorm layers folded into the weights)", folded) : "");
  if (a.integer_only) {
    const auto& io = r.report["integer_only"];
    fmt::print("  integer-only (uint8 activations, {}): accuracy {:.2f}%; the network under the experiment's numerics: "
               "{:.2f}%; same prediction on {:.2f}% of the examples\n",
               io["calibration"].get<std::string>(), 100 * r.report["accuracy"]["test"].get<double>(),
               100 * io["reference"]["accuracy"].get<double>(), 100 * io["agreement_with_reference"].get<double>());
  }
  if (a.popcount) {
    const auto& pc = r.report["popcount"];
    fmt::print("  popcount (XNOR-popcount, BatchNorm and sign folded into thresholds): accuracy {:.2f}%; the float-BatchNorm "
               "network: {:.2f}%; same prediction on {} of {} examples\n",
               100 * r.report["accuracy"]["test"].get<double>(), 100 * pc["float_batchnorm"]["accuracy"].get<double>(),
               pc["same_prediction"].get<std::int64_t>(), pc["examples"].get<std::int64_t>());
  }
  print_cost(r.cost);
  if (!a.out.empty()) fmt::print("\nrun directory: {} (report.json, plots)\n", a.out);
}

void run_verify(const TrainArgs& a) {
  nn::set_threads(a.threads);
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
  Progress bar("verifying");
  nn::VerifyOptions opt;
  opt.steps = a.steps;
  opt.samples = a.samples;
  opt.progress = [&](double f, const std::string& note) { bar.update(f, note); };
  nn::VerifyResult v = nn::verify(x, opt);
  // SystemC elaborates once per process: every harness exists before the first GEMM runs.
  std::vector<std::unique_ptr<sim::ArrayHarness>> harnesses;
  for (std::size_t i = 0; i < v.replays.size(); ++i)
    harnesses.push_back(v.replays[i].skipped.empty()
                            ? std::make_unique<sim::ArrayHarness>(fmt::format("sample{}", i), v.replays[i].config)
                            : nullptr);
  nlohmann::json sims = nlohmann::json::array();
  bool all_matched = true;
  for (std::size_t i = 0; i < v.replays.size(); ++i) {
    nn::ReplayCase& rc = v.replays[i];
    nlohmann::json j = rc.description;
    if (!harnesses[i]) {
      j["skipped"] = rc.skipped;
      sims.push_back(j);
      continue;
    }
    const sim::GemmResult got = harnesses[i]->run(std::move(rc.operands));
    const std::int64_t matched = nn::count_matches(rc, got.c);
    all_matched = all_matched && matched == std::int64_t(rc.want.size());
    j["outputs"] = rc.want.size();
    j["matched"] = matched;
    j["cycles"] = got.stats.cycles;
    j["accumulator"] = rc.acc.spec();
    sims.push_back(j);
  }
  nlohmann::json r = v.report;
  r["systemc"] = sims;
  r["all_sampled_gemms_match"] = all_matched;
  bar.finish();
  if (a.json) {
    fmt::print("{}\n", r.dump(2));
  } else {
    fmt::print("{}: {} steps of batch {} against the fp32 twin (same initial weights, same batches)\n",
               x.name, r["steps"].get<int>(), r["batch"].get<std::int64_t>());
    fmt::print("  {:>5} {:<16} {:>10} {:>14} {:>12}\n", "layer", "phase", "SQNR dB", "max |error|", "max ULPs");
    for (const auto& l : r["deviation_from_fp32"]) {
      const auto& q = l["sqnr_db"];
      fmt::print("  {:>5} {:<16} {:>10} {:>14.4g} {:>12.4g}\n", l["layer"].get<int>(), l["phase"].get<std::string>(),
                 q.is_string() ? q.get<std::string>() : fmt::format("{:.2f}", q.get<double>()),
                 l["max_abs_error"].get<double>(), l["max_ulp"].get<double>());
    }
    fmt::print("\nsampled GEMMs through the SystemC array ({}x{} {}):\n", x.hardware.array.rows, x.hardware.array.cols,
               sim::to_string(x.hardware.array.dataflow));
    for (const auto& s : r["systemc"]) {
      const std::int64_t groups = s.value("groups", std::int64_t{1});
      const std::string what = fmt::format("layer {} {}{} ({} rows x {} cols, K = {})", s["layer"].get<int>(),
                                           s["phase"].get<std::string>(),
                                           groups > 1 ? fmt::format(" group {}/{}", s["group"].get<std::int64_t>() + 1, groups) : "",
                                           s["rows"].get<std::int64_t>(), s["n"].get<std::int64_t>(), s["k"].get<std::int64_t>());
      if (s.contains("skipped")) fmt::print("  {:<52} skipped: {}\n", what, s["skipped"].get<std::string>());
      else fmt::print("  {:<52} {} of {} outputs match ({} cycles)\n", what, s["matched"].get<std::int64_t>(),
                      s["outputs"].get<std::int64_t>(), s["cycles"].get<std::int64_t>());
    }
    print_cost(v.cost);
  }
  if (!r["all_sampled_gemms_match"].get<bool>())
    throw CheckFailed("a sampled GEMM differs from the SystemC array");
}

}  // namespace

void add_nn_commands(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* t = app.add_subcommand("train", "Train a network as the configured hardware computes it; report accuracy and cost");
  t->add_option("experiment", a->experiment, "Experiment file (TOML)")->required();
  t->add_option("--out", a->out, "Run directory for report.json, metrics.csv and checkpoints");
  t->add_option("--set", a->set, "Override a key of the experiment: key.path=value (repeatable)");
  t->add_option("--threads", a->threads, "Threads (0: all cores; results do not depend on it)")->capture_default_str();
  t->add_flag("--resume", a->resume, "Continue the run in --out from its last checkpoint");
  t->add_flag("--json", a->json, "Print report.json instead of the summary");
  auto* resume = t->get_option("--resume");
  t->add_flag("--cost-only", a->cost_only, "Check everything and print what the run would cost, without training")
      ->excludes(resume);
  t->callback([a] { run_train(*a); });

  auto b = std::make_shared<TrainArgs>();
  auto* i = app.add_subcommand("infer", "Test accuracy of a checkpoint through the experiment's numerics");
  i->add_option("experiment", b->experiment, "Experiment file (TOML)")->required();
  i->add_option("--checkpoint", b->checkpoint, "checkpoint.bin of a run (optional when the experiment's model.onnx gives the weights)");
  i->add_option("--outputs", b->outputs, "Write every test example's logits and prediction to this CSV");
  i->add_option("--set", b->set, "Override a key of the experiment: key.path=value (repeatable)");
  i->add_option("--threads", b->threads, "Threads (0: all cores)")->capture_default_str();
  i->add_option("--out", b->out, "Directory for report.json and the cost plots");
  i->add_flag("--fold-batchnorm", b->fold, "Fold each BatchNorm that follows a GEMM layer into its weights and bias");
  auto* integer = i->add_flag("--integer-only", b->integer_only,
                              "Quantize the fp32 weights (Jacob et al. 2018) and run every layer in integers: uint8 "
                              "activations, int8 weights, int32 accumulators, fixed-point requantizers");
  i->add_flag("--popcount", b->popcount,
              "Run binarized layers as FINN does: XNOR-popcount, BatchNorm and sign folded into per-neuron thresholds")
      ->excludes(integer)
      ->excludes(i->get_option("--fold-batchnorm"));
  i->add_option("--calibration", b->calibration, "Activation ranges: minmax, ema (tracked in training), percentile or percentile:P")
      ->capture_default_str()
      ->needs(integer)
      ->check([](const std::string& v) {
        try {
          nn::IntegerOptions().set_calibration(v);
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
        return std::string();
      });
  i->add_option("--calibration-batches", b->calibration_batches, "Training batches of 256 the ranges are measured on")
      ->capture_default_str()
      ->needs(integer)
      ->check(CLI::Range(1, 1000));
  i->add_option("--weights", b->weights, "Weight quantization: per-channel (int8 symmetric) or per-tensor (uint8)")
      ->capture_default_str()
      ->needs(integer)
      ->check(CLI::IsMember({"per-channel", "per-tensor"}));
  i->add_flag("--json", b->json, "Print JSON");
  i->callback([b] { run_infer(*b); });

  auto v = std::make_shared<TrainArgs>();
  auto* ve = app.add_subcommand("verify", "Deviation from an fp32 twin per layer and phase; sampled GEMMs through the SystemC array");
  ve->add_option("experiment", v->experiment, "Experiment file (TOML)")->required();
  ve->add_option("--steps", v->steps, "Training steps in lockstep")->capture_default_str()->check(CLI::PositiveNumber);
  ve->add_option("--samples", v->samples, "GEMMs of the first step replayed through the SystemC array")->capture_default_str()->check(CLI::NonNegativeNumber);
  ve->add_option("--set", v->set, "Override a key of the experiment: key.path=value (repeatable)");
  ve->add_option("--threads", v->threads, "Threads (0: all cores)")->capture_default_str();
  ve->add_flag("--json", v->json, "Print JSON");
  ve->callback([v] { run_verify(*v); });
}

}  // namespace bitsim::app
