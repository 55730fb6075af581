#!/usr/bin/env python3
"""vm_event benchmark: what monitoring costs.

1. build/bench/monitor_bench (C++, Google Benchmark) on a bare hart: round trip of one
   synchronous event in-process (C++ callback) and out-of-process (another process answering
   over the session socket vigild uses), median and p99, and events per second.
2. A Linux guest under vigild running a CPU-and-syscall workload (guest/tests/vtest-monitor.c
   `bench`: 1000 rounds of xorshift between getppid() calls), timed by the guest itself:
   untraced, with every system call traced (`vigil trace --syscalls`: entry and return,
   asynchronous) and with every system call a synchronous event answered by `vigil monitor`;
   and with a gdb write watchpoint (Z2) on a page the workload never writes (linux_banner).

    bench/monitor.py [--rounds N] [--repeat K] [--guest DIR] [--json PATH]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))


def guest_default():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build-guest.sh")], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def micro(binary):
    r = subprocess.run([binary, "--benchmark_format=json"], stdout=subprocess.PIPE, text=True, check=True)
    out = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        name = b["name"].split("/")[0]
        out[name] = {k: b[k] for k in ("median_ns", "p99_ns", "events_per_s", "insns_per_s", "lost") if k in b}
    return out


def gdb_watch(d, domain, addr):
    """Attaches a raw gdb client, sets a write watchpoint (Z2) on `addr` and continues; returns
    the function that detaches it. What the watched page costs when the guest never writes it."""
    from test_gdb import Rsp, frame  # noqa: E402
    out = d.vigil("gdbserver", domain, "--port", "0").stdout
    port = int(re.search(r"gdbserver on 127\.0\.0\.1:(\d+)", out).group(1))
    c = Rsp(port)
    c.cmd("?")
    assert c.cmd(f"Z2,{addr:x},8") == "OK"
    c.s.sendall(frame(b"c"))
    assert c.ack() == "+"

    def done():
        c.s.sendall(b"\x03")
        c.read_packet()
        assert c.cmd(f"z2,{addr:x},8") == "OK"
        c.s.sendall(frame(b"D"))
        c.close()
        d.vigil("gdbserver-stop", domain)
    return done


def guest_workload(args):
    os.environ["VIGIL_GUEST_DIR"] = args.guest
    os.environ.setdefault("VIGIL_BIN", os.path.join(ROOT, "build", "apps", "vigil"))
    from test_domains import Vigild  # noqa: E402
    from test_monitor import write_config  # noqa: E402
    from test_gdb import symbol  # noqa: E402
    from guest import VIGIL  # noqa: E402
    d = Vigild()
    cfgdir = tempfile.TemporaryDirectory()
    results = {}
    try:
        d.vigil("create", write_config(cfgdir.name, "work", f"while :; do vtest-monitor bench {args.rounds}; done"))

        def times():
            return [float(x) for x in re.findall(r"VTEST-MON bench rounds=\d+ seconds=([\d.]+)", d.console("work", 0))]

        def measure(label, client_args, attach=None):
            client = None
            held = attach() if attach else None
            if client_args:
                client = subprocess.Popen([VIGIL, "--socket", d.sock, *client_args], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)
                time.sleep(1.0)
            start = len(times())
            # The round running when the phase started is not counted.
            while len(times()) < start + 1 + args.repeat:
                if client and client.poll() is not None:
                    raise RuntimeError(f"{label}: the monitor exited: {client.stderr.read()}")
                time.sleep(0.5)
            t = sorted(times()[start + 1:start + 1 + args.repeat])
            if client:
                client.terminate()
                client.wait()
                client.stderr.close()
            if held:
                held()
            results[label] = {"median_s": t[len(t) // 2], "runs": t}
            print(f"  {label:<28} {t[len(t) // 2]:.3f} s (runs {', '.join(f'{x:.3f}' for x in t)})", flush=True)

        while len(times()) < 1:  # boot and one warm-up round
            time.sleep(0.5)
        measure("untraced", None)
        measure("all syscalls traced", ["trace", "work", "--syscalls"])
        measure("all syscalls synchronous", ["monitor", "work", "--events", "syscall", "--sync", "--quiet"])
        measure("all syscalls synchronous, socket", ["monitor", "work", "--events", "syscall", "--sync", "--quiet",
                                                      "--transport", "socket"])
        measure("gdb watchpoint, unwritten page", None, lambda: gdb_watch(d, "work", symbol("linux_banner")))
        measure("untraced again", None)
    finally:
        d.close()
        cfgdir.cleanup()
    base = (results["untraced"]["median_s"] + results["untraced again"]["median_s"]) / 2
    for k in ("all syscalls traced", "all syscalls synchronous", "all syscalls synchronous, socket",
              "gdb watchpoint, unwritten page"):
        results[k]["slowdown"] = results[k]["median_s"] / base
    # Each round makes `rounds` getppid() calls plus a handful for startup and printing.
    for k, name in (("all syscalls synchronous", "per_sync_syscall_us_through_vigild"),
                    ("all syscalls synchronous, socket", "per_sync_syscall_us_through_vigild_socket")):
        results[name] = (results[k]["median_s"] - base) / args.rounds * 1e6
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "monitor_bench"))
    p.add_argument("--guest", default=None)
    p.add_argument("--rounds", type=int, default=20000, help="getppid() calls per guest run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "monitor.json"))
    args = p.parse_args()
    args.guest = args.guest or guest_default()

    print("micro-benchmark (bare hart, one event per loop iteration):", flush=True)
    m = micro(args.bench)
    for name, v in m.items():
        extra = ", ".join(f"{k} {v[k]:.4g}" for k in v)
        print(f"  {name:<22} {extra}")
    print(f"guest workload (vtest-monitor bench {args.rounds}, guest-timed, median of {args.repeat}):", flush=True)
    g = guest_workload(args)
    out = {"host_load": os.getloadavg(), "micro": m, "guest": g}
    print(f"slowdown, all syscalls traced:      {g['all syscalls traced']['slowdown']:.2f}x")
    print(f"slowdown, all syscalls synchronous: {g['all syscalls synchronous']['slowdown']:.2f}x "
          f"({g['per_sync_syscall_us_through_vigild']:.1f} us per synchronous system call through vigild)")
    print(f"slowdown, the same over the socket: {g['all syscalls synchronous, socket']['slowdown']:.2f}x "
          f"({g['per_sync_syscall_us_through_vigild_socket']:.1f} us per call)")
    print(f"slowdown, a gdb watchpoint on a page the guest never writes: "
          f"{g['gdb watchpoint, unwritten page']['slowdown']:.2f}x")
    print(f"host load average: {out['host_load'][0]:.2f}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
