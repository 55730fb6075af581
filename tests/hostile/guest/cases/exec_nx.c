/* Instruction fetch from pages that are not executable for S-mode: a read/write page, a user
 * page (never executable from S, even with SUM), a page mapped at a hole. Each must be an
 * instruction page fault (12) or access fault (1); a proper X page still runs. */
#include "../paging.h"

static u64 l1[512] __attribute__((aligned(4096)));
static u64 l0[512] __attribute__((aligned(4096)));
static u16 code[4][2048] __attribute__((aligned(4096)));

#define VA(i) (0x40000000ul + 0x1000ul * (i))

void guest_main(void) {
  rt_quiet = 1;
  for (int i = 0; i < 4; ++i) code[i][0] = 0x8082;  /* c.ret */
  __asm__ volatile("fence.i");
  root[1] = pte_table(l1);
  l1[0] = pte_table(l0);
  l0[0] = pte_leaf((u64)code[0], PTE_R | PTE_W | PTE_A | PTE_D);          /* RW, no X */
  l0[1] = pte_leaf((u64)code[1], PTE_U | PTE_R | PTE_X | PTE_A);          /* user X */
  l0[2] = pte_leaf(0x100000000ul, PTE_R | PTE_X | PTE_A);                 /* X onto a hole */
  l0[3] = pte_leaf((u64)code[3], PTE_R | PTE_X | PTE_A);                  /* proper S X page */
  paging_on(SATP_SV39);
  print("NX rw-page=%d\n", (i64)expect_trap_call(VA(0)));
  print("NX user-page=%d\n", (i64)expect_trap_call(VA(1)));
  csr_set(sstatus, SSTATUS_SUM);
  print("NX user-page-sum=%d\n", (i64)expect_trap_call(VA(1)));
  csr_clear(sstatus, SSTATUS_SUM);
  print("NX hole-page=%d\n", (i64)expect_trap_call(VA(2)));
  print("NX x-page=%d\n", (i64)expect_trap_call(VA(3)));
  paging_off();
}
