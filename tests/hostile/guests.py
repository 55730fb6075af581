"""Builds the hostile guest programs (guest/cases/*.c) into flat RISC-V Linux Images.

Each program is guest/start.S + guest/rt.c + one case file, compiled freestanding with the
riscv64-linux-gnu cross toolchain and linked at 0x80200000 by guest/hostile.ld. Binaries are
cached in HOSTILE_BUILD_DIR (CMake sets it to the build tree) and rebuilt when a source is
newer; concurrent builders write to a temporary name and rename, so parallel ctest runs are
safe.
"""
import glob
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "guest")
CROSS = os.environ.get("HOSTILE_CROSS", "riscv64-linux-gnu-")
CFLAGS = ["-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fno-pic",
          "-mcmodel=medany", "-march=rv64gc", "-mabi=lp64d", "-O2", "-Wall", "-Wextra", "-Werror",
          "-Wno-unused-function", "-Wno-unused-variable", "-Wno-unused-but-set-variable"]

_default_dir = None


def build_dir():
    global _default_dir
    d = os.environ.get("HOSTILE_BUILD_DIR")
    if not d:
        if _default_dir is None:
            _default_dir = tempfile.mkdtemp(prefix="vigil-hostile-")
        d = _default_dir
    os.makedirs(d, exist_ok=True)
    return d


def cases():
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(SRC, "cases", "*.c")))


def _newest_source(case):
    files = [os.path.join(SRC, "cases", case + ".c"), os.path.join(SRC, "start.S"), os.path.join(SRC, "rt.c"),
             os.path.join(SRC, "hostile.ld"), __file__] + glob.glob(os.path.join(SRC, "*.h"))
    return max(os.path.getmtime(f) for f in files)


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building a hostile guest failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")


def build(case, defines=()):
    """Returns the path of the flat Image for guest/cases/<case>.c (built if out of date)."""
    suffix = "".join("-" + d.lower().replace("=", "") for d in defines)
    out = os.path.join(build_dir(), f"{case}{suffix}.bin")
    if os.path.exists(out) and os.path.getmtime(out) >= _newest_source(case):
        return out
    with tempfile.TemporaryDirectory(dir=build_dir()) as tmp:
        objs = []
        for src in ("start.S", "rt.c", os.path.join("cases", case + ".c")):
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            cmd = [CROSS + "gcc", *CFLAGS, *("-D" + d for d in defines), "-I", SRC, "-c",
                   os.path.join(SRC, src), "-o", obj]
            _run(cmd)
            objs.append(obj)
        elf = os.path.join(tmp, case + ".elf")
        _run([CROSS + "ld", "-T", os.path.join(SRC, "hostile.ld"), *objs, "-o", elf])
        binary = os.path.join(tmp, case + ".bin")
        _run([CROSS + "objcopy", "-O", "binary", "-j", ".text", elf, binary])
        os.replace(binary, out)
    return out


if __name__ == "__main__":
    import sys
    for c in sys.argv[1:] or cases():
        print(build(c))
