// Reference cost tables as data: published energy (pJ) and area (um^2) anchors per operation or
// memory access, read from JSON files shipped with bitsim or supplied by the user (--table).
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bitsim::costmodel {

// A malformed table or data file; the message names the file and the entry.
struct TableError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class EntryKind {
  IntAdd,        // k-bit integer adder, energy per addition
  IntMul,        // ka x kb integer multiplier, energy per product
  FpAdd,         // float<e,m> adder, energy per addition
  FpMul,         // float<e,m> multiplier, energy per product
  SramRead,      // SRAM of a given capacity, energy per access of access_bits
  DramAccess,    // off-chip DRAM, energy per access of access_bits
  RegisterFile,  // register file, energy per access of access_bits
  XnorPopcount,  // one binary MAC: XNOR plus its share of the popcount tree
};

std::string_view to_string(EntryKind kind);

struct TableEntry {
  std::string id;
  EntryKind kind = EntryKind::IntAdd;
  int bits_a = 0, bits_b = 0;      // IntAdd: bits_a; IntMul: bits_a x bits_b
  int exp_bits = 0, man_bits = 0;  // FpAdd, FpMul
  double capacity_bytes = 0;       // SramRead
  // Memories: the published figure is per access of access_bits bits (a per-bit figure is stored
  // as access_bits = 1). Keeping the width with the number is what prevents multiplying a per-bit
  // figure by a word count.
  int access_bits = 0;
  double energy_pj = 0;  // per operation (arithmetic) or per access of access_bits (memories)
  std::optional<double> energy_pj_max;  // high end of a published range (DRAM), if any
  std::optional<double> area_um2;       // absent when the source publishes no area
  std::string source;                   // where the numbers come from; required
};

struct CostTable {
  std::string name;         // short name, e.g. "horowitz-45nm"
  std::string description;  // free text
  std::string source;       // citation of the table as a whole
  std::string origin;       // the file it was read from (for messages)
  double node_nm = 0;       // process node the numbers were measured at
  double vdd_v = 0;         // supply voltage the numbers were measured at
  std::vector<TableEntry> entries;

  // Parse and validate. Throws TableError naming the file and the entry: unknown kind, missing or
  // non-positive numbers, a 'per' that does not fit the kind, duplicate ids, and anchors of one
  // kind whose costs do not grow with width (the scaling laws interpolate between them).
  static CostTable parse(std::string_view json_text, const std::string& origin);
  static CostTable load(const std::filesystem::path& path);
  // data_dir()/horowitz_45nm.json: Horowitz, ISSCC 2014, 45 nm, 0.9 V.
  static CostTable load_default();

  std::vector<const TableEntry*> of_kind(EntryKind kind) const;
};

// Where bitsim's data files live: $BITSIM_COST_DATA if set; else the source tree's
// costmodel/data compiled in at build time; else costmodel/data next to the executable's build
// tree or under the current directory. Throws TableError listing where it looked.
std::filesystem::path data_dir();
std::filesystem::path data_file(std::string_view name);

// Reads a whole file; throws TableError("cannot read ...") naming it.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace bitsim::costmodel
