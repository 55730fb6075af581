#!/usr/bin/env python3
"""Save and restore figures (issue 11): save time, file size and restore time against RAM size.

For each RAM size a domain boots the test guest running vtest-memcheck over most of its RAM
(so the pages are really in use and not zero), then, --repeat times: `save -c` (the domain
keeps running), `save` (destroyed) and `restore` of that file. The times are vigild's own
(the JSON API answers: pause_ms, snapshot_ms, write_ms; read_ms, parse_ms, restore_ms), the
medians are printed as a Markdown table and written to --json.

    bench/snapshot.py                       # 64, 128, 256 MiB, --repeat 3
    bench/snapshot.py --sizes 256 --repeat 5
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_migrate import console  # noqa: E402  (bounded: the guest never stops printing)

PASS = "memcheck: pass "


def passes(text):
    return text.count(PASS)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128,256", help="RAM sizes in MiB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "snapshot.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Vigild()
        try:
            for mib in [int(s) for s in args.sizes.split(",")]:
                checked = mib * 5 // 8  # 160 MiB of a 256 MiB guest
                cfg = write_domain_config(tmp, f"b{mib}", f"vtest-memcheck {checked} 0 100", memory=mib,
                                          quote_cmd=True)
                r = d.request({"op": "create", "config": cfg})
                assert r.get("ok"), r
                name = f"b{mib}"
                assert wait_for(lambda: passes(console(d, name)) >= 2, 300), console(d, name)[-2000:]
                saves, kept, restores = [], [], []
                for i in range(args.repeat):
                    keep = os.path.join(tmp, f"{name}-keep-{i}.snap")
                    r = d.request({"op": "save", "domain": name, "file": keep, "after": "keep"})
                    assert r.get("ok"), r
                    kept.append(r)
                    os.unlink(keep)
                    snap = os.path.join(tmp, f"{name}-{i}.snap")
                    r = d.request({"op": "save", "domain": name, "file": snap})
                    assert r.get("ok"), r
                    saves.append(r)
                    wait_for(lambda: name not in d.domains(), 30, step=0.05)
                    r = d.request({"op": "restore", "file": snap})
                    assert r.get("ok"), r
                    restores.append(r)
                    os.unlink(snap)
                    before = passes(console(d, name))
                    assert wait_for(lambda: passes(console(d, name)) > before, 60), "the restored guest stopped"
                    assert "MISMATCH" not in console(d, name)
                d.request({"op": "destroy", "domain": name})

                def med(rs, key):
                    return statistics.median(r[key] for r in rs)

                rows.append({
                    "ram_mib": mib, "checked_mib": checked, "repeat": args.repeat,
                    "file_mib": med(saves, "bytes") / (1 << 20),
                    "save_c_pause_ms": med(kept, "pause_ms"),
                    "save_snapshot_ms": med(saves, "snapshot_ms"), "save_write_ms": med(saves, "write_ms"),
                    "save_pause_ms": med(saves, "pause_ms"),
                    "restore_read_ms": med(restores, "read_ms"), "restore_parse_ms": med(restores, "parse_ms"),
                    "restore_build_ms": med(restores, "restore_ms"),
                    "restore_total_ms": statistics.median(r["read_ms"] + r["parse_ms"] + r["restore_ms"]
                                                          for r in restores),
                })
        finally:
            d.close()
    print("| RAM | in use | file | save -c pause | save: snapshot + write | restore: read + parse + build = total |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ram_mib']} MiB | {r['checked_mib']} MiB | {r['file_mib']:.1f} MiB | {r['save_c_pause_ms']:.0f} ms "
              f"| {r['save_snapshot_ms']:.0f} + {r['save_write_ms']:.0f} ms | {r['restore_read_ms']:.0f} + "
              f"{r['restore_parse_ms']:.0f} + {r['restore_build_ms']:.0f} = {r['restore_total_ms']:.0f} ms |")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host_cpus": os.cpu_count(),
                   "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
