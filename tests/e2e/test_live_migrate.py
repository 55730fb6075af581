"""Live migration between two vigild processes over loopback (issue 11, part 3).

A 256 MiB guest runs vtest-memcheck over 160 MiB (each pass writes a counter into every page
and checks the previous pass's value) while a shell loop appends numbered lines to a file on
its virtio-blk disk (shared: the same path for both vigilds). It is migrated A -> B -> A ...
while it runs: the checker never reports a mismatch and keeps counting, the guest's clocks go
forward, the console takes input at the end, and the disk file holds every line in order.
A peer with the wrong token is refused before anything is parsed, a link cut during the RAM
rounds or just before the commit (a proxy in this file) and a cancel leave the source running
and nothing on the destination."""
import os
import re
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_devices import debugfs_cat, make_ext2  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_migrate import console, job, last_pass, passes, send_console  # noqa: E402

MIGRATIONS = int(os.environ.get("VIGIL_LIVE_MIGRATIONS", "10"))


def listen_port(vigild):
    """The port vigild --migrate-listen 127.0.0.1:0 picked (it logs it at startup)."""
    found = []

    def look():
        vigild.log.flush()
        with open(vigild.log.name) as f:
            m = re.search(r"accepting migrations on port (\d+)", f.read())
        if m:
            found.append(int(m.group(1)))
        return bool(found)

    assert wait_for(look, 20), "vigild did not report its migration port"
    return found[0]


def log_text(vigild):
    vigild.log.flush()
    with open(vigild.log.name) as f:
        return f.read()


READY = 5  # migrate/live.cpp Kind::kReady


class CuttingProxy:
    """Forwards one TCP connection to `port`, then cuts both directions: after `up_limit`
    bytes from the source, or when the destination's answer of kind `down_kind` arrives
    (not forwarded). After the handshake (64 + 2 bytes) the destination only sends 16-byte
    headers without payload (u32 kind | u32 0 | u64 0), until an ERROR."""

    def __init__(self, port, up_limit=None, down_kind=None):
        self.target, self.up_limit, self.down_kind = port, up_limit, down_kind
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        client, _ = self.srv.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        counts = {"up": 0, "down": 0}

        def pump(src, dst, key, limit):
            try:
                while not self.cut.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    if limit is not None and counts[key] + len(data) >= limit:
                        dst.sendall(data[:max(0, limit - counts[key] - 1)]) if key == "up" else None
                        break
                    counts[key] += len(data)
                    dst.sendall(data)
            except OSError:
                pass
            self.cut.set()
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def pump_down():
            buf, forwarded = b"", 0
            try:
                while not self.cut.is_set():
                    data = server.recv(65536)
                    if not data:
                        break
                    buf += data
                    while True:
                        need = 66 if forwarded < 66 else 16
                        if len(buf) < need:
                            break
                        chunk, buf = buf[:need], buf[need:]
                        if forwarded >= 66 and int.from_bytes(chunk[:4], "little") == self.down_kind:
                            raise OSError("cut")
                        client.sendall(chunk)
                        forwarded += need
            except OSError:
                pass
            self.cut.set()
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        if self.down_kind is None:
            threading.Thread(target=pump, args=(server, client, "down", None), daemon=True).start()
        else:
            threading.Thread(target=pump_down, daemon=True).start()
        pump(client, server, "up", self.up_limit)

    def close(self):
        self.srv.close()


class LiveMigrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.token = self.path("token")
        self.write_token(self.token, "correct horse battery staple")
        args = ["--migrate-listen", "127.0.0.1:0", "--migrate-token-file", self.token]
        self.a = Vigild(extra_args=args)
        self.addCleanup(self.a.close)
        self.b = Vigild(extra_args=args)
        self.addCleanup(self.b.close)
        self.port = {id(self.a): listen_port(self.a), id(self.b): listen_port(self.b)}

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write_token(self, path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (text + "\n").encode())
        os.close(fd)

    def boot_checker(self, memory=256, vcpus=2):
        img = self.path("mc.img")
        make_ext2(img)
        cfg = write_domain_config(self.tmp.name, "mc", job(memory * 5 // 8), memory=memory, vcpus=vcpus,
                                  quote_cmd=True, extra_lines=f'disk = [ "{img}" ]\n')
        self.a.vigil("create", cfg)
        self.assertTrue(wait_for(lambda: last_pass(console(self.a, "mc")) >= 2, 300), console(self.a, "mc")[-2000:])
        return img

    def migrate(self, src, dst_port, *extra, check=True):
        return src.vigil("migrate", "mc", f"127.0.0.1:{dst_port}", *extra, check=check)

    def assert_runs_on(self, vigild, what):
        self.assertEqual(vigild.domains().get("mc", {}).get("state"), "running", what)
        before = last_pass(console(vigild, "mc"))
        self.assertTrue(wait_for(lambda: last_pass(console(vigild, "mc")) > before, 120),
                        f"{what}: the checker stopped at pass {before}:\n{console(vigild, 'mc')[-2000:]}")
        self.assertNotIn("MISMATCH", console(vigild, "mc"))

    def test_back_and_forth_while_running(self):
        img = self.boot_checker()
        here, there = self.a, self.b
        downtimes = []
        for n in range(MIGRATIONS):
            before = last_pass(console(here, "mc"))
            out = self.migrate(here, self.port[id(there)]).stdout
            m = re.search(r"downtime ([\d.]+) ms", out)
            self.assertIsNotNone(m, out)
            downtimes.append(float(m.group(1)))
            self.assertNotIn("mc", here.domains(), f"migration {n}: the source kept its copy")
            self.assertEqual(there.domains()["mc"]["state"], "running")
            # The checker goes on from where it was (its passes continue, not start over).
            self.assertTrue(wait_for(lambda: last_pass(console(there, "mc")) > before, 120),
                            f"migration {n}: no pass after {before}:\n{console(there, 'mc')[-2000:]}")
            self.assertNotIn("MISMATCH", console(there, "mc"))
            here, there = there, here
        print(f"\n{MIGRATIONS} migrations, downtime ms: {downtimes}", file=sys.stderr)
        # The console takes input: the job ends, the disk is synced and the guest powers off.
        send_console(here, "mc", "stop\n")
        self.assertTrue(wait_for(lambda: "ALL-DONE" in console(here, "mc"), 120), console(here, "mc")[-2000:])
        text = console(here, "mc")
        self.assertIn("GOT-stop", text)
        self.assertNotIn("MISMATCH", text)
        self.assertTrue(wait_for(lambda: here.domains()["mc"]["state"] == "shutdown", 60))
        here.vigil("destroy", "mc")
        p = passes(text)
        for (n0, t0, w0), (n1, t1, w1) in zip(p, p[1:]):
            self.assertEqual(n1, n0 + 1)
            self.assertGreaterEqual(t1, t0, "the guest's monotonic clock went back")
            self.assertGreaterEqual(w1, w0)
        count = int(debugfs_cat(img, "count").strip())
        lines = debugfs_cat(img, "log").split()
        self.assertGreater(count, 10)
        self.assertEqual(lines, [f"line-{i}" for i in range(count)])

    def test_wrong_token_is_refused(self):
        self.boot_checker(memory=128, vcpus=1)
        other = self.path("other-token")
        self.write_token(other, "not the right token at all")
        c = Vigild(extra_args=["--migrate-listen", "127.0.0.1:0", "--migrate-token-file", other])
        self.addCleanup(c.close)
        r = self.migrate(self.a, listen_port(c), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("authentication", r.stderr)
        self.assertEqual(c.domains(), {})
        self.assertTrue(wait_for(lambda: "refused: authentication failed" in log_text(c), 10), log_text(c))
        self.assert_runs_on(self.a, "after a refused peer")
        # A peer that sends garbage instead of the greeting is dropped the same way.
        with socket.create_connection(("127.0.0.1", self.port[id(self.b)])) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 100)
            s.settimeout(15)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
        self.assertTrue(wait_for(lambda: "bad greeting" in log_text(self.b), 10), log_text(self.b))
        self.assertEqual(self.b.domains(), {})

    def check_cut(self, **limits):
        proxy = CuttingProxy(self.port[id(self.b)], **limits)
        self.addCleanup(proxy.close)
        r = self.migrate(self.a, proxy.port, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertTrue(wait_for(lambda: self.b.domains() == {}, 30), self.b.domains())
        self.assert_runs_on(self.a, f"after a link cut {limits}")
        return r.stderr

    def test_link_cut_during_ram_rounds_and_before_commit(self):
        self.boot_checker(memory=256, vcpus=1)
        self.check_cut(up_limit=1 << 20)
        # READY is held back: the destination has built the domain paused and waits for a
        # COMMIT that never comes.
        err = self.check_cut(down_kind=READY)
        self.assertNotIn("after the commit", err)
        self.assertTrue(wait_for(lambda: "refused" in log_text(self.b), 10))
        # And a clean migration still works afterwards.
        self.migrate(self.a, self.port[id(self.b)])
        self.assert_runs_on(self.b, "after the cuts, a full migration")

    def test_guest_outdirtying_the_budget_is_cancelled_by_policy(self):
        # Every page of 160 MiB rewritten continuously against a 1 ms budget: never converges.
        cfg = write_domain_config(self.tmp.name, "mc", "vtest-memcheck 160 0 0", memory=256, vcpus=1,
                                  quote_cmd=True)
        self.a.vigil("create", cfg)
        self.assertTrue(wait_for(lambda: last_pass(console(self.a, "mc")) >= 3, 300))
        r = self.migrate(self.a, self.port[id(self.b)], "--downtime", "1", check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("cancelled: the guest dirties memory faster than the link carries it: 5 rounds without progress",
                      r.stderr)
        self.assertTrue(wait_for(lambda: self.b.domains() == {}, 30), self.b.domains())
        self.assert_runs_on(self.a, "after the policy cancelled the migration")

    def test_cancel_keeps_the_source_running(self):
        self.boot_checker(memory=256, vcpus=1)
        self.migrate(self.a, self.port[id(self.b)], "--bandwidth", "1", "--no-wait")
        self.assertTrue(wait_for(lambda: self.a.request({"op": "migrate-status", "domain": "mc"}).get("phase")
                                 == "precopy", 30))
        listed = self.a.vigil("list", "-l").stdout
        self.assertRegex(listed, r"migration: precopy, round \d+, \d+ bytes sent")
        self.a.vigil("migrate-cancel", "mc")
        self.assertTrue(wait_for(lambda: self.a.request({"op": "migrate-status", "domain": "mc"}).get("phase")
                                 == "cancelled", 30))
        self.assertTrue(wait_for(lambda: self.b.domains() == {}, 30), self.b.domains())
        self.assert_runs_on(self.a, "after a cancel")


if __name__ == "__main__":
    unittest.main()
