"""vTPMs of vigild domains (issue 9): `vtpm = [ ... ]` in xl.cfg, `vigil vtpm-list`, state kept
across destroy and create, a reboot resetting and re-measuring the TPM."""
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import guest_dir, write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

TPM_CMD = "vtest-tpm2 /dev/tpmrm0 primary 0; vtest-tpm2 /dev/tpmrm0 pcrread 8"
PRIMARY = re.compile(r"VTEST-TPM primary rc=0x0 ([0-9a-f]{64} [0-9a-f]{64})")


def kernel_pcr8():
    with open(os.path.join(guest_dir(), "Image"), "rb") as f:
        return hashlib.sha256(bytes(32) + hashlib.sha256(f.read()).digest()).hexdigest()


def proc_state(pid):
    """'Z', 'S', ... or None when the process no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@unittest.skipIf(shutil.which("swtpm") is None, "swtpm is not installed (scripts/install-deps.sh)")
class VtpmDomains(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-vtpm-dom-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "root")
        self.d = Vigild(extra_args=["--vtpm-dir", self.root])
        self.addCleanup(self.d.close)

    def config(self, name, cmd, vtpm_line, extra=""):
        return write_domain_config(self.tmp, name, cmd, extra_lines=(vtpm_line + "\n" if vtpm_line else "") + extra)

    def console_when(self, name, needle, timeout=120):
        out = wait_for(lambda: needle in self.d.console(name) and self.d.console(name), timeout) or ""
        self.assertIn(needle, out, f"{name}: {self.d.console(name)[-2000:]}")
        return out

    def vtpms(self, *args):
        return json.loads(self.d.vigil("vtpm-list", "--json", *args).stdout)

    def test_create_list_destroy_keeps_state(self):
        # tpm-a: vigild's default directory (--vtpm-dir/NAME); tpm-b: state= relative to its config.
        self.d.vigil("create", self.config("tpm-a", TPM_CMD, 'vtpm = [ "" ]'))
        self.d.vigil("create", self.config("tpm-b", TPM_CMD, 'vtpm = [ "state=states/b" ]'))
        self.d.vigil("create", self.config("plain", "true", ""))
        out_a = self.console_when("tpm-a", "VTEST-TPM pcr 8")
        out_b = self.console_when("tpm-b", "VTEST-TPM pcr 8")
        self.assertIn(f"VTEST-TPM pcr 8 rc=0x0 {kernel_pcr8()}", out_a, "measured boot in a vigild domain")
        key_a, key_b = PRIMARY.search(out_a).group(1), PRIMARY.search(out_b).group(1)
        self.assertNotEqual(key_a, key_b, "each vTPM has its own seeds")

        dir_a, dir_b = os.path.join(self.root, "tpm-a"), os.path.join(self.tmp, "states", "b")
        listing = {v["domain"]: v for v in self.vtpms()}
        self.assertEqual(sorted(listing), ["tpm-a", "tpm-b"], "plain has no vTPM")
        for name, d in (("tpm-a", dir_a), ("tpm-b", dir_b)):
            v = listing[name]
            self.assertEqual(v["state_dir"], d)
            self.assertEqual((v["pcr_bank"], v["status"], v["host_tpm"], v["encrypted"]), ("sha256", "running", None, False))
            with open(f"/proc/{v['pid']}/comm") as f:
                self.assertEqual(f.read().strip(), "swtpm")
            self.assertTrue(os.path.isfile(os.path.join(d, "tpm2-00.permall")), os.listdir(d))
        text = self.d.vigil("vtpm-list").stdout
        self.assertRegex(text, rf"tpm-a\s+\d+\s+sha256\s+{listing['tpm-a']['pid']}\s+running\s+{re.escape(dir_a)} ")
        self.assertEqual([v["domain"] for v in self.vtpms("tpm-b")], ["tpm-b"])
        r = self.d.vigil("vtpm-list", "plain", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^vigil: domain \d+ has no vTPM\n$")
        r = self.d.vigil("vtpm-list", "nosuch", check=False)
        self.assertIn("no domain named or numbered 'nosuch'", r.stderr)

        # Destroy ends the swtpm process at once and keeps the state directory.
        pid_a = listing["tpm-a"]["pid"]
        self.d.vigil("destroy", "tpm-a")
        self.assertTrue(wait_for(lambda: proc_state(pid_a) is None, 5, step=0.05), f"swtpm {pid_a}: {proc_state(pid_a)}")
        self.assertEqual([v["domain"] for v in self.vtpms()], ["tpm-b"])
        self.assertTrue(os.path.isfile(os.path.join(dir_a, "tpm2-00.permall")))

        # A new domain of the same name gets the same TPM: same owner seed, same primary key.
        self.d.vigil("create", self.config("tpm-a", TPM_CMD, 'vtpm = [ "" ]'))
        out = self.console_when("tpm-a", "VTEST-TPM pcr 8")
        self.assertEqual(PRIMARY.search(out).group(1), key_a, "the vTPM state survived destroy + create")
        self.assertNotEqual(self.vtpms("tpm-a")[0]["pid"], pid_a)

        # A killed swtpm shows in vtpm-list (reaped by a sandboxed API thread through its pidfd).
        pid_b = listing["tpm-b"]["pid"]
        os.kill(pid_b, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: self.vtpms("tpm-b")[0]["status"] == "killed by signal 9", 10, step=0.1),
                        self.vtpms("tpm-b"))
        self.assertIsNone(proc_state(pid_b), "reaped, not a zombie")
        self.d.vigil("destroy", "tpm-b")

    def test_reboot_resets_and_remeasures_the_tpm(self):
        cmd = ("vtest-tpm2 /dev/tpmrm0 getrandom 8; vtest-tpm2 /dev/tpmrm0 pcrread 8; "
               "vtest-tpm2 /dev/tpmrm0 pcrread 16; sleep 2; reboot -f")
        self.d.vigil("create", self.config("rb", cmd, 'vtpm = [ "" ]', extra='on_reboot = "restart"\n'))
        pid = self.vtpms("rb")[0]["pid"]
        boot = re.compile(r"VTEST-TPM random rc=0x0 ([0-9a-f]{16})\r?\nVTEST-TPM pcr 8 rc=0x0 ([0-9a-f]{64})\r?\n"
                          r"VTEST-TPM pcr 16 rc=0x0 ([0-9a-f]{64})\r?\n")
        boots = {}  # each restart is a new domain with its own console: poll until two boots are seen

        def seen_two():
            for m in boot.finditer(self.d.console("rb")):
                boots[m.group(1)] = (m.group(2), m.group(3))
            return len(boots) >= 2
        self.assertTrue(wait_for(seen_two, 180, step=0.3), self.d.console("rb")[-2000:])
        self.assertEqual(self.vtpms("rb")[0]["pid"], pid, "the same swtpm process across reboots")
        # Each boot saw only its own measurement: PCR 8 = one extend of the kernel, every time,
        # and PCR 16 (debug, never extended by vigild) zero.
        self.assertEqual(set(boots.values()), {(kernel_pcr8(), "0" * 64)}, boots)

    def test_swtpm_dies_with_vigild(self):
        # Run as root, swtpm changes uid, which clears its parent-death signal: it is set again.
        self.d.vigil("create", self.config("orphan", "sleep 600", 'vtpm = [ "" ]'))
        pid = self.vtpms("orphan")[0]["pid"]
        self.d.proc.kill()
        self.d.proc.wait()
        self.assertTrue(wait_for(lambda: proc_state(pid) in (None, "Z"), 10, step=0.05),
                        f"swtpm {pid} outlived vigild: {proc_state(pid)}")

    def test_vtpm_that_cannot_start_fails_create_with_one_sentence(self):
        blocker = os.path.join(self.tmp, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        r = self.d.vigil("create", self.config("bad", "true", f'vtpm = [ "state={blocker}/x" ]'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^vigil: vTPM of domain 'bad': cannot create vTPM state directory '.*/file/x': .*\n$")
        self.assertNotIn("bad", self.d.domains())
        # Two domains on one state directory: the second is refused, naming the first.
        self.d.vigil("create", self.config("one", "sleep 60", 'vtpm = [ "state=shared" ]'))
        r = self.d.vigil("create", self.config("two", "sleep 60", 'vtpm = [ "state=shared" ]'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, f"vigil: vTPM of domain 'two': state directory '{self.tmp}/shared' is in use by "
                                   "domain 'one'\n")
        self.d.vigil("destroy", "one")
        self.d.vigil("create", self.config("two", "sleep 60", 'vtpm = [ "state=shared" ]'))
        r = self.d.vigil("create", self.config("bad2", "true", 'vtpm = [ "backend=vtpmmgr" ]'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad2.cfg:8: vtpm: entry 1: backend= names a Xen vTPM stub domain", r.stderr)


if __name__ == "__main__":
    unittest.main()
