#!/usr/bin/env bash
# Black-box: a deployment's own Bazel workspace (tests/custom/out_of_tree/),
# outside this repository, builds a gateway with its own detector through
# gateway_binary(), offline, with the system's bazel. The binary lists the
# detector and the detector decides a real stop (signal -> record).
#
# The inner Bazel uses its own output root, /tmp/gateway-oot-cache (kept
# between runs so a rerun takes seconds; from scratch it is a cold build of
# the gateway, one to four minutes on two cores), and is shut down at the
# end.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# The repository root: README.md in the runfiles links to the source tree.
readme="${TEST_SRCDIR}/${TEST_WORKSPACE}/README.md"
gateway_path=$(dirname "$(readlink -f "$readme")")
[[ -f "$gateway_path/WORKSPACE" ]] || fail "cannot find the gateway repository from $readme"
example="${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/custom/out_of_tree"

# An empty directory becomes the deployment's workspace.
ws="${TEST_TMPDIR}/my_deployment"
rm -rf "$ws"
mkdir -p "$ws/my_detector"
sed "s|@GATEWAY_PATH@|${gateway_path}|g" "$example/WORKSPACE.template" >"$ws/WORKSPACE"
cp "$example/bazelrc" "$ws/.bazelrc"
cp "$example/BUILD.template" "$ws/my_detector/BUILD.bazel"
cp "$example/my_detector.cc" "$ws/my_detector/my_detector.cc"

# --test_env=GATEWAY_OOT_OUTPUT_ROOT=/tmp/fresh checks a build from scratch.
bazel_cmd=(bazel --output_user_root="${GATEWAY_OOT_OUTPUT_ROOT:-/tmp/gateway-oot-cache}"
  --max_idle_secs=60)
cd "$ws"
trap '"${bazel_cmd[@]}" shutdown >/dev/null 2>&1 || true' EXIT
"${bazel_cmd[@]}" build --color=no --curses=no //my_detector:my_gateway \
  >"$TEST_TMPDIR/build.log" 2>&1 || { cat "$TEST_TMPDIR/build.log" >&2; fail "bazel build"; }
binary="$ws/bazel-bin/my_detector/my_gateway"

# Registered in the real binary, not in the default chain.
listed=$("$binary" --list_detectors)
grep -qP '^my_detector\tbuilt-in\t-$' <<<"$listed" || fail "my_detector not listed: $listed"
grep -qP '^systemd\tbuilt-in\t3$' <<<"$listed" || fail "built-ins missing: $listed"

# First in the chain, it decides a SIGTERM sent by a program named "deployer".
state="$TEST_TMPDIR/state"
mkdir -m 0700 "$state"
"$binary" --state_dir="$state" --admin=127.0.0.1:0 \
  --detectors=my_detector,takeover_marker,planned_stop_file,systemd \
  2>"$TEST_TMPDIR/gateway.log" &
pid=$!
for _ in $(seq 100); do
  grep -qs "serving" "$TEST_TMPDIR/gateway.log" && break
  sleep 0.1
done
grep -q "serving" "$TEST_TMPDIR/gateway.log" || fail "gateway did not start: $(cat "$TEST_TMPDIR/gateway.log")"
# A script's comm is its file name. It stays alive for a moment, so the
# gateway can read its name from /proc when the signal arrives.
printf '#!/bin/sh\nkill -TERM "$1"\nsleep 2\n' >"$TEST_TMPDIR/deployer"
chmod +x "$TEST_TMPDIR/deployer"
"$TEST_TMPDIR/deployer" "$pid" &
deployer=$!
for _ in $(seq 200); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "gateway still running 20s after SIGTERM"; }
status=0
wait "$pid" || status=$?
wait "$deployer" || true
[[ $status -eq 0 ]] || fail "exit status $status, expected 0: $(cat "$TEST_TMPDIR/gateway.log")"
record=$(cat "$state/last-shutdown.json")
grep -q '"detector": "my_detector"' <<<"$record" || fail "record: $record"
grep -q '"class": "planned"' <<<"$record" || fail "record: $record"
echo "PASS: my_gateway built out of tree; my_detector listed and decided the stop"
