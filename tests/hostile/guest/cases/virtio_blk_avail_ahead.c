/* A corrupt available ring: the avail index jumps far past the queue size, and a ring entry
 * names a descriptor beyond the table. The device must not chase either. */
#include "../blk.h"

void guest_main(void) {
  blk_setup(8);
  hdr.type = BLK_T_IN;
  q.desc[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  q.desc[1] = (struct virtq_desc){(u64)sector_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2};
  q.desc[2] = (struct virtq_desc){(u64)&status_byte, 1, VIRTQ_DESC_F_WRITE, 0};
  q.avail[1] = 40000;  /* idx: 40000 requests "available" in an 8-entry ring */
  barrier();
  mmio_w32(VIRTIO_BASE + 0x50, 0);
  print("AHEAD used=%u status_reg=%x\n", (u64)vq_used_idx(&q), (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("ahead");

  const u16 before = vq_used_idx(&q);
  vq_kick(&q, 300);  /* head index 300 in an 8-entry table */
  print("BADHEAD used=%u status_reg=%x\n", (u64)(u16)(vq_used_idx(&q) - before), (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("badhead");

  /* Notify a queue index that does not exist, and an absurd one. */
  mmio_w32(VIRTIO_BASE + 0x50, 1);
  mmio_w32(VIRTIO_BASE + 0x50, 0xffffffffu);
  print("BADQUEUE status_reg=%x\n", (u64)virtio_status(VIRTIO_BASE));
}
