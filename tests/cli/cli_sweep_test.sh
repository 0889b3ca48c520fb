#!/usr/bin/env bash
# End-to-end checks of `bitsim sweep` on a small synthetic experiment: the results do not depend on
# --jobs, a sweep killed with kill -9 resumes to the same results.csv, a failing point is recorded
# while the others run, the fronts and plots, cost mode, --point / --merge, the Slurm scripts of
# --dry-run, and one-line errors for bad input before anything is written.
set -u
bitsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"
source "$(dirname "$0")/sweep_results.sh"

cat > "$tmp/tiny.toml" <<'TOML'
name = "sweep-tiny"
[data]
dataset = "synthetic"
synthetic_train = 256
synthetic_test = 64
[model]
layers = [ { type = "flatten" }, { type = "linear", out = 32 }, { type = "relu" }, { type = "linear", out = 10 } ]
[train]
epochs = 3
batch = 32
lr = 0.01
[numerics]
weights = "fixed<8,6>"
errors = { format = "dfx<8>", rounding = "stochastic" }
[hardware]
array = "8x8"
TOML
cat > "$tmp/sweep.toml" <<'TOML'
experiment = "tiny.toml"
seeds = [1, 2]
[set]
"train.epochs" = 2
[[axis]]
key = "numerics.weights"
values = ["fixed<8,6>", "fixed<4,3>", "dfx<6,channel>"]
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16"]
TOML

# The same sweep, one point at a time and two at a time.
expect_ok "sweep --jobs 1" "12 points: 12 ok, 0 failed, 0 not run" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --jobs 1
expect_ok "sweep --jobs 2" "Pareto front, max:accuracy.test against min:cost.energy_j" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j2" --jobs 2
same_results "--jobs 1 and --jobs 2" "$tmp/j1/results.csv" "$tmp/j2/results.csv"
for f in results.csv results.json configs.csv sweep.json pareto_energy.png pareto_area.png pareto_energy_area.png points/0000/report.json points/0011/checkpoint.bin; do
  [ -s "$tmp/j1/$f" ] || { echo "FAIL: sweep wrote no $f"; fails=$((fails + 1)); }
done
rows=$(tail -n +2 "$tmp/j1/results.csv" | grep -c ',ok,')
[ "$rows" -eq 12 ] || { echo "FAIL: results.csv has $rows ok rows, want 12"; fails=$((fails + 1)); }
# Every point's accuracy is its run's report.json's; seeds 1 and 2 of one configuration differ.
acc0=$(column accuracy.test "$tmp/j1/results.csv" | sed -n 1p)
rep0=$(python3 -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['accuracy']['test']))" "$tmp/j1/points/0000/report.json")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) == float(sys.argv[2]) else 1)" "$acc0" "$rep0" ||
  { echo "FAIL: point 0000 accuracy $acc0 in results.csv, $rep0 in its report.json"; fails=$((fails + 1)); }
seeds=$(column seed "$tmp/j1/results.csv" | sed -n 1,2p | tr '\n' ' ')
[ "$seeds" = "1 2 " ] || { echo "FAIL: seed column '$seeds', want '1 2 '"; fails=$((fails + 1)); }
loss_a=$(column loss.train "$tmp/j1/results.csv" | sed -n 1p); loss_b=$(column loss.train "$tmp/j1/results.csv" | sed -n 2p)
[ "$loss_a" != "$loss_b" ] || { echo "FAIL: seeds 1 and 2 trained identically ($loss_a)"; fails=$((fails + 1)); }
# The fronts are flagged per configuration, and 4-bit weights cost less energy than 8-bit on the same array.
flags=$(column "front:accuracy.test/cost.energy_j" "$tmp/j1/results.csv" | sort -u | tr '\n' ' ')
[ "$flags" = "0 1 " ] || { echo "FAIL: front flags '$flags', want both 0 and 1"; fails=$((fails + 1)); }
configs=$(($(wc -l <"$tmp/j1/configs.csv") - 1))
[ "$configs" -eq 6 ] || { echo "FAIL: configs.csv has $configs rows, want 6"; fails=$((fails + 1)); }
# Learning curves: curves.csv holds every point's metrics.csv, epoch by epoch, with its configuration;
# curves.png plots the configurations' means; configs.csv names each configuration by its label.
python3 - "$tmp/j1" <<'PY' || { echo "FAIL: curves.csv does not hold the points' metrics.csv"; fails=$((fails + 1)); }
import csv, os, sys
d = sys.argv[1]
curves = list(csv.DictReader(open(os.path.join(d, "curves.csv"))))
points = sorted(os.listdir(os.path.join(d, "points")))
assert len(curves) == 2 * len(points) == 24, len(curves)
for row in curves:
    own = list(csv.DictReader(open(os.path.join(d, "points", row["id"], "metrics.csv"))))[int(row["epoch"]) - 1]
    for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert float(row[k]) == float(own[k]), (row, own)
    assert row["seed"] in ("1", "2") and row["config"] == str(int(row["id"]) // 2), row
labels = {r["config"]: r["label"] for r in csv.DictReader(open(os.path.join(d, "configs.csv")))}
assert labels["4"] == "weights=dfx<6,channel> array=8x8", labels
assert all(labels[r["config"]] == r["label"] for r in curves)
assert os.path.getsize(os.path.join(d, "curves.png")) > 0
PY
e8=$(column cost.energy_j "$tmp/j1/results.csv" | sed -n 1p); e4=$(column cost.energy_j "$tmp/j1/results.csv" | sed -n 5p)
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) else 1)" "$e8" "$e4" ||
  { echo "FAIL: fixed<4,3> energy $e4 not below fixed<8,6> energy $e8"; fails=$((fails + 1)); }

# kill -9 in the middle, then --resume: only unfinished points run and results.csv is the same.
"$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/k" --jobs 2 >/dev/null 2>&1 &
pid=$!
for ((i = 0; i < 600; i++)); do
  n=$(find "$tmp/k/points" -name result.json 2>/dev/null | wc -l)
  [ "$n" -ge 3 ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
done_before=$(find "$tmp/k/points" -name result.json | wc -l)
sleep 0.3
stray=$(pgrep -f -- "--out $tmp/k --point" | wc -l)
[ "$stray" -eq 0 ] || { echo "FAIL: $stray point processes outlived the killed sweep"; fails=$((fails + 1)); }
if [ "$done_before" -ge 12 ]; then echo "FAIL: the sweep finished before it was killed; the resume check needs a slower sweep"; fails=$((fails + 1)); fi
expect_ok "sweep --resume" "resuming: $((12 - done_before)) of 12 points left to run" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/k" --jobs 2 --resume
same_results "a killed and resumed sweep and an uninterrupted one" "$tmp/j1/results.csv" "$tmp/k/results.csv"
expect_ok "--resume with nothing left" "resuming: 0 of 12 points left to run" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/k" --resume

# --merge rewrites the same table; --point reruns one point into a started sweep.
cp "$tmp/j1/results.csv" "$tmp/j1.csv"
expect_ok "--merge" "12 points: 12 ok" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --merge
same_results "--merge" "$tmp/j1.csv" "$tmp/j1/results.csv"
rm "$tmp/j1/points/0003/result.json"
expect_ok "--point" "point 0003 (weights=fixed<8,6> array=16x16): ok" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --point 3 --threads 1
expect_ok "--merge after --point" "12 points: 12 ok" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --merge
same_results "a point rerun with --point" "$tmp/j1.csv" "$tmp/j1/results.csv"

# A point that fails when it runs (an output of 5 values for 10 classes) is recorded; the rest run.
cat > "$tmp/fail.toml" <<'TOML'
experiment = "tiny.toml"
[[axis]]
key = "model.layers[3].out"
values = [10, 5]
TOML
out=$("$bitsim" sweep "$tmp/fail.toml" --out "$tmp/f" 2>&1); rc=$?
[ $rc -eq 1 ] || { echo "FAIL: a sweep with a failed point: exit $rc, want 1"; fails=$((fails + 1)); }
[[ "$out" == *"2 points: 1 ok, 1 failed"* && "$out" == *"1 of 2 points failed"* ]] || { echo "FAIL: failed point summary: $out"; fails=$((fails + 1)); }
grep -q '^0001,5,failed,.*one per class of the data' "$tmp/f/results.csv" || { echo "FAIL: results.csv lacks the failed point's error"; sed -n 3p "$tmp/f/results.csv"; fails=$((fails + 1)); }

# Cost mode: no training, cost columns only, energy/latency/area fronts.
cat > "$tmp/cost.toml" <<'TOML'
experiment = "tiny.toml"
mode = "cost"
[[axis]]
key = "hardware.array"
values = ["4x4", "8x8", "16x16"]
[[axis]]
key = "hardware.node_nm"
values = [45, 7]
TOML
expect_ok "cost sweep" "Pareto front, min:cost.energy_j against min:cost.latency_s" "$bitsim" sweep "$tmp/cost.toml" --out "$tmp/c" --jobs 2
head -1 "$tmp/c/results.csv" | grep -q accuracy && { echo "FAIL: a cost sweep has accuracy columns"; fails=$((fails + 1)); }
[ -s "$tmp/c/pareto_energy_latency.png" ] || { echo "FAIL: cost sweep wrote no pareto_energy_latency.png"; fails=$((fails + 1)); }
[ ! -e "$tmp/c/points/0000/checkpoint.bin" ] || { echo "FAIL: a cost point trained"; fails=$((fails + 1)); }
# The 7 nm point of an array costs less energy than the 45 nm one, at the same latency.
e45=$(column cost.energy_j "$tmp/c/results.csv" | sed -n 1p); e7=$(column cost.energy_j "$tmp/c/results.csv" | sed -n 2p)
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) else 1)" "$e45" "$e7" ||
  { echo "FAIL: 7 nm energy $e7 not below 45 nm energy $e45"; fails=$((fails + 1)); }
l45=$(column cost.latency_s "$tmp/c/results.csv" | sed -n 1p); l7=$(column cost.latency_s "$tmp/c/results.csv" | sed -n 2p)
[ "$l45" = "$l7" ] || { echo "FAIL: the node changed the latency ($l45 vs $l7)"; fails=$((fails + 1)); }

# Infer mode: one trained checkpoint evaluated under each point's numerics.
"$bitsim" train "$tmp/tiny.toml" --out "$tmp/trained" --threads 1 >/dev/null 2>&1
cat > "$tmp/infer.toml" <<'TOML'
experiment = "tiny.toml"
mode = "infer"
checkpoint = "trained/checkpoint.bin"
[[axis]]
key = "numerics.activations"
values = ["fp32", "fixed<8,4>", "fixed<3,1>"]
TOML
expect_ok "infer sweep" "3 points: 3 ok" "$bitsim" sweep "$tmp/infer.toml" --out "$tmp/i" --jobs 2
acc_fp32=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy']['test'])" "$tmp/trained/report.json")
acc_first=$(column accuracy.test "$tmp/i/results.csv" | sed -n 1p)
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) == float(sys.argv[2]) else 1)" "$acc_fp32" "$acc_first" ||
  { echo "FAIL: the fp32 point of the infer sweep has accuracy $acc_first, the trained run $acc_fp32"; fails=$((fails + 1)); }
head -1 "$tmp/i/results.csv" | grep -q "accuracy.train" && { echo "FAIL: an infer sweep has training columns"; fails=$((fails + 1)); }

# --dry-run lists the points and writes nothing; with --slurm it writes the job scripts only.
expect_ok "--dry-run" '0011  train.epochs=2 numerics.weights="dfx<6,channel>" hardware.array="16x16" seed=2' "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/dry" --dry-run
[ ! -e "$tmp/dry" ] || { echo "FAIL: --dry-run created the sweep directory"; fails=$((fails + 1)); }
expect_ok "--set replaces a value of [set]" '0000  train.epochs=1 numerics.weights' "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/dry" --dry-run --set train.epochs=1
expect_ok "--set adds to [set]" '0000  train.epochs=2 data.train_limit=100 ' "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/dry" --dry-run --set data.train_limit=100
expect_error "--set of an axis key" "'hardware.array' is already set" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/dry" --set hardware.array=4x4
expect_error "--resume with another --set" "differs from" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --resume --set train.epochs=1
expect_ok "--slurm --dry-run" "sbatch --parsable --partition=cpu --array=0-11%3" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/s" --slurm --dry-run --jobs 3 --sbatch-args "--partition=cpu"
grep -q -- '--point "$index"' "$tmp/s/slurm/points.sbatch" || { echo "FAIL: points.sbatch does not run --point"; fails=$((fails + 1)); }
grep -q -- '--merge' "$tmp/s/slurm/merge.sbatch" || { echo "FAIL: merge.sbatch does not run --merge"; fails=$((fails + 1)); }
[ ! -e "$tmp/s/points/0000" ] || { echo "FAIL: --slurm --dry-run ran a point"; fails=$((fails + 1)); }
expect_error "--slurm without sbatch" "sbatch not found on PATH" env PATH=/nonexistent "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/nos" --slurm
[ ! -e "$tmp/nos" ] || { echo "FAIL: --slurm without sbatch wrote the sweep directory"; fails=$((fails + 1)); }

# Bad input: one line, exit 2, nothing written.
printf 'experiment = "tiny.toml"\n[[axis]]\nkey = "numerics.weights"\nvalues = ["fixed<8,6>", "fxd<4>"]\n' >"$tmp/bad.toml"
expect_error "a bad axis value" "axis 'numerics.weights' value 'fxd<4>'" "$bitsim" sweep "$tmp/bad.toml" --out "$tmp/bad"
[ ! -e "$tmp/bad" ] || { echo "FAIL: a refused sweep wrote its directory"; fails=$((fails + 1)); }
printf 'experiment = "tiny.toml"\n[[axis]]\nkey = "hardware.arrray"\nvalues = ["8x8"]\n' >"$tmp/bad2.toml"
expect_error "an unknown key" "unknown key 'hardware.arrray'" "$bitsim" sweep "$tmp/bad2.toml" --out "$tmp/bad"
expect_error "a missing sweep file" "$tmp/none.toml: cannot open" "$bitsim" sweep "$tmp/none.toml" --out "$tmp/bad"
expect_error "a sweep directory in use" "holds a sweep already; --resume continues it" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1"
expect_error "--resume of another sweep" "differs from" "$bitsim" sweep "$tmp/cost.toml" --out "$tmp/j1" --resume
expect_error "--point out of range" "--point 12: the sweep has points 0 to 11" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --point 12
expect_error "--point without a started sweep" "no sweep here" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/nothing" --point 0
expect_error "--sbatch-args without --slurm" "requires --slurm" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/bad" --sbatch-args "-p x"
expect_error "--point with --jobs" "excludes" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/j1" --point 0 --jobs 2
mkdir -p "$tmp/full"; touch "$tmp/full/x"
expect_error "a non-empty --out" "not empty and not a sweep directory" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/full"

if [ $fails -ne 0 ]; then echo "$fails sweep checks failed"; exit 1; fi
echo "all sweep checks passed"
