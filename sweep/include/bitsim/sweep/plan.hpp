// A sweep file (TOML; docs/sweep.md) and the points it expands to: one experiment, overrides set on
// every point, axes that form a grid, zips whose keys vary together, seeds that replicate every
// configuration, and the objectives of the Pareto fronts. Loading checks the file's own shape;
// validate() checks every point's experiment, so a bad key or value is refused before anything runs.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bitsim::sweep {

// Bad input (the sweep file, a point's experiment, the sweep directory): one line naming it.
struct SweepError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Mode { Train, Infer, Cost };
std::string_view to_string(Mode m);

// One experiment key set to one value: the value as TOML text (what `train --set` takes) and as
// shown in tables and plots (a string without its quotes).
struct Setting {
  std::string key, toml, display;
  std::string override_text() const { return key + "=" + toml; }
};

// An axis (one key) or a zip (several keys varying together): values[i] holds value i of each key.
struct Dimension {
  std::vector<std::string> keys;
  std::vector<std::vector<Setting>> values;
  std::vector<std::string> names;  // optional: what labels call value i (else key=value for each key)
  std::string describe() const;  // "axis 'hardware.array'", "zip ['a', 'b']"
};

// "max:accuracy.test", "min:cost.energy_j": a metric column of results.csv and its direction.
struct Objective {
  std::string metric;
  bool maximize = false;
  std::string spec() const { return (maximize ? "max:" : "min:") + metric; }
};

// The metrics an objective can name in `mode` (results.csv has these columns and more):
// accuracy.test, accuracy.train, loss.test, loss.train (what the mode measures), cost.energy_j,
// cost.latency_s, cost.area_mm2, cost.edp_js, cost.cycles, cost.dram_bytes, cost.macs.
// "cost.energy", "cost.latency", "cost.area" and "cost.edp" are accepted for their unit-named columns.
std::vector<std::string> objective_metrics(Mode mode);

struct Point {
  std::size_t index = 0;
  std::string id;                     // zero-padded index: the directory points/<id>
  std::vector<std::size_t> choice;    // the value index of each dimension
  std::optional<std::uint64_t> seed;  // when the sweep replicates over seeds
  std::size_t config = 0;             // index of its configuration (the point without its seed)
  std::vector<Setting> settings;      // [set], then each dimension's keys, then the seed
  std::string label;                  // "array=16x16 node_nm=7": the dimensions with more than one value (a named value by its name)
  std::vector<std::string> overrides() const;
};

struct Plan {
  std::string file;        // the sweep file as given
  std::string experiment;  // the experiment file, resolved against the sweep file's directory
  Mode mode = Mode::Train;
  std::string checkpoint;  // infer: the checkpoint every point evaluates (resolved likewise)
  std::vector<std::uint64_t> seeds;
  std::vector<Setting> set;
  std::vector<std::string> cli_set;  // the --set overrides it was loaded with (its points' processes get them too)
  std::vector<Dimension> dims;
  std::vector<Objective> objectives;
  std::vector<Point> points;
  std::size_t configs = 0;  // points / seeds

  // Parses and expands `path`; `set` ("key=value", as `train --set` takes them) adds to [set] or
  // replaces its value of a key. Throws SweepError naming the file and key.
  static Plan load(const std::string& path, const std::vector<std::string>& set = {});
  // Loads every point's experiment (its errors name the axis and value that cause them), and
  // checks the checkpoint of an infer sweep. Throws SweepError.
  void validate() const;
  // The keys of the dimensions in order: the axis columns of results.csv.
  std::vector<std::string> axis_keys() const;
  // What a sweep directory records of its plan: a resumed or merged sweep must expand the same.
  nlohmann::json to_json() const;
};

inline constexpr std::size_t kMaxPoints = 100000;

}  // namespace bitsim::sweep
