/* Millions of PLIC accesses: priorities of every source id (and ids past the last),
 * enable words of contexts that do not exist, thresholds, claims, and completions of
 * bogus ids. The host must survive; the registers must read back sanely afterwards. */
#include "../rt.h"

#define N 1500000ul

void guest_main(void) {
  const u64 t0 = rdtime();
  u64 rounds = 0;
  do {
    for (u64 i = 0; i < N; ++i) {
      const u32 v = (u32)(i * 2654435761u);
      mmio_w32(PLIC_BASE + 4 * (i % 1024), v);                                   /* priorities 0..1023 */
      mmio_w32(PLIC_BASE + 0x2000 + 0x80 * (i % 64) + 4 * (i % 32), ~0u);        /* enables, ctx 0..63 */
      mmio_w32(PLIC_BASE + 0x200000 + 0x1000 * (i % 64), v);                     /* thresholds */
      (void)mmio_r32(PLIC_BASE + 0x200004 + 0x1000 * (i % 64));                  /* claims */
      mmio_w32(PLIC_BASE + 0x200004 + 0x1000 * (i % 64), v);                     /* bogus completes */
      (void)mmio_r32(PLIC_BASE + 0x1000 + 4 * (i % 32));                         /* pending */
    }
    ++rounds;
#ifdef FOREVER
    print("ALIVE %u\n", rounds);
  } while (1);
#else
  } while (0);
#endif
  const u64 ms = (rdtime() - t0) / 10000;
  mmio_w32(PLIC_BASE + 4 * 10, 0xffffffffu);
  print("PLIC-FLOOD accesses=%u prio10=%x prio0=%x prio500=%x ms=%u\n", rounds * N * 6,
        (u64)mmio_r32(PLIC_BASE + 4 * 10), (u64)mmio_r32(PLIC_BASE), (u64)mmio_r32(PLIC_BASE + 4 * 500), ms);
}
