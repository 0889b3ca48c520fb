// `bitsim sweep`: a design-space sweep from a sweep file, its points run here (--jobs) or on a
// Slurm cluster (--slurm), merged into results.csv, Pareto fronts and plots (docs/sweep.md).
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bitsim/nn/parallel.hpp"
#include "bitsim/nn/trainer.hpp"
#include "bitsim/sweep/plan.hpp"
#include "bitsim/sweep/results.hpp"
#include "bitsim/sweep/runner.hpp"
#include "commands.hpp"
#include "progress.hpp"

namespace bitsim::app {
namespace {
namespace fs = std::filesystem;

struct SweepArgs {
  std::string file, out, sbatch_args;
  std::vector<std::string> set;
  int jobs = 1, threads = 0;
  std::optional<std::size_t> point;
  bool resume = false, dry_run = false, merge = false, slurm = false;
};

void print_merge(const sweep::MergeSummary& m, const fs::path& dir) {
  fmt::print("{} points: {} ok, {} failed, {} not run\n", m.ok + m.failed + m.not_run, m.ok, m.failed, m.not_run);
  fmt::print("{}", m.fronts);
  std::string files;
  for (const auto& f : m.written) files += (files.empty() ? "" : ", ") + f;
  fmt::print("\n{}: {}\n", dir.string(), files);
}

void finish(const sweep::MergeSummary& m) {
  if (m.failed > 0) throw CheckFailed(fmt::format("{} of {} points failed; results.csv has their errors", m.failed, m.ok + m.failed + m.not_run));
}

void run_sweep(const SweepArgs& a) {
  const sweep::Plan plan = sweep::Plan::load(a.file, a.set);
  const fs::path dir = a.out;
  if (a.point) {
    if (*a.point >= plan.points.size())
      throw sweep::SweepError(fmt::format("--point {}: the sweep has points 0 to {}", *a.point, plan.points.size() - 1));
    sweep::open_sweep_dir(plan, dir, sweep::DirUse::Continue);
    nn::set_threads(a.threads);
    const sweep::PointResult r = sweep::run_point(plan, *a.point, dir);
    fmt::print("point {} ({}): {} in {:.1f} s\n", r.id, plan.points[*a.point].label, r.status, r.wall_seconds);
    if (r.status != "ok") throw CheckFailed(fmt::format("point {}: {}", r.id, r.error));
    return;
  }
  if (a.merge) {
    sweep::open_sweep_dir(plan, dir, sweep::DirUse::Continue);
    const sweep::MergeSummary m = sweep::merge(plan, dir);
    print_merge(m, dir);
    finish(m);
    return;
  }
  // Every point's experiment is checked before anything is written or run.
  plan.validate();
  const std::size_t n = plan.points.size();
  auto count = [](std::size_t k, const char* what) { return fmt::format("{} {}{}", k, what, k == 1 ? "" : "s"); };
  fmt::print("sweep {}: {} ({}{}), mode {}, experiment {}\n", plan.file, count(n, "point"), count(plan.configs, "configuration"),
             plan.seeds.empty() ? "" : " x " + count(plan.seeds.size(), "seed"), sweep::to_string(plan.mode), plan.experiment);
  if (a.dry_run && !a.slurm) {
    for (const sweep::Point& p : plan.points) {
      std::string o;
      for (const auto& s : p.settings) o += (o.empty() ? "" : " ") + s.override_text();
      fmt::print("  {}  {}\n", p.id, o);
    }
    return;
  }
  if (a.slurm) {
    if (!a.dry_run && !sweep::find_program("sbatch"))
      throw sweep::SweepError("sbatch not found on PATH: install Slurm's client (Debian: slurm-client), or use --dry-run to "
                              "write the job scripts only");
    sweep::SlurmOptions so;
    std::istringstream words(a.sbatch_args);
    for (std::string w; words >> w;) so.sbatch_args.push_back(w);
    so.throttle = a.jobs > 1 ? a.jobs : 0;
    so.threads = std::max(1, a.threads);
    so.submit = !a.dry_run;
    sweep::open_sweep_dir(plan, dir, a.resume ? sweep::DirUse::Continue : sweep::DirUse::Start);
    const std::vector<std::size_t> todo = a.resume ? sweep::unfinished(plan, dir) : [&] {
      std::vector<std::size_t> all(n);
      for (std::size_t i = 0; i < n; ++i) all[i] = i;
      return all;
    }();
    const sweep::SlurmSubmission s = sweep::run_slurm(plan, dir, todo, so);
    fmt::print("{} of {} points to run; job scripts {} and {}\n", todo.size(), n, s.array_script.string(), s.merge_script.string());
    for (const auto& c : s.commands) fmt::print("  {}{}\n", a.dry_run ? "" : "submitted: ", c);
    if (!a.dry_run) {
      std::string jobs;
      for (const auto& j : s.array_jobs) jobs += (jobs.empty() ? "" : ", ") + j;
      fmt::print("array job{} {}; merge job {} writes {}/results.csv when they end\n", s.array_jobs.size() == 1 ? "" : "s", jobs,
                 s.merge_job, dir.string());
    }
    return;
  }
  // One sweep process per directory; the lock is taken before the directory is checked.
  const nn::RunLock lock(dir.string());
  sweep::open_sweep_dir(plan, dir, a.resume ? sweep::DirUse::Continue : sweep::DirUse::Start);
  const std::vector<std::size_t> todo = a.resume ? sweep::unfinished(plan, dir) : [&] {
    std::vector<std::size_t> all(n);
    for (std::size_t i = 0; i < n; ++i) all[i] = i;
    return all;
  }();
  if (a.resume) fmt::print("resuming: {} of {} points left to run\n", todo.size(), n);
  Progress bar("points");
  sweep::LocalOptions lo;
  lo.jobs = a.jobs;
  lo.threads = a.threads;
  lo.progress = [&](const sweep::LocalProgress& p) {
    const double f = p.total ? double(p.done + p.failed) / double(p.total) : 1.0;
    bar.update(f, fmt::format("{} done, {} running, {} failed of {}", p.done, p.running, p.failed, p.total));
  };
  sweep::run_local(plan, dir, todo, lo);
  bar.finish();
  const sweep::MergeSummary m = sweep::merge(plan, dir);
  print_merge(m, dir);
  finish(m);
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  auto* s = app.add_subcommand("sweep", "Run a design-space sweep (a grid of experiment overrides) and find its Pareto fronts");
  s->add_option("file", a->file, "Sweep file (TOML; docs/sweep.md)")->required();
  s->add_option("--out", a->out, "Sweep directory: points/<id>/ run directories, results.csv, results.json, plots")->required();
  s->add_option("--set", a->set, "Override a key of every point (added to the file's [set]): key.path=value (repeatable)");
  auto* jobs = s->add_option("--jobs", a->jobs, "Points at once (with --slurm: the array's task limit)")->capture_default_str()->check(CLI::Range(1, 1024));
  s->add_option("--threads", a->threads, "Threads per point (0: cores / jobs); results do not depend on it")->capture_default_str()->check(CLI::Range(0, 1024));
  auto* resume = s->add_flag("--resume", a->resume, "Continue the sweep in --out: run only the points without a result");
  auto* dry = s->add_flag("--dry-run", a->dry_run, "Check every point and list them (with --slurm: write the job scripts), run nothing");
  auto* point = s->add_option("--point", a->point, "Run only point I of the sweep started in --out (what each Slurm task runs)");
  auto* merge = s->add_flag("--merge", a->merge, "Merge the points' results in --out into results.csv, fronts and plots");
  auto* slurm = s->add_flag("--slurm", a->slurm, "Submit the points as a Slurm job array and a dependent merge job");
  s->add_option("--sbatch-args", a->sbatch_args, "Extra sbatch options for both jobs, e.g. \"--partition=cpu --time=1:00:00\"")->needs(slurm);
  point->excludes(merge)->excludes(slurm)->excludes(resume)->excludes(dry)->excludes(jobs);
  merge->excludes(slurm)->excludes(resume)->excludes(dry)->excludes(jobs);
  s->callback([a] { run_sweep(*a); });
}

}  // namespace bitsim::app
