#!/usr/bin/env bash
# `bitsim sweep --slurm` on a real Slurm: a private single-node cluster (scripts/slurm-local.sh)
# runs the sweep's job array and its dependent merge job, and the merged results.csv equals the
# same sweep run locally (wall seconds aside). Needs root and Slurm; otherwise SKIP, exit 77.
set -u
bitsim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$(dirname "$0")/expect.sh"
source "$(dirname "$0")/sweep_results.sh"

t0=$SECONDS
tmp=$(mktemp -d)
source "$(dirname "$0")/slurm_cluster.sh"

cat > "$tmp/tiny.toml" <<'TOML'
name = "sweep-slurm"
[data]
dataset = "synthetic"
synthetic_train = 128
synthetic_test = 64
[model]
layers = [ { type = "flatten" }, { type = "linear", out = 10 } ]
[train]
epochs = 1
batch = 32
[numerics]
weights = "fixed<8,6>"
[hardware]
array = "8x8"
TOML
cat > "$tmp/sweep.toml" <<'TOML'
experiment = "tiny.toml"
seeds = [1, 2]
[[axis]]
key = "numerics.weights"
values = ["fixed<8,6>", "fixed<4,3>"]
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16"]
TOML

out=$("$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/slurm" --slurm --jobs 3 2>&1)
rc=$?
array=$(sed -n 's/^array job \([0-9]*\); merge job \([0-9]*\) .*/\1/p' <<<"$out")
merge=$(sed -n 's/^array job \([0-9]*\); merge job \([0-9]*\) .*/\2/p' <<<"$out")
if [ $rc -ne 0 ] || [ -z "$array" ] || [ -z "$merge" ]; then echo "FAIL: sweep --slurm: rc=$rc: $out"; exit 1; fi
[[ "$out" == *"--array=0-7%3"* && "$out" == *"--dependency=afterany:$array"* ]] ||
  { echo "FAIL: sweep --slurm submitted: $out"; fails=$((fails + 1)); }

# Wait (at most 120 s) until the merge job has left the queue's active states.
state=
for ((i = 0; i < 600; i++)); do
  state=$(squeue -h -t all -j "$merge" -o %T 2>/dev/null)
  case "$state" in PENDING | CONFIGURING | RUNNING | COMPLETING | "") sleep 0.2 ;; *) break ;; esac
done
[ "$state" = COMPLETED ] || { echo "FAIL: merge job $merge: state '$state'"; cat "$tmp"/slurm/slurm/merge-*.log; fails=$((fails + 1)); }
tasks=$(squeue -h -t all -j "$array" -o '%K %T' 2>/dev/null | sort -n | tr '\n' ';')
[ "$tasks" = "0 COMPLETED;1 COMPLETED;2 COMPLETED;3 COMPLETED;4 COMPLETED;5 COMPLETED;6 COMPLETED;7 COMPLETED;" ] ||
  { echo "FAIL: array job $array: tasks '$tasks', want 0..7 COMPLETED"; fails=$((fails + 1)); }
grep -q "8 points: 8 ok" "$tmp"/slurm/slurm/merge-*.log || { echo "FAIL: the merge job's log: $(cat "$tmp"/slurm/slurm/merge-*.log)"; fails=$((fails + 1)); }
for f in results.csv results.json configs.csv pareto_energy.png; do
  [ -s "$tmp/slurm/$f" ] || { echo "FAIL: the merge job wrote no $f"; fails=$((fails + 1)); }
done

# The same sweep here: the same results, whichever machine ran which point in which order.
expect_ok "the same sweep locally" "8 points: 8 ok" "$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/local" --jobs 2
same_results "Slurm and local runs of one sweep" "$tmp/slurm/results.csv" "$tmp/local/results.csv"

if [ $fails -ne 0 ]; then echo "$fails Slurm sweep checks failed"; exit 1; fi
echo "a sweep ran on a private Slurm cluster as an 8-task array and a merge job, equal to the local run ($((SECONDS - t0)) s)"
