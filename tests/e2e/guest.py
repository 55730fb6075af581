"""Helpers for booted-guest tests: run `vigil run` on the Debian-built test guest."""
import os
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIGIL = os.environ.get("VIGIL_BIN", os.path.join(ROOT, "build", "apps", "vigil"))
OPENSBI_DIR = "/usr/lib/riscv64-linux-gnu/opensbi/generic"


def guest_dir():
    d = os.environ.get("VIGIL_GUEST_DIR")
    if not d or not os.path.isfile(os.path.join(d, "Image")):
        raise RuntimeError("VIGIL_GUEST_DIR must name the guest built by scripts/build-guest.sh "
                           "(scripts/test.sh sets it)")
    return d


def write_domain_config(directory, name, cmd, memory=128, vcpus=1, extra_lines="", quote_cmd=False):
    """An xl.cfg for vigild running the test guest with `cmd` (vigil.cmd); returns its path.
    quote_cmd: pass the command quoted for the kernel (one parameter, \" escapes for xl.cfg),
    for commands with spaces."""
    g = guest_dir()
    path = os.path.join(directory, f"{name}.cfg")
    arg = f'\\"{cmd}\\"' if quote_cmd else cmd
    with open(path, "w") as f:
        f.write(f'name = "{name}"\nmemory = {memory}\nvcpus = {vcpus}\n'
                f'kernel = "{g}/Image"\nramdisk = "{g}/initramfs.cpio.gz"\n'
                f'extra = "console=ttyS0 quiet vigil.cmd={arg}"\n'
                f'on_poweroff = "preserve"\n{extra_lines}')
    return path


class Run:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")
        self.elapsed = elapsed

    def command_output(self):
        """What the vigil.cmd command printed: the lines between init's start and exit markers."""
        lines = self.out.replace("\r\n", "\n").split("\n")
        try:
            start = next(i for i, l in enumerate(lines) if "VIGIL-GUEST: init started" in l)
            end = next(i for i, l in enumerate(lines) if "VIGIL-GUEST: exit=" in l and i > start)
        except StopIteration:
            return None
        return "\n".join(lines[start + 1:end]) + "\n"


def boot(cmd=None, vcpus=1, memory=256, timeout=240, console="ttyS0", firmware=None, extra_args=(),
         kernel=None, initrd=None, append_extra="quiet"):
    import time
    d = guest_dir()
    append = f"console={console} {append_extra}".strip()
    if cmd is not None:
        append += f" vigil.cmd={cmd}"
    args = [VIGIL, "run", "--kernel", kernel or os.path.join(d, "Image"),
            "--initrd", initrd or os.path.join(d, "initramfs.cpio.gz"),
            "--vcpus", str(vcpus), "--memory", str(memory), "--append", append,
            "--timeout", str(timeout)]
    if firmware:
        args += ["--firmware", firmware]
    args += list(extra_args)
    t0 = time.monotonic()
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 60)
    return Run(proc, time.monotonic() - t0)


class GuestTestCase(unittest.TestCase):
    def assertBooted(self, run, exit_status=0):
        msg = f"rc={run.rc}\nstderr:\n{run.err}\nstdout (tail):\n{run.out[-4000:]}"
        self.assertEqual(run.rc, 0, msg)
        self.assertIn("VIGIL-GUEST: init started", run.out, msg)
        self.assertIn(f"VIGIL-GUEST: exit={exit_status}", run.out, msg)
