#!/usr/bin/env python3
"""Issue 10, "with only quiet guests for 60 s it flags nobody": two monitored guests each looping
over 256 KiB (vtest-thrash small) under one vigild, the detector asked every second (1 s
windows) for SECONDS (default 60). Prints the number of windows and any verdict that named a
domain; exits 1 if one did. ctest runs the same check for 15 s (e2e.psr.test_quiet_guests_...).

  VIGIL_GUEST_DIR=$(scripts/build-guest.sh | tail -n 1) VIGIL_BIN=build/apps/vigil bench/psr_quiet.py [SECONDS]
"""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from guest import write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    d = Vigild(workers=2)
    cfg = tempfile.TemporaryDirectory()
    try:
        for name in ("quiet", "quiet2"):
            d.vigil("create", write_domain_config(cfg.name, name, "vtest-thrash small 256 0", quote_cmd=True,
                                                  extra_lines="psr_cmt = 1\n"))
        for name in ("quiet", "quiet2"):
            if not wait_for(lambda: re.search(r"small passes=", d.console(name)), 240, step=0.2):
                print(f"{name} never started", file=sys.stderr)
                return 2
        end, windows, flagged = time.monotonic() + seconds, 0, []
        while time.monotonic() < end:
            v = d.request({"op": "psr-noisy", "window_ms": 1000})
            windows += 1
            if v.get("noisy"):
                flagged.append(v)
        print(f"psr_quiet: {windows} windows of 1 s over {seconds:.0f} s, {len(flagged)} flagged")
        for v in flagged:
            print(v)
        return 1 if flagged else 0
    finally:
        d.close()
        cfg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
