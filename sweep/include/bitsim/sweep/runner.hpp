// Where a sweep's points run: as child processes on this machine (at most --jobs at once), or as a
// Slurm job array with a dependent merge job whose tasks run `bitsim sweep FILE --out DIR --point I`.
// Either way a point is run_point() in a process of its own, so it computes the same wherever and
// in whatever order it runs.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bitsim/sweep/plan.hpp"

namespace bitsim::sweep {

// How a command uses the sweep directory: a new sweep (the directory holds no sweep yet), or one
// that continues, runs a point of, or merges the sweep recorded there (it must be this plan).
enum class DirUse { Start, Continue };

// Checks the directory against the plan and, on Start, records the plan in DIR/sweep.json.
// Throws SweepError naming the directory.
void open_sweep_dir(const Plan& plan, const std::filesystem::path& dir, DirUse use);

// Indices of the points without a recorded result.
std::vector<std::size_t> unfinished(const Plan& plan, const std::filesystem::path& dir);

// The executable `name` would run as, from PATH.
std::optional<std::string> find_program(const std::string& name);

// The bitsim executable running now (what the Slurm tasks run).
std::string self_program();

struct LocalProgress {
  std::size_t total = 0, done = 0, failed = 0, running = 0;
};

struct LocalOptions {
  int jobs = 1;
  int threads = 0;  // per point; 0: the machine's cores over jobs
  std::function<void(const LocalProgress&)> progress;
};

// Runs the points `todo` as child processes (forks of this one, which has checked the plan), at
// most opt.jobs at once, each with its output in DIR/points/<id>/log.txt. A child that ends without recording a result (killed, crashed) is
// recorded as failed with the reason. The children die with this process (a killed sweep leaves
// no stray points running; --resume reruns what did not finish).
void run_local(const Plan& plan, const std::filesystem::path& dir, const std::vector<std::size_t>& todo, const LocalOptions& opt);

struct SlurmOptions {
  std::string program;             // default: self_program()
  std::vector<std::string> sbatch_args;  // passed to both sbatch calls
  int throttle = 0;                // at most this many tasks at once (the array's %); 0: no limit
  int threads = 1;                 // per task, unless --cpus-per-task is in sbatch_args
  bool submit = true;              // false: write the scripts only
};

struct SlurmSubmission {
  std::filesystem::path array_script, merge_script;
  std::vector<std::string> array_jobs;  // one per chunk of at most kSlurmChunk tasks
  std::string merge_job;
  std::vector<std::string> commands;    // the sbatch command lines, as run (or to run)
};

// Slurm's default MaxArraySize is 1001: an array job's indices stay below 1000, so larger sweeps
// are submitted as several arrays, each with its offset.
inline constexpr std::size_t kSlurmChunk = 1000;

// Writes DIR/slurm/points.sbatch (one array task per point of `todo`) and DIR/slurm/merge.sbatch,
// and submits them with sbatch, the merge with --dependency=afterany on every array job. Throws
// SweepError when sbatch is missing or refuses (its message included).
SlurmSubmission run_slurm(const Plan& plan, const std::filesystem::path& dir, const std::vector<std::size_t>& todo,
                          const SlurmOptions& opt);

}  // namespace bitsim::sweep
