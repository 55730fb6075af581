#!/usr/bin/env bash
# The README's first command: installs what Vigil needs (Debian 12), builds Vigil and the
# Debian-sourced test guest, and boots it to a busybox shell on this terminal.
# Leave the shell with `poweroff -f` (or Ctrl-A x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
GUEST=$(scripts/build-guest.sh | tail -n 1)
scripts/build.sh
exec build/apps/vigil run --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio.gz" \
  --vcpus "${VCPUS:-2}" --memory "${MEMORY:-512}" --append "console=ttyS0 ${APPEND:-}" "$@"
