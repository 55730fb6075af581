/* Page tables and leaves that point outside guest RAM: a next-level table beyond RAM, a
 * next-level table on MMIO (the UART), a gigapage leaf onto a hole, a leaf beyond the
 * physical address space. Walks must not read anything but RAM (access faults 5, 7, 1); a
 * leaf onto a real device is a legal mapping. */
#include "../paging.h"

void guest_main(void) {
  rt_quiet = 1;
  root[0] = pte_table((void*)0x100000000ul);        /* VA 0x0000_0000: table beyond RAM */
  root[1] = pte_table((void*)UART_BASE);            /* VA 0x4000_0000: table on the UART */
  root[3] = pte_leaf(0x100000000ul, PTE_RWX);      /* VA 0xc000_0000: leaf onto a hole */
  root[4] = pte_leaf(0x0ul, PTE_RWX);              /* VA 0x1_0000_0000: leaf onto PA 0 */
  root[5] = ((0xffffffffffful & ~0x3fffful) << 10) | PTE_RWX | PTE_V;  /* top of the PA space */
  paging_on(SATP_SV39);
  const struct {
    const char* name;
    u64 va;
  } v[] = {
      {"table-beyond-ram", 0x1000},      {"table-on-uart", 0x40001000ul}, {"leaf-hole", 0xc0001000ul},
      {"leaf-pa-zero", 0x100001000ul},   {"leaf-pa-top", 0x140001000ul},
  };
  for (unsigned i = 0; i < sizeof v / sizeof v[0]; ++i) {
    const u64 l = expect_trap_load64(v[i].va);
    const u64 s = expect_trap_store64(v[i].va, 0);
    const u64 f = expect_trap_call(v[i].va);
    print("PT %s load=%d store=%d fetch=%d\n", v[i].name, (i64)l, (i64)s, (i64)f);
  }
  /* A leaf onto the UART page is a real mapping: LSR reads THRE|TEMT. */
  static u64 l1[512] __attribute__((aligned(4096)));
  static u64 l0[512] __attribute__((aligned(4096)));
  root[6] = pte_table(l1);
  l1[0] = pte_table(l0);
  l0[0] = pte_leaf(UART_BASE, PTE_R | PTE_W | PTE_A | PTE_D);
  remap();
  const u64 t = rt_traps;
  const u8 lsr = *(volatile u8*)(0x180000000ul + 5);
  print("PT uart-leaf traps=%u lsr=%x\n", rt_traps - t, (u64)lsr);
  paging_off();
}
