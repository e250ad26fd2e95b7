#!/usr/bin/env bash
# What `make test` runs: build, unit tests, the same tests under AddressSanitizer and
# UndefinedBehaviorSanitizer, the concurrency tests under ThreadSanitizer, then integration
# tests. Each stage prints "N passed, N failed"; this sums them into the last line and exits
# non-zero if anything failed or did not build.
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
total_pass=0
total_fail=0
log=build/test-logs
mkdir -p "$log"

# stage NAME COMMAND...: runs COMMAND, echoes its output, adds its closing counts.
stage() {
  local name=$1; shift
  echo "== $name"
  local out="$log/$name.log"
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
  elif [ "$rc" -ne 0 ]; then
    echo "== $name: failed (exit $rc) before it could count its tests"
    total_fail=$((total_fail + 1))
  fi
}

stage build make -j"$jobs" all unit
stage unit build/tests/unit-tests
stage build-asan make -j"$jobs" SAN=address,undefined all unit
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  stage unit-asan build/san-address-undefined/tests/unit-tests
stage build-tsan make -j"$jobs" SAN=thread unit
# Only tests that run threads concurrently have anything to show ThreadSanitizer.
TSAN_OPTIONS=halt_on_error=1 stage unit-tsan setarch "$(uname -m)" -R \
  build/san-thread/tests/unit-tests concurrent

for t in tests/integration/test-*; do
  [ -x "$t" ] || continue
  stage "integration-$(basename "$t")" "$t"
done
# The call bridge once more as the ASan/UBSan build: memory errors and leaks in real calls
# (fewer calls for the leak check: the sanitizers make each one slower).
stage integration-test-bridge-asan env VB_BIN=build/san-address-undefined/voicebridge \
  BRIDGE_LEAK_CALLS=200 tests/integration/test-bridge
# The master and its workers as the ASan/UBSan build: fd passing, reload, respawn, drain.
stage integration-test-master-asan env VB_BIN=build/san-address-undefined/voicebridge \
  MASTER_STRESS_CONNECTIONS=1000 tests/integration/test-master

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
