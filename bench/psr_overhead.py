#!/usr/bin/env python3
"""What cache monitoring costs a guest (issue 10): the same CPU- and memory-bound job in a
vigild domain without and with monitoring attached (psr_cmt = 1: 1 page in 128 of the
guest's RAM leaves the TLB fast path and translated code, and every access to it feeds the
cache model).

Job: `dd if=/dev/zero bs=1M count=64 | sha256sum` in the test guest (as bench/vs_qemu.py),
timed by the guest's own clock (/proc/uptime, 10 ms resolution, around it), runs interleaved off/on, one domain
at a time in its own vigild. Reports the median of --repeat runs of each and the ratio.

  bench/psr_overhead.py [--repeat 3] [--guest DIR] [--json bench/results/psr_overhead.json]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

JOB = ("s=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=1M count=64 2>/dev/null | sha256sum; "
       "e=$(cut -d' ' -f1 /proc/uptime); echo PSR-BENCH $s $e")
ZEROS_64M = "3b6a07d0d404fab4e23b6d34bc6696a6a312dd92821332385e5af7c01c421351"


def one_run(monitored):
    from guest import write_domain_config
    from test_domains import Vigild, wait_for
    d = Vigild(workers=2)
    cfg = tempfile.TemporaryDirectory()
    try:
        d.vigil("create", write_domain_config(cfg.name, "bench", JOB, memory=256, quote_cmd=True,
                                              extra_lines="psr_cmt = 1\n" if monitored else ""))
        if not wait_for(lambda: re.search(r"PSR-BENCH [\d.]+ [\d.]+", d.console("bench", 0)), 600, step=1):
            raise SystemExit(f"the job did not finish:\n{d.console('bench', 0)[-2000:]}")
        out = d.console("bench", 0)
        if ZEROS_64M not in out:
            raise SystemExit(f"wrong sha256:\n{out[-2000:]}")
        m = re.search(r"PSR-BENCH ([\d.]+) ([\d.]+)", out)
        return float(m.group(2)) - float(m.group(1))
    finally:
        d.close()
        cfg.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--guest", help="guest dir (default: $VIGIL_GUEST_DIR or scripts/build-guest.sh)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "psr_overhead.json"))
    a = ap.parse_args()
    if a.guest:
        os.environ["VIGIL_GUEST_DIR"] = a.guest
    elif not os.environ.get("VIGIL_GUEST_DIR"):
        os.environ["VIGIL_GUEST_DIR"] = subprocess.run(
            [os.path.join(ROOT, "scripts", "build-guest.sh")], stdout=subprocess.PIPE, text=True,
            check=True).stdout.strip().splitlines()[-1]
    times = {False: [], True: []}
    for i in range(a.repeat):
        for monitored in (False, True):
            t = one_run(monitored)
            times[monitored].append(t)
            print(f"run {i + 1}: monitoring {'on ' if monitored else 'off'} {t:.2f} s", flush=True)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"sha256 of 64 MiB: off {off:.2f} s, on {on:.2f} s (median of {a.repeat}), on/off {on / off:.3f}")
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"job": "sha256-64MiB", "off_s": times[False], "on_s": times[True],
                   "median_off_s": off, "median_on_s": on, "ratio": on / off,
                   "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=2)


if __name__ == "__main__":
    main()
