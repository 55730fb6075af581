#!/usr/bin/env bash
# Boots the test guest under qemu-system-riscv64 (no Vigil involved) and
# checks that it works: init banner, 4 harts, poweroff, hvc0 console, and that
# every vtest-* program prints exactly what it printed under
# qemu-riscv64-static (tests/<name>.expected, recorded by build-guest.sh).
#
# Usage: guest/check-qemu.sh [GUEST_DIR]     (default: build / reuse via
#                                             scripts/build-guest.sh)
# Env:   QEMU (default qemu-system-riscv64), SMP (4), MEM (512M)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${1:-$("$ROOT/scripts/build-guest.sh" | tail -n1)}
QEMU=${QEMU:-qemu-system-riscv64}
SMP=${SMP:-4}
MEM=${MEM:-512M}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fail=0

boot() { # <log> <append>
  timeout 600 "$QEMU" -M virt -smp "$SMP" -m "$MEM" -nographic -bios default \
    -kernel "$D/Image" -initrd "$D/initramfs.cpio.gz" -append "$2" </dev/null >"$1.raw" 2>&1
  local rc=$?
  tr -d '\r' <"$1.raw" >"$1"
  return $rc
}
check() { # <description> <command...>
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}

t=$SECONDS
boot "$OUT/ttyS0" "console=ttyS0 vigil.cmd=cat /proc/cpuinfo; vtest-atomics; vtest-int | head -3" ||
  echo "FAIL qemu exit status (timeout?)"
echo "     ttyS0 boot+run+poweroff took $((SECONDS - t))s"
check "ttyS0: init banner" grep -q '^VIGIL-GUEST: init started$' "$OUT/ttyS0"
check "ttyS0: $SMP harts in cpuinfo" [ "$(grep -c '^processor' "$OUT/ttyS0")" = "$SMP" ]
check "ttyS0: vtest-atomics OK" grep -q '^OK$' "$OUT/ttyS0"
check "ttyS0: vtest-int output" grep -q '^add 0000000000000000 0000000000000002 -> 0000000000000002$' "$OUT/ttyS0"
check "ttyS0: exit=0" grep -q '^VIGIL-GUEST: exit=0$' "$OUT/ttyS0"
check "ttyS0: powered off" grep -q 'reboot: Power down' "$OUT/ttyS0"

boot "$OUT/hvc0" 'earlycon=sbi console=hvc0 vigil.cmd="cat /sys/class/tty/console/active; nproc"' ||
  echo "FAIL qemu exit status (timeout?)"
check "hvc0: init banner" grep -q '^VIGIL-GUEST: init started$' "$OUT/hvc0"
check "hvc0: console is hvc0" grep -q '^hvc0$' "$OUT/hvc0"
check "hvc0: exit=0" grep -q '^VIGIL-GUEST: exit=0$' "$OUT/hvc0"

for exp in "$D"/tests/vtest-*.expected; do
  n=$(basename "$exp" .expected)
  t=$SECONDS
  boot "$OUT/$n" "console=ttyS0 quiet vigil.cmd=\"echo @@BEGIN@@; $n; echo @@END@@ rc=\$?\"" || true
  sed -n '/^@@BEGIN@@$/,/^@@END@@/p' "$OUT/$n" | sed '1d;$d' >"$OUT/$n.out"
  check "$n: exit 0 in guest ($((SECONDS - t))s)" grep -q '^@@END@@ rc=0$' "$OUT/$n"
  check "$n: output identical to qemu-riscv64-static" cmp -s "$OUT/$n.out" "$exp"
done

if [ $fail -ne 0 ]; then
  keep=$(mktemp -d /tmp/vigil-check-XXXXXX)
  cp "$OUT"/* "$keep"/
  echo "check-qemu: FAILED (logs in $keep)"
  exit 1
fi
echo "check-qemu: all checks passed"
