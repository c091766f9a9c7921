#!/usr/bin/env bash
# ci/slurm/stop-private.sh DIR -- stop the private cluster ci/slurm/start-private.sh DIR
# started: its jobs are cancelled, then the daemons of DIR/started are stopped newest
# first by their recorded PIDs (only while /proc/PID/comm still names the daemon),
# and every process left in a node's UTS namespace (job steps of a killed slurmd:
# the namespace was made by start-private.sh, so all of it is ours) is killed.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(cd "$1" 2>/dev/null && pwd) || { echo "[slurm-private-stop] no $1: nothing to stop"; exit 0; }
MANIFEST=$DIR/started
say() { echo "[slurm-private-stop] $*"; }
[ "$(id -u)" = 0 ] || { say "run me as root"; exit 1; }
[ -s "$MANIFEST" ] || { say "$MANIFEST lists nothing: nothing to stop"; rm -f "$MANIFEST"; exit 0; }
export SLURM_CONF=$DIR/slurm.conf
is_daemon() { [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }

if grep -q '^slurmctld ' "$MANIFEST" && timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; then
  queued=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${queued// /}" ]; then
    say "cancelling jobs $queued"
    # shellcheck disable=SC2086
    timeout 10 scancel $queued 2>/dev/null || true
    for _ in $(seq 40); do
      [ -z "$(timeout 10 squeue -h -t PD,R,CG,S -o %A 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
fi

# in_namespace UTS: the pids whose UTS namespace is UTS
in_namespace() {
  local link
  for link in /proc/[0-9]*/ns/uts; do
    [ "$(readlink "$link" 2>/dev/null)" = "$1" ] && { link=${link#/proc/}; echo "${link%%/*}"; }
  done
}

status=0
while read -r name pid pidfile uts; do
  if is_daemon "$name" "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 80); do is_daemon "$name" "$pid" || break; sleep 0.25; done
    if is_daemon "$name" "$pid"; then say "$name ($pid) still there 20 s after SIGTERM: SIGKILL"; kill -KILL "$pid"; sleep 0.3; fi
    if is_daemon "$name" "$pid"; then say "could not stop $name ($pid)"; status=1; else say "stopped $name ($pid)"; fi
  else
    say "$name ($pid) already gone"
  fi
  [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] && rm -f "$pidfile"
  if [ -n "${uts:-}" ]; then
    left=$(in_namespace "$uts" | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -n "${left// /}" ] && { say "killing what is left in $name's namespace $uts: $left"; kill -KILL $left 2>/dev/null; }
  fi
done < <(tac "$MANIFEST")
rm -f "$MANIFEST"
exit $status
