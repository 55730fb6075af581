/* The guest reports failure through the sifive,test0 finisher (FAIL with code 42): the
 * machine must stop as crashed with that code in the reason (vigil exits 3). */
#include "../rt.h"

void guest_main(void) {
  print("FAILING\n");
  mmio_w32(TEST_BASE, (42u << 16) | 0x3333);
  print("UNREACHABLE\n");
}
