#!/usr/bin/env bash
# Configures and builds bitsim into build/ (or build-asan/ with --sanitize). Used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITSIM_SANITIZE=ON -DBITSIM_BENCHMARKS=OFF)
fi
[ -f "$dir/build.ninja" ] || cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
