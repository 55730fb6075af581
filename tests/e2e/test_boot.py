"""Booted-guest tests for issue 2: Debian's Linux 6.1 on the Vigil machine."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, boot, guest_dir, OPENSBI_DIR, VIGIL  # noqa: E402


class Boot(GuestTestCase):
    def test_busybox_runs(self):
        r = boot("echo vigil-$((6*7)); uname -sm")
        self.assertBooted(r)
        out = r.command_output()
        self.assertIn("vigil-42", out)
        self.assertIn("Linux riscv64", out)

    def test_four_harts_in_cpuinfo(self):
        r = boot("grep -c ^processor /proc/cpuinfo; nproc", vcpus=4)
        self.assertBooted(r)
        self.assertEqual(r.command_output().split(), ["4", "4"])

    def test_atomics_exact_totals_on_4_harts(self):
        r = boot("vtest-atomics 4", vcpus=4)
        self.assertBooted(r)
        out = r.command_output()
        self.assertIn("OK", out)
        self.assertNotIn("FAIL", out)

    def test_sbi_console_hvc0(self):
        r = boot("echo on-hvc0", console="hvc0")
        self.assertBooted(r)
        self.assertIn("on-hvc0", r.command_output())

    def test_opensbi_fw_dynamic(self):
        r = boot("echo via-opensbi; grep -c ^processor /proc/cpuinfo", vcpus=2,
                 firmware=os.path.join(OPENSBI_DIR, "fw_dynamic.bin"))
        self.assertBooted(r)
        self.assertIn("OpenSBI", r.out)
        self.assertEqual(r.command_output().split(), ["via-opensbi", "2"])

    def test_opensbi_fw_jump(self):
        r = boot("echo via-fw-jump", firmware=os.path.join(OPENSBI_DIR, "fw_jump.bin"))
        self.assertBooted(r)
        self.assertIn("via-fw-jump", r.command_output())

    def test_guest_exit_status_reported(self):
        r = boot("false")
        self.assertBooted(r, exit_status=1)


class Differential(GuestTestCase):
    """Guest programs print the same inside Vigil as under qemu-riscv64-static on the host."""

    def check(self, prog):
        oracle = subprocess.run(["qemu-riscv64-static", os.path.join(guest_dir(), "tests", prog)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(oracle.returncode, 0, oracle.stderr)
        expected = oracle.stdout.decode().replace("\r\n", "\n")
        self.assertGreater(len(expected.splitlines()), 10)
        r = boot(prog, vcpus=1, memory=256)
        self.assertBooted(r)
        got = r.command_output()
        self.assertIsNotNone(got)
        self.assertEqual(got.splitlines(), expected.splitlines())

    def test_int(self):
        self.check("vtest-int")

    def test_fp(self):
        self.check("vtest-fp")

    def test_mem(self):
        self.check("vtest-mem")


class Failures(GuestTestCase):
    def vigil(self, *args, timeout=60):
        return subprocess.run([VIGIL, "run", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)

    def test_missing_kernel(self):
        r = self.vigil("--kernel", "/nonexistent/Image")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot read kernel '/nonexistent/Image'", r.stderr)

    def test_malformed_kernel(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(os.urandom(4096))
            f.flush()
            r = self.vigil("--kernel", f.name)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"is not a RISC-V Linux Image", r.stderr)

    def test_truncated_kernel(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"\0" * 10)
            f.flush()
            r = self.vigil("--kernel", f.name)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"too small", r.stderr)

    def test_bad_vcpus(self):
        r = self.vigil("--kernel", os.path.join(guest_dir(), "Image"), "--vcpus", "9")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--vcpus must be between 1 and 8", r.stderr)

    def test_initrd_too_large_for_memory(self):
        with tempfile.NamedTemporaryFile() as f:
            f.truncate(40 << 20)
            r = self.vigil("--kernel", os.path.join(guest_dir(), "Image"), "--initrd", f.name, "--memory", "32")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"initrd", r.stderr)

    def test_timeout(self):
        r = boot("sleep 1000", timeout=20)
        self.assertEqual(r.rc, 4, r.err)
        self.assertIn("timeout", r.err)

    def test_unexpected_reset(self):
        r = boot("reboot -f")
        self.assertEqual(r.rc, 2, r.err)
        self.assertIn("reset", r.err)

    def test_kernel_panic_is_not_success(self):
        # init is not found: the kernel panics; with panic=1 it asks for a reset.
        r = boot(None, append_extra="panic=1 rdinit=/nonexistent", timeout=120)
        self.assertEqual(r.rc, 2, r.err)
        self.assertIn("Kernel panic", r.out)


if __name__ == "__main__":
    unittest.main()
