/* An IPI storm on two harts (--vcpus 2): each hart sends supervisor software interrupts to
 * itself and to the other as fast as it can, through the IPI extension and the legacy call,
 * and takes them with SSIE on. Bad hart masks are refused. With -DFOREVER it never ends. */
#include "../rt.h"

#define N 400000ul

static volatile u64 received[2], sent[2];
static volatile int hart1_done;
static u8 stack1[16384] __attribute__((aligned(16)));

static u64 hartid(void) {
  u64 t;
  __asm__ volatile("mv %0, tp" : "=r"(t));
  return t;
}

static void on_irq(struct frame* f) {
  if ((f->scause & ~SCAUSE_IRQ) == 1) {
    csr_clear(sip, SIE_SSIE);
    ++received[hartid() & 1];
  }
}

static void storm(u64 me) {
  const u64 other = me ^ 1;
  static volatile u64 legacy_mask[2] = {1, 2};
  csr_set(sie, SIE_SSIE);
  csr_set(sstatus, SSTATUS_SIE);
  u64 rounds = 0;
  do {
    for (u64 i = 0; i < N; ++i) {
      switch (i & 3) {
        case 0: sbi_call(EID_IPI, 0, 1ul << me, 0, 0, 0, 0, 0); break;
        case 1: sbi_call(EID_IPI, 0, 1, other, 0, 0, 0, 0); break;
        case 2: sbi_call(EID_IPI, 0, 0, ~0ul, 0, 0, 0, 0); break;       /* base -1: all harts */
        case 3: sbi_legacy(4, (u64)&legacy_mask[other]); break;       /* legacy send_ipi */
      }
      ++sent[me];
    }
    ++rounds;
#ifdef FOREVER
    if (me == 0) print("ALIVE %u received=%u\n", rounds, received[0]);
  } while (1);
#else
  } while (0);
#endif
}

void guest_secondary(unsigned long id) {
  __asm__ volatile("mv tp, %0" ::"r"(id));
  storm(id);
  hart1_done = 1;
}

void guest_main(void) {
  __asm__ volatile("mv tp, zero");
  rt_irq_hook = on_irq;
  struct sbiret r = sbi_call(EID_HSM, 0, 1, (u64)rt_secondary, (u64)(stack1 + sizeof stack1), 0, 0, 0);
  print("HART1 start err=%d\n", r.error);
  storm(0);
  while (!hart1_done) {
  }
  csr_clear(sstatus, SSTATUS_SIE);
  print("IPI sent0=%u sent1=%u received0=%u received1=%u\n", sent[0], sent[1], received[0], received[1]);
  r = sbi_call(EID_IPI, 0, 1, 2, 0, 0, 0, 0);
  print("BADMASK base-past-harts err=%d\n", r.error);
  r = sbi_call(EID_IPI, 0, ~0ul, 0, 0, 0, 0, 0);
  print("BADMASK all-bits err=%d\n", r.error);
  r = sbi_call(EID_IPI, 0, 1ul << 63, 1ul << 40, 0, 0, 0, 0);
  print("BADMASK huge-base err=%d\n", r.error);
  print("LEGACY bad-pointer ret=%d\n", sbi_legacy(4, 0x10000000ul));
}
