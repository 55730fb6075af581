#!/usr/bin/env bash
# The README's second command: installs dependencies (Debian 12), builds Vigil and the test
# guest, and runs every test (unit tests and booted-guest end-to-end tests) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export VIGIL_GUEST_DIR
VIGIL_GUEST_DIR=$(scripts/build-guest.sh | tail -n 1)
echo "test: guest artifacts in $VIGIL_GUEST_DIR"
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
