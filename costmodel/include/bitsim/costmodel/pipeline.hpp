// The cost of a workload on a MAC array, as one typed pipeline: the hardware (array, dataflow,
// buffers, bandwidth, clock, node, cost table) and the workload (GEMMs per layer and phase with
// their operand and accumulator formats, and element-wise work such as the optimizer's update)
// -> cycles and traffic per memory level from sim's closed-form array model -> energy per
// component and area from costmodel -> one RunCost, written as JSON in one place (to_json).
// `train`, `infer`, `verify` and `cost roofline` all cost their work here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/arith/format.hpp"
#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/report.hpp"
#include "bitsim/costmodel/roofline.hpp"
#include "bitsim/sim/array_model.hpp"
#include "bitsim/sim/mapper.hpp"

namespace bitsim::costmodel {

// What the mapper minimises for each GEMM (sim/mapper.hpp); `fixed` keeps the array's default
// loop order, for comparison.
enum class MappingGoal : std::uint8_t { Energy, Cycles, DramBytes, EnergyDelay, Fixed };
std::string_view to_string(MappingGoal g);
// "energy", "cycles", "dram", "edp", "fixed"; throws std::invalid_argument naming the token.
MappingGoal parse_mapping_goal(std::string_view name);

// The hardware a workload is costed on. The array's numerics come from each GEMM, not from here.
struct Hardware {
  sim::ArraySpec array;  // rows, cols, dataflow, buffers, DRAM bytes per cycle
  double clock_ghz = 1.0;
  double node_nm = 45;
  std::optional<double> vdd_v;  // default: the node's nominal supply
  Device device = Device::Hp;
  DramEnd dram_end = DramEnd::Low;
  std::string table;       // cost table JSON ("" = the built-in Horowitz 45 nm table)
  MappingGoal mapping = MappingGoal::Energy;

  double dram_gb_per_s() const { return array.dram_bytes_per_cycle * clock_ghz; }
};

// A hardware setting the cost model cannot use; `key` names it (table, node_nm, buffer_kib).
struct CostSetupError : std::invalid_argument {
  CostSetupError(std::string key_, const std::string& what) : std::invalid_argument(what), key(std::move(key_)) {}
  std::string key;
};
// Builds everything evaluate() needs from `hw` (table, node scaling, the SRAM figure at the buffer
// size), so a bad setting is refused before a run rather than after it.
void check_hardware(const Hardware& hw);

enum class Phase : std::uint8_t { Forward, BackwardData, BackwardWeight, Update, Inference };
std::string_view to_string(Phase p);

// A layer of the network: its position and its name in network order (conv1, conv2, fc1, ...).
struct LayerId {
  int index = -1;
  std::string name;
  bool operator==(const LayerId&) const = default;
};

// One GEMM C[MxN] = A[MxK] W[KxN] of the workload, executed `repeat` times at this shape.
struct GemmWork {
  LayerId layer;
  Phase phase = Phase::Forward;
  sim::GemmShape shape;
  arith::Format a, w, acc;
  bool xnor = false;    // binary operands: an XNOR-popcount array, not multipliers
  // One operand is +-1 (binary weights or activations against a wider one): each product is the
  // other operand or its negation, so a PE adds or subtracts it and has no multiplier.
  bool sign_operand = false;
  std::optional<sim::ConvShape> conv;  // a convolution (A = im2col of its input): traffic from the tensors
  double repeat = 1;
  std::string path;     // how the executor computed it (informational)
  // Bits of each finished result on its way to DRAM when a unit after the array narrows it (a
  // requantizer: 8; a threshold compare: 1); 0: the accumulator's width.
  int out_bits = 0;
};

// Work outside the array, e.g. the optimizer's update: `ops` operations of `kind` on formats a, b
// (and acc), and `sram_accesses` SRAM accesses of `access_bits`, `repeat` times.
struct ElementWork {
  LayerId layer;
  Phase phase = Phase::Update;
  std::string what;
  OpKind kind = OpKind::Mac;
  arith::Format a, b;
  std::optional<arith::Format> acc;
  double ops = 0;
  double sram_accesses = 0;
  int access_bits = 32;
  int random_bits = 16;  // StochasticRound
  double repeat = 1;
};

struct Workload {
  std::vector<GemmWork> gemms;
  std::vector<ElementWork> elements;
};

// Additive counts and energy; energy by component ("mac multiplier", "sram read", "dram read", ...).
struct CostLine {
  double macs = 0, cycles = 0, dram_bytes = 0, sram_accesses = 0;
  std::map<std::string, double> energy_pj;
  double energy_total_pj() const;
  void add(const CostLine& o, double scale = 1);
};

struct GemmCost {
  GemmWork work;
  sim::Mapping mapping;     // the mapper's choice
  sim::ArrayStats stats;    // one execution, from the closed form, at that mapping
  double fixed_energy_pj = 0, fixed_cycles = 0;  // one execution at the fixed mapping, for comparison
  CostLine once, total;     // total = once x repeat
  RooflinePoint roofline;   // one execution; DRAM bytes as the array moves them
  double achieved_ops_per_s = 0;  // 2 MACs per modelled cycle at the clock
};

struct ArrayArea {
  double mac_um2 = 0, array_um2 = 0;
  std::string mac_formats;
};

struct RunCost {
  std::string technology;
  double clock_ghz = 0, peak_ops_per_s = 0, dram_gb_per_s = 0;
  std::string array;  // "16x16 ws"
  std::string mapping;  // what the mapper minimised
  std::vector<GemmCost> gemms;
  std::vector<std::pair<LayerId, CostLine>> by_layer;  // network order; element work included
  std::vector<std::pair<Phase, CostLine>> by_phase;    // phase order
  CostLine total;
  double seconds_at_clock = 0;
  std::optional<ArrayArea> area;  // the array's MAC units at the first GEMM's formats
};

// The mapper's searches run on `threads` threads (0: every core); the result does not depend on it.
RunCost evaluate(const Hardware& hw, const Workload& w, int threads = 0);
nlohmann::json to_json(const RunCost& c);

// The cost plots of a run in directory `out`: energy.png (energy per GEMM layer by component,
// network order) and roofline.png (one point per layer: its first GEMM of `phase`, the throughput
// the array achieves beside what the roofline allows; not drawn at unlimited bandwidth). A plotting
// failure does not throw: plots[name] says "ok" or why not.
void write_cost_plots(const std::filesystem::path& out, const std::string& title, const RunCost& cost, Phase phase,
                      nlohmann::json& plots);

}  // namespace bitsim::costmodel
