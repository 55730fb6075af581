"""Booted-guest tests for the Python bindings of vm_event monitoring (issue 4):
vigil_introspect.Monitor (python/) traces and steers guest/tests/vtest-monitor.c from outside,
as `vigil trace` and `vigil monitor --sync --deny` do in test_monitor.py."""
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_domains import Vigild, wait_for  # noqa: E402
from test_monitor import EBADF, SYS_WRITE, write_config  # noqa: E402

# The module from the build tree (CMake passes its directory), as test_introspect.py finds it.
sys.path.insert(0, os.environ.get("VIGIL_PYTHONPATH", os.path.join(os.path.dirname(os.path.dirname(
    os.environ.get("VIGIL_BIN", "build/apps/vigil"))), "python")))
import vigil_introspect as vi  # noqa: E402  built by CMake (python/), needs python3-pybind11

DENIED = 31337  # what the denied write(777, ...) returns instead of EBADF
UNDENIED = "ret=-1"  # what vtest-monitor prints for EBADF (syscall() returns -1, errno EBADF)


class PythonMonitor(unittest.TestCase):
    def setUp(self):
        self.d = Vigild()
        self.cfgdir = tempfile.TemporaryDirectory()

    def tearDown(self):
        log = self.d.close()
        self.cfgdir.cleanup()
        if "vigild" in os.environ.get("VIGIL_TEST_VERBOSE", ""):
            print(f"vigild log:\n{log[-3000:]}")

    def boot(self, name, cmd, marker):
        self.d.vigil("create", write_config(self.cfgdir.name, name, cmd))
        ok = wait_for(lambda: marker in self.d.console(name, 0), 300)
        self.assertTrue(ok, f"the guest never printed {marker!r}:\n{self.d.console(name, 0)[-2000:]}")

    def events(self, mon, count):
        out = []
        while len(out) < count:
            ev = mon.next(timeout=60)
            self.assertIsNotNone(ev, f"no event within 60 s after {len(out)}")
            out.append(ev)
        return out

    def test_python_traces_syscalls_of_one_process_with_args_and_returns(self):
        self.boot("pytraced", "vtest-monitor syscalls 1000000000 & while :; do sleep 1000; done", "VTEST-MON pid=")
        pid = int(re.search(r"VTEST-MON pid=(\d+)", self.d.console("pytraced", 0)).group(1))
        with self.assertRaisesRegex(vi.Error, "nosuch"):
            vi.Monitor("nosuch", ["syscall"], socket=self.d.sock)
        with vi.Monitor("pytraced", ["syscall", "sysret"], socket=self.d.sock, numbers=[SYS_WRITE], pid=pid) as mon:
            self.assertIsInstance(mon.session, int)
            evs = self.events(mon, 100)
            for e in evs:
                self.assertEqual((e["nr"], e["pid"], e["comm"]), (SYS_WRITE, pid, "vtest-monitor"))
                self.assertEqual(e["args"][:3], [777, 0x5157, 4242])
                self.assertFalse(e["sync"])
            returns = [e for e in evs if e["type"] == "sysret"]
            self.assertTrue(returns and len(returns) < len(evs), [e["type"] for e in evs])
            self.assertTrue(all(e["ret"] == EBADF for e in returns))
            # Commands: acknowledged (events read meanwhile come first from next()), or an Error.
            # A vCPU sees the change at its next time slice: returns stop soon after, not at once.
            mon.unsubscribe("sysret")
            run = 0
            for _ in range(20000):
                run = run + 1 if mon.next(timeout=60)["type"] == "syscall" else 0
                if run == 500:
                    break
            self.assertEqual(run, 500, "system call returns were still reported")
            with self.assertRaisesRegex(vi.Error, "singlestep needs a vcpu number"):
                mon.singlestep(99)
        self.assertTrue(mon.closed)
        with self.assertRaisesRegex(vi.Error, "closed"):
            mon.next()

    def test_python_denies_a_syscall_synchronously_and_the_guest_continues(self):
        self.boot("pydeny", "while :; do vtest-monitor syscalls 50; sleep 0.2; done", "VTEST-MON syscalls=50")
        denied = 0
        # 150 denied writes in a row: at least two whole runs of 50 saw only denials.
        with vi.Monitor("pydeny", ["syscall"], socket=self.d.sock, sync=True, numbers=[SYS_WRITE],
                        timeout_ms=20000) as mon:
            for ev in mon:
                self.assertTrue(ev["sync"])
                if ev["args"][0] == 777:
                    mon.answer(ev, "deny", value=DENIED)
                    denied += 1
                else:  # the guest's console output
                    mon.answer(ev)
                if denied == 150:
                    break
        self.assertTrue(wait_for(lambda: f"ret={DENIED}" in self.d.console("pydeny", 0), 30),
                        self.d.console("pydeny", 0)[-2000:])
        # Without the monitor the guest runs on and its writes fail with EBADF again.
        self.assertTrue(wait_for(lambda: UNDENIED in self.d.console("pydeny", 0).rsplit(f"ret={DENIED}", 1)[1], 30),
                        self.d.console("pydeny", 0)[-2000:])
        sessions = self.d.request({"op": "monitor-list", "domain": "pydeny"})["sessions"]
        self.assertEqual([s["state"] for s in sessions], ["closed"])
        self.assertEqual(sessions[0]["transport"], "shm")  # the answers went back through shared memory


if __name__ == "__main__":
    unittest.main()
