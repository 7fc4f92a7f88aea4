#!/usr/bin/env bash
# The fuzz test (tag "fuzz"): builds each libFuzzer target in this package
# with clang++-14 (-fsanitize=fuzzer,address,undefined) together with the
# gateway sources it exercises, then runs it for a bounded time over its
# seed corpus (which also replays the regression inputs kept there).
# Bazel 4 offline cannot switch to a clang toolchain for one target, so the
# compiler is driven here, into $TEST_TMPDIR. Any crash, sanitizer report
# or failed invariant fails the test; the input is saved to the test's
# undeclared outputs to be added to the corpus once fixed.
#
# FUZZ_SECONDS (per target, default 20) lengthens a local run:
#   bazel test //tests/fuzz:fuzz_test --test_env=FUZZ_SECONDS=600
set -euo pipefail

seconds=${FUZZ_SECONDS:-20}
root="$TEST_SRCDIR/${TEST_WORKSPACE:-gateway}"
here="$root/tests/fuzz"
out="$TEST_TMPDIR/fuzz"
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}"
mkdir -p "$out/obj"

# The compiler and its libFuzzer/sanitizer runtimes are not needed by the
# rest of the build, so they are installed here, on first use, not by bazelw.
if ! command -v clang++-14 >/dev/null ||
  ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q 'ok installed'; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz_test: needs clang-14 and libclang-rt-14-dev (apt-get install them)" >&2
    exit 1
  fi
  echo "fuzz_test: installing clang-14 libclang-rt-14-dev" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang-14 libclang-rt-14-dev >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends clang-14 libclang-rt-14-dev >/dev/null; }
fi

absl_modules=$(pkg-config --list-all | awk '/^absl_/ {print $1}' | sort)
# shellcheck disable=SC2086
libs="$(pkg-config --libs $absl_modules) $(pkg-config --libs libmicrohttpd libglog gflags) -latomic -lrt -lpthread"
cxxflags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -I"$root"
  -fsanitize=address,undefined -fno-sanitize-recover=undefined)

# The gateway sources the targets need, each compiled once.
sources=(base/json_util base/proc base/sys base/state_dir stop/markers base/net
  dataplane/proxy_protocol dataplane/routes dataplane/telemetry dataplane/upstream_pool stop/stop_record stop/stop_history_metrics stop/stop_context
  ops/admin_server
  plugins/plugin_boundary)
objects=()
for s in "${sources[@]}"; do
  clang++-14 "${cxxflags[@]}" -fsanitize=fuzzer-no-link -c "$root/gateway/$s.cc" \
    -o "$out/obj/${s//\//_}.o"
  objects+=("$out/obj/${s//\//_}.o")
done

status=0
for target in marker route_config admin_request plugin_context proxy_protocol; do
  binary="$out/${target}_fuzzer"
  # shellcheck disable=SC2086
  clang++-14 "${cxxflags[@]}" -fsanitize=fuzzer "$here/${target}_fuzzer.cc" "${objects[@]}" \
    $libs -o "$binary"
  corpus="$out/${target}_corpus"  # writable copy: new inputs land here
  rm -rf "$corpus" && cp -r "$here/${target}_corpus" "$corpus" && chmod -R u+w "$corpus"
  # The admin target shares the process with libmicrohttpd's thread, whose
  # allocations libFuzzer's per-input leak check would misread.
  extra=()
  [[ $target == admin_request ]] && extra+=(-detect_leaks=0)
  echo "=== $target: ${seconds}s over $(ls "$corpus" | wc -l) seed inputs"
  if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/${target}-" "${extra[@]}" \
    "$corpus" 2>"$out/$target.log"; then
    status=1
    echo "FAILED: $target; input saved under $artifacts" >&2
    tail -n 60 "$out/$target.log" >&2
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|^#[0-9]+.*DONE' "$out/$target.log" || true
done
exit "$status"
