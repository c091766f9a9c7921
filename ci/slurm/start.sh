#!/usr/bin/env bash
# ci/slurm/start.sh -- bring up a one-node Slurm on loopback for mempamal's cluster tests.
#
# Runs as root on Debian 12 without systemd: installs munge + Slurm 22.05 (and
# MariaDB + slurmdbd so that `sacct` answers), renders slurm.conf for this host's
# real CPUs/memory, starts every daemon directly and waits until the node is idle.
# Every daemon this script starts is written to $STATE/started ("name pid pidfile");
# ci/slurm/stop.sh stops exactly those, by PID. Daemons already running are reused
# and not recorded, so stop.sh never stops what somebody else started.
#
# Knobs (environment):
#   MEMPAMAL_SLURM_ACCOUNTING=1   MariaDB + slurmdbd (sacct works; soma-workflow needs it)
#                             0   no accounting: faster start, sacct unavailable
#   MEMPAMAL_SLURM_STATE=/run/mempamal-slurm   pid files + the "started" manifest
#   MEMPAMAL_SLURM_TIMEOUT=60     seconds allowed for each daemon to come up
#   MEMPAMAL_SLURM_MANIFEST=$STATE/started   where this run records what it started
#                                 (.ci/run uses its own file so that its stop.sh
#                                 call stops only what its own start.sh started)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ACCOUNTING=${MEMPAMAL_SLURM_ACCOUNTING:-1}
STATE=${MEMPAMAL_SLURM_STATE:-/run/mempamal-slurm}
TIMEOUT=${MEMPAMAL_SLURM_TIMEOUT:-60}
MANIFEST=${MEMPAMAL_SLURM_MANIFEST:-$STATE/started}
START_NS=$(date +%s%N)

say() { printf '[slurm-start %5.1fs] %s\n' "$(( ($(date +%s%N) - START_NS) / 1000000 ))e-3" "$*"; }
fail() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run me as root (Slurm daemons, munge key and /etc/slurm need it)"

# ----------------------------------------------------------------- packages --
packages=(munge slurmctld slurmd slurm-client)
[ "$ACCOUNTING" = 1 ] && packages+=(slurmdbd mariadb-server)
to_install=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || to_install+=("$p")
done
if [ ${#to_install[@]} -gt 0 ]; then
  # Package post-install scripts would try to start the services through
  # invoke-rc.d; a policy-rc.d answering 101 forbids that. We only add one if the
  # image has none, and remove exactly the one we added.
  our_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    our_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# temporary, written by mempamal ci/slurm/start.sh\nexit 101\n' > "$our_policy"
    chmod 755 "$our_policy"
    trap 'if [ -n "$our_policy" ]; then rm -f "$our_policy"; fi' EXIT
  fi
  say "installing ${to_install[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${to_install[@]}" >/dev/null
  if [ -n "$our_policy" ]; then rm -f "$our_policy"; our_policy=; fi
  say "packages installed"
fi

mkdir -p "$STATE" "$(dirname "$MANIFEST")"
touch "$MANIFEST"

# is_daemon NAME PID: PID is alive and its command name is NAME (guards against
# a recycled PID in a stale pid file).
is_daemon() { [ -n "${2:-}" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }
already_running() { is_daemon "$1" "$(cat "$2" 2>/dev/null || true)"; }
# note_started NAME PIDFILE: wait for the daemon's pid file, then record it as ours.
note_started() {
  local pid= tries=$((TIMEOUT * 10))
  while [ $tries -gt 0 ]; do
    pid=$(cat "$2" 2>/dev/null || true)
    is_daemon "$1" "$pid" && break
    sleep 0.1; tries=$((tries - 1))
  done
  is_daemon "$1" "$pid" || fail "$1 did not start (no live pid in $2); see its log"
  echo "$1 $pid $2" >> "$MANIFEST"
  say "$1 running, pid $pid"
}
# wait_until WHAT CMD...: poll CMD every 0.2 s until it succeeds or TIMEOUT.
wait_until() {
  local what=$1 tries=$((TIMEOUT * 5)); shift
  while [ $tries -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2; tries=$((tries - 1))
  done
  fail "timed out waiting for $what"
}

# ------------------------------------------------------------ host and config --
NODE=$(hostname -s)
if ! getent hosts "$NODE" >/dev/null; then
  # Slurm talks over 127.0.0.1 only, but clients resolve the host name.
  echo "127.0.0.1 $NODE  # mempamal ci/slurm" >> /etc/hosts
  echo "hosts-line $NODE -" >> "$MANIFEST"
fi
# what slurmd itself detects, e.g. "CPUs=2 Boards=1 ... RealMemory=24105"
HARDWARE=$(/usr/sbin/slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
say "node $NODE: $HARDWARE"
if [ "$ACCOUNTING" = 1 ]; then STORAGE=accounting_storage/slurmdbd; else STORAGE=accounting_storage/none; fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
render() {  # render TEMPLATE DEST MODE -- keeps a backup of a config we did not write
  if [ -f "$2" ] && ! grep -q 'mempamal ci/slurm' "$2"; then
    cp -p "$2" "$2.before-mempamal"
    say "saved the existing $2 as $2.before-mempamal"
  fi
  sed -e "s|@NODE@|$NODE|g" -e "s|@HARDWARE@|$HARDWARE|g" -e "s|@STATE@|$STATE|g" \
      -e "s|@STORAGE@|$STORAGE|g" "$1" > "$2.new"
  chmod "$3" "$2.new"; mv "$2.new" "$2"
}
render "$HERE/slurm.conf.in" /etc/slurm/slurm.conf 644
[ "$ACCOUNTING" = 1 ] && render "$HERE/slurmdbd.conf.in" /etc/slurm/slurmdbd.conf 600

# -------------------------------------------------------------------- munge --
# munged refuses a key that others can read or that it does not own.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  head -c 1024 /dev/urandom > /etc/munge/munge.key
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/log/munge
install -d -o munge -g munge -m 711 /var/lib/munge
if ! already_running munged /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  note_started munged /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null || fail "munge cannot decode its own credential"

# ---------------------------------------------------------- MariaDB + slurmdbd --
if [ "$ACCOUNTING" = 1 ]; then
  install -d -o mysql -g mysql -m 755 /run/mysqld /var/log/mysql
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  if ! already_running mariadbd /run/mysqld/mysqld.pid; then
    # socket only: the database is never reachable over the network
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking \
      --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
      --log-error=/var/log/mysql/error.log </dev/null >/dev/null 2>&1 &
    note_started mariadbd /run/mysqld/mysqld.pid
  fi
  wait_until "MariaDB" mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  if ! already_running slurmdbd "$STATE/slurmdbd.pid"; then
    /usr/sbin/slurmdbd
    note_started slurmdbd "$STATE/slurmdbd.pid"
  fi
  wait_until "slurmdbd" sacctmgr -n list cluster
fi

# --------------------------------------------------------- slurmctld + slurmd --
if already_running slurmctld "$STATE/slurmctld.pid"; then
  scontrol reconfigure || true
else
  /usr/sbin/slurmctld
  note_started slurmctld "$STATE/slurmctld.pid"
fi
wait_until "slurmctld" bash -c 'scontrol ping | grep -q "is UP"'
if ! already_running slurmd "$STATE/slurmd.pid"; then
  /usr/sbin/slurmd -N "$NODE"
  note_started slurmd "$STATE/slurmd.pid"
fi

# slurmctld keeps node state across restarts: a node left DOWN/DRAINED by an
# earlier run never returns on its own.
sleep 0.5
node_state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
case "$node_state" in
  *drain*|*down*|*fail*) say "node was '$node_state'; resuming it"
                         scontrol update NodeName="$NODE" State=RESUME || true ;;
esac
node_usable() { sinfo -h -N -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated)$'; }
tries=$((TIMEOUT * 5))
until node_usable; do
  tries=$((tries - 1))
  if [ $tries -le 0 ]; then
    sinfo -N -l || true
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log || true
    fail "node $NODE did not become idle"
  fi
  sleep 0.2
done
say "Slurm is up ($STORAGE); sinfo:"
sinfo
cat <<INFO
  logs:     /var/log/slurm/  /var/log/mysql/error.log
  started:  $MANIFEST
  stop:     bash $HERE/stop.sh
  soma-workflow 6 asks sacct for StdOut, which Slurm 22.05 lacks: mempamal's soma-workflow
            backend puts a small sacct wrapper first in PATH for its runs.
INFO
