#!/usr/bin/env bash
# End-to-end checks of `bitsim train | infer | verify` on a small synthetic experiment: the run
# directory, resume, inference from the checkpoint, the SystemC replay, and one-line errors.
set -u
bitsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"

cat > "$tmp/x.toml" <<'TOML'
name = "cli-small"
seed = 3
[data]
dataset = "synthetic"
synthetic_train = 256
synthetic_test = 64
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 5, stride = 2 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out = 10 },
]
[train]
epochs = 2
batch = 32
lr = 0.01
[numerics]
weights = "dfx<8,channel>"
activations = "dfx<8>"
errors = { format = "dfx<8>", rounding = "stochastic" }
accumulator = "int<24>"
[hardware]
array = "8x8"
TOML

expect_ok "train" "run directory: $tmp/run" "$bitsim" train "$tmp/x.toml" --out "$tmp/run" --threads 1
for f in report.json metrics.csv checkpoint.bin accuracy.png loss.png energy.png; do
  [ -f "$tmp/run/$f" ] || { echo "FAIL: train wrote no $f"; fails=$((fails + 1)); }
done
[ "$(wc -l < "$tmp/run/metrics.csv")" -eq 3 ] || { echo "FAIL: metrics.csv should have a header and 2 epochs"; fails=$((fails + 1)); }
expect_ok "report schema" '"schema": "bitsim-report/1"' cat "$tmp/run/report.json"
expect_ok "report cost" '"backward-weight"' cat "$tmp/run/report.json"
expect_ok "resume a finished run" "run directory" "$bitsim" train "$tmp/x.toml" --out "$tmp/run" --resume
expect_ok "infer" "64 test examples: accuracy" "$bitsim" infer "$tmp/x.toml" --checkpoint "$tmp/run/checkpoint.bin"
expect_ok "verify" "outputs match" "$bitsim" verify "$tmp/x.toml" --steps 1 --samples 3

expect_error "missing experiment" "$tmp/none.toml" "$bitsim" train "$tmp/none.toml"
expect_error "unknown key" "unknown key 'train.epoch'" "$bitsim" train "$tmp/x.toml" --set train.epoch=3
expect_error "bad format" "numerics.weights" "$bitsim" train "$tmp/x.toml" --set 'numerics.weights="fixed<8"'
expect_error "bad --set" "bad --set 'epochs'" "$bitsim" train "$tmp/x.toml" --set epochs
expect_error "missing data" "/nonexistent/train-images-idx3-ubyte.gz" \
  "$bitsim" train "$tmp/x.toml" --set 'data.dataset="fashion-mnist"' --set 'data.dir="/nonexistent"'
printf 'garbage' > "$tmp/bad.bin"
expect_error "corrupt checkpoint" "$tmp/bad.bin" "$bitsim" infer "$tmp/x.toml" --checkpoint "$tmp/bad.bin"
expect_error "resume without a run" "checkpoint.bin" "$bitsim" train "$tmp/x.toml" --out "$tmp/empty" --resume

if [ $fails -ne 0 ]; then echo "$fails nn CLI checks failed"; exit 1; fi
echo "all nn CLI checks passed"
