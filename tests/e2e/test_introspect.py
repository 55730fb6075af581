"""Booted-guest tests for introspection (issue 4): `vigil ps` and friends, and the Python
bindings, read a running Linux guest from outside and must agree with what the guest itself says."""
import json
import os
import re
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402

# Background processes with names of their own (a subshell renames itself through
# /proc/self/comm; the trailing `true` keeps ash from exec'ing sleep in its place), one of
# them a busy loop so that some vCPU is running it in user mode; then the guest's own ps.
GUEST_CMD = ("(echo -n vigilA > /proc/self/comm; sleep 1000; true) & "
             "(echo -n vigilB > /proc/self/comm; sleep 1000; true) & "
             "(echo -n vigilbusy > /proc/self/comm; while :; do :; done) & "
             "sleep 1; echo PS-BEGIN; ps -o pid,ppid,comm; echo PS-END; "
             "while :; do sleep 1000; done")
ELF_MAGIC = b"\x7fELF"
USER_TEXT = 0x10000  # where the static, non-PIE busybox is linked


def write_config(directory, name, vcpus=2):
    return write_domain_config(directory, name, GUEST_CMD, vcpus=vcpus, quote_cmd=True)


def guest_ps(console):
    """(pid, ppid, comm) rows the guest's ps printed between the markers."""
    text = console.replace("\r\n", "\n")
    block = text.split("PS-BEGIN\n", 1)[1].split("PS-END", 1)[0]
    rows = []
    for line in block.splitlines()[1:]:  # skip the header
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(.*\S)\s*$", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return rows


class Introspect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Vigild()
        cls.cfgdir = tempfile.TemporaryDirectory()
        cls.d.vigil("create", write_config(cls.cfgdir.name, "spy"))
        ok = wait_for(lambda: "PS-END" in cls.d.console("spy", 0), 300)
        if not ok:
            log = cls.d.close()
            raise AssertionError(f"the guest never printed its ps output; vigild log:\n{log[-2000:]}")
        cls.guest_rows = guest_ps(cls.d.console("spy", 0))

    @classmethod
    def tearDownClass(cls):
        cls.d.close()
        cls.cfgdir.cleanup()

    def ps_json(self, domain="spy"):
        r = self.d.vigil("ps", domain, "--json")
        return json.loads(r.stdout)

    def test_ps_lists_the_same_processes_as_the_guests_ps(self):
        rows = self.guest_rows
        by_comm = {comm: (pid, ppid) for pid, ppid, comm in rows}
        for name in ("init", "sh", "vigilA", "vigilB", "vigilbusy", "ps", "kthreadd"):
            self.assertIn(name, by_comm, rows)
        shell = by_comm["sh"][0]
        t0 = time.monotonic()
        answer = self.ps_json()
        elapsed = time.monotonic() - t0
        print(f"\nvigil ps: {elapsed * 1000:.1f} ms wall, domain paused {answer['paused_us']} us, "
              f"{len(answer['processes'])} processes", file=sys.stderr)
        procs = answer["processes"]
        self.assertEqual(procs[0]["pid"], 0)
        self.assertEqual(procs[0]["comm"], "swapper/0")
        ours = {(p["pid"], p["ppid"], p["comm"]) for p in procs if p["pid"] != 0}

        # User processes: exactly the guest's, except ps itself (gone) and the idle loop's sleep
        # (started after ps ran).
        kthread = lambda pid, ppid: pid == 2 or ppid == 2  # noqa: E731
        guest_user = {r for r in rows if not kthread(r[0], r[1]) and r[2] != "ps"}
        our_user = {(p["pid"], p["ppid"], p["comm"]) for p in procs if not p["kernel_thread"] and p["pid"] != 0}
        self.assertLessEqual(guest_user, our_user, f"guest: {sorted(guest_user)}\nvigil: {sorted(our_user)}")
        for extra in our_user - guest_user:
            self.assertEqual((extra[1], extra[2]), (shell, "sleep"), f"unexpected process {extra}")
        self.assertNotIn(by_comm["ps"][0], {p for p, _, _ in our_user})

        # Kernel threads: the same pids, parents and names (kworkers come and go, and ps shows
        # them with their workqueue after a '-').
        for pid, ppid, comm in rows:
            if kthread(pid, ppid) and not comm.startswith("kworker"):
                self.assertIn((pid, ppid, comm), ours)
        ours_kthreads = {p["pid"] for p in procs if p["kernel_thread"]}
        self.assertTrue({pid for pid, ppid, _ in rows if kthread(pid, ppid)} - ours_kthreads <=
                        {pid for pid, _, comm in rows if comm.startswith("kworker")})

        # satp: the kernel's tables for kernel threads; one address space of its own for each
        # user process, in the kernel's paging mode.
        info = self.d.request({"op": "kernel-info", "domain": "spy"})
        self.assertTrue(info["ok"], info)
        self.assertEqual(info["kernel_offset"], 0)  # RISC-V 6.1 has no KASLR
        self.assertTrue(info["banner"].startswith("Linux version 6.1"), info)
        ksatp = info["kernel_satp"]
        for p in procs:
            if p["kernel_thread"]:
                self.assertEqual(p["satp"], ksatp, p)
            else:
                self.assertEqual(p["satp"] >> 60, ksatp >> 60, p)
        user_satps = [p["satp"] for p in procs if not p["kernel_thread"]]
        self.assertEqual(len(user_satps), len(set(user_satps)))

        # The text output has the same rows.
        text = self.d.vigil("ps", "spy").stdout
        self.assertRegex(text, rf"\n\s+{by_comm['vigilA'][0]}\s+{shell}\s+\S+\s+0x9?[0-9a-f]+\s+vigilA\n")
        self.assertRegex(text, r"\[kthreadd\]")

    def test_process_page_tables_map_their_own_memory(self):
        procs = self.ps_json()["processes"]
        pid = next(p["pid"] for p in procs if p["comm"] == "vigilA")
        t = self.d.request({"op": "translate", "domain": "spy", "va": USER_TEXT, "pid": pid})
        self.assertTrue(t["ok"], t)
        self.assertEqual(t["level"], 0)
        mem = self.d.request({"op": "read-memory", "domain": "spy", "address": USER_TEXT, "length": 4, "pid": pid})
        self.assertEqual(bytes.fromhex(mem["data"]), ELF_MAGIC, mem)
        phys = self.d.request({"op": "read-memory", "domain": "spy", "address": t["pa"], "length": 4,
                               "physical": True})
        self.assertEqual(bytes.fromhex(phys["data"]), ELF_MAGIC, phys)
        # The kernel's own tables do not map user memory.
        k = self.d.request({"op": "translate", "domain": "spy", "va": USER_TEXT})
        self.assertFalse(k["ok"])
        self.assertIn("not mapped", k["error"])

        # Kernel symbols, both ways, and kernel memory through them.
        sym = self.d.vigil("symbol", "spy", "linux_banner").stdout.split()
        self.assertEqual(sym[2], "linux_banner")
        dump = self.d.vigil("dump-memory", "spy", sym[0], "16").stdout
        self.assertIn("Linux version", dump)
        back = self.d.vigil("symbol", "spy", hex(int(sym[0], 16) + 5)).stdout
        self.assertEqual(back.split()[1], "linux_banner+0x5")

        # A write through a process's page tables is visible to a physical read. The bytes are
        # e_ident's padding (EI_PAD) in busybox's ELF header: nothing reads them once it runs.
        pad = USER_TEXT + 9
        old = self.d.request({"op": "read-memory", "domain": "spy", "address": pad, "length": 7, "pid": pid})["data"]
        self.assertEqual(old, "00" * 7)
        w = self.d.request({"op": "write-memory", "domain": "spy", "address": pad, "data": b"vigil!!".hex(),
                            "pid": pid})
        self.assertTrue(w["ok"], w)
        got = self.d.request({"op": "read-memory", "domain": "spy", "address": t["pa"] + 9, "length": 7,
                              "physical": True})
        self.assertEqual(bytes.fromhex(got["data"]), b"vigil!!")
        self.d.request({"op": "write-memory", "domain": "spy", "address": pad, "data": old, "pid": pid})

    def test_current_process_on_each_vcpu(self):
        # vigilbusy spins in user mode: some sample must catch a vCPU running it.
        seen = None
        for _ in range(40):
            answer = self.ps_json()
            vcpus = answer["vcpus"]
            self.assertEqual(len(vcpus), 2)
            for v in vcpus:
                self.assertTrue(v["online"], v)
                self.assertIn("pid", v, v)  # every vCPU runs some task (at worst its idle task)
                if v.get("comm") == "vigilbusy" and v["mode"] == "U":
                    seen = (v, answer)
            if seen:
                break
            time.sleep(0.1)
        self.assertIsNotNone(seen, "no sample found vigilbusy running in user mode")
        v, answer = seen
        busy = next(p for p in answer["processes"] if p["comm"] == "vigilbusy")
        self.assertEqual(busy["vcpu"], v["vcpu"])
        self.assertEqual(v["pid"], busy["pid"])
        self.assertEqual(v["satp"] & ((1 << 44) - 1), busy["satp"] & ((1 << 44) - 1))  # its own page tables

    def test_pause_state_is_kept(self):
        # A running domain is paused only while it is read...
        self.ps_json()
        self.assertEqual(self.d.domains()["spy"]["state"], "running")
        before = self.d.domains()["spy"]["cpu_seconds"]
        self.assertTrue(wait_for(lambda: self.d.domains()["spy"]["cpu_seconds"] > before + 0.2, 30))
        # ...and one the user paused stays paused.
        self.d.vigil("pause", "spy")
        try:
            answer = self.ps_json()
            self.assertEqual(answer["paused_us"], 0)
            self.assertIn("vigilA", {p["comm"] for p in answer["processes"]})
            self.assertEqual(self.d.domains()["spy"]["state"], "paused")
        finally:
            self.d.vigil("unpause", "spy")

    def test_errors_are_one_clear_sentence(self):
        r = self.d.vigil("modules", "spy", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("kernel built without modules", r.stderr)
        r = self.d.vigil("ps", "nosuchdomain", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no domain named or numbered 'nosuchdomain'", r.stderr)
        bad = self.d.request({"op": "ps", "domain": "spy", "system_map": "/nonexistent/System.map"})
        self.assertFalse(bad["ok"])
        self.assertIn("/nonexistent/System.map", bad["error"])
        # A System.map of some other kernel: its banner is not where it says.
        with tempfile.NamedTemporaryFile("w", suffix=".map") as f:
            f.write("ffffffff80000100 D linux_banner\nffffffff80000200 D init_task\n"
                    "ffffffff80000300 D init_mm\nffffffff80000400 B swapper_pg_dir\n")
            f.flush()
            other = self.d.request({"op": "ps", "domain": "spy", "system_map": f.name})
        self.assertFalse(other["ok"])
        self.assertIn("does not belong to the running kernel", other["error"])
        r = self.d.request({"op": "read-memory", "domain": "spy", "address": 0x100, "length": 8, "physical": True})
        self.assertIn("outside guest RAM", r["error"])
        r = self.d.request({"op": "read-memory", "domain": "spy", "address": 0, "length": 1 << 30})
        self.assertIn("at most", r["error"])
        # The guest carries on.
        self.assertEqual(self.d.domains()["spy"]["state"], "running")

    def test_python_bindings_list_processes(self):
        pypath = os.environ.get("VIGIL_PYTHONPATH",
                                os.path.join(os.path.dirname(os.path.dirname(os.environ.get("VIGIL_BIN", "build/apps/vigil"))), "python"))
        sys.path.insert(0, pypath)
        import vigil_introspect as vi  # built by CMake (python/), needs python3-pybind11

        d = vi.Domain("spy", socket=self.d.sock)
        procs = d.processes()
        cli = {(p["pid"], p["comm"]) for p in self.ps_json()["processes"] if not p["kernel_thread"]}
        mine = {(p.pid, p.comm) for p in procs if not p.kernel_thread}
        self.assertEqual({c for _, c in mine} & {"vigilA", "vigilB", "vigilbusy", "sh", "init"},
                         {"vigilA", "vigilB", "vigilbusy", "sh", "init"})
        # Both views come from the same guest a moment apart: only the idle loop's sleep may differ.
        self.assertTrue({c for _, c in mine ^ cli} <= {"sleep"}, mine ^ cli)
        a = next(p for p in procs if p.comm == "vigilA")
        self.assertEqual(a.ppid, next(p.pid for p in procs if p.comm == "sh"))
        self.assertEqual(d.read(USER_TEXT, 4, pid=a.pid), ELF_MAGIC)
        t = d.translate(USER_TEXT, pid=a.pid)
        self.assertEqual(d.read_physical(t.pa, 4), ELF_MAGIC)
        self.assertEqual(t.satp, a.satp)
        banner = d.symbol("linux_banner")
        self.assertTrue(d.read(banner, 14) == b"Linux version ")
        self.assertEqual(d.symbol_at(banner + 3), ("linux_banner", 3))
        self.assertEqual(len(d.vcpus()), 2)
        with self.assertRaisesRegex(vi.Error, "kernel built without modules"):
            d.modules()
        with self.assertRaisesRegex(vi.Error, "not mapped"):
            d.read(0x1000, 4)
        with self.assertRaisesRegex(vi.Error, "no domain named"):
            vi.Domain("nosuchdomain", socket=self.d.sock).processes()


if __name__ == "__main__":
    unittest.main()
