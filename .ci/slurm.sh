#!/usr/bin/env bash
# A one-host SLURM cluster for CI and local runs: `.ci/slurm.sh up DIR` installs Debian's slurm-wlm and munge
# if needed, writes DIR/slurm.conf (state, spool, logs and pid files under DIR) and starts munged, slurmctld
# and slurmd as root (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: no cgroups needed);
# `.ci/slurm.sh down DIR` stops them. Clients find the cluster with SLURM_CONF=DIR/slurm.conf.
set -euo pipefail
cmd=${1:?usage: slurm.sh up|down DIR}
dir=$(realpath -m "${2:?usage: slurm.sh up|down DIR}")

stop() {
    for pidfile in "$dir"/slurmd.pid "$dir"/slurmctld.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 1
    pkill -f "slurmctld -f $dir/slurm.conf" 2>/dev/null || true
    pkill -f "slurmd -f $dir/slurm.conf" 2>/dev/null || true
}

if [ "$cmd" = down ]; then
    stop
    exit 0
fi
[ "$cmd" = up ] || { echo "usage: slurm.sh up|down DIR" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p "$dir/state" "$dir/spool" /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- munged
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=lerobotwds
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
stop
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
export SLURM_CONF="$dir/slurm.conf"
for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "slurm: up ($host, $cpus CPUs, SLURM_CONF=$dir/slurm.conf)"
        exit 0
    fi
    sleep 1
done
echo "slurm: the node did not come up; slurmctld.log / slurmd.log in $dir:" >&2
tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
