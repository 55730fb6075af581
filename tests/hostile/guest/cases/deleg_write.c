/* S-mode tries to take over M-mode: write medeleg, mideleg, mie, mstatus, mtvec, PMP
 * (pmpcfg0 = 0 would cut S off from RAM), mcounteren. Every write must be an illegal
 * instruction (2) and change nothing: afterwards exceptions still reach S, ECALL still
 * reaches the SBI, and RAM is still accessible. */
#include "../rt.h"

#define WRITE(csr, val)                                                                 \
  do {                                                                                  \
    const u64 before = rt_traps;                                                        \
    __asm__ volatile("mv t1, %0\n csrw " #csr ", t1" ::"r"((u64)(val)) : "t1", "memory"); \
    print("WRITE " #csr " scause=%d\n", (i64)(rt_traps != before ? rt_last_scause : NO_TRAP)); \
  } while (0)

void guest_main(void) {
  rt_quiet = 1;
  WRITE(0x302, 0);    /* medeleg = 0: would send every exception to M */
  WRITE(0x303, 0);    /* mideleg = 0 */
  WRITE(0x304, ~0ul); /* mie */
  WRITE(0x300, 0);    /* mstatus */
  WRITE(0x305, 0);    /* mtvec */
  WRITE(0x3a0, 0);    /* pmpcfg0 */
  WRITE(0x3b0, 0);    /* pmpaddr0 */
  WRITE(0x306, 0);    /* mcounteren */
  /* csrs/csrc forms too */
  u64 before = rt_traps;
  __asm__ volatile("csrc 0x302, %0" ::"r"(~0ul) : "memory");
  print("WRITE csrc-medeleg scause=%d\n", (i64)(rt_traps != before ? rt_last_scause : NO_TRAP));
  /* Still delegated: an EBREAK arrives in S as a breakpoint. */
  before = rt_traps;
  __asm__ volatile("ebreak" ::: "memory");
  print("AFTER ebreak scause=%d\n", (i64)(rt_traps != before ? rt_last_scause : NO_TRAP));
  struct sbiret r = sbi_call(EID_BASE, 0, 0, 0, 0, 0, 0, 0);
  print("AFTER sbi-spec-version err=%d value=%x\n", r.error, (u64)r.value);
  print("AFTER ram-load value=%x\n", *(volatile u32*)0x80200000ul);
  print("AFTER time-readable=%u\n", (u64)(rdtime() != 0));
}
