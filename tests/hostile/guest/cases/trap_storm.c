/* An exception storm: illegal instructions (a 32-bit one and the 16-bit all-zero one), EBREAKs and
 * M-mode CSR reads, each handled and skipped by the guest, plus SBI ECALLs, N of each. Every
 * trap must arrive (exact counts). With -DFOREVER it never ends. */
#include "../rt.h"

#define N 300000ul

void guest_main(void) {
  rt_quiet = 1;
  rt_max_traps = ~0ul;
  const u64 t0 = rdtime();
  u64 rounds = 0, ecalls = 0;
  do {
    for (u64 i = 0; i < N; ++i) {
      __asm__ volatile(".word 0xfe000033" ::: "memory");   /* OP with funct7 0x7f: illegal */
      __asm__ volatile(".half 0" ::: "memory");            /* c.illegal (all zero) */
      __asm__ volatile("ebreak" ::: "memory");
      __asm__ volatile("csrr t0, mstatus" ::: "t0", "memory");
      sbi_call(EID_BASE, 3, EID_TIME, 0, 0, 0, 0, 0);      /* probe: a real SBI ECALL */
      ++ecalls;
    }
    ++rounds;
#ifdef FOREVER
    print("ALIVE %u traps=%u\n", rounds, rt_traps);
  } while (1);
#else
  } while (0);
#endif
  const u64 ms = (rdtime() - t0) / 10000;
  print("STORM traps=%u expect=%u ecalls=%u ms=%u\n", rt_traps, 4 * N * rounds, ecalls, ms);
}
