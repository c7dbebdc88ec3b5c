#!/usr/bin/env bash
# Install (if needed) and start a single-node Slurm on a Debian machine, for testing sweeps.
#
#   bash scripts/slurm-single-node.sh start    # install slurm-wlm + munge, configure, start
#   bash scripts/slurm-single-node.sh status   # sinfo
#   bash scripts/slurm-single-node.sh stop
#
# Needs root and apt-get. Works on container-like machines (no cgroups, no systemd):
# ProctrackType=proctrack/linuxproc and TaskPlugin=task/none.
set -euo pipefail

action="${1:-start}"
host="$(hostname -s)"
conf_dir=/etc/slurm
log_dir=/var/log/slurm

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "slurm-single-node: must run as root" >&2; exit 1; fi
}

install_packages() {
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

configure() {
  local cpus mem_mb
  cpus="$(nproc)"
  mem_mb="$(awk '/MemTotal/ {printf "%d", $2/1024*0.9}' /proc/meminfo)"
  mkdir -p "$conf_dir" "$log_dir" /var/spool/slurmctld /var/spool/slurmd /run/munge /var/log/munge /var/lib/munge
  cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=hetreg-local
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${log_dir}/slurmctld.log
SlurmdLogFile=${log_dir}/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
}

start() {
  need_root
  install_packages
  configure
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c "/usr/sbin/munged" || /usr/sbin/munged --force
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
  pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
  for _ in $(seq 1 60); do
    if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
      echo "slurm-single-node: ready ($(sinfo -h -o '%P %D %t'))"
      return 0
    fi
    scontrol update NodeName="${host}" State=RESUME >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm-single-node: node did not become idle; see ${log_dir}/slurmctld.log and slurmd.log" >&2
  sinfo >&2 || true
  return 1
}

wait_gone() {
  for _ in $(seq 1 30); do
    pgrep -x "$1" >/dev/null || return 0
    sleep 0.5
  done
  pkill -9 -x "$1" || true
}

stop() {
  need_root
  for daemon in slurmd slurmctld munged; do
    pkill -x "$daemon" || true
    wait_gone "$daemon"
  done
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
