/* Binary translation under churn: each hart writes a small hot loop into each of 1500 pages,
 * runs every one hot enough to be translated, then rewrites them all (new immediates, FENCE.I)
 * and runs them again, 24 times. That is ~36000 blocks per hart, more than its code area
 * holds, so the area fills and starts over, and every rewrite drops blocks. Every call's
 * result must be exact; the runner bounds vigil's peak RSS. Run with --memory 32. */
#include "../rt.h"

#define PAGES 1500ul
#define ROUNDS 24
#define ITERATIONS 30
#define ADDS 14

static u8 stacks[8][8192] __attribute__((aligned(16)));
static volatile u64 done_harts, calls_total, mismatches_total;

/* B-type encoding (unprivileged spec 2.3): bne rs1, x0, off. */
static u32 bne_zero(u32 rs1, int off) {
  const u32 u = (u32)off;
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs1 << 15) | (1u << 12) |
         (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}

static u64 immediate(u64 page, u64 round) { return ((page * 7 + round) & 0x3ff) + 1; }

static void churn(u64 hart) {
  const u64 base = RAM_BASE + (4ul << 20) + hart * PAGES * 4096;
  u64 calls = 0, mismatches = 0;
  for (u64 r = 0; r < ROUNDS; ++r) {
    for (u64 p = 0; p < PAGES; ++p) {
      volatile u32* f = (volatile u32*)(base + p * 4096);
      for (int i = 0; i < ADDS; ++i) f[i] = (u32)(immediate(p, r) << 20) | 0x50513u; /* addi a0,a0,K */
      f[ADDS] = 0xfff58593u;                                    /* addi a1, a1, -1 */
      f[ADDS + 1] = bne_zero(11, -4 * (ADDS + 1));              /* bnez a1, start */
      f[ADDS + 2] = 0x00008067u;                                /* ret */
    }
    __asm__ volatile("fence.i" ::: "memory");
    for (u64 p = 0; p < PAGES; ++p) {
      u64 (*fn)(u64, u64) = (u64(*)(u64, u64))(base + p * 4096);
      const u64 got = fn(p, ITERATIONS);
      if (got != p + (u64)ITERATIONS * ADDS * immediate(p, r)) ++mismatches;
      ++calls;
    }
  }
  __atomic_fetch_add(&calls_total, calls, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&mismatches_total, mismatches, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&done_harts, 1, __ATOMIC_SEQ_CST);
}

void guest_secondary(unsigned long id) { churn(id); }

void guest_main(void) {
  u64 harts = 1;
  for (u64 h = 1; h < 2; ++h) {
    struct sbiret r = sbi_call(EID_HSM, 0, h, (u64)rt_secondary, (u64)(stacks[h] + sizeof stacks[h]), 0, 0, 0);
    if (r.error) break;
    ++harts;
  }
  churn(0);
  while (done_harts < harts) {
  }
  print("CHURN harts=%u calls=%u mismatches=%u traps=%u\n", harts, calls_total, mismatches_total, rt_traps);
}
