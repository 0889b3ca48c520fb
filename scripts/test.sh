#!/usr/bin/env bash
# Sets up, builds and runs bitsim's test suite (the default CTest set; --sanitize: ASan+UBSan build),
# then the short libFuzzer runs of the parsers (scripts/fuzz.sh, clang, build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
export SYSTEMC_DISABLE_COPYRIGHT_MESSAGE=1
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" -LE long
scripts/fuzz.sh
