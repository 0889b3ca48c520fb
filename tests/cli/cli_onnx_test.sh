#!/usr/bin/env bash
# ONNX models end to end: tests/cli/onnx_models.py builds models with onnx.helper (every supported
# operator, a grouped and a depthwise convolution, a projection shortcut; opsets 13 and 17) and,
# when PyTorch is installed, exports a CNN with torch.onnx.export; it writes each model's logits from
# an independent float64 reference (numpy loops) or from PyTorch itself. `bitsim infer` on the
# model's fp32 numerics must give those logits to within fp32 rounding and the same predictions;
# under 8-bit numerics it runs, and `verify` replays its GEMMs (grouped ones too) through the
# SystemC array bit for bit; training starts from the model's weights. Models bitsim cannot run
# give one error line naming the node, operator or shape, and exit status 2.
set -u
bitsim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/expect.sh"
# Debian's interpreter, which python3-onnx and python3-numpy (and python3-torch) install into.
py=/usr/bin/python3

"$py" "$root/tests/cli/onnx_models.py" "$tmp" || { echo "FAIL: building the ONNX models"; exit 1; }

experiment() {  # name, model file
  cat > "$tmp/$1.toml" <<EOF
name = "$1"
[data]
dataset = "fashion-mnist"
dir = "$tmp/data"
[model]
onnx = "$2"
[train]
batch = 16
EOF
}

int8=(--set 'numerics.weights="dfx<8,channel>"' --set 'numerics.activations="dfx<8>"'
      --set 'numerics.errors={format="dfx<8>",rounding="stochastic"}' --set 'numerics.accumulator="int<32>"')
models=(every_op gap)
[ -f "$tmp/torch_cnn.onnx" ] && models+=(torch_cnn) || echo "note: python3-torch is not installed; the torch.onnx.export model is skipped"
for m in "${models[@]}"; do
  experiment "$m" "$m.onnx"
  "$bitsim" infer "$tmp/$m.toml" --outputs "$tmp/$m.out.csv" >/dev/null 2>&1 || { echo "FAIL: infer $m"; fails=$((fails + 1)); continue; }
  # Each logit within fp32 rounding of the reference (relative to the example's largest logit), and
  # the same prediction wherever the reference's top two logits are not within that tolerance.
  "$py" - "$tmp/$m.out.csv" "$tmp/$m.expected.csv" "$m" <<'EOF' || fails=$((fails + 1))
import csv, sys
def fail(msg):
    print(f"FAIL: {sys.argv[3]}: {msg}")
    sys.exit(1)
got = list(csv.DictReader(open(sys.argv[1])))
want = list(csv.DictReader(open(sys.argv[2])))
if len(got) != len(want) or not want:
    fail(f"{len(got)} outputs for {len(want)} examples")
worst = 0.0
for g, w in zip(got, want):
    keys = [k for k in w if k.startswith("logit_")]
    ref = [float(w[k]) for k in keys]
    scale = 1 + max(abs(v) for v in ref)
    worst = max(worst, max(abs(float(g[k]) - float(w[k])) for k in keys) / scale)
    top = sorted(ref, reverse=True)
    if top[0] - top[1] > 1e-5 * scale and int(g["prediction"]) != ref.index(top[0]):
        fail(f"example {g['example']} predicted {g['prediction']}, reference {ref.index(top[0])}")
if worst > 1e-5:
    fail(f"a logit is {worst:.3g} (relative) from the reference")
EOF
done

# Any numerics of an experiment: 8-bit dynamic fixed point runs the same model, and verify's sampled
# GEMMs (including the grouped and depthwise convolutions' groups) match the SystemC array.
expect_ok "infer in 8-bit numerics" "test examples: accuracy" "$bitsim" infer "$tmp/every_op.toml" "${int8[@]}"
out=$("$bitsim" verify "$tmp/every_op.toml" "${int8[@]}" --steps 1 --samples 40 2>&1)
[[ "$out" == *"group 4/4"* && "$out" == *"group 8/8"* ]] || { echo "FAIL: verify sampled no grouped GEMM: $out"; fails=$((fails + 1)); }
! grep -E "outputs match" <<< "$out" | awk '{ for (i = 1; i <= NF; i++) if ($(i+1) == "of" && $i != $(i+2)) bad = 1 } END { exit !bad }' ||
  { echo "FAIL: a replayed GEMM differs from the SystemC array: $out"; fails=$((fails + 1)); }
# An infer sweep over numerics needs no checkpoint: the model holds the weights.
cat > "$tmp/sweep.toml" <<EOF
experiment = "every_op.toml"
mode = "infer"
[[axis]]
key = "numerics.weights"
values = ["fp32", "dfx<8,channel>", "fp8e4m3"]
EOF
"$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/sweep" >/dev/null 2>&1 &&
  [ "$(grep -c ',ok,' "$tmp/sweep/results.csv")" -eq 3 ] || { echo "FAIL: the infer sweep of an ONNX model"; fails=$((fails + 1)); }
# Training starts from the model's weights (fine-tuning).
expect_ok "train from an ONNX model" "test acc" "$bitsim" train "$tmp/gap.toml" --set train.epochs=1

# Its cost without running it: `cost network --onnx` costs the model's layers as the executor's
# inference of one batch does (the same GEMMs, mappings, cycles and energy).
"$bitsim" cost network --onnx "$tmp/every_op.onnx" --experiment "$tmp/every_op.toml" --batch 16 --json >"$tmp/net.json" &&
  "$bitsim" infer "$tmp/every_op.toml" --set data.test_limit=16 --json >"$tmp/inf.json" &&
  "$py" - "$tmp/net.json" "$tmp/inf.json" <<'EOF' || { echo "FAIL: cost network --onnx differs from infer's cost"; fails=$((fails + 1)); }
import json, sys
net, inf = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
a, b = net["cost"]["total"], inf["cost"]["total"]
kinds = [l["kind"] for l in net["layers"]]
ok = (a["macs"] == b["macs"] and a["cycles"] == b["cycles"] and a["dram_bytes"] == b["dram_bytes"]
      and abs(a["energy_pj"]["total"] - b["energy_pj"]["total"]) <= 1e-9 * b["energy_pj"]["total"]
      and kinds == ["conv", "depthwise", "conv", "conv", "grouped", "gemm", "gemm"])
if not ok:
    print(a, b, kinds)
sys.exit(0 if ok else 1)
EOF
expect_error "cost network needs a model" "give --topology FILE.csv or --onnx FILE.onnx" "$bitsim" cost network
expect_error "cost network of a refused model" "(Sigmoid): operator not supported" "$bitsim" cost network --onnx "$tmp/sigmoid.onnx"

# Models and experiments bitsim refuses: one line, exit 2, before any work.
experiment sigmoid sigmoid.onnx
expect_error "unsupported operator" "node 0 'squash' (Sigmoid): operator not supported" "$bitsim" infer "$tmp/sigmoid.toml"
experiment avgpad avgpad.onnx
expect_error "padded average pooling" "node 0 'smooth' (AveragePool): padded average pooling is not supported" "$bitsim" infer "$tmp/avgpad.toml"
experiment opset9 opset9.onnx
expect_error "old opset" "opset 9: bitsim reads opsets 11 to 17" "$bitsim" infer "$tmp/opset9.toml"
experiment rgb rgb.onnx
expect_error "input shape" "the model takes inputs of 3x16x16, the data set's are 1x16x16" "$bitsim" infer "$tmp/rgb.toml"
experiment garbage garbage.onnx
expect_error "not a model" "not an ONNX model" "$bitsim" infer "$tmp/garbage.toml"
experiment missing none.onnx
expect_error "missing file" "none.onnx: cannot read the file" "$bitsim" infer "$tmp/missing.toml"
expect_error "layers beside onnx" "model.layers: expected nothing beside model.onnx" \
  "$bitsim" infer "$tmp/gap.toml" --set 'model.layers=[{type="relu"}]'
expect_error "no checkpoint for a TOML model" "infer needs --checkpoint" "$bitsim" infer "$root/experiments/lenet5/fp32.toml"
expect_error "outputs with integer-only" "--outputs" "$bitsim" infer "$tmp/gap.toml" --integer-only --outputs "$tmp/x.csv"

[ "$fails" -eq 0 ] && echo "cli_onnx: all passed" || { echo "cli_onnx: $fails failed"; exit 1; }
