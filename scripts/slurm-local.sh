#!/usr/bin/env bash
# Runs a private single-node Slurm cluster (munged, slurmctld, slurmd) for tests, with every file
# it needs under one directory, so that it neither needs nor disturbs a system Slurm or munge.
#
#   scripts/slurm-local.sh start DIR   # creates DIR, starts the daemons, waits for the node to be idle
#   source DIR/env.sh                  # exports SLURM_CONF; then sbatch, squeue, scontrol... talk to it
#   scripts/slurm-local.sh stop DIR    # cancels its jobs, stops exactly the daemons it started
#
# Needs root (slurmd runs jobs as their submitter) and the Debian packages slurmctld, slurmd,
# slurm-client and munge (scripts/setup.sh installs them). DIR holds:
#   slurm.conf env.sh       the configuration, and the environment a caller sources
#   munge/                  munge.key, munge.socket.2, munged.seed
#   pid/                    munged.pid slurmctld.pid slurmd.pid: what `stop` stops
#   log/                    munged.log slurmctld.log slurmd.log, jobcomp.txt (one line per finished job)
#   state/ spool/           slurmctld's state and slurmd's spool; emptied on every start
# The two TCP ports (slurmctld's, and slurmd's just above it) are picked at random among free ones in
# 20000-31999, below Linux's ephemeral range; SLURM_LOCAL_PORT=N forces N and N+1. Starting a DIR that
# still has daemons (or stale pid files, after a kill -9) stops those first and starts afresh.
# SLURM_LOCAL_TIMEOUT (default 30) bounds, in seconds, the wait for the node to become idle.
set -uo pipefail

prog=slurm-local
port_override=${SLURM_LOCAL_PORT:-}      # read now: start clears SLURM_* from its environment
timeout_s=${SLURM_LOCAL_TIMEOUT:-30}
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
case "$cmd" in start|stop) ;; *) usage ;; esac
[[ "$port_override" =~ ^([0-9]{4,5})?$ ]] || { echo "$prog: SLURM_LOCAL_PORT must be a port number" >&2; exit 2; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || { echo "$prog: SLURM_LOCAL_TIMEOUT must be a number of seconds" >&2; exit 2; }

# Every daemon is started with this variable set to DIR, so that `stop` can find one whose pid file
# is gone without matching process names (see marked_pids for the processes they spawn).
marker=BITSIM_SLURM_LOCAL_DAEMON

# Slurm's clients and daemons take options from SLURM_* and SBATCH_* variables (set, say, when this
# runs inside a job of a real cluster); the private cluster must not.
# shellcheck disable=SC2046 # one word per variable name
unset $(compgen -e | grep -E '^(SLURM|SBATCH|SALLOC|SRUN|SQUEUE|SINFO|SCANCEL)_') 2>/dev/null

if [ "$cmd" = stop ] && [ ! -d "$2" ]; then exit 0; fi
mkdir -p "$2" || { echo "$prog: cannot create $2" >&2; exit 1; }
dir=$(cd "$2" && pwd -P)
conf=$dir/slurm.conf
daemons=(slurmd slurmctld munged)   # in the order `stop` stops them

# The pid recorded for daemon $1, if that process is alive (not a zombie) and was started for this DIR.
owned_pid() {
  local file=$dir/pid/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
  echo "$pid"
}

# Sets stat_state and stat_ppid from /proc/$1/stat; fails when there is no such process.
proc_stat() {
  local line rest
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  rest=${line##*) }   # the command name in parentheses may hold spaces
  read -r stat_state stat_ppid _ <<<"$rest"
}

alive() { # pid: running and not a zombie (daemons are re-parented; their zombies may linger)
  proc_stat "$1" && [ "$stat_state" != Z ]
}

# Processes this DIR's daemons left or spawned, found without matching names: those carrying the
# marker in their environment (the daemons), those writing to its daemon logs (slurmstepd and
# slurmscriptd rewrite their environment, but keep the log open), and all their descendants (jobs).
marked_pids() {
  local p f found=() more
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" != $$ ] || continue
    if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF -- "$marker=$dir"; then found+=("$p"); continue; fi
    for f in /proc/"$p"/fd/*; do
      case "$(readlink "$f" 2>/dev/null)" in
        "$dir"/log/slurmd.log | "$dir"/log/slurmctld.log) found+=("$p"); break ;;
      esac
    done
  done
  [ ${#found[@]} -gt 0 ] || return 0
  more=1
  while [ $more -eq 1 ]; do
    more=0
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      proc_stat "$p" && [[ " ${found[*]} " == *" $stat_ppid "* ]] && [[ " ${found[*]} " != *" $p "* ]] &&
        { found+=("$p"); more=1; }
    done
  done
  printf '%s\n' "${found[@]}"
}

any_alive() { local p; for p; do alive "$p" && return 0; done; return 1; }

# Sends TERM to the given pids, waits up to $1 seconds, then KILLs those left and waits 5 s more.
terminate() {
  local wait_s=$1 p i left=(); shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null
  for ((i = 0; i < wait_s * 10; i++)); do any_alive "$@" || return 0; sleep 0.1; done
  for p; do alive "$p" && left+=("$p"); done
  [ ${#left[@]} -gt 0 ] && kill -KILL "${left[@]}" 2>/dev/null
  for ((i = 0; i < 50; i++)); do any_alive "$@" || return 0; sleep 0.1; done
  echo "$prog: processes $* still alive after SIGKILL" >&2
}

stop_cluster() {
  local d p t0 pids=()
  # Cancel jobs first while the controller answers, so their processes do not outlive slurmd; give
  # them up to 10 s to leave the queue.
  if owned_pid slurmctld >/dev/null && [ -f "$conf" ]; then
    t0=$SECONDS
    SLURM_CONF=$conf timeout 5 scancel --quiet --user="$(id -un)" >/dev/null 2>&1
    while [ $((SECONDS - t0)) -lt 10 ] && [ -n "$(SLURM_CONF=$conf timeout 5 squeue -h -o %i 2>/dev/null)" ]; do
      sleep 0.1
    done
  fi
  for d in "${daemons[@]}"; do
    if p=$(owned_pid "$d"); then pids+=("$p"); fi
  done
  terminate 15 "${pids[@]}"
  mapfile -t pids < <(marked_pids)
  terminate 3 "${pids[@]}"
  rm -f "$dir"/pid/*.pid
}

tail_logs() {
  local f
  for f in "$dir"/log/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f" >&2
    tail -n 12 "$f" >&2
  done
}

die() { # one clear line, then the daemons' log tails, then nothing left running
  echo "$prog: start failed: $*" >&2
  tail_logs
  stop_cluster
  exit 1
}

port_free() { # nothing listens on TCP port $1 (bash's /dev/tcp, so no extra tool is needed)
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_ports() {
  local p i
  if [ -n "$port_override" ]; then echo "$port_override"; return 0; fi
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + (RANDOM % 6000) * 2))
    port_free "$p" && port_free $((p + 1)) && { echo "$p"; return 0; }
  done
  return 1
}

start_cluster() {
  local b node cpus mem port i state
  [ "$(id -u)" -eq 0 ] || { echo "$prog: start failed: needs root (slurmd runs jobs as their user)" >&2; exit 1; }
  for b in munged slurmctld slurmd sinfo scancel squeue timeout; do
    command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$b" >/dev/null 2>&1 ||
      { echo "$prog: start failed: $b not found (run scripts/setup.sh: packages munge slurmctld slurmd slurm-client)" >&2; exit 1; }
  done
  export PATH=$PATH:/usr/sbin
  # Unix socket paths hold at most 107 bytes; slurmd's step sockets are DIR/spool/<node>_<job>.<step>,
  # the step of a batch script being 4294967291.
  node=$(hostname -s 2>/dev/null || uname -n)
  node=${node%%.*}
  local max=$((107 - ${#node} - 29))
  [ ${#dir} -le $max ] ||
    { echo "$prog: start failed: $dir is ${#dir} characters, over $max (unix socket paths under it would be too long); use a shorter one, e.g. from mktemp -d" >&2; exit 1; }

  stop_cluster # whatever an earlier start in this DIR left behind
  rm -rf "$dir/state" "$dir/spool" "$dir/munge" "$dir/pid"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/pid" "$dir/log" || die "cannot create directories in $dir"
  for b in munged slurmctld slurmd; do [ -f "$dir/log/$b.log" ] && mv -f "$dir/log/$b.log" "$dir/log/$b.log.prev"; done
  rm -f "$dir/log/jobcomp.txt" "$dir/env.sh"

  # munge: its own key, socket, pid, log and seed. --force lets it run as root and with a socket in a
  # directory others cannot search (mktemp -d makes 0700 ones); only root talks to it here.
  (umask 077 && head -c 1024 /dev/urandom >"$dir/munge/munge.key") || die "cannot write the munge key"
  env "$marker=$dir" munged --force --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/pid/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    >/dev/null 2>&1 || die "munged did not start"
  for ((i = 0; i < 100; i++)); do
    munge -n -S "$dir/munge/munge.socket.2" 2>/dev/null | unmunge -S "$dir/munge/munge.socket.2" >/dev/null 2>&1 && break
    sleep 0.1
  done
  [ $i -lt 100 ] || die "munged does not answer on $dir/munge/munge.socket.2"

  cpus=$(nproc)
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
  port=$(pick_ports) || die "no two free TCP ports found in 20000-31999"
  cat >"$conf" <<EOF
# Private single-node cluster written by scripts/slurm-local.sh; everything lives under $dir.
ClusterName=bitsimlocal
# NodeAddr and the controller's address are loopback, so the hostname need not resolve.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/pid/slurmctld.pid
SlurmdPidFile=$dir/pid/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups: processes are tracked through their parents, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd, so sacct has nothing; finished jobs stay in squeue/scontrol for MinJobAge seconds
# and get a line in jobcomp.txt.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
# One core per task by default, so array tasks run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MaxArraySize=100001
MaxJobCount=200000
ReturnToService=2
KillWait=5
InactiveLimit=0
MailProg=/bin/true
MpiDefault=none
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus${mem:+ RealMemory=$mem} State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  env "$marker=$dir" slurmctld -f "$conf" >/dev/null 2>&1 || die "slurmctld did not start"
  env "$marker=$dir" slurmd -f "$conf" -N "$node" >/dev/null 2>&1 || die "slurmd did not start"

  local t0=$SECONDS
  while :; do
    state=$(SLURM_CONF=$conf timeout 5 sinfo -h -n "$node" -o %t 2>/dev/null)
    [ "$state" = idle ] && break
    for b in munged slurmctld slurmd; do
      # A daemon writes its pid file once it runs; give it 2 s before calling it dead.
      if [ $((SECONDS - t0)) -ge 2 ] && ! owned_pid "$b" >/dev/null; then die "$b exited (see $dir/log/$b.log)"; fi
    done
    [ $((SECONDS - t0)) -lt "$timeout_s" ] || die "node $node not idle after ${timeout_s}s (sinfo says '${state:-nothing}')"
    sleep 0.2
  done

  cat >"$dir/env.sh" <<EOF
# Source this to use the private Slurm cluster in $dir (scripts/slurm-local.sh).
export SLURM_CONF=$conf
# Slurm finds munge through slurm.conf (AuthInfo); for munge/unmunge themselves pass -S "\$SLURM_LOCAL_MUNGE_SOCKET".
SLURM_LOCAL_MUNGE_SOCKET=$dir/munge/munge.socket.2
EOF
  echo "$prog: node $node idle ($cpus CPUs, ports $port/$((port + 1))); source $dir/env.sh"
}

case "$cmd" in
  start) start_cluster ;;
  stop) stop_cluster ;;
esac
