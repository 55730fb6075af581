/* Page tables that loop: root entries that point back at the root itself (Sv39 and Sv48).
 * The walk must end after the architectural number of levels with a page fault (12, 13,
 * 15), never spin. A loop that lands on a valid leaf at a lower level is a legal alias. */
#include "../paging.h"

void guest_main(void) {
  rt_quiet = 1;
  root[0] = pte_table(root);  /* VA 0x0000_0000..: root -> root -> root -> ... */
  root[1] = pte_table(root);
  for (int pass = 0; pass < 2; ++pass) {
    const char* mode = pass == 0 ? "sv39" : "sv48";
    paging_on(pass == 0 ? SATP_SV39 : SATP_SV48);
    print("SATP %s readback=%x\n", mode, csr_read(satp) >> 60);
    const u64 l = expect_trap_load64(0x0);
    const u64 s = expect_trap_store64(0x8, 1);
    const u64 f = expect_trap_call(0x1000);
    const u64 l2 = expect_trap_load64(0x40201000ul);
    print("LOOP %s load=%d store=%d fetch=%d load2=%d\n", mode, (i64)l, (i64)s, (i64)f, (i64)l2);
    paging_off();
  }
  /* Sv39: root[0] -> root, then index 2 at level 1 is the identity gigapage entry, which
   * at level 1 is a valid 2 MiB leaf for PA 0x8000_0000: VA 0x0040_1000 aliases PA
   * 0x8000_1000 (unused RAM below the image). */
  *(volatile u64*)0x80001000ul = 0x1122334455667788ul;
  paging_on(SATP_SV39);
  const u64 t = rt_traps;
  const u64 got = *(volatile u64*)0x00401000ul;
  paging_off();
  print("ALIAS traps=%u value=%x\n", rt_traps - t, got);
}
