/* Page permissions enforced against S-mode: a store to a read-only page (15), a load from
 * an execute-only page (13; allowed with MXR), S access to a user page without SUM (13/15;
 * allowed with SUM), the reserved W-without-R encoding, an invalid PTE, reserved high PTE
 * bits, and a misaligned superpage. The read-only page must be unchanged. */
#include "../paging.h"

static u64 l1[512] __attribute__((aligned(4096)));
static u64 l0[512] __attribute__((aligned(4096)));
static u8 pages[8][4096] __attribute__((aligned(4096)));

#define VA(i) (0x40000000ul + 0x1000ul * (i))

void guest_main(void) {
  rt_quiet = 1;
  for (int i = 0; i < 8; ++i) memset(pages[i], 0x11 * (i + 1), 4096);
  root[1] = pte_table(l1);
  l1[0] = pte_table(l0);
  l1[1] = pte_leaf((u64)pages[0] + 0x1000, PTE_R | PTE_A);        /* 2 MiB leaf, PA not 2 MiB aligned */
  l0[0] = pte_leaf((u64)pages[0], PTE_R | PTE_A);                 /* read-only */
  l0[1] = pte_leaf((u64)pages[1], PTE_X | PTE_A);                 /* execute-only */
  l0[2] = pte_leaf((u64)pages[2], PTE_U | PTE_R | PTE_W | PTE_A | PTE_D);  /* user page */
  l0[3] = pte_leaf((u64)pages[3], PTE_W | PTE_A | PTE_D);         /* W without R: reserved */
  l0[4] = pte_leaf((u64)pages[4], PTE_RWX) & ~PTE_V;              /* invalid */
  l0[5] = pte_leaf((u64)pages[5], PTE_R | PTE_W | PTE_A | PTE_D) | (1ul << 60);  /* reserved bit */
  paging_on(SATP_SV39);

  print("PERM ro-store=%d\n", (i64)expect_trap_store64(VA(0), 0xbad));
  print("PERM ro-load=%d\n", (i64)expect_trap_load64(VA(0)));
  print("PERM xo-load=%d\n", (i64)expect_trap_load64(VA(1)));
  csr_set(sstatus, SSTATUS_MXR);
  print("PERM xo-load-mxr=%d\n", (i64)expect_trap_load64(VA(1)));
  csr_clear(sstatus, SSTATUS_MXR);
  print("PERM user-load=%d\n", (i64)expect_trap_load64(VA(2)));
  print("PERM user-store=%d\n", (i64)expect_trap_store64(VA(2), 1));
  csr_set(sstatus, SSTATUS_SUM);
  print("PERM user-load-sum=%d\n", (i64)expect_trap_load64(VA(2)));
  print("PERM user-fetch-sum=%d\n", (i64)expect_trap_call(VA(2)));
  csr_clear(sstatus, SSTATUS_SUM);
  print("PERM w-only-load=%d\n", (i64)expect_trap_load64(VA(3)));
  print("PERM w-only-store=%d\n", (i64)expect_trap_store64(VA(3), 1));
  print("PERM invalid-load=%d\n", (i64)expect_trap_load64(VA(4)));
  print("PERM reserved-bits-load=%d\n", (i64)expect_trap_load64(VA(5)));
  print("PERM misaligned-superpage-load=%d\n", (i64)expect_trap_load64(0x40200000ul));
  /* The store to the read-only page through an AMO too. */
  u64 before = rt_traps;
  __asm__ volatile("amoswap.d zero, zero, (%0)" ::"r"(VA(0)) : "memory");
  print("PERM ro-amo=%d\n", (i64)(rt_traps != before ? rt_last_scause : NO_TRAP));
  paging_off();
  u64 intact = 1;
  for (int i = 0; i < 4096; ++i) intact &= pages[0][i] == 0x11;
  print("RO-PAGE intact=%u\n", intact);
}
