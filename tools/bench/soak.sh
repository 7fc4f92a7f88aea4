#!/usr/bin/env bash
# soak.sh: a million short connections through one gateway, with its open
# descriptors and resident memory before and after, to show that neither
# grows (issue 5). Loopback only; bounded by count (1,000,000) and time
# (400 s); ends only the processes it started.
#
#   tools/bench/soak.sh [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-1000000}
./bazelw build -c opt //gateway //tools/bench:upstream //tools/bench:loadgen >/dev/null 2>&1
BIN=$(./bazelw info -c opt bazel-bin 2>/dev/null)
WORK=$(mktemp -d /tmp/gateway-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/tools/bench/upstream" --mode=reply --listen=127.0.0.1:0 --port_file="$WORK/up.port" \
  --max_lifetime_s=900 &
pids+=($!)
for _ in $(seq 50); do [[ -s $WORK/up.port ]] && break; sleep 0.1; done
gport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo 18599)
"$BIN/gateway/gateway" --state_dir="$WORK/state" --admin=127.0.0.1:0 \
  --route="127.0.0.1:$gport=127.0.0.1:$(cat "$WORK/up.port")" 2>"$WORK/gateway.log" &
gw=$!
pids+=($gw)
sleep 1
snapshot() {
  echo "$1: open fds $(ls /proc/$gw/fd | wc -l), $(grep VmRSS /proc/$gw/status | tr -s ' \t' ' ')"
}
load() {
  "$BIN/tools/bench/loadgen" --mode=rate --target="127.0.0.1:$gport" --concurrency=32 \
    --duration_s="$2" --max_connections="$1" | tail -1
}
load 20000 30
snapshot "after 20000 warm-up connections"
load "$COUNT" 400
snapshot "after $COUNT more"
sleep 2
snapshot "idle, 2 s later"
kill -INT "$gw"
wait "$gw" && echo "gateway exited 0"
