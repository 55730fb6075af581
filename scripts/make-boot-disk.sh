#!/usr/bin/env bash
# Makes a bootable disk image the way distributions lay one out, for U-Boot's distro boot
# (issue 14): an MBR partition table with one bootable ext2 partition holding the kernel,
# the initramfs and extlinux/extlinux.conf.
#
#   scripts/make-boot-disk.sh OUT.img GUEST_DIR [APPEND]
#
# GUEST_DIR holds Image and initramfs.cpio.gz (scripts/build-guest.sh prints it). APPEND is
# the kernel command line (default: console=ttyS0 quiet). Needs sfdisk (fdisk) and mke2fs
# (e2fsprogs), both in scripts/install-deps.sh; no root, no loop devices.
set -euo pipefail
out=${1:?usage: make-boot-disk.sh OUT.img GUEST_DIR [APPEND]}
guest=${2:?usage: make-boot-disk.sh OUT.img GUEST_DIR [APPEND]}
append=${3:-console=ttyS0 quiet}
for f in Image initramfs.cpio.gz; do
  [[ -f "$guest/$f" ]] || { echo "make-boot-disk: $guest/$f is missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/extlinux"
cp "$guest/Image" "$guest/initramfs.cpio.gz" "$tmp/root/"
cat > "$tmp/root/extlinux/extlinux.conf" <<CONF
default vigil
timeout 1
label vigil
	kernel /Image
	initrd /initramfs.cpio.gz
	append $append
CONF
# Partition: 1 MiB in, large enough for the files plus room.
size_kib=$(( $(du -sk "$tmp/root" | cut -f1) + 8192 ))
truncate -s "${size_kib}k" "$tmp/part.img"
mke2fs -q -F -t ext2 -L vigilboot -d "$tmp/root" "$tmp/part.img" "${size_kib}k"
rm -f "$out"
truncate -s $(( 1024 * 1024 + size_kib * 1024 )) "$out"
echo "start=2048, type=83, bootable" | sfdisk -q "$out"
dd if="$tmp/part.img" of="$out" bs=1M seek=1 conv=notrunc status=none
echo "$out"
