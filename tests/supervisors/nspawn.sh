#!/usr/bin/env bash
# Boots the host's own systemd 252 as PID 1 of a throwaway systemd-nspawn
# container (read-only root, volatile overlay, private network), and halts
# it again. Recipe and gotchas: /work/shared/SUPERVISORS.md, docs/supervisors.md.
#
#   nspawn.sh boot NAME BIN_DIR LOG_DIR   prints "NSPAWN_PID LEADER_PID" once
#                                         systemd is up (BIN_DIR at /opt/svc)
#   nspawn.sh halt NAME NSPAWN_PID        stops it, removes NAME's cgroups
# Every wait is bounded; on failure it prints why and exits non-zero.
set -euo pipefail

cgroup_dirs() { echo "/sys/fs/cgroup/systemd/$1 /sys/fs/cgroup/unified/$1"; }

remove_cgroups() {
  local dir
  for dir in $(cgroup_dirs "$1"); do
    [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

boot() {
  local name=$1 bin_dir=$2 log_dir=$3 dir
  for dir in $(cgroup_dirs "$name"); do mkdir -p "$dir"; done
  # The subshell moves itself into its own cgroups, then becomes nspawn.
  ( for dir in $(cgroup_dirs "$name"); do echo "$BASHPID" > "$dir/cgroup.procs"; done
    exec timeout -k 10 300 systemd-nspawn --directory=/ --volatile=yes \
      --machine="$name" --boot --register=no --keep-unit --private-network \
      --bind-ro="$bin_dir":/opt/svc --bind="$log_dir":/var/log/svc \
      --bind-ro=/etc/pam.d --bind-ro=/etc/security \
      -- systemd.firstboot=off systemd.unit=basic.target systemd.show_status=false \
         systemd.mask=systemd-networkd-wait-online.service
  ) </dev/null >"$log_dir/nspawn.log" 2>&1 &
  local timeout_pid=$! nspawn_pid="" leader="" i
  for i in $(seq 200); do  # 20 s
    nspawn_pid=$(pgrep -P "$timeout_pid" -x systemd-nspawn || true)
    [[ -n $nspawn_pid ]] && leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [[ -n $leader && -S /proc/$leader/root/run/systemd/private ]] && break
    if ! kill -0 "$timeout_pid" 2>/dev/null; then
      echo "nspawn.sh: systemd-nspawn exited during boot:" >&2
      tail -5 "$log_dir/nspawn.log" >&2
      remove_cgroups "$name"
      exit 1
    fi
    sleep 0.1
  done
  if [[ -z $leader ]]; then
    echo "nspawn.sh: systemd did not start within 20s" >&2
    [[ -n $nspawn_pid ]] && halt "$name" "$nspawn_pid"
    exit 1
  fi
  local state
  state=$(timeout 30 nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1 || true)
  if [[ $state != running && $state != degraded ]]; then
    echo "nspawn.sh: container systemd is '$state', not running" >&2
    halt "$name" "$nspawn_pid"
    exit 1
  fi
  echo "$nspawn_pid $leader"
}

halt() {
  local name=$1 nspawn_pid=$2 i
  kill -TERM "$nspawn_pid" 2>/dev/null || true
  for i in $(seq 100); do  # 10 s, then SIGKILL
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$nspawn_pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
  done
  remove_cgroups "$name"
}

case ${1:-} in
  boot) boot "$2" "$3" "$4" ;;
  halt) halt "$2" "$3" ;;
  *) echo "usage: nspawn.sh boot NAME BIN_DIR LOG_DIR | halt NAME NSPAWN_PID" >&2; exit 2 ;;
esac
