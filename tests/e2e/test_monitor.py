"""Booted-guest tests for vm_event monitoring (issue 4): `vigil trace`, `vigil protect` and
`vigil monitor` watch (and steer) a running Linux guest from outside; guest/tests/vtest-monitor.c
is the guest side."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import guest_dir, write_domain_config, VIGIL  # noqa: E402
from test_domains import Vigild, ticks, wait_for  # noqa: E402

SYS_WRITE, SYS_GETPPID = 64, 173
EBADF = -9


def write_config(directory, name, cmd, vcpus=1):
    return write_domain_config(directory, name, cmd, vcpus=vcpus, quote_cmd=True)


def symbol(name):
    with open(os.path.join(guest_dir(), "System.map")) as f:
        for line in f:
            addr, _, sym = line.split()
            if sym == name:
                return int(addr, 16)
    raise KeyError(name)


class Monitor(unittest.TestCase):
    def setUp(self):
        self.d = Vigild()
        self.cfgdir = tempfile.TemporaryDirectory()
        self.clients = []

    def tearDown(self):
        for p in self.clients:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        log = self.d.close()
        self.cfgdir.cleanup()
        if "vigild" in os.environ.get("VIGIL_TEST_VERBOSE", ""):
            print(f"vigild log:\n{log[-3000:]}")

    def boot(self, name, cmd, marker, vcpus=1):
        self.d.vigil("create", write_config(self.cfgdir.name, name, cmd, vcpus))
        ok = wait_for(lambda: marker in self.d.console(name, 0), 300)
        self.assertTrue(ok, f"the guest never printed {marker!r}:\n{self.d.console(name, 0)[-2000:]}")

    def vigil_lines(self, *args, timeout=120):
        r = self.d.vigil(*args)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def spawn(self, *args):
        p = subprocess.Popen([VIGIL, "--socket", self.d.sock, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.clients.append(p)
        return p

    # ---- system calls ----

    def test_trace_shows_guest_syscalls_with_numbers_args_and_returns(self):
        self.boot("traced", "vtest-monitor syscalls 1000000000 & while :; do sleep 1000; done", "VTEST-MON pid=")
        pid = int(re.search(r"VTEST-MON pid=(\d+)", self.d.console("traced", 0)).group(1))
        events = self.vigil_lines("trace", "traced", "--syscalls", "--count", "200")
        self.assertEqual(len(events), 200)
        writes = [e for e in events if e["nr"] == SYS_WRITE and e["args"][0] == 777]
        self.assertTrue(writes, events[:10])
        for e in writes:
            self.assertEqual(e["args"][1:3], [0x5157, 4242])
            self.assertEqual(e["pid"], pid)
            self.assertEqual(e["comm"], "vtest-monitor")
        returns = [e for e in writes if e["event"] == "return"]
        self.assertTrue(returns)
        self.assertTrue(all(e["ret"] == EBADF for e in returns))
        self.assertTrue(any(e["nr"] == SYS_GETPPID for e in events))
        # Filters inside the hypervisor: one process, one system call number.
        only = self.vigil_lines("trace", "traced", "--syscalls", "--pid", str(pid), "--nr", str(SYS_GETPPID),
                                "--no-returns", "--count", "50")
        self.assertEqual(len(only), 50)
        self.assertTrue(all(e["nr"] == SYS_GETPPID and e["pid"] == pid and e["event"] == "call" for e in only))

    # ---- breakpoints ----

    def test_breakpoint_on_do_sys_openat2_fires_per_open_and_memory_is_unchanged(self):
        self.boot("opener", "while :; do vtest-monitor open 10; sleep 0.2; done", "VTEST-MON opens=10")
        va = symbol("do_sys_openat2")
        read = {"op": "read-memory", "domain": "opener", "address": va, "length": 64}
        before = self.d.request(read)
        self.assertTrue(before["ok"], before)
        mon = self.spawn("monitor", "opener", "--events", "breakpoint", "--breakpoint", "do_sys_openat2",
                         "--sync", "--count", "30")
        first = json.loads(mon.stdout.readline())  # the breakpoint as placed
        self.assertEqual(first["breakpoint"]["va"], va)
        hit = json.loads(mon.stdout.readline())
        self.assertEqual(hit["type"], "breakpoint")
        # While the breakpoint is live, guest memory still holds the original bytes.
        during = self.d.request(read)
        self.assertEqual(during["data"], before["data"])
        # Read the rest through the same buffered file: communicate() reads the raw pipe and
        # would drop lines the readline() calls above already pulled into Python's buffer
        # (the monitor writes a burst of events in one write).
        killer = threading.Timer(120, mon.kill)
        killer.start()
        out = mon.stdout.read()
        err = mon.stderr.read()
        mon.wait()
        killer.cancel()
        self.assertEqual(mon.returncode, 0, err)
        hits = [hit] + [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(hits), 30)
        self.assertTrue(all(h["gva"] == va and h["pc"] == va and h["gpa"] == first["breakpoint"]["gpa"]
                            for h in hits))
        # The guest kept opening files (the breakpoint did not break open()).
        n = self.d.console("opener", 0).count("VTEST-MON opens=10")
        self.assertTrue(wait_for(lambda: self.d.console("opener", 0).count("VTEST-MON opens=10") > n + 2, 30))

    # ---- memory access ----

    def test_write_to_protected_page_is_denied_reported_and_guest_continues(self):
        self.boot("victim", "vtest-monitor protect 8; while :; do sleep 1000; done", "VTEST-MON pa=")
        pa = int(re.search(r"VTEST-MON pa=(0x[0-9a-f]+)", self.d.console("victim", 0)).group(1), 16)
        prot = self.spawn("protect", "victim", "--range", f"{pa:#x}:4096", "--count", "1")
        out, err = prot.communicate(timeout=60)
        self.assertEqual(prot.returncode, 0, err)
        ev = json.loads(out.splitlines()[0])
        self.assertEqual((ev["type"], ev["access"], ev["action"]), ("mem", "w", "deny"))
        self.assertEqual(ev["gpa"], pa)
        self.assertEqual(ev["priv"], "U")
        self.assertTrue(wait_for(lambda: "VTEST-MON alive" in self.d.console("victim", 0), 30))
        self.assertIn("VTEST-MON after=0x11111111", self.d.console("victim", 0))

    def test_kernel_text_protection_lists_ranges_and_guest_runs_on(self):
        self.boot("kt", "i=0; while :; do i=$((i+1)); echo tick-$i; vtest-monitor open 5 >/dev/null; sleep 0.1; done",
                  "tick-3")
        prot = self.spawn("protect", "kt", "--kernel-text")
        self.assertIn("protecting", prot.stderr.readline())
        t0 = max(ticks(self.d.console("kt", 0)))
        self.assertTrue(wait_for(lambda: max(ticks(self.d.console("kt", 0))) > t0 + 10, 60))
        sessions = self.d.request({"op": "monitor-list", "domain": "kt"})["sessions"]
        self.assertEqual([s["state"] for s in sessions], ["connected"])
        prot.terminate()
        prot.wait()

    # ---- register writes ----

    def test_satp_events_fire_on_process_switches(self):
        self.boot("switcher", "while :; do vtest-monitor open 1 >/dev/null; done & while :; do sleep 1000; done",
                  "init started")
        events = self.vigil_lines("monitor", "switcher", "--events", "csr", "--csr", "satp", "--on-change",
                                  "--count", "20")
        self.assertEqual(len(events), 20)
        for e in events:
            self.assertEqual((e["type"], e["csr"], e["priv"]), ("csr", "satp", "S"))
            self.assertNotEqual(e["old"], e["new"])
            self.assertIn(e["new"] >> 60, (8, 9))  # Sv39 or Sv48 (Linux takes the widest it finds)
        self.assertGreater(len({e["new"] for e in events}), 2)

    # ---- dead monitors ----

    def test_monitor_killed_in_the_middle_of_a_synchronous_event_leaves_guest_running(self):
        self.boot("steady", "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done", "tick-3")
        mon = self.spawn("monitor", "steady", "--events", "syscall", "--sync", "--timeout-ms", "600000")
        self.assertTrue(mon.stdout.readline())  # events flow while it answers
        sessions = self.d.request({"op": "monitor-list", "domain": "steady"})["sessions"]
        self.assertEqual((sessions[0]["state"], sessions[0]["transport"]), ("connected", "shm"))
        mon.send_signal(signal.SIGSTOP)  # it stops answering: the next system call waits
        time.sleep(1.0)
        stalled = max(ticks(self.d.console("steady", 0)))
        time.sleep(1.5)
        self.assertLessEqual(max(ticks(self.d.console("steady", 0))), stalled + 1, "the guest did not wait")
        mon.send_signal(signal.SIGKILL)
        mon.wait()
        self.assertTrue(wait_for(lambda: max(ticks(self.d.console("steady", 0))) > stalled + 5, 20),
                        "the guest did not resume after its monitor died")
        sessions = self.d.request({"op": "monitor-list", "domain": "steady"})["sessions"]
        self.assertEqual(sessions[0]["state"], "closed")

    def test_monitor_that_stops_answering_is_dropped_after_its_timeout(self):
        self.boot("patient", "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done", "tick-3")
        mon = self.spawn("monitor", "patient", "--events", "syscall", "--sync", "--timeout-ms", "1000")
        self.assertTrue(mon.stdout.readline())
        mon.send_signal(signal.SIGSTOP)
        t0 = max(ticks(self.d.console("patient", 0)))
        self.assertTrue(wait_for(lambda: max(ticks(self.d.console("patient", 0))) > t0 + 5, 20))
        sessions = self.d.request({"op": "monitor-list", "domain": "patient"})["sessions"]
        self.assertEqual(sessions[0]["state"], "closed")
        self.assertIn("no answer", sessions[0]["end_reason"])
        mon.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
