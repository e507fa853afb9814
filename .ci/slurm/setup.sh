#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests of bench's slurm executor:
# Debian's slurm-wlm (slurmctld + slurmd) and munge, every daemon reached on 127.0.0.1,
# one partition "debug" holding this machine's CPUs. No accounting database: bench's slurm
# executor tells a job that ended from squeue, not sacct (bench/executors/slurm.py).
#
# Idempotent: packages are installed, the configuration written and the daemons started
# only when missing; a running cluster is left as it is. Needs root (or sudo) for apt-get,
# /etc/slurm and the daemons. Takes about a second once the packages are installed.
#
#   .ci/slurm/setup.sh          set up and start; prints the cluster's state
#   .ci/slurm/setup.sh stop     stop the daemons this script started
set -euo pipefail

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
CONF=/etc/slurm/slurm.conf
NODE=localhost
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm

if [ "${1:-}" = "stop" ]; then
    for daemon in slurmd slurmctld; do
        pidfile=/run/$daemon.pid
        [ -f $pidfile ] && $SUDO kill "$(cat $pidfile)" 2>/dev/null || true
    done
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

# munge authenticates every Slurm message; Debian's package makes the key.
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mungekey --create --keyfile /etc/munge/munge.key
    $SUDO chown munge:munge /etc/munge/munge.key
fi
if ! munge -n >/dev/null 2>&1; then
    $SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
    if [ -n "$SUDO" ]; then sudo -u munge /usr/sbin/munged; else runuser -u munge -- /usr/sbin/munged; fi
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
fi

cpus=$(nproc)
memory_mb=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
wanted=$(cat <<CONF
# Written by bench's .ci/slurm/setup.sh: a single-node cluster on loopback.
ClusterName=bench-ci
SlurmctldHost=localhost(127.0.0.1)
# bind every daemon to the address its name resolves to (localhost: loopback), not to all
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroups in containers: plain process tracking, no task confinement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# fast turnaround for short test jobs
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ ! -f $CONF ] || [ "$(cat $CONF)" != "$wanted" ]; then
    echo "$wanted" | $SUDO tee $CONF >/dev/null
    # a running cluster keeps its old configuration until it is restarted
    if scontrol ping >/dev/null 2>&1; then "$0" stop; sleep 1; fi
fi
$SUDO mkdir -p $STATE $SPOOL $LOGS

if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
    $SUDO /usr/sbin/slurmctld
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.1; done
fi
if ! pgrep -F /run/slurmd.pid >/dev/null 2>&1; then
    $SUDO /usr/sbin/slurmd -N $NODE
fi
for _ in $(seq 100); do
    state=$(sinfo -h -n $NODE -o %T 2>/dev/null || true)
    case "$state" in idle*|mixed*|allocated*) break ;; esac
    sleep 0.1
done
case "$state" in
    idle*|mixed*|allocated*) ;;
    *) $SUDO scontrol update nodename=$NODE state=resume 2>/dev/null || true ;;
esac
sinfo
