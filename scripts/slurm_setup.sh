#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for the launcher's SLURM tests and for CI.
#
# What it does (every step is skipped when already done, so running it twice is harmless):
#   1. installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get, only if missing;
#   2. makes sure a munge key exists (/etc/munge/munge.key) and starts munged;
#   3. writes /etc/slurm/slurm.conf: one node (this host, its CPUs and ~90% of its memory), one
#      default partition "debug", root as SlurmUser, no cgroups (proctrack/linuxproc, task/none,
#      so it runs in containers), no accounting (use squeue, not sacct), state under /var/spool,
#      logs under /var/log/slurm, ReturnToService=2 (a node that was down comes back by itself);
#      a slurm.conf not written by this script is never overwritten (the script stops instead);
#   4. starts slurmctld and slurmd and waits until `sinfo` shows the node idle.
# Needs root and a Debian/Ubuntu system. Usage: bash scripts/slurm_setup.sh
# Stop it again: kill "$(cat /run/slurmctld.pid)" "$(cat /run/slurmd.pid)"
set -euo pipefail

MARKER="# written by cassle scripts/slurm_setup.sh"
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

log() { echo "[slurm_setup] $*"; }
die() { echo "[slurm_setup] error: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"

# 1. packages
missing=()
for pkg in slurmctld slurmd slurm-client munge; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "packages already installed"
fi

# 2. munge: a key readable only by the munge user, then the daemon
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
fi

# 3. slurm.conf (node size from `slurmd -C`, memory lowered so the node never drains on it)
if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster's config"
fi
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
new_conf=$(cat <<CONF
$MARKER
ClusterName=cassle-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
)
if [[ -f $CONF ]] && [[ "$(cat "$CONF")" == "$new_conf" ]]; then
    log "$CONF up to date"
    conf_changed=0
else
    log "writing $CONF"
    printf '%s\n' "$new_conf" > "$CONF"
    conf_changed=1
fi

# 4. daemons: start what is not running (a pid file whose process is alive means running)
running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if running /run/slurmctld.pid; then
    log "slurmctld already running"
    ((conf_changed)) && scontrol reconfigure
else
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if running /run/slurmd.pid; then
    log "slurmd already running"
else
    log "starting slurmd"
    /usr/sbin/slurmd
fi

log "waiting for node $NODE to be idle"
for _ in $(seq 60); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1 || true)
    case "$state" in
        idle|mixed|allocated) log "node $NODE is $state; sbatch/squeue are ready"; exit 0 ;;
        down*|drain*|drained*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
die "node $NODE not idle after 60 s (state: '${state:-?}'); see /var/log/slurm/slurmctld.log and slurmd.log"
