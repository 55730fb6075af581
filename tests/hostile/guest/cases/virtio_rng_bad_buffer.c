/* virtio-rng requests whose buffers are not guest RAM (beyond RAM, on MMIO, straddling the
 * end of RAM, read-only for the device): the device must return them with 0 bytes written
 * and keep serving good ones. */
#include "../rt.h"

static u8 ring_mem[3 * 4096] __attribute__((aligned(4096)));
static u8 buf[64];

void guest_main(void) {
  struct vq q;
  const u64 ram_end = RAM_BASE + (64ul << 20);
  print("SETUP status=%x\n", (u64)vq_setup(&q, VIRTIO_BASE, 8, ring_mem));
  struct {
    const char* name;
    u64 addr;
    u32 len;
    u16 flags;
  } bad[] = {
      {"beyond-ram", 0x100000000ul, 64, VIRTQ_DESC_F_WRITE},
      {"uart", UART_BASE, 64, VIRTQ_DESC_F_WRITE},
      {"clint", CLINT_BASE, 64, VIRTQ_DESC_F_WRITE},
      {"straddle-end", ram_end - 32, 64, VIRTQ_DESC_F_WRITE},
      {"huge", (u64)buf, 0xffffffffu, VIRTQ_DESC_F_WRITE},
      {"not-writable", (u64)buf, 64, 0},
  };
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    q.desc[0] = (struct virtq_desc){bad[i].addr, bad[i].len, bad[i].flags, 0};
    const u16 before = vq_used_idx(&q);
    vq_kick(&q, 0);
    const u16 after = vq_used_idx(&q);
    print("BAD %s used=%u len=%u status_reg=%x\n", bad[i].name, (u64)(u16)(after - before),
          (u64)(after != before ? vq_used_len(&q, before) : 0xdead), (u64)virtio_status(VIRTIO_BASE));
    if (virtio_status(VIRTIO_BASE) & 0x40) vq_setup(&q, VIRTIO_BASE, 8, ring_mem);
  }
  memset(buf, 0, sizeof buf);
  q.desc[0] = (struct virtq_desc){(u64)buf, sizeof buf, VIRTQ_DESC_F_WRITE, 0};
  const u16 before = vq_used_idx(&q);
  vq_kick(&q, 0);
  unsigned nonzero = 0;
  for (unsigned i = 0; i < sizeof buf; ++i) nonzero += buf[i] != 0;
  print("GOOD used=%u len=%u nonzero=%u\n", (u64)(u16)(vq_used_idx(&q) - before), (u64)vq_used_len(&q, before),
        (u64)nonzero);
}
