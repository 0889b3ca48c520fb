#!/usr/bin/env bash
# FINN's binarized inference, bit for bit: trains experiments/methods/bnn.toml (BNN MLP on the npm
# digits, 10 epochs) and runs `bitsim infer --popcount` on its checkpoint, writing
# results/popcount/report.json, and its FPGA pipeline to results/popcount/fpga.json. Usage: experiments/finn/popcount.sh [BITSIM]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bitsim="${1:-$here/../../build/app/bitsim}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bitsim" train "$here/../methods/bnn.toml" --out "$tmp/bnn" >/dev/null
rm -rf "$here/results/popcount"
"$bitsim" infer "$here/../methods/bnn.toml" --checkpoint "$tmp/bnn/checkpoint.bin" --popcount --out "$here/results/popcount" |
  tee "$tmp/summary.txt"
cp "$tmp/summary.txt" "$here/results/popcount/summary.txt"
# The same network as FINN's folded pipeline on the ZU19EG at 300 MHz.
"$bitsim" cost fpga --experiment "$here/../methods/bnn.toml" --clock 0.3 --json > "$here/results/popcount/fpga.json"
