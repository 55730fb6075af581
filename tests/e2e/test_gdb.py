"""Booted-guest tests for vigild's GDB stub (issue 13): a real gdb (Debian's gdb-multiarch)
with the guest's vmlinux debugs a running 2-vCPU domain through `vigil gdbserver`, and a raw
protocol client checks what gdb cannot easily show (Ctrl-C, bad packets, a second client, the
domain going away)."""
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
from guest import guest_dir, write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

GDB = shutil.which("gdb-multiarch") or "/usr/bin/gdb-multiarch"
LOOP = "i=0; while :; do i=$((i+1)); cat /proc/version >/dev/null; echo TICK $i; sleep 0.2; done"


def symbol(name):
    with open(os.path.join(guest_dir(), "System.map")) as f:
        for line in f:
            addr, _, sym = line.split()
            if sym == name:
                return int(addr, 16)
    raise AssertionError(f"{name} not in System.map")


def frame(payload):
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xff)


class Rsp:
    """A minimal remote-protocol client (acknowledgement mode) for the raw tests."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def read_packet(self, timeout=30):
        self.s.settimeout(timeout)
        while True:
            m = re.search(rb"\$([^#]*)#([0-9a-f]{2})", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                body = m.group(1)
                assert int(m.group(2), 16) == sum(body) & 0xff, f"bad checksum from the stub: {m.group(0)!r}"
                self.s.sendall(b"+")
                return body.decode()
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError(f"the stub closed the connection (pending {self.buf!r})")
            self.buf += chunk

    def ack(self, timeout=30):
        """The next acknowledgement byte ('+' or '-')."""
        self.s.settimeout(timeout)
        while True:
            m = re.match(rb"^[+-]", self.buf)
            if m:
                self.buf = self.buf[1:]
                return m.group(0).decode()
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def cmd(self, payload):
        self.s.sendall(frame(payload.encode()))
        assert self.ack() == "+"
        return self.read_packet()

    def close(self):
        self.s.close()


class Gdb(unittest.TestCase):
    def setUp(self):
        self.d = Vigild()
        self.addCleanup(self.d.close)
        self.cfgdir = tempfile.TemporaryDirectory()
        self.addCleanup(self.cfgdir.cleanup)
        self.d.vigil("create", write_domain_config(self.cfgdir.name, "dbg", LOOP, vcpus=2, quote_cmd=True))
        self.assertTrue(wait_for(lambda: self.ticks() >= 3, 180), self.d.console("dbg", 0)[-2000:])

    def ticks(self):
        found = re.findall(r"TICK (\d+)", self.d.console("dbg", 0))
        return int(found[-1]) if found else 0

    def gdbserver(self):
        out = self.d.vigil("gdbserver", "dbg", "--port", "0").stdout
        m = re.search(r"gdbserver on 127\.0\.0\.1:(\d+)", out)
        self.assertTrue(m, out)
        return int(m.group(1))

    def test_real_gdb_reads_memory_breaks_steps_and_detaches(self):
        port = self.gdbserver()
        openat2 = symbol("do_sys_openat2")
        vmlinux = os.path.join(guest_dir(), "vmlinux")
        cmds = ["set pagination off", "set confirm off", f"target remote 127.0.0.1:{port}",
                "info threads", "x/s linux_banner", "break do_sys_openat2", "continue",
                "p/x $pc", "bt 2", "stepi", "p/x $pc", "p $priv", "delete", "detach"]
        # The remote log shows the packets if the session ever stalls.
        log = os.path.join(self.cfgdir.name, "remote.log")
        args = [GDB, "-nx", "-batch", "-ex", f"set remotelogfile {log}"]
        for c in cmds:
            args += ["-ex", c]
        p = subprocess.Popen(args + [vmlinux], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            before = self.ticks()
            time.sleep(2)
            with open(log, errors="replace") as f:
                packets = f.read()[-3000:]
            self.fail(f"gdb stalled; ticks {before} -> {self.ticks()} in 2 s; "
                      f"vcpus {self.d.request({'op': 'vcpu-list', 'domain': 'dbg'})}; "
                      f"domain {self.d.domains().get('dbg')}\ngdb: {out[-2000:]}\npackets: {packets}\n"
                      f"vigild: {open(self.d.log.name, errors='replace').read()[-2000:]}")
        self.assertEqual(p.returncode, 0, out)
        # Both vCPUs are threads; the banner is read through the guest's page tables.
        self.assertRegex(out, r"Thread 1 .*\n.*Thread 2 ", out)
        self.assertIn("Linux version 6.1", out)
        # The breakpoint stops a vCPU at the function's first instruction...
        self.assertRegex(out, r"Breakpoint 1, (0x[0-9a-f]+ in )?do_sys_openat2", out)
        pcs = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", out, re.M)]
        self.assertGreaterEqual(len(pcs), 2, out)
        self.assertEqual(pcs[0], openat2, out)
        # ...the backtrace walks into its caller, and a single step moves on by one instruction.
        self.assertRegex(out, r"#1 .* in \S*(openat|open)\S* ", out)
        self.assertIn(pcs[1] - pcs[0], (2, 4), out)
        self.assertRegex(out, r"\$\d+ = 1\b", out)  # priv: the kernel runs in S-mode
        # Detached: the guest runs on.
        before = self.ticks()
        self.assertTrue(wait_for(lambda: self.ticks() >= before + 3, 60), self.d.console("dbg", 0)[-1000:])
        self.assertEqual(self.d.domains()["dbg"]["state"], "running")

    def run_gdb(self, port, cmds, timeout=120):
        """gdb-multiarch in batch mode with the guest's vmlinux: its output (a stall fails)."""
        log = os.path.join(self.cfgdir.name, "remote-watch.log")
        args = [GDB, "-nx", "-batch", "-ex", f"set remotelogfile {log}", "-ex", "set pagination off",
                "-ex", "set confirm off", "-ex", f"target remote 127.0.0.1:{port}"]
        for c in cmds:
            args += ["-ex", c]
        p = subprocess.Popen(args + [os.path.join(guest_dir(), "vmlinux")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            with open(log, errors="replace") as f:
                packets = f.read()[-3000:]
            self.fail(f"gdb stalled\ngdb: {out[-2000:]}\npackets: {packets}")
        self.assertEqual(p.returncode, 0, out)
        return out

    def test_real_gdb_watchpoints_fire_on_a_write_and_a_read(self):
        # jiffies is written by the timer tick; linux_proc_banner is read by every
        # `cat /proc/version` of the guest's loop. Both pages lose a P2m right while watched.
        out = self.run_gdb(self.gdbserver(), [
            "p init_uts_ns.name.sysname", "watch jiffies", "continue", "p/x $pc", "delete",
            "rwatch linux_proc_banner[0]", "continue", "delete", "detach"])
        self.assertIn('= "Linux"', out)  # a kernel variable, read through the page tables
        # The write: gdb stops before the store, steps over it and shows both values.
        m = re.search(r"Hardware watchpoint 1: jiffies\s+Old value = (\d+)\s+New value = (\d+)", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(2)), int(m.group(1)), out)
        # The read: stopped in the kernel's formatting of /proc/version.
        self.assertRegex(out, r"Hardware read watchpoint 2: linux_proc_banner\[0\]\s+Value = 37 '%'", out)
        # Detached with no watchpoint left: the pages have their rights back and the guest runs on.
        before = self.ticks()
        self.assertTrue(wait_for(lambda: self.ticks() >= before + 3, 60), self.d.console("dbg", 0)[-1000:])
        self.assertEqual(self.d.domains()["dbg"]["state"], "running")

    def test_protocol_interrupt_bad_packets_second_client_and_the_domain_going_away(self):
        port = self.gdbserver()
        c = Rsp(port)
        self.addCleanup(c.close)
        self.assertIn("qXfer:features:read+", c.cmd("qSupported:multiprocess+;swbreak+"))
        self.assertEqual(c.cmd("?"), "T05thread:1;")
        # While gdb has it stopped the guest prints nothing new.
        self.assertEqual(self.d.domains()["dbg"]["state"], "paused")
        self.assertEqual(c.cmd("qfThreadInfo"), "m1,2")
        xml = c.cmd("qXfer:features:read:target.xml:0,3fff")
        self.assertTrue(xml.startswith("l<?xml"), xml[:80])
        self.assertIn('name="org.gnu.gdb.riscv.cpu"', xml)
        # Registers: 33 of 8 bytes (x0-x31, pc); x0 reads as zero.
        regs = c.cmd("g")
        self.assertEqual(len(regs), 33 * 16)
        self.assertEqual(regs[:16], "0" * 16)
        # A bad checksum is NAKed; an oversized packet too; the session goes on.
        c.s.sendall(b"$g#00")
        self.assertEqual(c.ack(), "-")
        c.s.sendall(b"$" + b"m" * 20000 + b"#00")
        self.assertEqual(c.ack(), "-")
        self.assertEqual(c.cmd("m0,8").startswith("E"), True)  # nothing mapped at 0
        self.assertTrue(c.cmd("Z2,0,8").startswith("E"))  # a watchpoint where nothing is mapped
        self.assertTrue(c.cmd(f"Z2,{(symbol('jiffies') | 0xfff) - 3:x},8").startswith("E"))  # across a page
        banner = symbol("linux_banner")
        self.assertEqual(bytes.fromhex(c.cmd(f"m{banner:x},d")), b"Linux version")
        # A second debugger is turned away while this one is attached.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as other:
            other.settimeout(10)
            self.assertEqual(other.recv(100), b"")
        # Continue, then Ctrl-C: the stub answers with SIGINT and the guest stops again.
        c.s.sendall(frame(b"c"))
        self.assertEqual(c.ack(), "+")
        self.assertTrue(wait_for(lambda: self.d.domains()["dbg"]["state"] == "running", 10))
        before = self.ticks()
        self.assertTrue(wait_for(lambda: self.ticks() >= before + 2, 60))
        c.s.sendall(b"\x03")
        self.assertRegex(c.read_packet(), r"^T02thread:[12];$")
        self.assertEqual(self.d.domains()["dbg"]["state"], "paused")
        # Running again, the domain is destroyed under the debugger: it is told the process
        # was killed, and vigild keeps serving.
        c.s.sendall(frame(b"vCont;c"))
        self.assertEqual(c.ack(), "+")
        self.d.vigil("destroy", "dbg")
        self.assertEqual(c.read_packet(), "X09")
        self.assertEqual(self.d.vigil("gdbserver-list").stdout.count("\n"), 1)  # the header only

    def test_errors_name_the_problem(self):
        port = self.gdbserver()
        r = self.d.vigil("gdbserver", "dbg", "--port", "0", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"already has a gdbserver on 127.0.0.1:{port}", r.stderr)
        self.assertIn("dbg", self.d.vigil("gdbserver-list").stdout)
        self.d.vigil("gdbserver-stop", "dbg")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            taken = s.getsockname()[1]
            r = self.d.vigil("gdbserver", "dbg", "--port", str(taken), check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"cannot listen on 127.0.0.1:{taken}", r.stderr)
        r = self.d.vigil("gdbserver", "nosuch", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nosuch", r.stderr)


if __name__ == "__main__":
    unittest.main()
