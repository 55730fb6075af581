#!/usr/bin/env python3
"""vTPM costs (issue 9): TPM command latency seen by the guest, and what a vTPM adds to
`vigil create` (starting swtpm; with --host-tpm also sealing or unsealing the state key).

  VIGIL_GUEST_DIR=... bench/vtpm.py [--runs 5] [--ops 300]

Guest side: `vtest-tpm2 /dev/tpmrm0 bench N` (N TPM2_GetRandom(32) round trips through the
kernel's resource manager, the TIS FIFO, vigild and swtpm), and the same on /dev/tpm0.
Host side: the wall time of `vigil create` (median of --runs) for a domain without a vTPM,
with one, and with one sealed to a host TPM (a second swtpm), first create (seal) and later
ones (unseal). The three kinds run interleaved (one of each per round, three vigilds side by
side), so a load change on the shared machine hits them alike."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from guest import VIGIL, guest_dir, write_domain_config  # noqa: E402
from test_domains import Vigild, wait_for  # noqa: E402
from test_vtpm_sealing import HostTpm  # noqa: E402


def guest_latency(ops, tmp):
    g = guest_dir()
    cmd = f"vtest-tpm2 /dev/tpmrm0 bench {ops}; vtest-tpm2 /dev/tpm0 bench {ops}"
    out = subprocess.run([VIGIL, "run", "--kernel", os.path.join(g, "Image"), "--initrd",
                          os.path.join(g, "initramfs.cpio.gz"), "--append", f"console=ttyS0 quiet vigil.cmd={cmd}",
                          "--vtpm", os.path.join(tmp, "bench-state"), "--timeout", "300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
    return [float(x) for x in re.findall(r"VTEST-TPM bench \d+ us-per-op ([0-9.]+)", out)]


def create_ms(d, cfg, name):
    t0 = time.monotonic()
    d.vigil("create", cfg)
    ms = (time.monotonic() - t0) * 1e3
    d.vigil("destroy", name)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ops", type=int, default=300)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vigil-bench-vtpm-")
    try:
        rm, raw = guest_latency(a.ops, tmp)
        print(f"guest TPM2_GetRandom(32) round trip: {rm:.0f} us via /dev/tpmrm0, {raw:.0f} us via /dev/tpm0")
        host = HostTpm(os.path.join(tmp, "host"))
        kinds = (("no vTPM", [], ""), ("vTPM", [], 'vtpm = [ "" ]'),
                 ("sealed vTPM", ["--host-tpm", host.tcti], 'vtpm = [ "" ]'))
        daemons, cfgs, first, later = {}, {}, {}, {}
        try:
            for label, args, line in kinds:
                daemons[label] = Vigild(extra_args=["--vtpm-dir", os.path.join(tmp, label.replace(" ", "-")), *args])
                sub = os.path.join(tmp, label.replace(" ", "-") + "-cfg")
                os.makedirs(sub, exist_ok=True)
                cfgs[label] = write_domain_config(sub, "b", "sleep 60", extra_lines=line + "\n")
            for label, _, _ in kinds:
                first[label] = create_ms(daemons[label], cfgs[label], "b")
                later[label] = []
            for _ in range(a.runs):
                for label, _, _ in kinds:
                    later[label].append(create_ms(daemons[label], cfgs[label], "b"))
        finally:
            for d in daemons.values():
                d.close()
            host.close()
        base = statistics.median(later["no vTPM"])
        for label, _, _ in kinds:
            med = statistics.median(later[label])
            extra = "" if label == "no vTPM" else f" (+{med - base:.0f} ms)"
            print(f"vigil create, {label}: first {first[label]:.0f} ms, then median {med:.0f} ms{extra} "
                  f"over {a.runs} interleaved runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
