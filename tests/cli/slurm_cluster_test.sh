#!/usr/bin/env bash
# A private single-node Slurm cluster (scripts/slurm-local.sh) runs what `bitsim sweep --slurm` will
# submit: a throttled job array whose tasks write into a shared directory, and a job that waits for
# the whole array (afterany) and merges their files. Needs root and Slurm; otherwise it prints SKIP
# and exits 77. Takes no arguments (one is accepted and ignored, like the other CLI tests' binary).
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$(dirname "$0")/expect.sh"

t0=$SECONDS
tmp=$(mktemp -d)
shared=$tmp/shared
mkdir -p "$shared"
source "$(dirname "$0")/slurm_cluster.sh"

# The submitting environment reaches the tasks (sbatch's default --export=ALL).
export SMOKE_TOKEN="token-$$"
printf -v task 'echo "$SLURM_ARRAY_TASK_ID" >%q/point-$SLURM_ARRAY_TASK_ID.tmp && mv %q/point-$SLURM_ARRAY_TASK_ID.tmp %q/point-$SLURM_ARRAY_TASK_ID; echo "task $SLURM_ARRAY_TASK_ID $SMOKE_TOKEN"' \
  "$shared" "$shared" "$shared"
array=$(sbatch --parsable --array=0-3%2 --job-name=smoke --chdir="$shared" \
  --output="$shared/task-%A_%a.out" --wrap "$task" 2>&1)
array=${array%%;*}
if ! [[ "$array" =~ ^[0-9]+$ ]]; then echo "FAIL: sbatch --array: $array"; exit 1; fi

printf -v merge 'cat %q/point-0 %q/point-1 %q/point-2 %q/point-3 >%q/merged.tmp && mv %q/merged.tmp %q/merged' \
  "$shared" "$shared" "$shared" "$shared" "$shared" "$shared" "$shared"
mjob=$(sbatch --parsable --dependency="afterany:$array" --job-name=smoke-merge --chdir="$shared" \
  --output="$shared/merge.out" --wrap "$merge" 2>&1)
mjob=${mjob%%;*}
if ! [[ "$mjob" =~ ^[0-9]+$ ]]; then echo "FAIL: sbatch --dependency: $mjob"; exit 1; fi

# Wait (at most 60 s) until the merge job has left the queue's active states.
state=
for ((i = 0; i < 300; i++)); do
  state=$(squeue -h -t all -j "$mjob" -o %T 2>/dev/null)
  case "$state" in PENDING | CONFIGURING | RUNNING | COMPLETING | "") sleep 0.2 ;; *) break ;; esac
done
[ "$state" = COMPLETED ] ||
  { echo "FAIL: merge job $mjob: state '$state' (queue: $(squeue -h -t all -o '%i %T %r' | tr '\n' ';'))"; fails=$((fails + 1)); }

tasks=$(squeue -h -t all -j "$array" -o '%K %T' 2>/dev/null | sort -n | tr '\n' ';')
[ "$tasks" = "0 COMPLETED;1 COMPLETED;2 COMPLETED;3 COMPLETED;" ] ||
  { echo "FAIL: array job $array: tasks '$tasks', want 0..3 COMPLETED"; fails=$((fails + 1)); }
merged=$(tr '\n' ' ' <"$shared/merged" 2>/dev/null)
[ "$merged" = "0 1 2 3 " ] || { echo "FAIL: merged output '$merged', want '0 1 2 3 '"; fails=$((fails + 1)); }
for t in 0 1 2 3; do
  out=$(cat "$shared/task-${array}_$t.out" 2>/dev/null)
  [ "$out" = "task $t $SMOKE_TOKEN" ] || { echo "FAIL: task $t stdout '$out', want 'task $t $SMOKE_TOKEN'"; fails=$((fails + 1)); }
done
# The controller logs each finished job (array tasks and the merge) to jobcomp.txt.
n=$(grep -c 'JobState=COMPLETED' "$cluster/log/jobcomp.txt" 2>/dev/null)
[ "${n:-0}" -eq 5 ] || { echo "FAIL: jobcomp.txt has ${n:-0} COMPLETED jobs, want 5"; fails=$((fails + 1)); }

daemons=$(cat "$cluster"/pid/*.pid 2>/dev/null)
"$root/scripts/slurm-local.sh" stop "$cluster" || { echo "FAIL: slurm-local.sh stop"; fails=$((fails + 1)); }
for p in $daemons; do # gone, or a zombie waiting for init to reap it
  if [ -r "/proc/$p/stat" ] && [[ "$(cat "/proc/$p/stat" 2>/dev/null)" != *") Z "* ]]; then
    echo "FAIL: daemon $p still running after stop: $(tr '\0' ' ' <"/proc/$p/cmdline")"; fails=$((fails + 1))
  fi
done

if [ $fails -ne 0 ]; then echo "$fails slurm cluster checks failed"; exit 1; fi
echo "private slurm cluster ran a 4-task array and its dependent merge ($((SECONDS - t0)) s)"
