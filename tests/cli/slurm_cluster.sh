# Starts a private single-node Slurm cluster for a test (sourced; scripts/slurm-local.sh does the
# work). Needs $root (the source tree) and $tmp (the test's directory); stops the cluster and
# removes $tmp on exit. Without root or Slurm, prints SKIP and exits 77 (CTest's skip status).
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (slurmd runs jobs as their user)"; exit 77; fi
export PATH=$PATH:/usr/sbin
for b in munged slurmctld slurmd sbatch squeue sinfo scancel; do
  command -v "$b" >/dev/null 2>&1 || { echo "SKIP: $b not installed (scripts/setup.sh installs slurm-wlm and munge)"; exit 77; }
done
cluster=$tmp/cluster
trap '"$root/scripts/slurm-local.sh" stop "$cluster" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
# Options for sbatch may come from SLURM_*/SBATCH_* variables, e.g. when this runs inside a job.
# shellcheck disable=SC2046 # one word per variable name
unset $(compgen -e | grep -E '^(SLURM|SBATCH|SALLOC|SRUN|SQUEUE|SINFO|SCANCEL)_')
if ! "$root/scripts/slurm-local.sh" start "$cluster" >"$tmp/start.log" 2>&1; then
  echo "FAIL: private cluster did not start: $(grep -m1 'start failed' "$tmp/start.log")"
  cat "$tmp/start.log"
  exit 1
fi
source "$cluster/env.sh"
