// Running a sweep's points: child processes here, or a Slurm job array.
#include "bitsim/sweep/runner.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "bitsim/nn/files.hpp"
#include "bitsim/nn/gemm.hpp"
#include "bitsim/sweep/results.hpp"

extern char** environ;

namespace bitsim::sweep {
namespace fs = std::filesystem;

void open_sweep_dir(const Plan& plan, const fs::path& dir, DirUse use) {
  const fs::path record = dir / "sweep.json";
  std::error_code ec;
  const nlohmann::json now = plan.to_json();
  if (use == DirUse::Start) {
    if (fs::exists(record, ec))
      throw SweepError(fmt::format("{}: holds a sweep already; --resume continues it, or choose another --out", dir.string()));
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw SweepError(fmt::format("{}: not a directory", dir.string()));
    if (fs::is_directory(dir, ec))
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename() != ".lock")  // the lock of the command opening it
          throw SweepError(fmt::format("{}: not empty and not a sweep directory; choose another --out", dir.string()));
    fs::create_directories(dir / "points", ec);
    if (ec) throw SweepError(fmt::format("{}: cannot create the sweep directory: {}", dir.string(), ec.message()));
    nn::write_atomic(record, [&](std::ofstream& f) { f << now.dump(2) << "\n"; });
    return;
  }
  if (!fs::exists(record, ec))
    throw SweepError(fmt::format("{}: no sweep here (no sweep.json); start it with bitsim sweep FILE --out {}", dir.string(), dir.string()));
  nlohmann::json then;
  try {
    std::ifstream in(record);
    then = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw SweepError(fmt::format("{}: unreadable: {}", record.string(), e.what()));
  }
  if (then == now) return;
  // Name the first difference: what a user changed in the sweep file since it started.
  std::string what = "the plan";
  for (const char* key : {"experiment", "mode", "checkpoint", "axes", "seeds", "objectives"})
    if (then.value(key, nlohmann::json()) != now[key]) {
      what = key;
      break;
    }
  if (what == "the plan") what = then.value("points", nlohmann::json()).size() != now["points"].size() ? "the number of points" : "the points' values";
  throw SweepError(fmt::format("{}: the sweep recorded there differs from {} in {}; restore the sweep file, or start a new "
                               "sweep in another --out", dir.string(), plan.file, what));
}

std::vector<std::size_t> unfinished(const Plan& plan, const fs::path& dir) {
  std::vector<std::size_t> todo;
  for (const Point& p : plan.points)
    if (!read_result(dir, p)) todo.push_back(p.index);
  return todo;
}

std::optional<std::string> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const fs::path candidate = fs::path(start == end ? "." : dirs.substr(start, end - start)) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return std::nullopt;
}

std::string self_program() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw SweepError(fmt::format("cannot find the bitsim executable (/proc/self/exe): {}", ec.message()));
  return p.string();
}

namespace {

// Starts point `index` in a child of this process: a fork of the sweep that has loaded and checked
// the plan already, so the point runs at once (no exec, no second reading of the plan). Its output
// goes to `log`, stdin is /dev/null, and it is killed when this process dies. Exit status 0 when
// the point's result is "ok", 1 when it failed (the result says why).
pid_t fork_point(const Plan& plan, const fs::path& dir, std::size_t index, int threads, const fs::path& log) {
  const std::string log_path = log.string();
  std::fflush(nullptr);  // nothing buffered here may be written twice
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw SweepError(fmt::format("cannot start a point's process: {}", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int out = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = open("/dev/null", O_RDONLY);
    if (out < 0 || in < 0) _exit(126);
    dup2(in, 0), dup2(out, 1), dup2(out, 2);
    nn::set_threads(threads);
    const PointResult r = run_point(plan, index, dir);
    std::printf("point %s (%s): %s in %.1f s\n", r.id.c_str(), plan.points[index].label.c_str(), r.status.c_str(),
                r.wall_seconds);
    std::fflush(nullptr);
    _exit(r.status == "ok" ? 0 : 1);  // no exit handlers: they belong to the sweep
  }
  return pid;
}

std::string ended(int status) {
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

}  // namespace

void run_local(const Plan& plan, const fs::path& dir, const std::vector<std::size_t>& todo, const LocalOptions& opt) {
  const int jobs = std::max(1, opt.jobs);
  const int threads = opt.threads > 0 ? opt.threads : std::max(1, int(std::thread::hardware_concurrency()) / jobs);
  LocalProgress prog;
  prog.total = todo.size();
  std::map<pid_t, std::size_t> running;
  std::size_t next = 0;
  auto report = [&] {
    prog.running = running.size();
    if (opt.progress) opt.progress(prog);
  };
  report();
  while (next < todo.size() || !running.empty()) {
    while (next < todo.size() && running.size() < std::size_t(jobs)) {
      const Point& p = plan.points[todo[next++]];
      std::error_code ec;
      fs::create_directories(point_dir(dir, p), ec);
      running[fork_point(plan, dir, p.index, threads, point_dir(dir, p) / "log.txt")] = p.index;
      report();
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      report();
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw SweepError(fmt::format("waiting for the points' processes: {}", std::strerror(errno)));
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const Point& p = plan.points[it->second];
    running.erase(it);
    std::optional<PointResult> r = read_result(dir, p);
    if (!r) {  // the process never got to record its result
      PointResult failed;
      failed.id = p.id;
      failed.status = "failed";
      failed.error = fmt::format("the point's process {} without recording a result (see points/{}/log.txt)", ended(status), p.id);
      write_result(dir, p, failed);
      r = failed;
    }
    ++(r->status == "ok" ? prog.done : prog.failed);
    report();
  }
}

namespace {

// 'text' for bash: single quotes, each ' as '\''.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "0-3,7,9-12": the sorted indices as Slurm's --array ranges.
std::string array_ranges(const std::vector<std::size_t>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + (j == i ? std::to_string(v[i]) : fmt::format("{}-{}", v[i], v[j]));
    i = j + 1;
  }
  return out;
}

// Runs a program (found on PATH) and returns its exit status and output (stdout and stderr).
std::pair<int, std::string> capture(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) throw SweepError(fmt::format("cannot run {}: {}", args[0], std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    throw SweepError(rc == ENOENT ? fmt::format("{} not found on PATH: install Slurm's client (Debian: slurm-client), or use "
                                                "--dry-run to write the job scripts only", args[0])
                                  : fmt::format("cannot run {}: {}", args[0], std::strerror(rc)));
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, std::size_t(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::string first_line_of(const std::string& s) {
  const auto start = s.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "no message";
  return s.substr(start, s.find_first_of("\r\n", start) - start);
}

std::string command_line(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + (a.find_first_of(" '\"$;&|<>*?") == std::string::npos ? a : shell_quote(a));
  return s;
}

// Runs sbatch --parsable ...; its job id.
std::string sbatch(const std::vector<std::string>& args) {
  const auto [status, out] = capture(args);
  if (status != 0) throw SweepError(fmt::format("sbatch refused the job (status {}): {}", status, first_line_of(out)));
  const std::string line = first_line_of(out);
  const std::string id = line.substr(0, line.find(';'));  // "id;cluster" on a federation
  if (id.empty() || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw SweepError(fmt::format("sbatch gave no job id: {}", line));
  return id;
}

}  // namespace

SlurmSubmission run_slurm(const Plan& plan, const fs::path& dir, const std::vector<std::size_t>& todo, const SlurmOptions& opt) {
  const std::string program = opt.program.empty() ? self_program() : opt.program;
  const fs::path sdir = fs::absolute(dir) / "slurm";
  std::error_code ec;
  fs::create_directories(sdir, ec);
  if (ec) throw SweepError(fmt::format("{}: cannot create: {}", sdir.string(), ec.message()));
  SlurmSubmission s;
  s.array_script = sdir / "points.sbatch";
  s.merge_script = sdir / "merge.sbatch";
  const std::string file = fs::absolute(plan.file).string(), out = fs::absolute(dir).string();
  std::string set;  // the command line's --set overrides, for every task and the merge
  for (const std::string& kv : plan.cli_set) set += " --set " + shell_quote(kv);
  // Every node must see the sweep file, the directory and the program at these paths (docs/sweep.md).
  const std::string points = fmt::format(
      "#!/bin/bash\n"
      "# The points of the sweep {file}: one array task each (bitsim sweep --slurm wrote this).\n"
      "#SBATCH --job-name=bitsim-sweep\n"
      "#SBATCH --output={log}/point-%A_%a.log\n"
      "set -euo pipefail\n"
      "export OPENBLAS_NUM_THREADS=${{OPENBLAS_NUM_THREADS:-1}}  # bitsim's threads call single-threaded BLAS\n"
      "index=$(( ${{BITSIM_SWEEP_OFFSET:-0}} + SLURM_ARRAY_TASK_ID ))\n"
      "exec {program} sweep {qfile} --out {qout}{set} --point \"$index\" --threads \"${{SLURM_CPUS_PER_TASK:-{threads}}}\"\n",
      fmt::arg("file", file), fmt::arg("log", sdir.string()), fmt::arg("program", shell_quote(program)),
      fmt::arg("qfile", shell_quote(file)), fmt::arg("qout", shell_quote(out)), fmt::arg("set", set),
      fmt::arg("threads", std::max(1, opt.threads)));
  const std::string merge = fmt::format(
      "#!/bin/bash\n"
      "# Merges the points of the sweep {file} into results.csv, results.json and the plots.\n"
      "#SBATCH --job-name=bitsim-sweep-merge\n"
      "#SBATCH --output={log}/merge-%j.log\n"
      "exec {program} sweep {qfile} --out {qout}{set} --merge\n",
      fmt::arg("file", file), fmt::arg("log", sdir.string()), fmt::arg("program", shell_quote(program)),
      fmt::arg("qfile", shell_quote(file)), fmt::arg("qout", shell_quote(out)), fmt::arg("set", set));
  nn::write_atomic(s.array_script, [&](std::ofstream& f) { f << points; });
  nn::write_atomic(s.merge_script, [&](std::ofstream& f) { f << merge; });
  fs::permissions(s.array_script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
  fs::permissions(s.merge_script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);

  // Chunks of at most kSlurmChunk tasks, indices relative to the chunk's offset.
  std::map<std::size_t, std::vector<std::size_t>> chunks;
  for (std::size_t i : todo) chunks[i / kSlurmChunk].push_back(i % kSlurmChunk);
  std::vector<std::vector<std::string>> array_cmds;
  for (const auto& [chunk, idx] : chunks) {
    std::vector<std::string> cmd{"sbatch", "--parsable"};
    cmd.insert(cmd.end(), opt.sbatch_args.begin(), opt.sbatch_args.end());
    cmd.push_back("--array=" + array_ranges(idx) + (opt.throttle > 0 ? fmt::format("%{}", opt.throttle) : ""));
    cmd.push_back(fmt::format("--export=ALL,BITSIM_SWEEP_OFFSET={}", chunk * kSlurmChunk));
    cmd.push_back(s.array_script.string());
    array_cmds.push_back(cmd);
  }
  for (const auto& cmd : array_cmds) {
    s.commands.push_back(command_line(cmd));
    if (opt.submit) s.array_jobs.push_back(sbatch(cmd));
  }
  std::vector<std::string> merge_cmd{"sbatch", "--parsable"};
  merge_cmd.insert(merge_cmd.end(), opt.sbatch_args.begin(), opt.sbatch_args.end());
  std::string dep = "--dependency=afterany";
  for (std::size_t i = 0; i < array_cmds.size(); ++i) dep += ":" + (opt.submit ? s.array_jobs[i] : fmt::format("<job {}>", i + 1));
  if (!array_cmds.empty()) merge_cmd.push_back(dep);
  merge_cmd.push_back(s.merge_script.string());
  s.commands.push_back(command_line(merge_cmd));
  if (opt.submit) s.merge_job = sbatch(merge_cmd);
  return s;
}

}  // namespace bitsim::sweep
