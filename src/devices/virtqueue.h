// The device side of a split virtqueue (VIRTIO 1.1/1.2, 2.6 "Virtqueues" and 2.7 "Split
// Virtqueues"), reached only through DmaMemory. Transport-independent: VirtioMmio owns one
// Virtqueue per queue and hands it to the backend, which pops descriptor chains, serves
// them and returns them on the used ring.
//
// The guest is untrusted and may rewrite its rings at any moment, so:
//  * every ring field and descriptor is copied out of guest memory exactly once and only
//    the copy is used (no double fetch);
//  * a chain is fully walked and checked before a backend sees it: descriptor indices
//    within the table, at most one pass over the table (so loops end), readable buffers
//    before writable ones (2.7.4.2), no address wrap-around, at most kMaxChainBytes in
//    total, indirect tables (2.7.5.3) only when negotiated, well formed and not nested;
//  * an avail index more than the queue size ahead of the device (2.7.6 makes that
//    impossible for a correct driver) is not chased.
// Any such violation, or guest memory refusing a ring access, marks the queue broken: it
// stops serving requests until the driver disables or resets it, and the transport reports
// DEVICE_NEEDS_RESET (2.1.2). Buffer contents that DmaMemory refuses are the backend's
// business (a failed request, not a broken queue).
//
// Not thread-safe: the owning device's lock guards a Virtqueue and its DescriptorChains.
// Notification suppression honours VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7);
// VIRTIO_F_EVENT_IDX is not offered, so used_event/avail_event are never used.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/device.h"

namespace vigil::devices {

// One guest buffer of a chain, copied out of its descriptor.
struct VirtqBuffer {
  uint64_t addr;
  uint32_t len;
};

// A validated descriptor chain. Its device-readable buffers and its device-writable
// buffers are each seen as one contiguous byte stream (VIRTIO_F_VERSION_1 implies
// VIRTIO_F_ANY_LAYOUT, 2.6.4: the driver may split messages across buffers anywhere).
class DescriptorChain {
 public:
  uint16_t head() const { return m_head; }
  uint64_t readable_len() const { return m_readable_len; }
  uint64_t writable_len() const { return m_writable_len; }
  const std::vector<VirtqBuffer>& readable() const { return m_readable; }
  const std::vector<VirtqBuffer>& writable() const { return m_writable; }

  // Copies readable bytes [offset, offset + len) to dst. False if the range is not within
  // readable_len() or guest memory refuses a buffer (dst may then be partly filled).
  bool read(uint64_t offset, void* dst, uint64_t len) const;
  // Copies src to writable bytes [offset, offset + len); false as for read(), and the
  // guest may then see part of the data.
  bool write(uint64_t offset, const void* src, uint64_t len) const;

 private:
  friend class Virtqueue;
  DescriptorChain(DmaMemory& memory, uint16_t head) : m_memory(&memory), m_head(head) {}

  DmaMemory* m_memory;
  uint16_t m_head;
  uint64_t m_readable_len = 0;
  uint64_t m_writable_len = 0;
  std::vector<VirtqBuffer> m_readable;
  std::vector<VirtqBuffer> m_writable;
};

class Virtqueue {
 public:
  // 2.6: "Queue Size ... the maximum Queue Size value is 32768".
  static constexpr uint32_t kMaxSize = 32768;
  // Upper bound on the bytes one chain may describe (readable plus writable). Far above
  // what Linux sends (virtio-blk advertises seg_max * size_max below it); a larger chain
  // is treated as hostile rather than served.
  static constexpr uint64_t kMaxChainBytes = 64ull << 20;

  // Guest-physical ring addresses as the driver programs them (4.2.2: QueueDesc,
  // QueueDriver = available ring, QueueDevice = used ring).
  struct Layout {
    uint32_t size = 0;
    uint64_t desc = 0;
    uint64_t avail = 0;
    uint64_t used = 0;
  };

  explicit Virtqueue(DmaMemory& memory) : m_memory(&memory) {}

  // Checks layout (2.7 "Split Virtqueues" table: size a power of 2 up to max_size,
  // descriptor table 16-byte aligned, available ring 2-byte, used ring 4-byte aligned,
  // each ring entirely in guest RAM, the used ring writable) and on success starts the
  // queue with both indices at 0. On failure the queue stays disabled.
  bool enable(const Layout& layout, uint32_t max_size, bool indirect_allowed);
  // Stops using the rings (the driver may free them, e.g. after QueueReady = 0).
  void disable();
  bool enabled() const { return m_enabled; }
  bool broken() const { return m_broken; }
  const Layout& layout() const { return m_layout; }

  // The next available chain, or nothing if the ring is empty, the queue is disabled or
  // broken, or the chain is invalid (the queue is then broken).
  std::optional<DescriptorChain> pop();
  // Returns a popped chain to the driver, telling it `written` bytes were written to its
  // writable buffers (clamped to writable_len(): a device never claims more, 2.7.8.1).
  void push_used(const DescriptorChain& chain, uint32_t written);
  // True if buffers were used since the last call and the driver has not suppressed
  // used-buffer notifications (2.7.7). Clears the pending state.
  bool take_notification();

  // Snapshot support (issue 11). The ring indices are free-running 16-bit counters (2.7.6,
  // 2.7.8), so they are checked against each other, not against the queue size.
  struct State {
    bool enabled = false;
    bool broken = false;
    bool indirect_allowed = false;
    Layout layout;
    uint16_t last_avail = 0, avail_shadow = 0, used_idx = 0;
    bool used_pending = false;
  };
  State save_state() const;
  // Re-enables through enable() (so the rings must lie in guest RAM, aligned and writable)
  // and refuses indices no device could have reached: more than a queue's worth available
  // ahead of the device, or chains popped and not returned (devices return every chain
  // before they give up the lock). On failure the queue is disabled.
  bool restore_state(const State& s, uint32_t max_size, std::string& why);

 private:
  // Split-ring constants (2.7.5 "The Virtqueue Descriptor Table", 2.7.6, 2.7.8).
  static constexpr uint16_t kDescFNext = 1;
  static constexpr uint16_t kDescFWrite = 2;
  static constexpr uint16_t kDescFIndirect = 4;
  static constexpr uint16_t kAvailFNoInterrupt = 1;
  static constexpr uint64_t kDescSize = 16;
  static constexpr uint64_t kUsedElemSize = 8;

  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };

  bool read_desc(uint64_t table, uint32_t index, Desc& desc);
  // Appends the buffer desc describes to chain; false if that breaks a chain rule.
  bool add_buffer(DescriptorChain& chain, const Desc& desc);
  bool walk_indirect(DescriptorChain& chain, const Desc& desc);
  std::optional<DescriptorChain> fail();

  DmaMemory* m_memory;
  Layout m_layout;
  bool m_enabled = false;
  bool m_broken = false;
  bool m_indirect_allowed = false;
  uint16_t m_last_avail = 0;    // next avail ring slot the device will consume
  uint16_t m_avail_shadow = 0;  // last avail->idx read from the guest
  uint16_t m_used_idx = 0;      // the device's used->idx; the guest's copy is never read back
  bool m_used_pending = false;  // used entries added since the last take_notification()
};

}  // namespace vigil::devices
