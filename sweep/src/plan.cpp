// Sweep files: parsing, expansion into points, and validation of every point's experiment.
#include "bitsim/sweep/plan.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "bitsim/arith/format.hpp"
#include "bitsim/nn/experiment.hpp"

namespace bitsim::sweep {
namespace fs = std::filesystem;

std::string_view to_string(Mode m) {
  switch (m) {
    case Mode::Train: return "train";
    case Mode::Infer: return "infer";
    case Mode::Cost: return "cost";
  }
  return "?";
}

std::string Dimension::describe() const {
  if (keys.size() == 1) return fmt::format("axis {}", arith::quoted(keys[0]));
  std::string k;
  for (const auto& key : keys) k += (k.empty() ? "" : ", ") + arith::quoted(key);
  return fmt::format("zip [{}]", k);
}

std::vector<std::string> Point::overrides() const {
  std::vector<std::string> out;
  for (const Setting& s : settings) out.push_back(s.override_text());
  return out;
}

std::vector<std::string> objective_metrics(Mode mode) {
  std::vector<std::string> m;
  if (mode != Mode::Cost) m = {"accuracy.test", "loss.test"};
  if (mode == Mode::Train) m.insert(m.end(), {"accuracy.train", "loss.train"});
  m.insert(m.end(), {"cost.energy_j", "cost.latency_s", "cost.area_mm2", "cost.edp_js", "cost.cycles", "cost.dram_bytes",
                     "cost.macs"});
  return m;
}

namespace {

constexpr std::size_t kMaxFileBytes = 1 << 20;
constexpr std::size_t kMaxKeyChars = 256;

std::string toml_text(const toml::node& n) {
  std::ostringstream os;
  os << toml::toml_formatter{n, toml::format_flags::none};
  return os.str();
}

// Reads one table of the sweep file, refusing keys it does not take.
class Table {
 public:
  Table(const toml::table& t, std::string file, std::string where, std::set<std::string> keys)
      : t_(t), file_(std::move(file)), where_(std::move(where)) {
    for (const auto& [k, v] : t_)
      if (!keys.count(std::string(k.str()))) {
        std::string takes;
        for (const auto& key : keys) takes += (takes.empty() ? "" : ", ") + key;
        fail(std::string(k.str()), fmt::format("a known key ({})", takes), "unknown key");
      }
  }
  [[noreturn]] void fail(const std::string& key, const std::string& expected, const std::string& what = "") const {
    throw SweepError(fmt::format("{}: {}{}: {}expected {}", file_, where_, key, what.empty() ? "" : what + "; ", expected));
  }
  const toml::node* get(const std::string& key) const { return t_.get(key); }
  std::optional<std::string> string(const std::string& key) const {
    const toml::node* n = t_.get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(key, "a string");
    return *n->value<std::string>();
  }
  const toml::array& array(const std::string& key, bool of_tables = false) const {
    const toml::node* n = t_.get(key);
    if (!n || !n->is_array()) fail(key, of_tables ? "an array of tables ([[" + key + "]])" : "an array");
    const toml::array& a = *n->as_array();
    if (a.empty()) fail(key, "at least one entry");
    return a;
  }
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }

 private:
  const toml::table& t_;
  std::string file_, where_;
};

// A key of the experiment: "a.b.c" with parts of letters, digits, '_' and '-', a part possibly
// indexing an array ("layers[3]").
bool valid_key(const std::string& k) {
  if (k.empty() || k.size() > kMaxKeyChars || k.front() == '.' || k.back() == '.' || k.find("..") != std::string::npos)
    return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
           c == '[' || c == ']';
  });
}

Setting setting(const std::string& key, const toml::node& v) {
  Setting s{key, toml_text(v), ""};
  s.display = v.is_string() ? *v.value<std::string>() : s.toml;
  return s;
}

// [set]: dotted keys ("train.epochs" = 2) or sub-tables ([set.train] epochs = 2) down to values;
// an inline table ({ format = ..., rounding = ... }) is one value.
void flatten(const toml::table& t, const std::string& prefix, const std::string& file, std::vector<Setting>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix + std::string(k.str());
    if (v.is_table() && !v.as_table()->is_inline()) {
      flatten(*v.as_table(), key + ".", file, out);
      continue;
    }
    if (!valid_key(key)) throw SweepError(fmt::format("{}: set: bad key {}: expected an experiment key such as train.epochs", file, arith::quoted(key)));
    out.push_back(setting(key, v));
  }
}

std::string resolve(const std::string& sweep_file, const std::string& p) {
  const fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  const fs::path dir = fs::path(sweep_file).parent_path();
  return (dir / path).lexically_normal().string();
}

Objective objective(const std::string& spec, Mode mode, const Table& t) {
  const auto colon = spec.find(':');
  const std::string dir = spec.substr(0, colon == std::string::npos ? 0 : colon);
  std::string metric = colon == std::string::npos ? "" : spec.substr(colon + 1);
  static const std::map<std::string, std::string> aliases{
      {"cost.energy", "cost.energy_j"}, {"cost.latency", "cost.latency_s"}, {"cost.area", "cost.area_mm2"}, {"cost.edp", "cost.edp_js"}};
  if (const auto it = aliases.find(metric); it != aliases.end()) metric = it->second;
  const std::vector<std::string> known = objective_metrics(mode);
  if ((dir != "max" && dir != "min") || std::find(known.begin(), known.end(), metric) == known.end()) {
    std::string names;
    for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
    throw SweepError(fmt::format("{}: pareto.objectives: bad objective {}: expected max:METRIC or min:METRIC, a metric of a {} "
                                 "sweep being one of {}", t.file(), arith::quoted(spec), to_string(mode), names));
  }
  return {metric, dir == "max"};
}

}  // namespace

Plan Plan::load(const std::string& path, const std::vector<std::string>& extra) {
  {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (!fs::exists(st)) throw SweepError(fmt::format("{}: cannot open: no such file", path));
    if (!fs::is_regular_file(st)) throw SweepError(fmt::format("{}: cannot open: not a regular file", path));
    if (const auto size = fs::file_size(path, ec); !ec && size > kMaxFileBytes)
      throw SweepError(fmt::format("{}: {} bytes; a sweep file is limited to {} bytes", path, size, kMaxFileBytes));
  }
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw SweepError(fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column, e.description()));
  }
  Plan p;
  p.file = path;
  p.cli_set = extra;
  const Table top(root, path, "", {"experiment", "mode", "checkpoint", "seeds", "set", "axis", "zip", "pareto"});
  const auto experiment = top.string("experiment");
  if (!experiment || experiment->empty()) top.fail("experiment", "the experiment file every point runs (a path relative to this file)");
  p.experiment = resolve(path, *experiment);
  const std::string mode = top.string("mode").value_or("train");
  if (mode == "train") p.mode = Mode::Train;
  else if (mode == "infer") p.mode = Mode::Infer;
  else if (mode == "cost") p.mode = Mode::Cost;
  else top.fail("mode", fmt::format("train, infer or cost, got {}", arith::quoted(mode)));
  if (const auto ck = top.string("checkpoint")) {
    if (p.mode != Mode::Infer) top.fail("checkpoint", "no checkpoint: only an infer sweep evaluates one");
    p.checkpoint = resolve(path, *ck);
  }  // an infer sweep without one needs an experiment whose model.onnx gives the weights (validate())
  if (top.get("seeds")) {
    std::set<std::uint64_t> seen;
    for (const toml::node& n : top.array("seeds")) {
      if (!n.is_integer() || *n.value<std::int64_t>() < 0) top.fail("seeds", "non-negative integers");
      const auto s = std::uint64_t(*n.value<std::int64_t>());
      if (!seen.insert(s).second) top.fail("seeds", fmt::format("distinct seeds; {} appears twice", s));
      p.seeds.push_back(s);
    }
  }
  std::set<std::string> keys;  // each key is set in one place only
  auto claim = [&](const std::string& key, const std::string& where) {
    if (!valid_key(key)) throw SweepError(fmt::format("{}: {}: bad key {}: expected an experiment key such as numerics.weights",
                                                      path, where, arith::quoted(key)));
    if (!keys.insert(key).second)
      throw SweepError(fmt::format("{}: {}: key {} is already set by [set], an axis or a zip", path, where, arith::quoted(key)));
  };
  if (const toml::node* s = top.get("set")) {
    if (!s->is_table()) top.fail("set", "a table of experiment keys and values");
    flatten(*s->as_table(), "", path, p.set);
  }
  // --set: a TOML value, or else a bare string (as train --set reads it).
  for (const std::string& kv : extra) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw SweepError(fmt::format("bad --set {}: expected key=value", arith::quoted(kv)));
    const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
    Setting st;
    try {
      const toml::table v = toml::parse("v = " + text);
      st = setting(key, *v.get("v"));
    } catch (const toml::parse_error&) {
      st = setting(key, toml::value<std::string>(text));
    }
    std::erase_if(p.set, [&](const Setting& s) { return s.key == key; });
    p.set.push_back(st);
  }
  for (const Setting& st : p.set) claim(st.key, "set");
  if (!p.seeds.empty()) claim("seed", "seeds");

  auto read_dims = [&](const char* name, bool zip) {
    if (!top.get(name)) return;
    const toml::array& arr = top.array(name, true);
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string where = fmt::format("{}[{}].", name, i);
      if (!arr[i].is_table()) throw SweepError(fmt::format("{}: {}: expected a table with {}", path, where, zip ? "keys and values" : "key and values"));
      const Table t(*arr[i].as_table(), path, where, zip ? std::set<std::string>{"keys", "values", "names"} : std::set<std::string>{"key", "values", "names"});
      Dimension d;
      if (zip) {
        for (const toml::node& k : t.array("keys")) {
          if (!k.is_string()) t.fail("keys", "an array of experiment keys (strings)");
          d.keys.push_back(*k.value<std::string>());
        }
      } else {
        const auto key = t.string("key");
        if (!key) t.fail("key", "the experiment key this axis varies, e.g. \"numerics.weights\"");
        d.keys.push_back(*key);
      }
      for (const std::string& k : d.keys) claim(k, where.substr(0, where.size() - 1));
      const toml::array& values = t.array("values");
      for (std::size_t j = 0; j < values.size(); ++j) {
        std::vector<Setting> v;
        if (zip) {
          const toml::array* tuple = values[j].as_array();
          if (!tuple || tuple->size() != d.keys.size())
            t.fail("values", fmt::format("arrays of {} values, one per key (entry {} is not)", d.keys.size(), j));
          for (std::size_t k = 0; k < d.keys.size(); ++k) v.push_back(setting(d.keys[k], *tuple->get(k)));
        } else {
          v.push_back(setting(d.keys[0], values[j]));
        }
        for (const auto& earlier : d.values)
          if (std::equal(earlier.begin(), earlier.end(), v.begin(), [](const Setting& a, const Setting& b) { return a.toml == b.toml; }))
            t.fail("values", fmt::format("distinct values; {} appears twice", arith::quoted(v[0].display)));
        d.values.push_back(std::move(v));
      }
      if (t.get("names")) {
        const toml::array& names = t.array("names");
        std::set<std::string> seen;
        for (const toml::node& n : names) {
          const auto name = n.value<std::string>();
          if (!n.is_string() || name->empty() || name->size() > 200 ||
              !std::all_of(name->begin(), name->end(), [](char c) { return c >= 0x20 && c < 0x7f; }))
            t.fail("names", "an array of names (1 to 200 printable ASCII characters), one per value");
          if (!seen.insert(*name).second) t.fail("names", fmt::format("distinct names; {} appears twice", arith::quoted(*name)));
          d.names.push_back(*name);
        }
        if (d.names.size() != d.values.size())
          t.fail("names", fmt::format("one name per value: {} names for {} values", d.names.size(), d.values.size()));
      }
      p.dims.push_back(std::move(d));
    }
  };
  read_dims("axis", false);
  read_dims("zip", true);

  // Objectives: the issue of a front is which metrics trade against each other.
  if (const toml::node* pn = top.get("pareto")) {
    if (!pn->is_table()) top.fail("pareto", "a table with objectives");
    const Table pt(*pn->as_table(), path, "pareto.", {"objectives"});
    for (const toml::node& o : pt.array("objectives")) {
      if (!o.is_string()) pt.fail("objectives", "strings such as \"max:accuracy.test\"");
      p.objectives.push_back(objective(*o.value<std::string>(), p.mode, pt));
    }
    if (p.objectives.size() < 2) pt.fail("objectives", "at least two objectives: a front trades one against another");
    for (std::size_t i = 0; i < p.objectives.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (p.objectives[i].metric == p.objectives[j].metric)
          pt.fail("objectives", fmt::format("distinct metrics; {} appears twice", p.objectives[i].metric));
  } else if (p.mode == Mode::Cost) {
    p.objectives = {{"cost.energy_j", false}, {"cost.latency_s", false}, {"cost.area_mm2", false}};
  } else {
    p.objectives = {{"accuracy.test", true}, {"cost.energy_j", false}, {"cost.area_mm2", false}};
  }

  // The grid: the first dimension varies slowest, seeds fastest.
  std::size_t configs = 1;
  for (const Dimension& d : p.dims) {
    if (configs > kMaxPoints / d.values.size())
      throw SweepError(fmt::format("{}: more than {} points; split the sweep", path, kMaxPoints));
    configs *= d.values.size();
  }
  const std::size_t replicas = std::max<std::size_t>(1, p.seeds.size());
  if (configs > kMaxPoints / replicas) throw SweepError(fmt::format("{}: more than {} points; split the sweep", path, kMaxPoints));
  p.configs = configs;
  const std::size_t total = configs * replicas;
  const int width = std::max<int>(4, int(std::to_string(total - 1).size()));
  // In labels a key goes by its last part, or by as many trailing parts as tell it from the other
  // keys ("errors.rounding" beside "gradients.rounding").
  std::map<std::string, std::string> short_key;
  {
    const std::vector<std::string> keys = p.axis_keys();
    for (const std::string& k : keys) {
      for (std::size_t from = k.size(); from != std::string::npos && from > 0;) {
        from = k.rfind('.', from - 1);
        const std::string tail = from == std::string::npos ? k : k.substr(from + 1);
        const bool unique = std::none_of(keys.begin(), keys.end(), [&](const std::string& o) {
          return o != k && (o == tail || o.ends_with("." + tail));
        });
        short_key[k] = tail;
        if (unique) break;
      }
    }
  }
  for (std::size_t c = 0; c < configs; ++c) {
    std::vector<std::size_t> choice(p.dims.size());
    for (std::size_t rest = c, d = p.dims.size(); d-- > 0;) {
      choice[d] = rest % p.dims[d].values.size();
      rest /= p.dims[d].values.size();
    }
    std::string label;
    std::vector<Setting> settings = p.set;
    for (std::size_t d = 0; d < p.dims.size(); ++d) {
      const auto& v = p.dims[d].values[choice[d]];
      settings.insert(settings.end(), v.begin(), v.end());
      if (p.dims[d].values.size() < 2) continue;
      if (!p.dims[d].names.empty()) {
        if (!label.empty()) label += ' ';
        label += p.dims[d].names[choice[d]];
        continue;
      }
      for (const Setting& s : v) {
        if (!label.empty()) label += ' ';
        label.append(short_key[s.key]).append("=").append(s.display);
      }
    }
    for (std::size_t r = 0; r < replicas; ++r) {
      Point pt;
      pt.index = p.points.size();
      pt.id = fmt::format("{:0{}}", pt.index, width);
      pt.choice = choice;
      pt.config = c;
      pt.settings = settings;
      if (!p.seeds.empty()) {
        pt.seed = p.seeds[r];
        pt.settings.push_back({"seed", std::to_string(p.seeds[r]), std::to_string(p.seeds[r])});
      }
      pt.label = label.empty() ? "base" : label;
      p.points.push_back(std::move(pt));
    }
  }
  return p;
}

void Plan::validate() const {
  auto load = [&](const std::vector<Setting>& settings) {
    std::vector<std::string> o;
    for (const Setting& s : settings) o.push_back(s.override_text());
    (void)nn::Experiment::load(experiment, o);
  };
  // Blame the narrowest cause: the settings every point has, then each value on its own, then
  // the combination a point makes.
  std::vector<Setting> base = set;
  if (!seeds.empty()) base.push_back({"seed", std::to_string(seeds[0]), ""});
  try {
    load(base);
  } catch (const std::exception& e) {
    throw SweepError(fmt::format("{}: {}: {}", file, set.empty() ? "the experiment" : "set", e.what()));
  }
  if (mode == Mode::Infer && checkpoint.empty() && !nn::Experiment::load(experiment).onnx)
    throw SweepError(fmt::format("{}: checkpoint: expected the checkpoint.bin every point of an infer sweep evaluates "
                                 "(only an experiment with model.onnx has weights without one)", file));
  for (const Dimension& d : dims)
    for (const auto& v : d.values) {
      std::vector<Setting> s = base;
      s.insert(s.end(), v.begin(), v.end());
      try {
        load(s);
      } catch (const std::exception& e) {
        std::string value;
        for (const Setting& x : v) value += (value.empty() ? "" : ", ") + x.toml;
        throw SweepError(fmt::format("{}: {} value {}: {}", file, d.describe(), v.size() == 1 ? arith::quoted(v[0].display) : "(" + value + ")",
                                     e.what()));
      }
    }
  for (const Point& pt : points) {
    try {
      load(pt.settings);
    } catch (const std::exception& e) {
      throw SweepError(fmt::format("{}: point {} ({}): {}", file, pt.id, pt.label, e.what()));
    }
  }
  if (mode == Mode::Infer && !checkpoint.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(checkpoint, ec))
      throw SweepError(fmt::format("{}: checkpoint: {}: no such file", file, checkpoint));
  }
}

std::vector<std::string> Plan::axis_keys() const {
  std::vector<std::string> k;
  for (const Dimension& d : dims) k.insert(k.end(), d.keys.begin(), d.keys.end());
  return k;
}

nlohmann::json Plan::to_json() const {
  nlohmann::json pts = nlohmann::json::array();
  // What the points compute; their labels are presentation and may change between versions.
  for (const Point& pt : points) pts.push_back({{"id", pt.id}, {"overrides", pt.overrides()}});
  nlohmann::json obj = nlohmann::json::array();
  for (const Objective& o : objectives) obj.push_back(o.spec());
  return {{"schema", "bitsim-sweep/1"},
          {"experiment", fs::absolute(experiment).lexically_normal().string()},
          {"mode", to_string(mode)},
          {"checkpoint", checkpoint.empty() ? "" : fs::absolute(checkpoint).lexically_normal().string()},
          {"axes", axis_keys()},
          {"seeds", seeds},
          {"objectives", obj},
          {"points", pts}};
}

}  // namespace bitsim::sweep
