#!/usr/bin/env bash
# Runs the PyTorch-trained, ONNX-exported LeNet-5 (lenet5_bn.onnx) through bitsim and keeps the
# results in experiments/onnx/results/: fp32 inference against PyTorch's own predictions
# (torch_predictions.csv, from train_torch_lenet.py), the numerics sweep (sweep-numerics.toml:
# results.csv, the Pareto plots, sweep.log), integer-only inference, and summary.md.
# Usage: experiments/onnx/run.sh [path/to/bitsim] [output dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bitsim=${1:-$here/../../build/app/bitsim}
out=${2:-$here/../../out/onnx}
[ -x "$bitsim" ] || { echo "run.sh: no bitsim at '$bitsim' (build it, or pass its path)" >&2; exit 1; }
keep="$here/results"
mkdir -p "$out" "$keep/numerics"

"$bitsim" infer "$here/lenet5.toml" --outputs "$out/fp32_outputs.csv" --json >"$out/fp32.json"
"$bitsim" infer "$here/lenet5.toml" --integer-only --json >"$out/integer.json"
resume=()
[ -e "$out/numerics/sweep.json" ] && resume=(--resume)
"$bitsim" sweep "$here/sweep-numerics.toml" --out "$out/numerics" --jobs "$(nproc)" "${resume[@]}" | tee "$out/numerics.log"
cp "$out"/numerics/results.csv "$out"/numerics/pareto_*.png "$keep/numerics/"
{ echo "# $("$bitsim" --version), $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"; cat "$out/numerics.log"; } >"$keep/numerics/sweep.log"

/usr/bin/python3 - "$here" "$out" <<'PY'
import csv, json, sys
here, out = sys.argv[1], sys.argv[2]
torch = json.load(open(f"{here}/torch.json"))
ours = list(csv.DictReader(open(f"{out}/fp32_outputs.csv")))
theirs = list(csv.DictReader(open(f"{here}/torch_predictions.csv")))
same = sum(a["prediction"] == b["prediction"] for a, b in zip(ours, theirs))
fp32 = json.load(open(f"{out}/fp32.json"))
integer = json.load(open(f"{out}/integer.json"))
lines = ["# LeNet-5 trained in PyTorch, exported to ONNX, run by bitsim", "",
         f"PyTorch {torch['torch']} trained it ({torch['epochs']} epochs, batch {torch['batch']}, {torch['optimizer']}) "
         f"and measured {100 * torch['test_accuracy']:.2f}% on Fashion-MNIST's 10,000 test images.", "",
         "| run | test accuracy | same prediction as PyTorch | inference energy (10,000 images) |", "| --- | ---: | ---: | ---: |",
         f"| bitsim, fp32 | {100 * fp32['accuracy']['test']:.2f}% | {same} of {len(theirs)} | {1e-9 * fp32['cost']['total']['energy_pj']['total']:.1f} mJ |",
         f"| bitsim, integer-only (uint8 / int8 / int32, min/max calibration) | {100 * integer['accuracy']['test']:.2f}% | - | "
         f"{1e-9 * integer['cost']['total']['energy_pj']['total']:.1f} mJ |", "",
         "## Numerics sweep (`sweep-numerics.toml`)", "", "| numerics | test accuracy | energy (mJ) | array area (mm^2) |",
         "| --- | ---: | ---: | ---: |"]
names = {}
import re
sweep = open(f"{here}/sweep-numerics.toml").read()
labels = re.findall(r'"([^"]+)"', sweep[sweep.index("names"):sweep.index("keys")])
for label, r in zip(labels, csv.DictReader(open(f"{out}/numerics/results.csv"))):
    lines.append(f"| {label} | {100 * float(r['accuracy.test']):.2f}% | {1e3 * float(r['cost.energy_j']):.1f} | {float(r['cost.area_mm2']):.3f} |")
open(f"{here}/results/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
