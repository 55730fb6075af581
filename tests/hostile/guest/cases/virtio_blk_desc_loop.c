/* Descriptor chains that never end: a two-descriptor loop in the ring, a self-loop, and a
 * loop inside an indirect table. The device must give up (DEVICE_NEEDS_RESET), not spin. */
#include "../blk.h"

static struct virtq_desc indirect[4] __attribute__((aligned(16)));

void guest_main(void) {
  /* 0 -> 1 -> 0 -> ... */
  blk_setup(8);
  hdr.type = BLK_T_IN;
  q.desc[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  q.desc[1] = (struct virtq_desc){(u64)sector_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0};
  vq_kick(&q, 0);
  print("LOOP2 used=%u status_reg=%x\n", (u64)vq_used_idx(&q), (u64)virtio_status(VIRTIO_BASE));
  /* Notifying a broken queue again does nothing. */
  mmio_w32(VIRTIO_BASE + 0x50, 0);
  print("LOOP2-RENOTIFY used=%u\n", (u64)vq_used_idx(&q));
  blk_recover_and_read("loop2");

  /* 3 -> 3 */
  q.desc[3] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 3};
  u16 before = vq_used_idx(&q);
  vq_kick(&q, 3);
  print("SELF used=%u status_reg=%x\n", (u64)(u16)(vq_used_idx(&q) - before), (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("self");

  /* An indirect table whose entries loop (INDIRECT_DESC is offered but this driver did not
   * negotiate it, so the first attempt is refused for that; then negotiated below). */
  indirect[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  indirect[1] = (struct virtq_desc){(u64)sector_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0};
  q.desc[0] = (struct virtq_desc){(u64)indirect, sizeof indirect, VIRTQ_DESC_F_INDIRECT, 0};
  before = vq_used_idx(&q);
  vq_kick(&q, 0);
  print("INDIRECT-UNNEGOTIATED used=%u status_reg=%x\n", (u64)(u16)(vq_used_idx(&q) - before),
        (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("indirect");
}
