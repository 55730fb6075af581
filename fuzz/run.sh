#!/usr/bin/env bash
# Builds the fuzz targets (if needed) and runs them (fuzz/README.md).
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer flags...]   fuzz one target for SECONDS
#   fuzz/run.sh all SECONDS [libFuzzer flags...]      each target in turn, SECONDS each
#   fuzz/run.sh regress                               every seed once, plus every reproducer
#                                                     in fuzz/crashes/ (reports which still crash)
#   fuzz/run.sh build                                 just build; fuzz/run.sh list: the targets
#
# One fuzzing process at a time (one core). New corpus entries go to
# $VIGIL_FUZZ_BUILD_DIR/corpus/TARGET (the committed seeds in fuzz/corpus/TARGET are only
# read), crashes to $VIGIL_FUZZ_BUILD_DIR/artifacts/TARGET/, logs to .../logs/TARGET.log.
# Environment: VIGIL_FUZZ_BUILD_DIR (default build-fuzz), VIGIL_FUZZ_ENGINE (auto, libfuzzer,
# standalone), VIGIL_FUZZ_JOBS (build parallelism, default nproc), CXX (default g++).
# Bugs listed in fuzz/known_bugs (still open in src/) are passed to the targets in
# VIGIL_FUZZ_SKIP so a run can go past them; delete a line there once its bug is fixed.
# Exit status: 0 if nothing crashed, 1 if something did, 2 on usage or build errors.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${VIGIL_FUZZ_BUILD_DIR:-build-fuzz}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

build() {
  local engine=${VIGIL_FUZZ_ENGINE:-auto}
  if [ ! -f "$BUILD/build.ninja" ] || [ "$(sed -n 's/^VIGIL_FUZZ_ENGINE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)" != "$engine" ]; then
    cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-g++}" -DVIGIL_FUZZ_ENGINE="$engine" >/dev/null || exit 2
  fi
  ninja -C "$BUILD" -j "${VIGIL_FUZZ_JOBS:-$(nproc)}" >"$BUILD/build.log" 2>&1 || {
    tail -n 40 "$BUILD/build.log" >&2
    echo "fuzz: build failed (full log: $BUILD/build.log)" >&2
    exit 2
  }
}

targets() { cat "$BUILD/targets.txt"; }

skip_list() {
  [ -f fuzz/known_bugs ] || return 0
  sed -e 's/#.*//' -e 's/[[:space:]]//g' fuzz/known_bugs | grep -v '^$' | paste -sd, -
}

max_len_for() {
  case "$1" in
    kernel_image) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# run_target TARGET SECONDS [flags...]: prints one summary line; returns 1 on a crash.
run_target() {
  local t=$1 secs=$2
  shift 2
  local bin="$BUILD/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target '$t' (have: $(targets | paste -sd' ' -))" >&2; return 2; }
  local work="$BUILD/corpus/$t" art="$BUILD/artifacts/$t/" log="$BUILD/logs/$t.log"
  mkdir -p "$work" "$art" "$BUILD/logs"
  local seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  local rc=0
  VIGIL_FUZZ_SKIP="$(skip_list)" "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 \
    -max_len="$(max_len_for "$t")" -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" "$@" \
    "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  local runs execs ft corp
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -n 1)
  [ -n "$execs" ] || [ -z "$runs" ] || execs=$((runs / (secs > 0 ? secs : 1)))  # standalone engine
  ft=$({ grep -oE 'ft: [0-9]+' "$log" || true; } | tail -n 1 | cut -d' ' -f2)
  corp=$(find "$work" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t ${secs}s: ${runs:-?} runs (${execs:-?} exec/s), features ${ft:-n/a}, new corpus $corp: OK"
    return 0
  fi
  local artifact
  artifact=$(sed -n -e "s/.*Test unit written to \(.*\)/\1/p" -e "s/^standalone: crashing input written to //p" "$log" | tail -n 1)
  echo "fuzz: $t ${secs}s: CRASH (exit $rc) after ${runs:-?} runs; input: ${artifact:-?}; log: $log"
  { grep -E '^(SUMMARY|FUZZ INVARIANT|==[0-9]+==ERROR|.*runtime error|terminate called|  what\(\))' "$log" || true; } |
    head -n 6 | sed 's/^/  /'
  return 1
}

regress() {
  local failed=0 t
  for t in $(targets); do
    if [ -d "fuzz/corpus/$t" ]; then
      if VIGIL_FUZZ_SKIP="$(skip_list)" "$BUILD/fuzz_$t" -runs=0 "fuzz/corpus/$t" >"$BUILD/logs/$t.seeds.log" 2>&1; then
        echo "fuzz: $t seeds: OK ($(find "fuzz/corpus/$t" -type f | wc -l) inputs)"
      else
        echo "fuzz: $t seeds: CRASH (log: $BUILD/logs/$t.seeds.log)"
        failed=1
      fi
    fi
    local f
    for f in fuzz/crashes/"$t"/*; do
      [ -f "$f" ] || continue
      case "$f" in *.txt | *.md) continue ;; esac
      if "$BUILD/fuzz_$t" "$f" >"$BUILD/logs/$t.repro.log" 2>&1; then
        echo "fuzz: $t reproducer $f: fixed (no longer crashes)"
      else
        echo "fuzz: $t reproducer $f: still crashes (known bug)"
      fi
    done
  done
  return $failed
}

[ $# -ge 1 ] || usage
cmd=$1
shift
mkdir -p "$BUILD/logs"
case "$cmd" in
  build) build ;;
  list) build; targets ;;
  regress) build; regress ;;
  all)
    [ $# -ge 1 ] || usage
    secs=$1
    shift
    build
    failed=0
    for t in $(targets); do run_target "$t" "$secs" "$@" || failed=1; done
    exit $failed
    ;;
  -h | --help | help) usage ;;
  *)
    [ $# -ge 1 ] || usage
    secs=$1
    shift
    build
    run_target "$cmd" "$secs" "$@"
    ;;
esac
