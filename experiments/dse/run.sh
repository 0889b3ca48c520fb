#!/usr/bin/env bash
# Runs the design-space sweeps of this folder and keeps what they conclude: results.csv,
# results.json (and configs.csv with seeds), the Pareto plots and the printed fronts, in
# experiments/dse/results/<sweep>/. The run directories stay in the output directory.
# Usage: experiments/dse/run.sh [path/to/bitsim] [output dir] [sweep ...]   (default: all sweeps)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bitsim=${1:-$here/../../build/app/bitsim}
out=${2:-$here/../../out/dse}
shift $(($# < 2 ? $# : 2))
sweeps=("$@")
[ ${#sweeps[@]} -gt 0 ] || sweeps=(hardware numerics)
[ -x "$bitsim" ] || { echo "run.sh: no bitsim at '$bitsim' (build it, or pass its path)" >&2; exit 1; }

for s in "${sweeps[@]}"; do
  dir="$out/$s" keep="$here/results/$s"
  resume=()
  [ -e "$dir/sweep.json" ] && resume=(--resume)
  mkdir -p "$out"
  # Exit status 1 means some points failed: their rows say why, and they are results too.
  status=0
  "$bitsim" sweep "$here/$s.toml" --out "$dir" --jobs "$(nproc)" "${resume[@]}" | tee "$dir.log" || status=$?
  [ "$status" -le 1 ] || exit "$status"
  mkdir -p "$keep"
  cp "$dir"/results.csv "$dir"/results.json "$dir"/pareto_*.png "$keep"/
  [ -e "$dir/configs.csv" ] && cp "$dir/configs.csv" "$keep"/
  { echo "# $("$bitsim" --version), $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"; cat "$dir.log"; } >"$keep/sweep.log"
done
