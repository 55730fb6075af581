"""Hostile guests and bad input (tests/hostile/README.md has the table of cases).

Each test boots one small bare-metal S-mode program from guest/cases/ with `vigil run` and
asserts a defined outcome: the host process survives (no signal, a known exit status), the
attack gets the architectural answer (a fault delivered to the guest with the right scause,
an SBI error code, a virtio request failed or DEVICE_NEEDS_RESET), or the machine stops with
the reason reported. The Neighbour tests run the floods and storms as vigild domains beside
a Debian guest running a fixed CPU job and compare its speed with and without them.

Environment: VIGIL_BIN (the vigil binary; vigild is found next to it), HOSTILE_BUILD_DIR
(where the guest programs are built), VIGIL_GUEST_DIR (the Debian test guest, for the
Neighbour tests only; scripts/test.sh sets it).
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guests  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIGIL = os.environ.get("VIGIL_BIN", os.path.join(ROOT, "build", "apps", "vigil"))
VIGILD = os.path.join(os.path.dirname(VIGIL), "vigild")
RAM_MIB = 64

EXIT_POWEROFF, EXIT_CRASH, EXIT_TIMEOUT = 0, 3, 4
LOAD_ACCESS, STORE_ACCESS, FETCH_ACCESS = 5, 7, 1
LOAD_PAGE, STORE_PAGE, FETCH_PAGE = 13, 15, 12
ILLEGAL, BREAKPOINT, NO_TRAP = 2, 3, -1
SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM, SBI_ERR_INVALID_ADDRESS, SBI_ERR_ALREADY_AVAILABLE = -2, -3, -5, -6
VIRTIO_BLK_S_IOERR, NEEDS_RESET = 1, 0x40


class Run:
    """One `vigil run`: exit status, output, and the process's own resource usage."""

    def __init__(self, rc, out, err, wall, cpu, maxrss_kib):
        self.rc, self.out, self.err = rc, out, err
        self.wall, self.cpu, self.maxrss_kib = wall, cpu, maxrss_kib

    def lines(self, key):
        """Lines starting with `key ` as dicts of their name=value fields plus 'name' (2nd word)."""
        found = []
        for line in self.out.splitlines():
            words = line.split()
            if not words or words[0] != key:
                continue
            d = {"name": words[1] if len(words) > 1 and "=" not in words[1] else None}
            for w in words[1:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    d[k] = parse_num(v)
            found.append(d)
        return found

    def field(self, key, name=None):
        for d in self.lines(key):
            if name is None or d["name"] == name:
                return d
        raise AssertionError(f"no '{key} {name or ''}' line in the guest's output:\n{self.out[-3000:]}")

    def describe(self):
        return (f"rc={self.rc} wall={self.wall:.2f}s cpu={self.cpu:.2f}s maxrss={self.maxrss_kib}KiB\n"
                f"stderr:\n{self.err[-2000:]}\nstdout:\n{self.out[-4000:]}")


def parse_num(v):
    try:
        return int(v, 0)
    except ValueError:
        return v


def run_guest(case, vcpus=1, memory=RAM_MIB, timeout=30, disk=None, rng=False, defines=()):
    image = guests.build(case, defines)
    args = [VIGIL, "run", "--kernel", image, "--memory", str(memory), "--vcpus", str(vcpus),
            "--timeout", str(timeout)]
    if disk:
        args += ["--disk", disk]
    if rng:
        args.append("--rng")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        # The host must stop the guest by itself (at --timeout at the latest): a watchdog
        # only guards the test run against a hung host.
        watchdog = threading.Timer(timeout + 60, lambda: proc.kill())
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def make_disk(directory, size=1 << 20):
    """A raw image: sector 0 starts with "DISK", sector 1 is "S1S1..."; sparse beyond."""
    path = os.path.join(directory, "disk.img")
    with open(path, "wb") as f:
        f.write(b"DISK" + b"x" * 508 + b"S1S1" * 128)
        f.truncate(size)
    return path


class HostileCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def run_case(self, case, expect_rc=EXIT_POWEROFF, **kw):
        r = run_guest(case, **kw)
        self.last = r
        # The host survived: a normal exit with the expected status, never a signal.
        self.assertGreaterEqual(r.rc, 0, f"vigil died from signal {-r.rc}\n{r.describe()}")
        self.assertEqual(r.rc, expect_rc, r.describe())
        self.assertIn("HOSTILE-START", r.out, r.describe())
        if expect_rc == EXIT_POWEROFF:
            self.assertIn("HOSTILE-DONE", r.out, r.describe())
            self.assertNotIn("TRAP-LIMIT", r.out, r.describe())
        return r


class Hostile(HostileCase):
    # ---- virtio ----

    def test_virtio_blk_bad_buffers(self):
        disk = make_disk(self.tmp.name)
        with open(disk, "rb") as f:
            before = f.read()
        r = self.run_case("virtio_blk_bad_buffers", disk=disk)
        bad = r.lines("BAD")
        self.assertEqual(len(bad), 9, r.describe())
        for b in bad:
            # The request fails with IOERR; the queue itself is fine (no NEEDS_RESET).
            self.assertEqual(b["req"], VIRTIO_BLK_S_IOERR, b)
            self.assertEqual(b["status_reg"] & NEEDS_RESET, 0, b)
        self.assertEqual(r.field("GOOD")["req"], 0)
        self.assertEqual(r.field("GOOD")["data"], "DISK")
        # The OUT requests with bad buffers wrote nothing to the image.
        with open(disk, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_virtio_blk_desc_loop(self):
        r = self.run_case("virtio_blk_desc_loop", disk=make_disk(self.tmp.name))
        for key in ("LOOP2", "SELF", "INDIRECT-UNNEGOTIATED"):
            d = r.field(key)
            self.assertEqual(d["used"], 0, (key, r.describe()))
            self.assertTrue(d["status_reg"] & NEEDS_RESET, (key, r.describe()))
        self.assertEqual(r.field("LOOP2-RENOTIFY")["used"], 0)
        for rec in r.lines("RECOVER"):
            self.assertEqual((rec["req"], rec["data"], rec["status_reg"]), (0, "DISK", 0xf), rec)

    def test_virtio_blk_huge_len(self):
        r = self.run_case("virtio_blk_huge_len", disk=make_disk(self.tmp.name))
        self.assertEqual(r.field("HUGE")["req"], -1)
        self.assertTrue(r.field("HUGE")["status_reg"] & NEEDS_RESET)
        self.assertEqual(r.field("WRAP")["req"], -1)
        self.assertTrue(r.field("WRAP")["status_reg"] & NEEDS_RESET)
        self.assertEqual(r.field("CHAIN96M")["used"], 0)
        self.assertTrue(r.field("CHAIN96M")["status_reg"] & NEEDS_RESET)
        self.assertEqual(r.field("SECTOR-RANGE")["req"], VIRTIO_BLK_S_IOERR)
        self.assertEqual(len(r.lines("RECOVER")), 3)
        for rec in r.lines("RECOVER"):
            self.assertEqual((rec["req"], rec["data"]), (0, "DISK"), rec)

    def test_virtio_blk_avail_ahead(self):
        r = self.run_case("virtio_blk_avail_ahead", disk=make_disk(self.tmp.name))
        for key in ("AHEAD", "BADHEAD"):
            self.assertEqual(r.field(key)["used"], 0, r.describe())
            self.assertTrue(r.field(key)["status_reg"] & NEEDS_RESET, r.describe())
        self.assertEqual(r.field("BADQUEUE")["status_reg"], 0xf)
        for rec in r.lines("RECOVER"):
            self.assertEqual((rec["req"], rec["data"]), (0, "DISK"), rec)

    def test_virtio_queue_bad_layout(self):
        r = self.run_case("virtio_queue_bad_layout", disk=make_disk(self.tmp.name))
        layouts = r.lines("LAYOUT")
        self.assertEqual(len(layouts), 12, r.describe())
        for d in layouts:
            self.assertEqual(d["ready"], 0, d)
        self.assertEqual(r.field("QUEUE-NUM-MAX")["sel99"], 0)
        self.assertFalse(r.field("FEATURES")["status_reg"] & 8, "FEATURES_OK stuck with unoffered features")
        rec = r.field("RECOVER")
        self.assertEqual((rec["req"], rec["data"], rec["status_reg"]), (0, "DISK", 0xf))

    def test_virtio_rng_bad_buffer(self):
        r = self.run_case("virtio_rng_bad_buffer", rng=True)
        bad = {d["name"]: d for d in r.lines("BAD")}
        for name in ("beyond-ram", "uart", "clint", "straddle-end", "not-writable"):
            self.assertEqual((bad[name]["used"], bad[name]["len"]), (1, 0), bad[name])
            self.assertEqual(bad[name]["status_reg"] & NEEDS_RESET, 0, bad[name])
        self.assertEqual(bad["huge"]["used"], 0)
        self.assertTrue(bad["huge"]["status_reg"] & NEEDS_RESET)
        good = r.field("GOOD")
        self.assertEqual((good["used"], good["len"]), (1, 64))
        self.assertGreater(good["nonzero"], 48)

    def test_virtio_blk_amplify(self):
        disk = make_disk(self.tmp.name, size=128 << 20)
        r = self.run_case("virtio_blk_amplify", disk=disk, timeout=120)
        a = r.field("AMPLIFY")
        self.assertEqual((a["used"], a["status"], a["status_reg"]), (256, 0, 0xf), r.describe())
        # The work budget (VirtioBlk::kSliceBudgetBytes): the store itself serves about one
        # request; the others complete later without another notify.
        self.assertLess(a["used_at_store"], 16, r.describe())
        self.assertLess(a["one_store_ms"], 500, r.describe())
        print(f"\n[amplify] one guest MMIO store asked for {a['bytes_per_store'] / 2**30:.1f} GiB; the store took "
              f"{a['one_store_ms']} ms serving {a['used_at_store']} request(s), all 256 done after {a['all_ms']} ms "
              f"(vigil cpu {r.cpu:.2f}s)", file=sys.stderr)

    # ---- MMIO ----

    def test_mmio_flood_uart(self):
        r = self.run_case("mmio_flood_uart", timeout=120)
        f = r.field("UART-FLOOD")
        self.assertEqual(f["accesses"], 10_000_000)
        self.assertEqual(f["scr"], (2_500_000 - 1) & 0xff)
        # Growth, not an absolute size: the binary's own resident pages (large under ASan,
        # which touches every global at startup) grow with the code base. A short guest that
        # does almost nothing (mmio_bad_access) gives the baseline of the same binary.
        base = run_guest("mmio_bad_access", timeout=60).maxrss_kib
        self.assertLess(r.maxrss_kib - base, 16 << 10,
                        f"host memory grew with the flood: {r.maxrss_kib} KiB vs {base} KiB without it")

    def test_mmio_flood_plic(self):
        r = self.run_case("mmio_flood_plic", timeout=120)
        f = r.field("PLIC-FLOOD")
        self.assertEqual(f["accesses"], 9_000_000)
        # Priorities are WARL (3 bits here); id 0 and ids past the last source read 0.
        self.assertEqual((f["prio10"], f["prio0"], f["prio500"]), (7, 0, 0))

    def test_mmio_bad_access(self):
        r = self.run_case("mmio_bad_access", rng=True)
        acc = r.lines("ACCESS")
        self.assertEqual(len(acc), 19, r.describe())
        for d in acc:
            self.assertEqual(d["scause"], d["expect"], d)
        m = r.field("RAM-MISALIGNED")
        self.assertEqual((m["traps"], m["value"]), (0, 0x1c1b1a1918171615))

    def test_mmio_unmapped_holes(self):
        r = self.run_case("mmio_unmapped_holes", rng=True)
        holes = r.lines("HOLE")
        self.assertEqual(len(holes), 14, r.describe())
        for d in holes:
            self.assertEqual((d["load"], d["store"], d["fetch"]), (LOAD_ACCESS, STORE_ACCESS, FETCH_ACCESS), d)

    # ---- interrupts ----

    def test_ipi_storm(self):
        r = self.run_case("ipi_storm", vcpus=2, timeout=120)
        ipi = r.field("IPI")
        self.assertEqual((ipi["sent0"], ipi["sent1"]), (400_000, 400_000))
        # IPIs coalesce (one pending bit), but both harts must have taken many.
        self.assertGreater(ipi["received0"], 1000)
        self.assertGreater(ipi["received1"], 1000)
        for name in ("base-past-harts", "all-bits", "huge-base"):
            self.assertEqual(r.field("BADMASK", name)["err"], SBI_ERR_INVALID_PARAM)
        self.assertEqual(r.field("LEGACY", "bad-pointer")["ret"], 0)

    def test_timer_storm(self):
        r = self.run_case("timer_storm", timeout=120)
        t = r.field("TIMER")
        self.assertEqual(t["ticks"], 1_000_000)
        self.assertEqual(t["extra"], 0, "a disarmed timer still fired")

    def test_wfi_nothing_enabled(self):
        r = self.run_case("wfi_nothing_enabled", expect_rc=EXIT_TIMEOUT, timeout=3)
        self.assertIn("WFI-FOREVER", r.out)
        self.assertRegex(r.err, r"hart 0: wfi pc")
        self.assertLess(r.wall, 3 + 2.0, r.describe())
        self.assert_parked(r)

    def assert_parked(self, r):
        """Parked, not polling: 3 s of a sleeping or stopped hart cost (almost) no CPU. Measured
        over a short guest of the same binary (mmio_bad_access), not as an absolute figure:
        the process's own start-up (large under ASan, which touches every global) is not the
        subject, and it grows with the code base. A polling hart would add about 3 s."""
        base = run_guest("mmio_bad_access", timeout=60).cpu
        self.assertLess(r.cpu - base, 0.2, f"{r.describe()}\n(a guest that powers off at once: cpu {base:.2f}s)")

    def test_hart_stop_all(self):
        r = self.run_case("hart_stop_all", expect_rc=EXIT_TIMEOUT, timeout=3)
        self.assertIn("STOPPING-LAST-HART", r.out)
        self.assertNotIn("UNREACHABLE", r.out)
        self.assertRegex(r.err, r"hart 0: stopped")
        self.assert_parked(r)

    def test_spin_irqs_off(self):
        r = self.run_case("spin_irqs_off", expect_rc=EXIT_TIMEOUT, timeout=3)
        self.assertIn("SPINNING", r.out)
        self.assertRegex(r.err, r"still running after the 3\.0 s timeout; hart 0: running")
        self.assertLess(r.wall, 3 + 2.0, "the host did not stop a spinning guest on time")

    # ---- CPU: exceptions, CSRs, privileged state ----

    def test_trap_storm(self):
        r = self.run_case("trap_storm", timeout=120)
        s = r.field("STORM")
        self.assertEqual(s["traps"], s["expect"])
        self.assertEqual(s["traps"], 4 * 300_000)
        self.assertEqual(s["ecalls"], 300_000)

    def test_trap_loop_bad_stvec(self):
        r = self.run_case("trap_loop_bad_stvec", expect_rc=EXIT_TIMEOUT, timeout=3)
        self.assertIn("LOOPING", r.out)
        self.assertRegex(r.err, r"hart 0: running pc 0x4000 ")
        self.assertLess(r.wall, 3 + 2.0)

    def test_m_csr_from_s(self):
        r = self.run_case("m_csr_from_s")
        csrs = r.lines("CSR")
        self.assertEqual(len(csrs), 19, r.describe())
        for d in csrs + r.lines("INSN"):
            self.assertEqual(d["scause"], ILLEGAL, d)
            self.assertEqual(d["stval"], d["expect"], d)

    def test_deleg_write(self):
        r = self.run_case("deleg_write")
        writes = r.lines("WRITE")
        self.assertEqual(len(writes), 9, r.describe())
        for d in writes:
            self.assertEqual(d["scause"], ILLEGAL, d)
        self.assertEqual(r.field("AFTER", "ebreak")["scause"], BREAKPOINT)
        self.assertEqual(r.field("AFTER", "sbi-spec-version")["err"], 0)
        self.assertEqual(r.field("AFTER", "ram-load")["value"], 0x0400006f)

    def test_smc_storm(self):
        r = self.run_case("smc_storm", timeout=120)
        s = r.field("SMC")
        self.assertEqual(s["with-fence"], s["expect"])
        # Without FENCE.I either the old or the new instruction may run; the sum is bounded.
        self.assertLessEqual(s["without-fence"], s["expect"])

    def test_fence_i_storm(self):
        r = self.run_case("fence_i_storm", vcpus=2, timeout=120)
        f = r.field("FENCE")
        self.assertEqual((f["remote0"], f["remote1"]), (15_000, 15_000))

    def test_code_spray(self):
        vcpus, memory = 4, 16
        r = self.run_case("code_spray", vcpus=vcpus, memory=memory, timeout=120)
        s = r.field("SPRAY")
        self.assertEqual((s["harts"], s["calls"], s["traps"]), (vcpus, vcpus * 2600 * 3, 0))
        # The decoded-instruction cache is bounded per hart (2048 pages of 38 KiB: 32 KiB of
        # slots, 6 KiB of translation counters), and so is translated code (8 MiB per hart);
        # without a bound 2600 pages on 4 harts would keep growing with guest code.
        bound_kib = (memory << 10) + vcpus * (2048 * 39 + (8 << 10)) + (48 << 10)
        if os.environ.get("VIGIL_SANITIZED"):
            # ASan's shadow memory and free quarantine (256 MiB by default) come on top.
            bound_kib = bound_kib * 2 + (256 << 10)
        print(f"\n[code_spray] {memory} MiB guest, {vcpus} vCPUs: vigil peak RSS {r.maxrss_kib / 1024:.0f} MiB",
              file=sys.stderr)
        self.assertLess(r.maxrss_kib, bound_kib, r.describe())

    def test_jit_churn(self):
        vcpus, memory = 2, 32
        r = self.run_case("jit_churn", vcpus=vcpus, memory=memory, timeout=240)
        s = r.field("CHURN")
        self.assertEqual((s["harts"], s["calls"], s["mismatches"], s["traps"]), (vcpus, vcpus * 1500 * 24, 0, 0))
        # Translated code is bounded per hart (an 8 MiB area, emptied when full), as is the
        # decoded-instruction cache (2048 pages of 38 KiB).
        bound_kib = (memory << 10) + vcpus * (2048 * 39 + (8 << 10)) + (48 << 10)
        if os.environ.get("VIGIL_SANITIZED"):
            bound_kib = bound_kib * 2 + (256 << 10)
        print(f"\n[jit_churn] {memory} MiB guest, {vcpus} vCPUs: vigil peak RSS {r.maxrss_kib / 1024:.0f} MiB, "
              f"wall {r.wall:.1f} s", file=sys.stderr)
        self.assertLess(r.maxrss_kib, bound_kib, r.describe())

    # ---- page tables ----

    def test_pt_self_loop(self):
        r = self.run_case("pt_self_loop")
        for mode in ("sv39", "sv48"):
            d = r.field("LOOP", mode)
            self.assertEqual((d["load"], d["store"], d["fetch"], d["load2"]), (LOAD_PAGE, STORE_PAGE, FETCH_PAGE, LOAD_PAGE), d)
        self.assertEqual(r.field("SATP", "sv39")["readback"], 8)
        self.assertEqual(r.field("SATP", "sv48")["readback"], 9)
        self.assertEqual((r.field("ALIAS")["traps"], r.field("ALIAS")["value"]), (0, 0x1122334455667788))

    def test_pt_outside_ram(self):
        r = self.run_case("pt_outside_ram")
        pts = [d for d in r.lines("PT") if d["name"] != "uart-leaf"]
        self.assertEqual(len(pts), 5, r.describe())
        for d in pts:
            self.assertEqual((d["load"], d["store"], d["fetch"]), (LOAD_ACCESS, STORE_ACCESS, FETCH_ACCESS), d)
        self.assertEqual((r.field("PT", "uart-leaf")["traps"], r.field("PT", "uart-leaf")["lsr"]), (0, 0x60))

    def test_satp_bad_mode(self):
        r = self.run_case("satp_bad_mode")
        modes = [d for d in r.lines("SATP") if "readback" in d]
        self.assertEqual(len(modes), 13, r.describe())
        for d in modes:
            self.assertEqual((d["readback"], d["ram_ok"]), (0, 1), d)
        self.assertEqual(r.field("SATP", "sv39-asid")["mode"], 8)

    def test_store_readonly(self):
        r = self.run_case("store_readonly")
        perm = {}
        for line in r.out.splitlines():
            m = re.match(r"PERM (\S+)=(-?\d+)", line)
            if m:
                perm[m.group(1)] = int(m.group(2))
        self.assertEqual(perm, {
            "ro-store": STORE_PAGE, "ro-load": NO_TRAP, "xo-load": LOAD_PAGE, "xo-load-mxr": NO_TRAP,
            "user-load": LOAD_PAGE, "user-store": STORE_PAGE, "user-load-sum": NO_TRAP, "user-fetch-sum": FETCH_PAGE,
            "w-only-load": LOAD_PAGE, "w-only-store": STORE_PAGE, "invalid-load": LOAD_PAGE,
            "reserved-bits-load": LOAD_PAGE, "misaligned-superpage-load": LOAD_PAGE, "ro-amo": STORE_PAGE})
        self.assertEqual(r.field("RO-PAGE")["intact"], 1)

    def test_exec_nx(self):
        r = self.run_case("exec_nx")
        nx = {}
        for line in r.out.splitlines():
            m = re.match(r"NX (\S+)=(-?\d+)", line)
            if m:
                nx[m.group(1)] = int(m.group(2))
        self.assertEqual(nx, {"rw-page": FETCH_PAGE, "user-page": FETCH_PAGE, "user-page-sum": FETCH_PAGE,
                              "hole-page": FETCH_ACCESS, "x-page": NO_TRAP})

    # ---- SBI ----

    def test_sbi_garbage(self):
        r = self.run_case("sbi_garbage")
        sbi = {d["name"]: d for d in r.lines("SBI")}
        expect = {
            "eid-deadbeef": -2, "eid-all-ones": -2, "eid-legacy-reserved-9": -2, "eid-legacy-reserved-f": -2,
            "eid-pmu": -2, "eid-susp": -2, "eid-vendor": -2, "base-fid-99": -2, "base-probe-garbage": 0,
            "time-fid-1": -2, "ipi-fid-7": -2, "ipi-base-past-harts": -3, "ipi-mask-past-harts": -3,
            "ipi-base-wraps": -3, "rfence-fid-7": -2, "rfence-bad-hart": -3, "rfence-sfence-huge-range": 0,
            "hsm-fid-9": -2, "hsm-suspend": -2, "hsm-status-99": -3, "srst-fid-1": -2, "srst-type-5": -3,
            "srst-reason-9": -3, "dbcn-fid-9": -2}
        self.assertEqual({k: v["err"] for k, v in sbi.items()}, expect)
        self.assertEqual(sbi["base-probe-garbage"]["value"], 0)
        legacy = {d["name"]: d["ret"] for d in r.lines("LEGACY")}
        self.assertEqual(legacy, {"send-ipi-mask-on-uart": 0, "send-ipi-mask-beyond-ram": 0,
                                  "remote-fence-i-mask-top": 0, "sfence-vma-mask-zero-page": 0, "clear-ipi": 0,
                                  "getchar": -1})
        self.assertEqual(r.field("STILL-ALIVE")["spec"], 0x2000000)

    def test_hsm_bad_args(self):
        r = self.run_case("hsm_bad_args", vcpus=2)
        start = {d["name"]: d["err"] for d in r.lines("START")}
        self.assertEqual(start, {
            "hart-5": SBI_ERR_INVALID_PARAM, "hart-huge": SBI_ERR_INVALID_PARAM, "addr-uart": SBI_ERR_INVALID_ADDRESS,
            "addr-zero": SBI_ERR_INVALID_ADDRESS, "addr-beyond-ram": SBI_ERR_INVALID_ADDRESS,
            "addr-straddle-end": SBI_ERR_INVALID_ADDRESS, "hart-0-running": SBI_ERR_ALREADY_AVAILABLE,
            "good": 0, "again": SBI_ERR_ALREADY_AVAILABLE})
        self.assertEqual((r.field("STATUS", "hart1")["err"], r.field("STATUS", "hart1")["value"]), (0, 1))
        self.assertEqual(r.field("STATUS", "hart-all-ones")["err"], SBI_ERR_INVALID_PARAM)
        self.assertEqual(r.field("HART1")["ran"], 101)
        self.assertEqual(r.field("STATUS", "hart1-after")["value"], 1)

    def test_hsm_odd_start(self):
        # KNOWN HOST BUG (README "Findings" 1): hart_start accepts an odd start address and the
        # hart decodes at pc = RAM end - 1, reading one byte past guest RAM: vigil segfaults.
        # Defined outcomes: the start is refused, or the hart runs (bit 0 dropped) and the
        # guest finishes.
        r = run_guest("hsm_odd_start", vcpus=2, timeout=10)
        self.assertGreaterEqual(r.rc, 0, f"vigil died from signal {-r.rc} (host read outside guest RAM)\n{r.describe()}")
        self.assertEqual(r.rc, EXIT_POWEROFF, r.describe())
        self.assertIn(r.field("START", "odd")["err"], (0, SBI_ERR_INVALID_ADDRESS, SBI_ERR_INVALID_PARAM))
        self.assertIn("HOSTILE-DONE", r.out)

    def test_dbcn_bad_address(self):
        r = self.run_case("dbcn_bad_address")
        dbcn = {d["name"]: d for d in r.lines("DBCN")}
        for name in ("write-uart", "write-plic", "write-beyond-ram", "write-straddle-end", "write-high-word",
                     "write-zero", "write-all-ones", "read-uart", "read-beyond-ram", "read-straddle-end"):
            self.assertEqual((dbcn[name]["err"], dbcn[name]["value"]), (SBI_ERR_INVALID_PARAM, 0), name)
        # base_addr_hi with only bit 32 set names an address above 2^64 on RV64; Vigil reads it
        # as (hi << 32) | lo, so it lands on RAM (README "Findings" 3). Either way only RAM is read.
        self.assertIn(dbcn["write-hi-bit-32"]["err"], (0, SBI_ERR_INVALID_PARAM))
        self.assertEqual((dbcn["write-huge-len"]["err"], dbcn["write-huge-len"]["value"]), (0, 4096))
        # Exactly the clamped 4096 bytes of the buffer were written for the huge length.
        self.assertEqual(r.out.count("z" * 4096), 1)
        self.assertNotIn("z" * 4097, r.out)
        self.assertEqual((dbcn["read-good-no-input"]["err"], dbcn["read-good-no-input"]["value"]), (0, 0))
        self.assertEqual(dbcn["write-byte"]["err"], 0)

    # ---- the machine stops with the reason reported ----

    def test_finisher_fail(self):
        r = self.run_case("finisher_fail", expect_rc=EXIT_CRASH)
        self.assertIn("guest crashed: guest reported failure code 42 through the test device", r.err)

    def test_srst_system_failure(self):
        r = self.run_case("srst_system_failure", expect_rc=EXIT_CRASH)
        for name in ("bad-type", "bad-reason", "vendor-type"):
            self.assertEqual(r.field("SRST", name)["err"], SBI_ERR_INVALID_PARAM)
        self.assertIn("guest crashed: guest shut down reporting a system failure", r.err)
        self.assertNotIn("UNREACHABLE", r.out)


# ------------------------------------------------------------------------------------------
# Neighbour throughput under vigild


def guest_dir():
    d = os.environ.get("VIGIL_GUEST_DIR")
    if not d or not os.path.isfile(os.path.join(d, "Image")):
        raise RuntimeError("VIGIL_GUEST_DIR must name the guest built by scripts/build-guest.sh "
                           "(scripts/test.sh sets it)")
    return d


# The neighbour's fixed CPU job: rounds of a shell counting loop, each printing its own start
# and end (guest uptime, which runs at host wall-clock speed).
NEIGHBOUR_JOB = ("r=0; while :; do r=$((r+1)); read a b < /proc/uptime; i=0; "
                 "while [ $i -lt 1500 ]; do i=$((i+1)); done; read c d < /proc/uptime; echo NB $r $a $c; done")
ROUND_RE = re.compile(r"NB (\d+) (\d+\.\d+) (\d+\.\d+)")


class Vigild:
    def __init__(self, workers):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "vigild.sock")
        self.log = open(os.path.join(self.dir.name, "vigild.log"), "w+")
        self.proc = subprocess.Popen([VIGILD, "--socket", self.sock, "--workers", str(workers)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)

    def request(self, req, timeout=60):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return json.loads(buf)

    def console_history(self, domain):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.sock)
            s.sendall((json.dumps({"op": "console", "domain": domain}) + "\n").encode())
            s.settimeout(0.3)
            data = b""
            # The history comes first, then live output: a domain that prints without pause
            # (a storm's ALIVE lines) would keep this loop going forever, so it is bounded.
            end = time.monotonic() + 2
            while time.monotonic() < end:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
        text = data.decode("utf-8", "replace")
        return text.split("\n", 1)[1] if "\n" in text else ""

    def domains(self):
        return {d["name"]: d for d in self.request({"op": "list"})["domains"]}

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        self.dir.cleanup()
        return out


class ConsoleFollower(threading.Thread):
    """Streams a domain's console and records each finished neighbour round with the host time
    its line arrived."""

    def __init__(self, sock, domain):
        super().__init__(daemon=True)
        self.rounds = []  # (host_arrival, round, guest_start, guest_end)
        self.text = ""
        self.lock = threading.Lock()
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(sock)
        self.s.sendall((json.dumps({"op": "console", "domain": domain}) + "\n").encode())
        self.stop = False

    def run(self):
        buf = ""
        self.s.settimeout(0.5)
        while not self.stop:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            buf += chunk.decode("utf-8", "replace")
            *lines, buf = buf.split("\n")
            with self.lock:
                for line in lines:
                    self.text += line + "\n"
                    m = ROUND_RE.search(line)
                    if m:
                        self.rounds.append((now, int(m.group(1)), float(m.group(2)), float(m.group(3))))

    def durations_between(self, t0, t1):
        """Round durations (s) of rounds that started after host time t0 and ended before t1."""
        with self.lock:
            out = []
            for arrival, _, start, end in self.rounds:
                d = end - start
                if arrival - d >= t0 and arrival <= t1:
                    out.append(d)
            return out

    def close(self):
        self.stop = True
        try:
            self.s.close()
        except OSError:
            pass


WORKERS = 2
# The brief's bound: the neighbour's job may take at most 2.5x as long as alone. On a shared
# host that is already oversubscribed, any busy domain slows the neighbour; the bound then
# stretches to 1.6x what an ordinary busy domain of the same size (busy_control) costs,
# measured just before under the same host load.
RATIO_LIMIT = 2.5
RELATIVE_LIMIT = 1.6
ALONE_S = 3.0
WINDOW_S = 3.5


def typical_round(durations, window):
    """Median round time; with fewer than 2 rounds a lower bound from how few fitted."""
    if len(durations) >= 2:
        return statistics.median(durations), False
    return window / (len(durations) + 1), True


class NeighbourBase(unittest.TestCase):
    """A Debian guest's CPU job beside hostile domains on a 2-worker vigild (one vigild and one
    neighbour boot per subclass)."""

    @classmethod
    def setUpClass(cls):
        cls.results = {}
        g = guest_dir()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = Vigild(WORKERS)
        try:
            cls.start_neighbour(g)
        except BaseException:
            # tearDownClass does not run when setUpClass fails: do not leave vigild behind.
            print(cls.d.close()[-3000:], file=sys.stderr)
            cls.tmp.cleanup()
            raise

    @classmethod
    def start_neighbour(cls, g):
        cfg = os.path.join(cls.tmp.name, "neighbour.cfg")
        job = NEIGHBOUR_JOB.replace('"', '\\"')
        with open(cfg, "w") as f:
            f.write(f'name = "neighbour"\nmemory = 128\nvcpus = 1\nkernel = "{g}/Image"\n'
                    f'ramdisk = "{g}/initramfs.cpio.gz"\n'
                    f'extra = "console=ttyS0 quiet vigil.cmd=\\"{job}\\""\non_poweroff = "preserve"\n')
        r = cls.d.request({"op": "create", "config": cfg})
        if not r.get("ok"):
            raise RuntimeError(f"cannot create the neighbour: {r}")
        cls.follower = ConsoleFollower(cls.d.sock, "neighbour")
        cls.follower.start()
        end = time.monotonic() + 180
        while time.monotonic() < end and len(cls.follower.rounds) < 3:
            time.sleep(0.2)
        if len(cls.follower.rounds) < 3:
            cls.follower.close()
            raise RuntimeError(f"the neighbour's job did not start:\n{cls.follower.text[-2000:]}")
        cls.disk = make_disk(cls.tmp.name, size=128 << 20)

    @classmethod
    def tearDownClass(cls):
        cls.follower.close()
        log = cls.d.close()
        cls.tmp.cleanup()
        if cls.results:
            print("\nneighbour round time (median) alone / beside a busy control domain / beside the hostile "
                  "domain, 2 workers:", file=sys.stderr)
            for name, r in sorted(cls.results.items()):
                print(f"  {name:22s} alone {r['alone_ms']:5.0f} ms  control {r['control_ms']:5.0f} ms "
                      f"(x{r['control_ratio']:.2f})  hostile {'>=' if r['lower_bound'] else '  '}{r['beside_ms']:5.0f} ms "
                      f"(x{r['ratio']:.2f}, {r['relative']:.2f} of control)", file=sys.stderr)
            out = os.environ.get("HOSTILE_BUILD_DIR")
            if out:
                with open(os.path.join(out, f"neighbour-ratios-{cls.__name__}.json"), "w") as f:
                    json.dump(cls.results, f, indent=1)
        if "Segmentation" in log or "terminate called" in log:
            raise AssertionError(f"vigild log shows a crash:\n{log[-3000:]}")

    def domain(self, name, image, vcpus, disk=False):
        cfg = os.path.join(self.tmp.name, name + ".cfg")
        with open(cfg, "w") as f:
            f.write(f'name = "{name}"\nmemory = 64\nvcpus = {vcpus}\nkernel = "{image}"\n'
                    f'on_crash = "preserve"\non_poweroff = "preserve"\n')
            if disk:
                f.write(f'disk = [ "format=raw, vdev=xvda, access=rw, target={self.disk}" ]\n')
        r = self.d.request({"op": "create", "config": cfg})
        self.assertTrue(r.get("ok"), r)

    def window_beside(self, name, marker, expect_state="running"):
        """Waits for `marker` on the domain's console, then measures the neighbour for WINDOW_S."""
        end = time.monotonic() + 30
        while time.monotonic() < end and marker not in self.d.console_history(name):
            time.sleep(0.1)
        self.assertIn(marker, self.d.console_history(name), f"{name} did not get going")
        t1 = time.monotonic()
        time.sleep(WINDOW_S)
        # The control plane answers while the domain runs.
        q0 = time.monotonic()
        doms = self.d.domains()
        api_latency = time.monotonic() - q0
        durations = self.follower.durations_between(t1, time.monotonic())
        self.assertEqual(doms[name]["state"], expect_state, doms[name])
        self.assertEqual(doms["neighbour"]["state"], "running")
        self.assertLess(api_latency, 2.0, f"vigild's API stalled beside {name}")
        return durations

    def destroy(self, name):
        t0 = time.monotonic()
        self.d.request({"op": "destroy", "domain": name})
        took = time.monotonic() - t0
        self.assertTrue(self.d.alive(), "vigild died")
        self.assertNotIn(name, self.d.domains())
        return took

    def measure(self, case, vcpus, defines, marker, disk):
        """One alone / control / hostile measurement; returns (results, problems)."""
        self.assertTrue(self.d.alive(), "vigild died")
        # 1. The neighbour alone.
        t0 = time.monotonic()
        time.sleep(ALONE_S)
        alone = self.follower.durations_between(t0, time.monotonic())
        # 2. Beside an ordinary busy domain of the same size (the host-load control).
        self.domain("control", guests.build("busy_control"), vcpus)
        try:
            control = self.window_beside("control", "ALIVE 0")
        finally:
            self.destroy("control")
        # 3. Beside the hostile domain.
        name = f"hostile-{case}"
        self.domain(name, guests.build(case, defines), vcpus, disk)
        try:
            beside = self.window_beside(name, marker)
        finally:
            destroy_s = self.destroy(name)
        self.assertGreaterEqual(len(alone), 2, f"too few neighbour rounds alone: {alone}")
        a, _ = typical_round(alone, ALONE_S)
        c, _ = typical_round(control, WINDOW_S)
        b, lower = typical_round(beside, WINDOW_S)
        ratio, control_ratio = b / a, c / a
        limit = max(RATIO_LIMIT, RELATIVE_LIMIT * control_ratio)
        res = {"alone_ms": a * 1000, "control_ms": c * 1000, "beside_ms": b * 1000, "lower_bound": lower,
               "ratio": ratio, "control_ratio": control_ratio, "relative": b / c, "limit": limit,
               "destroy_s": destroy_s}
        print(f"\n[neighbour] {case}: alone {a * 1000:.0f} ms, beside control {c * 1000:.0f} ms (x{control_ratio:.2f}), "
              f"beside hostile {'>=' if lower else ''}{b * 1000:.0f} ms (x{ratio:.2f}; limit x{limit:.2f}), "
              f"destroy {destroy_s:.2f} s", file=sys.stderr)
        problems = []
        if ratio >= limit:
            problems.append(f"{case} slowed the neighbour x{ratio:.2f} (limit x{limit:.2f}; an ordinary busy domain: "
                            f"x{control_ratio:.2f}); rounds alone {alone}, beside control {control}, beside {case} {beside}")
        if destroy_s >= 10.0:
            problems.append(f"destroying {name} took {destroy_s:.1f} s")
        return res, problems

    def hostile(self, case, vcpus=1, defines=("FOREVER",), marker="ALIVE", disk=False):
        # The host is shared: one noisy measurement is repeated once; a real problem fails both.
        res, problems = self.measure(case, vcpus, defines, marker, disk)
        if problems:
            print(f"[neighbour] {case}: measuring again", file=sys.stderr)
            res, again = self.measure(case, vcpus, defines, marker, disk)
            problems = [f"attempt 1: {p}" for p in problems] + [f"attempt 2: {p}" for p in again] if again else []
        type(self).results[case] = res
        self.assertFalse(problems, "\n".join(problems))


class Neighbour(NeighbourBase):
    """The floods and storms, each beside the neighbour in turn."""

    def test_mmio_flood_uart(self):
        self.hostile("mmio_flood_uart")

    def test_mmio_flood_plic(self):
        self.hostile("mmio_flood_plic")

    def test_ipi_storm(self):
        self.hostile("ipi_storm", vcpus=2)

    def test_timer_storm(self):
        self.hostile("timer_storm")

    def test_trap_storm(self):
        self.hostile("trap_storm")

    def test_smc_storm(self):
        self.hostile("smc_storm")

    def test_fence_i_storm(self):
        self.hostile("fence_i_storm", vcpus=2)

    def test_spin_irqs_off(self):
        self.hostile("spin_irqs_off", defines=(), marker="SPINNING")

    def test_trap_loop_bad_stvec(self):
        self.hostile("trap_loop_bad_stvec", defines=(), marker="LOOPING")

    def test_finisher_fail_crashes_only_itself(self):
        name = "hostile-finisher_fail"
        cfg = os.path.join(self.tmp.name, name + ".cfg")
        with open(cfg, "w") as f:
            f.write(f'name = "{name}"\nmemory = 64\nkernel = "{guests.build("finisher_fail")}"\n'
                    f'on_crash = "preserve"\n')
        n = len(self.follower.rounds)
        self.assertTrue(self.d.request({"op": "create", "config": cfg}).get("ok"))
        end = time.monotonic() + 30
        while time.monotonic() < end and self.d.domains()[name]["state"] != "crashed":
            time.sleep(0.1)
        dom = self.d.domains()[name]
        self.assertEqual(dom["state"], "crashed", dom)
        self.assertIn("failure code 42", dom["stop_reason"])
        self.assertEqual(self.d.domains()["neighbour"]["state"], "running")
        end = time.monotonic() + 10
        while time.monotonic() < end and len(self.follower.rounds) <= n + 1:
            time.sleep(0.1)
        self.assertGreater(len(self.follower.rounds), n + 1, "the neighbour stopped making progress")
        self.d.request({"op": "destroy", "domain": name})


class NeighbourAmplify(NeighbourBase):
    """virtio_blk_amplify beside the neighbour (its own vigild: README "Findings" 2 and 3)."""

    def test_virtio_blk_amplify(self):
        self.hostile("virtio_blk_amplify", vcpus=2, disk=True)


if __name__ == "__main__":
    unittest.main()
