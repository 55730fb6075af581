/* The hostile guests' runtime (see rt.h). */
#include <stdarg.h>

#include "rt.h"

volatile u64 rt_traps, rt_irqs, rt_last_scause, rt_last_stval, rt_resume_pc;
volatile int rt_quiet;
volatile u64 rt_max_traps = 64;
void (*volatile rt_irq_hook)(struct frame* f);

struct sbiret sbi_call(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
  register u64 r0 __asm__("a0") = a0;
  register u64 r1 __asm__("a1") = a1;
  register u64 r2 __asm__("a2") = a2;
  register u64 r3 __asm__("a3") = a3;
  register u64 r4 __asm__("a4") = a4;
  register u64 r5 __asm__("a5") = a5;
  register u64 r6 __asm__("a6") = fid;
  register u64 r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r3), "r"(r4), "r"(r5), "r"(r6), "r"(r7) : "memory");
  struct sbiret r = {(i64)r0, (i64)r1};
  return r;
}

long sbi_legacy(u64 eid, u64 a0) {
  register u64 r0 __asm__("a0") = a0;
  register u64 r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0) : "r"(r7) : "memory", "a1");
  return (long)r0;
}

void putc_(char c) { sbi_legacy(1, (u8)c); }

void puts_(const char* s) {
  while (*s) putc_(*s++);
}

void put_hex(u64 v) {
  char buf[19];
  int i = 18;
  buf[i] = 0;
  do {
    buf[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  buf[--i] = 'x';
  buf[--i] = '0';
  puts_(&buf[i]);
}

static void put_udec(u64 v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  puts_(&buf[i]);
}

void put_dec(i64 v) {
  if (v < 0) {
    putc_('-');
    put_udec((u64)0 - (u64)v);
  } else {
    put_udec((u64)v);
  }
}

void print(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      putc_(*fmt);
      continue;
    }
    switch (*++fmt) {
      case 's': puts_(va_arg(ap, const char*)); break;
      case 'x': put_hex(va_arg(ap, u64)); break;
      case 'd': put_dec(va_arg(ap, i64)); break;
      case 'u': put_udec(va_arg(ap, u64)); break;
      case 'c': putc_((char)va_arg(ap, int)); break;
      case 0: --fmt; break;
      default: putc_(*fmt); break;
    }
  }
  va_end(ap);
}

void shutdown(void) {
  sbi_call(EID_SRST, 0, 0, 0, 0, 0, 0, 0);
  for (;;) {
  }
}

void shutdown_failure(void) {
  sbi_call(EID_SRST, 0, 0, 1, 0, 0, 0, 0);
  for (;;) {
  }
}

void fail(const char* why) {
  print("FAIL %s\n", why);
  shutdown_failure();
}

u64 rdtime(void) { return csr_read(time); }

void* memset(void* d, int c, unsigned long n) {
  u8* p = d;
  while (n--) *p++ = (u8)c;
  return d;
}

void* memcpy(void* d, const void* s, unsigned long n) {
  u8* p = d;
  const u8* q = s;
  while (n--) *p++ = *q++;
  return d;
}

int memcmp(const void* a, const void* b, unsigned long n) {
  const u8 *p = a, *q = b;
  for (; n; --n, ++p, ++q) {
    if (*p != *q) return *p < *q ? -1 : 1;
  }
  return 0;
}

/* ---- traps ---- */

void rt_handle_trap(struct frame* f) {
  if (f->scause & SCAUSE_IRQ) {
    ++rt_irqs;
    if (rt_irq_hook) {
      rt_irq_hook(f);
      return;
    }
    const u64 code = f->scause & ~SCAUSE_IRQ;
    csr_clear(sie, 1ul << code);
    print("IRQ cause=%u (masked)\n", code);
    return;
  }
  ++rt_traps;
  rt_last_scause = f->scause;
  rt_last_stval = f->stval;
  if (!rt_quiet) print("TRAP scause=%x stval=%x sepc=%x\n", f->scause, f->stval, f->sepc);
  if (rt_traps > rt_max_traps) {
    print("TRAP-LIMIT %u traps, last scause=%x sepc=%x\n", rt_traps, f->scause, f->sepc);
    shutdown_failure();
  }
  if (rt_resume_pc) {
    f->sepc = rt_resume_pc;
    rt_resume_pc = 0;
  } else if (f->scause == 1 || f->scause == 12) {
    f->sepc = f->x[1];  /* a call into a bad address returns to its caller */
  } else {
    const u16 lo = *(volatile u16*)f->sepc;
    f->sepc += (lo & 3) == 3 ? 4 : 2;
  }
}

#define EXPECT_TRAP(insn, ...)                          \
  u64 before = rt_traps;                                \
  __asm__ volatile(insn ::__VA_ARGS__ : "t0", "memory"); \
  return rt_traps != before ? rt_last_scause : NO_TRAP;

u64 expect_trap_load64(u64 a) { EXPECT_TRAP("ld t0, 0(%0)", "r"(a)) }
u64 expect_trap_load32(u64 a) { EXPECT_TRAP("lw t0, 0(%0)", "r"(a)) }
u64 expect_trap_load16(u64 a) { EXPECT_TRAP("lh t0, 0(%0)", "r"(a)) }
u64 expect_trap_load8(u64 a) { EXPECT_TRAP("lb t0, 0(%0)", "r"(a)) }
u64 expect_trap_store64(u64 a, u64 v) { EXPECT_TRAP("sd %1, 0(%0)", "r"(a), "r"(v)) }
u64 expect_trap_store32(u64 a, u32 v) { EXPECT_TRAP("sw %1, 0(%0)", "r"(a), "r"(v)) }
u64 expect_trap_store16(u64 a, u16 v) { EXPECT_TRAP("sh %1, 0(%0)", "r"(a), "r"(v)) }
u64 expect_trap_store8(u64 a, u8 v) { EXPECT_TRAP("sb %1, 0(%0)", "r"(a), "r"(v)) }

u64 expect_trap_call(u64 addr) {
  u64 before = rt_traps;
  ((void (*)(void))addr)();
  return rt_traps != before ? rt_last_scause : NO_TRAP;
}

/* ---- entry ---- */

void rt_main(void) {
  print("HOSTILE-START\n");
  guest_main();
  print("HOSTILE-DONE\n");
  shutdown();
}

void rt_secondary_main(u64 hartid) {
  if (guest_secondary) guest_secondary(hartid);
  sbi_call(EID_HSM, 1, 0, 0, 0, 0, 0, 0);  /* hart_stop */
  for (;;) {
  }
}

/* ---- virtio-mmio (4.2.2 register layout, version 2) ---- */

u32 vq_driver_features_lo;

u32 virtio_status(u64 base) { return mmio_r32(base + 0x70); }

u32 vq_setup(struct vq* q, u64 base, u32 size, void* mem) {
  q->base = base;
  q->size = size;
  q->desc = (struct virtq_desc*)mem;
  q->avail = (volatile u16*)((u8*)mem + 4096);
  q->used = (volatile u16*)((u8*)mem + 8192);
  q->avail_idx = 0;
  memset(mem, 0, 3 * 4096);
  if (mmio_r32(base + 0x0) != 0x74726976 || mmio_r32(base + 0x4) != 2 || mmio_r32(base + 0x8) == 0) {
    fail("no virtio-mmio device in the slot");
  }
  mmio_w32(base + 0x70, 0);  /* reset */
  mmio_w32(base + 0x70, 1);  /* ACKNOWLEDGE */
  mmio_w32(base + 0x70, 3);  /* DRIVER */
  mmio_w32(base + 0x24, 1);
  mmio_w32(base + 0x20, 1);  /* VERSION_1 (bit 32) */
  mmio_w32(base + 0x24, 0);
  mmio_w32(base + 0x20, vq_driver_features_lo);
  mmio_w32(base + 0x70, 11); /* FEATURES_OK */
  if (!(mmio_r32(base + 0x70) & 8)) fail("FEATURES_OK refused");
  mmio_w32(base + 0x30, 0);  /* QueueSel */
  const u32 max = mmio_r32(base + 0x34);
  if (max < size) fail("QueueNumMax too small");
  mmio_w32(base + 0x38, size);
  const u64 d = (u64)q->desc, a = (u64)q->avail, u = (u64)q->used;
  mmio_w32(base + 0x80, (u32)d);
  mmio_w32(base + 0x84, (u32)(d >> 32));
  mmio_w32(base + 0x90, (u32)a);
  mmio_w32(base + 0x94, (u32)(a >> 32));
  mmio_w32(base + 0xa0, (u32)u);
  mmio_w32(base + 0xa4, (u32)(u >> 32));
  mmio_w32(base + 0x44, 1);
  if (mmio_r32(base + 0x44) != 1) {
    print("QUEUE-NOT-READY\n");
    return 0;
  }
  mmio_w32(base + 0x70, 15); /* DRIVER_OK */
  return mmio_r32(base + 0x70);
}

void vq_kick(struct vq* q, u16 head) {
  q->avail[2 + (q->avail_idx % q->size)] = head;
  barrier();
  q->avail_idx++;
  q->avail[1] = q->avail_idx;
  barrier();
  mmio_w32(q->base + 0x50, 0);
}

u16 vq_used_idx(struct vq* q) {
  barrier();
  return q->used[1];
}

u32 vq_used_len(struct vq* q, u16 slot) {
  barrier();
  volatile u32* elems = (volatile u32*)((u8*)q->used + 4);
  return elems[2 * (slot % q->size) + 1];
}
