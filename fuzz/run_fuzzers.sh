#!/usr/bin/env bash
# Runs libFuzzer targets, JOBS at a time, each for SECONDS from its seed corpus fuzz/corpus/NAME
# and its growing corpus BUILD/corpus/NAME; prints each run's summary in the order given.
#
#   fuzz/run_fuzzers.sh BUILD SECONDS JOBS NAME...      (from the project's root; `make fuzz`)
#
# Exit status: 1 when any target crashed or failed (its log is printed), else 0.
set -uo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BUILD SECONDS JOBS NAME..." >&2; exit 2; }
build=$1 seconds=$2 jobs=$3
shift 3
logs="$build/fuzz-logs"
mkdir -p "$logs"
run_one() {
  local build=$1 seconds=$2 logs=$3 name=$4
  local target="$build/bin/fuzz_$name"
  [[ $target == /* ]] || target="./$target"
  mkdir -p "$build/corpus/$name"
  OMP_NUM_THREADS=1 "$target" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
    "$build/corpus/$name" "fuzz/corpus/$name" >"$logs/$name.log" 2>&1
  echo $? >"$logs/$name.status"
}
export -f run_one
echo "fuzzing $* for $seconds s each, $jobs at a time"
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ "$build" "$seconds" "$logs" {}
failed=0
for name in "$@"; do
  status=$(cat "$logs/$name.status" 2>/dev/null || echo missing)
  echo "fuzz_$name:"
  grep -E "^(Done|stat::number_of_executed_units|==.*ERROR|SUMMARY)" "$logs/$name.log" | sed 's/^/  /'
  if [ "$status" != 0 ]; then
    echo "fuzz_$name failed (exit status $status); its log, $logs/$name.log, ends:"
    tail -n 40 "$logs/$name.log"
    failed=1
  fi
done
exit $failed
