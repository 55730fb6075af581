"""Booted-guest tests of the virtio devices (issue 3): the guest writes a disk, reads entropy."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, boot  # noqa: E402


def make_ext2(path, size_mib=32):
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext2", "-q", "-F", path], check=True)


def debugfs_cat(image, name):
    r = subprocess.run(["debugfs", "-R", f"cat {name}", image], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=True)
    return r.stdout.decode()


class VirtioBlk(GuestTestCase):
    def test_guest_writes_files_host_finds_them(self):
        with tempfile.TemporaryDirectory() as d:
            img = os.path.join(d, "disk.img")
            make_ext2(img)
            r = boot("mount -t ext2 /dev/vda /mnt && echo written-by-guest > /mnt/hello.txt && "
                     "dd if=/dev/zero of=/mnt/big bs=1M count=4 2>/dev/null && sync && umount /mnt && echo SYNCED",
                     extra_args=["--disk", img])
            self.assertBooted(r)
            self.assertIn("SYNCED", r.command_output())
            self.assertEqual(debugfs_cat(img, "hello.txt"), "written-by-guest\n")
            self.assertEqual(len(subprocess.run(["debugfs", "-R", "cat big", img], stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL).stdout), 4 << 20)

    def test_read_only_disk_refuses_writes(self):
        with tempfile.TemporaryDirectory() as d:
            img = os.path.join(d, "ro.img")
            with open(img, "wb") as f:
                f.write(b"\xab" * (1 << 20))
            r = boot("head -c 4 /dev/vda | od -An -tx1; cat /sys/block/vda/ro; "
                     "dd if=/dev/zero of=/dev/vda bs=512 count=1 2>&1; echo dd-status=$?",
                     extra_args=["--disk", img + ",ro"])
            self.assertBooted(r)
            out = r.command_output()
            self.assertIn("ab ab ab ab", out)
            self.assertIn("\n1\n", "\n" + out)
            self.assertNotIn("dd-status=0", out)
            with open(img, "rb") as f:
                self.assertEqual(f.read(512), b"\xab" * 512)

    def test_missing_disk_image_is_a_clear_error(self):
        r = boot("true", extra_args=["--disk", "/nonexistent/disk.img"])
        self.assertEqual(r.rc, 1)
        self.assertIn("/nonexistent/disk.img", r.err)


class VirtioRng(GuestTestCase):
    def test_hwrng_gives_bytes(self):
        r = boot("cat /sys/class/misc/hw_random/rng_current; dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n'; echo",
                 extra_args=["--rng"])
        self.assertBooted(r)
        lines = r.command_output().split()
        self.assertTrue(lines[0].startswith("virtio_rng"), lines)
        hexbytes = lines[-1]
        self.assertEqual(len(hexbytes), 128, lines)
        self.assertNotEqual(hexbytes, "0" * 128)


class VirtioConsole(GuestTestCase):
    def test_guest_writes_hvc1(self):
        cmd = "echo via-virtio-console > /dev/hvc1; echo rc=$?"
        r = boot(cmd, extra_args=["--virtio-console"])
        self.assertBooted(r)
        self.assertIn("via-virtio-console", r.out)
        self.assertIn("rc=0", r.command_output())
        # Without the device the same write has nowhere to go: the text came through virtio.
        r = boot(cmd)
        self.assertBooted(r)
        self.assertNotIn("via-virtio-console", r.out)
        self.assertNotIn("rc=0", r.command_output())


if __name__ == "__main__":
    unittest.main()
