// `bitsim train | infer`: the executor on an experiment file, with a progress bar, a summary table,
// and the run directory (report.json, metrics.csv, checkpoint.bin).
#include <fmt/format.h>

#include <filesystem>
#include <string>
#include <vector>

#include "bitsim/nn/gemm.hpp"
#include "bitsim/nn/trainer.hpp"
#include "commands.hpp"
#include "progress.hpp"

namespace bitsim::app {
namespace {

struct TrainArgs {
  std::string experiment, out, checkpoint;
  std::vector<std::string> set;
  int threads = 0;
  bool resume = false, json = false;
};

std::string si(double v, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int i = 0;
  while (std::abs(v) >= 1000 && i < 6) v /= 1000, ++i;
  return fmt::format("{:.3g} {}{}", v, prefixes[i], unit);
}

void print_summary(const nn::RunResult& r) {
  const auto& rep = r.report;
  fmt::print("\n{:>5} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8}\n", "epoch", "lr", "train loss", "train acc", "test loss",
             "test acc", "seconds");
  for (const auto& m : r.epochs)
    fmt::print("{:>5} {:>9.3g} {:>10.4f} {:>8.2f}% {:>10.4f} {:>8.2f}% {:>8.1f}\n", m.epoch, m.lr, m.train_loss,
               100 * m.train_accuracy, m.test_loss, 100 * m.test_accuracy, m.seconds);
  const auto& cost = rep["cost"];
  fmt::print("\nhardware cost ({}):\n", cost["technology"].get<std::string>());
  fmt::print("  {:<16} {:>12} {:>14} {:>12}\n", "phase", "MACs", "cycles", "energy");
  for (const auto& [phase, t] : cost["by_phase"].items())
    fmt::print("  {:<16} {:>12} {:>14} {:>12}\n", phase, si(t["macs"].get<double>(), ""), si(t["cycles"].get<double>(), ""),
               si(t["energy_pj"]["total"].get<double>() * 1e-12, "J"));
  const auto& tot = cost["total"];
  fmt::print("  {:<16} {:>12} {:>14} {:>12}   ({:.3g} s at the array's clock)\n", "total", si(tot["macs"].get<double>(), ""),
             si(tot["cycles"].get<double>(), ""), si(tot["energy_pj"]["total"].get<double>() * 1e-12, "J"),
             cost["seconds_at_clock"].get<double>());
  if (!cost["area"].is_null())
    fmt::print("  array area {} ({} MAC units of {})\n", si(cost["area"]["array_um2"].get<double>() * 1e-12, "m^2"),
               rep["experiment"]["hardware"]["array"].get<std::string>(), cost["area"]["mac_formats"].get<std::string>());
}

void run_train(const TrainArgs& a) {
  nn::set_threads(a.threads);
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  Progress bar("training");
  nn::RunOptions opt{a.out, a.resume, [&](double f, const std::string& note) { bar.update(f, note); }};
  const nn::RunResult r = nn::train(x, opt);
  bar.finish();
  if (a.json) {
    fmt::print("{}\n", r.report.dump(2));
    return;
  }
  print_summary(r);
  if (!a.out.empty()) fmt::print("\nrun directory: {} (report.json, metrics.csv, checkpoint.bin)\n", a.out);
}

void run_infer(const TrainArgs& a) {
  nn::set_threads(a.threads);
  const nn::Experiment x = nn::Experiment::load(a.experiment, a.set);
  const nn::Dataset test = nn::load_split(x, false);
  nn::Network net = nn::build_network(x, {x.batch, test.channels, test.height, test.width});
  nn::Optimizer optim(x.optimizer, x.numerics.master.numerics());
  nn::load_checkpoint(a.checkpoint, net, optim);
  const auto [acc, loss] = nn::evaluate(x, net, test, 0);
  if (a.json) fmt::print("{}\n", nlohmann::json{{"test_accuracy", acc}, {"test_loss", loss}, {"examples", test.n}}.dump(2));
  else fmt::print("{} test examples: accuracy {:.2f}%, loss {:.4f}\n", test.n, 100 * acc, loss);
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
  t->callback([a] { run_train(*a); });

  auto b = std::make_shared<TrainArgs>();
  auto* i = app.add_subcommand("infer", "Test accuracy of a checkpoint through the experiment's numerics");
  i->add_option("experiment", b->experiment, "Experiment file (TOML)")->required();
  i->add_option("--checkpoint", b->checkpoint, "checkpoint.bin of a run")->required();
  i->add_option("--set", b->set, "Override a key of the experiment: key.path=value (repeatable)");
  i->add_option("--threads", b->threads, "Threads (0: all cores)")->capture_default_str();
  i->add_flag("--json", b->json, "Print JSON");
  i->callback([b] { run_infer(*b); });
}

}  // namespace bitsim::app
