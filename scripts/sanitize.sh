#!/usr/bin/env bash
# Sanitizer pass: builds Vigil with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (-DVIGIL_SANITIZE=ON), runs the unit tests through ctest without the
# booted-guest tests (-LE e2e), the hostile-guest suite and the booted-guest monitor and
# introspection tests, then gives every fuzz target a short run (fuzz/run.sh all,
# which also replays the seed corpora). Fails on the first sanitizer report, failed test or
# fuzz crash. Budget: about 10 minutes on 2 cores from a clean tree (fuzz/README.md).
#
#   scripts/sanitize.sh [FUZZ_SECONDS]   seconds per fuzz target (default 15; 0 skips fuzzing)
#
# Environment: VIGIL_ASAN_BUILD_DIR (default build-asan), VIGIL_FUZZ_BUILD_DIR (default
# build-fuzz), ASAN_OPTIONS / UBSAN_OPTIONS for the unit tests (sensible defaults below).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${VIGIL_ASAN_BUILD_DIR:-build-asan}
FUZZ_SECONDS=${1:-15}
t0=$(date +%s)
stamp() { echo "sanitize: $1 ($(($(date +%s) - t0)) s)"; }

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_SANITIZE=ON -DVIGIL_BENCH=OFF >/dev/null
# Everything but the benchmarks: the unit-test binaries and whatever else ctest may run.
ninja -C "$BUILD" >"$BUILD/sanitize-build.log" 2>&1 || {
  tail -n 40 "$BUILD/sanitize-build.log" >&2
  echo "sanitize: build failed (log: $BUILD/sanitize-build.log)" >&2
  exit 1
}
stamp "built $BUILD with ASan+UBSan"

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir "$BUILD" -LE e2e --output-on-failure -j "$(nproc)" --timeout 300
stamp "unit tests passed under ASan+UBSan"

# The hostile guests (bare-metal attack programs run by the sanitized vigil): the code a
# hostile guest reaches is exactly what the sanitizers should watch. The neighbour
# throughput test is left to the normal build (timings under ASan mean nothing).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:check_initialization_order=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} VIGIL_SANITIZED=1 \
  ctest --test-dir "$BUILD" -L hostile -E neighbour --output-on-failure -j "$(nproc)" --timeout 600
stamp "hostile-guest suite passed under ASan+UBSan"

# A booted Linux guest under the sanitized vigild: the monitor sessions (socket and shared
# memory, dying and silent monitors) and introspection requests, where client-controlled
# and guest-controlled bytes meet. A sanitizer report in vigild's log fails the test
# (tests/e2e/test_domains.py, Vigild.close). The Python-module tests stay in the normal
# build (a sanitized extension would need the runtime preloaded into python).
export VIGIL_GUEST_DIR=${VIGIL_GUEST_DIR:-$(scripts/build-guest.sh | tail -n 1)}
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} VIGIL_SANITIZED=1 \
  ctest --test-dir "$BUILD" -R '^e2e\.(monitor|introspect)\.' -E python --output-on-failure --timeout 900
stamp "booted-guest monitor and introspection tests passed under ASan+UBSan"

if [ "$FUZZ_SECONDS" != 0 ]; then
  fuzz/run.sh all "$FUZZ_SECONDS"
  stamp "fuzz targets ran ${FUZZ_SECONDS} s each without a crash"
fi
stamp "done"
