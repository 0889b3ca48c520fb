#!/usr/bin/env bash
# End-to-end checks of `bitsim cost`: published anchors on the command line, roofline by hand,
# plots written atomically, and bad input (including a malformed table) as one error line, exit 2.
set -u
bitsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/../cli/expect.sh"

# Horowitz ISSCC 2014, 45 nm: 8b mult 0.2 pJ + 32b add 0.1 pJ; fp32 mult 3.7 pJ, 7700 um^2.
expect_ok "int8 mac energy" "total                                           0.3 pJ" "$bitsim" cost energy --op mac -f 'int<8>'
expect_ok "fp32 mul energy" "3.7 pJ" "$bitsim" cost energy --op mul -f fp32
expect_ok "fp32 mul area" "7700 um^2" "$bitsim" cost area --op mul -f fp32
expect_ok "32b mul json" '"energy_pj":3.1' "$bitsim" cost energy --op mul -f 'int<32>' --json
expect_ok "sram 1MB" "100 pJ" "$bitsim" cost energy --op sram --sram-kb 1024 --access-bits 64
expect_ok "dram low end" "1300 pJ" "$bitsim" cost energy --op dram --access-bits 64
expect_ok "dram high end" "2600 pJ" "$bitsim" cost energy --op dram --access-bits 64 --dram-end high
# Stillmaker & Baas: 45 nm -> 7 nm area factor 0.059: 282 um^2 x 0.059 = 16.638 um^2.
expect_ok "7 nm area" "16.638 um^2" "$bitsim" cost area --op mul -f 'int<8>' --node 7
expect_ok "28 nm interpolated" '"node_interpolated":true' "$bitsim" cost energy --op mul -f bf16 --node 28 --json
expect_ok "supply stated" "0.7 V" "$bitsim" cost energy --op mul -f 'int<8>' --node 7
expect_ok "laws" "fp mul significand datapath" "$bitsim" cost laws

# Roofline of an array: 16x16 at 1 GHz = 512 GOPS. 64x64x64 int8 into int32 with 256 KiB buffers:
# everything fits on chip, so DRAM carries A (4096 B) and W (4096 B) once and C once at the
# accumulator's 32 bits (16384 B): 24576 bytes for 2 x 64^3 = 524288 ops, 21.33 ops/byte;
# x 10 GB/s = 213.3 GOPS (memory bound), x 100 GB/s = 2133 > 512 (compute bound).
expect_ok "roofline peak" "peak 512 GOPS" "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm fc=64x64x64
expect_ok "roofline bytes" "524288          24576      21.33" "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm fc=64x64x64
expect_ok "roofline memory bound" "213.333" "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm fc=64x64x64
expect_ok "roofline compute bound" "  compute" "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 100 --gemm fc=64x64x64
# An area budget has no array geometry: each operand crosses DRAM once at its own format (outputs
# int8): 12288 bytes, 42.67 ops/byte x 10 GB/s = 426.7 GOPS.
expect_ok "roofline of an area budget" "426.667   memory" "$bitsim" cost roofline --area-mm2 1 --clock 1 --bandwidth 10 --gemm fc=64x64x64
expect_ok "roofline json" '"bound":"memory"' "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm 64x64x64 --json
expect_ok "fpga binary" "MACs per cycle" "$bitsim" cost fpga --clock 0.3 -f 'int<1>'

if command -v "${BITSIM_GNUPLOT:-gnuplot}" >/dev/null 2>&1; then
  expect_ok "plots" "peak" "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm a=64x64x64 \
    --gemm b=1x4096x1000 --plot "$tmp/roof.png" --energy-plot "$tmp/energy.svg"
  [ -s "$tmp/roof.png" ] && [ -s "$tmp/energy.svg" ] || { echo "FAIL: plots not written"; fails=$((fails + 1)); }
  if ls -a "$tmp" | grep -q '\.tmp-'; then echo "FAIL: temporary plot file left behind"; fails=$((fails + 1)); fi
else
  echo "note: gnuplot not installed, plot output not checked"
fi
# A plotting failure is one clear error and leaves no file.
BITSIM_GNUPLOT=/nonexistent/gnuplot expect_error "no gnuplot" "cannot run '/nonexistent/gnuplot'" \
  "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm 64x64x64 --plot "$tmp/none.png"
[ -e "$tmp/none.png" ] && { echo "FAIL: failed plot left a file"; fails=$((fails + 1)); }
expect_error "plot extension" "unsupported extension '.pdf'" "$bitsim" cost roofline --array 16x16 --clock 1 \
  --bandwidth 10 --gemm 64x64x64 --plot "$tmp/x.pdf"

# A user's table: used as given, and a malformed one names the entry.
cat > "$tmp/mine.json" <<'EOF'
{"name": "mine", "source": "my synthesis", "node_nm": 28, "vdd_v": 0.9, "entries": [
  {"id": "add8", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.011, "source": "synthesis run 3"},
  {"id": "mul8", "kind": "int_mul", "bits": 8, "per": "op", "energy_pj": 0.07, "source": "synthesis run 3"}]}
EOF
expect_ok "user table" "0.081 pJ" "$bitsim" cost energy --op mac -f 'int<8>' --acc-format 'int<8>' --table "$tmp/mine.json"
sed 's/"energy_pj": 0.07/"energy_pj": "0.07"/' "$tmp/mine.json" > "$tmp/bad.json"
expect_error "malformed table" "entry 'mul8': 'energy_pj' must be a positive number" "$bitsim" cost energy --op mul -f 'int<8>' --table "$tmp/bad.json"
printf '{"name": ' > "$tmp/broken.json"
expect_error "broken json" "not valid JSON" "$bitsim" cost energy --op mul -f 'int<8>' --table "$tmp/broken.json"

expect_error "bad op" "bad --op 'div'" "$bitsim" cost energy --op div -f 'int<8>'
expect_error "missing format" "--op mul needs --format" "$bitsim" cost energy --op mul
expect_error "bad format" "unknown format 'fixd'" "$bitsim" cost energy --op mul -f 'fixd<8,4>'
expect_error "bad node" "bad node 5 nm" "$bitsim" cost energy --op mul -f 'int<8>' --node 5
expect_error "mixed operands" "mixing a float and a fixed-point operand" "$bitsim" cost energy --op mul -f fp16 --format2 'int<8>'
expect_error "bad array" "bad --array '16'" "$bitsim" cost roofline --array 16 --clock 1 --bandwidth 10 --gemm 1x2x3
expect_error "bad clock" "bad --clock 'fast'" "$bitsim" cost roofline --array 4x4 --clock fast --bandwidth 10 --gemm 1x2x3
expect_error "bad gemm" "bad --gemm 'l1=2x3'" "$bitsim" cost roofline --array 4x4 --clock 1 --bandwidth 10 --gemm l1=2x3
expect_error "no memory area" "no area model for memories" "$bitsim" cost area --op sram --sram-kb 8
expect_error "fpga float" "covers integer MACs" "$bitsim" cost fpga --clock 0.3 -f fp16

if [ $fails -ne 0 ]; then echo "$fails cost CLI checks failed"; exit 1; fi
echo "all cost CLI checks passed"
