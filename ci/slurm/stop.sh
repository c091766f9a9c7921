#!/usr/bin/env bash
# ci/slurm/stop.sh -- stop exactly what ci/slurm/start.sh started, newest first, by
# the PIDs it recorded (never by process name). A PID is only signalled while
# /proc/PID/comm still names the recorded daemon. Jobs still in the queue are
# cancelled first, so no job process outlives slurmd.
set -uo pipefail
STATE=${MEMPAMAL_SLURM_STATE:-/run/mempamal-slurm}
MANIFEST=${MEMPAMAL_SLURM_MANIFEST:-$STATE/started}
say() { echo "[slurm-stop] $*"; }
[ "$(id -u)" = 0 ] || { say "run me as root"; exit 1; }
[ -s "$MANIFEST" ] || { say "$MANIFEST lists nothing: nothing to stop"; exit 0; }
is_daemon() { [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }

if grep -q '^slurmctld ' "$MANIFEST" && scontrol ping 2>/dev/null | grep -q 'is UP'; then
  queued=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${queued// /}" ]; then
    say "cancelling jobs $queued"
    # shellcheck disable=SC2086
    scancel $queued 2>/dev/null || true
    for _ in $(seq 60); do
      [ -z "$(squeue -h -t PD,R,CG,S -o %A 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
fi

status=0
while read -r name pid pidfile; do
  if [ "$name" = hosts-line ]; then
    sed -i "/^127\.0\.0\.1 $pid  # mempamal ci\/slurm\$/d" /etc/hosts
    continue
  fi
  if ! is_daemon "$name" "$pid"; then say "$name ($pid) already gone"; continue; fi
  kill -TERM "$pid"
  for _ in $(seq 120); do is_daemon "$name" "$pid" || break; sleep 0.25; done
  if is_daemon "$name" "$pid"; then
    say "$name ($pid) still there 30 s after SIGTERM: SIGKILL"
    kill -KILL "$pid"; sleep 0.5
  fi
  if is_daemon "$name" "$pid"; then say "could not stop $name ($pid)"; status=1
  else say "stopped $name ($pid)"; fi
  # remove the pid file only if it still names the process we stopped
  [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] && rm -f "$pidfile"
done < <(tac "$MANIFEST")
rm -f "$MANIFEST"
exit $status
