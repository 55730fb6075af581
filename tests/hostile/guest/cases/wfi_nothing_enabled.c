/* WFI with no interrupt enabled and no timer armed: the hart can never wake. The host must
 * park it (near-zero host CPU) until --timeout stops it (vigil exits 4). */
#include "../rt.h"

void guest_main(void) {
  csr_clear(sstatus, SSTATUS_SIE);
  csr_write(sie, 0);
  sbi_call(EID_TIME, 0, ~0ul, 0, 0, 0, 0, 0);
  print("WFI-FOREVER\n");
  for (;;) __asm__ volatile("wfi");
}
