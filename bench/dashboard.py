#!/usr/bin/env python3
"""What one dashboard poll (GET /api/dashboard) costs vigild, with 16 domains (issue 13).

bench/metrics.py's method on the dashboard's endpoint: one vigild (`--dashboard 127.0.0.1:0`)
boots 16 idle domains of the test guest (64 MiB, `sleep 100000`); then, for --rounds rounds,
a quiet window and a polling window of --window seconds each alternate; in the polling window
GET /api/dashboard goes out every --interval seconds over a fresh connection. Reported as
medians over the rounds: vigild's CPU per request (utime+stime in the polling window minus
the quiet window, over the requests), the client's latency (median, p99) and the body size.
Output: a Markdown table on stdout, JSON in bench/results/dashboard.json (or --json PATH).
"""

import argparse
import datetime
import http.client
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time

# bench/sched.py (Vigild, wait_booted), loaded by path: its name would clash with Python's sched.
_spec = importlib.util.spec_from_file_location(
    "vigil_bench_sched", os.path.join(os.path.dirname(os.path.abspath(__file__)), "sched.py"))
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)

ROOT = sb.ROOT

# bench/metrics.py: the same measurement for another endpoint.
_mspec = importlib.util.spec_from_file_location(
    "vigil_bench_metrics", os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.py"))
mb = importlib.util.module_from_spec(_mspec)
_mspec.loader.exec_module(mb)


def log(msg):
    print(f"dashboard: {msg}", file=sys.stderr, flush=True)


def dashboard_port(v):
    return mb.served_port(v, r"dashboard on http://[^:]+:(\d+)/", "the dashboard")


def poll(port):
    return mb.http_get(port, "/api/dashboard")


def main():
    args = mb.endpoint_args(__doc__, "dashboard")
    v = sb.Vigild(args, extra=["--dashboard", "127.0.0.1:0"])
    try:
        port = dashboard_port(v)
        mb.boot_idle(v, args)
        _, body = poll(port)
        doc = json.loads(body)
        if len(doc["domains"]) != args.domains:
            raise sb.MeasureError(f"/api/dashboard lists {len(doc['domains'])} domains, not {args.domains}")
        per_req, lat = mb.cost_per_request(v, lambda: poll(port), args.rounds, args.window, args.interval, log)
        res = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip(),
            "domains": args.domains, "body_bytes": len(body),
            "cpu_per_request_ms": statistics.median(per_req), "cpu_per_request_rounds_ms": per_req,
            "latency_median_ms": statistics.median(lat) * 1000,
            "latency_p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000, "requests": len(lat),
        }
    finally:
        v.stop()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=2)
    print("| domains | body | vigild CPU per request (median of rounds) | latency median | p99 |")
    print("|---|---|---|---|---|")
    print(f"| {res['domains']} | {len(body)} B | {res['cpu_per_request_ms']:.3f} ms | "
          f"{res['latency_median_ms']:.2f} ms | {res['latency_p99_ms']:.2f} ms |")


if __name__ == "__main__":
    main()
