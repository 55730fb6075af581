#!/usr/bin/env python3
"""Vigil vs QEMU (TCG) on the same RISC-V kernel + initramfs.

Boots the Vigil test guest (scripts/build-guest.sh) in `vigil run` and in
`qemu-system-riscv64 -M virt`, interleaved (vigil, qemu, vigil, qemu, ...),
and reports the median time of each and the ratio Vigil/QEMU (lower is
better for Vigil).

Jobs:
  boot    wall time of the whole process, guest command `true`
          (Vigil is measured twice: with its built-in SBI and with OpenSBI
          fw_dynamic.bin, since QEMU boots through OpenSBI).
  sha256  `dd if=/dev/zero bs=1M count=64 | sha256sum`, timed inside the
          guest with /proc/uptime; the hash is checked against the host's.
  gzip    `gzip -9 -c FILE | wc -c` of ~8 MiB made of copies of
          /bin/busybox in /tmp (tmpfs), timed inside the guest; the
          compressed size (and the input's sha256) must be identical in
          Vigil and QEMU.

In-guest timings are cross-checked against the host: the time at which the
host saw the start/end marker lines on the console must agree with the
guest's /proc/uptime difference, so a guest clock that runs at the wrong
speed cannot produce a flattering number.

Output: a Markdown table on stdout, the same data as JSON in
bench/results/latest.json (or --json PATH).  Exit status 0 only if every
run succeeded.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPENSBI_FW = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
QEMU = "qemu-system-riscv64"
ALL_JOBS = ("boot", "sha256", "gzip")

SHA256_MIB = 64
GZIP_TARGET_BYTES = 8 * 1024 * 1024

# Guest-side snippets.  They are put on the kernel command line as
# vigil.cmd="..." (the guest's /init strips one pair of double quotes and runs
# the rest with `sh -c`), so they must not contain double quotes.  Markers:
#   BENCH-T0 <uptime> <idle>   just before the timed work
#   BENCH-T1 <uptime> <idle>   just after it
#   BENCH-SECONDS <t1-t0>      convenience for humans reading a log
#   BENCH-OUT ...              result to verify
#   BENCH-IN ...               (gzip) size and sha256 of the input
_TIMED = (
    "echo BENCH-T0 $(cat /proc/uptime); {work}; "
    "echo BENCH-T1 $(cat /proc/uptime); "
    "echo BENCH-OUT $r"
)
SHA256_CMD = _TIMED.format(
    work=f"r=$(dd if=/dev/zero bs=1M count={SHA256_MIB} 2>/dev/null | sha256sum)"
)
GZIP_CMD = (
    "s=$(wc -c </bin/busybox); n=$(( ({t} + s - 1) / s )); i=0; "
    "while [ $i -lt $n ]; do cat /bin/busybox; i=$((i+1)); done >/tmp/in; "
    "echo BENCH-IN $(wc -c </tmp/in) $(sha256sum </tmp/in); ".format(t=GZIP_TARGET_BYTES)
    + _TIMED.format(work="r=$(gzip -9 -c /tmp/in | wc -c)")
)

APPEND_BASE = "console=ttyS0 quiet"


def log(msg):
    print(f"vs_qemu: {msg}", file=sys.stderr, flush=True)


class RunFailed(Exception):
    pass


def run_guest(argv, timeout, label):
    """Runs one emulator process; returns (wall_seconds, [(t_host, line)]).

    t_host is seconds since the process was started at which the host read
    the line.  Raises RunFailed with the tail of the console on failure.
    """
    lines = []
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    except OSError as e:
        raise RunFailed(f"{label}: cannot start {argv[0]}: {e}")

    def reader():
        for raw in iter(proc.stdout.readline, b""):
            lines.append((time.monotonic() - t0, raw.decode("utf-8", "replace").rstrip("\r\n")))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        rc = proc.wait()
    wall = time.monotonic() - t0
    th.join(timeout=10)

    def fail(why):
        tail = "\n".join("    | " + l for _, l in lines[-40:]) or "    | (no output)"
        raise RunFailed(
            f"{label}: {why} after {wall:.1f} s\n  command: {shlex.join(argv)}\n"
            f"  last console lines:\n{tail}"
        )

    if timed_out:
        fail(f"timed out (host timeout {timeout} s)")
    if rc != 0:
        fail(f"exit status {rc}")
    if not any(l.strip() == "VIGIL-GUEST: exit=0" for _, l in lines):
        fail("guest did not print 'VIGIL-GUEST: exit=0'")
    return wall, lines, fail


def find_marker(lines, name, fail):
    for t, l in lines:
        if "vigil.cmd" in l:
            continue  # an echo of the kernel command line, not guest output
        # The marker may follow kernel output on the same console line.
        i = l.find(name + " ")
        if i >= 0:
            return t, l[i + len(name) + 1 :].split()
    fail(f"missing marker {name}")


def parse_timed(lines, fail):
    h0, f0 = find_marker(lines, "BENCH-T0", fail)
    h1, f1 = find_marker(lines, "BENCH-T1", fail)
    try:
        g = float(f1[0]) - float(f0[0])
    except (IndexError, ValueError):
        fail(f"unparsable /proc/uptime markers: {f0} / {f1}")
    host = h1 - h0
    # The guest's own clock and the host's view of the markers must agree
    # (console latency allowed).  Guards against a wrong timebase.
    if abs(g - host) > 0.5 + 0.10 * max(g, host):
        fail(f"guest-measured {g:.2f} s disagrees with host-observed marker interval {host:.2f} s")
    _, out = find_marker(lines, "BENCH-OUT", fail)
    return g, host, out


class Bench:
    def __init__(self, args, guest):
        self.args = args
        self.kernel = os.path.join(guest, "Image")
        self.initrd = os.path.join(guest, "initramfs.cpio.gz")
        self.expect_sha = hashlib.sha256(bytes(SHA256_MIB << 20)).hexdigest()

    def append(self, cmd):
        return f'{APPEND_BASE} vigil.cmd="{cmd}"'

    def argv(self, emu, cmd, firmware=None):
        a = self.args
        if emu == "vigil":
            argv = [a.vigil, "run", "--kernel", self.kernel, "--initrd", self.initrd,
                    "--append", self.append(cmd), "--memory", str(a.memory),
                    "--vcpus", str(a.vcpus), "--timeout", str(a.timeout)]
            if firmware:
                argv += ["--firmware", firmware]
            return argv
        return [a.qemu, "-M", "virt", "-cpu", "rv64", "-smp", str(a.vcpus),
                "-m", str(a.memory), "-nographic", "-bios", "default",
                "-kernel", self.kernel, "-initrd", self.initrd,
                "-append", self.append(cmd)]

    def run(self, job, emu, firmware=None):
        label = f"{job}/{emu}" + ("+opensbi" if firmware else "")
        cmd = {"boot": "true", "sha256": SHA256_CMD, "gzip": GZIP_CMD}[job]
        argv = self.argv(emu, cmd, firmware)
        # Host-side limit a bit above Vigil's own --timeout so Vigil reports first.
        wall, lines, fail = run_guest(argv, self.args.timeout + 30, label)
        res = {"wall_s": round(wall, 3)}
        if job == "boot":
            res["seconds"] = res["wall_s"]
        elif job == "sha256":
            g, host, out = parse_timed(lines, fail)
            if not out or out[0] != self.expect_sha:
                fail(f"wrong sha256 {out!r}, expected {self.expect_sha}")
            res.update(seconds=round(g, 3), host_marker_s=round(host, 3))
        elif job == "gzip":
            g, host, out = parse_timed(lines, fail)
            _, inp = find_marker(lines, "BENCH-IN", fail)
            if len(out) != 1 or not out[0].isdigit() or int(out[0]) <= 0:
                fail(f"bad compressed size {out!r}")
            size = int(out[0])
            if len(inp) < 2 or not inp[0].isdigit() or int(inp[0]) < GZIP_TARGET_BYTES:
                fail(f"bad gzip input {inp!r}")
            res.update(seconds=round(g, 3), host_marker_s=round(host, 3),
                       input_bytes=int(inp[0]), input_sha256=inp[1], compressed_bytes=size)
        log(f"{label}: {res['seconds']:.2f} s (process {wall:.2f} s)")
        return res


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "apps"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_guest():
    log("running scripts/build-guest.sh (cached after the first build)")
    p = subprocess.run([os.path.join(ROOT, "scripts", "build-guest.sh")],
                       stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = p.stdout.strip().splitlines()
    if p.returncode != 0 or not out:
        sys.exit(f"vs_qemu: scripts/build-guest.sh failed (status {p.returncode})")
    return out[-1].strip()


def fmt(x, ran):
    if not ran:
        return "not run"
    return "FAILED" if x is None else f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "build", "apps", "vigil"))
    ap.add_argument("--qemu", default=QEMU)
    ap.add_argument("--guest", help="guest dir with Image and initramfs.cpio.gz "
                    "(default: last line of scripts/build-guest.sh)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", default=",".join(ALL_JOBS), help="comma list of " + ",".join(ALL_JOBS))
    ap.add_argument("--memory", type=int, default=512, help="guest MiB (both emulators)")
    ap.add_argument("--vcpus", type=int, default=1, help="guest CPUs (both emulators)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per run")
    ap.add_argument("--firmware", default=OPENSBI_FW,
                    help="OpenSBI image for Vigil's --firmware rows ('' = built-in SBI only)")
    ap.add_argument("--vigil-sbi", choices=("builtin", "opensbi", "both"), default="builtin",
                    help="SBI under Vigil for the in-guest jobs sha256/gzip (boot always runs both)")
    ap.add_argument("--only", choices=("vigil", "qemu"), help="run only one emulator (checks the script)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    args = ap.parse_args()

    # Runs happen with cwd=ROOT: make relative program paths absolute.
    for attr in ("vigil", "qemu"):
        v = getattr(args, attr)
        if os.sep in v:
            setattr(args, attr, os.path.abspath(v))
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    for j in jobs:
        if j not in ALL_JOBS:
            ap.error(f"unknown job {j!r}")
    guest = os.path.abspath(args.guest or build_guest())
    for f in ("Image", "initramfs.cpio.gz"):
        if not os.path.isfile(os.path.join(guest, f)):
            sys.exit(f"vs_qemu: {guest}/{f} missing")
    emus = [args.only] if args.only else ["vigil", "qemu"]
    if "vigil" in emus and not os.access(args.vigil, os.X_OK):
        sys.exit(f"vs_qemu: {args.vigil} not found; build it with scripts/build.sh")
    if args.firmware and not os.path.isfile(args.firmware):
        sys.exit(f"vs_qemu: firmware {args.firmware} missing")

    bench = Bench(args, guest)

    def vigil_fws(job):
        """Firmware per Vigil variant of a job (None = Vigil's built-in SBI)."""
        want = "both" if job == "boot" else args.vigil_sbi
        if not args.firmware:
            want = "builtin"
        return {"builtin": [None], "opensbi": [args.firmware], "both": [None, args.firmware]}[want]

    # A variant is (job, emulator, firmware); runs are interleaved by variant.
    variants = []
    for j in jobs:
        for e in emus:
            variants += [(j, e, fw) for fw in vigil_fws(j)] if e == "vigil" else [(j, e, None)]
    load_before = os.getloadavg()
    commit = git_rev()  # of the work tree when the run started
    runs = {v: [] for v in variants}
    errors = {}
    for r in range(args.repeat):
        log(f"round {r + 1}/{args.repeat}")
        for v in variants:
            if v in errors:
                continue  # already failed: don't burn another timeout on it
            try:
                runs[v].append(bench.run(*v))
            except RunFailed as e:
                errors[v] = str(e)
                log("FAILED " + str(e))

    # gzip: every run must have compressed the same input to the same size;
    # QEMU is the reference, so a disagreeing Vigil run fails Vigil.
    def gzip_keys(v):
        return {(x["input_bytes"], x["input_sha256"], x["compressed_bytes"]) for x in runs.get(v, [])}

    if "gzip" in jobs:
        qv = ("gzip", "qemu", None)
        qk = gzip_keys(qv)
        if len(qk) > 1 and qv not in errors:
            errors[qv] = f"gzip/qemu: runs disagree with each other: {sorted(qk)}"
            log("FAILED " + errors[qv])
        for fw in vigil_fws("gzip"):
            vv = ("gzip", "vigil", fw)
            vk = gzip_keys(vv)
            if vv not in errors and (len(vk) > 1 or (qk and vk and vk != qk)):
                errors[vv] = (f"gzip/vigil: (input bytes, input sha256, compressed bytes) "
                              f"{sorted(vk)} differ from QEMU's {sorted(qk)}")
                log("FAILED " + errors[vv])

    def med(v):
        if v not in runs or v in errors or not runs[v]:
            return None
        return statistics.median(x["seconds"] for x in runs[v])

    rows = []
    for j in jobs:
        q = (j, "qemu", None)
        for fw in vigil_fws(j):
            v = (j, "vigil", fw)
            name = {"boot": "boot-to-poweroff (`true`, process wall time)",
                    "sha256": f"sha256sum {SHA256_MIB} MiB zeros (in guest)",
                    "gzip": "gzip -9 ~8 MiB busybox copies (in guest)"}[j]
            mv, mq = med(v), med(q)
            rows.append({
                "job": j, "name": name,
                "vigil_sbi": f"OpenSBI {os.path.basename(fw)}" if fw else "built-in",
                "vigil_s": mv, "qemu_s": mq,
                "ratio_vigil_over_qemu": round(mv / mq, 3) if mv and mq else None,
                # Same-round ratios (Vigil and QEMU ran back to back): less
                # sensitive to load that changes between rounds.
                "round_ratios": [round(a["seconds"] / b["seconds"], 3)
                                 for a, b in zip(runs.get(v, []), runs.get(q, []))
                                 if mv and mq and b["seconds"] > 0],
                "vigil_runs": runs.get(v, []), "qemu_runs": runs.get(q, []),
                "vigil_error": errors.get(v), "qemu_error": errors.get(q),
            })

    print(f"| job | Vigil SBI | Vigil s | QEMU s | Vigil/QEMU |")
    print(f"|---|---|---:|---:|---:|")
    for row in rows:
        ratio = row["ratio_vigil_over_qemu"]
        print(f"| {row['name']} | {row['vigil_sbi']} | {fmt(row['vigil_s'], 'vigil' in emus)} | {fmt(row['qemu_s'], 'qemu' in emus)} | "
              f"{'n/a' if ratio is None else f'{ratio:.2f}x'} |")
    print(f"\nmedian of {args.repeat} interleaved run(s); {args.vcpus} vCPU, {args.memory} MiB; "
          f"lower ratio is better for Vigil")

    qver = subprocess.run([args.qemu, "--version"], capture_output=True, text=True).stdout.splitlines()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([os.path.relpath(sys.argv[0], ROOT) if sys.argv[0].startswith(ROOT) else sys.argv[0]] + sys.argv[1:]),
        "vigil_tree_commit": commit,
        "vigil_binary": args.vigil if "vigil" in emus else None,
        "qemu_version": qver[0] if qver else "unknown",
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                 "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "guest_dir": guest,
        "repeat": args.repeat, "vcpus": args.vcpus, "memory_mib": args.memory,
        "vigil_sbi_in_guest_jobs": args.vigil_sbi, "opensbi_firmware": args.firmware or None,
        "guest_commands": {"boot": "true", "sha256": SHA256_CMD, "gzip": GZIP_CMD},
        "expected_sha256": bench.expect_sha,
        "qemu_argv_example": bench.argv("qemu", "true"),
        "vigil_argv_example": bench.argv("vigil", "true"),
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    log(f"wrote {args.json}")
    if errors:
        log(f"{len(errors)} variant(s) failed:")
        for e in errors.values():
            print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
