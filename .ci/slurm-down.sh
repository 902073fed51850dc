#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started, by the PIDs in their PID files (never by name).
STATE=${SLURM_TEST_STATE:-/tmp/affine-slurm}
for name in slurmd slurmctld munged; do
    pidfile="$STATE/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$pidfile"
done
