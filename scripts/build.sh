#!/usr/bin/env bash
# Configures and builds Vigil (release-with-debug-info) into build/ (or $VIGIL_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${VIGIL_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
ninja -C "$BUILD_DIR" >/dev/null
echo "build: $BUILD_DIR/apps/vigil"
