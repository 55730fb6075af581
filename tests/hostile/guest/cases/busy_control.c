/* Not an attack: the control for the neighbour measurements. An ordinary busy guest on every
 * vCPU it has (integer work, a 1 kHz timer interrupt), printing ALIVE now and then. The
 * neighbour's speed beside it is what any CPU-bound domain of that size costs on this host. */
#include "../rt.h"

static u8 stacks[8][8192] __attribute__((aligned(16)));
static volatile u64 ticks;

static void on_irq(struct frame* f) {
  if ((f->scause & ~SCAUSE_IRQ) != 5) return;
  ++ticks;
  sbi_call(EID_TIME, 0, rdtime() + 10000, 0, 0, 0, 0, 0);
}

static void work(u64 me) {
  u64 x = me + 1, rounds = 0;
  csr_set(sie, SIE_STIE);
  csr_set(sstatus, SSTATUS_SIE);
  sbi_call(EID_TIME, 0, rdtime() + 10000, 0, 0, 0, 0, 0);
  for (;;) {
    for (u64 i = 0; i < 20000000; ++i) x = x * 6364136223846793005ul + 1442695040888963407ul;
    if (me == 0) print("ALIVE %u ticks=%u x=%x\n", ++rounds, ticks, x);
  }
}

void guest_secondary(unsigned long id) { work(id); }

void guest_main(void) {
  rt_irq_hook = on_irq;
  for (u64 h = 1; h < 8; ++h) {
    if (sbi_call(EID_HSM, 0, h, (u64)rt_secondary, (u64)(stacks[h] + sizeof stacks[h]), 0, 0, 0).error) break;
  }
  print("ALIVE 0\n");
  work(0);
}
