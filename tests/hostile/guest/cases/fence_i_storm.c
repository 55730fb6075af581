/* A FENCE.I and remote-fence storm on two harts (--vcpus 2): local FENCE.I and SFENCE.VMA in
 * a tight loop, SBI remote FENCE.I / SFENCE.VMA aimed at the other hart and at all harts,
 * both harts fencing each other at the same time. It must finish (no deadlock between the
 * harts' fence waits). With -DFOREVER it never ends. */
#include "../rt.h"

#define N 200000ul
#define R 5000ul

static volatile int hart1_done;
static volatile u64 remote[2];
static u8 stack1[16384] __attribute__((aligned(16)));

static void storm(u64 me) {
  u64 rounds = 0;
  do {
    for (u64 i = 0; i < N; ++i) {
      __asm__ volatile("fence.i" ::: "memory");
      if ((i & 15) == 0) __asm__ volatile("sfence.vma" ::: "memory");
    }
    for (u64 i = 0; i < R; ++i) {
      sbi_call(EID_RFENCE, i & 1, 1ul << (me ^ 1), 0, 0, ~0ul, 0, 0);
      sbi_call(EID_RFENCE, 0, 0, ~0ul, 0, 0, 0, 0);
      sbi_legacy(5, 0);
      remote[me] += 3;
    }
    ++rounds;
#ifdef FOREVER
    if (me == 0) print("ALIVE %u\n", rounds);
  } while (1);
#else
  } while (0);
#endif
}

void guest_secondary(unsigned long id) {
  storm(id);
  hart1_done = 1;
}

void guest_main(void) {
  struct sbiret r = sbi_call(EID_HSM, 0, 1, (u64)rt_secondary, (u64)(stack1 + sizeof stack1), 0, 0, 0);
  print("HART1 start err=%d\n", r.error);
  const u64 t0 = rdtime();
  storm(0);
  while (!hart1_done) {
  }
  print("FENCE local=%u remote0=%u remote1=%u ms=%u\n", 2 * N, remote[0], remote[1], (rdtime() - t0) / 10000);
}
