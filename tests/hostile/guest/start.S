/* Entry point, RISC-V Linux Image header and trap entry shared by every hostile guest.
 * Vigil loads the file at 0x80200000 and enters it in S-mode with a0 = hartid and
 * a1 = DTB address (secondary harts: a0 = hartid, a1 = opaque from HSM hart_start). */
    .section .text.head, "ax"
    .option push
    .option norvc
    .globl _start
_start:
    j       rt_entry                /* code0 */
    .word   0                       /* code1 */
    .dword  0x200000                /* text_offset */
    .dword  _image_size             /* image_size (covers .bss) */
    .dword  0                       /* flags */
    .word   2                       /* version */
    .word   0                       /* res1 */
    .dword  0                       /* res2 */
    .ascii  "RISCV\0\0\0"           /* magic */
    .ascii  "RSC\x05"               /* magic2 */
    .word   0                       /* res3 */
    .option pop

rt_entry:
    .option push
    .option norelax
    lla     gp, __global_pointer$
    .option pop
    lla     sp, rt_stack0_top
    lla     t0, rt_trap_entry
    csrw    stvec, t0
    csrw    sscratch, zero
    call    rt_main
1:  j       1b

/* Secondary harts (HSM hart_start with start_addr = rt_secondary): a1 = stack top. */
    .globl rt_secondary
rt_secondary:
    .option push
    .option norelax
    lla     gp, __global_pointer$
    .option pop
    mv      sp, a1
    lla     t0, rt_trap_entry
    csrw    stvec, t0
    call    rt_secondary_main
1:  j       1b

/* Saves every register into a frame on the current stack and calls rt_handle_trap(frame);
 * the frame (registers and sepc) it returns with is restored before sret. */
    .balign 4
    .globl rt_trap_entry
rt_trap_entry:
    addi    sp, sp, -288
    sd      x1, 8(sp)
    sd      x3, 24(sp)
    sd      x4, 32(sp)
    sd      x5, 40(sp)
    sd      x6, 48(sp)
    sd      x7, 56(sp)
    sd      x8, 64(sp)
    sd      x9, 72(sp)
    sd      x10, 80(sp)
    sd      x11, 88(sp)
    sd      x12, 96(sp)
    sd      x13, 104(sp)
    sd      x14, 112(sp)
    sd      x15, 120(sp)
    sd      x16, 128(sp)
    sd      x17, 136(sp)
    sd      x18, 144(sp)
    sd      x19, 152(sp)
    sd      x20, 160(sp)
    sd      x21, 168(sp)
    sd      x22, 176(sp)
    sd      x23, 184(sp)
    sd      x24, 192(sp)
    sd      x25, 200(sp)
    sd      x26, 208(sp)
    sd      x27, 216(sp)
    sd      x28, 224(sp)
    sd      x29, 232(sp)
    sd      x30, 240(sp)
    sd      x31, 248(sp)
    addi    t0, sp, 288
    sd      t0, 16(sp)              /* the interrupted sp */
    csrr    t0, sepc
    sd      t0, 256(sp)
    csrr    t0, scause
    sd      t0, 264(sp)
    csrr    t0, stval
    sd      t0, 272(sp)
    mv      a0, sp
    call    rt_handle_trap
    ld      t0, 256(sp)
    csrw    sepc, t0
    ld      x1, 8(sp)
    ld      x3, 24(sp)
    ld      x4, 32(sp)
    ld      x5, 40(sp)
    ld      x6, 48(sp)
    ld      x7, 56(sp)
    ld      x8, 64(sp)
    ld      x9, 72(sp)
    ld      x10, 80(sp)
    ld      x11, 88(sp)
    ld      x12, 96(sp)
    ld      x13, 104(sp)
    ld      x14, 112(sp)
    ld      x15, 120(sp)
    ld      x16, 128(sp)
    ld      x17, 136(sp)
    ld      x18, 144(sp)
    ld      x19, 152(sp)
    ld      x20, 160(sp)
    ld      x21, 168(sp)
    ld      x22, 176(sp)
    ld      x23, 184(sp)
    ld      x24, 192(sp)
    ld      x25, 200(sp)
    ld      x26, 208(sp)
    ld      x27, 216(sp)
    ld      x28, 224(sp)
    ld      x29, 232(sp)
    ld      x30, 240(sp)
    ld      x31, 248(sp)
    ld      x2, 16(sp)
    sret

    .section .bss.stack, "aw", @nobits
    .balign 16
    .globl rt_stack0_top
    .space  32768
rt_stack0_top:
