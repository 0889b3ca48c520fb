#!/usr/bin/env bash
# Runs one libFuzzer target with bitsim's flags, seed corpus and dictionary (CTest and
# scripts/fuzz.sh both come through here, so the flags live in one place).
#   run.sh BINARY NAME WORKDIR runs=N     short and bounded (seed 1): replays the seed corpus, then
#                                          N executions; WORKDIR is emptied first and keeps a failing
#                                          input
#   run.sh BINARY NAME WORKDIR seconds=S  S seconds; WORKDIR keeps the corpus it grows (corpus/)
#                                          and any crashing input (findings/) across runs
#   run.sh BINARY NAME DIR replay          each file in DIR once, whole (inputs that once failed)
# Further arguments go to libFuzzer (e.g. -fork=1 -ignore_crashes=1 to go on after a finding).
set -euo pipefail
bin=$1 name=$2 work=$3 mode=$4
shift 4
src=$(cd "$(dirname "$0")" && pwd)
seeds=$src/corpus/$name

# Inputs up to 4 KiB: long enough for any real spec, number, experiment or header, short enough that
# the decimal parser's quadratic time and a gzip member's expansion (~1000x) stay small.
# 2 GiB caps what one input may allocate; leaks are findings too.
flags=(-max_len=4096 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1)
[ -f "$src/$name.dict" ] && flags+=(-dict="$src/$name.dict")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

case $mode in
  replay)
    # Whole files: -max_len would cut them, and they are long on purpose.
    files=("$work"/*)
    [ -e "${files[0]}" ] || exit 0
    exec "$bin" -rss_limit_mb=2048 -timeout=20 "$@" "${files[@]}"
    ;;
  runs=*)
    rm -rf "$work"
    mkdir -p "$work/corpus"
    exec "$bin" "${flags[@]}" -seed=1 -runs="${mode#runs=}" -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds"
    ;;
  seconds=*)
    mkdir -p "$work/corpus" "$work/findings"
    exec "$bin" "${flags[@]}" -max_total_time="${mode#seconds=}" -artifact_prefix="$work/findings/" "$@" \
      "$work/corpus" "$seeds"
    ;;
  *)
    echo "run.sh: mode must be runs=N, seconds=S or replay, not '$mode'" >&2
    exit 2
    ;;
esac
