#!/usr/bin/env bash
# A 1,000-point hardware sweep of LeNet-5 in cost mode (10 arrays x 2 dataflows x 5 buffer sizes x
# 5 nodes x 2 DRAM bandwidths), timed, beside the baseline a user would otherwise write: a shell
# loop of `bitsim train --cost-only`, timed on the sweep's first 50 points in the same run.
# Usage: bench/sweep_cost.sh [path/to/bitsim] [jobs]   (prints the times and their ratio)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bitsim=${1:-$root/build/app/bitsim}
jobs=${2:-$(nproc)}
[ -x "$bitsim" ] || { echo "sweep_cost.sh: no bitsim at '$bitsim' (build it, or pass its path)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/sweep.toml" <<TOML
experiment = "$root/experiments/lenet5/int8.toml"
mode = "cost"
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16", "32x32", "64x64", "8x32", "32x8", "16x64", "64x16", "8x64", "64x8"]
[[axis]]
key = "hardware.dataflow"
values = ["ws", "os"]
[[axis]]
key = "hardware.buffer_kib"
values = [32, 64, 128, 256, 512]
[[axis]]
key = "hardware.node_nm"
values = [45, 32, 22, 16, 7]
[[axis]]
key = "hardware.dram_bytes_per_cycle"
values = [16, 64]
TOML

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $("$bitsim" --version)"
t0=$(date +%s.%N)
"$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/sweep" --jobs "$jobs" | sed -n 2p
t1=$(date +%s.%N)

# The baseline: the same points, one `train --cost-only` each, in a loop.
export OPENBLAS_NUM_THREADS=1
mapfile -t lines < <("$bitsim" sweep "$tmp/sweep.toml" --out "$tmp/dry" --dry-run | tail -n +2 | head -50)
t2=$(date +%s.%N)
for l in "${lines[@]}"; do
  read -r id overrides <<<"$l"
  args=()
  for o in $overrides; do args+=(--set "$o"); done
  "$bitsim" train "$root/experiments/lenet5/int8.toml" --cost-only --threads 1 --out "$tmp/loop/$id" "${args[@]}" >/dev/null
done
t3=$(date +%s.%N)
awk -v s="$(echo "$t1 - $t0" | bc)" -v l="$(echo "$t3 - $t2" | bc)" -v n="${#lines[@]}" -v j="$jobs" 'BEGIN {
  printf "sweep:      1000 points in %.1f s with --jobs %d (%.1f ms a point)\n", s, j, 1000 * s / 1000
  printf "shell loop: %d points in %.1f s, one at a time (%.1f ms a point; 1000 would take %.0f s)\n", n, l, 1000 * l / n, l / n * 1000
  printf "ratio:      the sweep is %.2fx the loop'"'"'s throughput\n", (l / n * 1000) / s
}'
