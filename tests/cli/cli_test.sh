#!/usr/bin/env bash
# End-to-end checks of the `bitsim` command: results of well-known cases, and that bad input gives
# one error line naming the bad token and exit status 2, never a crash.
set -u
bitsim="$1"

source "$(dirname "$0")/expect.sh"

# IEEE 754 binary16: 65520 is the first value that rounds to infinity; 65504 is the largest finite.
expect_ok "fp16 overflow to inf" "0x7c00 inexact|overflow" "$bitsim" quantize -f fp16 65520
expect_ok "fp16 max" "65504" "$bitsim" quantize -f fp16 65519
# OCP FP8 E4M3: max finite 448 (0x7e); with the ieee overflow mode an overflow becomes nan (0x7f).
expect_ok "e4m3 max" "0x7e" "$bitsim" quantize -f fp8e4m3 464
expect_ok "e4m3 overflow to nan" "0x7f" "$bitsim" quantize -f fp8e4m3 480
expect_ok "e4m3 saturating" "0x7e" "$bitsim" quantize -f fp8e4m3 -o saturate 1e9
expect_ok "hex float input" "0x3c00" "$bitsim" quantize -f fp16 0x1p0
# bf16 keeps the top 16 bits of an fp32 pattern and rounds on the low 16 (half = 0x8000): 0x8001
# is above half (up to 0x3f81), 0x8000 a tie to the even 0x3f80, 0x3f81|8000 a tie up to 0x3f82.
# JSON names the result "code", so the input's own hex digits cannot satisfy the check.
expect_ok "raw f32 bits above half" '"code":"0x3f81","input":"0x3f808001"' "$bitsim" quantize -f bf16 --in-bits f32 --json 0x3f808001
expect_ok "raw f32 bits tie to even" '"code":"0x3f80","input":"0x3f808000"' "$bitsim" quantize -f bf16 --in-bits f32 --json 0x3f808000
expect_ok "raw f32 bits tie up to even" '"code":"0x3f82","input":"0x3f818000"' "$bitsim" quantize -f bf16 --in-bits f32 --json 0x3f818000
expect_ok "json" '"code":"0x3e9a"' "$bitsim" quantize -f bf16 --json 0.3
expect_ok "fixed tie to even" "0x02" "$bitsim" quantize -f 'fixed<8,4>' 0.09375
# E4M3 (bias 7): 0x40 is 2^(8-7) = 2, and 2 + 2 = 4 = 2^(9-7) is 0x48, exact; 0x7e is 448, and
# 448 + 448 = 896 is beyond the largest finite value: ieee overflow gives the nan 0x7f.
expect_ok "op codes" '"code":"0x48","operands":["0x40","0x40"],"status":"exact","value":"4"' \
  "$bitsim" op add -f fp8e4m3 --codes --json 0x40 0x40
expect_ok "op codes overflow" '"code":"0x7f","operands":["0x7e","0x7e"],"status":"inexact|overflow"' \
  "$bitsim" op add -f fp8e4m3 --codes --json 0x7e 0x7e
expect_ok "srdhm saturates" "2147483647" "$bitsim" op srdhm -- -2147483648 -2147483648
expect_ok "rdivpot ties away" "-3" "$bitsim" op rdivpot -- -5 1
expect_ok "formats grammar" "fixed<wl,fl>" "$bitsim" formats
expect_ok "stdin batch" "0x3c00" sh -c "printf '1\n2\n' | '$bitsim' quantize -f fp16"
# OCP MX: block max 7 -> X = 2^(2 - 2) = 1; FP4 E2M1 clamps -7 to -6 (code 0xf).
expect_ok "mxfp4 block" "0xf scale 2^0" "$bitsim" quantize -f mxfp4e2m1 1 2 3 -7
expect_ok "dfx per channel" '"scale_exp":"3"' "$bitsim" quantize -f 'dfx<4,channel>' --shape 2x2 --json 1 2 30 40
n=$(seq 1 100000 | "$bitsim" quantize -f 'fixed<16,0>' | wc -l)
[ "$n" -eq 100000 ] || { echo "FAIL: stdin batch of 100000 gave $n lines"; fails=$((fails + 1)); }

expect_error "unknown format" "unknown format 'fixd'" "$bitsim" quantize -f 'fixd<8,4>' 1
expect_error "zero word length" "word length 0" "$bitsim" quantize -f 'fixed<0,0>' 1
expect_error "too wide" "word length 129" "$bitsim" formats 'fixed<129,0>'
expect_error "malformed number" "bad number 'abc'" "$bitsim" quantize -f fp16 abc
expect_error "bad rounding" "bad rounding 'nearest'" "$bitsim" quantize -f fp16 -r nearest 1
expect_error "overflow mode for floats" "overflow 'wrap' does not apply" "$bitsim" quantize -f fp16 -o wrap 1
expect_error "missing operand" "add takes 2 operands" "$bitsim" op add -f fp16 1
expect_error "operand not in format" "not a value of float<5,10>" "$bitsim" op add -f fp16 0.1 1
expect_error "stdin line named" "stdin line 2" sh -c "printf '1\nx\n' | '$bitsim' quantize -f fp16"
expect_error "bad exponent" "bad EXP '40'" "$bitsim" op rdivpot 5 40
expect_error "bad code" "bad code '0x1ff'" "$bitsim" op add -f fp8e4m3 --codes 0x1ff 0x1
expect_error "bad in-bits" "bad --in-bits 'f16'" "$bitsim" quantize -f fp16 --in-bits f16 0
expect_error "sr bits" "bad --sr-bits 40" "$bitsim" quantize -f fp16 --sr-bits 40 1

expect_error "bad shape" "bad --shape '3x2'" "$bitsim" quantize -f 'dfx<4,channel>' --shape 3x2 1 2 3 4
expect_error "bad block format" "dfx" "$bitsim" quantize -f 'dfx<1>' 1
expect_error "shape on scalar format" "--shape applies to block formats" "$bitsim" quantize -f fp16 --shape 1x1 1

if [ $fails -ne 0 ]; then echo "$fails CLI checks failed"; exit 1; fi
echo "all CLI checks passed"
