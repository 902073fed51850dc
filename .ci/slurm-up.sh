#!/usr/bin/env bash
# Start a real single-node Slurm on localhost (munged, slurmctld, slurmd from Debian's packages)
# for tests/test_slurm.py, with two fake GPUs so that a GPU request is schedulable.
# Needs root and apt-get. State, PID files and logs live in $SLURM_TEST_STATE (default
# /tmp/affine-slurm); slurm.conf and gres.conf go to /etc/slurm, where job steps (srun inside a
# batch job) look for them. An /etc/slurm/slurm.conf that this script did not write is left alone
# and the script fails.
# Stop with .ci/slurm-down.sh (by PID). On failure the reason is written to
# $SLURM_TEST_STATE/unavailable, which the test prints when it skips.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # runuser, munged, slurmctld, slurmd live there
STATE=${SLURM_TEST_STATE:-/tmp/affine-slurm}
mkdir -p "$STATE"
rm -f "$STATE/unavailable"

fail() { echo "$*" | tee "$STATE/unavailable" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "not root: cannot install or start Slurm"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "no apt-get to install slurm-wlm and munge"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) \
        >"$STATE/apt.log" 2>&1 || fail "apt-get install slurm-wlm munge failed (see $STATE/apt.log)"
fi

host=$(hostname -s)
mkdir -p "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"

# munge: its key, its run directory, then the daemon as user munge
mkdir -p /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || fail "mungekey --create failed"
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge
if ! [ -s /run/munge/munged.pid ] || ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    runuser -u munge -- munged || fail "munged did not start"
    for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.25; done
    cp /run/munge/munged.pid "$STATE/munged.pid" || fail "munged wrote no PID file"
fi

# two fake GPU devices
for i in 0 1; do [ -e "$STATE/fakegpu$i" ] || mknod "$STATE/fakegpu$i" c 1 3; done

MARK="# written by affine-icl .ci/slurm-up.sh"
mkdir -p /etc/slurm
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
    fail "/etc/slurm/slurm.conf exists and was not written by this script; not touching it"
fi
cat >/etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=affinetest
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
ReturnToService=2
GresTypes=gpu
NodeName=$host CPUs=2 RealMemory=12000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
printf '%s\nName=gpu File=%s\n' "$MARK" "$STATE/fakegpu[0-1]" >/etc/slurm/gres.conf
export SLURM_CONF=/etc/slurm/slurm.conf

slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start (see $STATE/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start (see $STATE/log/slurmd.log)"
for _ in $(seq 60); do
    state=$(sinfo -h -o %t 2>/dev/null | head -n1)
    [ "$state" = idle ] && { echo "Slurm is up: SLURM_CONF=$SLURM_CONF"; exit 0; }
    sleep 1
done
fail "the Slurm node did not become idle (sinfo: ${state:-nothing}; see $STATE/log/)"
