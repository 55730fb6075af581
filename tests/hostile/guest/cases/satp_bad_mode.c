/* satp written with every unsupported MODE (reserved 1-7, Sv57, Sv64, reserved 12-15) and a
 * root PPN outside RAM: the write must have no effect (satp stays Bare, the guest keeps
 * running untranslated). Supported modes with an ASID read back without it (ASIDLEN 0). */
#include "../paging.h"

void guest_main(void) {
  static const u64 modes[] = {1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15};
  for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
    csr_write(satp, (modes[i] << 60) | 0xfffffffffful);
    __asm__ volatile("sfence.vma" ::: "memory");
    const u64 back = csr_read(satp);
    /* Still running untranslated: a RAM load works. */
    const u64 word = *(volatile u64*)0x80200000ul;
    print("SATP mode=%u readback=%x ram_ok=%u\n", modes[i], back, (u64)(word != 0));
  }
  paging_on(SATP_SV39 | (0xabcdul << 44));
  const u64 back = csr_read(satp);
  paging_off();
  print("SATP sv39-asid mode=%u asid=%x\n", back >> 60, (back >> 44) & 0xffff);
}
