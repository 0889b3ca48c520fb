#!/usr/bin/env bash
# Every experiment file shipped in experiments/ loads, validates and trains: one epoch on a few
# examples each, so a schema change cannot leave one behind. Every sweep file (one with a top-level
# `experiment`) runs whole on the same slice of the data.
set -u
bitsim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"

count=0 sweeps=0
while IFS= read -r f; do
  count=$((count + 1))
  slice=(--set train.epochs=1 --set data.train_limit=128 --set data.test_limit=64)
  if grep -q '^experiment *=' "$f"; then
    sweeps=$((sweeps + 1))
    expect_ok "sweep $f" " 0 failed, 0 not run" "$bitsim" sweep "$f" --out "$tmp/$count" --jobs 2 "${slice[@]}"
  else
    expect_ok "train $f" "run directory" "$bitsim" train "$f" --out "$tmp/$count" "${slice[@]}"
  fi
done < <(find "$root/experiments" -name '*.toml' | sort)
[ "$count" -ge 8 ] || { echo "FAIL: expected at least 8 experiment files, found $count"; fails=$((fails + 1)); }

if [ $fails -ne 0 ]; then echo "$fails experiment checks failed"; exit 1; fi
echo "all $count experiment files train ($sweeps of them sweeps, run whole)"
