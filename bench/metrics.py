#!/usr/bin/env python3
"""What a Prometheus scrape costs vigild (issue 13: at most 1 ms per scrape with 16 domains).

One vigild (`--metrics 127.0.0.1:0`) boots 16 idle domains of the test guest (64 MiB,
`vigil.cmd=sleep 100000`, as bench/sched.py's idle job). Once they have settled, the job
alternates, for --rounds rounds, a quiet window and a scrape window of --window seconds
each: in the scrape window GET /metrics is sent every --interval seconds over a fresh
connection, as Prometheus does per scrape target. Reported, as medians over the rounds:

  cpu_per_scrape_ms   (vigild's CPU time in the scrape window - in the quiet window) / scrapes,
                      from utime+stime of /proc/PID/stat: what a scrape costs vigild itself
  latency_ms          the client's wall time per scrape (connect, request, whole body),
                      median and 99th percentile over all scrapes
  body_bytes, series  the size of one exposition

Quiet and scrape windows are interleaved so that background load (the idle guests' timers)
shows in both and cancels. Output: a Markdown table on stdout, JSON in
bench/results/metrics.json (or --json PATH).
"""

import argparse
import datetime
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time

import importlib.util  # noqa: E402

# bench/sched.py (Vigild, wait_booted), loaded by path: its name would clash with Python's sched.
_spec = importlib.util.spec_from_file_location(
    "vigil_bench_sched", os.path.join(os.path.dirname(os.path.abspath(__file__)), "sched.py"))
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)

ROOT = sb.ROOT


def log(msg):
    print(f"metrics: {msg}", file=sys.stderr, flush=True)


def served_port(v, pattern, what, timeout=10):
    """The port in the first line of vigild's log matching `pattern` (one group)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, v.log_text())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise sb.MeasureError(f"vigild did not say where it serves {what}: {v.log_text()}")


def metrics_port(v):
    return served_port(v, r"metrics on http://[^:]+:(\d+)/metrics", "metrics")


def http_get(port, path):
    """(wall seconds, body) of one GET over a fresh connection, as a scraper or a page does."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise sb.MeasureError(f"GET {path} answered {r.status}")
    return dt, body


def scrape(port):
    return http_get(port, "/metrics")


def cost_per_request(v, request, rounds, window, interval, logf, noun="request"):
    """Interleaved quiet and busy windows: ([vigild CPU ms per request, per round], [latencies])."""
    per, lat = [], []
    for rnd in range(rounds):
        c0 = v.proc_cpu_seconds()
        time.sleep(window)
        quiet = v.proc_cpu_seconds() - c0
        c0 = v.proc_cpu_seconds()
        end = time.monotonic() + window
        n = 0
        while time.monotonic() < end:
            dt, _ = request()
            lat.append(dt)
            n += 1
            time.sleep(interval)
        busy = v.proc_cpu_seconds() - c0
        per.append((busy - quiet) / n * 1000)
        logf(f"round {rnd + 1}: {n} {noun}s, vigild CPU {busy:.3f} s vs {quiet:.3f} s quiet "
             f"-> {per[-1]:.3f} ms per {noun}")
    lat.sort()
    return per, lat


def endpoint_args(doc, name):
    """The options of an endpoint-cost bench (this one, bench/dashboard.py), parsed."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigild", default=os.path.join(ROOT, "build", "apps", "vigild"))
    p.add_argument("--vigil", default=os.path.join(ROOT, "build", "apps", "vigil"))
    p.add_argument("--guest", help="guest directory (default: last line of scripts/build-guest.sh)")
    p.add_argument("--domains", type=int, default=16)
    p.add_argument("--memory", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--boot-timeout", type=float, default=300)
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results", f"{name}.json"))
    args = p.parse_args()
    if not args.guest:
        args.guest = subprocess.run([os.path.join(ROOT, "scripts", "build-guest.sh")], capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1]
    return args


def boot_idle(v, args):
    """Boots --domains idle domains of --memory MiB and lets their `sleep` start."""
    names = [f"idle{i:02d}" for i in range(args.domains)]
    for n in names:
        v.create(n, args.memory, sb.IDLE_CMD)
    sb.wait_booted(v, names, args.boot_timeout)
    time.sleep(5)  # the guests' `sleep` starting up


def main():
    args = endpoint_args(__doc__, "metrics")
    v = sb.Vigild(args, extra=["--metrics", "127.0.0.1:0"])
    try:
        port = metrics_port(v)
        boot_idle(v, args)
        _, body = scrape(port)
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        per_scrape, lat = cost_per_request(v, lambda: scrape(port), args.rounds, args.window, args.interval, log,
                                           "scrape")
        res = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip(),
            "domains": args.domains, "series": series, "body_bytes": len(body),
            "cpu_per_scrape_ms": statistics.median(per_scrape), "cpu_per_scrape_rounds_ms": per_scrape,
            "latency_median_ms": statistics.median(lat) * 1000,
            "latency_p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000, "scrapes": len(lat),
            "target_ms": 1.0,
        }
    finally:
        v.stop()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=2)
    ok = "met" if res["cpu_per_scrape_ms"] <= 1.0 else "MISSED"
    print("| domains | series | body | vigild CPU per scrape (median of rounds) | latency median | p99 | target |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {res['domains']} | {series} | {len(body)} B | {res['cpu_per_scrape_ms']:.3f} ms | "
          f"{res['latency_median_ms']:.2f} ms | {res['latency_p99_ms']:.2f} ms | <= 1 ms: {ok} |")


if __name__ == "__main__":
    main()
