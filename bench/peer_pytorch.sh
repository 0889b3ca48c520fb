#!/usr/bin/env bash
# bitsim's LeNet-5 training steps (fp32, and bit-exact 8-bit with the lazy update) beside PyTorch's
# fp32 step on the same network, batch and optimizer, at 1 and 2 threads, measured in the same run;
# prints each time and its ratio to PyTorch's. Needs Debian's python3-torch (not installed by the
# setup: `apt-get install python3-torch`).
#   bench/peer_pytorch.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
py=/usr/bin/python3
[ -x "$build/bench/bench_nn" ] || { echo "peer_pytorch: no $build/bench/bench_nn; build first (scripts/build.sh)" >&2; exit 2; }
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "peer_pytorch: PyTorch is not installed (apt-get install python3-torch); nothing to compare" >&2
  exit 0
fi
printf '%-8s %-30s %10s %12s\n' threads step ms "vs PyTorch"
for t in 1 2; do
  torch_ms=$("$py" "$root/bench/peer_pytorch.py" "$t" | awk '{print $3}')
  out=$(BITSIM_THREADS=$t "$build/bench/bench_nn" --benchmark_min_time=2 2>/dev/null)
  printf '%-8s %-30s %10.2f %12s\n' "$t" "PyTorch fp32 (torch $("$py" -c 'import torch; print(torch.__version__)'))" "$torch_ms" "1.00x"
  for name in fp32 int8; do
    ms=$(awk -v n="$name" '$1 == n && $2 ~ /^[0-9.]+$/ {print $2}' <<< "$out")
    printf '%-8s %-30s %10.2f %11.2fx\n' "$t" "bitsim $name" "$ms" "$(awk -v a="$ms" -v b="$torch_ms" 'BEGIN{print a/b}')"
  done
done
