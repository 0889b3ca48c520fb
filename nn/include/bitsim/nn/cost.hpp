// What a run costs on the configured hardware, counted exactly from the GEMM shapes the layers ran:
// MACs per layer and phase, cycles from sim's closed-form array model (tiles, fill, drain, DRAM
// stalls), buffer and DRAM traffic, energy from costmodel (MACs, SRAM accesses, DRAM bytes, the
// optimizer's fp32 update), the array's area, and each layer's roofline position.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/layers.hpp"

namespace bitsim::nn {

// How many examples a run put through each kind of pass.
struct RunVolume {
  std::int64_t train_examples_per_epoch = 0, test_examples_per_epoch = 0;
  int epochs = 0;
  std::int64_t batch = 1;
  std::int64_t parameters = 0;  // updated once per training step
};

// A hardware setting the cost model cannot use; `key` names it within [hardware] (table, node_nm,
// buffer_kib).
struct CostSetupError : std::invalid_argument {
  CostSetupError(std::string key_, const std::string& what) : std::invalid_argument(what), key(std::move(key_)) {}
  std::string key;
};
// Builds everything run_cost() will need from `hw` (the cost table, the node scaling, the SRAM
// figure at the buffer size), so a bad setting is refused before a run instead of after it.
void check_cost_hardware(const HardwareSpec& hw);

// `gemms`: the GEMMs of one training step at batch size `volume.batch` (forward, backward-data,
// backward-weight of every GEMM layer), as recorded by the layers. Throws costmodel errors for a
// bad cost table.
nlohmann::json run_cost(const Experiment& x, const std::vector<GemmRecord>& gemms, const RunVolume& volume);

}  // namespace bitsim::nn
