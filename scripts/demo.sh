#!/usr/bin/env bash
# Sets up, builds and runs the main bitsim job: trains LeNet-5 on Fashion-MNIST in the default 8-bit
# configuration, every GEMM bit-exact to the configured array, and shows its report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
build/app/bitsim train experiments/lenet5/int8.toml --out out/lenet5-int8
