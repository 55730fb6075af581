/* Work amplification through virtio-blk: every one of the 256 ring entries points at the
 * same indirect table of 254 x 256 KiB device-writable buffers (all the same guest RAM), so
 * one QueueNotify (a single guest store) asks the device for 256 reads of 63.5 MiB each:
 * 16 GiB of host reading and copying. The host must survive, and the store must return
 * quickly (the device serves a work budget per vCPU slice, the rest later): the run reports
 * how long the guest's one MMIO store took and how long all 256 took. Needs a disk of at least 64 MiB (sparse is fine).
 * With -DFOREVER, hart 0 asks for a new 16 GiB round each time the last one is done and
 * prints ALIVE; hart 1 (if there is one) writes QueueNotify without pause. */
#include "../blk.h"

#define SEGS 254
#define SEG_BYTES (256u << 10)

static struct virtq_desc table[SEGS + 2] __attribute__((aligned(16)));
static u8 bigring[3 * 4096] __attribute__((aligned(4096)));
static volatile u8 statuses[256];
static u8 stack1[16384] __attribute__((aligned(16)));
static volatile u64 notifies[2];

static void one_notify(struct vq* v) {
  for (u32 i = 0; i < 256; ++i) v->avail[2 + ((v->avail_idx + i) % 256)] = (u16)i;
  barrier();
  v->avail_idx = (u16)(v->avail_idx + 256);
  v->avail[1] = v->avail_idx;
  barrier();
  mmio_w32(v->base + 0x50, 0);
}

void guest_secondary(unsigned long id) {
  /* Notifies without new requests: each one makes the device look at the ring (under its
   * mutex) while hart 0's 16 GiB are still being served. */
  for (;;) {
    mmio_w32(q.base + 0x50, 0);
    ++notifies[id & 1];
  }
}

void guest_main(void) {
  vq_driver_features_lo = 1u << 28;  /* VIRTIO_RING_F_INDIRECT_DESC */
  print("SETUP status=%x\n", (u64)vq_setup(&q, VIRTIO_BASE, 256, bigring));
  hdr.type = BLK_T_IN;
  hdr.sector = 0;
  table[0] = (struct virtq_desc){(u64)&hdr, 16, VIRTQ_DESC_F_NEXT, 1};
  for (u32 i = 1; i <= SEGS; ++i) {
    table[i] = (struct virtq_desc){RAM_BASE + (32ul << 20), SEG_BYTES, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (u16)(i + 1)};
  }
  table[SEGS + 1] = (struct virtq_desc){(u64)&statuses[0], 1, VIRTQ_DESC_F_WRITE, 0};
  for (u32 i = 0; i < 256; ++i) q.desc[i] = (struct virtq_desc){(u64)table, sizeof table, VIRTQ_DESC_F_INDIRECT, 0};
#ifdef FOREVER
  sbi_call(EID_HSM, 0, 1, (u64)rt_secondary, (u64)(stack1 + sizeof stack1), 0, 0, 0);
  for (u64 n = 1;; ++n) {
    /* A new 16 GiB round once the device has finished the previous one (more would put the
     * avail index over a queue size ahead, which the device refuses as a broken driver). */
    const u16 start = vq_used_idx(&q);
    one_notify(&q);
    ++notifies[0];
    while ((u16)(vq_used_idx(&q) - start) < 256) barrier();
    print("ALIVE %u\n", n);
  }
#endif
  const u64 t0 = rdtime();
  const u16 before = vq_used_idx(&q);
  one_notify(&q);
  const u64 ms = (rdtime() - t0) / 10000;
  const u16 at_store = (u16)(vq_used_idx(&q) - before);
  /* The device serves a budget per vCPU slice and the rest without another notify: wait
   * (bounded, 120 s) for all 256 to come back. */
  while ((u16)(vq_used_idx(&q) - before) < 256 && rdtime() - t0 < 120ul * 10000000) barrier();
  const u64 all_ms = (rdtime() - t0) / 10000;
  print("AMPLIFY used=%u status=%u status_reg=%x one_store_ms=%u used_at_store=%u all_ms=%u bytes_per_store=%u\n",
        (u64)(u16)(vq_used_idx(&q) - before), (u64)statuses[0], (u64)virtio_status(VIRTIO_BASE), ms, (u64)at_store,
        all_ms, 256ul * SEGS * SEG_BYTES);
}
