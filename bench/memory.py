#!/usr/bin/env python3
"""vigild's own memory per domain, beyond the guests' touched RAM (issue 12: at most 8 MiB per
domain; Firecracker's VMM overhead is at most 5 MiB).

One vigild boots --domains idle domains of the test guest (--memory MiB each,
`vigil.cmd=sleep 100000`, as bench/sched.py's idle job) and waits until their CPU use settles.
Then it reads /proc/PID/smaps of vigild:

  guest RAM      the resident size of the guest RAM mappings: read-write, anonymous, exactly --memory MiB,
                 each followed by vigild's 4 KiB PROT_NONE guard page (exactly --domains of them
                 must be found), i.e. the pages the guests have touched
  everything     Pss from smaps_rollup (all of vigild's resident memory: heaps, thread stacks, per-page tables
                 of the P2m/decoded pages/breakpoints, translated code, device buffers, libraries)
  baseline       the same figure for the same vigild before it created any domain

and reports (everything - guest RAM - baseline) / domains as the per-domain overhead, with the
baseline shown apart (the libraries and the process itself, paid once per host, not per domain).
Output: a Markdown table on stdout, JSON in bench/results/memory.json (or --json PATH).
"""

import argparse
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

_spec = importlib.util.spec_from_file_location(
    "vigil_bench_sched", os.path.join(os.path.dirname(os.path.abspath(__file__)), "sched.py"))
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)
ROOT = sb.ROOT


def log(msg):
    print(f"memory: {msg}", file=sys.stderr, flush=True)


def smaps(pid):
    """[(size_kib, rss_kib, name, anonymous)] for every mapping of the process."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$", line)
            if head:
                if cur:
                    out.append(cur)
                lo, hi = int(head.group(1), 16), int(head.group(2), 16)
                cur = {"size": (hi - lo) // 1024, "rss": 0, "perms": head.group(3), "inode": int(head.group(4)),
                       "name": head.group(5).strip()}
                continue
            # Pss, not Rss: translated code is one memfd mapped twice (written through one view,
            # run from the other), and Rss would count each of its pages twice.
            m = re.match(r"^Pss:\s+(\d+) kB", line)
            if m and cur:
                cur["rss"] = int(m.group(1))
    if cur:
        out.append(cur)
    return out


def vm_rss_kib(pid):
    """The process's proportional set size (what it holds resident, shared pages split)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))


def settle(v, timeout):
    deadline = time.monotonic() + timeout
    prev = sum(d["cpu_seconds"] for d in v.domains().values())
    while True:
        time.sleep(2)
        cur = sum(d["cpu_seconds"] for d in v.domains().values())
        if cur - prev < 0.05:
            return
        if time.monotonic() > deadline:
            raise sb.MeasureError(f"the idle domains still used {cur - prev:.2f} s CPU per 2 s after {timeout} s")
        prev = cur


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigild", default=os.path.join(ROOT, "build", "apps", "vigild"))
    p.add_argument("--vigil", default=os.path.join(ROOT, "build", "apps", "vigil"))
    p.add_argument("--guest", help="guest directory (default: last line of scripts/build-guest.sh)")
    p.add_argument("--domains", type=int, default=16)
    p.add_argument("--memory", type=int, default=96)  # not 64: glibc reserves 64 MiB heaps
    p.add_argument("--boot-timeout", type=float, default=600)
    p.add_argument("--settle-timeout", type=float, default=120)
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "memory.json"))
    args = p.parse_args()
    if not args.guest:
        args.guest = subprocess.run([os.path.join(ROOT, "scripts", "build-guest.sh")], capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1]
    v = sb.Vigild(args)
    try:
        time.sleep(1)
        baseline = vm_rss_kib(v.pid)
        names = [f"idle{i:02d}" for i in range(args.domains)]
        for n in names:
            v.create(n, args.memory, sb.IDLE_CMD)
        sb.wait_booted(v, names, args.boot_timeout)
        settle(v, args.settle_timeout)
        maps = smaps(v.pid)
        total = vm_rss_kib(v.pid)
        # Each domain's guest RAM is one read-write anonymous mapping of exactly --memory MiB
        # followed by vigild's PROT_NONE guard page (machine.cpp), so that it never merges.
        ram = [m for i, m in enumerate(maps[:-1])
               if m["size"] == args.memory * 1024 and m["perms"] == "rw-p" and m["inode"] == 0
               and maps[i + 1]["perms"] == "---p" and maps[i + 1]["size"] == 4]
        if len(ram) != args.domains:
            raise sb.MeasureError(f"found {len(ram)} guest RAM mappings of {args.memory} MiB, expected {args.domains}")
        guest = sum(m["rss"] for m in ram)
        jit = sum(m["rss"] for m in maps if "vigil-jit" in m["name"])
        per_domain = (total - guest - baseline) / args.domains
        ram_ids = {id(m) for m in ram}
        kinds = {}
        for m in maps:
            if id(m) in ram_ids:
                continue
            k = m["name"] or f"anonymous {m['perms']}"
            kinds[k] = kinds.get(k, 0) + m["rss"]
        top = sorted(kinds.items(), key=lambda kv: -kv[1])[:8]
        log("largest other mappings (KiB): " + ", ".join(f"{k} {v}" for k, v in top))
        res = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": sb.git_commit(), "domains": args.domains, "memory_mib": args.memory,
            "vigild_baseline_kib": baseline, "vigild_rss_kib": total, "guest_touched_kib": guest,
            "translated_code_kib": jit, "largest_other_kib": dict(top), "overhead_per_domain_kib": round(per_domain),
            "target_kib": 8 * 1024,
        }
        log(f"baseline {baseline} KiB, total {total} KiB, guest RAM touched {guest} KiB, "
            f"translated code {jit} KiB -> {per_domain / 1024:.2f} MiB per domain")
    finally:
        v.stop()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=2)
    ok = "met" if res["overhead_per_domain_kib"] <= res["target_kib"] else "MISSED"
    print("| domains | guest RAM | vigild RSS | guests' touched RAM | vigild before any domain | "
          "overhead per domain (of which translated code) | target |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.domains} | {args.memory} MiB | {total / 1024:.1f} MiB | {guest / 1024:.1f} MiB | "
          f"{baseline / 1024:.1f} MiB | {per_domain / 1024:.2f} MiB ({jit / 1024 / args.domains:.2f} MiB) | "
          f"<= 8 MiB: {ok} |")


if __name__ == "__main__":
    main()
