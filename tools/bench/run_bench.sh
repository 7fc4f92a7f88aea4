#!/usr/bin/env bash
# run_bench.sh: measures Gateway side by side with HAProxy (mode tcp,
# nbthread 1 and the default), socat and a direct connection, in one run on
# loopback, and writes a results table, the raw CSVs and a plot of
# successes/failures per 100 ms across replacements.
#
#   tools/bench/run_bench.sh            full run (a few minutes), writes docs/bench/
#   tools/bench/run_bench.sh --quick    ~1 minute smoke run, writes to a temp dir
#   tools/bench/run_bench.sh --out=DIR  write results to DIR
#
# What it measures (figures in docs/benchmarks.md explain them):
#   bulk throughput, 1 and 8 streams (loadgen → proxy → upstream sink)
#   short-connection rate, 32 in flight (64 B request, 64 B reply, close)
#   failed connections during N replacements under load, paced 500 conn/s
#     and saturation (64 in flight): `gatewayctl replace` vs
#     `haproxy -x SOCKET -sf OLDPID` vs plain `haproxy -sf OLDPID`
#   SIGTERM-to-exit of an idle process (median, p99) and idle VmRSS
#
# Safety: traffic goes to 127.0.0.1 only; every load run is bounded by
# loadgen's --duration_s and --max_connections; only processes this script
# started are ended, by pid; everything is cleaned up on exit.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"

QUICK=0
OUT=""
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --out=*) OUT=${arg#--out=} ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if ((QUICK)); then
  BULK_S=1 RATE_S=1 REPLACEMENTS=3 REPLACE_EVERY_S=1 STOP_RUNS=5
  : "${OUT:=$(mktemp -d /tmp/gateway-bench-quick.XXXXXX)}"
else
  BULK_S=5 RATE_S=5 REPLACEMENTS=10 REPLACE_EVERY_S=1 STOP_RUNS=30
  : "${OUT:=$REPO/docs/bench}"
fi
PACED_RATE=500
SATURATION=64
RATE_CONCURRENCY=32
LOAD_S=$((REPLACEMENTS * REPLACE_EVERY_S + 3))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "run_bench: $*" >&2; }
die() { log "$*"; exit 1; }

# --- packages and binaries ---------------------------------------------------

ensure_packages() {
  local missing=() p
  for p in haproxy socat gnuplot-nox; do
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

ensure_packages
# Optimised, like the packaged HAProxy and socat it is compared with.
BUILD_FLAGS=(-c opt)
./bazelw build "${BUILD_FLAGS[@]}" //gateway //tools/gatewayctl //tools/bench:all >&2 ||
  die "build failed (./bazelw build ${BUILD_FLAGS[*]} //gateway //tools/gatewayctl //tools/bench:all)"
BIN=$(./bazelw info "${BUILD_FLAGS[@]}" bazel-bin 2>/dev/null)
GATEWAY=$BIN/gateway/gateway
GATEWAYCTL=$BIN/tools/gatewayctl/gatewayctl
LOADGEN=$BIN/tools/bench/loadgen
UPSTREAM=$BIN/tools/bench/upstream
STOP_TIMER=$BIN/tools/bench/stop_timer

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

# --- the peers ----------------------------------------------------------------

free_port; SINK_PORT=$FREE_PORT
free_port; REPLY_PORT=$FREE_PORT
start upstream-sink "$UPSTREAM" --listen=127.0.0.1:$SINK_PORT --mode=sink
start upstream-reply "$UPSTREAM" --listen=127.0.0.1:$REPLY_PORT --mode=reply \
  --request_bytes=64 --reply_bytes=64
wait_listening "$SINK_PORT"
wait_listening "$REPLY_PORT"

# haproxy_config FILE NBTHREAD(""=default) [STATS_SOCKET] then LISTEN=UPSTREAM pairs.
haproxy_config() {
  local file=$1 nbthread=$2 stats=$3 route i=0
  shift 3
  {
    echo "# generated by tools/bench/run_bench.sh"
    echo "global"
    echo "  maxconn 4096"
    [[ -n "$nbthread" ]] && echo "  nbthread $nbthread"
    [[ -n "$stats" ]] && echo "  stats socket $stats mode 600 level admin expose-fd listeners"
    echo "defaults"
    echo "  mode tcp"
    echo "  timeout connect 5s"
    echo "  timeout client 60s"
    echo "  timeout server 60s"
    for route in "$@"; do
      i=$((i + 1))
      echo "listen route$i"
      echo "  bind 127.0.0.1:${route%%=*}"
      echo "  server upstream 127.0.0.1:${route#*=}"
    done
  } >"$file"
}

# Each proxy listens on two ports: one to the sink, one to the reply server.
declare -A BULK_PORT RATE_PORT
PEERS=(gateway gateway-1 haproxy-1 haproxy-default socat direct)
declare -A PEER_LABEL=(
  [gateway]="Gateway default ($(nproc) workers)"
  [gateway-1]="Gateway --workers=1"
  [haproxy-1]="HAProxy nbthread 1"
  [haproxy-default]="HAProxy default ($(nproc) threads)"
  [socat]="socat fork"
  [direct]="direct"
)

start_peers() {
  local peer
  for peer in gateway gateway-1 haproxy-1 haproxy-default socat; do
    free_port; BULK_PORT[$peer]=$FREE_PORT
    free_port; RATE_PORT[$peer]=$FREE_PORT
  done
  BULK_PORT[direct]=$SINK_PORT
  RATE_PORT[direct]=$REPLY_PORT

  GATEWAY_STATE_DIRS+=("$WORK/gw-peer")
  start gateway "$GATEWAY" --state_dir="$WORK/gw-peer" --admin=127.0.0.1:0 \
    --route=127.0.0.1:${BULK_PORT[gateway]}=127.0.0.1:$SINK_PORT \
    --route=127.0.0.1:${RATE_PORT[gateway]}=127.0.0.1:$REPLY_PORT
  PEER_PID[gateway]=$STARTED_PID
  GATEWAY_STATE_DIRS+=("$WORK/gw-peer-1")
  start gateway-1 "$GATEWAY" --state_dir="$WORK/gw-peer-1" --admin=127.0.0.1:0 --workers=1 \
    --route=127.0.0.1:${BULK_PORT[gateway-1]}=127.0.0.1:$SINK_PORT \
    --route=127.0.0.1:${RATE_PORT[gateway-1]}=127.0.0.1:$REPLY_PORT
  PEER_PID[gateway-1]=$STARTED_PID
  haproxy_config "$WORK/haproxy-1.cfg" 1 "" \
    "${BULK_PORT[haproxy-1]}=$SINK_PORT" "${RATE_PORT[haproxy-1]}=$REPLY_PORT"
  start haproxy-1 haproxy -f "$WORK/haproxy-1.cfg"
  PEER_PID[haproxy-1]=$STARTED_PID
  haproxy_config "$WORK/haproxy-default.cfg" "" "" \
    "${BULK_PORT[haproxy-default]}=$SINK_PORT" "${RATE_PORT[haproxy-default]}=$REPLY_PORT"
  start haproxy-default haproxy -f "$WORK/haproxy-default.cfg"
  PEER_PID[haproxy-default]=$STARTED_PID
  # One socat per route; bulk and rate CPU are read from the one in use.
  start socat-bulk socat TCP-LISTEN:${BULK_PORT[socat]},bind=127.0.0.1,fork,reuseaddr \
    TCP:127.0.0.1:$SINK_PORT
  PEER_PID[socat]=$STARTED_PID
  start socat-rate socat TCP-LISTEN:${RATE_PORT[socat]},bind=127.0.0.1,fork,reuseaddr \
    TCP:127.0.0.1:$REPLY_PORT
  PEER_PID[socat-rate]=$STARTED_PID
  for peer in "${PEERS[@]}"; do
    wait_listening "${BULK_PORT[$peer]}"
    wait_listening "${RATE_PORT[$peer]}"
  done
}

# --- measurements ---------------------------------------------------------------

declare -A RESULT  # RESULT[peer,metric]

loadgen() { "$LOADGEN" "$@" 2>>"$WORK/loadgen.log"; }

# CPU time in ms a peer's processes used so far: the process, its threads
# and its reaped children (socat forks one per connection). Less sensitive
# than rates to other work on the machine. Empty for "direct".
declare -A PEER_PID
cpu_ms() {
  [[ -n "${PEER_PID[$1]:-}" ]] || return 0
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15 + $16 + $17) * 1000 / hz }' \
    "/proc/${PEER_PID[$1]}/stat"
}

# per_unit CPU_BEFORE CPU_AFTER AMOUNT: CPU ms per unit of AMOUNT.
per_unit() {
  [[ -n "$1" && -n "$2" ]] || { echo "-"; return; }
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / n; else print "-" }'
}

measure_throughput_and_rate() {
  local peer line streams cpu0 rate_cpu
  for peer in "${PEERS[@]}"; do
    for streams in 1 8; do
      cpu0=$(cpu_ms "$peer")
      line=$(loadgen --target=127.0.0.1:${BULK_PORT[$peer]} --mode=bulk \
        --streams=$streams --duration_s=$BULK_S)
      log "$peer bulk x$streams: $line"
      sleep 0.5  # socat's per-connection children count once reaped
      RESULT[$peer,bulk$streams]=$(field mb_per_s "$line")
      RESULT[$peer,cpu_per_gb$streams]=$(per_unit "$cpu0" "$(cpu_ms "$peer")" \
        "$(awk -v b="$(field bytes "$line")" 'BEGIN { print b / 1e9 }')")
    done
    rate_cpu=$peer
    [[ -n "${PEER_PID[$peer-rate]:-}" ]] && rate_cpu=$peer-rate
    cpu0=$(cpu_ms "$rate_cpu")
    line=$(loadgen --target=127.0.0.1:${RATE_PORT[$peer]} --mode=rate \
      --concurrency=$RATE_CONCURRENCY --duration_s=$RATE_S)
    log "$peer rate x$RATE_CONCURRENCY: $line"
    sleep 0.5
    RESULT[$peer,rate]=$(field conn_per_s "$line")
    RESULT[$peer,rate_failed]=$(field failed "$line")
    RESULT[$peer,cpu_per_kconn]=$(per_unit "$cpu0" "$(cpu_ms "$rate_cpu")" \
      "$(awk -v n="$(field ok "$line")" 'BEGIN { print n / 1000 }')")
  done
}

# stop_time PEER PORT CMD...: SIGTERM-to-exit and idle RSS over fresh starts.
stop_time() {
  local peer=$1 port=$2 line
  shift 2
  line=$("$STOP_TIMER" --runs=$STOP_RUNS --port="$port" -- "$@" 2>>"$WORK/stop_timer.log") ||
    die "stop_timer failed for $peer: $(tail -1 "$WORK/stop_timer.log")"
  log "$peer stop: $line"
  RESULT[$peer,stop_median]=$(field median_ms "$line")
  RESULT[$peer,stop_p99]=$(field p99_ms "$line")
  RESULT[$peer,rss_mb]=$(awk -v kb="$(field rss_kb "$line")" 'BEGIN { printf "%.1f", kb / 1024 }')
  RESULT[$peer,exit_codes]=$(field exit_codes "$line")
}

measure_stop_and_rss() {
  local port
  free_port; port=$FREE_PORT
  stop_time gateway "$port" "$GATEWAY" --state_dir="$WORK/gw-stop" --admin=127.0.0.1:0 \
    --route=127.0.0.1:$port=127.0.0.1:$REPLY_PORT
  # The same with the state directory on tmpfs, as /run/gateway (the default
  # for root) is on a systemd host: the record's two fsyncs cost ~nothing.
  local shm_dir
  shm_dir=$(mktemp -d /dev/shm/gateway-bench.XXXXXX)
  stop_time gateway-tmpfs "$port" "$GATEWAY" --state_dir="$shm_dir/gw-stop" \
    --admin=127.0.0.1:0 --route=127.0.0.1:$port=127.0.0.1:$REPLY_PORT
  rm -rf "$shm_dir"
  haproxy_config "$WORK/haproxy-stop-1.cfg" 1 "" "$port=$REPLY_PORT"
  stop_time haproxy-1 "$port" haproxy -f "$WORK/haproxy-stop-1.cfg"
  haproxy_config "$WORK/haproxy-stop-default.cfg" "" "" "$port=$REPLY_PORT"
  stop_time haproxy-default "$port" haproxy -f "$WORK/haproxy-stop-default.cfg"
  stop_time socat "$port" socat TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr \
    TCP:127.0.0.1:$REPLY_PORT
}

# Replacement runs. Each writes $OUT/replace-<method>-<load>.csv and the
# replacement instants (seconds since the load started) to a .times file.
REPLACE_METHODS=(gateway haproxy-x haproxy-sf)
declare -A METHOD_LABEL=(
  [gateway]="Gateway: gatewayctl replace"
  [haproxy-x]="HAProxy: -x SOCKET -sf OLDPID"
  [haproxy-sf]="HAProxy: -sf OLDPID (no -x)"
)

gateway_replace_available() {
  local err
  err=$("$GATEWAYCTL" replace --state_dir="$WORK/no-such-dir" 2>&1 >/dev/null || true)
  ! grep -q "unknown command" <<<"$err"
}

# start_load LOAD PORT CSV: loadgen in the background for $LOAD_S seconds.
start_load() {
  local args=(--target=127.0.0.1:$2 --duration_s=$LOAD_S --buckets_csv="$3")
  if [[ $1 == paced ]]; then
    args+=(--mode=paced --rate=$PACED_RATE)
  else
    args+=(--mode=rate --concurrency=$SATURATION)
  fi
  "$LOADGEN" "${args[@]}" >"$WORK/$(basename "$3").result" 2>>"$WORK/loadgen.log" &
  LOAD_PID=$!
  OWNED_PIDS+=("$LOAD_PID")
}

# Replacement instants are taken on this clock, relative to the load start.
now_ms() { date +%s%3N; }

# replace_gateway STATE_DIR: one `gatewayctl replace`; false on failure.
replace_gateway() {
  "$GATEWAYCTL" replace --state_dir="$1" >>"$WORK/replace.log" 2>&1
}

# replace_haproxy CFG SOCKET(""=no -x) OLDPID: starts the successor; sets
# STARTED_PID.
replace_haproxy() {
  local cfg=$1 socket=$2 old=$3 transfer=()
  [[ -n "$socket" ]] && transfer=(-x "$socket")
  start "haproxy-successor-$old" haproxy -f "$cfg" "${transfer[@]}" -sf "$old"
}

run_replacements() {
  local method=$1 load=$2 port csv t0 i old pid
  free_port; port=$FREE_PORT
  csv="$OUT/replace-$method-$load.csv"
  : >"$csv.times"
  case "$method" in
    gateway)
      local dir="$WORK/gw-replace-$load"
      GATEWAY_STATE_DIRS+=("$dir")
      start "gw-replace-$load" "$GATEWAY" --state_dir="$dir" --admin=127.0.0.1:0 \
        --route=127.0.0.1:$port=127.0.0.1:$REPLY_PORT
      ;;
    haproxy-x | haproxy-sf)
      local cfg="$WORK/$method-$load.cfg" socket="$WORK/$method-$load.sock"
      haproxy_config "$cfg" 1 "$socket" "$port=$REPLY_PORT"
      [[ $method == haproxy-sf ]] && socket=""
      start "$method-$load" haproxy -f "$cfg"
      pid=$STARTED_PID
      ;;
  esac
  wait_listening "$port"
  sleep 0.3
  t0=$(now_ms)
  start_load "$load" "$port" "$csv"
  local failed_replacements=0
  local due_ms late
  for ((i = 1; i <= REPLACEMENTS; i++)); do
    # At fixed instants, so a replacement that blocks (gatewayctl replace
    # waits for the old instance to drain) does not shift the rest.
    due_ms=$((i * REPLACE_EVERY_S * 1000))
    late=$(($(now_ms) - t0 - due_ms))
    ((late >= 0)) || sleep "$(awk -v ms=$((-late)) 'BEGIN { print ms / 1000 }')"
    echo "$(( $(now_ms) - t0 ))" >>"$csv.times"
    if [[ $method == gateway ]]; then
      replace_gateway "$dir" || failed_replacements=$((failed_replacements + 1))
    else
      old=$pid
      replace_haproxy "$cfg" "$socket" "$old"
      pid=$STARTED_PID
    fi
  done
  if (($(now_ms) - t0 > LOAD_S * 1000)); then
    log "warning: $method replacements outlasted the ${LOAD_S} s load run"
  fi
  wait "$LOAD_PID" || die "loadgen failed during $method/$load (see $WORK/loadgen.log)"
  local line
  line=$(cat "$WORK/$(basename "$csv").result")
  log "$method $load: $line (failed replacements: $failed_replacements)"
  RESULT[$method,$load,ok]=$(field ok "$line")
  RESULT[$method,$load,failed]=$(field failed "$line")
  RESULT[$method,$load,replace_failed]=$failed_replacements
  # Stop what serves now; the predecessors have exited or are finishing.
  if [[ $method == gateway ]]; then
    "$GATEWAYCTL" stop --state_dir="$dir" >>"$WORK/replace.log" 2>&1 || true
  else
    stop_owned "$pid"
  fi
}

measure_replacements() {
  local method load
  for method in "${REPLACE_METHODS[@]}"; do
    if [[ $method == gateway ]] && ! gateway_replace_available; then
      log "gateway replace: not available (gatewayctl has no 'replace' command yet)"
      for load in paced saturation; do RESULT[gateway,$load,ok]="n/a"; done
      continue
    fi
    for load in paced saturation; do run_replacements "$method" "$load"; done
  done
}

# --- report ---------------------------------------------------------------------

# ratio A B: A/B with two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
# best VALUE... (max) and least VALUE... (min) over HAProxy's two configurations.
best() { printf '%s\n' "$@" | sort -g | tail -1; }
least() { printf '%s\n' "$@" | sort -g | head -1; }
# verdict CONDITION(awk expression over a, b) A B
verdict() { awk -v a="$2" -v b="$3" "BEGIN { if (a == \"\" || b == \"\" || a == \"n/a\") print \"not measured\"; else if ($1) print \"met\"; else print \"**missed**\" }"; }

write_report() {
  local report="$OUT/results.md" peer h_bulk1 h_bulk8 h_rate h_stop h_rss
  h_bulk1=$(best "${RESULT[haproxy-1,bulk1]}" "${RESULT[haproxy-default,bulk1]}")
  h_bulk8=$(best "${RESULT[haproxy-1,bulk8]}" "${RESULT[haproxy-default,bulk8]}")
  h_rate=$(best "${RESULT[haproxy-1,rate]}" "${RESULT[haproxy-default,rate]}")
  h_stop=$(least "${RESULT[haproxy-1,stop_median]}" "${RESULT[haproxy-default,stop_median]}")
  h_rss=$(least "${RESULT[haproxy-1,rss_mb]}" "${RESULT[haproxy-default,rss_mb]}")
  {
    echo "# Benchmark results"
    echo
    echo "Generated by \`tools/bench/run_bench.sh$( ((QUICK)) && echo " --quick")\` at $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
    echo "- $(haproxy -v | head -1 | cut -d' ' -f1-3), $(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p')"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- durations: bulk ${BULK_S} s, rate ${RATE_S} s, replacement runs ${LOAD_S} s with $REPLACEMENTS replacements every ${REPLACE_EVERY_S} s; stop times over $STOP_RUNS fresh starts"
    echo
    echo "| peer | bulk 1 stream MB/s | bulk 8 streams MB/s | short conn/s ($RATE_CONCURRENCY in flight) | failed | SIGTERM→exit median ms | p99 ms | idle RSS MB | proxy CPU ms/GB, 1 / 8 streams | proxy CPU ms per 1000 conns |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for peer in "${PEERS[@]}"; do
      echo "| ${PEER_LABEL[$peer]} | ${RESULT[$peer,bulk1]} | ${RESULT[$peer,bulk8]} | ${RESULT[$peer,rate]} | ${RESULT[$peer,rate_failed]} | ${RESULT[$peer,stop_median]:--} | ${RESULT[$peer,stop_p99]:--} | ${RESULT[$peer,rss_mb]:--} | ${RESULT[$peer,cpu_per_gb1]} / ${RESULT[$peer,cpu_per_gb8]} | ${RESULT[$peer,cpu_per_kconn]} |"
    done
    echo
    echo "Failed connections during $REPLACEMENTS replacements (failed / total):"
    echo
    echo "| method | paced $PACED_RATE conn/s | saturation ($SATURATION in flight) |"
    echo "|---|---|---|"
    local method load cells
    for method in "${REPLACE_METHODS[@]}"; do
      cells=""
      for load in paced saturation; do
        if [[ ${RESULT[$method,$load,ok]} == "n/a" ]]; then
          cells+=" gateway replace: not available |"
        else
          cells+=" ${RESULT[$method,$load,failed]} / $((RESULT[$method,$load,ok] + RESULT[$method,$load,failed]))"
          ((RESULT[$method,$load,replace_failed] == 0)) || cells+=" (${RESULT[$method,$load,replace_failed]} replacements failed)"
          cells+=" |"
        fi
      done
      echo "| ${METHOD_LABEL[$method]} |$cells"
    done
    echo
    echo "Targets (issue 5), against the better HAProxy configuration for each:"
    echo
    echo "| target | Gateway | HAProxy | ratio | verdict |"
    echo "|---|---|---|---|---|"
    local r
    r=$(ratio "${RESULT[gateway,bulk1]}" "$h_bulk1")
    echo "| bulk 1 stream ≥ 1.5× | ${RESULT[gateway,bulk1]} | $h_bulk1 | $r | $(verdict 'a >= 1.5' "$r" 1) |"
    r=$(ratio "${RESULT[gateway,bulk8]}" "$h_bulk8")
    echo "| bulk 8 streams ≥ 1.3× | ${RESULT[gateway,bulk8]} | $h_bulk8 | $r | $(verdict 'a >= 1.3' "$r" 1) |"
    r=$(ratio "${RESULT[gateway,rate]}" "$h_rate")
    echo "| short-connection rate ≥ 1× | ${RESULT[gateway,rate]} | $h_rate | $r | $(verdict 'a >= 1' "$r" 1) |"
    r=$(ratio "${RESULT[gateway,stop_median]}" "$h_stop")
    echo "| SIGTERM→exit median ≤ 1× | ${RESULT[gateway,stop_median]} ms | $h_stop ms | $r | $(verdict 'a <= 1' "$r" 1) |"
    r=$(ratio "${RESULT[gateway-tmpfs,stop_median]}" "$h_stop")
    echo "| SIGTERM→exit median ≤ 1×, state directory on tmpfs | ${RESULT[gateway-tmpfs,stop_median]} ms | $h_stop ms | $r | $(verdict 'a <= 1' "$r" 1) |"
    r=$(ratio "${RESULT[gateway,rss_mb]}" "$h_rss")
    echo "| idle RSS ≤ 0.5× | ${RESULT[gateway,rss_mb]} MB | $h_rss MB | $r | $(verdict 'a <= 0.5' "$r" 1) |"
    for load in paced saturation; do
      echo "| 0 failed across replacements, $load | ${RESULT[gateway,$load,failed]:-n/a} | -x: ${RESULT[haproxy-x,$load,failed]}, no -x: ${RESULT[haproxy-sf,$load,failed]} | | $(verdict 'a == 0' "${RESULT[gateway,$load,failed]:-n/a}" 0) |"
    done
    echo
    echo "Gateway's exit statuses in the stop-time runs: ${RESULT[gateway,exit_codes]} (a SIGTERM from an unknown sender is classified \`unexpected\`; the stop record is written either way)."
  } >"$report"
  log "wrote $report"
}

plot() {
  local script="$WORK/plot.gp" png="$OUT/replacements.png" method load csv t
  {
    echo "set terminal pngcairo size 1400,1000 font 'sans,10'"
    echo "set output '$png'"
    echo "set datafile separator ','"
    echo "set key top right opaque box"
    echo "set xlabel 'seconds since load start'"
    echo "set ylabel 'successful per 100 ms'"
    echo "set y2label 'failed per 100 ms' tc rgb '#d62728'"
    echo "set y2tics tc rgb '#d62728'"
    echo "set y2range [0:1<*]"
    echo "set ytics nomirror"
    echo "set multiplot layout 3,2 title 'Connections per 100 ms during $REPLACEMENTS replacements (grey lines: replacement started)'"
    for method in "${REPLACE_METHODS[@]}"; do
      for load in paced saturation; do
        csv="$OUT/replace-$method-$load.csv"
        echo "unset arrow"
        echo "set title '${METHOD_LABEL[$method]} — $load'"
        if [[ ! -s "$csv" ]]; then
          echo "set label 1 'not available' at graph 0.4, graph 0.5"
          echo "plot [0:$LOAD_S] [0:1] NaN notitle"
          echo "unset label 1"
          continue
        fi
        while read -r t; do
          echo "set arrow from $(awk -v t="$t" 'BEGIN { print t / 1000 }'), graph 0 to $(awk -v t="$t" 'BEGIN { print t / 1000 }'), graph 1 nohead lc rgb '#bbbbbb'"
        done <"$csv.times"
        echo "plot [0:$LOAD_S] [0:*] '$csv' skip 2 using 1:2 with steps lc rgb '#1f77b4' title 'ok (left axis)', '' skip 2 using 1:3 axes x1y2 with impulses lw 3 lc rgb '#d62728' title 'failed (right axis)'"
      done
    done
    echo "unset multiplot"
  } >"$script"
  gnuplot "$script" || die "gnuplot failed on $script"
  log "wrote $png"
}

log "results go to $OUT; scratch in $WORK"
start_peers
measure_throughput_and_rate
measure_stop_and_rss
measure_replacements
write_report
plot
cat "$OUT/results.md"
