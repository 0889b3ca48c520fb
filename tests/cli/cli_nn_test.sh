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
  [ -s "$tmp/run/$f" ] || { echo "FAIL: train wrote no $f, or an empty one"; fails=$((fails + 1)); }
done
[ "$(wc -l < "$tmp/run/metrics.csv")" -eq 3 ] || { echo "FAIL: metrics.csv should have a header and 2 epochs"; fails=$((fails + 1)); }
expect_ok "report schema" '"schema": "bitsim-report/2"' cat "$tmp/run/report.json"

# MACs counted from the shapes: 28x28 inputs, conv 5x5 stride 2 -> 12x12x4 (144 x 4 x 25 = 14400
# MACs), linear 576 -> 10 (5760 MACs): 20160 per example. 2 epochs of 256 examples = 512 forward and
# backward-weight passes; backward-data only for the linear layer (the first layer needs no input
# gradient); the 64 test examples evaluated after each epoch.
phase_macs() {  # PHASE [REPORT]
  tr -d ' \n' < "${2:-$tmp/run/report.json}" | grep -o '"by_phase":{.*' | grep -o "\"$1\":{[^}]*{[^}]*},\"macs\":[0-9.]*" |
    head -1 | sed 's/.*"macs"://'
}
for want in forward=10321920.0 backward-weight=10321920.0 backward-data=2949120.0 inference=2580480.0; do
  got=$(phase_macs "${want%%=*}")
  [ "$got" = "${want#*=}" ] || { echo "FAIL: ${want%%=*} MACs: got '$got', want ${want#*=}"; fails=$((fails + 1)); }
done

# --cost-only costs the same run from its shapes without training: the same MACs per phase and the
# same cycles (seconds at the clock) as the run that trained, and no checkpoint.
expect_ok "cost only" "the run would cost" "$bitsim" train "$tmp/x.toml" --cost-only --out "$tmp/cost"
expect_error "cost only with resume" "--resume excludes --cost-only" "$bitsim" train "$tmp/x.toml" --cost-only --resume --out "$tmp/cost"
[ ! -e "$tmp/cost/checkpoint.bin" ] && [ -s "$tmp/cost/report.json" ] ||
  { echo "FAIL: --cost-only wrote a checkpoint or no report"; fails=$((fails + 1)); }
seconds_at_clock() { tr -d ' \n' < "$1" | grep -o '"seconds_at_clock":[0-9.e+-]*'; }
[ -n "$(seconds_at_clock "$tmp/cost/report.json")" ] &&
  [ "$(seconds_at_clock "$tmp/cost/report.json")" = "$(seconds_at_clock "$tmp/run/report.json")" ] ||
  { echo "FAIL: --cost-only cycles differ from the trained run's"; fails=$((fails + 1)); }
for want in forward=10321920.0 backward-weight=10321920.0 backward-data=2949120.0 inference=2580480.0; do
  got=$(phase_macs "${want%%=*}" "$tmp/cost/report.json")
  [ "$got" = "${want#*=}" ] || { echo "FAIL: --cost-only ${want%%=*} MACs: got '$got', want ${want#*=}"; fails=$((fails + 1)); }
done

# The accuracy the run reports is the last epoch's, and inference from the saved checkpoint (a
# separate load and forward pass) must reproduce it and its loss.
report_acc=$(tr -d ' \n' < "$tmp/run/report.json" | grep -o '"accuracy":{"test":[0-9.]*' | sed 's/.*://')
metrics_acc=$(tail -1 "$tmp/run/metrics.csv" | cut -d, -f6)
metrics_loss=$(tail -1 "$tmp/run/metrics.csv" | cut -d, -f5)
infer_json=$("$bitsim" infer "$tmp/x.toml" --checkpoint "$tmp/run/checkpoint.bin" --json | tr -d ' \n')
infer_acc=$(grep -o '"accuracy":{"test":[0-9.e-]*' <<< "$infer_json" | sed 's/.*://')
infer_loss=$(grep -o '"loss":{"test":[0-9.e-]*' <<< "$infer_json" | sed 's/.*://')
same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && sprintf("%.6f", a) == sprintf("%.6f", b)) }'; }
same "$report_acc" "$metrics_acc" || { echo "FAIL: report accuracy $report_acc, metrics.csv $metrics_acc"; fails=$((fails + 1)); }
same "$infer_acc" "$metrics_acc" || { echo "FAIL: infer accuracy $infer_acc, training $metrics_acc"; fails=$((fails + 1)); }
same "$infer_loss" "$metrics_loss" || { echo "FAIL: infer loss $infer_loss, training $metrics_loss"; fails=$((fails + 1)); }
# Inference reports its cost in the same report schema: 64 test examples x 20160 MACs = 1290240,
# all of them in the inference phase.
"$bitsim" infer "$tmp/x.toml" --checkpoint "$tmp/run/checkpoint.bin" --out "$tmp/inf" >/dev/null 2>&1 ||
  { echo "FAIL: infer --out"; fails=$((fails + 1)); }
inf_macs=$(tr -d ' \n' < "$tmp/inf/report.json" | grep -o '"inference":{[^}]*{[^}]*},"macs":[0-9.]*' | sed 's/.*"macs"://')
[ "$inf_macs" = "1290240.0" ] || { echo "FAIL: inference MACs: got '$inf_macs', want 1290240.0"; fails=$((fails + 1)); }
expect_ok "infer report schema" '"schema": "bitsim-report/2"' cat "$tmp/inf/report.json"
[ -s "$tmp/inf/energy.png" ] || { echo "FAIL: infer drew no energy plot"; fails=$((fails + 1)); }
expect_ok "resume a finished run" "run directory" "$bitsim" train "$tmp/x.toml" --out "$tmp/run" --resume
expect_ok "infer" "64 test examples: accuracy" "$bitsim" infer "$tmp/x.toml" --checkpoint "$tmp/run/checkpoint.bin"
# Sampled GEMMs replayed on the 8x8 array: conv forward is 8 rows x 4 channels (K = 5x5x1), the linear
# layer 8 rows x 10 outputs (K = 12x12x4 = 576) and its weight gradient 8 x 576 (K = batch 32).
verify_out=$("$bitsim" verify "$tmp/x.toml" --steps 1 --samples 3 2>&1)
for want in "32 of 32 outputs match" "80 of 80 outputs match" "4608 of 4608 outputs match"; do
  [[ "$verify_out" == *"$want"* ]] || { echo "FAIL: verify: wanted '$want' in: $verify_out"; fails=$((fails + 1)); }
done

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
