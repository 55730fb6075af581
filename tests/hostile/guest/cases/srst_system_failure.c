/* SBI SRST shutdown with reason "system failure", after an undefined reset type and reason
 * were refused: the machine must stop as crashed with that reason (vigil exits 3). */
#include "../rt.h"

void guest_main(void) {
  struct sbiret r = sbi_call(EID_SRST, 0, 0x10, 0, 0, 0, 0, 0);
  print("SRST bad-type err=%d\n", r.error);
  r = sbi_call(EID_SRST, 0, 0, 0x1234, 0, 0, 0, 0);
  print("SRST bad-reason err=%d\n", r.error);
  r = sbi_call(EID_SRST, 0, 0xffffffff, 0, 0, 0, 0, 0);
  print("SRST vendor-type err=%d\n", r.error);
  sbi_call(EID_SRST, 0, 0, 1, 0, 0, 0, 0);
  print("UNREACHABLE\n");
}
