"""vTPM state sealed to a host TPM (issue 9 step 4): vigild --host-tpm TCTI with a second swtpm
standing in for the host TPM. The state key is sealed with tpm2-tss ESAPI; on disk are only
the sealed blob and swtpm's encrypted state; the state persists across destroy + create and a
vigild restart; another or an unreachable host TPM makes creation fail with one sentence."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_domains import VIGILD, Vigild, wait_for  # noqa: E402

PRIMARY = re.compile(r"VTEST-TPM primary rc=0x0 ([0-9a-f]{64} [0-9a-f]{64})")


def accepts(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port_pair():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p < 65535 and not accepts(p + 1):
            return p


class HostTpm:
    """A swtpm on TCP 127.0.0.1 (data port, control port + 1) playing the host's TPM."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.port = free_port_pair()
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={directory}",
             "--server", f"type=tcp,bindaddr=127.0.0.1,port={self.port}",
             "--ctrl", f"type=tcp,bindaddr=127.0.0.1,port={self.port + 1}",
             "--flags", "not-need-init,startup-clear"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: accepts(self.port), 10, step=0.05):
            raise AssertionError("the host swtpm did not start")
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@unittest.skipIf(shutil.which("swtpm") is None, "swtpm is not installed (scripts/install-deps.sh)")
class VtpmSealing(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-vtpm-seal-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "root")
        self.state = os.path.join(self.root, "sealed")
        self.cfg = write_domain_config(self.tmp, "sealed", "vtest-tpm2 /dev/tpmrm0 primary 0",
                                       extra_lines='vtpm = [ "" ]\n')

    def host(self, name):
        h = HostTpm(os.path.join(self.tmp, name))
        self.addCleanup(h.close)
        return h

    def vigild(self, *args):
        d = Vigild(extra_args=["--vtpm-dir", self.root, *args])
        close = d.close

        def close_once():  # Vigild.close() may run once only
            if not getattr(d, "closed", False):
                d.closed = True
                close()
        d.close = close_once
        self.addCleanup(close_once)
        return d

    def boot_primary(self, d):
        d.vigil("create", self.cfg)
        out = wait_for(lambda: "VTEST-TPM primary" in d.console("sealed") and d.console("sealed"), 120) or ""
        m = PRIMARY.search(out)
        self.assertTrue(m, d.console("sealed")[-2000:])
        return m.group(1)

    def test_sealed_state_persists_across_destroy_create_and_vigild_restart(self):
        host = self.host("host")
        d = self.vigild("--host-tpm", host.tcti)
        key = self.boot_primary(d)
        [v] = json.loads(d.vigil("vtpm-list", "--json").stdout)
        self.assertEqual((v["host_tpm"], v["encrypted"], v["status"]), (host.tcti, True, "running"))
        self.assertIn(host.tcti, d.vigil("vtpm-list").stdout)

        # On disk: the sealed key blob (root's, 0600) and swtpm's state, encrypted. swtpm's state
        # blob header (src/swtpm/tlv.h): u8 version, u8 min version, u16 header size, u16 flags
        # (BLOB_FLAG_ENCRYPTED = 1), u32 total, then the first TLV tag: 2 = TAG_ENCRYPTED_DATA.
        self.assertEqual(sorted(os.listdir(self.state)), [".lock", "tpm2-00.permall", "vtpm-key.sealed"])
        blob = os.stat(os.path.join(self.state, "vtpm-key.sealed"))
        self.assertEqual((blob.st_uid, blob.st_mode & 0o777), (os.geteuid(), 0o600))
        with open(os.path.join(self.state, "tpm2-00.permall"), "rb") as f:
            head = f.read(12)
        self.assertTrue(int.from_bytes(head[4:6], "big") & 1, head.hex())
        self.assertEqual(int.from_bytes(head[10:12], "big"), 2, head.hex())
        with open(os.path.join(self.state, "vtpm-key.sealed"), "rb") as f:
            sealed = f.read()
        self.assertTrue(sealed.startswith(b"VIGILSK2\0\0\0\0"), "no host PCR policy without --host-tpm-pcrs")

        d.vigil("destroy", "sealed")
        self.assertEqual(self.boot_primary(d), key, "destroy + create: same TPM")
        d.vigil("destroy", "sealed")
        d.close()
        d2 = self.vigild("--host-tpm", host.tcti)
        self.assertEqual(self.boot_primary(d2), key, "a vigild restart: same TPM")
        with open(os.path.join(self.state, "vtpm-key.sealed"), "rb") as f:
            self.assertEqual(f.read(), sealed, "the key was unsealed, not made again")

    def test_other_unreachable_or_missing_host_tpm_fails_create(self):
        host = self.host("host")
        d = self.vigild("--host-tpm", host.tcti)
        self.boot_primary(d)
        d.vigil("destroy", "sealed")
        d.close()
        with open(os.path.join(self.state, "vtpm-key.sealed"), "rb") as f:
            sealed = f.read()

        def create_fails(d, pattern):
            r = d.vigil("create", self.cfg, check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertRegex(r.stderr, "^vigil: vTPM of domain 'sealed': " + pattern + r"[^\n]*\n$")
            self.assertNotIn("sealed", d.domains())
            d.close()

        other = self.host("other")
        create_fails(self.vigild("--host-tpm", other.tcti),
                     re.escape(f"host TPM '{other.tcti}': cannot load the sealed vTPM state key"))
        dead = f"swtpm:host=127.0.0.1,port={free_port_pair()}"
        create_fails(self.vigild("--host-tpm", dead), re.escape(f"host TPM '{dead}': cannot open the TCTI: "))
        create_fails(self.vigild(), "its state in '.*' is sealed to a host TPM; start vigild with --host-tpm")
        with open(os.path.join(self.state, "vtpm-key.sealed"), "rb") as f:
            self.assertEqual(f.read(), sealed, "never recreated")
        # The right host TPM still opens it.
        d = self.vigild("--host-tpm", host.tcti)
        self.boot_primary(d)

    def test_key_sealed_to_host_pcrs_stops_unsealing_when_they_change(self):
        host = self.host("host")
        d = self.vigild("--host-tpm", host.tcti, "--host-tpm-pcrs", "16")
        key = self.boot_primary(d)
        d.vigil("destroy", "sealed")
        self.assertEqual(self.boot_primary(d), key, "unchanged host PCRs: the key unseals")
        d.vigil("destroy", "sealed")
        # The host boots "something else": its PCR 16 changes.
        subprocess.run(["tpm2_pcrextend", "-T", host.tcti, "16:sha256=" + "11" * 32], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = d.vigil("create", self.cfg, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, f"vigil: vTPM of domain 'sealed': host TPM '{host.tcti}': cannot unseal the vTPM "
                                   "state key: host PCRs 16 differ from when it was sealed\n")
        self.assertNotIn("sealed", d.domains())
        r = subprocess.run([VIGILD, "--host-tpm-pcrs", "24"], stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("'24' is not a PCR number 0-23", r.stderr)

    def test_host_tpm_that_never_answers_fails_create_at_the_deadline(self):
        # Accepts on the data and control ports and never answers (tpm2-tss alone would wait forever).
        listeners = []
        port = free_port_pair()
        for p in (port, port + 1):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.listen(8)
            listeners.append(s)
            self.addCleanup(s.close)
        tcti = f"swtpm:host=127.0.0.1,port={port}"
        d = self.vigild("--host-tpm", tcti, "--host-tpm-timeout", "2")
        for _ in range(2):  # the second create is not stuck behind the first
            t0 = time.monotonic()
            r = d.vigil("create", self.cfg, check=False)
            self.assertLess(time.monotonic() - t0, 15)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr, f"vigil: vTPM of domain 'sealed': host TPM '{tcti}': no answer within 2 s "
                                       "(the TPM or its TCTI hangs)\n")
        self.assertNotIn("sealed", d.domains())
        self.assertFalse(os.path.exists(os.path.join(self.state, "vtpm-key.sealed")))
        self.assertEqual(subprocess.run(["pgrep", "-f", "vtpm-key-helper"], stdout=subprocess.PIPE).stdout, b"",
                         "the helpers were killed and reaped")


if __name__ == "__main__":
    unittest.main()
