"""Booted-guest tests for vigild's live dashboard (issue 13): headless Chromium (Debian's
`chromium`) loads the page while a CPU-bound domain and a quiet one run, and the test reads
what the page drew from the DOM it dumps: the page writes its sample counts and last values
into data- attributes (body[data-polls], tr[data-domain][data-cpu-samples], canvas[data-samples]).

Chromium runs with --virtual-time-budget: its clock runs ahead while no fetch is pending, so a
page that polls every second makes its polls in a fraction of the real time (vigild's own clock,
which the rates divide by, is real). Chromium refuses to run as root without --no-sandbox, and
these tests run as root in a container: the flag is passed for that reason only.

A screenshot of the page is kept as a test artifact (its path is printed): build/test-artifacts/
dashboard.png, or $VIGIL_ARTIFACT_DIR."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import VIGIL, write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.environ.get("VIGIL_ARTIFACT_DIR") or os.path.join(os.path.dirname(os.path.dirname(VIGIL)),
                                                                    "test-artifacts")
# What the guest prints; its command line (which the kernel echoes at boot) spells it with
# $v, so seeing it proves the loop runs.
HOSTILE = "<img src=x onerror=alert(42)>"


def chromium(url, *args, budget_ms=15000, timeout=120):
    """Runs headless Chromium on `url` with `args`; returns what it printed on stdout."""
    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *args, url]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if r.returncode != 0:
        raise AssertionError(f"chromium exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r.stdout


class Dom(html.parser.HTMLParser):
    """Attributes of the elements the tests look at, and whether any <img> exists."""

    def __init__(self, text):
        super().__init__()
        self.body, self.rows, self.canvases, self.images = {}, {}, {}, 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "tr" and "data-domain" in a:
            self.rows[a["data-domain"]] = a
        elif tag == "canvas":
            self.canvases[a.get("id")] = a
        elif tag == "img":
            self.images += 1


def announced_port(d, what):
    def port():
        d.log.flush()
        with open(d.log.name) as f:
            m = re.search(rf"{what} on http://127\.0\.0\.1:(\d+)/", f.read())
        return m and int(m.group(1))
    return wait_for(port, 10, step=0.05)


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.cfgdir = tempfile.TemporaryDirectory()
        self.addCleanup(self.cfgdir.cleanup)

    def start_vigild(self, *args):
        self.d = Vigild(extra_args=["--dashboard", "127.0.0.1:0", *args])
        self.addCleanup(self.d.close)
        self.port = announced_port(self.d, "dashboard")
        self.assertTrue(self.port, "vigild did not print its dashboard address")

    def test_busy_domain_appears_and_its_cpu_plot_moves(self):
        t0 = time.monotonic()
        self.start_vigild()
        # One domain, CPU-bound, with cache monitoring on: a cache thrasher (guest/tests/
        # vtest-thrash.c, streaming over 64 MiB, more than the modeled L3: memory traffic for the
        # bandwidth plot) beside a shell loop that prints markup every round (the page must show
        # it as text) and opens /dev/null on every inner round (syscalls for the event-rate
        # plot). A second domain would double the boot time on a loaded 2-core machine.
        loop = ("vtest-thrash stream 64 0 >/dev/null & v=$((6*7)); while :; do echo '<img src=x onerror=alert('$v')>'; "
                "i=0; while [ $i -lt 5000 ]; do i=$((i+1)); : </dev/null; done; done")
        self.d.vigil("create", write_domain_config(self.cfgdir.name, "busy", loop, quote_cmd=True, memory=256,
                                                   extra_lines="psr_cmt = 1\n"))
        # Waits read the dashboard's own JSON: what the page shows is the subject here.
        self.assertTrue(wait_for(lambda: HOSTILE in self._domain("busy").get("console_tail", ""), 180),
                        self._domain("busy"))
        # vm_event traffic: a syscall trace of the domain while the page runs.
        trace = subprocess.Popen([VIGIL, "--socket", self.d.sock, "trace", "busy", "--syscalls",
                                  "--count", "100000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (trace.kill(), trace.wait()))
        self.assertTrue(wait_for(lambda: self._domain("busy").get("vm_events", 0) > 0, 60),
                        "the trace produced no vm_events")

        t_booted = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/"
        text = chromium(url, "--dump-dom")
        t_dumped = time.monotonic()
        dom = Dom(text)
        polls = int(dom.body.get("data-polls", "0"))
        self.assertGreaterEqual(polls, 5, dom.body)
        self.assertIn("busy", dom.rows, dom.rows)
        busy = dom.rows["busy"]
        self.assertEqual(busy.get("data-state"), "running", busy)
        # The CPU plot moved: a sample per poll after the first, and the busy loop shows.
        self.assertGreaterEqual(int(busy["data-cpu-samples"]), polls - 2, busy)
        cpu = dom.canvases["plot-cpu"]
        self.assertGreaterEqual(int(cpu["data-samples"]), polls - 2, cpu)
        self.assertGreater(float(cpu["data-max"]), 10.0, cpu)
        # Cache occupancy comes from the busy domain's monitoring (psr_cmt = 1).
        occ = dom.canvases["plot-occupancy"]
        self.assertGreater(int(occ["data-samples"]), 0, occ)
        self.assertGreater(float(occ["data-max"]), 0, occ)
        bw = dom.canvases["plot-bandwidth"]
        self.assertGreater(int(bw["data-samples"]), 0, bw)
        self.assertGreater(float(bw["data-max"]), 0, bw)
        ev = dom.canvases["plot-events"]
        self.assertGreater(float(ev["data-max"]), 0, ev)
        # The guest's markup is text in a <pre>, never an element.
        self.assertEqual(dom.images, 0)
        self.assertIn(HOSTILE.replace("<", "&lt;").replace(">", "&gt;"), text)

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        if os.path.exists(shot):
            os.unlink(shot)
        chromium(url, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars",
                 budget_ms=40000)
        with open(shot, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 20_000)
        print(f"dashboard screenshot: {shot} (boot {t_booted - t0:.0f} s, page {t_dumped - t_booted:.0f} s, "
              f"screenshot {time.monotonic() - t_dumped:.0f} s)", file=sys.stderr)

    def test_token_file_requires_token_and_link_sets_cookie(self):
        token = "e2e-token-" + os.urandom(12).hex()
        path = os.path.join(self.cfgdir.name, "token")
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        self.start_vigild("--dashboard-token-file", path)
        url = f"http://127.0.0.1:{self.port}"
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/api/dashboard", timeout=5)
        self.assertEqual(e.exception.code, 401)
        req = urllib.request.Request(url + "/api/dashboard", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.status, 200)
        # Without the token the page loads nothing; with the link it polls through the cookie.
        refused = Dom(chromium(url + "/", "--dump-dom", budget_ms=3000))
        self.assertNotIn("data-polls", refused.body)
        dom = Dom(chromium(f"{url}/?token={token}", "--dump-dom", budget_ms=5000))
        self.assertGreaterEqual(int(dom.body.get("data-polls", "0")), 2, dom.body)

    def _domain(self, name):
        """The domain's entry in /api/dashboard ({} while it is not listed)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/dashboard", timeout=5) as r:
            doc = json.loads(r.read())
        return next((d for d in doc["domains"] if d["name"] == name), {})

if __name__ == "__main__":
    unittest.main()
