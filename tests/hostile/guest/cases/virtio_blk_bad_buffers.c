/* virtio-blk requests whose data buffers are not guest RAM: beyond RAM, on MMIO (the UART),
 * straddling the end of RAM, at physical address 0. Each must fail with VIRTIO_BLK_S_IOERR
 * without the device touching anything but guest RAM, and the device must keep working. */
#include "../blk.h"

void guest_main(void) {
  const u64 ram_end = RAM_BASE + (64ul << 20);
  print("SETUP status=%x\n", (u64)blk_setup(8));
  struct {
    const char* name;
    u32 type;
    u64 addr;
  } bad[] = {
      {"in-beyond-ram", BLK_T_IN, 0x100000000ul},  {"in-uart", BLK_T_IN, UART_BASE},
      {"in-plic", BLK_T_IN, PLIC_BASE},            {"in-straddle-end", BLK_T_IN, ram_end - 256},
      {"in-zero", BLK_T_IN, 0},                    {"in-top", BLK_T_IN, 0xfffffffffffffe00ul},
      {"out-uart", BLK_T_OUT, UART_BASE},          {"out-beyond-ram", BLK_T_OUT, 0x100000000ul},
      {"out-straddle-end", BLK_T_OUT, ram_end - 256},
  };
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    const int s = blk_request(bad[i].type, 1, bad[i].addr, 512);
    print("BAD %s req=%d status_reg=%x\n", bad[i].name, (i64)s, (u64)virtio_status(VIRTIO_BASE));
  }
  /* The device still works without a reset. */
  const int s = blk_request(BLK_T_IN, 0, (u64)sector_buf, 512);
  print("GOOD req=%d data=%c%c%c%c\n", (i64)s, sector_buf[0], sector_buf[1], sector_buf[2], sector_buf[3]);
}
