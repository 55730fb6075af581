/* Spins forever with every interrupt disabled: the host must still stop it at --timeout
 * (vigil exits 4) and stay responsive meanwhile. */
#include "../rt.h"

void guest_main(void) {
  csr_clear(sstatus, SSTATUS_SIE);
  csr_write(sie, 0);
  print("SPINNING\n");
  for (;;) {
    __asm__ volatile("");
  }
}
