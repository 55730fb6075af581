/* Every hart executes one instruction on each of 2600 different RAM pages, over and over,
 * so each page becomes "code" in each hart's decoded-instruction cache. The host memory that
 * cache takes must stay bounded however much code the guest sprays (the runner measures
 * vigil's peak RSS). Run with --memory 16 and several vCPUs. */
#include "../rt.h"

#define PAGES 2600ul
#define ROUNDS 3

static u8 stacks[8][8192] __attribute__((aligned(16)));
static volatile u64 done_harts, calls_total;

static void spray(void) {
  const u64 base = RAM_BASE + (3ul << 20);
  u64 calls = 0;
  for (int r = 0; r < ROUNDS; ++r) {
    for (u64 p = 0; p < PAGES; ++p) {
      ((void (*)(void))(base + p * 4096))();
      ++calls;
    }
  }
  __atomic_fetch_add(&calls_total, calls, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&done_harts, 1, __ATOMIC_SEQ_CST);
}

void guest_secondary(unsigned long id) {
  (void)id;
  spray();
}

void guest_main(void) {
  const u64 base = RAM_BASE + (3ul << 20);
  for (u64 p = 0; p < PAGES; ++p) *(volatile u16*)(base + p * 4096) = 0x8082;  /* c.ret */
  __asm__ volatile("fence.i" ::: "memory");
  u64 harts = 1;
  for (u64 h = 1; h < 8; ++h) {
    struct sbiret r = sbi_call(EID_HSM, 0, h, (u64)rt_secondary, (u64)(stacks[h] + sizeof stacks[h]), 0, 0, 0);
    if (r.error) break;
    ++harts;
  }
  spray();
  while (done_harts < harts) {
  }
  print("SPRAY harts=%u pages=%u calls=%u traps=%u\n", harts, PAGES, calls_total, rt_traps);
}
