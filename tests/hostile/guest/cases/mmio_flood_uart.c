/* Millions of UART register accesses: scratch, IER (toggling the THRE interrupt line, with
 * the PLIC routing it to this hart's S context, so every toggle flips SEIP and kicks the
 * hart), LSR and IIR reads. The host must survive and the UART must still hold the last
 * value written. With -DFOREVER the flood never ends (for the neighbour test). */
#include "../rt.h"

#define N 2500000ul

void guest_main(void) {
  mmio_w32(PLIC_BASE + 4 * 10, 1);                    /* UART source priority 1 */
  mmio_w32(PLIC_BASE + 0x2000 + 0x80 * 1, 1u << 10);  /* enable for hart 0, S context */
  mmio_w32(PLIC_BASE + 0x200000 + 0x1000 * 1, 0);     /* threshold 0 */
  csr_write(sie, 0);                                  /* nothing is taken; only mip flips */
  const u64 t0 = rdtime();
  u64 rounds = 0;
  do {
    for (u64 i = 0; i < N; ++i) {
      mmio_w8(UART_BASE + 7, (u8)i);
      mmio_w8(UART_BASE + 1, (u8)(i & 2));  /* ETBEI on/off: the IRQ line toggles */
      (void)mmio_r8(UART_BASE + 5);
      (void)mmio_r8(UART_BASE + 2);
    }
    ++rounds;
#ifdef FOREVER
    print("ALIVE %u\n", rounds);
  } while (1);
#else
  } while (0);
#endif
  mmio_w8(UART_BASE + 1, 0);
  const u64 ms = (rdtime() - t0) / 10000;
  print("UART-FLOOD accesses=%u scr=%x ms=%u\n", rounds * N * 4, (u64)mmio_r8(UART_BASE + 7), ms);
}
