"""Save and restore of running domains (issue 11): vigil save / vigil restore on a booted guest.

A 256 MiB guest runs vtest-memcheck over 160 MiB (each pass writes a counter into every page
and checks the previous pass's value) while a shell loop appends numbered lines to a file on
its virtio-blk disk. It is saved with -c, saved, restored into the same vigild, saved again and
restored into a second vigild: the checker never reports a mismatch and keeps counting, the
guest's clock goes forward, the console takes input, and the disk file holds every line in
order when the guest has synced and powered off. Corrupt and foreign snapshots and a full disk
are refused with a sentence, and vigild keeps serving."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_devices import debugfs_cat, make_ext2  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

# The guest's job. The writer appends line-N to /mnt/log every 0.1 s until /tmp/stop exists;
# one line on the console (read) ends everything: the writer stops and records its count,
# the checker is killed, the disk is synced and unmounted.
def job(check_mib):
    return ("mount -t ext2 /dev/vda /mnt && "
            "(i=0; while [ ! -e /tmp/stop ]; do echo line-$i >> /mnt/log; i=$((i+1)); sleep 0.1; done; "
            "echo $i > /mnt/count) & "
            f"vtest-memcheck {check_mib} 0 100 & m=$!; "
            "read x; echo GOT-$x; touch /tmp/stop; kill $m; wait; sync; umount /mnt; echo ALL-DONE")


PASS = re.compile(r"memcheck: pass (\d+) ok t=([\d.]+) wall=([\d.]+)")


def passes(text):
    return [(int(n), float(t), float(w)) for n, t, w in PASS.findall(text)]


def last_pass(text):
    p = passes(text)
    return p[-1][0] if p else 0


def console(vigild, domain, seconds=0.5):
    """The domain's console history and what arrives within `seconds`."""
    return vigild.console(domain, seconds)


def send_console(vigild, domain, data):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(vigild.sock)
        s.sendall((json.dumps({"op": "console", "domain": domain}) + "\n").encode())
        time.sleep(0.3)
        s.sendall(data.encode())
        time.sleep(0.3)


class Migrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.a = Vigild()
        self.addCleanup(self.a.close)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def boot_checker(self, vigild, name="mc", memory=256, vcpus=2, extra_lines=""):
        img = self.path(f"{name}.img")
        make_ext2(img)
        cfg = write_domain_config(self.tmp.name, name, job(memory * 5 // 8), memory=memory, vcpus=vcpus, quote_cmd=True,
                                  extra_lines=f'disk = [ "{img}" ]\n' + extra_lines)
        vigild.vigil("create", cfg)
        self.assertTrue(wait_for(lambda: last_pass(console(vigild, name)) >= 2, 300),
                        console(vigild, name)[-2000:])
        return img, cfg

    def assert_no_mismatch(self, text):
        self.assertNotIn("MISMATCH", text, text[-3000:])

    def assert_keeps_counting(self, vigild, name, after_pass, what):
        self.assertTrue(wait_for(lambda: last_pass(console(vigild, name)) >= after_pass + 2, 120),
                        f"{what}: the checker stopped at pass {after_pass}:\n{console(vigild, name)[-2000:]}")

    def test_save_restore_keeps_memory_clock_console_and_disk(self):
        img, _ = self.boot_checker(self.a)
        # save -c: a copy on disk, the domain runs on.
        before = last_pass(console(self.a, "mc"))
        out = self.a.vigil("save", "-c", "mc", self.path("keep.snap")).stdout
        self.assertIn("saved domain mc", out)
        self.assertEqual(self.a.domains()["mc"]["state"], "running")
        self.assertGreater(os.path.getsize(self.path("keep.snap")), 1 << 20)
        self.assert_keeps_counting(self.a, "mc", before, "after save -c")

        # save: the domain is gone; restore into the same vigild.
        self.a.vigil("save", "mc", self.path("one.snap"))
        self.assertTrue(wait_for(lambda: "mc" not in self.a.domains(), 30))
        self.a.vigil("restore", self.path("one.snap"))
        self.assertEqual(self.a.domains()["mc"]["state"], "running")
        self.assert_keeps_counting(self.a, "mc", 0, "after restore into the same vigild")
        first = passes(console(self.a, "mc"))[0][0]
        self.assertGreater(first, before, "the restored checker started over instead of going on")

        # save again, restore into a second vigild process.
        self.a.vigil("save", "mc", self.path("two.snap"))
        self.assertTrue(wait_for(lambda: "mc" not in self.a.domains(), 30))
        b = Vigild()
        self.addCleanup(b.close)
        b.vigil("restore", "-p", self.path("two.snap"))
        self.assertEqual(b.domains()["mc"]["state"], "paused")
        time.sleep(1)
        self.assertEqual(last_pass(console(b, "mc")), 0, "a domain restored with -p ran")
        b.vigil("unpause", "mc")
        self.assert_keeps_counting(b, "mc", 0, "after restore into a second vigild")
        self.assertEqual(self.a.domains(), {})  # vigild A still serves, without the domain

        # The console takes input: the job ends, the disk is synced and the guest powers off.
        send_console(b, "mc", "stop\n")
        self.assertTrue(wait_for(lambda: "ALL-DONE" in console(b, "mc"), 120), console(b, "mc")[-2000:])
        text = console(b, "mc")
        self.assertIn("GOT-stop", text)
        self.assert_no_mismatch(text)
        self.assertTrue(wait_for(lambda: b.domains()["mc"]["state"] == "shutdown", 60))
        b.vigil("destroy", "mc")

        # Every pass seen after each restore is later than the one before it, and the
        # guest's clocks never went back.
        p = passes(text)
        self.assertGreater(p[0][0], first)
        for (n0, t0, w0), (n1, t1, w1) in zip(p, p[1:]):
            self.assertEqual(n1, n0 + 1)
            self.assertGreaterEqual(t1, t0)
            self.assertGreaterEqual(w1, w0)

        # The disk file: line-0 .. line-(count-1), each once, in order.
        count = int(debugfs_cat(img, "count").strip())
        lines = debugfs_cat(img, "log").split()
        self.assertGreater(count, 20)
        self.assertEqual(lines, [f"line-{i}" for i in range(count)])

    def test_corrupt_and_foreign_snapshots_are_refused(self):
        _, cfg = self.boot_checker(self.a, memory=128, vcpus=1)
        snap = self.path("good.snap")
        self.a.vigil("save", "-c", "mc", snap)
        self.a.vigil("destroy", "mc")
        with open(snap, "rb") as f:
            data = f.read()

        def refused(name, content, *extra):
            p = self.path(name)
            with open(p, "wb") as f:
                f.write(content)
            r = self.a.vigil("restore", p, *extra, check=False)
            self.assertNotEqual(r.returncode, 0, f"{name} was restored")
            self.assertEqual(self.a.domains(), {}, f"{name} left a domain behind")
            return r.stderr

        err = refused("truncated.snap", data[:len(data) // 2])
        self.assertRegex(err, r"record [A-Z_]+\(\d+\) at offset \d+: .*truncated", err)
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x10
        err = refused("flipped.snap", bytes(flipped))
        self.assertRegex(err, r"record [A-Z_]+\(\d+\) at offset \d+: checksum mismatch", err)
        err = refused("empty.snap", b"")
        self.assertIn("snapshot", err)
        # The same snapshot with a config for 64 MiB of RAM.
        other = write_domain_config(self.tmp.name, "small", "true", memory=64)
        err = refused("ram.snap", data, other)
        self.assertIn("RAM_INFO", err)
        # vigild keeps serving: the good snapshot still restores.
        self.a.vigil("restore", snap)
        self.assertTrue(wait_for(lambda: last_pass(console(self.a, "mc")) >= 1, 60))
        self.assert_no_mismatch(console(self.a, "mc"))

    def test_full_disk_and_unsaveable_devices_leave_the_domain_running(self):
        self.boot_checker(self.a, memory=256, vcpus=1)
        full = self.path("full")
        os.mkdir(full)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", full], check=True)
        self.addCleanup(subprocess.run, ["umount", full])
        r = self.a.vigil("save", "mc", os.path.join(full, "x.snap"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"save: {full}/x.snap: No space left on device", r.stderr)
        self.assertEqual(os.listdir(full), [], "a partial snapshot was left behind")
        self.assertEqual(self.a.domains()["mc"]["state"], "running")
        self.assert_keeps_counting(self.a, "mc", last_pass(console(self.a, "mc")), "after a failed save")
        # An existing file is never replaced.
        existing = self.path("existing")
        with open(existing, "w") as f:
            f.write("keep me")
        r = self.a.vigil("save", "mc", existing, check=False)
        self.assertIn(f"save: {existing}: File exists", r.stderr)
        with open(existing) as f:
            self.assertEqual(f.read(), "keep me")
        self.assertEqual(self.a.domains()["mc"]["state"], "running")

        # A domain with a user-mode NIC (libslirp) cannot be saved, and says which device.
        cfg = write_domain_config(self.tmp.name, "net", "sleep 600", memory=64,
                                  extra_lines='vif = [ "model=user" ]\n')
        self.a.vigil("create", cfg)
        self.assertTrue(wait_for(lambda: "VIGIL-GUEST: init started" in console(self.a, "net"), 120))
        r = self.a.vigil("save", "net", self.path("net.snap"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("device virtio-net cannot be saved", r.stderr)
        self.assertFalse(os.path.exists(self.path("net.snap")))
        self.assertEqual(self.a.domains()["net"]["state"], "running")

    def test_monitors_are_detached_with_an_event_before_a_save(self):
        self.boot_checker(self.a, memory=128, vcpus=1)
        r = self.a.request({"op": "monitor-open", "domain": "mc", "name": "watcher",
                            "events": [{"type": "request", "sync": False}]})
        self.assertTrue(r.get("ok"), r)
        with socket.socket(socket.AF_UNIX) as mon:
            mon.connect("\0" + r["socket"])
            mon.settimeout(30)
            buf = b""
            while b'"ready"' not in buf:
                chunk = mon.recv(1 << 16)
                self.assertTrue(chunk, "the monitor session ended before it was ready")
                buf += chunk
            self.a.vigil("save", "-c", "mc", self.path("m.snap"))
            # Events may come before it; then the detached line, then the end of the session.
            while True:
                chunk = mon.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
        lines = [json.loads(l) for l in buf.decode().splitlines() if l.strip()]
        detached = [l for l in lines if l.get("event") == "detached"]
        self.assertEqual(len(detached), 1, lines[-5:])
        self.assertEqual(detached[0]["reason"], "the domain is being saved")
        sessions = self.a.request({"op": "monitor-list", "domain": "mc"})["sessions"]
        self.assertEqual([(s["state"], s.get("end_reason")) for s in sessions],
                         [("closed", "the domain is being saved")])
        self.assertEqual(self.a.domains()["mc"]["state"], "running")


if __name__ == "__main__":
    unittest.main()
