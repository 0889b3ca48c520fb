#!/usr/bin/env bash
# End-to-end checks of `bitsim cost network` on the shipped topologies: the summary, report.json
# and its keys, the total MACs against a sum computed here from the CSV with awk, the run
# directory (report.json, layers.csv, plots), and bad input as one error line, exit 2, nothing written.
set -u
bitsim="$1"
here="$(cd "$(dirname "$0")" && pwd)"
topo="$here/../../experiments/topologies"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$here/expect.sh"

# MACs of a SCALE-Sim file, from its rows alone: conv rows ceil((H - R + S) / S) output pixels a
# side (scalesim/topology_utils.py) times R x S x C x F; GEMM rows M x N x K. Integer arithmetic in awk's doubles is exact below 2^53.
conv_macs() {
  awk -F, 'NR > 1 && NF > 1 { oh = int(($2 - $4 + 2 * $8 - 1) / $8); ow = int(($3 - $5 + 2 * $8 - 1) / $8);
                              s += oh * ow * $4 * $5 * $6 * $7 } END { printf "%.0f\n", s }' "$1"
}
gemm_macs() { awk -F, 'NR > 1 && NF > 1 { s += $2 * $3 * $4 } END { printf "%.0f\n", s }' "$1"; }
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d' + sys.argv[2]))" "$@"; }
check() {  # check "description" python-condition json-file
  python3 -c "import json,sys; d=json.load(open(sys.argv[2])); sys.exit(0 if eval(sys.argv[1]) else 1)" "$2" "$3" ||
    { echo "FAIL: $1"; fails=$((fails + 1)); }
}

expect_ok "summary" "Conv2_1a" "$bitsim" cost network --topology "$topo/resnet18.csv" --array 16x16 --bandwidth 16
"$bitsim" cost network --topology "$topo/resnet18.csv" --array 16x16 --dataflow ws --bandwidth 16 --json > "$tmp/r18.json" ||
  { echo "FAIL: resnet18 --json"; fails=$((fails + 1)); }
check "report keys" "all(k in d for k in ('topology', 'hardware', 'numerics', 'layers', 'totals', 'cost', 'batch'))" "$tmp/r18.json"
check "layer keys" "all(k in l for l in d['layers'] for k in ('name', 'macs', 'cycles', 'utilization', 'mapping', 'traffic', 'energy_pj', 'roofline'))" "$tmp/r18.json"
check "traffic levels" "all(k in d['layers'][0]['traffic'] for k in ('dram_bytes', 'buffer_accesses', 'array_macs'))" "$tmp/r18.json"
check "21 layers" "len(d['layers']) == 21" "$tmp/r18.json"
want=$(conv_macs "$topo/resnet18.csv")
got=$(json_get "$tmp/r18.json" "['totals']['macs']")
python3 -c "import sys; sys.exit(0 if int(float(sys.argv[1])) == int(sys.argv[2]) else 1)" "$got" "$want" ||
  { echo "FAIL: resnet18 total MACs $got, the CSV says $want"; fails=$((fails + 1)); }
# He et al. 2016, table 1: 1.8 x 10^9 multiply-adds.
[ "$want" = 1814073344 ] || { echo "FAIL: resnet18.csv has $want MACs, not ResNet-18's"; fails=$((fails + 1)); }
check "layer MACs add up" "sum(l['macs'] for l in d['layers']) == d['totals']['macs']" "$tmp/r18.json"
# Overlapped tiles (docs/sim.md): one 128x64x64 GEMM on a 32x32 ws array, fixed mapping, 2 n-folds
# x 2 k-folds. Serialized each tile is 2 r + M + c - 1 = 223 cycles: 892. Overlapped, the first tile
# loads for 32 cycles, the four stream their 128 rows back to back, and the last one's last result
# leaves M + r + c - 2 = 190 cycles after it starts: 32 + 3 x 128 + 190 = 606, 607 cycles.
printf 'Layer,M,N,K,\nfc,128,64,64,\n' > "$tmp/fc128.csv"
"$bitsim" cost network --topology "$tmp/fc128.csv" --array 32x32 --mapping fixed --json > "$tmp/serial.json" &&
  "$bitsim" cost network --topology "$tmp/fc128.csv" --array 32x32 --mapping fixed --overlap --json > "$tmp/overlap.json" ||
  { echo "FAIL: cost network --overlap"; fails=$((fails + 1)); }
check "serialized cycles" "d['totals']['cycles'] == 892 and d['hardware']['overlap'] is False" "$tmp/serial.json"
check "overlapped cycles" "d['totals']['cycles'] == 607 and d['hardware']['overlap'] is True" "$tmp/overlap.json"
check "energy adds up" "abs(sum(l['energy_pj']['total'] for l in d['layers']) - d['totals']['energy_pj']['total']) <= 1e-9 * d['totals']['energy_pj']['total']" "$tmp/r18.json"
check "utilization in (0, 1]" "all(0 < l['utilization'] <= 1 for l in d['layers'])" "$tmp/r18.json"
check "attained at most peak" "all(l['roofline']['achieved_ops_per_s'] <= l['roofline']['attainable_ops_per_s'] * (1 + 1e-12) for l in d['layers'])" "$tmp/r18.json"

# Batch 4: four times the MACs; a GEMM file's M times four.
"$bitsim" cost network --topology "$topo/bert_base_layer_seq128.csv" --batch 4 --json > "$tmp/bert4.json" ||
  { echo "FAIL: bert --batch 4"; fails=$((fails + 1)); }
want=$(( $(gemm_macs "$topo/bert_base_layer_seq128.csv") * 4 ))
check "bert MACs x 4 = $want" "int(d['totals']['macs']) == $want" "$tmp/bert4.json"
check "bert M x 4" "d['layers'][0]['m'] == 512" "$tmp/bert4.json"

# Depthwise layers (MobileNetV2): one row of the CSV, Channels convolutions of one channel.
"$bitsim" cost network --topology "$topo/mobilenet_v2.csv" --json > "$tmp/mb.json" || { echo "FAIL: mobilenet"; fails=$((fails + 1)); }
check "mobilenet MACs = the CSV's" "int(d['totals']['macs']) == $(conv_macs "$topo/mobilenet_v2.csv")" "$tmp/mb.json"
check "depthwise repeats" "[l['repeat'] for l in d['layers'] if l['kind'] == 'depthwise'][0] == 32" "$tmp/mb.json"

# The run directory: report.json equal to --json's, layers.csv one row per layer, the plots.
"$bitsim" cost network --topology "$topo/resnet18.csv" --array 16x16 --dataflow ws --bandwidth 16 --out "$tmp/run" > /dev/null ||
  { echo "FAIL: --out"; fails=$((fails + 1)); }
check "report.json macs" "int(d['totals']['macs']) == 1814073344" "$tmp/run/report.json"
[ "$(wc -l < "$tmp/run/layers.csv")" -eq 22 ] || { echo "FAIL: layers.csv rows"; fails=$((fails + 1)); }
head -1 "$tmp/run/layers.csv" | grep -q '^layer,line,kind,shape,m,k,n,repeat,macs,cycles,utilization' ||
  { echo "FAIL: layers.csv header"; fails=$((fails + 1)); }
if command -v "${BITSIM_GNUPLOT:-gnuplot}" >/dev/null 2>&1; then
  [ -s "$tmp/run/energy.png" ] && [ -s "$tmp/run/roofline.png" ] || { echo "FAIL: plots not written"; fails=$((fails + 1)); }
  check "plots ok" "d['plots']['energy.png'] == 'ok' and d['plots']['roofline.png'] == 'ok'" "$tmp/run/report.json"
fi

# Every shipped topology costs, and its total is the CSV's.
for f in "$topo"/*.csv; do
  if head -1 "$f" | grep -q IFMAP; then want=$(conv_macs "$f"); else want=$(gemm_macs "$f"); fi
  "$bitsim" cost network --topology "$f" --threads 2 --json > "$tmp/one.json" || { echo "FAIL: $f"; fails=$((fails + 1)); continue; }
  check "$(basename "$f") MACs = $want" "int(d['totals']['macs']) == $want" "$tmp/one.json"
done

# Bad input: one line, exit 2, nothing written.
printf 'Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\nc,9,9,3,3,x,4,1,\n' > "$tmp/bad.csv"
expect_error "bad field" "bad.csv:2:6 (Channels): 'x'; expected a positive integer" \
  "$bitsim" cost network --topology "$tmp/bad.csv" --out "$tmp/never"
[ -e "$tmp/never" ] && { echo "FAIL: a bad topology left a directory"; fails=$((fails + 1)); }
printf 'Layer, M, N\ng,1,2\n' > "$tmp/badh.csv"
expect_error "bad header" "badh.csv:1:4 (K): the header has 3 columns" "$bitsim" cost network --topology "$tmp/badh.csv"
printf 'Layer,M,N,K,\ng,1,2,3,4,\n' > "$tmp/badc.csv"
expect_error "column count" "badc.csv:2:5: 5 fields; expected 4" "$bitsim" cost network --topology "$tmp/badc.csv"
expect_error "missing file" "cannot read the topology file" "$bitsim" cost network --topology "$tmp/none.csv"
expect_error "bad array" "--array" "$bitsim" cost network --topology "$topo/alexnet.csv" --array 16 --out "$tmp/never"
expect_error "bad dataflow" "'xs'" "$bitsim" cost network --topology "$topo/alexnet.csv" --dataflow xs
expect_error "bad format" "bad --a-format 'int<0>'" "$bitsim" cost network --topology "$topo/alexnet.csv" --a-format 'int<0>'
expect_error "bad batch" "bad --batch 0" "$bitsim" cost network --topology "$topo/alexnet.csv" --batch 0 --out "$tmp/never"
expect_error "bad bandwidth" "bad --bandwidth" "$bitsim" cost network --topology "$topo/alexnet.csv" --bandwidth -3
expect_error "block format" "numerics.weights" "$bitsim" cost network --topology "$topo/alexnet.csv" --w-format 'dfx<8>'
[ -e "$tmp/never" ] && { echo "FAIL: bad options left a directory"; fails=$((fails + 1)); }

[ $fails -eq 0 ] && echo "all cost network checks passed"
exit $((fails > 0))
