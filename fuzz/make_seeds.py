#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun after changing an
input layout). Each target's input layout is described at the top of fuzz/targets/<target>.cpp.
The insn seeds are assembled with riscv64-linux-gnu-as (gcc-riscv64-linux-gnu); without it
they are left as they are."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)


# ---------------------------------------------------------------------------------------
# insn

M_HANDLER = """
.org 0x100
m_trap:
  csrr t0, mcause
  csrr t1, mepc
  addi t1, t1, 4
  csrw mepc, t1
  mret
.org 0x180
s_trap:
  csrr t0, scause
  csrr t1, sepc
  addi t1, t1, 4
  csrw sepc, t1
  sret
"""


def assemble(body, rvc=False):
    src = (".option norvc\n" if not rvc else ".option rvc\n") + ".text\n.globl _start\n_start:\n" + body
    if "m_trap:" not in body:
        src += ".option norvc\n" + M_HANDLER
    with tempfile.TemporaryDirectory() as t:
        s, o, b = (os.path.join(t, n) for n in ("a.s", "a.o", "a.bin"))
        open(s, "w").write(src)
        subprocess.run(["riscv64-linux-gnu-as", "-march=rv64gc", "-mabi=lp64d", "-o", o, s], check=True)
        subprocess.run(["riscv64-linux-gnu-objcopy", "-O", "binary", "-j", ".text", o, b], check=True)
        return open(b, "rb").read()


MSTATUS_MPP_S = 1 << 11
MSTATUS_FS_INITIAL = 1 << 13
MSTATUS_SUM = 1 << 18
PTE_RWXAD = 0x01 | 0x02 | 0x04 | 0x08 | 0x40 | 0x80


def insn_input(code, priv="M", sbi=False, paging=None, sv48=False, raw_satp=None, pmp=None, firmware=None,
               mode2=0, mstatus=0, medeleg=0, mideleg=0, mie=0, mip=0, mtvec=0x100, stvec=0x180,
               mtimecmp=0xFFFF, stimecmp=0xFFFF, mcounteren=7, scounteren=7, regs=(), pokes=(), slices=2,
               budget=512):
    mode = {"U": 0, "S": 1, "M": 2}[priv]
    if sbi:
        mode |= 4
    if paging is not None:
        mode |= 8
    if sv48:
        mode |= 16
    if raw_satp is not None:
        mode |= 32
    if pmp is not None:
        mode |= 64
    if firmware is not None:
        mode |= 128
    b = struct.pack("<BB", mode, mode2)
    if firmware is not None:
        b += struct.pack("<B", firmware)
    b += struct.pack("<QQQQQIIHHBB", mstatus, medeleg, mideleg, mie, mip, mtvec, stvec, mtimecmp, stimecmp,
                     mcounteren, scounteren)
    if raw_satp is not None:
        b += struct.pack("<Q", raw_satp)
    elif paging is not None:
        id_flags, maps, asid = paging
        b += struct.pack("<BB", id_flags, len(maps))
        for vpn, sel, flags, level in maps:
            b += struct.pack("<IHBB", vpn, sel, flags, level)
        b += struct.pack("<B", asid)
    if pmp is not None:
        b += struct.pack("<B", len(pmp))
        for cfg, addr in pmp:
            b += struct.pack("<BI", cfg, addr)
    b += struct.pack("<B", len(regs))
    for reg, kind, value in regs:
        b += struct.pack("<BB", reg, kind) + struct.pack({0: "<H", 1: "<Q", 2: "<B", 3: "<B"}[kind], value)
    b += struct.pack("<B", len(pokes))
    for off8, value in pokes:
        b += struct.pack("<HQ", off8, value)
    b += struct.pack("<BH", slices - 1, budget - 1)
    return b + code


def insn_seeds():
    if not shutil.which("riscv64-linux-gnu-as"):
        print("make_seeds: riscv64-linux-gnu-as missing, insn seeds unchanged", file=sys.stderr)
        return
    reset("insn")
    # x10 (a0) -> RAM + 0x4000 (data), x11 -> MMIO
    data_regs = [(10, 0, 0x2000), (11, 3, 0), (12, 1, 0xFFFFFFFF80000000), (13, 2, 0x85)]
    intmix = assemble("""
  li t0, 123
  li t1, -7
  add t2, t0, t1
  sub t2, t2, t1
  mul t3, t0, t1
  mulh t3, t0, t1
  div t4, t0, t1
  rem t4, t0, t1
  divu t5, t0, zero
  sll t6, t0, t1
  sraiw t6, t1, 3
  sd t3, 0(a0)
  lw t2, 4(a0)
  lbu t2, 7(a0)
  sh t1, 10(a0)
  ld t2, 8(a0)
  beq t0, t1, 1f
  bltu t1, t0, 1f
1:
  jal ra, 2f
2:
  auipc t0, 0
  jalr zero, 12(t0)
  nop
  ecall
  ebreak
  fence
  fence.i
  lui t0, 0x12345
  addiw t0, t0, -1
  j _start
""")
    write("insn", "m_intmix", insn_input(intmix, "M", regs=data_regs))
    write("insn", "u_intmix", insn_input(intmix, "U", regs=data_regs, medeleg=1 << 8 | 1 << 3))
    write("insn", "s_intmix_sv39", insn_input(intmix, "S", paging=(PTE_RWXAD, [], 0), regs=data_regs, medeleg=0xB3FF))

    to_s = assemble("""
  la t0, s_code
  csrw mepc, t0
  li t0, 0x800
  csrs mstatus, t0
  mret
s_code:
  li a7, 0x10
  li a6, 0
  ecall
  li a7, 0x10
  li a6, 3
  li a0, 0x54494D45
  ecall
  li a7, 0x54494D45
  li a6, 0
  li a0, 100
  ecall
  li a7, 0x4442434E
  li a6, 2
  li a0, 65
  ecall
  csrr t0, sstatus
  csrr t1, satp
  csrr t2, time
  sfence.vma
  wfi
  j s_code
""")
    write("insn", "m_to_s_sbi", insn_input(to_s, "M", sbi=True, medeleg=0xB3FF, mideleg=0x222, mie=0x222,
                                           stimecmp=4, slices=4))
    write("insn", "firmware_sbi_sv48", insn_input(to_s, "S", firmware=0, sv48=True,
                                                  paging=(PTE_RWXAD, [(0x40000, 0x0004, 0xCF, 0)], 0x12)))

    fp = assemble("""
  li t0, 0x2000
  csrs mstatus, t0
  li t0, 0x40490fdb
  fmv.w.x f1, t0
  li t0, 0x3ff0000000000000
  fmv.d.x f2, t0
  fcvt.d.s f3, f1
  fadd.d f4, f3, f2
  fmul.d f5, f4, f4
  fdiv.d f6, f5, f3
  fsqrt.d f7, f6
  fmadd.d f8, f7, f2, f3
  fsgnjn.d f9, f8, f8
  fcvt.l.d t1, f9, rtz
  fcvt.w.s t2, f1
  fclass.d t3, f9
  feq.d t4, f8, f9
  fmin.s f10, f1, f1
  fsd f5, 0(a0)
  flw f11, 0(a0)
  frcsr t5
  fscsr t5
  fsrmi 4
  fadd.s f12, f11, f1, dyn
  j _start
""")
    write("insn", "m_fp", insn_input(fp, "M", regs=data_regs))
    write("insn", "s_fp_fs_on", insn_input(fp, "S", mstatus=MSTATUS_FS_INITIAL, regs=data_regs, medeleg=0xB3FF))

    amo = assemble("""
1:
  lr.d t0, (a0)
  addi t0, t0, 1
  sc.d t1, t0, (a0)
  bnez t1, 1b
  amoadd.w t2, t0, (a0)
  amoswap.d.aqrl t3, t0, (a0)
  amomaxu.d t3, t1, (a0)
  addi a2, a0, 4
  amoor.w t4, t1, (a2)
  lr.w t5, (a1)
  addi a2, a0, 1
  amoadd.d t6, t0, (a2)
  sc.w t5, t0, (a1)
  j _start
""")
    write("insn", "m_amo", insn_input(amo, "M", regs=data_regs))
    write("insn", "u_amo", insn_input(amo, "U", regs=data_regs))

    rvc = assemble("""
  c.li a2, 5
  c.addi a2, 3
  c.mv a3, a2
  c.add a3, a2
  c.slli a3, 2
  c.sd a3, 0(a0)
  c.ld a4, 0(a0)
  c.lw a5, 4(a0)
  c.sw a5, 8(a0)
  c.beqz a2, 1f
  c.andi a3, 7
1:
  c.nop
  c.j _start
""", rvc=True)
    write("insn", "m_rvc", insn_input(rvc, "M", regs=data_regs))

    csr = assemble("""
  csrr t0, misa
  csrr t0, mhartid
  csrr t0, mstatus
  csrw mscratch, t0
  csrrw t1, mscratch, t0
  csrrs t1, mie, zero
  li t0, 0x80
  csrs mie, t0
  csrsi mstatus, 8
  csrr t0, mcycle
  csrr t0, instret
  csrw satp, zero
  li t0, 0x1f
  csrw pmpcfg0, t0
  li t0, -1
  csrw pmpaddr0, t0
  csrw medeleg, t0
  csrw mideleg, t0
  csrr t0, sip
  csrr t0, 0x7a0
  csrw 0xc00, t0
  wfi
  j _start
""")
    write("insn", "m_csr_timer", insn_input(csr, "M", mtimecmp=2, slices=4, mie=0x80))

    mmio = assemble("""
  lb t0, 0(a1)
  lh t0, 2(a1)
  lw t0, 4(a1)
  ld t0, 8(a1)
  sb t0, 0(a1)
  sd t0, 8(a1)
  li t1, 0x10001000
  lw t0, 0(t1)
  amoadd.w t0, t0, (a1)
  j _start
""")
    write("insn", "m_mmio", insn_input(mmio, "M", regs=data_regs))
    write("insn", "s_mmio_mapped", insn_input(mmio, "S", paging=(PTE_RWXAD, [(0x10000, 0x8000, 0xC7, 0)], 0),
                                              regs=[(11, 1, 0x10000000)], medeleg=0xB3FF))

    pt = assemble("""
  li t0, 0x10000000
  ld t1, 0(t0)
  li t0, 0x40000000
  sd t1, 0(t0)
  sfence.vma zero, zero
  li t0, 0x40001000
  jalr t0
  j _start
""")
    maps = [(0x40000, 0x0003, PTE_RWXAD | 0x10, 0), (0x40001, 0x0005, 0x0B, 0), (0x10000, 0x8000, 0x47, 0),
            (0x7FFFFFFF, 0x0006, PTE_RWXAD, 1)]
    write("insn", "s_sv39_maps_pokes", insn_input(pt, "S", paging=(PTE_RWXAD, maps, 1), medeleg=0xB3FF,
                                                  mstatus=MSTATUS_SUM, pokes=[(24 * 512 + 1, 0x200000CF),
                                                                              (25 * 512 + 3, 0x1234567)]))
    write("insn", "u_sv48_maps", insn_input(pt, "U", sv48=True, paging=(PTE_RWXAD | 0x10, maps, 2), medeleg=0xB3FF))
    write("insn", "s_raw_satp", insn_input(pt, "S", raw_satp=(8 << 60) | 0x80018, medeleg=0xB3FF))
    write("insn", "s_pmp", insn_input(intmix, "S", pmp=[(0x0F, 0x1FF), (0x19, 0x800), (0x8B, 0x1000)],
                                      regs=data_regs, mode2=8))
    write("insn", "s_interrupts", insn_input(intmix, "S", mideleg=0x222, mie=0xAAA, mip=0x2,
                                             mstatus=2, stvec=0x181, mode2=7, slices=4, regs=data_regs))


# ---------------------------------------------------------------------------------------
# devices

def uart_seeds():
    reset("uart")
    rd = lambda off: bytes([0x00, off])
    wr = lambda off, v: bytes([0x01, off, v])
    push = lambda s: bytes([0x02, len(s)]) + s
    init = wr(3, 0x80) + wr(0, 1) + wr(1, 0) + wr(3, 0x03) + wr(2, 0x07) + wr(1, 0x0F) + wr(4, 0x0B)
    write("uart", "init_tx_rx", init + wr(0, 0x41) + rd(5) + rd(2) + push(b"hello") + rd(2) + rd(0) + rd(0) + rd(5))
    write("uart", "loopback", init + wr(4, 0x1F) + wr(0, 0x55) + rd(0) + rd(6) + push(b"x") + wr(4, 0x03) + rd(6))
    write("uart", "flood_and_drain", init + bytes([0x07]) + rd(5) + rd(0) * 8 + wr(2, 0x02) + rd(5) + bytes([0x03]))
    write("uart", "wide_and_bad", bytes([0x04, 0x00, 0x0C, 0x05, 0x18, 0x07, 0x85, 0x07]) + struct.pack("<Q", 2**64 - 1)
          + bytes([0x00, 0xF0]) + struct.pack("<Q", 8) + rd(7) + wr(7, 0xAA) + rd(7))


def plic_seeds():
    reset("plic")
    def w(region_bytes, value):
        return bytes([0x01]) + region_bytes + struct.pack("<I", value)
    prio = lambda src: bytes([0]) + struct.pack("<H", src)
    enable = lambda ctx, word: bytes([2]) + struct.pack("<HB", ctx, word)
    ctxreg = lambda ctx, reg: bytes([3]) + struct.pack("<HB", ctx, reg)
    line = lambda src, level: bytes([0x02 | (level << 2)]) + struct.pack("<H", src)
    rd = lambda region_bytes: bytes([0x00]) + region_bytes
    s = struct.pack("<HB", 96, 1)
    s += w(prio(5), 7) + w(prio(10), 3) + w(enable(1, 0), (1 << 5) | (1 << 10)) + w(ctxreg(1, 0), 0)
    s += line(5, 1) + line(10, 1) + rd(bytes([1, 0])) + rd(ctxreg(1, 1)) + w(ctxreg(1, 1), 5) + line(5, 0)
    s += rd(ctxreg(1, 1)) + bytes([0x03, 1]) + bytes([0x07])
    write("plic", "claim_complete", s)
    s = struct.pack("<HB", 1024, 3) + w(prio(1023), 1) + w(enable(7, 31), 0x80000000) + line(1023, 1)
    s += rd(ctxreg(7, 1)) + rd(bytes([4]) + struct.pack("<I", 0x3FFFFFC)) + rd(bytes([5]) + struct.pack("<Q", 2**63))
    s += bytes([0x21, 8 | 0]) + struct.pack("<HB", 4, 2) + struct.pack("<I", 1)
    write("plic", "big_and_bad", s)


def clint_seeds():
    reset("clint")
    s = struct.pack("<BQ", 3, 1000)
    s += bytes([0x01, 0, 1]) + struct.pack("<Q", 1)          # msip[1] = 1 (32-bit)
    s += bytes([0x00, 0, 1])                                 # read msip[1]
    s += bytes([0x03, 1, 0]) + struct.pack("<Q", 5000)       # mtimecmp[0] (64-bit)
    s += bytes([0x01, 1, 3]) + struct.pack("<Q", 0xDEADBEEF)  # mtimecmp[1] high half
    s += bytes([0x02, 2, 0]) + bytes([0x00, 2, 1])            # mtime 64-bit, then low half
    s += bytes([0x05, 0, 0]) + bytes([0x09, 1, 0, 3]) + struct.pack("<Q", 7)  # bad size, misaligned
    s += bytes([0x00, 3]) + struct.pack("<H", 0xFFFC) + bytes([0x01, 4]) + struct.pack("<QQ", 2**64 - 8, 1)
    write("clint", "msip_mtimecmp_mtime", s)


def sbi_seeds():
    reset("sbi")
    def call(hart, sel, fsel, args, raw_eid=None, raw_fid=None):
        b = struct.pack("<BB", hart, sel)
        if raw_eid is not None:
            b += struct.pack("<Q", raw_eid)
        b += struct.pack("<B", fsel)
        if raw_fid is not None:
            b += struct.pack("<Q", raw_fid)
        for kind, v in args:
            b += struct.pack("<B", kind) + (struct.pack("<H", v) if kind == 0 else struct.pack("<Q", v) if kind == 1
                                            else struct.pack("<B", v) if kind in (2, 4) else b"")
        return b + b"\x05" * (6 - len(args))
    ram = struct.pack("<QQ", 0x5, 0xF) + b"hello, sbi\n"
    head = struct.pack("<BQH", 3, 0, len(ram)) + ram
    s = head
    s += call(0, 9, 0, []) + call(0, 9, 3, [(1, 0x4442434E)]) + call(1, 10, 0, [(1, 1000)])
    s += call(2, 11, 0, [(2, 0xF), (2, 0)]) + call(0, 11, 0, [(3, 0), (3, 0)]) + call(0, 12, 1, [(2, 3), (2, 1)])
    s += call(1, 13, 0, [(2, 2), (0, 0x100), (2, 7)]) + call(1, 13, 2, [(2, 1)]) + call(3, 13, 1, [])
    s += call(0, 15, 0, [(2, 11), (0, 0x10), (2, 0)]) + call(0, 15, 1, [(2, 4), (0, 0x40), (2, 0)])
    s += call(0, 15, 2, [(2, 0x41)]) + call(0, 14, 0, [(2, 1), (2, 0)]) + call(0, 14, 0, [(2, 3)])
    write("sbi", "modern_calls", s)
    s = head
    s += call(0, 1, 0, [(2, 0x41)]) + call(0, 2, 0, []) + call(1, 4, 0, [(0, 0)]) + call(1, 3, 0, [])
    s += call(2, 5, 0, [(2, 0)]) + call(2, 6, 0, [(0, 8)]) + call(3, 7, 0, [(1, 0x1000)]) + call(0, 0, 0, [(1, 5)])
    s += call(0, 8, 0, []) + call(0, 200, 0, [], raw_eid=0x0A000000) + call(0, 9, 0xFF, [], raw_fid=2**63)
    write("sbi", "legacy_calls", s)
    head = struct.pack("<BQH", 1, (8 << 60) | 0x80000, 8) + struct.pack("<Q", 0x200000CF)
    write("sbi", "legacy_mask_sv39", head + call(0, 4, 0, [(1, 0x80000000)]) + call(0, 6, 0, [(1, 0xFFFF)]))


# ---------------------------------------------------------------------------------------
# parsers

def kernel_header(text_offset=0x200000, image_size=0x1000, magic2=b"RSC\x05", size=4096):
    h = struct.pack("<IIQQQIIQ", 0x0000006F, 0, text_offset, image_size, 0, 2, 0, 0)
    h += b"RISCV\x00\x00\x00" + magic2 + struct.pack("<I", 0)
    assert len(h) == 64
    return h + bytes((i * 13) & 0xFF for i in range(size - 64))


def kernel_image_seeds():
    reset("kernel_image")
    write("kernel_image", "valid", kernel_header())
    write("kernel_image", "bss_larger", kernel_header(image_size=0x100000, size=256))
    write("kernel_image", "bad_text_offset", kernel_header(text_offset=0x200001, size=128))
    write("kernel_image", "no_magic", kernel_header(magic2=b"RSC\x04", size=128))
    write("kernel_image", "elf", b"\x7fELF\x02\x01\x01" + bytes(57))
    write("kernel_image", "truncated", kernel_header()[:40])
    # ELF payloads for parse_payload (a firmware's next stage, e.g. U-Boot's uboot.elf).
    write("kernel_image", "elf_payload", elf_payload())
    write("kernel_image", "elf_two_segments", elf_payload(segments=((0x80200000, 64, 128), (0x80300000, 32, 4096))))
    write("kernel_image", "elf_outside", elf_payload(segments=((0x70000000, 64, 64),)))
    write("kernel_image", "elf_entry_unloaded", elf_payload(entry=0x90000000))


def elf_payload(entry=0x80200000, segments=((0x80200000, 64, 64),)):
    """An ELF64 RISC-V executable: header, program headers, then each segment's bytes."""
    phoff, n = 64, len(segments)
    h = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    h += struct.pack("<HHIQQQIHHHHHH", 2, 243, 1, entry, phoff, 0, 0, 64, 56, n, 64, 0, 0)
    off = phoff + 56 * n
    ph, body = b"", b""
    for addr, filesz, memsz in segments:
        ph += struct.pack("<IIQQQQQQ", 1, 7, off + len(body), addr, addr, filesz, memsz, 0x1000)
        body += bytes((i * 7) & 0xFF for i in range(filesz))
    return h + ph + body


XL_FULL = r'''# A domain that sets every key Vigil knows.
name = "web-1.test_a"
memory = 0x200        # hex works too
vcpus = 2
kernel = "/boot/Image"
ramdisk = '/boot/initrd.gz'
extra = "console=ttyS0 root=/dev/vda rw # kept, it is inside a string"
firmware = "/usr/lib/opensbi/fw_dynamic.bin"
disk = [ "/img/root.raw",
         "format=raw, vdev=xvdb, access=ro, target=/img/data,with,commas.raw",
         "/img/scratch.raw,raw,xvdc,rw",   # positional
]
vif = [
  "model=user,mac=52:54:00:AB:cd:01,hostfwd=tcp:8080-:80;tcp:2222-:22",
  'model=tap, tap=tap0, mac=52:54:00:12:34:56',
]
rng = 0
on_poweroff = "preserve"
on_reboot = "destroy"
on_crash = "restart"
cpu_weight = 512
cap = 150
cpus = [ "0-1", "2,4-5" ]
'''


def xl_config_seeds():
    reset("xl_config")
    write("xl_config", "full", XL_FULL)
    write("xl_config", "minimal", 'name = "d"\nkernel = "/k"\n')
    write("xl_config", "xen_style", 'type = "pvh"\nbuilder = "generic"\nuuid = "1-2"\nname = "x"; kernel = "/k"; '
                                    'memory = "128"\ncmdline = "a \\"b\\" \\\\c\\t"\ncpus = "0-3"\n')
    write("xl_config", "errors", 'name = "d"\nkernel = "/k"\nmemory = 0123\nmaxmem = 512\nvcpu = 2\n'
                                 'disk = [ "/a", \nextra = \'unterminated\n')
    write("xl_config", "utf8", b'name = "caf\xc3\xa9"\nkernel = "/\xe2\x82\xac/k"\nextra = "' + b"x" * 47 + b'\xc3\xa9"\n'
          + b'n\xc3\xa9me = 1\n' + b"k" * 47 + b'\xe2\x82\xac = 2\n')


def api_json_seeds():
    reset("api_json")
    reqs = {
        "list": '{"op": "list"}',
        "create_good": '{"op": "create", "config": "/etc/good.cfg"}',
        "create_bad": '{"op": "create", "config": "badutf8.cfg"}\n{"op": "create", "config": "long.cfg"}',
        "create_missing": '{"op": "create"}\n{"op": "create", "config": 7}\n{"op": "create", "config": "dir.cfg"}',
        "domain_ops": '{"op": "pause", "domain": "1"}\n{"op": "unpause", "domain": 1}\n{"op": "shutdown", "domain": "x"}\n'
                      '{"op": "reboot", "domain": -1}\n{"op": "destroy", "domain": 4294967297}',
        "vcpu": '{"op": "vcpu-list", "domain": "a"}\n{"op": "vcpu-pin", "domain": 1, "vcpu": 0, "cpus": [0, 1]}',
        "sched": '{"op": "sched-credit", "domain": "d", "weight": 512, "cap": null}',
        "console": '{"op": "console", "domain": "nope"}\n{"op": "list"}',
        "malformed": '{"op": 1}\n[1,2]\n"op"\n{"op": "\\u00e9"}\n{"op"\n{"op": "list", "op": "create"}',
        "unicode": '{"op": "pause", "domain": "\\ud83d\\ude00 caf\\u00e9"}',
    }
    for name, text in reqs.items():
        write("api_json", name, text + "\n")


def virtio_input(flags, qsize_log2, ram, ops):
    return struct.pack("<BBH", flags, qsize_log2, len(ram)) + ram + ops


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def virtio_seeds():
    base = 0x80000000
    # Queue size 4: descriptors at 0 (64 bytes), avail ring at 64, used ring at 80.
    def ring(descs, heads):
        d = b"".join(descs).ljust(64, b"\0")
        avail = struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads)
        return (d + avail.ljust(16, b"\0")).ljust(0x100, b"\0")
    notify = bytes([0, 0])
    reset("virtio_rng")
    r = ring([desc(base + 0x200, 64, 2, 0), desc(base + 0x300, 16, 1, 2), desc(base + 0x400, 32, 2, 0)], [0, 1])
    write("virtio_rng", "two_requests", virtio_input(0x01, 2, r, notify + bytes([2, 0x60, 0, 0, 6, 3, 4, 0, 0]) + notify))
    r = ring([desc(base + 0x200, 16, 4, 0), desc(0, 0, 0, 0)], [0])
    r = r[:0x200] if len(r) > 0x200 else r.ljust(0x200, b"\0")
    r += desc(base + 0x300, 64, 2, 0)  # indirect table at 0x200
    write("virtio_rng", "indirect", virtio_input(0x01, 2, r, notify))
    write("virtio_rng", "hostile", virtio_input(0x05, 2, ring([desc(2**64 - 8, 64, 3, 0), desc(base, 2**31, 2, 1)], [0, 1, 7]),
                                                notify + bytes([7, 0, 9]) + bytes([1]) + struct.pack("<HBI", 0x38, 0, 2**16)))
    reset("virtio_blk")
    hdr = lambda t, sector: struct.pack("<IIQ", t, 0, sector)
    data = bytearray(0x800)
    data[0x200:0x210] = hdr(0, 1)     # IN sector 1
    data[0x210:0x220] = hdr(1, 2)     # OUT sector 2
    data[0x220:0x230] = hdr(8, 0)     # GET_ID
    data[0x230:0x240] = hdr(4, 0)     # FLUSH
    data[0x240:0x250] = hdr(11, 0)    # DISCARD
    data[0x600:0x610] = struct.pack("<QII", 3, 2, 0)  # discard segment
    d = [desc(base + 0x200, 16, 1, 1), desc(base + 0x300, 512, 3, 2), desc(base + 0x500, 1, 2, 0),
         desc(base + 0x210, 16, 1, 4), desc(base + 0x300, 512, 1, 5), desc(base + 0x501, 1, 2, 0)]
    # size 8 queue: descriptors 0..7 at 0 (128 bytes), avail at 128, used at 148
    descs = b"".join(d + [desc(base + 0x220, 16, 1, 7), desc(base + 0x502, 20, 2, 0)]).ljust(128, b"\0")
    avail = struct.pack("<HH", 0, 3) + struct.pack("<HHH", 0, 3, 6)
    ram = (descs + avail).ljust(0x200, b"\0") + bytes(data[0x200:])
    write("virtio_blk", "in_out_getid", virtio_input(0x01, 3, ram, notify))
    d2 = [desc(base + 0x230, 16, 1, 1), desc(base + 0x503, 1, 2, 0), desc(base + 0x240, 16, 1, 3),
          desc(base + 0x600, 16, 1, 4), desc(base + 0x504, 1, 2, 0)]
    descs = b"".join(d2).ljust(128, b"\0")
    avail = struct.pack("<HH", 0, 2) + struct.pack("<HH", 0, 2)
    ram = (descs + avail).ljust(0x200, b"\0") + bytes(data[0x200:])
    write("virtio_blk", "flush_discard", virtio_input(0x01, 3, ram, notify))
    write("virtio_blk", "flush_discard_ro", virtio_input(0x11, 3, ram, notify + bytes([2]) + struct.pack("<HB", 0x100, 3)))


def main():
    insn_seeds()
    uart_seeds()
    plic_seeds()
    clint_seeds()
    sbi_seeds()
    kernel_image_seeds()
    xl_config_seeds()
    api_json_seeds()
    virtio_seeds()


if __name__ == "__main__":
    main()
