#!/usr/bin/env bash
# Trains the model zoo (resnet8, mobilenet, vgg), each in fp32, 8-bit and fp8 (sweep-<net>.toml),
# and keeps what the sweeps conclude in experiments/zoo/results/<net>/: results.csv, configs.csv,
# the learning curves (curves.csv, curves.png) and the printed summary (sweep.log). The run
# directories (checkpoints included) stay in the output directory; a run that exists resumes.
# Usage: experiments/zoo/run.sh [path/to/bitsim] [output dir] [net ...]   (default: all three)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bitsim=${1:-$here/../../build/app/bitsim}
out=${2:-$here/../../out/zoo}
shift $(($# < 2 ? $# : 2))
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(resnet8 mobilenet vgg)
[ -x "$bitsim" ] || { echo "run.sh: no bitsim at '$bitsim' (build it, or pass its path)" >&2; exit 1; }

for n in "${nets[@]}"; do
  [ -f "$here/sweep-$n.toml" ] || { echo "run.sh: no sweep file $here/sweep-$n.toml" >&2; exit 2; }
  dir="$out/$n" keep="$here/results/$n"
  resume=()
  [ -e "$dir/sweep.json" ] && resume=(--resume)
  mkdir -p "$out"
  "$bitsim" sweep "$here/sweep-$n.toml" --out "$dir" --jobs "$(nproc)" "${resume[@]}" | tee "$dir.log"
  mkdir -p "$keep"
  cp "$dir"/results.csv "$dir"/configs.csv "$dir"/curves.csv "$dir"/curves.png "$keep"/
  { echo "# $("$bitsim" --version), $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"; cat "$dir.log"; } >"$keep/sweep.log"
  # The fp32 network (point 0000) deployed as Jacob et al. 2018 do: integer-only inference, uint8
  # activations calibrated by min/max on 8 training batches, int8 per-channel weights.
  "$bitsim" infer "$here/$n.toml" --checkpoint "$dir/points/0000/checkpoint.bin" --integer-only --json >"$dir/integer.json"
  /usr/bin/python3 - "$dir/integer.json" "$keep/integer_only.csv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
io = r["integer_only"]
with open(sys.argv[2], "w") as f:
    f.write("run,test_accuracy,same_prediction_as_fp32,inference_energy_j\n")
    f.write(f"fp32,{io['reference']['accuracy']},1,\n")
    f.write(f"integer-only ({io['calibration']}),{r['accuracy']['test']},{io['agreement_with_reference']},"
            f"{r['cost']['total']['energy_pj']['total'] * 1e-12}\n")
PY
done
