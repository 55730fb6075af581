/* Device accesses of the wrong size or alignment, and atomics on devices: each must be an
 * access fault delivered to S-mode (scause 5 load, 7 store/AMO), never a host access of
 * the wrong width. Misaligned accesses to RAM, by contrast, are emulated. */
#include "../rt.h"

static u64 amoadd_w(u64 a) {
  u64 before = rt_traps;
  __asm__ volatile("li t1, 1\n amoadd.w t0, t1, (%0)" ::"r"(a) : "t0", "t1", "memory");
  return rt_traps != before ? rt_last_scause : NO_TRAP;
}
static u64 amoswap_d(u64 a) {
  u64 before = rt_traps;
  __asm__ volatile("amoswap.d t0, zero, (%0)" ::"r"(a) : "t0", "memory");
  return rt_traps != before ? rt_last_scause : NO_TRAP;
}
static u64 lr_w(u64 a) {
  u64 before = rt_traps;
  __asm__ volatile("lr.w t0, (%0)" ::"r"(a) : "t0", "memory");
  return rt_traps != before ? rt_last_scause : NO_TRAP;
}

static void check(const char* name, u64 scause, u64 expect) {
  print("ACCESS %s scause=%d expect=%d\n", name, (i64)scause, (i64)expect);
}

void guest_main(void) {
  rt_quiet = 1;
  const u64 V = VIRTIO_BASE;  /* run with --rng: slot 0 is virtio-rng (no config space) */
  check("plic-sb", expect_trap_store8(PLIC_BASE + 4, 1), 7);
  check("plic-sh", expect_trap_store16(PLIC_BASE + 4, 1), 7);
  check("plic-lb", expect_trap_load8(PLIC_BASE + 4), 5);
  check("plic-ld", expect_trap_load64(PLIC_BASE + 8), 5);
  check("plic-lw-misaligned", expect_trap_load32(PLIC_BASE + 6), 5);
  check("virtio-sd", expect_trap_store64(V + 0x70, 0), 7);
  check("virtio-lb", expect_trap_load8(V + 0x70), 5);
  check("virtio-lw-misaligned", expect_trap_load32(V + 0x72), 5);
  check("virtio-config-past-end", expect_trap_load32(V + 0x100), 5);
  check("virtio-past-slot", expect_trap_load32(V + 0x1000 - 2), 5);
  check("uart-lh-misaligned", expect_trap_load16(UART_BASE + 1), 5);
  check("uart-sw-misaligned", expect_trap_store32(UART_BASE + 2, 0), 7);
  check("uart-ld-past-end", expect_trap_load64(UART_BASE + 8), 5);
  check("clint-sd-misaligned", expect_trap_store64(CLINT_BASE + 4, 0), 7);
  check("clint-lb", expect_trap_load8(CLINT_BASE), 5);
  check("clint-sh", expect_trap_store16(CLINT_BASE + 0x4000, 0), 7);
  check("uart-amoadd", amoadd_w(UART_BASE), 7);
  check("clint-amoswap", amoswap_d(CLINT_BASE + 0x4000), 7);
  check("plic-lr", lr_w(PLIC_BASE + 4), 5);
  /* Misaligned RAM accesses are emulated (no trap), including across a page. */
  static u8 ram[8192] __attribute__((aligned(4096)));
  for (int i = 0; i < 16; ++i) ram[4096 - 8 + i] = (u8)(0x10 + i);
  u64 v = 0;
  const u64 before = rt_traps;
  __asm__ volatile("ld %0, 0(%1)" : "=r"(v) : "r"(&ram[4096 - 3]) : "memory");
  print("RAM-MISALIGNED traps=%u value=%x\n", rt_traps - before, v);
  print("TOTAL traps=%u\n", rt_traps);
}
