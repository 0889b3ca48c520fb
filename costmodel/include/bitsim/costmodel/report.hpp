// Counts in, report out: operations by kind and formats, memory accesses by level, optional
// toggle activity; energy by component and by the caller's labels (layer, phase), area by component.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/arith/format.hpp"
#include "bitsim/costmodel/laws.hpp"

namespace bitsim::costmodel {

// The caller's labels of a count, e.g. {{"layer", "conv1"}, {"phase", "forward"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class OpKind { Multiply, Add, Mac, XnorPopcount, StochasticRound, Requantize };
std::string_view to_string(OpKind k);

struct OpCount {
  OpKind kind = OpKind::Mac;
  arith::Format a, b;  // operands (Add and StochasticRound use a; Requantize: a = accumulator, b = output)
  std::optional<arith::Format> acc;  // Mac accumulator; default_accumulator(a, b) if absent
  int random_bits = 16;              // StochasticRound
  std::uint64_t count = 0;
  Labels labels;
  // Switching activity relative to random data (1 = the table's conditions), e.g. from
  // activity_from_toggles(); scales this count's energy. Absent = 1.
  std::optional<double> activity;
};

enum class MemLevel { RegisterFile, Sram, Dram };
std::string_view to_string(MemLevel l);

struct MemCount {
  MemLevel level = MemLevel::Sram;
  double capacity_bytes = 0;  // Sram only
  int access_bits = 0;        // width of ONE access
  std::uint64_t accesses = 0;
  Labels labels;
  // SRAM writes: reported as "sram write", at the read energy (the tables publish reads only).
  bool write = false;
};

struct Counts {
  std::vector<OpCount> ops;
  std::vector<MemCount> memory;
};

// Activity factor from toggle counts measured in simulation: `input_bit_toggles` bit flips on the
// operand inputs over `ops` operations of `input_bits_per_op` input bits. Calibration: with
// independent uniformly random operands each input bit flips with probability 1/2 between
// consecutive operations, which is the condition the table's per-operation figures stand for, so
// random data gives 1 and reproduces the table.
double activity_from_toggles(std::uint64_t input_bit_toggles, std::uint64_t ops, int input_bits_per_op);

struct EnergyReport {
  double total_energy_pj = 0;
  // "mac multiplier", "mac accumulator", "sram read", "dram", ...
  std::map<std::string, double> by_component_pj;
  // label key -> label value -> pJ, e.g. by_label_pj["layer"]["conv1"].
  std::map<std::string, std::map<std::string, double>> by_label_pj;
  std::string model;  // CostModel::describe() of the model used
  std::string to_json() const;
};

EnergyReport estimate_energy(const CostModel& model, const Counts& counts);

// Area of a MAC array and its SRAMs.
struct ArrayHardware {
  int rows = 0, cols = 0;
  arith::Format a = arith::Format::fixed(8, 0), b = arith::Format::fixed(8, 0);
  std::optional<arith::Format> acc;
  std::vector<std::pair<std::string, double>> srams;  // name, capacity in bytes
};

struct AreaReport {
  double total_area_um2 = 0;  // of the components whose area is known
  std::map<std::string, double> by_component_um2;
  std::vector<std::string> unknown;  // components the table gives no area for
  std::string model;
  std::string to_json() const;
};

AreaReport estimate_area(const CostModel& model, const ArrayHardware& hw);

}  // namespace bitsim::costmodel
