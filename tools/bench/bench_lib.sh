#!/usr/bin/env bash
# bench_lib.sh: what every benchmark script here shares, sourced after the
# script sets BENCH_NAME: logging, the common arguments, installing peers with apt-get, building
# the opt binaries, and owning processes (each one started here is ended by
# pid on exit, and a successor a gateway started is found through its state
# directory). Not meant to be run by itself.

log() { echo "${BENCH_NAME:-bench}: $*" >&2; }
die() { log "$*"; exit 1; }

# parse_bench_args USAGE_LINES ARG...: --quick, --out=DIR and -h/--help
# (prints lines USAGE_LINES, e.g. 2,22, of the calling script); sets QUICK
# and OUT.
parse_bench_args() {
  local usage=$1 arg
  shift
  QUICK=0 OUT=""
  for arg in "$@"; do
    case "$arg" in
      --quick) QUICK=1 ;;
      --out=*) OUT=${arg#--out=} ;;
      -h | --help) sed -n "${usage}p" "$0"; exit 0 ;;
      *)
        echo "$BENCH_NAME.sh: unknown argument '$arg' (try --help)" >&2
        rm -rf "$WORK"
        trap - EXIT
        exit 2
        ;;
    esac
  done
}

# --- packages and binaries ---------------------------------------------------

# ensure_packages PACKAGE...: installs the missing ones (root, or sudo).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
      missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "could not install ${missing[*]} with apt-get"
}


# Optimised, like the packaged peers they are compared with. Sets GATEWAY,
# GATEWAYCTL, LOADGEN, UPSTREAM, STOP_TIMER.
BUILD_FLAGS=(-c opt)
build_binaries() {
  ./bazelw build "${BUILD_FLAGS[@]}" //gateway //tools/gatewayctl //tools/bench:all >&2 ||
    die "build failed (./bazelw build ${BUILD_FLAGS[*]} //gateway //tools/gatewayctl //tools/bench:all)"
  BIN=$(./bazelw info "${BUILD_FLAGS[@]}" bazel-bin 2>/dev/null)
  GATEWAY=$BIN/gateway/gateway
  GATEWAYCTL=$BIN/tools/gatewayctl/gatewayctl
  LOADGEN=$BIN/tools/bench/loadgen
  UPSTREAM=$BIN/tools/bench/upstream
  STOP_TIMER=$BIN/tools/bench/stop_timer
}

# --- processes this script owns ----------------------------------------------

WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
OWNED_PIDS=()          # every process started here, ended by pid on exit
GATEWAY_STATE_DIRS=()  # a successor started by the gateway is found here

cleanup() {
  local status=$? dir pid
  for dir in "${GATEWAY_STATE_DIRS[@]}"; do
    pid=$(instance_pid "$dir")
    [[ -n "$pid" && " ${OWNED_PIDS[*]} " != *" $pid "* ]] && OWNED_PIDS+=("$pid")
  done
  for pid in "${OWNED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${OWNED_PIDS[@]}"; do
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  done
  if ((status == 0)); then
    rm -rf "$WORK"
  else
    log "failed; logs kept in $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The pid in DIR/instance.json, if that process still runs.
instance_pid() {
  local pid
  pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$1/instance.json" 2>/dev/null | head -1)
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

# Waits up to $2 seconds for pid $1 to be gone (reaped if it is our child).
wait_gone() {
  local i
  for ((i = 0; i < $2 * 100; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    # A zombie child counts as gone once reaped.
    if [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; then
      wait "$1" 2>/dev/null || true
      return 0
    fi
    sleep 0.01
  done
  return 1
}

# start NAME CMD...: runs CMD in the background, logs to $WORK/NAME.log; sets
# STARTED_PID.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  OWNED_PIDS+=("$STARTED_PID")
}

stop_owned() {
  kill -TERM "$1" 2>/dev/null || true
  wait_gone "$1" 10 || kill -KILL "$1" 2>/dev/null || true
}

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# wait_listening PORT [PID]: until something listens on PORT; fails at once
# when PID (the process expected to listen) has exited.
wait_listening() {
  local i
  for ((i = 0; i < 1000; i++)); do
    listening "$1" && return 0
    if [[ -n "${2:-}" ]] && ! kill -0 "$2" 2>/dev/null; then
      die "the process meant to listen on 127.0.0.1:$1 exited (see logs in $WORK)"
    fi
    sleep 0.01
  done
  die "nothing listening on 127.0.0.1:$1 after 10 s (see logs in $WORK)"
}

# A loopback port nothing listens on, below the ephemeral range.
NEXT_PORT=$((20000 + RANDOM % 8000))
free_port() {
  while listening "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  FREE_PORT=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
}

# field KEY LINE: the value of KEY=... in a key=value line.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# CPU time in ms a peer's processes used so far: the process, its threads,
# its reaped children (socat forks one per connection) and its live ones
# (nginx's workers). Less sensitive than rates to other work on the
# machine. Empty for "direct".
declare -A PEER_PID
cpu_ms() {
  [[ -n "${PEER_PID[$1]:-}" ]] || return 0
  local pid=${PEER_PID[$1]} child
  {
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat"
    for child in $(pgrep -P "$pid"); do
      awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true
    done
  } | awk -v hz="$(getconf CLK_TCK)" '{ ticks += $1 } END { print ticks * 1000 / hz }'
}

# median: the median of the numbers on stdin (space- or line-separated).
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# per_unit CPU_BEFORE CPU_AFTER AMOUNT: CPU ms per unit of AMOUNT.
per_unit() {
  [[ -n "$1" && -n "$2" ]] || { echo "-"; return; }
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / n; else print "-" }'
}

# --- one-route proxies ----------------------------------------------------------

# start_proxy PEER PORT UPSTREAM_PORT: a proxy from 127.0.0.1:PORT to
# 127.0.0.1:UPSTREAM_PORT, each with its defaults for threads or workers:
#   gateway     Gateway, default workers     gateway-1  Gateway --workers=1
#   haproxy     HAProxy, default threads     nginx      nginx stream, worker_processes auto
# Sets PEER_PID[PEER] and waits until it listens. Room for about 9,000
# connections each (two descriptors a connection, a 20,000 hard limit).
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
start_proxy() {
  local peer=$1 port=$2 upstream=$3
  case "$peer" in
    gateway | gateway-1)
      local workers=()
      [[ $peer == gateway-1 ]] && workers=(--workers=1)
      GATEWAY_STATE_DIRS+=("$WORK/$peer-$port-state")
      start "$peer" "$GATEWAY" --state_dir="$WORK/$peer-$port-state" "${workers[@]}" \
        --route=127.0.0.1:$port=127.0.0.1:$upstream
      ;;
    haproxy)
      cat >"$WORK/haproxy-$port.cfg" <<EOF
# generated by tools/bench/bench_lib.sh
global
  maxconn 9500
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen proxy
  bind 127.0.0.1:$port
  server up 127.0.0.1:$upstream
EOF
      start haproxy haproxy -f "$WORK/haproxy-$port.cfg"
      ;;
    nginx)
      mkdir -p "$WORK/nginx-$port"
      cat >"$WORK/nginx-$port/nginx.conf" <<EOF
# generated by tools/bench/bench_lib.sh
load_module $NGINX_STREAM;
daemon off;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx-$port/nginx.pid;
error_log $WORK/nginx-$port/error.log;
events { worker_connections 20000; }
stream {
  server { listen 127.0.0.1:$port; proxy_pass 127.0.0.1:$upstream; }
}
EOF
      start nginx nginx -p "$WORK/nginx-$port" -e "$WORK/nginx-$port/error.log" \
        -c "$WORK/nginx-$port/nginx.conf"
      ;;
    *) die "start_proxy: unknown peer '$peer'" ;;
  esac
  PEER_PID[$peer]=$STARTED_PID
  wait_listening "$port" "$STARTED_PID"
}
