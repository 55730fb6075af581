/* Self-modifying code: a loop rewrites an instruction in the page it is executing from on
 * every iteration (an addi immediate), N times with FENCE.I and N times without. With
 * FENCE.I the architecture guarantees the new instruction runs: the sum is exact. Without
 * it either version may run, but the host must not break. With -DFOREVER it never ends. */
#include "../rt.h"

#define N 300000ul

/* u64 smc_loop(u64 n, u64 use_fence): sum over i < n of the immediate patched into the
 * "addi a3, zero, imm" at 2: (i & 0x7ff), the patch and the patched instruction in one page. */
__asm__(
    "  .pushsection .text.smc, \"ax\"\n"
    "  .balign 4096\n"
    "  .globl smc_loop\n"
    "smc_loop:\n"
    "  .option push\n"
    "  .option norvc\n"
    "  li t1, 0\n"
    "  li t2, 0\n"
    "  li t4, 0x693\n"  /* addi a3, zero, 0 */
    "  lla t5, 2f\n"
    "1:\n"
    "  andi t3, t1, 0x7ff\n"
    "  slli t3, t3, 20\n"
    "  or t3, t3, t4\n"
    "  sw t3, 0(t5)\n"
    "  beqz a1, 2f\n"
    "  fence.i\n"
    "2:\n"
    "  addi a3, zero, 0\n"
    "  add t2, t2, a3\n"
    "  addi t1, t1, 1\n"
    "  blt t1, a0, 1b\n"
    "  mv a0, t2\n"
    "  ret\n"
    "  .option pop\n"
    "  .popsection\n");

u64 smc_loop(u64 n, u64 use_fence);

void guest_main(void) {
  u64 expect = 0;
  for (u64 i = 0; i < N; ++i) expect += i & 0x7ff;
  const u64 t0 = rdtime();
  u64 rounds = 0, with = 0, without = 0;
  do {
    with = smc_loop(N, 1);
    without = smc_loop(N, 0);
    ++rounds;
#ifdef FOREVER
    print("ALIVE %u\n", rounds);
  } while (1);
#else
  } while (0);
#endif
  const u64 ms = (rdtime() - t0) / 10000;
  print("SMC with-fence=%u expect=%u without-fence=%u ms=%u\n", with, expect, without, ms);
}
