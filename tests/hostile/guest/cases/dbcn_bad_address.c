/* SBI debug console (DBCN) transfers naming memory that is not guest RAM: MMIO, beyond RAM,
 * straddling the end of RAM, a high word that pushes a RAM address out, and a huge length.
 * Each must fail with -3 (invalid parameter) without the host touching that memory; a huge
 * length on good memory is clamped. */
#include "../rt.h"

static char msg[8192];

static void w(const char* name, u64 len, u64 lo, u64 hi) {
  struct sbiret r = sbi_call(EID_DBCN, 0, len, lo, hi, 0, 0, 0);
  print("\nDBCN write-%s err=%d value=%d\n", name, r.error, r.value);
}
static void rd(const char* name, u64 len, u64 lo, u64 hi) {
  struct sbiret r = sbi_call(EID_DBCN, 1, len, lo, hi, 0, 0, 0);
  print("DBCN read-%s err=%d value=%d\n", name, r.error, r.value);
}

void guest_main(void) {
  const u64 ram_end = RAM_BASE + (64ul << 20);
  for (unsigned i = 0; i < sizeof msg; ++i) msg[i] = 'z';
  w("uart", 16, UART_BASE, 0);
  w("plic", 16, PLIC_BASE, 0);
  w("beyond-ram", 16, 0x100000000ul, 0);
  w("straddle-end", 16, ram_end - 8, 0);
  w("high-word", 16, (u64)msg, 1);
  w("hi-bit-32", 16, (u64)msg, 1ul << 32);  /* names an address above 2^64 */
  w("zero", 16, 0, 0);
  w("all-ones", 16, ~0ul, ~0ul);
  w("huge-len", 1ul << 40, (u64)msg, 0);
  rd("uart", 16, UART_BASE, 0);
  rd("beyond-ram", 16, 0x100000000ul, 0);
  rd("straddle-end", 16, ram_end - 8, 0);
  rd("good-no-input", 16, (u64)msg, 0);
  struct sbiret r = sbi_call(EID_DBCN, 2, '!', 0, 0, 0, 0, 0);
  print("\nDBCN write-byte err=%d\n", r.error);
}
