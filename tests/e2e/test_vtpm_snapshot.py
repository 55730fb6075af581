"""The vTPM in snapshots, and the independence and persistence of vTPMs (issue 9 with issue 11).

A booted guest writes a secret to TPM NV and extends PCR 16 through /dev/tpmrm0 (vtest-tpm2),
then waits on its console; each line it reads makes it print PCR 16, PCR 8 and the NV secret
again. The domain is saved (its vTPM state sealed with the domain's state key: no plaintext
secret in the snapshot's vTPM record), restored into the same vigild, saved again and restored
into a second vigild with the same host TPM: the guest reads back the same PCRs and secret.
Corrupted vTPM records and a vigild that cannot open the sealed key are refused in a sentence.
Two domains' TPMs have different endorsement keys and one's PCR extend leaves the other's alone;
an NV secret survives destroy + create and a vigild restart, and never lies in the state
directory in plaintext when sealed (while an unsealed state shows it, so the search works)."""
import hashlib
import json
import os
import re
import shutil
import struct
import signal
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_migrate import send_console  # noqa: E402
from test_vtpm_sealing import HostTpm  # noqa: E402

T = "vtest-tpm2 /dev/tpmrm0"
SECRET = "vigil-nv-secret-7f3a91c2"
PCR = re.compile(r"VTEST-TPM pcr (\d+) rc=0x0 ([0-9a-f]{64})")
NV = re.compile(r"VTEST-TPM nv rc=0x0 (\S*)")
EK = re.compile(r"VTEST-TPM ek rc=0x0 ([0-9a-f]{64} [0-9a-f]{64})")
EXTRA_DEVICE_STATE = 0x80000100
# PCR 16 after one TPM2_PCR_Extend of 32 bytes of 0x11 from its reset value of zeros.
PCR16_EXTENDED = hashlib.sha256(bytes(32) + b"\x11" * 32).hexdigest()

# Writes the secret, extends PCR 16, then answers every console line with the values.
JOB = (f"{T} nvwrite {SECRET} && {T} extend 16 && {T} pcrread 16 && {T} pcrread 8 && echo READY && "
       f"while read x; do echo GOT-$x; {T} pcrread 16; {T} pcrread 8; {T} nvread 0; echo ROUND-$x; done")


def records(path):
    """(type, instance, payload) of each record of a snapshot file (migrate/stream.h)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"VIGILSNP", data[:8]
    out, pos = [], 24
    while pos < len(data):
        rtype, inst, length = struct.unpack_from("<IIQ", data, pos)
        out.append((rtype, inst, pos, data[pos + 24:pos + 24 + length]))
        pos += 24 + length
    return data, out


def vtpm_record(path):
    _, recs = records(path)
    [rec] = [r for r in recs if r[0] == EXTRA_DEVICE_STATE and r[1] == 0]
    return rec


def blob_flags(payload):
    """The swtpm blobs' flags in a vTPM record (migrate/vtpm_record.h, vtpm/swtpm_state.h)."""
    buf_len = struct.unpack_from("<I", payload, 12)[0]
    pos = 16 + buf_len + 4
    assert payload[pos:pos + 8] == b"VTPMST01"
    pos += 12
    flags = []
    for _ in range(3):
        btype, bflags, blen = struct.unpack_from("<III", payload, pos)
        flags.append((btype, bflags, blen))
        pos += 12 + blen
    return flags


def tree_contains(directory, needle):
    hits = []
    for base, _, files in os.walk(directory):
        for n in files:
            with open(os.path.join(base, n), "rb") as f:
                if needle in f.read():
                    hits.append(n)
    return hits


@unittest.skipIf(shutil.which("swtpm") is None, "swtpm is not installed (scripts/install-deps.sh)")
class VtpmSnapshot(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-vtpm-snap-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "root")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def host(self, name):
        h = HostTpm(self.path(name))
        self.addCleanup(h.close)
        return h

    def vigild(self, *args, root=None):
        d = Vigild(extra_args=["--vtpm-dir", root or self.root, *args])
        close = d.close

        def close_once():
            if not getattr(d, "closed", False):
                d.closed = True
                close()
        d.close = close_once
        self.addCleanup(close_once)
        return d

    def config(self, name, cmd):
        return write_domain_config(self.tmp, name, cmd, quote_cmd=True, extra_lines='vtpm = [ "" ]\n')

    def wait_console(self, d, name, marker, timeout=150):
        out = wait_for(lambda: marker in d.console(name) and d.console(name), timeout) or ""
        self.assertIn(marker, out, d.console(name)[-3000:])
        return out

    def round(self, d, name, tag):
        """One console line in, the guest's PCR 16, PCR 8 and NV secret out."""
        send_console(d, name, tag + "\n")
        out = self.wait_console(d, name, f"ROUND-{tag}", 60)
        part = out[out.index(f"GOT-{tag}"):]
        pcrs = dict(PCR.findall(part))
        nv = NV.search(part)
        self.assertTrue(nv and "16" in pcrs and "8" in pcrs, part)
        return pcrs["16"], pcrs["8"], nv.group(1)

    def test_save_restore_keeps_pcrs_and_nv_sealed_and_encrypted(self):
        host = self.host("host")
        a = self.vigild("--host-tpm", host.tcti)
        a.vigil("create", self.config("snap", JOB))
        out = self.wait_console(a, "snap", "READY")
        pcrs = dict(PCR.findall(out))
        self.assertEqual(pcrs["16"], PCR16_EXTENDED)
        pcr8 = pcrs["8"]
        self.assertEqual(self.round(a, "snap", "a0"), (PCR16_EXTENDED, pcr8, SECRET))

        # save: the domain goes; its vTPM record holds only blobs encrypted with its state key.
        one = self.path("one.snap")
        a.vigil("save", "snap", one)
        self.assertTrue(wait_for(lambda: "snap" not in a.domains(), 30))
        rtype, inst, offset, payload = vtpm_record(one)
        self.assertNotIn(SECRET.encode(), payload)
        flags = blob_flags(payload)
        self.assertEqual([f[0] for f in flags], [1, 2, 3])
        self.assertTrue(all(f[1] == 2 for f in flags if f[2] > 0), flags)  # PTM_STATE_FLAG_ENCRYPTED
        self.assertGreater(flags[0][2], 1000)

        # Restore into the same vigild: the guest reads the same PCR 16, PCR 8 and secret.
        a.vigil("restore", one)
        self.assertEqual(a.domains()["snap"]["state"], "running")
        self.assertEqual(self.round(a, "snap", "a1"), (PCR16_EXTENDED, pcr8, SECRET))
        [v] = json.loads(a.vigil("vtpm-list", "--json").stdout)
        self.assertEqual((v["status"], v["encrypted"]), ("running", True))

        # Corrupted records are refused naming the vTPM record, and nothing is left behind.
        a.vigil("save", "snap", self.path("two.snap"))
        self.assertTrue(wait_for(lambda: "snap" not in a.domains(), 30))
        data, _ = records(self.path("two.snap"))
        _, _, offset, payload = vtpm_record(self.path("two.snap"))
        bad = bytearray(data)
        bad[offset + 24 + len(payload) // 2] ^= 0x40
        with open(self.path("bad.snap"), "wb") as f:
            f.write(bad)
        r = a.vigil("restore", self.path("bad.snap"), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, f"vigil: restore: {self.path('bad.snap')}: snapshot: record EXTRA_DEVICE_STATE(0) "
                                   f"at offset {offset}: checksum mismatch\n")
        self.assertNotIn("snap", a.domains())

        # A vigild without the host TPM cannot open the sealed key: refused, never recreated.
        c = self.vigild()
        r = c.vigil("restore", self.path("two.snap"), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^vigil: restore: .*/two.snap: vTPM of domain 'snap': its state in '.*' is sealed to a host TPM; "
                                   r"start vigild with --host-tpm\n$")
        c.close()

        # Restore into a second vigild with the same host TPM and state directory.
        a.close()
        b = self.vigild("--host-tpm", host.tcti)
        b.vigil("restore", self.path("two.snap"))
        self.assertEqual(self.round(b, "snap", "b0"), (PCR16_EXTENDED, pcr8, SECRET))

    def test_unsealed_snapshot_restores_and_holds_the_state_in_clear(self):
        # Without a host TPM nothing is encrypted: the secret is visible in the record (which
        # shows the search of the sealed test would find it), and restore works the same.
        a = self.vigild()
        a.vigil("create", self.config("clear", JOB))
        out = self.wait_console(a, "clear", "READY")
        pcr8 = dict(PCR.findall(out))["8"]
        snap = self.path("clear.snap")
        a.vigil("save", "clear", snap)
        self.assertTrue(wait_for(lambda: "clear" not in a.domains(), 30))
        _, _, _, payload = vtpm_record(snap)
        self.assertIn(SECRET.encode(), payload)
        self.assertTrue(all(f[1] == 0 for f in blob_flags(payload)))
        self.assertTrue(tree_contains(os.path.join(self.root, "clear"), SECRET.encode()),
                        "an unsealed state directory holds the secret in clear")
        a.vigil("restore", snap)
        self.assertEqual(self.round(a, "clear", "c0"), (PCR16_EXTENDED, pcr8, SECRET))
        # Restoring a snapshot whose domain already runs is refused (name and state directory).
        r = a.vigil("restore", snap, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertNotEqual(r.stderr, "")
        # Another vigild with an empty state root: the snapshot alone brings the TPM along.
        other = os.path.join(self.tmp, "other-root")
        b = self.vigild(root=other)
        b.vigil("restore", snap)
        self.assertEqual(self.round(b, "clear", "o0"), (PCR16_EXTENDED, pcr8, SECRET))
        # ... and swtpm wrote the loaded state to the new state directory: it outlives the domain.
        b.vigil("destroy", "clear")
        b.vigil("create", self.config("clear", f"{T} nvread 0 && echo DONE"))
        self.assertIn(f"VTEST-TPM nv rc=0x0 {SECRET}", self.wait_console(b, "clear", "DONE"))

    def test_two_domains_have_independent_tpms(self):
        d = self.vigild()
        d.vigil("create", self.config("one", f"{T} ek 0 && {T} extend 16 && {T} pcrread 16 && echo DONE"))
        d.vigil("create", self.config("two", f"{T} ek 0 && echo READY && read x && {T} pcrread 16 && "
                                             f"{T} pcrread 8 && echo DONE"))
        one = self.wait_console(d, "one", "DONE")
        self.wait_console(d, "two", "READY")
        send_console(d, "two", "go\n")
        two = self.wait_console(d, "two", "DONE", 60)
        ek1, ek2 = EK.search(one), EK.search(two)
        self.assertTrue(ek1 and ek2, (one[-1000:], two[-1000:]))
        self.assertNotEqual(ek1.group(1), ek2.group(1), "each domain's TPM has its own endorsement seed")
        self.assertEqual(dict(PCR.findall(one))["16"], PCR16_EXTENDED)
        pcrs2 = dict(PCR.findall(two))
        self.assertEqual(pcrs2["16"], "0" * 64, "one's extend left two's PCR 16 at its reset value")
        # two's PCR 8 is still what its boot measured: the kernel file, extended from zeros.
        with open(os.path.join(os.environ["VIGIL_GUEST_DIR"], "Image"), "rb") as f:
            kernel = hashlib.sha256(f.read()).digest()
        self.assertEqual(pcrs2["8"], hashlib.sha256(bytes(32) + kernel).hexdigest())

    def test_nv_secret_survives_destroy_create_and_vigild_restart_never_in_clear(self):
        host = self.host("host")
        d = self.vigild("--host-tpm", host.tcti)
        d.vigil("create", self.config("nv", f"{T} nvwrite {SECRET} && {T} nvread 0 && echo DONE"))
        self.assertIn(f"VTEST-TPM nv rc=0x0 {SECRET}", self.wait_console(d, "nv", "DONE"))
        d.vigil("destroy", "nv")
        state = os.path.join(self.root, "nv")
        self.assertEqual(tree_contains(state, SECRET.encode()), [], "sealed state: no plaintext secret on disk")
        read_cfg = self.config("nv", f"{T} nvread 0 && echo DONE")
        d.vigil("create", read_cfg)
        self.assertIn(f"VTEST-TPM nv rc=0x0 {SECRET}", self.wait_console(d, "nv", "DONE"), "destroy + create")
        d.vigil("destroy", "nv")
        d.close()
        d2 = self.vigild("--host-tpm", host.tcti)
        d2.vigil("create", read_cfg)
        self.assertIn(f"VTEST-TPM nv rc=0x0 {SECRET}", self.wait_console(d2, "nv", "DONE"), "a vigild restart")
        d2.vigil("destroy", "nv")
        self.assertEqual(tree_contains(state, SECRET.encode()), [])


    def test_metrics_report_vtpm_up_commands_and_failures(self):
        d = self.vigild("--metrics", "127.0.0.1:0")

        def announced():
            d.log.flush()
            with open(d.log.name) as f:
                m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", f.read())
            return m and int(m.group(1))
        port = wait_for(announced, 10, step=0.05)
        self.assertTrue(port, "vigild did not print its metrics address")

        def scrape(name):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            m = re.search(r"^" + re.escape(name) + r'\{domain="m"\} (\d+)$', text, re.M)
            return int(m.group(1)) if m else None

        d.vigil("create", self.config("m", f"echo READY; while read x; do {T} getrandom 8; echo ROUND-$x; done"))
        self.wait_console(d, "m", "READY")
        self.assertEqual(scrape("vigil_domain_vtpm_up"), 1)
        self.assertEqual(scrape("vigil_domain_vtpm_failures_total"), 0)
        booted = scrape("vigil_domain_vtpm_commands_total")
        self.assertGreater(booted, 0, "the guest kernel's tpm_tis probe sent commands")
        send_console(d, "m", "r1\n")
        self.assertIn("VTEST-TPM random rc=0x0", self.wait_console(d, "m", "ROUND-r1", 60))
        self.assertGreaterEqual(scrape("vigil_domain_vtpm_commands_total"), booted + 1)

        # The domain's swtpm killed: down, and the guest's next command counts as a failure.
        [v] = json.loads(d.vigil("vtpm-list", "--json").stdout)
        os.kill(v["pid"], signal.SIGKILL)
        self.assertTrue(wait_for(lambda: scrape("vigil_domain_vtpm_up") == 0, 10, step=0.1))
        send_console(d, "m", "r2\n")
        self.assertIn("VTEST-TPM error", self.wait_console(d, "m", "ROUND-r2", 60))
        self.assertGreaterEqual(scrape("vigil_domain_vtpm_failures_total"), 1)
        self.assertGreaterEqual(scrape("vigil_domain_vtpm_commands_total"), booted + 2)


if __name__ == "__main__":
    unittest.main()
