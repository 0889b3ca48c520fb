#!/usr/bin/env bash
# Integer-only inference (Jacob et al. 2018) of the fp32 LeNet-5: trains experiments/lenet5/fp32.toml
# (5 epochs) unless a checkpoint is given, then runs `bitsim infer --integer-only` under each
# calibration and weight scheme, and the fp32 inference, writing results/integer/summary.csv and
# the reports. Usage: experiments/lenet5/integer.sh [BITSIM] [CHECKPOINT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bitsim="${1:-$here/../../build/app/bitsim}"
out="$here/results/integer"
mkdir -p "$out"
ck="${2:-}"
if [ -z "$ck" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$bitsim" train "$here/fp32.toml" --out "$tmp/fp32" >/dev/null
  ck="$tmp/fp32/checkpoint.bin"
fi
"$bitsim" infer "$here/fp32.toml" --checkpoint "$ck" --json > "$out/fp32.json"
echo "run,calibration,weights,test_accuracy,fp32_accuracy,agreement_with_fp32,energy_j,area_mm2" > "$out/summary.csv.tmp"
row() {  # name calibration weights report
  python3 - "$@" >> "$out/summary.csv.tmp" <<'PY'
import json, sys
name, cal, weights, path = sys.argv[1:]
r = json.load(open(path))
i = r.get("integer_only", {})
fp = i.get("reference", {}).get("accuracy", r["accuracy"]["test"])
print(f'{name},{cal},{weights},{r["accuracy"]["test"]},{fp},{i.get("agreement_with_reference", 1)},'
      f'{r["cost"]["total"]["energy_pj"]["total"] * 1e-12:.6g},{r["cost"]["area"]["array_um2"] * 1e-6:.6g}')
PY
}
row fp32 - fp32 "$out/fp32.json"
for cal in minmax percentile:99.99 percentile:99.9; do
  for w in per-channel per-tensor; do
    f="$out/${cal/:/-}_$w.json"
    "$bitsim" infer "$here/fp32.toml" --checkpoint "$ck" --integer-only --calibration "$cal" --weights "$w" --json > "$f"
    row integer "$cal" "$w" "$f"
  done
done
mv "$out/summary.csv.tmp" "$out/summary.csv"
column -s, -t < "$out/summary.csv"
