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
# is, M=8 K=8 N=5 on 4x4: the A tile held (2 k-folds x 2 m-folds), the 5 filters streamed: each
# 4 (load) + 5 + 4 + 4 - 1 = 16 cycles, 64 in all; outputs bit for bit, a stochastic sum too.
expect_ok "is cycles" '"cycles": 64' "$bitsim" hw gemm --array 4x4 --dataflow is --m 8 --k 8 --n 5 --json
expect_ok "is bit exact" "outputs matching arith bit for bit: 35 of 35" \
  "$bitsim" hw gemm --array 3x2 --dataflow is --m 7 --k 9 --n 5 --a-format bf16 --w-format bf16 --acc-format bf16 --rounding stochastic
# Overlapped tiles, the same GEMMs (docs/sim.md, "Overlapped tiles"). ws: the first tile loads its
# weights in 4 cycles, then the tiles' 8 rows stream back to back (each next tile's weights load
# behind, 3 cycles after the previous one starts: S = 4, 12, 20, 28), and the last tile's last
# result reaches the output buffer Mt + r + c - 2 = 14 cycles after it starts: 28 + 14 = 42, 43
# cycles (76 serialized). os: a tile every max(K, 2 r - 1) = 8 cycles (S = 0, 8, 16, 24), the last ends
# K + 2 r + c - 3 = 17 cycles after it starts: 24 + 17 = 41, 42 cycles (72 serialized).
expect_ok "ws overlapped cycles" '"cycles": 43' "$bitsim" hw gemm --array 4x4 --m 8 --k 8 --n 8 --overlap --json
expect_ok "os overlapped cycles" '"cycles": 42' "$bitsim" hw gemm --array 4x4 --dataflow os --m 8 --k 8 --n 8 --overlap --json
expect_ok "is overlapped bit exact" "outputs matching arith bit for bit: 35 of 35" \
  "$bitsim" hw gemm --array 3x2 --dataflow is --m 7 --k 9 --n 5 --a-format bf16 --w-format bf16 --acc-format bf16 \
  --rounding stochastic --overlap
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

# hw conv. LeNet conv1 (28x28x1 input, 5x5 kernel, 6 filters) on 16x16 ws with 1 MiB buffers: every
# operand fits, so DRAM reads the input once (784 B), the filters once (5*5*6 = 150 B) and writes
# the 24*24*6 = 3456 int32 outputs once (13824 B). The im2col GEMM is M = 576, K = 25, N = 6:
# Fk = 2, Fn = 1, compute 2 K Fn + Fk Fn (M - 1) + Fk N = 50 + 1150 + 12 = 1212 cycles.
conv1=("$bitsim" hw conv --array 16x16 --ifmap 28x28x1 --filter 5x5x6 --buffer-kib 1024 --json)
expect_ok "conv input once" '"read_a": 784' "${conv1[@]}"
expect_ok "conv filters once" '"read_w": 150' "${conv1[@]}"
expect_ok "conv output once" '"write_c": 13824' "${conv1[@]}"
expect_ok "conv cycles" '"cycles": 1212' "${conv1[@]}"
expect_ok "conv agrees" '"closed_form_agrees": true' "${conv1[@]}"
# LeNet conv2 (14x14x6, 5x5x16) on 32x32 os: M = 100, K = 150, N = 16, Fm = 4, Fn = 1:
# Fm Fn (K - 2) + 2 M Fn + Fm N = 592 + 200 + 64 = 856 cycles; input 14*14*6 = 1176 B.
conv2=("$bitsim" hw conv --array 32x32 --dataflow os --ifmap 14x14x6 --filter 5x5x16 --buffer-kib 1024 --json)
expect_ok "conv os cycles" '"cycles": 856' "${conv2[@]}"
expect_ok "conv os input once" '"read_a": 1176' "${conv2[@]}"
# A 1x1 kernel at stride 2 over 7x7x3 reads input rows 0, 2, 4, 6 only: 3 x 4 x 7 = 84 B.
expect_ok "conv stride skips rows" '"read_a": 84' \
  "$bitsim" hw conv --array 4x4 --ifmap 7x7x3 --filter 1x1x5 --stride 2 --json
expect_ok "conv padded batch bit exact" "outputs matching arith bit for bit: 2592 of 2592" \
  "$bitsim" hw conv --array 4x3 --dataflow os --ifmap 9x9x2 --filter 3x3x8 --padding 1 --batch 4 --buffer-kib 0.1 --bandwidth 3
# The same GEMM mapped for DRAM bytes: 32-row m-blocks keep each 32 x 4 int32 partial-sum block
# (512 B) on chip, so the best mapping spills nothing; the array runs it bit for bit.
map_dram=("$bitsim" hw gemm --array 4x4 --m 40 --k 30 --n 20 --bandwidth 2 --buffer-kib 0.5 --mapper dram --json)
expect_ok "mapper no spills" '"read_psum": 0' "${map_dram[@]}"
expect_ok "mapper agrees" '"closed_form_agrees": true' "${map_dram[@]}"
expect_ok "mapper bit exact" '"outputs_matching_arith": 800' "${map_dram[@]}"
expect_ok "mapper conv" "outputs matching arith bit for bit: 3456 of 3456" \
  "$bitsim" hw conv --array 8x8 --ifmap 28x28x1 --filter 5x5x6 --buffer-kib 4 --bandwidth 4 --mapper cycles
expect_error "bad mapper" "bad --mapper 'energy'" "$bitsim" hw gemm --mapper energy
expect_error "conv bad ifmap" "bad --ifmap '28x28'" "$bitsim" hw conv --ifmap 28x28
expect_error "conv bad filter" "bad --filter '5x5x0'" "$bitsim" hw conv --filter 5x5x0
expect_error "conv bad stride" "bad --stride '0'" "$bitsim" hw conv --stride 0
expect_error "conv bad padding" "bad --padding '-1'" "$bitsim" hw conv --padding -1
expect_error "conv kernel too large" "bad --filter '9x9x2'" "$bitsim" hw conv --ifmap 4x4x1 --filter 9x9x2 --padding 2
expect_error "conv bad batch" "bad --batch 'x'" "$bitsim" hw conv --batch x

"$bitsim" hw gemm --array 4x4 --m 8 --k 8 --n 8 --vcd "$tmp/run.vcd" > /dev/null
if ! grep -q 'enddefinitions' "$tmp/run.vcd" 2>/dev/null || ls "$tmp" | grep -q partial; then
  echo "FAIL: vcd: no complete $tmp/run.vcd"; fails=$((fails + 1))
fi

expect_error "zero size" "bad --m '0'" "$bitsim" hw gemm --m 0
expect_error "bad array" "bad --array '4y4'" "$bitsim" hw gemm --array 4y4
expect_error "bad dataflow" "bad dataflow 'rs': expected ws, os or is" "$bitsim" hw gemm --dataflow rs
expect_error "mixed operand kinds" "two fixed-point or two float formats" "$bitsim" hw gemm --a-format fp8e4m3
expect_error "overflow for float accumulator" "overflow 'wrap' does not apply" \
  "$bitsim" hw gemm --a-format bf16 --w-format bf16 --acc-format fp32 --overflow wrap
expect_error "bad bandwidth" "bad --bandwidth '-1'" "$bitsim" hw gemm --bandwidth -1
expect_error "unwritable vcd" "cannot write --vcd" "$bitsim" hw gemm --vcd /nonexistent/dir/x.vcd

if [ $fails -ne 0 ]; then echo "$fails hw CLI checks failed"; exit 1; fi
echo "all hw CLI checks passed"
