#!/usr/bin/env bash
# Builds bitsim's libFuzzer targets into build-fuzz/ (clang, ASan+UBSan) and runs them.
#   scripts/fuzz.sh            the short bounded runs of the default test set (seed 1, fixed counts)
#   scripts/fuzz.sh SECONDS    each target for SECONDS (default of the fuzz label: 600), growing
#                              build-fuzz/fuzz-<target>/corpus; crashing inputs land in
#                              build-fuzz/fuzz-<target>/findings
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-fuzz
[ -f "$dir/build.ninja" ] || cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DBITSIM_FUZZ=ON -DBITSIM_BENCHMARKS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz_all
if [ $# -eq 0 ]; then
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" -LE long
else
  cmake -S . -B "$dir" -DBITSIM_FUZZ_SECONDS="$1" >/dev/null
  ctest --test-dir "$dir" --output-on-failure -L fuzz
fi
