# Assertions shared by the CLI test scripts (sourced). Each failure prints one line and counts.
fails=0

# expect_ok "description" "expected substring of stdout" command...
expect_ok() {
  local what="$1" want="$2"; shift 2
  local out; out=$("$@" 2>&1); local rc=$?
  if [ $rc -ne 0 ] || [[ "$out" != *"$want"* ]]; then
    echo "FAIL: $what: rc=$rc, wanted '$want' in: $out"; fails=$((fails + 1))
  fi
}

# expect_error "description" "expected substring of the error line" command...
# Bad input must give exactly one line on stderr and exit status 2.
expect_error() {
  local what="$1" want="$2"; shift 2
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -ne 2 ] || [[ "$err" != *"$want"* ]] || [ "$lines" -ne 1 ]; then
    echo "FAIL: $what: rc=$rc (want 2), lines=$lines (want 1), wanted '$want' in: $err"; fails=$((fails + 1))
  fi
}
