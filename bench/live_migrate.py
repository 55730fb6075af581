#!/usr/bin/env python3
"""Live-migration figures (issue 11): downtime, total time and bytes between two vigilds on
loopback, for a 256 MiB guest under a light and a heavy dirtying workload.

  light: vtest-memcheck over a 16 MiB hot set, 50 ms sleep between passes
  heavy: vtest-memcheck over 160 MiB without sleeping (every page rewritten continuously)

Each migration goes A -> B -> A ... (--repeat times). Figures are vigild's own (the source's
migrate-status: downtime = source pause to the destination's STARTED; total; bytes; rounds),
plus the longest gap between two consecutive checker passes measured by the guest's own
CLOCK_MONOTONIC around the migrations (the guest clock is frozen while paused and resumes
where it stopped, so this shows only what the guest itself can observe). A run that does not
converge is reported with its outcome (cancelled after kRoundsWithoutProgress rounds).

    bench/live_migrate.py                       # --repeat 5, --downtime 300
    bench/live_migrate.py --repeat 10 --downtime 30
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_live_migrate import listen_port  # noqa: E402
from test_migrate import console, passes  # noqa: E402

WORKLOADS = {"light": (16, 50), "heavy": (160, 0)}


def status(v, dom_id):
    return v.request({"op": "migrate-status", "domain": dom_id})


def run_workload(tmp, name, mib, sleep_ms, args, token):
    vargs = ["--migrate-listen", "127.0.0.1:0", "--migrate-token-file", token]
    a, b = Vigild(extra_args=vargs), Vigild(extra_args=vargs)
    try:
        port = {id(a): listen_port(a), id(b): listen_port(b)}
        cfg = write_domain_config(tmp, name, f"vtest-memcheck {mib} 0 {sleep_ms}", memory=256, vcpus=1,
                                  quote_cmd=True)
        assert a.request({"op": "create", "config": cfg}).get("ok")
        assert wait_for(lambda: len(passes(console(a, name))) >= 3, 300), console(a, name)[-2000:]
        here, there, results = a, b, []
        for _ in range(args.repeat):
            dom_id = here.domains()[name]["id"]
            r = here.request({"op": "migrate", "domain": name, "host": "127.0.0.1", "port": port[id(there)],
                              "downtime_ms": args.downtime, "timeout_s": args.timeout})
            assert r.get("ok"), r
            assert wait_for(lambda: status(here, dom_id).get("phase") not in
                            ("connecting", "precopy", "stop-and-copy", "committing"), args.timeout + 60, step=0.05)
            s = status(here, dom_id)
            results.append(s)
            if s["phase"] != "done":
                break
            here, there = there, here
            before = len(passes(console(here, name)))
            assert wait_for(lambda: len(passes(console(here, name))) > before + 1, 120)
        text = console(here, name)
        assert "MISMATCH" not in text, text[-2000:]
        p = passes(text)
        gaps = [t1 - t0 for (_, t0, _), (_, t1, _) in zip(p, p[1:])]
        return results, gaps
    finally:
        a.close()
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--downtime", type=float, default=300, help="downtime budget, ms")
    ap.add_argument("--timeout", type=float, default=60, help="per-migration timeout, s")
    ap.add_argument("--workloads", default="light,heavy")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "live_migrate.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        token = os.path.join(tmp, "token")
        fd = os.open(token, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"bench-token-0123456789\n")
        os.close(fd)
        for w in args.workloads.split(","):
            mib, sleep_ms = WORKLOADS[w]
            results, gaps = run_workload(tmp, f"lm-{w}", mib, sleep_ms, args, token)
            done = [r for r in results if r["phase"] == "done"]
            row = {"workload": w, "hot_mib": mib, "sleep_ms": sleep_ms, "attempts": len(results),
                   "done": len(done), "outcomes": [r["phase"] for r in results],
                   "errors": [r.get("error", "") for r in results if r["phase"] != "done"]}
            if done:
                row.update({
                    "downtime_ms_median": statistics.median(r["downtime_ms"] for r in done),
                    "downtime_ms_max": max(r["downtime_ms"] for r in done),
                    "total_ms_median": statistics.median(r["total_ms"] for r in done),
                    "mib_sent_median": statistics.median(r["bytes_sent"] for r in done) / (1 << 20),
                    "rounds_median": statistics.median(r["round"] + 1 for r in done),
                })
            if gaps:
                row.update({"guest_gap_ms_median": statistics.median(gaps) * 1000, "guest_gap_ms_max": max(gaps) * 1000})
            rows.append(row)
    print(f"downtime budget {args.downtime:.0f} ms, 256 MiB guest, 1 vCPU, loopback")
    print("| workload | done | downtime median / max | total | sent | rounds | guest pass gap median / max |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["done"]:
            print(f"| {r['workload']} ({r['hot_mib']} MiB, {r['sleep_ms']} ms sleep) | {r['done']}/{r['attempts']} "
                  f"| {r['downtime_ms_median']:.0f} / {r['downtime_ms_max']:.0f} ms | {r['total_ms_median']:.0f} ms "
                  f"| {r['mib_sent_median']:.1f} MiB | {r['rounds_median']:.0f} "
                  f"| {r.get('guest_gap_ms_median', 0):.0f} / {r.get('guest_gap_ms_max', 0):.0f} ms |")
        else:
            print(f"| {r['workload']} ({r['hot_mib']} MiB, {r['sleep_ms']} ms sleep) | 0/{r['attempts']} "
                  f"| {r['outcomes']}: {r['errors'][:1]} | | | | |")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host_cpus": os.cpu_count(),
                   "downtime_budget_ms": args.downtime, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
