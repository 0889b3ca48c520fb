#!/usr/bin/env bash
# End-to-end checks of `bitsim infer --integer-only` and `--popcount`: a LeNet-5 trained in fp32
# on a slice of Fashion-MNIST runs in integers (uint8 activations, int8 weights, int32
# accumulators) with the fp32 network's accuracy beside it and is costed as integer MACs; a
# binarized MLP runs as XNOR-popcounts and thresholds with the float-BatchNorm network's exact
# predictions; bad options and layers that cannot run either way give one error line with exit
# status 2. tests/nn/test_integer.cpp and test_popcount.cpp check the stages element by element.
set -u
bitsim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"

x="$root/experiments/lenet5/fp32.toml"
slice=(--set data.train_limit=3000 --set data.test_limit=1000 --set train.epochs=1)
"$bitsim" train "$x" "${slice[@]}" --out "$tmp/fp32" >/dev/null 2>&1 || { echo "FAIL: training the fp32 LeNet-5"; exit 1; }
ck="$tmp/fp32/checkpoint.bin"

json=$("$bitsim" infer "$x" "${slice[@]}" --checkpoint "$ck" --integer-only --json | tr -d ' \n')
num() { grep -o "\"$1\":[0-9.e-]*" <<< "$2" | head -1 | sed 's/.*://'; }
int_acc=$(grep -o '"accuracy":{"test":[0-9.e-]*' <<< "$json" | sed 's/.*://')
fp_acc=$(grep -o '"reference":{"accuracy":[0-9.e-]*' <<< "$json" | sed 's/.*://')
agree=$(num agreement_with_reference "$json")
# The integer network predicts what the fp32 one does on nearly every example, and its accuracy is
# within a point of the fp32 network's (the paper's LeNet-scale gap is a fraction of a point).
awk -v a="$int_acc" -v f="$fp_acc" -v g="$agree" 'BEGIN { exit !(a > 0.5 && f > 0.5 && a - f < 0.01 && f - a < 0.01 && g >= 0.97) }' ||
  { echo "FAIL: integer accuracy $int_acc, fp32 $fp_acc, agreement $agree"; fails=$((fails + 1)); }
# Five GEMM stages (conv+relu twice, three linear layers, the last without a clamp) among the pooling
# and flatten stages, costed with an int32 accumulator, bias adds and requantizers.
stages=$(grep -o '"op":"gemm"' <<< "$json" | wc -l)
[ "$stages" -eq 5 ] || { echo "FAIL: $stages GEMM stages, want 5"; fails=$((fails + 1)); }
for want in '"mac_formats":"ufixed<8,0>xfixed<8,0>->fixed<32,0>"' '"biasadd:adder"' '"requantizer:Q31multiplier"' \
  '"format":"int8"'; do
  [[ "$json" == *"$want"* ]] || { echo "FAIL: integer report lacks $want"; fails=$((fails + 1)); }
done
# The same GEMMs as the fp32 inference: the same MAC count.
fp_json=$("$bitsim" infer "$x" "${slice[@]}" --checkpoint "$ck" --json | tr -d ' \n')
[ "$(num macs "$json")" = "$(num macs "$fp_json")" ] ||
  { echo "FAIL: integer MACs $(num macs "$json"), fp32 $(num macs "$fp_json")"; fails=$((fails + 1)); }

expect_ok "percentile, per-tensor weights" "percentile:99.9 over 2 batches of 256; weights uint8 asymmetric per tensor" \
  "$bitsim" infer "$x" "${slice[@]}" --checkpoint "$ck" --integer-only --calibration percentile:99.9 \
  --calibration-batches 2 --weights per-tensor
expect_ok "out directory" "run directory: $tmp/int" "$bitsim" infer "$x" "${slice[@]}" --checkpoint "$ck" --integer-only --out "$tmp/int"
grep -q '"integer_only"' "$tmp/int/report.json" || { echo "FAIL: report.json has no integer_only"; fails=$((fails + 1)); }

expect_error "bad calibration" "calibration 'median': expected minmax, ema, percentile or percentile:P" \
  "$bitsim" infer "$x" --checkpoint "$ck" --integer-only --calibration median
expect_error "bad percentile" "calibration 'percentile:120'" "$bitsim" infer "$x" --checkpoint "$ck" --integer-only --calibration percentile:120
expect_error "calibration without integer-only" "--calibration requires --integer-only" \
  "$bitsim" infer "$x" --checkpoint "$ck" --calibration minmax
expect_error "bad weights" "--weights" "$bitsim" infer "$x" --checkpoint "$ck" --integer-only --weights per-row
expect_error "no calibration batches" "--calibration-batches" "$bitsim" infer "$x" --checkpoint "$ck" --integer-only --calibration-batches 0

# A binarized network: its sign layer is named.
cat > "$tmp/bin.toml" <<'TOML'
name = "binary"
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 32
[model]
layers = [
  { type = "flatten" },
  { type = "linear", out = 16 },
  { type = "sign" },
  { type = "linear", out = 10 },
]
[train]
batch = 32
TOML
"$bitsim" train "$tmp/bin.toml" --out "$tmp/bin" >/dev/null 2>&1 || { echo "FAIL: training the binary network"; fails=$((fails + 1)); }
expect_error "sign layer" "layer 2 (sign): binarized layers do not run as uint8 integers" \
  "$bitsim" infer "$tmp/bin.toml" --checkpoint "$tmp/bin/checkpoint.bin" --integer-only

# Quantization-aware training (experiments/methods/qat.toml on the slice) then integer-only
# inference with the ranges it tracked: the integer network predicts what the fake-quantized one does.
q="$root/experiments/methods/qat.toml"
"$bitsim" train "$q" "${slice[@]}" --out "$tmp/qat" >/dev/null 2>&1 || { echo "FAIL: quantization-aware training"; fails=$((fails + 1)); }
qj=$("$bitsim" infer "$q" "${slice[@]}" --checkpoint "$tmp/qat/checkpoint.bin" --integer-only --calibration ema --json | tr -d ' \n')
q_agree=$(num agreement_with_reference "$qj")
awk -v g="$q_agree" 'BEGIN { exit !(g >= 0.97) }' || { echo "FAIL: QAT integer-only agreement $q_agree"; fails=$((fails + 1)); }
[[ "$qj" == *'"calibration":"ema(min/maxwherenonewastracked)'* ]] || { echo "FAIL: QAT calibration not ema"; fails=$((fails + 1)); }

# Binarized inference: a BNN-style MLP (binary weights and activations, the first layer's input 8-bit
# dynamic fixed point) trained one epoch; popcount inference predicts what the float network does.
cat > "$tmp/bnn.toml" <<'TOML'
name = "bnn"
[data]
dataset = "synthetic"
synthetic_train = 512
synthetic_test = 256
[model]
loss = "square-hinge"
layers = [
  { type = "flatten" },
  { type = "linear", out = 64 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "linear", out = 64 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "linear", out = 10 },
  { type = "batchnorm" },
]
[train]
batch = 64
lr = 0.003
clip = 1.0
[numerics]
weights = "binary"
activations = "binary"
errors = "dfx<8>"
accumulator = "int<24>"
[[numerics.layer]]
index = 1
activations = "dfx<8>"
TOML
"$bitsim" train "$tmp/bnn.toml" --out "$tmp/bnn" >/dev/null 2>&1 || { echo "FAIL: training the BNN"; fails=$((fails + 1)); }
pj=$("$bitsim" infer "$tmp/bnn.toml" --checkpoint "$tmp/bnn/checkpoint.bin" --popcount --json | tr -d ' \n')
fj=$("$bitsim" infer "$tmp/bnn.toml" --checkpoint "$tmp/bnn/checkpoint.bin" --json | tr -d ' \n')
same=$(num same_prediction "$pj"); examples=$(num examples "$pj")
[ -n "$same" ] && [ "$same" = "$examples" ] && [ "$examples" = 256 ] ||
  { echo "FAIL: popcount predictions: $same of $examples equal the float network's"; fails=$((fails + 1)); }
p_acc=$(grep -o '"accuracy":{"test":[0-9.e-]*' <<< "$pj" | sed 's/.*://')
f_acc=$(grep -o '"accuracy":{"test":[0-9.e-]*' <<< "$fj" | sed 's/.*://')
[ "$p_acc" = "$f_acc" ] || { echo "FAIL: popcount accuracy $p_acc, float-BatchNorm $f_acc"; fails=$((fails + 1)); }
for want in '"op":"threshold"' '"input":"bits(XNOR-popcount)"' '"path":"popcount"' 'thresholdcompare' '"xnor' ; do
  [[ "$pj" == *"$want"* ]] || { echo "FAIL: popcount report lacks $want"; fails=$((fails + 1)); }
done
expect_ok "popcount summary" "same prediction on 256 of 256 examples" \
  "$bitsim" infer "$tmp/bnn.toml" --checkpoint "$tmp/bnn/checkpoint.bin" --popcount
# The same network on an FPGA as FINN builds it: a folded matrix-vector unit per layer within the budget.
fpga=$("$bitsim" cost fpga --experiment "$tmp/bnn.toml" --clock 0.3 --luts 30000 --json | tr -d ' \n')
used=$(num luts_used "$fpga"); fps=$(num frames_per_s "$fpga")
awk -v u="$used" -v f="$fps" 'BEGIN { exit !(u > 0 && u <= 30000 && f > 0) }' ||
  { echo "FAIL: cost fpga --experiment: $used LUTs of 30000, $f frames/s"; fails=$((fails + 1)); }
[ "$(grep -o '"pe":' <<< "$fpga" | wc -l)" -eq 3 ] || { echo "FAIL: cost fpga --experiment: not 3 layers: $fpga"; fails=$((fails + 1)); }
expect_error "FPGA view of a float network" "layer 0: weights 'fp32': the FPGA view (FINN) covers deterministic integer and binary numerics" \
  "$bitsim" cost fpga --experiment "$x" --clock 0.3
expect_error "FPGA budget too small" "is too small for the network even fully folded" \
  "$bitsim" cost fpga --experiment "$tmp/bnn.toml" --clock 0.3 --luts 500
expect_error "popcount of a float network" "layer 0 (conv2d): popcount inference needs deterministic binary weights, not 'fp32'" \
  "$bitsim" infer "$x" --checkpoint "$ck" --popcount
expect_error "popcount and integer-only" "--integer-only excludes --popcount" \
  "$bitsim" infer "$x" --checkpoint "$ck" --popcount --integer-only

[ "$fails" -eq 0 ] && echo "cli integer-only and popcount inference: all checks passed"
exit $((fails > 0))
