// Registration functions for the `bitsim` subcommands, one per area of the library.
#pragma once

#include <CLI/CLI.hpp>

namespace bitsim::app {

// formats, quantize, op
void add_arith_commands(CLI::App& app);

// cost energy|area|roofline|fpga|laws
void add_cost_commands(CLI::App& app);

// hw gemm
void add_hw_commands(CLI::App& app);

// train, infer
void add_nn_commands(CLI::App& app);

}  // namespace bitsim::app
