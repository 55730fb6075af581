"""Booted-guest tests for issue 14: the boot paths users take with Debian's own firmware.

OpenSBI (fw_jump) hands over to U-Boot in S-mode, and U-Boot's distro boot finds
extlinux/extlinux.conf on a virtio-blk disk made by scripts/make-boot-disk.sh and boots
the test guest's kernel and initramfs from it: under `vigil run`, as a vigild domain, and,
as a differential check, under QEMU's virt board with the same firmware and disk."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, OPENSBI_DIR, ROOT, Run, VIGIL, guest_dir  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

UBOOT_DIR = "/usr/lib/u-boot/qemu-riscv64_smode"
FW_JUMP = os.path.join(OPENSBI_DIR, "fw_jump.bin")
# What the guest runs comes from the disk's extlinux.conf, so /proc/cmdline proves that
# U-Boot read the disk and handed its `append` line to the kernel.
JOB = "cat /proc/cmdline; uname -sm; ls /tests | head -n 3; echo disk-boot-ok"
APPEND = f'console=ttyS0 quiet vigil.cmd="{JOB}"'


def make_disk(directory):
    path = os.path.join(directory, "boot.img")
    subprocess.run([os.path.join(ROOT, "scripts", "make-boot-disk.sh"), path, guest_dir(), APPEND],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    return path


def run_vigil(kernel, disk, firmware=FW_JUMP, timeout=180):
    args = [VIGIL, "run", "--kernel", kernel, "--memory", "256", "--disk", disk, "--timeout", str(timeout)]
    if firmware:
        args[2:2] = ["--firmware", firmware]
    t0 = time.monotonic()
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 60)
    return Run(proc, time.monotonic() - t0)


class BootPaths(GuestTestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.disk = make_disk(self.tmp.name)

    def assertDiskBoot(self, r):
        self.assertBooted(r)
        self.assertIn("U-Boot 20", r.out)
        self.assertIn("Found /extlinux/extlinux.conf", r.out)
        out = r.command_output()
        self.assertIn("disk-boot-ok", out)
        self.assertIn(f'vigil.cmd="{JOB}"', out)

    def test_opensbi_uboot_linux_from_disk_matches_qemu(self):
        r = run_vigil(os.path.join(UBOOT_DIR, "u-boot.bin"), self.disk)
        self.assertDiskBoot(r)
        self.assertIn("Domain0 Next Mode         : S-mode", r.out)
        # The same firmware, U-Boot and disk on QEMU's virt board print the same job output.
        q = subprocess.run(["qemu-system-riscv64", "-M", "virt", "-m", "256", "-nographic", "-no-reboot",
                            "-bios", FW_JUMP, "-kernel", os.path.join(UBOOT_DIR, "u-boot.bin"),
                            "-drive", f"file={self.disk},if=none,format=raw,id=hd0,snapshot=on",
                            "-device", "virtio-blk-device,drive=hd0"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        qr = Run(q, 0)
        self.assertIsNotNone(qr.command_output(), qr.out[-3000:])
        self.assertEqual(r.command_output().splitlines(), qr.command_output().splitlines())

    def test_uboot_elf_payload(self):
        # U-Boot's ELF build is loaded at its program headers' addresses.
        self.assertDiskBoot(run_vigil(os.path.join(UBOOT_DIR, "uboot.elf"), self.disk))

    def test_uboot_chain_as_vigild_domain(self):
        d = Vigild()
        self.addCleanup(d.close)
        cfg = os.path.join(self.tmp.name, "ub.cfg")
        with open(cfg, "w") as f:
            f.write(f'name = "ub"\nmemory = 256\nvcpus = 1\nfirmware = "{FW_JUMP}"\n'
                    f'kernel = "{UBOOT_DIR}/u-boot.bin"\n'
                    f'disk = [ "format=raw, vdev=xvda, access=rw, target={self.disk}" ]\n'
                    'on_poweroff = "preserve"\n')
        d.vigil("create", cfg)
        done = lambda: "VIGIL-GUEST: exit=0" in d.console("ub", 0)
        self.assertTrue(wait_for(done, 180), d.console("ub", 0)[-3000:])
        text = d.console("ub", 0)
        self.assertIn("Found /extlinux/extlinux.conf", text)
        self.assertIn("disk-boot-ok", text)

    def test_non_image_kernel_without_firmware_is_refused(self):
        r = run_vigil(os.path.join(UBOOT_DIR, "u-boot.bin"), self.disk, firmware=None, timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("is not a RISC-V Linux Image", r.err)
        # A payload that does not fit where the firmware hands over is refused by name.
        elf = os.path.join(self.tmp.name, "low.elf")
        with open(os.path.join(UBOOT_DIR, "uboot.elf"), "rb") as f:
            b = bytearray(f.read())
        phoff, phnum = int.from_bytes(b[32:40], "little"), int.from_bytes(b[56:58], "little")
        load = next(phoff + 56 * i for i in range(phnum)
                    if int.from_bytes(b[phoff + 56 * i:phoff + 56 * i + 4], "little") == 1)  # PT_LOAD
        b[load + 24:load + 32] = (0x80000000).to_bytes(8, "little")  # p_paddr over the firmware
        with open(elf, "wb") as f:
            f.write(b)
        r = run_vigil(elf, self.disk, timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn(f"payload '{elf}'", r.err)
        self.assertIn("outside the guest memory", r.err)


if __name__ == "__main__":
    unittest.main()
