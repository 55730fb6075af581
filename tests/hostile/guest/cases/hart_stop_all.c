/* The only running hart stops itself through SBI HSM: no hart is left to run. The host must
 * idle (near-zero CPU) until --timeout stops it (vigil exits 4). */
#include "../rt.h"

void guest_main(void) {
  print("STOPPING-LAST-HART\n");
  struct sbiret r = sbi_call(EID_HSM, 1, 0, 0, 0, 0, 0, 0);
  print("UNREACHABLE hart_stop returned err=%d\n", r.error);
}
