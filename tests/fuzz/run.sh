#!/usr/bin/env bash
# Runs libFuzzer targets one after another: tests/fuzz/run.sh SECONDS BIN...
# Each keeps its corpus in build/fuzz/corpus/<name> (so runs build on each other), its output in
# build/fuzz/logs/<name>.log and any crashing input in build/fuzz/artifacts/<name>/. Prints one
# line per target and "N passed, N failed"; exits non-zero if any target crashed or did not run.
set -u
if [ $# -lt 2 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS FUZZ_BINARY..." >&2
  exit 2
fi
seconds=$1; shift
bins=()
for b in "$@"; do
  bins+=("$(realpath -m "$b")")
done
cd "$(dirname "$0")/../.."

passed=0
failed=0
for bin in "${bins[@]}"; do
  name=$(basename "$bin")
  if ! [ -x "$bin" ]; then
    printf '%-20s FAIL (no such binary: %s)\n' "$name" "$bin"
    failed=$((failed + 1))
    continue
  fi
  corpus=build/fuzz/corpus/$name
  artifacts=build/fuzz/artifacts/$name
  log=build/fuzz/logs/$name.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # A checked-in seed corpus, if there is one, is read but never written.
  seeds=()
  [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    printf '%-20s ok   %s runs in %s s, corpus %s inputs\n' "$name" "${runs:-?}" "$seconds" "$files"
    passed=$((passed + 1))
  else
    crash=$(ls -t "$artifacts" 2>/dev/null | head -n 1)
    printf '%-20s FAIL (exit %s) log %s%s\n' "$name" "$rc" "$log" \
      "${crash:+, input $artifacts/$crash}"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
