#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by .ci/slurm-up.sh: slurmd, slurmctld
# and munged, each by its pid file (never by process name). Safe to call when
# nothing is running. The state dir (SLURM_STATE_DIR, default /tmp/carvana-slurm)
# is kept so logs can still be read; delete it by hand for a clean start.
set -euo pipefail

STATE_DIR="${SLURM_STATE_DIR:-/tmp/carvana-slurm}"

log() { echo "slurm-down: $*" >&2; }

# stop NAME PIDFILE: SIGTERM the process named in PIDFILE, wait up to 10 s, then SIGKILL.
stop() {
  local name="$1" pidfile="$2" pid
  if [[ ! -s "$pidfile" ]]; then
    log "$name: no pid file ($pidfile)"
    return 0
  fi
  pid="$(cat "$pidfile")"
  if ! kill -0 "$pid" 2>/dev/null; then
    log "$name: pid $pid not running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still running after 10 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name: stopped (pid $pid)"
}

# Compute node first, then the controller, then authentication.
stop slurmd "$STATE_DIR/run/slurmd.pid"
stop slurmctld "$STATE_DIR/run/slurmctld.pid"
stop munged /run/munge/munged.pid
