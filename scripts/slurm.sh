#!/usr/bin/env bash
# A throwaway single-node Slurm cluster for the Slurm trainer tests (Debian's `slurm-wlm` and
# `munge`): its own configuration, state and ports in a temporary folder, so a real installation
# on the machine is left alone. Needs root (slurmd starts jobs as their users). Sourced by
# scripts/test.sh:
#   source scripts/slurm.sh; slurm_start; trap slurm_stop EXIT
# exports SLURM_CONF (every Slurm command, and cairn, reads it) and CAIRN_TEST_SLURM=1.
# Run directly (`scripts/slurm.sh start|stop DIR`) by hand.
# Without accounting (no slurmdbd), a finished job stays visible to `scontrol` for MinJobAge.

slurm_start() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "slurm: not root, no test cluster started (the Slurm tests skip)" >&2
        return 0
    fi
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "installing: slurm-wlm and munge (the tests' Slurm cluster)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    fi
    CAIRN_SLURM_DIR=$(mktemp -d /tmp/cairn-slurm.XXXXXX)
    chmod 755 "$CAIRN_SLURM_DIR"
    local host ctld_port=6917 d_port
    host=$(hostname -s)
    # Private ports: the first free pair from 6917 (a cluster on the machine may hold 6817/6818).
    while (exec 3<>"/dev/tcp/127.0.0.1/$ctld_port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$((ctld_port + 1))") 2>/dev/null; do
        ctld_port=$((ctld_port + 2))
    done
    d_port=$((ctld_port + 1))
    mkdir -p "$CAIRN_SLURM_DIR/ctld" "$CAIRN_SLURM_DIR/d" "$CAIRN_SLURM_DIR/log"
    cat > "$CAIRN_SLURM_DIR/slurm.conf" <<EOF
ClusterName=cairntest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$CAIRN_SLURM_DIR/ctld
SlurmdSpoolDir=$CAIRN_SLURM_DIR/d
SlurmctldPidFile=$CAIRN_SLURM_DIR/slurmctld.pid
SlurmdPidFile=$CAIRN_SLURM_DIR/slurmd.pid
SlurmctldLogFile=$CAIRN_SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$CAIRN_SLURM_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=5
OverTimeLimit=0
NodeName=$host CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$CAIRN_SLURM_DIR/slurm.conf"
    # munged: the machine's own when it runs; else one of ours (it refuses folders it does not own).
    if ! munge -n >/dev/null 2>&1; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown -R munge: /run/munge /var/log/munge /var/lib/munge
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged
        # munged forks into the background: its pid is the one in its pid file.
        for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
        CAIRN_SLURM_MUNGED=$(cat /run/munge/munged.pid 2>/dev/null || true)
    fi
    /usr/sbin/slurmctld -f "$SLURM_CONF"
    /usr/sbin/slurmd -f "$SLURM_CONF"
    local deadline=$((SECONDS + 30))
    until timeout 2 sinfo -h -o %T 2>/dev/null | grep -qx idle; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "slurm: the test cluster did not become idle; its logs:" >&2
            tail -n 20 "$CAIRN_SLURM_DIR"/log/*.log >&2 || true
            return 1
        fi
        sleep 0.1
    done
    export CAIRN_SLURM_DIR CAIRN_SLURM_MUNGED CAIRN_TEST_SLURM=1
    echo "slurm: a throwaway single-node cluster on ports $ctld_port/$d_port ($CAIRN_SLURM_DIR)" >&2
}

slurm_stop() {
    [ -n "${CAIRN_SLURM_DIR:-}" ] || return 0
    export SLURM_CONF="$CAIRN_SLURM_DIR/slurm.conf"
    # Every job of the test cluster (jobs run as the trainer user), then the daemons; slurmd
    # would leave running jobs' processes behind.
    local jobs
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    local pid
    for f in slurmctld slurmd; do
        pid=$(cat "$CAIRN_SLURM_DIR/$f.pid" 2>/dev/null || true)
        [ -n "$pid" ] || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    [ -z "${CAIRN_SLURM_MUNGED:-}" ] || kill "$CAIRN_SLURM_MUNGED" 2>/dev/null || true
    rm -rf "$CAIRN_SLURM_DIR"
    CAIRN_SLURM_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        start) slurm_start; echo "export SLURM_CONF='$SLURM_CONF' CAIRN_SLURM_DIR='$CAIRN_SLURM_DIR' CAIRN_SLURM_MUNGED='${CAIRN_SLURM_MUNGED:-}' CAIRN_TEST_SLURM=1" ;;
        stop) CAIRN_SLURM_DIR="${2:?the cluster folder}"; CAIRN_SLURM_MUNGED="${3:-}"; slurm_stop ;;
        *) echo "usage: scripts/slurm.sh start | stop DIR [MUNGED_PID]" >&2; exit 2 ;;
    esac
fi
