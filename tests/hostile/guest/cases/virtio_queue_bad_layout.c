/* Queue set-ups the device must refuse (QueueReady keeps reading 0): a size that is not a
 * power of two, 0, above QueueNumMax; rings on MMIO, beyond RAM, straddling the end of RAM,
 * misaligned; a queue index that does not exist. Then a valid set-up still works. */
#include "../blk.h"

static u32 try_layout(u32 sel, u32 num, u64 desc, u64 avail, u64 used) {
  const u64 b = VIRTIO_BASE;
  mmio_w32(b + 0x70, 0);
  mmio_w32(b + 0x70, 3);
  mmio_w32(b + 0x24, 1);
  mmio_w32(b + 0x20, 1);
  mmio_w32(b + 0x70, 11);
  mmio_w32(b + 0x30, sel);
  mmio_w32(b + 0x38, num);
  mmio_w32(b + 0x80, (u32)desc);
  mmio_w32(b + 0x84, (u32)(desc >> 32));
  mmio_w32(b + 0x90, (u32)avail);
  mmio_w32(b + 0x94, (u32)(avail >> 32));
  mmio_w32(b + 0xa0, (u32)used);
  mmio_w32(b + 0xa4, (u32)(used >> 32));
  mmio_w32(b + 0x44, 1);
  return mmio_r32(b + 0x44);
}

void guest_main(void) {
  const u64 d = (u64)ring_mem, a = d + 4096, u = d + 8192, ram_end = RAM_BASE + (64ul << 20);
  struct {
    const char* name;
    u32 sel, num;
    u64 desc, avail, used;
  } cases[] = {
      {"num7", 0, 7, d, a, u},
      {"num0", 0, 0, d, a, u},
      {"num512", 0, 512, d, a, u},
      {"num65536", 0, 65536, d, a, u},
      {"desc-uart", 0, 8, UART_BASE, a, u},
      {"used-plic", 0, 8, d, a, PLIC_BASE},
      {"desc-beyond-ram", 0, 8, 0x100000000ul, a, u},
      {"used-straddle-end", 0, 256, d, a, ram_end - 64},
      {"desc-misaligned", 0, 8, d + 8, a, u},
      {"used-wraps", 0, 8, d, a, 0xfffffffffffffff0ul},
      {"queue-sel-99", 99, 8, d, a, u},
  };
  print("QUEUE-NUM-MAX sel99=%u\n", (u64)(mmio_w32(VIRTIO_BASE + 0x30, 99), mmio_r32(VIRTIO_BASE + 0x34)));
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const u32 ready = try_layout(cases[i].sel, cases[i].num, cases[i].desc, cases[i].avail, cases[i].used);
    print("LAYOUT %s ready=%u\n", cases[i].name, (u64)ready);
  }
  /* Ready before FEATURES_OK is refused too. */
  mmio_w32(VIRTIO_BASE + 0x70, 0);
  mmio_w32(VIRTIO_BASE + 0x70, 3);
  mmio_w32(VIRTIO_BASE + 0x38, 8);
  mmio_w32(VIRTIO_BASE + 0x44, 1);
  print("LAYOUT no-features-ok ready=%u\n", (u64)mmio_r32(VIRTIO_BASE + 0x44));
  /* Features the device never offered: FEATURES_OK must not stick. */
  mmio_w32(VIRTIO_BASE + 0x70, 0);
  mmio_w32(VIRTIO_BASE + 0x70, 3);
  mmio_w32(VIRTIO_BASE + 0x24, 1);
  mmio_w32(VIRTIO_BASE + 0x20, 0xffffffffu);
  mmio_w32(VIRTIO_BASE + 0x24, 0);
  mmio_w32(VIRTIO_BASE + 0x20, 0xffffffffu);
  mmio_w32(VIRTIO_BASE + 0x70, 11);
  print("FEATURES all-ones status_reg=%x\n", (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("layout");
}
