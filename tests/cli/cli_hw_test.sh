#!/usr/bin/env bash
# End-to-end checks of `bitsim hw gemm`: cycle counts worked out by hand from the tile formulas of
# docs/sim.md, the bit-exact verdict, the VCD file, and one-line errors for bad arguments.
set -u
bitsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"

# ws, 4x4 PEs, M=K=N=8: 2 k-folds x 2 n-folds, each 4 (weight load) + 8 + 4 + 4 - 1 = 19 cycles.
expect_ok "ws cycles" '"cycles": 76' "$bitsim" hw gemm --array 4x4 --m 8 --k 8 --n 8 --json
# os, same GEMM: 2 m-folds x 2 n-folds, each 8 + 4 + 4 - 2 (stream) + 4 (drain) = 18 cycles.
expect_ok "os cycles" '"cycles": 72' "$bitsim" hw gemm --array 4x4 --dataflow os --m 8 --k 8 --n 8 --json
# K = 1, one PE row used: 1 + 5 + 1 + 3 - 1 = 9 cycles; 15 MACs on 12 PEs in 9 cycles.
expect_ok "k=1 cycles" '"cycles": 9' "$bitsim" hw gemm --array 4x3 --m 5 --k 1 --n 3 --json
expect_ok "bit exact" "outputs matching arith bit for bit: 64 of 64" "$bitsim" hw gemm --array 4x4 --m 8 --k 8 --n 8
expect_ok "float array" "outputs matching arith bit for bit: 35 of 35" \
  "$bitsim" hw gemm --array 3x2 --m 7 --k 9 --n 5 --a-format fp8e4m3 --w-format fp8e4m3 --acc-format fp16
expect_ok "stochastic accumulator" "outputs matching arith bit for bit: 35 of 35" \
  "$bitsim" hw gemm --array 3x2 --m 7 --k 9 --n 5 --a-format bf16 --w-format bf16 --acc-format bf16 --rounding stochastic
# ws, 4x4, M=40 K=30 N=20, int8 into int32, 512-byte buffers, 2 bytes per cycle. Folds: Fk = 8 (the
# last uses 2 rows), Fn = 5, 40 tiles; compute 2 K Fn + Fk Fn (M-1) + Fk N = 300 + 1560 + 160 = 2020.
# DRAM: A's eight 40x4 k-blocks (160 B each, 1200 B) do not fit 512 B together, so every n-fold
# refetches them: 5 x 1200 = 6000 B; weights 40 tiles x 16 B = 600 B; an n-fold's 40x4 int32 partial
# sums (640 B) do not fit, so 7 of 8 k-folds spill and are read back: 5 x 7 x 640 = 22400 B read,
# 5 x 8 x 640 = 25600 B written; 54600 B in all. Every transfer (>= 88 cycles) outlasts a tile's
# compute (<= 51 cycles), so the channel never idles: 54600 / 2 = 27300 cycles, 27300 - 2020 stalled.
hw_bw=("$bitsim" hw gemm --array 4x4 --m 40 --k 30 --n 20 --bandwidth 2 --buffer-kib 0.5 --json)
expect_ok "bandwidth compute cycles" '"compute_cycles": 2020' "${hw_bw[@]}"
expect_ok "bandwidth A refetched" '"read_a": 6000' "${hw_bw[@]}"
expect_ok "bandwidth psum spills" '"read_psum": 22400' "${hw_bw[@]}"
expect_ok "bandwidth DRAM bytes" '"total": 54600' "${hw_bw[@]}"
expect_ok "bandwidth cycles" '"cycles": 27300' "${hw_bw[@]}"
expect_ok "bandwidth stalls" '"stall_cycles": 25280' "${hw_bw[@]}"

"$bitsim" hw gemm --array 4x4 --m 8 --k 8 --n 8 --vcd "$tmp/run.vcd" > /dev/null
if ! grep -q 'enddefinitions' "$tmp/run.vcd" 2>/dev/null || ls "$tmp" | grep -q partial; then
  echo "FAIL: vcd: no complete $tmp/run.vcd"; fails=$((fails + 1))
fi

expect_error "zero size" "bad --m '0'" "$bitsim" hw gemm --m 0
expect_error "bad array" "bad --array '4y4'" "$bitsim" hw gemm --array 4y4
expect_error "bad dataflow" "bad dataflow 'is'" "$bitsim" hw gemm --dataflow is
expect_error "mixed operand kinds" "two fixed-point or two float formats" "$bitsim" hw gemm --a-format fp8e4m3
expect_error "overflow for float accumulator" "overflow 'wrap' does not apply" \
  "$bitsim" hw gemm --a-format bf16 --w-format bf16 --acc-format fp32 --overflow wrap
expect_error "bad bandwidth" "bad --bandwidth '-1'" "$bitsim" hw gemm --bandwidth -1
expect_error "unwritable vcd" "cannot write --vcd" "$bitsim" hw gemm --vcd /nonexistent/dir/x.vcd

if [ $fails -ne 0 ]; then echo "$fails hw CLI checks failed"; exit 1; fi
echo "all hw CLI checks passed"
