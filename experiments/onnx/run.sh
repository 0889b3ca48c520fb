#!/usr/bin/env bash
# Runs the PyTorch-trained, ONNX-exported LeNet-5 (lenet5_bn.onnx) through bitsim and keeps the
# results in experiments/onnx/results/: fp32 inference against PyTorch's own predictions
# (torch_predictions.csv, from train_torch_lenet.py), the numerics sweep (sweep-numerics.toml:
# results.csv, the Pareto plots, sweep.log), integer-only inference, and summary.md; then, where
# python3-torch and python3-torchvision are installed, torchvision's ResNet-18 exported to ONNX
# (export_torchvision_resnet18.py): bitsim's logits against PyTorch's, and its cost beside the
# shipped SCALE-Sim topology experiments/topologies/resnet18.csv (results/resnet18.md).
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

/usr/bin/python3 -c "import torchvision" 2>/dev/null || { echo "run.sh: python3-torchvision is not installed; the ResNet-18 part is skipped"; exit 0; }
/usr/bin/python3 "$here/export_torchvision_resnet18.py" "$out"
cat >"$out/resnet18.toml" <<EOF
name = "torchvision-resnet18-fashion-mnist"
[data]
dataset = "fashion-mnist"
test_limit = 1000
[model]
onnx = "resnet18_fmnist.onnx"
[train]
batch = 64
EOF
"$bitsim" infer "$out/resnet18.toml" --outputs "$out/resnet18_outputs.csv" >/dev/null
"$bitsim" cost network --onnx "$out/resnet18_224.onnx" --array 32x32 --json >"$out/resnet18_onnx_cost.json"
"$bitsim" cost network --topology "$here/../topologies/resnet18.csv" --array 32x32 --json >"$out/resnet18_topology_cost.json"
/usr/bin/python3 - "$here" "$out" <<'PY'
import csv, json, sys
here, out = sys.argv[1], sys.argv[2]
got = list(csv.DictReader(open(f"{out}/resnet18_outputs.csv")))
want = list(csv.DictReader(open(f"{out}/torch_resnet18_logits.csv")))
worst, same = 0.0, 0
for g, w in zip(got, want):
    keys = [k for k in w if k.startswith("logit_")]
    ref = [float(w[k]) for k in keys]
    scale = 1 + max(abs(v) for v in ref)
    worst = max(worst, max(abs(float(g[k]) - float(w[k])) for k in keys) / scale)
    same += int(g["prediction"]) == ref.index(max(ref))
a, b = json.load(open(f"{out}/resnet18_onnx_cost.json")), json.load(open(f"{out}/resnet18_topology_cost.json"))
ta, tb = a["totals"], b["totals"]
lines = ["# torchvision's ResNet-18 through ONNX", "",
         f"Fashion-MNIST's first {len(want)} test images through torchvision 0.14's ResNet-18 (random weights, BatchNorm",
         "statistics drawn at random, a 1-channel first convolution), exported by `torch.onnx.export`:",
         f"bitsim's fp32 logits are within {worst:.2g} (relative to each example's largest) of PyTorch's, and",
         f"the predictions agree on {same} of {len(want)}.", "",
         "The ImageNet network (3 x 224 x 224) costed from its ONNX file and from the shipped SCALE-Sim topology",
         "`experiments/topologies/resnet18.csv` (written from the paper's table), on a 32x32 weight-stationary array:", "",
         "| | layers | MACs | cycles | DRAM bytes | energy (uJ) |", "| --- | ---: | ---: | ---: | ---: | ---: |",
         f"| ONNX export | {len(a['layers'])} | {ta['macs']:.0f} | {ta['cycles']:.0f} | {ta['dram_bytes']:.0f} | {ta['energy_pj']['total'] / 1e6:.1f} |",
         f"| topology file | {len(b['layers'])} | {tb['macs']:.0f} | {tb['cycles']:.0f} | {tb['dram_bytes']:.0f} | {tb['energy_pj']['total'] / 1e6:.1f} |", "",
         "Every layer's MACs agree; the topology file gives SCALE-Sim's unpadded inputs (the padding written into",
         "the IFMAP size, so the DMA fetches the zero rows too) and the classifier as a 1x1 convolution, the ONNX",
         "model pads on chip and has a Gemm: that is the traffic and energy difference.", ""]
lines += ["| layer (ONNX) | MACs | layer (topology) | MACs |", "| --- | ---: | --- | ---: |"]
for x, y in zip(a["layers"], b["layers"]):
    lines.append(f"| {x['name']} | {x['macs']:.0f} | {y['name']} | {y['macs']:.0f} |")
open(f"{here}/results/resnet18.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines[:16]))
PY
