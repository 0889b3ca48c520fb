// Parsing and validation of cost tables (JSON), and discovery of the data directory.
// Every error names the file and the entry so a user's own table can be fixed from one line.
#include "bitsim/costmodel/table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>

namespace bitsim::costmodel {
namespace {

using nlohmann::json;

struct KindInfo {
  std::string_view name;
  EntryKind kind;
};
constexpr KindInfo kKinds[] = {
    {"int_add", EntryKind::IntAdd},         {"int_mul", EntryKind::IntMul},
    {"fp_add", EntryKind::FpAdd},           {"fp_mul", EntryKind::FpMul},
    {"sram_read", EntryKind::SramRead},     {"dram_access", EntryKind::DramAccess},
    {"register_file", EntryKind::RegisterFile}, {"xnor_popcount", EntryKind::XnorPopcount},
};

bool is_memory(EntryKind k) {
  return k == EntryKind::SramRead || k == EntryKind::DramAccess || k == EntryKind::RegisterFile;
}

// Reads entry fields with messages that name the table and the entry.
class EntryReader {
 public:
  EntryReader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& what) const { throw TableError(fmt::format("{}: {}", where_, what)); }

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  std::string text(const char* key) const {
    if (!has(key)) fail(fmt::format("missing '{}'", key));
    const json& v = j_.at(key);
    if (!v.is_string() || v.get<std::string>().empty())
      fail(fmt::format("'{}' must be a non-empty string, got {}", key, v.dump()));
    return v.get<std::string>();
  }

  double positive(const char* key) const {
    if (!has(key)) fail(fmt::format("missing '{}'", key));
    const json& v = j_.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
      fail(fmt::format("'{}' must be a positive number, got {}", key, v.dump()));
    return v.get<double>();
  }

  std::optional<double> optional_positive(const char* key) const {
    if (!has(key)) return std::nullopt;
    return positive(key);
  }

  int width(const char* key, int lo, int hi) const {
    if (!has(key)) fail(fmt::format("missing '{}'", key));
    const json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<long long>() < lo || v.get<long long>() > hi)
      fail(fmt::format("'{}' must be an integer in {}..{}, got {}", key, lo, hi, v.dump()));
    return int(v.get<long long>());
  }

 private:
  const json& j_;
  std::string where_;
};

TableEntry parse_entry(const json& j, const std::string& origin, std::size_t index) {
  const std::string anon = fmt::format("table {}: entry #{}", origin, index + 1);
  if (!j.is_object()) throw TableError(fmt::format("{}: must be an object, got {}", anon, j.dump()));
  std::string where = anon;
  if (j.contains("id") && j.at("id").is_string()) where = fmt::format("table {}: entry '{}'", origin, j.at("id").get<std::string>());
  const EntryReader r(j, where);

  TableEntry e;
  e.id = r.text("id");
  const std::string kind = r.text("kind");
  const auto* k = std::find_if(std::begin(kKinds), std::end(kKinds), [&](const KindInfo& ki) { return ki.name == kind; });
  if (k == std::end(kKinds))
    r.fail(fmt::format("unknown kind '{}': expected int_add, int_mul, fp_add, fp_mul, sram_read, dram_access, "
                       "register_file or xnor_popcount", kind));
  e.kind = k->kind;
  e.source = r.text("source");
  e.energy_pj = r.positive("energy_pj");
  e.area_um2 = r.optional_positive("area_um2");
  e.energy_pj_max = r.optional_positive("energy_pj_max");
  if (e.energy_pj_max && *e.energy_pj_max < e.energy_pj)
    r.fail(fmt::format("'energy_pj_max' {} is below 'energy_pj' {}", *e.energy_pj_max, e.energy_pj));

  const std::string per = r.text("per");
  if (is_memory(e.kind)) {
    if (per == "bit") {
      e.access_bits = 1;
      if (r.has("access_bits")) r.fail("'per': 'bit' figures take no 'access_bits'");
    } else if (per == "access") {
      e.access_bits = r.width("access_bits", 1, 1 << 20);
    } else {
      r.fail(fmt::format("'per' must be 'access' or 'bit' for {}, got '{}'", kind, per));
    }
  } else if (per != "op") {
    r.fail(fmt::format("'per' must be 'op' for {}, got '{}'", kind, per));
  }

  switch (e.kind) {
    case EntryKind::IntAdd:
      e.bits_a = e.bits_b = r.width("bits", 1, 256);
      break;
    case EntryKind::IntMul:
      if (r.has("bits")) {
        e.bits_a = e.bits_b = r.width("bits", 1, 256);
      } else {
        e.bits_a = r.width("bits_a", 1, 256);
        e.bits_b = r.width("bits_b", 1, 256);
      }
      break;
    case EntryKind::FpAdd:
    case EntryKind::FpMul:
      e.exp_bits = r.width("exp_bits", 1, 32);
      e.man_bits = r.width("man_bits", 0, 240);
      break;
    case EntryKind::SramRead:
      e.capacity_bytes = r.positive("capacity_bytes");
      break;
    case EntryKind::DramAccess:
    case EntryKind::RegisterFile:
    case EntryKind::XnorPopcount:
      break;
  }
  return e;
}

// The variable a kind's law interpolates over; anchors must grow along it.
double law_variable(const TableEntry& e) {
  switch (e.kind) {
    case EntryKind::IntAdd: return e.bits_a;
    case EntryKind::IntMul: return double(e.bits_a) * e.bits_b;
    case EntryKind::FpAdd:
    case EntryKind::FpMul: return e.man_bits;
    case EntryKind::SramRead: return e.capacity_bytes;
    default: return 0;
  }
}

// Energy in the unit the law compares: memories per bit, arithmetic per op.
double comparable_energy(const TableEntry& e) { return is_memory(e.kind) ? e.energy_pj / e.access_bits : e.energy_pj; }

void check_anchor_order(const CostTable& t) {
  for (const KindInfo& ki : kKinds) {
    std::vector<const TableEntry*> v = t.of_kind(ki.kind);
    if (ki.kind == EntryKind::DramAccess || ki.kind == EntryKind::XnorPopcount) {
      if (v.size() > 1)
        throw TableError(fmt::format("table {}: entries '{}' and '{}': only one {} entry is allowed", t.origin,
                                     v[0]->id, v[1]->id, ki.name));
      continue;
    }
    if (ki.kind == EntryKind::RegisterFile) continue;  // per-bit energy may differ with width
    std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return law_variable(*a) < law_variable(*b); });
    for (std::size_t i = 1; i < v.size(); ++i) {
      const TableEntry& a = *v[i - 1];
      const TableEntry& b = *v[i];
      if (law_variable(a) == law_variable(b))
        throw TableError(fmt::format("table {}: entries '{}' and '{}' are both {} anchors at the same {}", t.origin,
                                     a.id, b.id, ki.name,
                                     ki.kind == EntryKind::SramRead ? "capacity" : ki.kind == EntryKind::FpAdd || ki.kind == EntryKind::FpMul ? "mantissa width" : "width"));
      // SRAM energy per bit grows with capacity; arithmetic per op grows with width.
      if (!(comparable_energy(b) > comparable_energy(a)))
        throw TableError(fmt::format("table {}: entry '{}': energy does not grow from '{}' ({} pJ{}) to '{}' ({} pJ{}); "
                                     "the scaling laws need costs that increase with size", t.origin, b.id, a.id,
                                     comparable_energy(a), is_memory(a.kind) ? "/bit" : "", b.id, comparable_energy(b),
                                     is_memory(b.kind) ? "/bit" : ""));
      if (a.area_um2 && b.area_um2 && !(*b.area_um2 > *a.area_um2))
        throw TableError(fmt::format("table {}: entry '{}': area does not grow from '{}' ({} um^2) to '{}' ({} um^2)",
                                     t.origin, b.id, a.id, *a.area_um2, b.id, *b.area_um2));
    }
  }
}

}  // namespace

std::string_view to_string(EntryKind kind) {
  for (const KindInfo& ki : kKinds)
    if (ki.kind == kind) return ki.name;
  return "?";
}

CostTable CostTable::parse(std::string_view json_text, const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    throw TableError(fmt::format("table {}: not valid JSON: {}", origin, e.what()));
  }
  if (!root.is_object()) throw TableError(fmt::format("table {}: top level must be a JSON object", origin));
  const EntryReader r(root, fmt::format("table {}", origin));
  CostTable t;
  t.origin = origin;
  t.name = r.text("name");
  t.source = r.text("source");
  t.description = r.has("description") ? r.text("description") : "";
  t.node_nm = r.positive("node_nm");
  t.vdd_v = r.positive("vdd_v");
  if (!root.contains("entries") || !root.at("entries").is_array() || root.at("entries").empty())
    r.fail("'entries' must be a non-empty array");
  std::set<std::string> ids;
  const json& entries = root.at("entries");
  for (std::size_t i = 0; i < entries.size(); ++i) {
    TableEntry e = parse_entry(entries[i], origin, i);
    if (!ids.insert(e.id).second) throw TableError(fmt::format("table {}: entry '{}': duplicate id", origin, e.id));
    t.entries.push_back(std::move(e));
  }
  check_anchor_order(t);
  return t;
}

CostTable CostTable::load(const std::filesystem::path& path) { return parse(read_text_file(path), path.string()); }

CostTable CostTable::load_default() { return load(data_file("horowitz_45nm.json")); }

std::vector<const TableEntry*> CostTable::of_kind(EntryKind kind) const {
  std::vector<const TableEntry*> out;
  for (const TableEntry& e : entries)
    if (e.kind == kind) out.push_back(&e);
  return out;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TableError(fmt::format("cannot read '{}'", path.string()));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw TableError(fmt::format("cannot read '{}'", path.string()));
  return s.str();
}

std::filesystem::path data_dir() {
  namespace fs = std::filesystem;
  std::vector<fs::path> tried;
  auto good = [&](const fs::path& p) {
    std::error_code ec;
    tried.push_back(p);
    return fs::is_regular_file(p / "horowitz_45nm.json", ec);
  };
  if (const char* env = std::getenv("BITSIM_COST_DATA"); env && *env) {
    if (good(env)) return env;
    throw TableError(fmt::format("BITSIM_COST_DATA='{}' holds no horowitz_45nm.json", env));
  }
#ifdef BITSIM_COSTMODEL_DATA_DIR
  if (good(BITSIM_COSTMODEL_DATA_DIR)) return BITSIM_COSTMODEL_DATA_DIR;
#endif
  // A build tree inside the repository (build-x/app/bitsim): two levels up is the repository.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
      if (good(dir / "costmodel" / "data")) return dir / "costmodel" / "data";
  }
  if (good(fs::current_path(ec) / "costmodel" / "data")) return fs::current_path(ec) / "costmodel" / "data";
  std::string where;
  for (const auto& p : tried) where += (where.empty() ? "" : ", ") + p.string();
  throw TableError(fmt::format("cost data directory not found (looked in: {}); set BITSIM_COST_DATA or pass --table", where));
}

std::filesystem::path data_file(std::string_view name) { return data_dir() / std::string(name); }

}  // namespace bitsim::costmodel
