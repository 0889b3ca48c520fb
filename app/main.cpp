// Entry point of the `bitsim` command: registers the subcommands and turns every error into one
// line on stderr and a non-zero exit.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <new>

#include "bitsim/nn/trainer.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"bitsim: bit-accurate low-precision arithmetic, hardware models and cost"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bitsim 0.1.0");
  bitsim::app::add_arith_commands(app);
  bitsim::app::add_cost_commands(app);
  bitsim::app::add_hw_commands(app);
  bitsim::app::add_nn_commands(app);
  bitsim::app::add_sweep_command(app);
  using namespace bitsim::app;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "bitsim: error: {} (see bitsim --help)\n", e.what());
    return kExitBadInput;
  } catch (const CheckFailed& e) {
    fmt::print(stderr, "bitsim: check failed: {}\n", e.what());
    return kExitCheckFailed;
  } catch (const bitsim::nn::TrainingDiverged& e) {
    fmt::print(stderr, "bitsim: {}\n", e.what());
    return kExitCheckFailed;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "bitsim: error: out of memory\n");
    return kExitBadInput;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bitsim: error: {}\n", e.what());
    return kExitBadInput;
  }
  return 0;
}
