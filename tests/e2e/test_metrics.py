"""Booted-guest tests for vigild's Prometheus metrics (issue 13): a real Prometheus server
(Debian's `prometheus`) scrapes vigild while a busy domain and a disk-writing domain run, and
the test asks Prometheus, through its HTTP API, what it saw."""
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
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Prometheus:
    """A Prometheus server scraping `target` every second, with its data in a temp dir."""

    def __init__(self, target):
        self.dir = tempfile.TemporaryDirectory()
        cfg = os.path.join(self.dir.name, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: vigild\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        self.port = free_port()
        self.log = open(os.path.join(self.dir.name, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir.name}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.read_log()[-3000:]}")
            try:
                return http_get(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200
            except OSError:
                return False
        if not wait_for(ready, 60, step=0.2):
            raise AssertionError(f"prometheus never became ready:\n{self.read_log()[-3000:]}")

    def read_log(self):
        self.log.seek(0)
        return self.log.read()

    def query(self, expr):
        """The instant vector for `expr` as {frozenset(labels): value}."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(url)[1])
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return {frozenset((k, v) for k, v in r["metric"].items() if k != "__name__"): float(r["value"][1])
                for r in body["data"]["result"]}

    def value(self, expr):
        """The single value of `expr`, or None while Prometheus has no sample for it."""
        v = self.query(expr)
        if len(v) > 1:
            raise AssertionError(f"{expr!r} has {len(v)} series: {v}")
        return next(iter(v.values())) if v else None

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.dir.cleanup()


class Metrics(unittest.TestCase):
    def setUp(self):
        self.d = Vigild(extra_args=["--metrics", "127.0.0.1:0"])
        self.addCleanup(self.d.close)
        self.cfgdir = tempfile.TemporaryDirectory()
        self.addCleanup(self.cfgdir.cleanup)

        def announced():
            self.d.log.flush()
            with open(self.d.log.name) as f:
                m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", f.read())
            return m and int(m.group(1))
        self.port = wait_for(announced, 10, step=0.05)
        self.assertTrue(self.port, "vigild did not print its metrics address")

    def test_prometheus_scrapes_cpu_state_disk_and_vm_events(self):
        # The exposition passes Prometheus' own linter (names, units, _total on counters).
        status, text = http_get(f"http://127.0.0.1:{self.port}/metrics")
        self.assertEqual(status, 200)
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(lint.returncode, 0, lint.stdout)

        img = os.path.join(self.cfgdir.name, "disk.img")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        self.d.vigil("create", write_domain_config(
            self.cfgdir.name, "busy", "echo BUSY-START; while :; do :; done", quote_cmd=True))
        self.d.vigil("create", write_domain_config(
            self.cfgdir.name, "disk",
            "while :; do dd if=/dev/zero of=/dev/vda bs=64k count=64 conv=fsync 2>/dev/null; echo WROTE; sleep 1; done",
            quote_cmd=True, extra_lines=f'disk = [ "{img}" ]\n'))
        self.assertTrue(wait_for(lambda: "BUSY-START" in self.d.console("busy", 0), 180),
                        self.d.console("busy", 0)[-2000:])
        self.assertTrue(wait_for(lambda: self.d.console("disk", 0).count("WROTE") >= 2, 180),
                        self.d.console("disk", 0)[-2000:])

        # vm_event traffic for the disk domain: a syscall trace of 100 events.
        trace = self.d.vigil("trace", "disk", "--syscalls", "--count", "100").stdout
        self.assertEqual(len([l for l in trace.splitlines() if l.strip()]), 100)

        # vigild's own text first; then what Prometheus scraped and stored.
        _, text = http_get(f"http://127.0.0.1:{self.port}/metrics")
        self.assertIn('vigil_domain_memory_bytes{domain="busy"} 134217728', text)
        events = re.search(r'^vigil_vm_events_total\{domain="disk"\} (\d+)$', text, re.M)
        self.assertTrue(events, text)
        self.assertGreaterEqual(int(events.group(1)), 100)

        prom = Prometheus(f"127.0.0.1:{self.port}")
        self.addCleanup(prom.close)
        self.assertTrue(wait_for(lambda: prom.value('up{job="vigild"}') == 1, 30, step=0.5),
                        prom.query("up"))
        # The busy domain's CPU time grows by at least a second of host time as Prometheus watches.
        first = wait_for(lambda: prom.value('vigil_domain_cpu_seconds_total{domain="busy"}'), 30, step=0.5)
        self.assertTrue(first)
        self.assertTrue(wait_for(
            lambda: (prom.value('vigil_domain_cpu_seconds_total{domain="busy"}') or 0) > first + 1.0, 60),
            (first, prom.value('vigil_domain_cpu_seconds_total{domain="busy"}')))
        self.assertEqual(prom.value('vigil_domain_state{domain="busy",state="running"}'), 1)
        self.assertEqual(prom.value('sum(vigil_vcpu_state{domain="busy"})'), 1)
        # The disk domain wrote 4 MiB a round, at least twice.
        self.assertGreaterEqual(prom.value('vigil_disk_written_bytes_total{domain="disk",disk="0"}') or 0, 8 << 20)
        self.assertGreaterEqual(prom.value('vigil_disk_write_requests_total{domain="disk",disk="0"}') or 0, 2)
        self.assertGreaterEqual(prom.value('vigil_disk_flush_requests_total{domain="disk",disk="0"}') or 0, 1)
        self.assertEqual(prom.value('vigil_disk_errors_total{domain="disk",disk="0"}'), 0)
        self.assertGreaterEqual(prom.value('vigil_vm_events_total{domain="disk"}') or 0, 100)
        self.assertEqual(prom.value('vigil_domains'), 2)

        # A paused domain shows as paused and its CPU time stops.
        self.d.vigil("pause", "busy")
        self.assertTrue(wait_for(
            lambda: prom.value('vigil_domain_state{domain="busy",state="paused"}') == 1, 30, step=0.5))
        self.assertEqual(prom.value('vigil_domain_state{domain="busy",state="running"}'), 0)
        self.assertTrue(wait_for(lambda: prom.value(
            'rate(vigil_domain_cpu_seconds_total{domain="busy"}[3s])') == 0, 30, step=0.5),
            prom.value('rate(vigil_domain_cpu_seconds_total{domain="busy"}[3s])'))


if __name__ == "__main__":
    unittest.main()
