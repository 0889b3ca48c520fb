// Registration functions for the `bitsim` subcommands, one per area of the library.
#pragma once

#include <CLI/CLI.hpp>
#include <stdexcept>

namespace bitsim::app {

// Exit statuses (README, "Exit status"): 0 done, 1 a result failed its check (an output that differs
// from its reference, a run that diverged), 2 bad input of any kind (arguments, files, values).
inline constexpr int kExitCheckFailed = 1;
inline constexpr int kExitBadInput = 2;

// A computed result that failed its check, as opposed to input that could not be used.
struct CheckFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// formats, quantize, op
void add_arith_commands(CLI::App& app);

// cost energy|area|roofline|fpga|laws
void add_cost_commands(CLI::App& app);

// hw gemm
void add_hw_commands(CLI::App& app);

// train, infer
void add_nn_commands(CLI::App& app);

// sweep
void add_sweep_command(CLI::App& app);

}  // namespace bitsim::app
