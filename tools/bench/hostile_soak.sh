#!/usr/bin/env bash
# hostile_soak.sh: ten minutes of an operator's worst day against one
# gateway (issue 13): relay traffic at a steady rate, a SIGHUP every 2 s
# that adds and removes a route, `gatewayctl status` every second, and
# control-socket and admin clients that misbehave (never read, follow and
# close, garbage, reset mid-request, trickle a byte every 500 ms), with a
# /healthz probe every 250 ms. Prints the gateway's open descriptors, RSS
# and threads at the start, every minute and at the end, and fails (exit
# 1) on a failed relay connection, a failed probe or status call, or
# growth after the warm-up. Loopback only; bounded by time (DURATION
# seconds of load, default 600) and by the tools' own --max_* flags; ends
# only the processes it started.
#
#   tools/bench/hostile_soak.sh [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-600}
WARMUP=30
RATE=200
./bazelw build -c opt //gateway //tools/gatewayctl //tools/bench:upstream //tools/bench:loadgen \
  //tools/bench:misbehave >/dev/null 2>&1
BIN=$(./bazelw info -c opt bazel-bin 2>/dev/null)
WORK=$(mktemp -d /tmp/gateway-hostile-soak.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {  # a port nothing listens on now (no python3 needed)
  local p
  for _ in $(seq 100); do
    p=$(shuf -i 20000-40000 -n 1)
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  return 1
}

"$BIN/tools/bench/upstream" --mode=reply --listen=127.0.0.1:0 --port_file="$WORK/up.port" \
  --max_lifetime_s=$((DURATION + WARMUP + 120)) &
pids+=($!)
for _ in $(seq 50); do [[ -s $WORK/up.port ]] && break; sleep 0.1; done
up=$(cat "$WORK/up.port")
port1=$(free_port)
port2=$(free_port)
# FILLER routes (listening on 127.0.1.N, any port) make a status reply
# larger than a socket buffer, so a client that never reads it matters.
FILLER=${FILLER:-400}
filler=""
for i in $(seq "$FILLER"); do
  filler+=",{\"name\":\"filler$i\",\"listen\":\"127.0.$((1 + i / 250)).$((1 + i % 250)):0\",\"upstream\":\"127.0.0.1:$up\"}"
done
write_config() {  # $1: 1 or 2 routes besides the filler
  local extra=$filler
  [[ $1 == 2 ]] && extra+=",{\"name\":\"extra\",\"listen\":\"127.0.0.1:$port2\",\"upstream\":\"127.0.0.1:$up\"}"
  printf '{"routes":[{"name":"main","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s"}%s]}\n' \
    "$port1" "$up" "$extra" >"$WORK/config.json.new"
  mv "$WORK/config.json.new" "$WORK/config.json"
}
write_config 1
state="$WORK/state"
"$BIN/gateway/gateway" --state_dir="$state" --admin=127.0.0.1:0 --config="$WORK/config.json" \
  2>"$WORK/gateway.log" &
gw=$!
pids+=($gw)
for _ in $(seq 100); do [[ -S $state/control.sock && -s $state/instance.json ]] && break; sleep 0.1; done
admin=$(sed -n 's/.*"admin": *"\([^"]*\)".*/\1/p' "$state/instance.json")
ctl() { "$BIN/tools/gatewayctl/gatewayctl" --state_dir="$state" "$@"; }

snapshot() {  # $1: label; prints and remembers "fds rss_kb threads"
  local fds rss threads
  fds=$(ls "/proc/$gw/fd" | wc -l)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$gw/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$gw/status")
  printf '%-28s open fds %5d   RSS %7d kB   threads %3d   (load %s)\n' "$1" "$fds" "$rss" \
    "$threads" "$(cut -d' ' -f1-3 /proc/loadavg)"
  last_snapshot="$fds $rss $threads"
}

snapshot "start (idle)"
total=$((DURATION + WARMUP))
"$BIN/tools/bench/loadgen" --mode=paced --rate=$RATE --target="127.0.0.1:$port1" \
  --duration_s="$total" --max_connections=$((RATE * (total + 5))) >"$WORK/loadgen.out" &
load=$!
pids+=($load)
"$BIN/tools/bench/misbehave" --control_socket="$state/control.sock" --admin="$admin" \
  --duration_s="$total" --rate=20 --hold_s=5 >"$WORK/misbehave.out" 2>&1 &
bad=$!
pids+=($bad)

hups=0 status_ok=0 status_failed=0 routes=1
start=$SECONDS
next_minute=$((start + WARMUP))
warm=""
while ((SECONDS - start < total)); do
  for _ in 1 2; do
    if ctl status --json >/dev/null 2>>"$WORK/status.err"; then
      status_ok=$((status_ok + 1))
    else
      status_failed=$((status_failed + 1))
    fi
    sleep 1
  done
  routes=$((3 - routes))
  write_config $routes
  kill -HUP "$gw"
  hups=$((hups + 1))
  if ((SECONDS >= next_minute)); then
    if [[ -z $warm ]]; then
      snapshot "after ${WARMUP} s warm-up"
      warm=$last_snapshot
    else
      snapshot "at $((SECONDS - start)) s"
    fi
    next_minute=$((next_minute + 60))
  fi
done
wait "$load" || true
wait "$bad" || true
write_config 1
kill -HUP "$gw"
sleep 7  # held clients (5 s) and the last reload settle
snapshot "end, idle 7 s after the load"
end=$last_snapshot
kill -INT "$gw"
gw_status=0
wait "$gw" || gw_status=$?

echo "relay:      $(cat "$WORK/loadgen.out")"
echo "misbehave:  $(cat "$WORK/misbehave.out")"
echo "SIGHUPs:    $hups sent; reloads logged ok: $(grep -c 'SIGHUP: .* route(s) in force' "$WORK/gateway.log" || true)"
echo "status:     $status_ok ok, $status_failed failed"
echo "gateway:    exited $gw_status on SIGINT"

read -r wfd wrss wthr <<<"$warm"
read -r efd erss ethr <<<"$end"
failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' "$WORK/loadgen.out")
verdict=0
((failed == 0)) || { echo "FAIL: $failed relay connection(s) failed"; verdict=1; }
grep -q 'probe_failures=0 ' "$WORK/misbehave.out" || { echo "FAIL: /healthz probes failed"; verdict=1; }
((status_failed == 0)) || { echo "FAIL: gatewayctl status failed $status_failed time(s): $(tail -1 "$WORK/status.err")"; verdict=1; }
((efd <= wfd + 2)) || { echo "FAIL: descriptors grew $wfd -> $efd"; verdict=1; }
((ethr == wthr)) || { echo "FAIL: threads changed $wthr -> $ethr"; verdict=1; }
((erss <= wrss + wrss / 5 + 1024)) || { echo "FAIL: RSS grew $wrss -> $erss kB"; verdict=1; }
((gw_status == 0)) || { echo "FAIL: gateway exited $gw_status"; verdict=1; }
((verdict == 0)) && echo "PASS: flat descriptors, RSS and threads; no failed relay connection"
exit $verdict
