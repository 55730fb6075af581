#!/usr/bin/env bash
# Installs everything Vigil needs on a fresh Debian 12 (bookworm) machine.
# Idempotent: packages already present are skipped quickly by apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# deb-src for bookworm main: busybox is built from Debian's source package.
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  # deb822 form with the same Signed-By as Debian's own entry, or apt refuses the mix.
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $SUDO tee /etc/apt/sources.list.d/vigil-src.sources >/dev/null
  NEED_UPDATE=1
fi

PKGS=(
  # host build
  build-essential cmake ninja-build pkg-config git
  libfdt-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libxbyak-dev
  libgtest-dev libgmock-dev libbenchmark-dev libslirp-dev libglib2.0-dev
  libseccomp-dev libbpf-dev python3-pybind11
  # snapshot stream (issue 11): zstd for RAM batches, xxhash for record checksums
  libzstd-dev libxxhash-dev
  # guest build (kernel + busybox + test programs)
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1
  flex bison bc libssl-dev libelf-dev cpio xz-utils kmod dpkg-dev device-tree-compiler
  dwarves
  # peers and oracles
  qemu-system-misc qemu-user-static opensbi
  # boot paths (issue 14): U-Boot in S-mode, and sfdisk for the distro-style boot disk
  u-boot-qemu fdisk
  # tests: ext2 images the guest writes, checked from the host; libFuzzer for fuzz/
  e2fsprogs python3 libclang-rt-14-dev
  # metrics (issue 13): cpp-httplib serves /metrics; a real Prometheus (and promtool) scrapes it in tests
  libcpp-httplib-dev zlib1g-dev libbrotli-dev prometheus
  # vTPM (issue 9): swtpm per domain and as the tests' stand-in host TPM, tpm2-tss to seal state keys
  swtpm swtpm-tools libtpms-dev libtss2-dev tpm2-tools
  # debugging (issue 13): a real gdb against the GDB stub
  gdb-multiarch
  # dashboard (issue 13): headless Chromium loads vigild's page in tests/e2e/test_dashboard.py
  chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ -n "${NEED_UPDATE:-}" ]; then
  $SUDO apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
