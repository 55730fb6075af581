#!/usr/bin/env bash
# Builds the Vigil RISC-V test guest (kernel Image + initramfs + test
# programs) from Debian sources.  See guest/README.md.
#
# Usage: scripts/build-guest.sh
#   stdout: short progress lines; the LAST line is the path of the guest
#           directory (Image, vmlinux, System.map, initramfs.cpio.gz, tests/).
#   env:    VIGIL_CACHE      cache root (default $HOME/.cache/vigil)
#           VIGIL_KEEP_WORK  =1 keeps the kernel/busybox build trees
#           VIGIL_JOBS       make -j value (default: nproc)
#
# Three cache levels, each in its own directory, built in a temporary
# directory and renamed into place when complete (".complete" marker):
#   kernel-<sha256>   keyed by guest/kernel.config, the kernel recipe in this
#                     script, linux-source-6.1 and toolchain versions
#   busybox-<sha256>  keyed by guest/busybox.config-fragment, the busybox
#                     recipe, the busybox source version and toolchain
#   guest-<sha256>    keyed by this whole script, all files under guest/
#                     that go into the image, and all versions above
# so editing a test program only rebuilds the (seconds-long) final step.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/build-guest.sh
GUEST=$ROOT/guest
CACHE=${VIGIL_CACHE:-$HOME/.cache/vigil}
CROSS=riscv64-linux-gnu-
JOBS=${VIGIL_JOBS:-$(nproc)}
LINUX_TARBALL=/usr/src/linux-source-6.1.tar.xz
# Fixed timestamps/identity so rebuilding gives the same bits.
export SOURCE_DATE_EPOCH=1704067200 # 2024-01-01 00:00:00 UTC
export KBUILD_BUILD_TIMESTAMP="2024-01-01 00:00:00 UTC"
export KBUILD_BUILD_USER=vigil KBUILD_BUILD_HOST=vigil KBUILD_BUILD_VERSION=1

# Kernel options the guest cannot work without.  guest/kernel.config is the
# full list of what is requested (every line of it is checked too); this list
# only guards against someone deleting a line from the fragment.
KERNEL_REQUIRED_Y=(
  64BIT MMU SMP FPU RISCV_ISA_C RISCV_SBI RISCV_SBI_V01 HVC_RISCV_SBI
  SERIAL_8250 SERIAL_8250_CONSOLE SERIAL_OF_PLATFORM SIFIVE_PLIC RISCV_INTC
  RISCV_TIMER OF BLK_DEV_INITRD RD_GZIP DEVTMPFS DEVTMPFS_MOUNT PROC_FS SYSFS
  TMPFS TTY PRINTK UNIX INET PACKET BINFMT_ELF BINFMT_SCRIPT FUTEX EPOLL
  POSIX_TIMERS MULTIUSER VIRTIO_MMIO VIRTIO_BLK VIRTIO_NET VIRTIO_CONSOLE
  HW_RANDOM_VIRTIO EXT2_FS EXT4_FS POWER_RESET KALLSYMS
)
KERNEL_REQUIRED_OFF=(MODULES RISCV_ISA_SVPBMT RISCV_ISA_ZICBOM DEBUG_INFO_REDUCED DEBUG_INFO_SPLIT)
KERNEL_MIN_NR_CPUS=8

say() { printf 'build-guest: %s\n' "$*"; }
die() {
  printf 'build-guest: ERROR: %s\n' "$*" >&2
  exit 1
}
elapsed() { # seconds -> "XmYYs"
  printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# --------------------------------------------------------------------------
# Prerequisites and input versions

for c in ${CROSS}gcc ${CROSS}strip gcc make flex bison bc tar xz gzip sha256sum flock \
  apt-get apt-cache dpkg-query dpkg-source pahole; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found; run scripts/install-deps.sh"
done
[ -r "$LINUX_TARBALL" ] || die "$LINUX_TARBALL missing; run scripts/install-deps.sh (linux-source-6.1)"

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }

LINUX_VER=$(pkgver linux-source-6.1)
TOOLCHAIN="gcc-riscv64-linux-gnu=$(pkgver gcc-riscv64-linux-gnu)"
TOOLCHAIN+=" gcc-12-riscv64-linux-gnu=$(pkgver gcc-12-riscv64-linux-gnu)"
TOOLCHAIN+=" binutils-riscv64-linux-gnu=$(pkgver binutils-riscv64-linux-gnu)"
TOOLCHAIN+=" libc6-dev-riscv64-cross=$(pkgver libc6-dev-riscv64-cross)"
TOOLCHAIN+=" linux-libc-dev-riscv64-cross=$(pkgver linux-libc-dev-riscv64-cross)"
TOOLCHAIN+=" dwarves=$(pkgver dwarves)"
TOOLCHAIN+=" [$(${CROSS}gcc --version | head -n1)] [host: $(gcc --version | head -n1)]"

# Newest busybox source version apt knows about (needs a deb-src entry).
BB_VER=
while read -r v; do
  if [ -z "$BB_VER" ] || dpkg --compare-versions "$v" gt "$BB_VER"; then BB_VER=$v; fi
done < <(apt-cache showsrc busybox 2>/dev/null | sed -n 's/^Version: //p')
[ -n "$BB_VER" ] || die "apt knows no busybox source package: add a deb-src line for bookworm and run apt-get update (scripts/install-deps.sh does this)"

# --------------------------------------------------------------------------
# Helpers

# check_config <final .config> <fragment> <label>: every CONFIG_X=v line of
# the fragment must appear verbatim; every "# CONFIG_X is not set" symbol must
# not be set to anything.
check_config() {
  local cfg=$1 frag=$2 label=$3 line sym bad=0
  while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*)
      if ! grep -qxF -- "$line" "$cfg"; then
        sym=${line%%=*}
        printf '  %s: wanted %s, got: %s\n' "$label" "$line" \
          "$(grep -E "^(# )?$sym[= ]" "$cfg" || echo '<absent, dependency missing>')" >&2
        bad=1
      fi
      ;;
    "# CONFIG_"*" is not set")
      sym=${line#\# }
      sym=${sym%% *}
      if grep -q "^$sym=" "$cfg"; then
        printf '  %s: wanted %s, got: %s\n' "$label" "$line" "$(grep "^$sym=" "$cfg")" >&2
        bad=1
      fi
      ;;
    esac
  done <"$frag"
  return $bad
}

check_kernel_required() {
  local cfg=$1 o bad=0 n
  for o in "${KERNEL_REQUIRED_Y[@]}"; do
    grep -qx "CONFIG_$o=y" "$cfg" || { echo "  kernel: CONFIG_$o is not =y" >&2; bad=1; }
  done
  for o in "${KERNEL_REQUIRED_OFF[@]}"; do
    ! grep -q "^CONFIG_$o=" "$cfg" || { echo "  kernel: CONFIG_$o must be off" >&2; bad=1; }
  done
  n=$(sed -n 's/^CONFIG_NR_CPUS=//p' "$cfg")
  [ "${n:-0}" -ge "$KERNEL_MIN_NR_CPUS" ] || { echo "  kernel: CONFIG_NR_CPUS=${n:-unset} < $KERNEL_MIN_NR_CPUS" >&2; bad=1; }
  return $bad
}

# apply_fragment <.config> <fragment>: replace/append each symbol's line.
apply_fragment() {
  local cfg=$1 frag=$2 line sym
  while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*) sym=${line%%=*} ;;
    "# CONFIG_"*" is not set") sym=${line#\# } sym=${sym%% *} ;;
    *) continue ;;
    esac
    sed -i -e "/^$sym=/d" -e "/^# $sym is not set\$/d" "$cfg"
    printf '%s\n' "$line" >>"$cfg"
  done <"$frag"
}

fail_log() { # <log file> <what>
  echo "build-guest: $2 failed; last lines of $1:" >&2
  tail -n 30 "$1" >&2 || true
  exit 1
}

# Temporary directories live inside $CACHE (same filesystem => atomic rename).
# They are removed on exit; if the build failed, the logs stay until the next
# run (the big source trees are removed unless VIGIL_KEEP_WORK=1).
TMPDIRS=()
cleanup() {
  local rc=$? d
  for d in "${TMPDIRS[@]}"; do
    [ -e "$d" ] || continue
    if [ $rc -ne 0 ]; then
      [ "${VIGIL_KEEP_WORK:-0}" = 1 ] || rm -rf "$d/linux" "$d/src"
      echo "build-guest: logs kept for inspection (until the next run): $d" >&2
    else
      rm -rf "$d"
    fi
  done
}
trap cleanup EXIT
new_tmp() { # <name> -> sets NEW_TMP (not a $(...) call: TMPDIRS must persist)
  NEW_TMP=$(mktemp -d "$CACHE/.tmp-$1-XXXXXX")
  TMPDIRS+=("$NEW_TMP")
}
# publish <tmp dir> <final dir>: atomic rename of a finished directory.
publish() {
  chmod 755 "$1" # mktemp -d creates 0700
  touch "$1/.complete"
  if ! mv -T "$1" "$2" 2>/dev/null; then
    [ -e "$2/.complete" ] || die "could not move $1 to $2"
    rm -rf "$1" # somebody else finished first
  fi
}

# --------------------------------------------------------------------------
# Kernel: allnoconfig + guest/kernel.config, flat Image.

build_kernel() { # <work dir>
  local w=$1 src=$1/linux
  mkdir -p "$src"
  tar -xf "$LINUX_TARBALL" -C "$src" --strip-components=1
  (cd "$src" && ARCH=riscv CROSS_COMPILE=$CROSS \
    scripts/kconfig/merge_config.sh -n "$GUEST/kernel.config") >"$w/config.log" 2>&1 ||
    fail_log "$w/config.log" "kernel configuration"
  cp "$src/.config" "$w/config"
  local ok=1
  check_config "$src/.config" "$GUEST/kernel.config" kernel || ok=0
  check_kernel_required "$src/.config" || ok=0
  [ $ok = 1 ] || die "kernel .config lacks requested options (see above; merge log: $w/config.log)"
  make -C "$src" ARCH=riscv CROSS_COMPILE=$CROSS -j"$JOBS" Image >"$w/build.log" 2>&1 ||
    fail_log "$w/build.log" "kernel build"
  cp "$src/arch/riscv/boot/Image" "$src/vmlinux" "$src/System.map" "$w/"
  cp "$src/usr/gen_init_cpio" "$w/" # host tool used to pack the initramfs
  # The introspection profile (src/introspect): the kernel's type information as raw
  # BTF, encoded by pahole from vmlinux's DWARF, so struct offsets are never hand-typed.
  pahole --btf_encode_detached="$w/vmlinux.btf" "$w/vmlinux" >"$w/btf.log" 2>&1 ||
    fail_log "$w/btf.log" "pahole BTF encoding"
  [ -s "$w/vmlinux.btf" ] || die "pahole wrote no BTF for vmlinux"
  grep -a -o -m1 'Linux version [[:print:]]*' "$w/Image" >"$w/version.txt" || true
  if [ "${VIGIL_KEEP_WORK:-0}" != 1 ]; then rm -rf "$src"; fi
}

# --------------------------------------------------------------------------
# Busybox: Debian source package, defconfig + fragment, static.

build_busybox() { # <work dir>
  local w=$1 src
  mkdir -p "$w/src"
  (cd "$w/src" && apt-get source --only-source "busybox=$BB_VER") >"$w/source.log" 2>&1 ||
    fail_log "$w/source.log" "apt-get source busybox=$BB_VER"
  src=$(find "$w/src" -mindepth 1 -maxdepth 1 -type d -name 'busybox-*' | head -n1)
  [ -n "$src" ] || die "no busybox-* directory after apt-get source"
  make -C "$src" defconfig >"$w/config.log" 2>&1 || fail_log "$w/config.log" "busybox defconfig"
  apply_fragment "$src/.config" "$GUEST/busybox.config-fragment"
  { yes '' || true; } | make -C "$src" oldconfig >>"$w/config.log" 2>&1 ||
    fail_log "$w/config.log" "busybox oldconfig"
  cp "$src/.config" "$w/config"
  check_config "$src/.config" "$GUEST/busybox.config-fragment" busybox ||
    die "busybox .config lacks requested options (see above)"
  make -C "$src" CROSS_COMPILE=$CROSS -j"$JOBS" busybox >"$w/build.log" 2>&1 ||
    fail_log "$w/build.log" "busybox build"
  make -C "$src" CROSS_COMPILE=$CROSS busybox.links >>"$w/build.log" 2>&1 ||
    fail_log "$w/build.log" "busybox.links"
  cp "$src/busybox" "$src/busybox.links" "$w/"
  cp "$src/examples/udhcp/simple.script" "$w/udhcpc.script"
  echo "$BB_VER" >"$w/version.txt"
  if [ "${VIGIL_KEEP_WORK:-0}" != 1 ]; then rm -rf "$w/src"; fi
}

# --------------------------------------------------------------------------
# Cache keys

sha() { sha256sum | cut -d' ' -f1; }

KERNEL_KEY=$({
  echo "vigil-kernel-v1"
  declare -f build_kernel check_config check_kernel_required
  declare -p KERNEL_REQUIRED_Y KERNEL_REQUIRED_OFF KERNEL_MIN_NR_CPUS KBUILD_BUILD_TIMESTAMP
  cat "$GUEST/kernel.config"
  echo "linux-source-6.1=$LINUX_VER $TOOLCHAIN"
} | sha)
BUSYBOX_KEY=$({
  echo "vigil-busybox-v1"
  declare -f build_busybox apply_fragment check_config
  cat "$GUEST/busybox.config-fragment"
  echo "busybox=$BB_VER $TOOLCHAIN"
} | sha)
GUEST_INPUTS=(scripts/build-guest.sh guest/kernel.config guest/busybox.config-fragment guest/init)
while IFS= read -r f; do GUEST_INPUTS+=("$f"); done < <(cd "$ROOT" && find guest/tests -type f | sort)
GUEST_KEY=$({
  (cd "$ROOT" && sha256sum "${GUEST_INPUTS[@]}")
  echo "linux-source-6.1=$LINUX_VER busybox=$BB_VER $TOOLCHAIN"
} | sha)

KDIR=$CACHE/kernel-$KERNEL_KEY
BDIR=$CACHE/busybox-$BUSYBOX_KEY
GDIR=$CACHE/guest-$GUEST_KEY

if [ -e "$GDIR/.complete" ]; then
  say "up to date"
  printf '%s\n' "$GDIR"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  say "waiting for another build-guest.sh run (lock $CACHE/.lock)"
  flock 9
fi
if [ -e "$GDIR/.complete" ]; then # built by whoever held the lock
  say "up to date"
  printf '%s\n' "$GDIR"
  exit 0
fi
# Holding the lock: any .tmp-* left over is from a failed or killed run.
rm -rf "$CACHE"/.tmp-*

TIMINGS=()

if [ -e "$KDIR/.complete" ]; then
  say "kernel: cached $KDIR"
else
  say "kernel: building linux-source-6.1 $LINUX_VER (allnoconfig + guest/kernel.config, -j$JOBS)"
  t=$SECONDS
  new_tmp kernel
  w=$NEW_TMP
  build_kernel "$w"
  echo "kernel build (extract+config+make Image): $(elapsed $((SECONDS - t)))" >"$w/timing.txt"
  publish "$w" "$KDIR"
  say "kernel: done in $(elapsed $((SECONDS - t)))"
  TIMINGS+=("kernel: $(elapsed $((SECONDS - t)))")
fi

if [ -e "$BDIR/.complete" ]; then
  say "busybox: cached $BDIR"
else
  say "busybox: building $BB_VER (apt-get source, defconfig + fragment, static)"
  t=$SECONDS
  new_tmp busybox
  w=$NEW_TMP
  build_busybox "$w"
  echo "busybox build (apt-get source+config+make): $(elapsed $((SECONDS - t)))" >"$w/timing.txt"
  publish "$w" "$BDIR"
  say "busybox: done in $(elapsed $((SECONDS - t)))"
  TIMINGS+=("busybox: $(elapsed $((SECONDS - t)))")
fi

# --------------------------------------------------------------------------
# Guest directory: tests, initramfs, copies of the kernel artifacts.

t=$SECONDS
new_tmp guest
G=$NEW_TMP
mkdir -p "$G/tests"

say "tests: compiling guest/tests/*.c"
TEST_CFLAGS=(-O2 -static -pthread -Wall -Wextra -frounding-math)
TESTS=()
for c in "$GUEST"/tests/*.c; do
  n=$(basename "$c" .c)
  case "$n" in vtest-*) ;; *) n=vtest-$n ;; esac
  ${CROSS}gcc "${TEST_CFLAGS[@]}" -o "$G/tests/$n" "$c" -lm >"$G/tests/$n.build.log" 2>&1 ||
    fail_log "$G/tests/$n.build.log" "compiling $c"
  [ -s "$G/tests/$n.build.log" ] || rm -f "$G/tests/$n.build.log"
  TESTS+=("$n")
done

# Differential oracle: run every test twice under qemu-user, require exit 0
# and identical output; keep the output as <test>.expected.
if command -v qemu-riscv64-static >/dev/null 2>&1; then
  say "tests: running under qemu-riscv64-static (twice, must be identical)"
  for n in "${TESTS[@]}"; do
    for run in 1 2; do
      qemu-riscv64-static "$G/tests/$n" >"$G/tests/$n.run$run" 2>&1 ||
        fail_log "$G/tests/$n.run$run" "$n under qemu-riscv64-static (run $run)"
    done
    cmp -s "$G/tests/$n.run1" "$G/tests/$n.run2" ||
      die "$n output differs between two qemu-riscv64-static runs ($G/tests)"
    mv "$G/tests/$n.run1" "$G/tests/$n.expected"
    rm -f "$G/tests/$n.run2"
  done
else
  say "tests: WARNING qemu-riscv64-static not found, tests not verified"
fi

say "initramfs: packing busybox + /init + tests"
R=$G/.rootfs
mkdir -p "$R"
cp "$GUEST/init" "$R/init"
cp "$BDIR/busybox" "$R/busybox"
cp "$BDIR/udhcpc.script" "$R/udhcpc.script"
for n in "${TESTS[@]}"; do cp "$G/tests/$n" "$R/$n"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/passwd"
printf 'root:x:0:\n' >"$R/group"
printf 'vigil-guest\n' >"$R/hostname"
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
{
  for d in /bin /sbin /usr /usr/bin /usr/sbin /usr/share /usr/share/udhcpc /dev /proc /sys \
    /etc /mnt /run /var /root; do
    echo "dir $d 0755 0 0"
  done
  echo "dir /tmp 1777 0 0"
  echo "nod /dev/console 0600 0 0 c 5 1"
  echo "nod /dev/null 0666 0 0 c 1 3"
  echo "file /init $R/init 0755 0 0"
  echo "file /bin/busybox $R/busybox 0755 0 0"
  grep -v -x -e /bin/busybox -e /linuxrc "$BDIR/busybox.links" | sort -u |
    while IFS= read -r l; do echo "slink $l /bin/busybox 0777 0 0"; done
  for n in "${TESTS[@]}"; do echo "file /bin/$n $R/$n 0755 0 0"; done
  echo "file /usr/share/udhcpc/default.script $R/udhcpc.script 0755 0 0"
  echo "file /etc/passwd $R/passwd 0644 0 0"
  echo "file /etc/group $R/group 0644 0 0"
  echo "file /etc/hostname $R/hostname 0644 0 0"
  echo "slink /etc/mtab /proc/mounts 0777 0 0"
} >"$G/initramfs.list"
"$KDIR/gen_init_cpio" -t "$SOURCE_DATE_EPOCH" "$G/initramfs.list" >"$G/initramfs.cpio" ||
  die "gen_init_cpio failed"
gzip -n -9 "$G/initramfs.cpio"
rm -rf "$R"
sed -i "s|$R/|<staging>/|" "$G/initramfs.list"

for f in Image vmlinux System.map vmlinux.btf; do
  ln "$KDIR/$f" "$G/$f" 2>/dev/null || cp "$KDIR/$f" "$G/$f"
done
cp "$KDIR/config" "$G/kernel.config"
cp "$BDIR/config" "$G/busybox.config"
TIMINGS+=("tests+initramfs: $(elapsed $((SECONDS - t)))")
{
  echo "Vigil test guest"
  echo "kernel:  $(cat "$KDIR/version.txt")"
  echo "busybox: $BB_VER (static)"
  echo "linux-source-6.1: $LINUX_VER"
  echo "toolchain: $TOOLCHAIN"
  echo "kernel cache:  $KDIR"
  echo "busybox cache: $BDIR"
  echo "inputs:"
  (cd "$ROOT" && sha256sum "${GUEST_INPUTS[@]}") | sed 's/^/  /'
  echo "steps run by this invocation:"
  for x in "${TIMINGS[@]}"; do echo "  $x"; done
  echo "kernel/busybox build times (when their cache entries were built):"
  cat "$KDIR/timing.txt" "$BDIR/timing.txt" 2>/dev/null | sed 's/^/  /'
} >"$G/manifest.txt"

publish "$G" "$GDIR"
say "guest: done in $(elapsed $((SECONDS - t)))"
printf '%s\n' "$GDIR"
