#!/usr/bin/env bash
# ci/slurm/start-private.sh -- a private Slurm cluster of N nodes with their own host
# names, on loopback, beside whatever Slurm already runs on this machine.
#
# Usage: bash ci/slurm/start-private.sh DIR [--nodes N] [--port P] [--name NAME] [--conf LINE]...
#
#   DIR        everything of this cluster lives here: slurm.conf, state, spool, logs,
#              pid files and the "started" manifest that stop-private.sh reads.
#   --nodes N  compute nodes n1..nN (default 2), each slurmd in its own UTS
#              namespace (`unshare --uts` + `hostname nK`): jobs on node nK see host
#              name nK, and they all share this machine's filesystem.
#   --port P   slurmctld listens on P, node nK's slurmd on P+K (default 6917; the
#              default CI Slurm uses 6817-6819).
#   --name     ClusterName (default mempamal-private).
#   --conf L   an extra slurm.conf line (repeatable), e.g. --conf MaxArraySize=4.
#
# Clients reach it through SLURM_CONF=DIR/slurm.conf (written to DIR/env too);
# /etc/slurm and the default cluster are never read or touched. No accounting
# (sacct is unavailable here). munged is shared with the default cluster: it is
# started only when none runs (and then recorded and stopped by stop-private.sh).
# Root only (slurmd runs jobs as their user). Stop with ci/slurm/stop-private.sh DIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "[slurm-private] $*"; }
fail() { say "ERROR: $*"; exit 1; }

[ $# -ge 1 ] || fail "usage: $0 DIR [--nodes N] [--port P] [--name NAME] [--conf LINE]..."
DIR=$1; shift
NODES=2 PORT=6917 NAME=mempamal-private TIMEOUT=${MEMPAMAL_SLURM_TIMEOUT:-60}
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --conf) EXTRA+=("$2"); shift 2 ;;
    *) fail "unknown argument $1" ;;
  esac
done
[ "$(id -u)" = 0 ] || fail "run me as root (slurmd runs jobs as their users)"
for tool in /usr/sbin/slurmctld /usr/sbin/slurmd unshare sbatch; do
  command -v "$tool" >/dev/null || fail "$tool missing (apt-get install slurmctld slurmd slurm-client munge)"
done
case "$NODES" in ''|*[!0-9]*|0) fail "--nodes must be a positive integer" ;; esac

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/slurm.conf
MANIFEST=$DIR/started
[ -s "$MANIFEST" ] && fail "$MANIFEST lists daemons: stop that cluster first (stop-private.sh $DIR)"
mkdir -p "$DIR/state" "$DIR/log" "$DIR/run"
: > "$MANIFEST"
# A failure half-way stops what was already started.
trap 'status=$?; if [ $status -ne 0 ]; then bash "$HERE/stop-private.sh" "$DIR" || true; fi' EXIT

CTLD_HOST=$(hostname -s)
# The host's CPUs and memory as slurmd detects them, e.g. "CPUs=2 Boards=1 ... RealMemory=24105":
# every node gets them (the nodes share the machine; Slurm oversubscribes nothing per node).
HARDWARE=$(/usr/sbin/slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //; s/ UpTime=.*//')
{
  echo "# written by mempamal ci/slurm/start-private.sh: private cluster $NAME, $NODES node(s) on loopback"
  echo "ClusterName=$NAME"
  echo "SlurmctldHost=$CTLD_HOST(127.0.0.1)"
  echo "SlurmctldPort=$PORT"
  cat <<CONF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# a killed node is noticed in seconds, not the default 5 minutes
SlurmdTimeout=10
KillWait=5
InactiveLimit=0
MinJobAge=300
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
CONF
  for line in "${EXTRA[@]}"; do echo "$line"; done
  for k in $(seq "$NODES"); do
    echo "NodeName=n$k NodeAddr=127.0.0.1 NodeHostname=n$k Port=$((PORT + k)) $HARDWARE State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$CONF.new"
mv "$CONF.new" "$CONF"
echo "SLURM_CONF=$CONF" > "$DIR/env"
export SLURM_CONF=$CONF

is_daemon() { [ -n "${2:-}" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }
# note_started NAME PIDFILE [UTS]: wait for a live pid in PIDFILE, record it as ours.
note_started() {
  local pid= tries=$((TIMEOUT * 10))
  while [ $tries -gt 0 ]; do
    pid=$(cat "$2" 2>/dev/null || true)
    is_daemon "$1" "$pid" && break
    sleep 0.1; tries=$((tries - 1))
  done
  is_daemon "$1" "$pid" || fail "$1 did not start (no live pid in $2); see $DIR/log"
  echo "$1 $pid $2 ${3:-}" >> "$MANIFEST"
  say "$1 running, pid $pid ${3:-}"
}

if ! pgrep -x munged >/dev/null; then
  install -d -o munge -g munge -m 755 /run/munge
  [ -s /etc/munge/munge.key ] || fail "no /etc/munge/munge.key (ci/slurm/start.sh makes one)"
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  note_started munged /run/munge/munged.pid
fi

/usr/sbin/slurmctld -f "$CONF"
note_started slurmctld "$DIR/run/slurmctld.pid"
for k in $(seq "$NODES"); do
  mkdir -p "$DIR/spool-n$k"
  # Its own UTS namespace: the node's host name is nK for slurmd and every job it starts.
  unshare --uts sh -c "hostname n$k && exec /usr/sbin/slurmd -f '$CONF'"
  pid=$(cat "$DIR/run/slurmd-n$k.pid" 2>/dev/null || true)
  for _ in $(seq $((TIMEOUT * 10))); do is_daemon slurmd "$pid" && break; sleep 0.1; pid=$(cat "$DIR/run/slurmd-n$k.pid" 2>/dev/null || true); done
  note_started slurmd "$DIR/run/slurmd-n$k.pid" "$(readlink "/proc/$pid/ns/uts")"
done

tries=$((TIMEOUT * 5))
until [ "$(sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated)$')" = "$NODES" ]; do
  tries=$((tries - 1))
  if [ $tries -le 0 ]; then
    sinfo -N -l || true; tail -n 20 "$DIR"/log/*.log || true
    fail "the $NODES node(s) did not become idle"
  fi
  sleep 0.2
done
say "cluster $NAME up: SLURM_CONF=$CONF"
sinfo -N
