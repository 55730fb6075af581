/* A timer interrupt storm: with STIE on, the handler re-arms the timer in the past
 * (set_timer(0), alternating the TIME extension and the legacy call), so a timer interrupt
 * is pending again the moment it returns. After N interrupts the timer is disarmed.
 * With -DFOREVER it never ends. */
#include "../rt.h"

#define N 1000000ul

static volatile u64 ticks;

static void on_irq(struct frame* f) {
  if ((f->scause & ~SCAUSE_IRQ) != 5) return;
  ++ticks;
#ifdef FOREVER
  /* The storm starves the interrupted code completely (a timer interrupt is pending again
   * the moment sret returns), so report from the handler. */
  if (ticks % 1000000 == 0) print("ALIVE %u\n", ticks);
#else
  if (ticks >= N) {
    sbi_call(EID_TIME, 0, ~0ul, 0, 0, 0, 0, 0);
    return;
  }
#endif
  if (ticks & 1) {
    sbi_call(EID_TIME, 0, 0, 0, 0, 0, 0, 0);
  } else {
    sbi_legacy(0, 0);
  }
}

void guest_main(void) {
  rt_irq_hook = on_irq;
  const u64 t0 = rdtime();
  csr_set(sie, SIE_STIE);
  csr_set(sstatus, SSTATUS_SIE);
  sbi_call(EID_TIME, 0, 0, 0, 0, 0, 0, 0);
#ifdef FOREVER
  for (;;) {
  }
#endif
  while (ticks < N) {
  }
  const u64 ms = (rdtime() - t0) / 10000;
  /* Disarmed: no further timer interrupt arrives. */
  const u64 after = ticks;
  for (volatile int i = 0; i < 200000; ++i) {
  }
  csr_clear(sstatus, SSTATUS_SIE);
  print("TIMER ticks=%u extra=%u ms=%u\n", after, ticks - after, ms);
}
