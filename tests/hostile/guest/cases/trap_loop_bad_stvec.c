/* stvec points into an unmapped hole, then an illegal instruction: the trap vector itself
 * faults, forever (a double-fault loop S-mode cannot escape). The host must keep control
 * and stop the guest at --timeout (vigil exits 4). */
#include "../rt.h"

void guest_main(void) {
  print("LOOPING\n");
  csr_write(stvec, 0x4000);
  __asm__ volatile(".word 0");
}
