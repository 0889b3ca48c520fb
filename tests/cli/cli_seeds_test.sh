#!/usr/bin/env bash
# The seed reproductions' driver (experiments/seeds/run.py) on a slice of the data: it runs a
# paper's sweeps, then its inference step on every trained point, and summarizes. FINN's popcount
# inference must predict exactly what the float-BatchNorm network does, on every point; Jacob et
# al.'s integer-only runs report their own and their reference's accuracy. Nothing is written
# into the source tree when the data are sliced.
set -u
bitsim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/expect.sh"

before=$(cd "$root/experiments/seeds" && find . -path '*/results/*' -type f -exec md5sum {} + 2>/dev/null | sort)
expect_ok "run.py finn jacob2018" "| QAT | QAT, integer-only (tracked ranges) |" \
  python3 "$root/experiments/seeds/run.py" --bitsim "$bitsim" --out "$tmp/out" --jobs 2 \
  --set train.epochs=1 --set data.train_limit=200 --set data.test_limit=100 finn jacob2018
python3 - "$tmp/out" <<'PY' || fails=$((fails + 1))
import csv, os, sys
out = sys.argv[1]
for sweep in ("finn/sweep-digits", "finn/sweep-fmnist", "jacob2018/sweep"):
    rows = list(csv.DictReader(open(os.path.join(out, sweep, "inference.csv"))))
    points = [r for r in csv.DictReader(open(os.path.join(out, sweep, "results.csv"))) if r["status"] == "ok"]
    assert len(rows) == len(points) > 0, (sweep, len(rows), len(points))
    for r in rows:
        for k in ("reference_accuracy", "integer_accuracy", "same_prediction"):
            assert 0 <= float(r[k]) <= 1, (sweep, r)
        if sweep.startswith("finn"):
            # Thresholds are exact: the same predictions, so the same accuracy, as the float network.
            assert float(r["same_prediction"]) == 1.0 and r["reference_accuracy"] == r["integer_accuracy"], (sweep, r)
    assert os.path.getsize(os.path.join(out, sweep, "summary.md")) > 0
runs = {r["run"] for r in csv.DictReader(open(os.path.join(out, "jacob2018/sweep/inference.csv")))}
assert runs == {"fp32, post-training int8 (min/max ranges)", "QAT, integer-only (tracked ranges)"}, runs
PY
after=$(cd "$root/experiments/seeds" && find . -path '*/results/*' -type f -exec md5sum {} + 2>/dev/null | sort)
[ "$before" = "$after" ] || { echo "FAIL: a sliced run changed files under experiments/seeds/*/results"; fails=$((fails + 1)); }
expect_error "unknown paper" "run.py: unknown paper 'gupta'" python3 "$root/experiments/seeds/run.py" --bitsim "$bitsim" gupta

if [ $fails -ne 0 ]; then echo "$fails seed-driver checks failed"; exit 1; fi
echo "seed driver: sweeps, inference steps and summaries checked"
