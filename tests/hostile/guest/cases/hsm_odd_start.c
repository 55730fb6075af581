/* HSM hart_start at an odd address: PC bit 0 does not exist on RISC-V, so the SBI must
 * refuse the address or drop the bit. The code is placed so that a hart executing from the
 * odd address walks its 16-bit parcels up to the last byte of guest RAM, where decoding
 * pc = end - 1 needs the byte at end, which is not guest memory. (--vcpus 2) */
#include "../rt.h"

void guest_main(void) {
  const u64 ram_end = RAM_BASE + (64ul << 20);
  /* c.nop (01 00) at end-5 and end-3, then a byte 01 at end-1. */
  volatile u8* p = (volatile u8*)(ram_end - 5);
  p[0] = 0x01;
  p[1] = 0x00;
  p[2] = 0x01;
  p[3] = 0x00;
  p[4] = 0x01;
  __asm__ volatile("fence.i" ::: "memory");
  struct sbiret r = sbi_call(EID_HSM, 0, 1, ram_end - 5, 0, 0, 0, 0);
  print("START odd err=%d\n", r.error);
  for (volatile u64 i = 0; i < 3000000; ++i) {
  }
  r = sbi_call(EID_HSM, 2, 1, 0, 0, 0, 0, 0);
  print("STATUS hart1 value=%d\n", r.value);
}
