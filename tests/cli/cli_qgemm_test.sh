#!/usr/bin/env bash
# End-to-end checks of `bitsim op qgemm`: cases worked by hand (tests/arith/test_qgemm.cpp checks
# the same function against gemmlowp itself), stdin batches, and one error line with exit status 2
# naming the line and the key for every kind of bad case.
set -u
bitsim="$1"

source "$(dirname "$0")/expect.sh"

# Every key but the sizes and matrices, as most of the cases below use them.
tail='"lhs_offset":0,"rhs_offset":0,"result_fixedpoint_multiplier":2147483647,"result_shift":0,"result_offset_after_shift":0,"clamp_min":0,"clamp_max":255'
one="{\"M\":1,\"N\":1,\"K\":1,\"lhs\":[3],\"rhs\":[5],$tail}"

# lhs + 1 = [[1,2],[3,4]], rhs - 2 = [[0,1],[2,3]]: acc [[4,7],[8,15]]; + row bias [10,-10]; times
# 2^30/2^31 (ties up), then / 2 (ties away): 14 -> 7 -> 4, -3 -> -1 -> -1, 18 -> 9 -> 5, 5 -> 3 -> 2;
# + 100, clamped to 100..104.
worked='{"M":2,"N":2,"K":2,"lhs":[0,1,2,3],"rhs":[2,3,4,5],"lhs_offset":1,"rhs_offset":-2,"bias":[10,-10],"bias_shape":"row","result_fixedpoint_multiplier":1073741824,"result_shift":1,"result_offset_after_shift":100,"clamp_min":100,"clamp_max":104}'
expect_ok "worked case" '{"acc_int32":[4,7,8,15],"scaled_int32":[104,99,105,102],"out_uint8":[104,100,104,102]}' \
  "$bitsim" op qgemm "$worked"
# The same bias as a column: bias[m] goes to row m, [[14,17],[-2,5]] -> [[4,5],[-1,2]].
expect_ok "column bias" '"acc_int32":[4,7,8,15],"scaled_int32":[104,105,99,102],"out_uint8":[104,104,100,102]' \
  "$bitsim" op qgemm "${worked/\"row\"/\"col\"}"
# Multiplier 2^31 - 1 with shift 0 passes acc through; the saturating cast takes 3*5 = 15 as is and
# (255 + 255)^2 = 260100 to 255.
expect_ok "identity multiplier" '{"acc_int32":[15],"scaled_int32":[15],"out_uint8":[15]}' "$bitsim" op qgemm "$one"
expect_ok "saturating cast" '{"acc_int32":[260100],"scaled_int32":[260100],"out_uint8":[255]}' \
  "$bitsim" op qgemm "{\"M\":1,\"N\":1,\"K\":1,\"lhs\":[255],\"rhs\":[255],${tail/\"lhs_offset\":0,\"rhs_offset\":0/\"lhs_offset\":255,\"rhs_offset\":255}}"
# Shift 31: round(-260100 / 2^31) = 0; bias INT32_MIN with multiplier INT32_MIN saturates to INT32_MAX.
expect_ok "shift 31" '"scaled_int32":[-1]' "$bitsim" op qgemm \
  '{"M":1,"N":1,"K":1,"lhs":[0],"rhs":[255],"lhs_offset":-255,"rhs_offset":255,"result_fixedpoint_multiplier":2147483647,"result_shift":31,"result_offset_after_shift":-1,"clamp_min":0,"clamp_max":255}'
expect_ok "high mul saturates" '{"acc_int32":[0],"scaled_int32":[2147483647],"out_uint8":[255]}' "$bitsim" op qgemm \
  '{"M":1,"N":1,"K":1,"lhs":[0],"rhs":[0],"lhs_offset":0,"rhs_offset":0,"bias":[-2147483648],"bias_shape":"col","result_fixedpoint_multiplier":-2147483648,"result_shift":0,"result_offset_after_shift":0,"clamp_min":0,"clamp_max":255}'
n=$(printf '# cases\n%s\n\n%s\n' "$worked" "$one" | "$bitsim" op qgemm | wc -l)
[ "$n" -eq 2 ] || { echo "FAIL: stdin batch of 2 cases (and a comment and a blank line) gave $n lines"; fails=$((fails + 1)); }
expect_ok "help states the pipeline" "RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc + bias" "$bitsim" op qgemm --help

# A bad line stops the run after the cases before it have been printed.
out=$(printf '%s\n{"M":1}\n' "$one" | "$bitsim" op qgemm 2>/dev/null); rc=$?
[ $rc -eq 2 ] && [ "$out" = '{"acc_int32":[15],"scaled_int32":[15],"out_uint8":[15]}' ] ||
  { echo "FAIL: bad second line: rc=$rc, stdout '$out'"; fails=$((fails + 1)); }
expect_error "line and key named" "stdin line 2: key 'N': missing" sh -c "printf '%s\n{\"M\":1}\n' '$one' | '$bitsim' op qgemm"
expect_error "argument named" "argument 2: key 'M': missing" "$bitsim" op qgemm "$one" '{}'
expect_error "not JSON" "not JSON (at byte 8): syntax error while parsing object key" "$bitsim" op qgemm '{"M":1,,}'
expect_error "number beyond double" "not JSON: number overflow parsing '1e400'" "$bitsim" op qgemm "${one/\"K\":1/\"K\":1e400}"
expect_error "not an object" "expected one JSON object" "$bitsim" op qgemm '[1]'
expect_error "unknown key" "unknown key 'bogus'; the keys are M N K" "$bitsim" op qgemm "${one/\}/,\"bogus\":1\}}"
expect_error "repeated key" "key 'M': given twice" "$bitsim" op qgemm "${one/\}/,\"M\":1\}}"
expect_error "not an integer" "key 'K': expected an integer 1..1073741824, got '1.5'" "$bitsim" op qgemm "${one/\"K\":1/\"K\":1.5}"
expect_error "entry out of range" "key 'rhs': entry 0 is '256', expected an integer 0..255" "$bitsim" op qgemm "${one/\[5\]/[256]}"
expect_error "length" "key 'lhs': expected M*K = 1 entries (row-major), got 2" "$bitsim" op qgemm "${one/\[3\]/[3,4]}"
expect_error "offset range" "key 'lhs_offset': expected -255..255" "$bitsim" op qgemm "${one/\"lhs_offset\":0/\"lhs_offset\":-256}"
expect_error "bias shape" "key 'bias_shape': expected \"col\"" "$bitsim" op qgemm "${one/\}/,\"bias\":[1],\"bias_shape\":\"column\"\}}"
expect_error "bias length" "key 'bias': expected M = 1 entries for bias_shape \"col\", got 2" "$bitsim" op qgemm "${one/\}/,\"bias\":[1,2],\"bias_shape\":\"col\"\}}"
expect_error "shift range" "key 'result_shift': expected 0..31" "$bitsim" op qgemm "${one/\"result_shift\":0/\"result_shift\":-1}"
expect_error "clamp order" "key 'clamp_min': 1 is above clamp_max 0" "$bitsim" op qgemm "${one/\"clamp_min\":0,\"clamp_max\":255/\"clamp_min\":1,\"clamp_max\":0}"
expect_error "too deep" "key 'K': 33026 is above 33025" "$bitsim" op qgemm "${one/\"K\":1/\"K\":33026}"
expect_error "too many results" "key 'N': M*N = 16777217 results" "$bitsim" op qgemm "${one/\"M\":1,\"N\":1/\"M\":16777217,\"N\":1}"
expect_error "bias overflow" "key 'bias': acc + bias = 15 + 2147483647 = 2147483662 leaves int32 at row 0, column 0" \
  "$bitsim" op qgemm "${one/\}/,\"bias\":[2147483647],\"bias_shape\":\"row\"\}}"
expect_error "offset overflow" "key 'result_offset_after_shift': 15 + 2147483647 = 2147483662 leaves int32" \
  "$bitsim" op qgemm "${one/\"result_offset_after_shift\":0/\"result_offset_after_shift\":2147483647}"

if [ $fails -ne 0 ]; then echo "$fails qgemm CLI checks failed"; exit 1; fi
echo "all qgemm CLI checks passed"
