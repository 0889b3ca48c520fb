// A sweep's results: one point run in this process (its run directory and result.json), and the
// merge of every point's result into results.csv / results.json, the Pareto fronts and their plots.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/sweep/plan.hpp"

namespace bitsim::sweep {

// What one point gave: its metrics (results.csv's columns, by name) or why it has none.
struct PointResult {
  std::string id;
  std::string status = "not run";  // "ok", "failed" (error says why) or "not run"
  std::string error;
  double wall_seconds = 0;
  std::map<std::string, double> metrics;
  nlohmann::json to_json() const;
};

// DIR/points/<id>: the point's run directory (report.json, metrics.csv, checkpoint.bin, plots).
std::filesystem::path point_dir(const std::filesystem::path& dir, const Point& p);
// The point's recorded result (DIR/points/<id>/result.json), if it finished. A result file that
// cannot be read is SweepError.
std::optional<PointResult> read_result(const std::filesystem::path& dir, const Point& p);
// Records `r` as the point's result (atomically).
void write_result(const std::filesystem::path& dir, const Point& p, const PointResult& r);

// Runs point `index` of `plan` here: train (resuming from the point's own checkpoint when a
// killed sweep left one), infer or cost, into its run directory, and records the result. A point
// that fails is recorded with its error; nothing is thrown for it.
PointResult run_point(const Plan& plan, std::size_t index, const std::filesystem::path& dir);

// Non-dominated rows: rows[i] holds one value per objective; a row with a value that is not
// finite takes no part (false). Equal rows do not dominate each other.
std::vector<bool> pareto_front(const std::vector<std::vector<double>>& rows, const std::vector<bool>& maximize);

struct MergeSummary {
  std::size_t ok = 0, failed = 0, not_run = 0;
  std::string fronts;                // the fronts as a text table (what the command prints)
  std::vector<std::string> written;  // files written, relative to the sweep directory
};

// Reads every point's result and writes DIR/results.csv and results.json (one row per point,
// atomically), DIR/configs.csv (mean and standard deviation over seeds, when the sweep has
// seeds), and one plot per objective pair (pareto_energy.png: accuracy against energy, ...).
// Fronts are taken over configurations (the mean over seeds). `plots` = false skips the plots.
MergeSummary merge(const Plan& plan, const std::filesystem::path& dir, bool plots = true);

}  // namespace bitsim::sweep
