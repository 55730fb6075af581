#!/usr/bin/env bash
# The README's second command: installs dependencies (Debian 12), builds Vigil and the test
# guest, runs the unit tests under ASan+UBSan with a short pass of every fuzz target, then
# every test (unit, booted-guest end-to-end, hostile guests) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export VIGIL_GUEST_DIR
VIGIL_GUEST_DIR=$(scripts/build-guest.sh | tail -n 1)
echo "test: guest artifacts in $VIGIL_GUEST_DIR"
scripts/build.sh
# Sanitizer pass (ASan+UBSan unit tests) and a short run of every fuzz target (issue 5).
scripts/sanitize.sh "${VIGIL_FUZZ_SECONDS:-10}"
# Everything, booted guests included: unit, e2e, hostile guests.
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
