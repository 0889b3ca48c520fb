#!/usr/bin/env bash
# Costs every topology of this folder on one array and prints the README's table: total MACs (the
# CSV's, as bitsim reads it), cycles, utilisation, DRAM bytes, energy and achieved GOPS.
#   experiments/topologies/run.sh [BITSIM] [extra cost network options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bitsim=${1:-$here/../../build/app/bitsim}
shift || true
hw=(--array 32x32 --dataflow ws --buffer-kib 256 --clock 1 --bandwidth 25.6 --a-format 'int<8>' --w-format 'int<8>'
    --acc-format 'int<32>' "$@")
echo "| file | layers | MACs | cycles | utilisation | DRAM MB | energy mJ | achieved GOPS | bound by memory |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for f in alexnet vgg16 resnet18 resnet50 mobilenet_v2 bert_base_layer_seq128 gpt2_small_layer_ctx1024 vit_b16_layer; do
  "$bitsim" cost network --topology "$here/$f.csv" "${hw[@]}" --json | python3 -c "
import json, sys
d = json.load(sys.stdin); t = d['totals']
mem = sum(1 for l in d['layers'] if l['roofline']['bound'] == 'memory')
print(f\"| $f.csv | {len(d['layers'])} | {int(t['macs']):,} | {int(t['cycles']):,} | {100 * t['utilization']:.1f}% | \"
      f\"{t['dram_bytes'] / 1e6:.2f} | {t['energy_pj']['total'] / 1e9:.3f} | {t['roofline']['achieved_ops_per_s'] / 1e9:.1f} | {mem} |\")"
done
