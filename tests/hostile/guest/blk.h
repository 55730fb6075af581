/* virtio-blk request helpers shared by the virtio_blk_* cases (device in slot 0). */
#pragma once
#include "rt.h"

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define STATUS_NEEDS_RESET 0x40

static u8 ring_mem[3 * 4096] __attribute__((aligned(4096)));
static struct vq q;
static struct {
  u32 type, reserved;
  u64 sector;
} hdr __attribute__((aligned(16)));
static volatile u8 status_byte;
static u8 sector_buf[512] __attribute__((aligned(512)));

static u32 blk_setup(u32 size) { return vq_setup(&q, VIRTIO_BASE, size, ring_mem); }

/* Fills descriptors 0..2 with header, data and status and publishes head 0. Returns the
 * status byte the device wrote, or -1 if no used entry appeared (queue broken). */
static int blk_request(u32 type, u64 sector, u64 data, u32 len) {
  hdr.type = type;
  hdr.reserved = 0;
  hdr.sector = sector;
  status_byte = 0xee;
  q.desc[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  q.desc[1] = (struct virtq_desc){data, len, (u16)(VIRTQ_DESC_F_NEXT | (type == BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0)), 2};
  q.desc[2] = (struct virtq_desc){(u64)&status_byte, 1, VIRTQ_DESC_F_WRITE, 0};
  const u16 before = vq_used_idx(&q);
  vq_kick(&q, 0);
  if (vq_used_idx(&q) == before) return -1;
  return status_byte;
}

/* Resets and re-initialises the device, then proves it still serves a good read. */
static void blk_recover_and_read(const char* tag) {
  const u32 st = blk_setup(8);
  const int s = blk_request(BLK_T_IN, 0, (u64)sector_buf, 512);
  print("RECOVER %s status_reg=%x req=%d data=%c%c%c%c\n", tag, (u64)st, (i64)s, sector_buf[0], sector_buf[1],
        sector_buf[2], sector_buf[3]);
}
