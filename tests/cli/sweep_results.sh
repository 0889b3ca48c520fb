# CSV helpers for the sweep tests (sourced after expect.sh, whose fail counter they use).

# Compares two results.csv without the wall_seconds column.
same_results() {
  local what="$1" a="$2" b="$3"
  python3 - "$a" "$b" <<'PY' || { echo "FAIL: $what: results.csv differ (wall_seconds aside)"; fails=$((fails + 1)); }
import csv, sys
def rows(path):
    r = list(csv.reader(open(path)))
    w = r[0].index("wall_seconds")
    return [x[:w] + x[w + 1:] for x in r]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    for x, y in zip(a, b):
        if x != y: print("  ", x, "\n  ", y); break
    sys.exit(1)
PY
}
column() {  # column NAME FILE: the values of a column of a CSV file, one per line
  python3 -c 'import csv, sys; r = list(csv.reader(open(sys.argv[2]))); i = r[0].index(sys.argv[1]); print("\n".join(x[i] for x in r[1:]))' "$1" "$2"
}
