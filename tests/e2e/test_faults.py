"""Fault tests (issue 5): a full disk under a writing guest, vigild killed after a sync."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, boot  # noqa: E402
from test_devices import make_ext2, debugfs_cat  # noqa: E402
from test_domains import Vigild, write_config, wait_for  # noqa: E402


class Faults(GuestTestCase):
    def test_full_host_filesystem_gives_guest_io_errors(self):
        with tempfile.TemporaryDirectory() as d:
            mnt = os.path.join(d, "small")
            os.mkdir(mnt)
            # A tiny filesystem for the image: the guest's writes fill it.
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
            try:
                img = os.path.join(mnt, "disk.img")
                with open(img, "wb") as f:
                    f.truncate(64 << 20)  # sparse: 64 MiB of disk on 4 MiB of host space
                r = boot("dd if=/dev/zero of=/dev/vda bs=1M count=16 conv=fsync 2>&1 | tail -1; echo still-alive",
                         extra_args=["--disk", img])
                self.assertBooted(r)
                out = r.command_output()
                self.assertIn("still-alive", out)
                # The guest saw the failure (dd reports it, the kernel logs I/O errors).
                self.assertRegex(out, r"dd: /dev/vda: (Input/output error|No space left)")
            finally:
                subprocess.run(["umount", "-l", mnt])

    def test_sigkill_after_guest_sync_keeps_data(self):
        d = Vigild()
        try:
            cfgdir = tempfile.mkdtemp()
            img = os.path.join(cfgdir, "disk.img")
            make_ext2(img)
            cfg = write_config(cfgdir, "writer",
                               "mount -t ext2 /dev/vda /mnt && echo durable-data > /mnt/kept.txt && sync && "
                               "echo SYNCED && sleep 1000",
                               extra_lines=f'disk = [ "{img}" ]\n')
            d.vigil("create", cfg)
            self.assertTrue(wait_for(lambda: "SYNCED" in d.console("writer"), 120), d.console("writer")[-500:])
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait(timeout=10)
            self.assertEqual(debugfs_cat(img, "kept.txt"), "durable-data\n")
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main()
