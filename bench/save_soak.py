#!/usr/bin/env python3
"""Soak: `save -c` (or pause/unpause) of a running 2-vCPU memcheck guest, again and again,
until the guest stops making progress (issue 11's intermittent stall) or N rounds pass.

The guest is e2e.migrate's: 256 MiB, vtest-memcheck over 160 MiB (100 ms between passes) and a
shell loop appending to a file on its virtio-blk disk. After each round the checker must
finish two more passes within 60 s. On a stall the script prints what the scheduler and the
harts say (`vcpu-list`: state, when the timer wakes each vCPU, mtime against mtimecmp/stimecmp,
mip), the processes seen from outside (`vigil ps`), the tail of the guest's kernel log
(`vigil dmesg`), then pauses and unpauses once and says whether the guest recovers.

    bench/save_soak.py [--rounds 60] [--op save|pause]

One stall seen on 2026-12-06 (round 4 and round 20 of two runs, none in a third run of 60):
both vCPUs blocked, their wake-up ~30 ms in the past, stimecmp behind mtime and mip 0, the
guest's tick still advancing between two looks but the checker silent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from guest import VIGIL, write_domain_config  # noqa: E402
from test_devices import make_ext2  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_migrate import console, job, last_pass  # noqa: E402


def report(d, name):
    print(json.dumps(d.request({"op": "vcpu-list", "domain": name})), flush=True)
    for verb in ("ps", "dmesg"):
        try:
            r = subprocess.run([VIGIL, "--socket", d.sock, verb, name], capture_output=True, text=True, timeout=30)
            print(f"--- vigil {verb}\n{(r.stdout + r.stderr)[-3000:]}", flush=True)
        except subprocess.TimeoutExpired:
            print(f"--- vigil {verb}: no answer in 30 s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--op", choices=("save", "pause"), default="save")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Vigild()
        try:
            img = os.path.join(tmp, "mc.img")
            make_ext2(img)
            cfg = write_domain_config(tmp, "mc", job(160), memory=256, vcpus=2, quote_cmd=True,
                                      extra_lines=f'disk = [ "{img}" ]\n')
            d.vigil("create", cfg)
            assert wait_for(lambda: last_pass(console(d, "mc")) >= 2, 300), console(d, "mc")[-2000:]
            snap = os.path.join(tmp, "keep.snap")
            for i in range(args.rounds):
                before = last_pass(console(d, "mc"))
                if args.op == "save":
                    if os.path.exists(snap):
                        os.unlink(snap)
                    r = d.request({"op": "save", "domain": "mc", "file": snap, "after": "keep"})
                else:
                    r = d.request({"op": "pause", "domain": "mc"})
                    time.sleep(0.2)
                    r = d.request({"op": "unpause", "domain": "mc"})
                assert r.get("ok"), r
                if wait_for(lambda: last_pass(console(d, "mc")) >= before + 2, 60):
                    print(f"round {i}: ok (pass {last_pass(console(d, 'mc'))})", flush=True)
                    continue
                print(f"STALL after round {i} at pass {before}", flush=True)
                report(d, "mc")
                d.request({"op": "pause", "domain": "mc"})
                time.sleep(0.2)
                d.request({"op": "unpause", "domain": "mc"})
                recovered = wait_for(lambda: last_pass(console(d, "mc")) > before, 30)
                print(f"after one more pause/unpause: {'recovered' if recovered else 'still stalled'}", flush=True)
                report(d, "mc")
                sys.exit(1)
            print(f"{args.rounds} rounds of {args.op}: no stall")
        finally:
            d.close()


if __name__ == "__main__":
    main()
