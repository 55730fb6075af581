"""vTPM 2.0 (issue 9): a booted guest with `vigil run --vtpm DIR` sees a TPM 2.0 on the TIS
interface, backed by its own swtpm process."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, boot  # noqa: E402


@unittest.skipIf(shutil.which("swtpm") is None, "swtpm is not installed (scripts/install-deps.sh)")
class Vtpm(GuestTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-vtpm-")
        self.state = os.path.join(self.tmp, "state")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_guest_binds_tpm_tis_as_tpm20(self):
        r = boot("dmesg | grep -i tpm; ls /dev/tpm0 /dev/tpmrm0; "
                 "echo major=$(cat /sys/class/tpm/tpm0/tpm_version_major); "
                 "for i in 0 7 16; do echo pcr$i=$(cat /sys/class/tpm/tpm0/pcr-sha256/$i); done",
                 extra_args=["--vtpm", self.state], timeout=180)
        self.assertBooted(r)
        out = r.command_output()
        self.assertRegex(out, r"tpm_tis 10100000\.tpm: 2\.0 TPM \(device-id 0x1, rev-id 1\)")
        self.assertNotIn("TPM error", out)
        self.assertIn("/dev/tpm0", out)
        self.assertIn("/dev/tpmrm0", out)
        self.assertIn("major=2", out)
        # Nothing measured into these PCRs yet: SHA-256 banks read all zeros after TPM2_Startup.
        for i in (0, 7, 16):
            self.assertIn(f"pcr{i}=" + "0" * 64, out)
        self.assertTrue(os.path.isfile(os.path.join(self.state, "tpm2-00.permall")),
                        os.listdir(self.state))

    def test_missing_swtpm_is_a_clear_error(self):
        env_path = os.environ.get("PATH", "")
        os.environ["PATH"] = "/nonexistent"
        try:
            r = boot("true", extra_args=["--vtpm", self.state], timeout=30)
        finally:
            os.environ["PATH"] = env_path
        self.assertEqual(r.rc, 1, r.err)
        self.assertIn("cannot find 'swtpm' for the vTPM", r.err)


if __name__ == "__main__":
    unittest.main()
