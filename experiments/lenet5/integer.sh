#!/usr/bin/env bash
# Integer-only inference (Jacob et al. 2018) of LeNet-5: post-training quantization of the fp32 run
# (experiments/lenet5/fp32.toml, 5 epochs) under each calibration and weight scheme, and the
# quantization-aware run (experiments/methods/qat.toml, 5 epochs) with the ranges it tracked and
# with min/max ranges; both trained unless their checkpoints are given. Writes
# results/integer/summary.csv and one report per row.
# Usage: experiments/lenet5/integer.sh [BITSIM] [FP32_CHECKPOINT] [QAT_CHECKPOINT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bitsim="${1:-$here/../../build/app/bitsim}"
out="$here/results/integer"
mkdir -p "$out"
ck="${2:-}" qat_ck="${3:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$ck" ]; then
  "$bitsim" train "$here/fp32.toml" --out "$tmp/fp32" >/dev/null
  ck="$tmp/fp32/checkpoint.bin"
fi
qat="$here/../methods/qat.toml"
if [ -z "$qat_ck" ]; then
  "$bitsim" train "$qat" --out "$tmp/qat" >/dev/null
  qat_ck="$tmp/qat/checkpoint.bin"
fi
"$bitsim" infer "$here/fp32.toml" --checkpoint "$ck" --json > "$out/fp32.json"
echo "run,calibration,weights,test_accuracy,reference_accuracy,agreement_with_reference,energy_j,area_mm2" > "$out/summary.csv.tmp"
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
"$bitsim" infer "$qat" --checkpoint "$qat_ck" --json > "$out/qat.json"
row qat-fake-quantized - symmetric-int8 "$out/qat.json"
for cal in ema minmax; do
  f="$out/qat_$cal.json"
  "$bitsim" infer "$qat" --checkpoint "$qat_ck" --integer-only --calibration "$cal" --json > "$f"
  row qat-integer "$cal" per-channel "$f"
done
mv "$out/summary.csv.tmp" "$out/summary.csv"
column -s, -t < "$out/summary.csv"
