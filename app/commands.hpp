// Registration functions for the `bitsim` subcommands, one per area of the library.
#pragma once

#include <CLI/CLI.hpp>

namespace bitsim::app {

// formats, quantize, op
void add_arith_commands(CLI::App& app);

}  // namespace bitsim::app
