#!/usr/bin/env bash
# Serialized against overlapped tiles (hardware.overlap, docs/sim.md) on every topology of this
# folder: the same array as run.sh (32x32, 1 GHz, 256 KiB buffers, int8 x int8 -> int32, mappings
# for energy), weight-, output- and input-stationary, with DRAM unlimited and at 25.6 GB/s.
# Prints the README's table: total cycles of each schedule and the change.
#   experiments/topologies/overlap.sh [BITSIM]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bitsim=${1:-$here/../../build/app/bitsim}
hw=(--array 32x32 --buffer-kib 256 --clock 1 --a-format 'int<8>' --w-format 'int<8>' --acc-format 'int<32>')
cycles() { "$bitsim" cost network --topology "$here/$1.csv" "${hw[@]}" --dataflow "$2" "${@:3}" --json |
  python3 -c "import json, sys; print(int(json.load(sys.stdin)['totals']['cycles']))"; }
echo "| file | dataflow | serialized | overlapped | change | serialized, 25.6 GB/s | overlapped, 25.6 GB/s | change |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for f in alexnet vgg16 resnet18 resnet50 mobilenet_v2 bert_base_layer_seq128 gpt2_small_layer_ctx1024 vit_b16_layer; do
  for d in ws os is; do
    s=$(cycles "$f" "$d") o=$(cycles "$f" "$d" --overlap)
    sb=$(cycles "$f" "$d" --bandwidth 25.6) ob=$(cycles "$f" "$d" --bandwidth 25.6 --overlap)
    python3 -c "
s, o, sb, ob = $s, $o, $sb, $ob
print(f'| $f.csv | $d | {s:,} | {o:,} | {100 * (o - s) / s:+.1f}% | {sb:,} | {ob:,} | {100 * (ob - sb) / sb:+.1f}% |')"
  done
done
