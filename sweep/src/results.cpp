// Running one point, and merging the points' results into tables, fronts and plots.
#include "bitsim/sweep/results.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "bitsim/costmodel/plot.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/files.hpp"
#include "bitsim/nn/trainer.hpp"

namespace bitsim::sweep {
namespace fs = std::filesystem;

nlohmann::json PointResult::to_json() const {
  return {{"id", id}, {"status", status}, {"error", error}, {"wall_seconds", wall_seconds}, {"metrics", metrics}};
}

fs::path point_dir(const fs::path& dir, const Point& p) { return dir / "points" / p.id; }

namespace {

fs::path result_path(const fs::path& dir, const Point& p) { return point_dir(dir, p) / "result.json"; }

// "requantizer: Q31 multiplier" -> "requantizer.Q31_multiplier": a column name without spaces.
std::string column_part(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ':' && i + 1 < s.size() && s[i + 1] == ' ') out += '.', ++i;
    else out += s[i] == ' ' ? '_' : s[i];
  }
  return out;
}

// The metrics of a finished run: what it measured and what it costs.
std::map<std::string, double> metrics_of(const nn::RunResult& r, Mode mode) {
  std::map<std::string, double> m;
  const nlohmann::json& rep = r.report;
  if (mode != Mode::Cost) {
    m["accuracy.test"] = rep.at("accuracy").at("test").get<double>();
    m["loss.test"] = rep.at("loss").at("test").get<double>();
  }
  if (mode == Mode::Train) {
    m["accuracy.train"] = rep.at("accuracy").at("train").get<double>();
    m["loss.train"] = rep.at("loss").at("train").get<double>();
  }
  const costmodel::RunCost& c = r.cost;
  const double energy_j = c.total.energy_total_pj() * 1e-12;
  m["cost.energy_j"] = energy_j;
  m["cost.latency_s"] = c.seconds_at_clock;
  m["cost.edp_js"] = energy_j * c.seconds_at_clock;
  m["cost.cycles"] = c.total.cycles;
  m["cost.dram_bytes"] = c.total.dram_bytes;
  m["cost.macs"] = c.total.macs;
  if (c.area) m["cost.area_mm2"] = c.area->array_um2 * 1e-6;
  for (const auto& [phase, line] : c.by_phase)
    m[fmt::format("cost.energy_j.phase.{}", costmodel::to_string(phase))] = line.energy_total_pj() * 1e-12;
  for (const auto& [component, pj] : c.total.energy_pj) m["cost.energy_j.component." + column_part(component)] = pj * 1e-12;
  return m;
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

}  // namespace

std::optional<PointResult> read_result(const fs::path& dir, const Point& p) {
  const fs::path path = result_path(dir, p);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    PointResult r;
    r.id = j.at("id").get<std::string>();
    r.status = j.at("status").get<std::string>();
    r.error = j.at("error").get<std::string>();
    r.wall_seconds = j.at("wall_seconds").get<double>();
    r.metrics = j.at("metrics").get<std::map<std::string, double>>();
    if (r.id != p.id || (r.status != "ok" && r.status != "failed"))
      throw SweepError(fmt::format("{}: not the result of point {}", path.string(), p.id));
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw SweepError(fmt::format("{}: unreadable point result: {}", path.string(), e.what()));
  }
}

void write_result(const fs::path& dir, const Point& p, const PointResult& r) {
  fs::create_directories(point_dir(dir, p));
  nn::write_atomic(result_path(dir, p), [&](std::ofstream& f) { f << r.to_json().dump(2) << "\n"; });
}

PointResult run_point(const Plan& plan, std::size_t index, const fs::path& dir) {
  const Point& p = plan.points.at(index);
  PointResult r;
  r.id = p.id;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out = point_dir(dir, p);
  try {
    const nn::Experiment x = nn::Experiment::load(plan.experiment, p.overrides());
    nn::RunResult run;
    if (plan.mode == Mode::Infer) {
      run = nn::infer(x, {plan.checkpoint, out.string(), false, std::nullopt, false, ""});
    } else {
      std::error_code ec;
      // A point a killed sweep left half-trained continues from its checkpoint: the trainer
      // guarantees the same result as an uninterrupted run.
      const bool resume = plan.mode == Mode::Train && fs::exists(out / "checkpoint.bin", ec);
      // A cost point draws no plots of its own: the sweep's plots are its fronts.
      run = nn::train(x, {out.string(), resume, {}, plan.mode == Mode::Cost, false});
    }
    r.metrics = metrics_of(run, plan.mode);
    r.status = "ok";
  } catch (const std::exception& e) {
    r.status = "failed";
    r.error = one_line(e.what());
  }
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_result(dir, p, r);
  return r;
}

std::vector<bool> pareto_front(const std::vector<std::vector<double>>& rows, const std::vector<bool>& maximize) {
  const std::size_t n = rows.size(), k = maximize.size();
  std::vector<bool> in(n, false);
  auto finite = [&](const std::vector<double>& r) {
    return r.size() == k && std::all_of(r.begin(), r.end(), [](double v) { return std::isfinite(v); });
  };
  // better(a, b, j): a is strictly better than b in objective j.
  auto better = [&](double a, double b, std::size_t j) { return maximize[j] ? a > b : a < b; };
  for (std::size_t i = 0; i < n; ++i) {
    if (!finite(rows[i])) continue;
    bool dominated = false;
    for (std::size_t o = 0; o < n && !dominated; ++o) {
      if (o == i || !finite(rows[o])) continue;
      bool no_worse = true, strictly = false;
      for (std::size_t j = 0; j < k; ++j) {
        if (better(rows[i][j], rows[o][j], j)) no_worse = false;
        if (better(rows[o][j], rows[i][j], j)) strictly = true;
      }
      dominated = no_worse && strictly;
    }
    in[i] = !dominated;
  }
  return in;
}

namespace {

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Appends ",value" to a CSV line.
void cell(std::string& line, const std::string& value) {
  line.push_back(',');
  line.append(value);
}

std::string number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : ""; }

// The short name of a metric in file names and axis titles: "cost.energy_j" -> "energy".
std::string short_name(const std::string& metric) {
  static const std::map<std::string, std::string> names{
      {"cost.energy_j", "energy"}, {"cost.latency_s", "latency"}, {"cost.area_mm2", "area"}, {"cost.edp_js", "edp"},
      {"cost.cycles", "cycles"},   {"cost.dram_bytes", "dram"},   {"cost.macs", "macs"}};
  const auto it = names.find(metric);
  if (it != names.end()) return it->second;
  std::string s = metric;
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

std::string axis_title(const std::string& metric) {
  static const std::map<std::string, std::string> titles{
      {"accuracy.test", "test accuracy (%)"}, {"accuracy.train", "training accuracy (%)"}, {"loss.test", "test loss"},
      {"loss.train", "training loss"},        {"cost.energy_j", "energy (J)"},             {"cost.latency_s", "latency at the clock (s)"},
      {"cost.area_mm2", "array area (mm^2)"}, {"cost.edp_js", "energy x delay (J s)"},     {"cost.cycles", "cycles"},
      {"cost.dram_bytes", "DRAM bytes"},      {"cost.macs", "MACs"}};
  const auto it = titles.find(metric);
  return it != titles.end() ? it->second : metric;
}

bool is_accuracy(const std::string& metric) { return metric.starts_with("accuracy."); }

// The sweep as plot titles name it: its file with the folder it is in ("syq/sweep.toml").
std::string plot_name(const Plan& plan) {
  const fs::path f = fs::absolute(plan.file).lexically_normal();
  const std::string dir = f.parent_path().filename().string();
  return dir.empty() ? f.filename().string() : dir + "/" + f.filename().string();
}

struct Pair {
  std::size_t a, b;  // objective indices
  std::string column, plot;
};

std::vector<Pair> objective_pairs(const Plan& plan) {
  std::vector<Pair> pairs;
  const auto& o = plan.objectives;
  for (std::size_t i = 0; i < o.size(); ++i)
    for (std::size_t j = i + 1; j < o.size(); ++j) {
      Pair p{i, j, fmt::format("front:{}/{}", o[i].metric, o[j].metric), ""};
      if (is_accuracy(o[i].metric) != is_accuracy(o[j].metric))
        p.plot = fmt::format("pareto_{}.png", short_name(is_accuracy(o[i].metric) ? o[j].metric : o[i].metric));
      else
        p.plot = fmt::format("pareto_{}_{}.png", short_name(o[i].metric), short_name(o[j].metric));
      pairs.push_back(p);
    }
  return pairs;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / double(v.size());
}

// Sample standard deviation (n - 1); 0 for one value.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return v.empty() ? NAN : 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

// A training point's learning curve: its metrics.csv (epoch, lr, train_loss, train_accuracy,
// test_loss, test_accuracy, seconds), one row per epoch. Empty when it cannot be read.
struct Epoch {
  double epoch, train_loss, train_accuracy, test_loss, test_accuracy;
};
std::vector<Epoch> read_curve(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line)) return {};
  std::map<std::string, std::size_t> col;
  {
    std::stringstream hs(line);
    std::string name;
    for (std::size_t i = 0; std::getline(hs, name, ','); ++i) col[name] = i;
  }
  for (const char* need : {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"})
    if (!col.contains(need)) return {};
  std::vector<Epoch> out;
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::stringstream ls(line);
    std::string f;
    while (std::getline(ls, f, ',')) v.push_back(std::strtod(f.c_str(), nullptr));
    auto at = [&](const char* name) { return col[name] < v.size() ? v[col[name]] : double(NAN); };
    out.push_back({at("epoch"), at("train_loss"), at("train_accuracy"), at("test_loss"), at("test_accuracy")});
  }
  return out;
}

// curves.csv: every finished training point's metrics per epoch, with its configuration; and
// curves.png: each configuration's test accuracy per epoch, the mean over its seeds (only
// configurations whose seeds all finished, as for the fronts).
void write_curves(const Plan& plan, const fs::path& dir, const std::vector<PointResult>& rows, const std::vector<std::size_t>& finished,
                  const std::vector<std::size_t>& members, const std::vector<std::size_t>& first_of, bool plots, MergeSummary& sum) {
  const bool seeded = !plan.seeds.empty();
  std::string csv = seeded ? "id,config,label,seed,epoch,train_loss,train_accuracy,test_loss,test_accuracy\n"
                           : "id,config,label,epoch,train_loss,train_accuracy,test_loss,test_accuracy\n";
  std::vector<std::map<int, std::vector<double>>> test(plan.configs);  // [config][epoch] -> one value per seed
  int last_epoch = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].status != "ok") continue;
    const Point& p = plan.points[i];
    for (const Epoch& e : read_curve(point_dir(dir, p) / "metrics.csv")) {
      csv += fmt::format("{},{},{},", p.id, p.config, csv_field(p.label));
      if (seeded) csv += fmt::format("{},", *p.seed);
      csv += fmt::format("{},{},{},{},{}\n", number(e.epoch), number(e.train_loss), number(e.train_accuracy), number(e.test_loss),
                         number(e.test_accuracy));
      if (!std::isfinite(e.epoch) || e.epoch < 1 || e.epoch > 1e6) continue;
      test[p.config][int(e.epoch)].push_back(e.test_accuracy);
      last_epoch = std::max(last_epoch, int(e.epoch));
    }
  }
  nn::write_atomic(dir / "curves.csv", [&](std::ofstream& f) { f << csv; });
  sum.written.push_back("curves.csv");
  if (!plots || last_epoch == 0) return;
  std::vector<double> x;
  for (int e = 1; e <= last_epoch; ++e) x.push_back(e);
  std::vector<costmodel::Series> series;
  for (std::size_t c = 0; c < plan.configs; ++c) {
    if (finished[c] != members[c] || test[c].empty()) continue;
    costmodel::Series s{plan.points[first_of[c]].label, {}};
    for (int e = 1; e <= last_epoch; ++e) {
      const auto it = test[c].find(e);
      s.y.push_back(it != test[c].end() && it->second.size() == members[c] ? 100 * mean(it->second) : double(NAN));
    }
    series.push_back(std::move(s));
  }
  if (series.empty()) return;
  costmodel::plot_lines(dir / "curves.png", "epoch", x, series, seeded ? "test accuracy (%), mean over seeds" : "test accuracy (%)",
                        fmt::format("{}: test accuracy per epoch", plot_name(plan)));
  sum.written.push_back("curves.png");
}

}  // namespace

MergeSummary merge(const Plan& plan, const fs::path& dir, bool plots) {
  MergeSummary sum;
  std::vector<PointResult> rows;
  std::set<std::string> extra;  // per-phase and per-component energy columns, as the points have them
  for (const Point& p : plan.points) {
    PointResult r = read_result(dir, p).value_or(PointResult{});
    r.id = p.id;
    if (r.status == "ok") ++sum.ok;
    else if (r.status == "failed") ++sum.failed;
    else ++sum.not_run;
    for (const auto& [k, v] : r.metrics) extra.insert(k);
    rows.push_back(std::move(r));
  }
  std::vector<std::string> metrics = objective_metrics(plan.mode);
  for (const auto& m : metrics) extra.erase(m);
  metrics.insert(metrics.end(), extra.begin(), extra.end());

  // Configurations: the mean over their seeds that finished (all of them, or the front would
  // compare means over different seeds).
  const std::size_t nc = plan.configs;
  std::vector<std::map<std::string, std::vector<double>>> values(nc);
  std::vector<std::size_t> finished(nc, 0), members(nc, 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t c = plan.points[i].config;
    ++members[c];
    if (rows[i].status != "ok") continue;
    ++finished[c];
    for (const auto& [k, v] : rows[i].metrics) values[c][k].push_back(v);
  }
  auto config_mean = [&](std::size_t c, const std::string& m) {
    if (finished[c] != members[c]) return double(NAN);
    const auto it = values[c].find(m);
    return it == values[c].end() || it->second.size() != members[c] ? double(NAN) : mean(it->second);
  };
  const std::vector<Pair> pairs = objective_pairs(plan);
  std::vector<std::vector<bool>> on_front;  // [pair][config]
  for (const Pair& pr : pairs) {
    std::vector<std::vector<double>> pts(nc);
    for (std::size_t c = 0; c < nc; ++c)
      pts[c] = {config_mean(c, plan.objectives[pr.a].metric), config_mean(c, plan.objectives[pr.b].metric)};
    on_front.push_back(pareto_front(pts, {plan.objectives[pr.a].maximize, plan.objectives[pr.b].maximize}));
  }
  // The first point of each configuration stands for it (its label and axis values).
  std::vector<std::size_t> first_of(nc, rows.size());
  for (std::size_t i = rows.size(); i-- > 0;) first_of[plan.points[i].config] = i;

  const std::vector<std::string> axes = plan.axis_keys();
  const bool seeded = !plan.seeds.empty();
  auto axis_values = [&](const Point& p) {
    std::vector<std::string> v;
    for (std::size_t d = 0; d < plan.dims.size(); ++d)
      for (const Setting& s : plan.dims[d].values[p.choice[d]]) v.push_back(s.display);
    return v;
  };

  // results.csv and results.json: one row per point.
  nlohmann::json jrows = nlohmann::json::array();
  std::string csv = "id";
  for (const auto& a : axes) cell(csv, csv_field(a));
  if (seeded) csv += ",seed";
  csv += ",status,error";
  for (const auto& m : metrics) cell(csv, csv_field(m));
  csv += ",wall_seconds";
  for (const Pair& pr : pairs) cell(csv, csv_field(pr.column));
  csv += "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Point& p = plan.points[i];
    const PointResult& r = rows[i];
    const std::vector<std::string> av = axis_values(p);
    csv += p.id;
    nlohmann::json axes_json = nlohmann::json::object();
    for (std::size_t a = 0; a < axes.size(); ++a) {
      cell(csv, csv_field(av[a]));
      axes_json[axes[a]] = av[a];
    }
    if (seeded) cell(csv, std::to_string(*p.seed));
    cell(csv, r.status + "," + csv_field(r.error));
    for (const auto& m : metrics) {
      const auto it = r.metrics.find(m);
      csv += ',';
      if (it != r.metrics.end()) csv += number(it->second);
    }
    csv += ',';
    if (r.status != "not run") csv += number(r.wall_seconds);
    nlohmann::json fronts = nlohmann::json::object();
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      const bool f = on_front[k][p.config];
      csv += ',';
      if (r.status == "ok") csv += f ? '1' : '0';
      if (r.status == "ok") fronts[pairs[k].column] = f;
    }
    csv += "\n";
    nlohmann::json j = r.to_json();
    j["axes"] = axes_json;
    j["label"] = p.label;
    if (seeded) j["seed"] = *p.seed;
    j["overrides"] = p.overrides();
    j["fronts"] = fronts;
    jrows.push_back(j);
  }
  nlohmann::json jfronts = nlohmann::json::array();
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    nlohmann::json ids = nlohmann::json::array();
    for (std::size_t c = 0; c < nc; ++c)
      if (on_front[k][c]) ids.push_back(plan.points[first_of[c]].label);
    jfronts.push_back({{"objectives", {plan.objectives[pairs[k].a].spec(), plan.objectives[pairs[k].b].spec()}}, {"configurations", ids}});
  }
  nlohmann::json jsum = plan.to_json();
  jsum.erase("points");
  const nlohmann::json results = {{"schema", "bitsim-sweep-results/1"}, {"sweep", jsum}, {"points", jrows}, {"fronts", jfronts},
                                  {"counts", {{"ok", sum.ok}, {"failed", sum.failed}, {"not_run", sum.not_run}}}};
  nn::write_atomic(dir / "results.csv", [&](std::ofstream& f) { f << csv; });
  nn::write_atomic(dir / "results.json", [&](std::ofstream& f) { f << results.dump(2) << "\n"; });
  sum.written = {"results.csv", "results.json"};

  // configs.csv: mean and spread over seeds.
  if (seeded) {
    std::string c = "config,label";
    for (const auto& a : axes) cell(c, csv_field(a));
    c += ",seeds_ok";
    for (const auto& m : metrics) cell(c, csv_field(m + ".mean") + "," + csv_field(m + ".std"));
    for (const Pair& pr : pairs) cell(c, csv_field(pr.column));
    c += "\n";
    for (std::size_t k = 0; k < nc; ++k) {
      const Point& p = plan.points[first_of[k]];
      c += std::to_string(k);
      cell(c, csv_field(p.label));
      for (const auto& v : axis_values(p)) cell(c, csv_field(v));
      cell(c, std::to_string(finished[k]));
      for (const auto& m : metrics) {
        const auto it = values[k].find(m);
        const std::vector<double> v = it == values[k].end() ? std::vector<double>{} : it->second;
        cell(c, number(mean(v)) + "," + number(stddev(v)));
      }
      for (std::size_t q = 0; q < pairs.size(); ++q) c += std::string(",") + (on_front[q][k] ? "1" : "0");
      c += "\n";
    }
    nn::write_atomic(dir / "configs.csv", [&](std::ofstream& f) { f << c; });
    sum.written.push_back("configs.csv");
  }

  if (plan.mode == Mode::Train) {
    write_curves(plan, dir, rows, finished, members, first_of, plots, sum);
  }

  // The fronts: a table per pair, best first in the pair's first objective, and a plot.
  auto shown = [](const Objective& o, double v) {
    return is_accuracy(o.metric) ? fmt::format("{:.2f}%", 100 * v) : fmt::format("{:.4g}", v);
  };
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const Objective &oa = plan.objectives[pairs[k].a], &ob = plan.objectives[pairs[k].b];
    std::vector<std::size_t> front;
    for (std::size_t c = 0; c < nc; ++c)
      if (on_front[k][c]) front.push_back(c);
    std::sort(front.begin(), front.end(), [&](std::size_t x, std::size_t y) {
      const double vx = config_mean(x, oa.metric), vy = config_mean(y, oa.metric);
      return oa.maximize ? vx > vy : vx < vy;
    });
    sum.fronts += fmt::format("\nPareto front, {} against {} ({} of {} configurations{}):\n", oa.spec(), ob.spec(), front.size(), nc,
                              seeded ? ", means over seeds" : "");
    if (front.empty()) sum.fronts += "  (no configuration finished)\n";
    for (std::size_t c : front)
      sum.fronts += fmt::format("  {:>14} {:>14}  {}\n", shown(oa, config_mean(c, oa.metric)), shown(ob, config_mean(c, ob.metric)),
                                plan.points[first_of[c]].label);
    if (!plots || front.empty()) continue;
    // x: the cost (the second objective unless the first is one), y: the other.
    const bool swap = !is_accuracy(oa.metric) && is_accuracy(ob.metric);
    const Objective &ox = swap ? oa : ob, &oy = swap ? ob : oa;
    std::vector<costmodel::ScatterPoint> pts;
    for (std::size_t c = 0; c < nc; ++c) {
      const double x = config_mean(c, ox.metric), y = config_mean(c, oy.metric);
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      pts.push_back({x, is_accuracy(oy.metric) ? 100 * y : y, plan.points[first_of[c]].label, bool(on_front[k][c])});
    }
    const bool logy = !is_accuracy(oy.metric) && !oy.metric.starts_with("loss.");
    costmodel::plot_pareto(dir / pairs[k].plot, pts, axis_title(ox.metric), axis_title(oy.metric), true, logy,
                           fmt::format("{}: {} against {}", plot_name(plan), oy.spec(), ox.spec()));
    sum.written.push_back(pairs[k].plot);
  }
  return sum;
}

}  // namespace bitsim::sweep
