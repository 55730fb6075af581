/* HSM hart_start with a hart that does not exist, start addresses on MMIO, beyond RAM and
 * straddling the end of RAM, the already running boot hart, and a double start; hart_status
 * of bad harts; hart_stop of a hart that is not started. Each must return its SBI error;
 * a correct start still works afterwards. (--vcpus 2) */
#include "../rt.h"

static u8 stack1[16384] __attribute__((aligned(16)));
static volatile int hart1_ran;
static volatile int release;

void guest_secondary(unsigned long id) {
  hart1_ran = (int)id + 100;
  /* Stay started until hart 0 has tried the second start: a hart that stopped itself in
   * between may legally be started again. */
  for (u64 spins = 0; !release && spins < 1000000000ul; ++spins) {
  }
}

static void start(const char* name, u64 hart, u64 addr) {
  struct sbiret r = sbi_call(EID_HSM, 0, hart, addr, (u64)(stack1 + sizeof stack1), 0, 0, 0);
  print("START %s err=%d\n", name, r.error);
}

void guest_main(void) {
  const u64 ram_end = RAM_BASE + (64ul << 20);
  start("hart-5", 5, (u64)rt_secondary);
  start("hart-huge", 1ul << 63, (u64)rt_secondary);
  start("addr-uart", 1, UART_BASE);
  start("addr-zero", 1, 0);
  start("addr-beyond-ram", 1, 0x100000000ul);
  start("addr-straddle-end", 1, ram_end - 2);
  start("hart-0-running", 0, (u64)rt_secondary);
  struct sbiret r = sbi_call(EID_HSM, 2, 1, 0, 0, 0, 0, 0);
  print("STATUS hart1 err=%d value=%d\n", r.error, r.value);
  r = sbi_call(EID_HSM, 2, ~0ul, 0, 0, 0, 0, 0);
  print("STATUS hart-all-ones err=%d\n", r.error);
  /* A good start, then an immediate second start of the same hart. */
  start("good", 1, (u64)rt_secondary);
  start("again", 1, (u64)rt_secondary);
  release = 1;
  for (u64 spins = 0; !hart1_ran && spins < 100000000ul; ++spins) {
  }
  print("HART1 ran=%d\n", (i64)hart1_ran);
  /* Wait until hart 1 has stopped itself (rt_secondary_main calls hart_stop). */
  for (u64 spins = 0; spins < 100000000ul; ++spins) {
    r = sbi_call(EID_HSM, 2, 1, 0, 0, 0, 0, 0);
    if (r.value == 1) break;
  }
  print("STATUS hart1-after err=%d value=%d\n", r.error, r.value);
}
