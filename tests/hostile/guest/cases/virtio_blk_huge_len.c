/* Descriptor lengths and addresses chosen to overflow: len 0xffffffff, a buffer that wraps
 * around the 64-bit address space, and a chain of many 32 MiB buffers (over the per-chain
 * byte limit). Each must break the queue (DEVICE_NEEDS_RESET) or fail the request, never
 * make the host copy gigabytes or wrap a pointer. */
#include "../blk.h"

void guest_main(void) {
  blk_setup(8);
  int s = blk_request(BLK_T_IN, 0, (u64)sector_buf, 0xffffffffu);
  print("HUGE req=%d status_reg=%x\n", (i64)s, (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("huge");

  s = blk_request(BLK_T_IN, 0, 0xfffffffffffff000ul, 0x2000);
  print("WRAP req=%d status_reg=%x\n", (i64)s, (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("wrap");

  /* header + 3 x 32 MiB writable buffers (all the same RAM) + status: 96 MiB > 64 MiB */
  hdr.type = BLK_T_IN;
  hdr.sector = 0;
  q.desc[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  for (int i = 1; i <= 3; ++i) {
    q.desc[i] = (struct virtq_desc){RAM_BASE + (16ul << 20), 32u << 20, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (u16)(i + 1)};
  }
  q.desc[4] = (struct virtq_desc){(u64)&status_byte, 1, VIRTQ_DESC_F_WRITE, 0};
  const u16 before = vq_used_idx(&q);
  vq_kick(&q, 0);
  print("CHAIN96M used=%u status_reg=%x\n", (u64)(u16)(vq_used_idx(&q) - before), (u64)virtio_status(VIRTIO_BASE));
  blk_recover_and_read("chain96m");

  /* A request for more sectors than the disk has: a clean IOERR, the queue stays usable. */
  s = blk_request(BLK_T_IN, 0xfffffffffffffff0ul, (u64)sector_buf, 512);
  print("SECTOR-RANGE req=%d status_reg=%x\n", (i64)s, (u64)virtio_status(VIRTIO_BASE));
}
