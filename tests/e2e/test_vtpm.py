"""vTPM 2.0 (issue 9): a booted guest with `vigil run --vtpm DIR` sees a TPM 2.0 on the TIS
interface, backed by its own swtpm process."""
import base64
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import VIGIL, GuestTestCase, boot, guest_dir  # noqa: E402


def extend(pcr, data):
    return hashlib.sha256(pcr + hashlib.sha256(data).digest()).digest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


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
        # Nothing is measured into these PCRs without --firmware: all zeros after TPM2_Startup.
        for i in (0, 7, 16):
            self.assertIn(f"pcr{i}=" + "0" * 64, out)
        self.assertTrue(os.path.isfile(os.path.join(self.state, "tpm2-00.permall")),
                        os.listdir(self.state))

    def test_measured_boot_pcrs_match_host_digests(self):
        r = boot("for i in 1 8 9; do echo pcr$i=$(cat /sys/class/tpm/tpm0/pcr-sha256/$i); done; "
                 "echo fdt=$(sha256sum /sys/firmware/fdt); cat /proc/cmdline",
                 extra_args=["--vtpm", self.state], timeout=180)
        self.assertBooted(r)
        out = r.command_output()
        pcrs = {int(m.group(1)): bytes.fromhex(m.group(2)) for m in re.finditer(r"pcr(\d+)=([0-9A-Fa-f]{64})", out)}
        self.assertEqual(sorted(pcrs), [1, 8, 9], out)
        zero = bytes(32)
        g = guest_dir()
        self.assertEqual(pcrs[8].hex(), extend(zero, read(os.path.join(g, "Image"))).hex(), "PCR 8 = kernel")
        self.assertEqual(pcrs[9].hex(), extend(zero, read(os.path.join(g, "initramfs.cpio.gz"))).hex(), "PCR 9 = initrd")
        # PCR 1: the DTB the guest got (its sha256, from /sys/firmware/fdt), then the bootargs.
        fdt = re.search(r"fdt=([0-9a-f]{64})", out).group(1)
        bootargs = out.strip().split("\n")[-1].strip()
        self.assertIn("vigil.cmd=", bootargs)
        pcr1 = hashlib.sha256(hashlib.sha256(zero + bytes.fromhex(fdt)).digest() +
                              hashlib.sha256(bootargs.encode()).digest()).digest()
        self.assertEqual(pcrs[1].hex(), pcr1.hex(), "PCR 1 = DTB, then bootargs")

    def test_event_log_replays_to_the_pcrs(self):
        r = boot("mount -t securityfs none /sys/kernel/security; echo LOG-BEGIN; "
                 "base64 /sys/kernel/security/tpm0/binary_bios_measurements; echo LOG-END; "
                 "for i in 1 8 9; do echo pcr$i=$(cat /sys/class/tpm/tpm0/pcr-sha256/$i); done; "
                 "echo fdt=$(sha256sum /sys/firmware/fdt); cat /proc/cmdline",
                 extra_args=["--vtpm", self.state], timeout=180)
        self.assertBooted(r)
        out = r.command_output()
        b64 = re.search(r"LOG-BEGIN\s*\n(.*?)LOG-END", out, re.S)
        self.assertTrue(b64, out)
        log = base64.b64decode("".join(b64.group(1).split()))
        # TCG2 crypto-agile: the SHA-1-format Spec ID header, then TCG_PCR_EVENT2 records.
        pcr, etype = struct.unpack_from("<II", log, 0)
        self.assertEqual((pcr, etype), (0, 3), "EV_NO_ACTION header")
        (hsize,) = struct.unpack_from("<I", log, 28)
        spec = log[32:32 + hsize]
        self.assertEqual(spec[:16], b"Spec ID Event03\0")
        self.assertEqual(struct.unpack_from("<IHH", spec, 24), (1, 0x000B, 32), "one bank: SHA-256")
        at, events = 32 + hsize, []
        while at < len(log):
            pcr, etype, count, alg = struct.unpack_from("<IIIH", log, at)
            self.assertEqual((count, alg), (1, 0x000B))
            digest = log[at + 14:at + 46]
            (size,) = struct.unpack_from("<I", log, at + 46)
            events.append((pcr, etype, digest, log[at + 50:at + 50 + size]))
            at += 50 + size
        self.assertEqual(at, len(log))
        g = guest_dir()
        fdt = bytes.fromhex(re.search(r"fdt=([0-9a-f]{64})", out).group(1))
        bootargs = out.strip().split("\n")[-1].strip().encode()
        sha = lambda path: hashlib.sha256(read(os.path.join(g, path))).digest()  # noqa: E731
        self.assertEqual(events, [(8, 0xC, sha("Image"), b"linux"), (9, 0xC, sha("initramfs.cpio.gz"), b"initrd"),
                                  (1, 0xB, fdt, b"dts"), (1, 0xA, hashlib.sha256(bootargs).digest(), bootargs)])
        replay = {}
        for pcr, _, digest, _ in events:
            replay[pcr] = hashlib.sha256(replay.get(pcr, bytes(32)) + digest).digest()
        for i in (1, 8, 9):
            self.assertIn(f"PCR{i}={replay[i].hex().upper()}", out.upper())

    def test_guest_program_gets_random_bytes_and_reads_pcrs_through_tpmrm0(self):
        r = boot("vtest-tpm2 /dev/tpmrm0 getrandom 16; vtest-tpm2 /dev/tpmrm0 getrandom 16; "
                 "vtest-tpm2 /dev/tpmrm0 pcrread 8; vtest-tpm2 /dev/tpmrm0 pcrread 16",
                 extra_args=["--vtpm", self.state], timeout=180)
        self.assertBooted(r)
        out = r.command_output()
        randoms = re.findall(r"VTEST-TPM random rc=0x0 ([0-9a-f]{32})\n", out)
        self.assertEqual(len(randoms), 2, out)
        self.assertNotEqual(randoms[0], randoms[1])
        pcr8 = re.search(r"VTEST-TPM pcr 8 rc=0x0 ([0-9a-f]{64})", out).group(1)
        self.assertEqual(pcr8, extend(bytes(32), read(os.path.join(guest_dir(), "Image"))).hex())
        self.assertIn("VTEST-TPM pcr 16 rc=0x0 " + "0" * 64, out)

    def test_killed_tpm_process_gives_guest_errors_not_a_hang(self):
        g = guest_dir()
        cmd = ("vtest-tpm2 /dev/tpmrm0 getrandom 8; sleep 4; vtest-tpm2 /dev/tpmrm0 getrandom 8; "
               "vtest-tpm2 /dev/tpm0 getrandom 8; echo guest-still-running")
        proc = subprocess.Popen([VIGIL, "run", "--kernel", os.path.join(g, "Image"),
                                 "--initrd", os.path.join(g, "initramfs.cpio.gz"),
                                 "--append", f"console=ttyS0 quiet vigil.cmd={cmd}",
                                 "--vtpm", self.state, "--timeout", "120"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = b""
        try:
            while b"VTEST-TPM random rc=0x0" not in out:
                line = proc.stdout.readline()
                self.assertTrue(line, "guest ended before its first TPM command: " + out.decode(errors="replace"))
                out += line
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = [int(p) for p in f.read().split()]
            self.assertEqual(len(children), 1, "one swtpm process per vTPM")
            with open(f"/proc/{children[0]}/comm") as f:
                self.assertEqual(f.read().strip(), "swtpm")
            if os.geteuid() == 0:
                # Run as root, vigil gives the swtpm the uid owning its state directory, not root.
                with open(f"/proc/{children[0]}/status") as f:
                    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
                owner = os.stat(self.state).st_uid
                self.assertNotEqual(owner, 0)
                self.assertEqual(uids, (str(owner),) * 3)
                self.assertEqual(os.stat(self.state).st_mode & 0o777, 0o700)
            os.kill(children[0], signal.SIGKILL)
            t0 = time.monotonic()
            rest, err = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = (out + rest).decode(errors="replace")
        err = err.decode(errors="replace")
        self.assertEqual(proc.returncode, 0, err + out[-3000:])
        self.assertIn("guest-still-running", out)
        self.assertLess(time.monotonic() - t0, 60, "the guest's TPM commands must fail promptly")
        self.assertEqual(out.count("VTEST-TPM random rc=0x0"), 1, out)
        self.assertGreaterEqual(out.count("VTEST-TPM error"), 2, out)
        self.assertRegex(err, rf"swtpm \(pid {children[0]}\) of vTPM '.*' failed a guest command \(.*killed by signal 9")
        self.assertEqual(len(re.findall(r"failed a guest command", err)), 1, "one log line, not one per command")

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
