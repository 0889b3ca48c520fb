#!/usr/bin/env bash
# Sets up, builds and runs the main bitsim demo: the format calculator on a few classic cases, the
# cost model, and a GEMM through the SystemC systolic array.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
b=build/app/bitsim
set -x
$b formats fp8e4m3
$b quantize --format fp16 0.1 65519 65520 0x1p-25 0x1.8p-25
$b quantize --format 'fixed<8,4>' --rounding nearest-even 0.09375 0.15625 -8.03125 100
$b quantize --format 'fixed<8,4>' --rounding stochastic --seed 7 0.1 0.1 0.1 0.1
$b cost energy --op mac --format 'int<8>' --acc-format 'int<32>'
$b cost roofline --array 16x16 --clock 1 --bandwidth 25.6 --gemm fc1=64x784x256 --gemm conv1=576x25x6
$b hw gemm --array 16x16 --dataflow ws --m 64 --k 256 --n 128
