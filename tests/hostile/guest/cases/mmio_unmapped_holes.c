/* Loads, stores and instruction fetches at physical addresses where nothing is mapped:
 * below the first device, between devices, past a device's decoded registers, past the last
 * virtio slot, just below RAM, at the end of RAM, and beyond the 56-bit physical address
 * space. Each must be an access fault (5, 7, 1) delivered to S-mode. */
#include "../rt.h"

void guest_main(void) {
  rt_quiet = 1;
  const u64 ram_end = RAM_BASE + (64ul << 20);
  const struct {
    const char* name;
    u64 addr;
  } holes[] = {
      {"zero", 0},
      {"low", 0x1000},
      {"after-finisher", TEST_BASE + 0x1000},
      {"after-clint", CLINT_BASE + 0x10000},
      {"before-plic", 0x0bfff000},
      {"uart-undecoded", UART_BASE + 0x10},
      {"empty-virtio-slot", VIRTIO_BASE + 0x3000},
      {"after-virtio", VIRTIO_BASE + 0x8000},
      {"below-ram", RAM_BASE - 8},
      {"ram-end", ram_end},
      {"4g", 0x100000000ul},
      {"pa-top-56", (1ul << 56) - 8},
      {"beyond-pa", 1ul << 56},
      {"all-ones", 0xfffffffffffffff8ul},
  };
  for (unsigned i = 0; i < sizeof holes / sizeof holes[0]; ++i) {
    const u64 l = expect_trap_load64(holes[i].addr);
    const u64 s = expect_trap_store64(holes[i].addr, 0x5a5a5a5a5a5a5a5aul);
    const u64 f = expect_trap_call(holes[i].addr);
    print("HOLE %s load=%d store=%d fetch=%d\n", holes[i].name, (i64)l, (i64)s, (i64)f);
  }
  print("TOTAL traps=%u\n", rt_traps);
}
