#include "devices/virtqueue.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

namespace vigil::devices {

namespace {

// Virtqueue fields are little-endian (2.4 with VIRTIO_F_VERSION_1); decode byte by byte so
// the host's byte order does not matter.
uint16_t load_le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t load_le32(const uint8_t* p) {
  return load_le16(p) | (static_cast<uint32_t>(load_le16(p + 2)) << 16);
}
uint64_t load_le64(const uint8_t* p) {
  return load_le32(p) | (static_cast<uint64_t>(load_le32(p + 4)) << 32);
}
void store_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store_le32(uint8_t* p, uint32_t v) {
  store_le16(p, static_cast<uint16_t>(v));
  store_le16(p + 2, static_cast<uint16_t>(v >> 16));
}

bool is_power_of_2(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// True if [addr, addr + len) does not wrap around the 64-bit address space.
bool range_fits(uint64_t addr, uint64_t len) {
  return len == 0 || addr <= UINT64_MAX - (len - 1);
}

// Ring sizes in bytes (2.7 "Split Virtqueues" table; both include the event-index field
// that follows the ring, which every driver allocates whether or not it uses it).
uint64_t desc_table_bytes(uint32_t size) {
  return 16ull * size;
}
uint64_t avail_ring_bytes(uint32_t size) {
  return 6 + 2ull * size;
}
uint64_t used_ring_bytes(uint32_t size) {
  return 6 + 8ull * size;
}

// Scatter/gather copy between a flat host buffer and a list of guest buffers, starting
// `offset` bytes into the list. Write selects the direction (host -> guest).
template <bool Write, typename Ptr>
bool copy_buffers(DmaMemory& memory, const std::vector<VirtqBuffer>& buffers, uint64_t total, uint64_t offset,
                  Ptr data, uint64_t len) {
  if (offset > total || len > total - offset) return false;
  uint64_t skip = offset;
  for (const VirtqBuffer& buf : buffers) {
    if (len == 0) break;
    if (skip >= buf.len) {
      skip -= buf.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(buf.len - skip, len);
    const uint64_t gpa = buf.addr + skip;
    bool ok;
    if constexpr (Write) {
      ok = memory.write(gpa, data, n);
    } else {
      ok = memory.read(gpa, data, n);
    }
    if (!ok) return false;
    data += n;
    len -= n;
    skip = 0;
  }
  return len == 0;
}

}  // namespace

bool DescriptorChain::read(uint64_t offset, void* dst, uint64_t len) const {
  return copy_buffers<false>(*m_memory, m_readable, m_readable_len, offset, static_cast<uint8_t*>(dst), len);
}

bool DescriptorChain::write(uint64_t offset, const void* src, uint64_t len) const {
  return copy_buffers<true>(*m_memory, m_writable, m_writable_len, offset, static_cast<const uint8_t*>(src),
                            len);
}

bool Virtqueue::enable(const Layout& layout, uint32_t max_size, bool indirect_allowed) {
  disable();
  const uint32_t size = layout.size;
  // 2.7: split-ring Queue Size is a power of 2; 4.2.2: QueueNum must not exceed QueueNumMax.
  if (!is_power_of_2(size) || size > std::min(max_size, kMaxSize)) return false;
  if (layout.desc % 16 != 0 || layout.avail % 2 != 0 || layout.used % 4 != 0) return false;
  if (!range_fits(layout.desc, desc_table_bytes(size)) || !range_fits(layout.avail, avail_ring_bytes(size)) ||
      !range_fits(layout.used, used_ring_bytes(size))) {
    return false;
  }
  // DmaMemory has no "probe" call, so touch each ring once. Reading is harmless; the used
  // ring is written back with the bytes just read, which proves it writable without
  // changing what the driver sees (it does not write the used ring, 2.7.8).
  std::vector<uint8_t> scratch(desc_table_bytes(size));
  if (!m_memory->read(layout.desc, scratch.data(), desc_table_bytes(size))) return false;
  if (!m_memory->read(layout.avail, scratch.data(), avail_ring_bytes(size))) return false;
  if (!m_memory->read(layout.used, scratch.data(), used_ring_bytes(size)) ||
      !m_memory->write(layout.used, scratch.data(), used_ring_bytes(size))) {
    return false;
  }
  m_layout = layout;
  m_indirect_allowed = indirect_allowed;
  m_enabled = true;
  return true;
}

Virtqueue::State Virtqueue::save_state() const {
  return State{m_enabled, m_broken, m_indirect_allowed, m_layout, m_last_avail, m_avail_shadow, m_used_idx,
               m_used_pending};
}

bool Virtqueue::restore_state(const State& s, uint32_t max_size, std::string& why) {
  disable();
  if (!s.enabled) {
    if (s.broken || s.last_avail != 0 || s.avail_shadow != 0 || s.used_idx != 0) {
      why = "a disabled queue carries ring state";
      return false;
    }
    return true;
  }
  if (!enable(s.layout, max_size, s.indirect_allowed)) {
    why = fmt::format("ring layout (size {}, desc {:#x}, avail {:#x}, used {:#x}) is not valid in this guest's RAM",
                      s.layout.size, s.layout.desc, s.layout.avail, s.layout.used);
    return false;
  }
  const uint16_t ahead = static_cast<uint16_t>(s.avail_shadow - s.last_avail);
  if (ahead > s.layout.size) {
    why = fmt::format("avail index {} is {} ahead of the device's {}, more than the queue size {}", s.avail_shadow,
                      ahead, s.last_avail, s.layout.size);
    disable();
    return false;
  }
  if (s.used_idx != s.last_avail) {
    why = fmt::format("used index {} differs from the consumed avail index {} (chains in flight)", s.used_idx,
                      s.last_avail);
    disable();
    return false;
  }
  m_broken = s.broken;
  m_last_avail = s.last_avail;
  m_avail_shadow = s.avail_shadow;
  m_used_idx = s.used_idx;
  m_used_pending = s.used_pending;
  return true;
}

void Virtqueue::disable() {
  m_layout = Layout{};
  m_enabled = false;
  m_broken = false;
  m_indirect_allowed = false;
  m_last_avail = 0;
  m_avail_shadow = 0;
  m_used_idx = 0;
  m_used_pending = false;
}

std::optional<DescriptorChain> Virtqueue::fail() {
  m_broken = true;
  return std::nullopt;
}

bool Virtqueue::read_desc(uint64_t table, uint32_t index, Desc& desc) {
  std::array<uint8_t, kDescSize> raw;
  if (!m_memory->read(table + kDescSize * index, raw.data(), raw.size())) return false;
  desc = Desc{load_le64(&raw[0]), load_le32(&raw[8]), load_le16(&raw[12]), load_le16(&raw[14])};
  return true;
}

bool Virtqueue::add_buffer(DescriptorChain& chain, const Desc& desc) {
  if (!range_fits(desc.addr, desc.len)) return false;
  if (chain.m_readable_len + chain.m_writable_len + desc.len > kMaxChainBytes) return false;
  if (desc.len == 0) return true;  // describes nothing; legal, and nothing to keep
  if (desc.flags & kDescFWrite) {
    chain.m_writable.push_back({desc.addr, desc.len});
    chain.m_writable_len += desc.len;
  } else {
    // 2.7.4.2: device-writable buffers come after all device-readable ones.
    if (!chain.m_writable.empty()) return false;
    chain.m_readable.push_back({desc.addr, desc.len});
    chain.m_readable_len += desc.len;
  }
  return true;
}

bool Virtqueue::walk_indirect(DescriptorChain& chain, const Desc& desc) {
  // 2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, never combined with NEXT, a whole number
  // of descriptors, and (as for any chain) no longer than the Queue Size.
  if (!m_indirect_allowed || (desc.flags & kDescFNext)) return false;
  if (desc.len == 0 || desc.len % kDescSize != 0 || desc.len / kDescSize > m_layout.size) return false;
  if (!range_fits(desc.addr, desc.len)) return false;
  const uint32_t count = desc.len / static_cast<uint32_t>(kDescSize);
  // Copy the table once: the guest may rewrite it while it is being walked.
  std::vector<uint8_t> table(desc.len);
  if (!m_memory->read(desc.addr, table.data(), table.size())) return false;
  uint32_t index = 0;
  for (uint32_t visited = 0;; ++visited) {
    // A chain longer than the table revisits an entry: that is a loop.
    if (index >= count || visited >= count) return false;
    const uint8_t* raw = &table[kDescSize * index];
    const Desc d{load_le64(raw), load_le32(raw + 8), load_le16(raw + 12), load_le16(raw + 14)};
    // 2.7.5.3.1: an indirect table may not itself point at a table.
    if (d.flags & kDescFIndirect) return false;
    if (!add_buffer(chain, d)) return false;
    if (!(d.flags & kDescFNext)) return true;
    index = d.next;
  }
}

std::optional<DescriptorChain> Virtqueue::pop() {
  if (!m_enabled || m_broken) return std::nullopt;
  const uint32_t size = m_layout.size;
  if (m_last_avail == m_avail_shadow) {
    std::array<uint8_t, 2> idx;
    if (!m_memory->read(m_layout.avail + 2, idx.data(), idx.size())) return fail();
    const uint16_t avail_idx = load_le16(idx.data());
    // 2.7.6: the driver only ever adds up to Queue Size buffers ahead of the device; a
    // bigger jump is a corrupt or hostile index, so refuse rather than consume garbage.
    if (static_cast<uint16_t>(avail_idx - m_last_avail) > size) return fail();
    m_avail_shadow = avail_idx;
    if (m_last_avail == m_avail_shadow) return std::nullopt;
    // Read ring entries and descriptors only after seeing the index that publishes them
    // (2.7.13.3: the driver's write barrier before updating idx pairs with this).
    std::atomic_thread_fence(std::memory_order_acquire);
  }

  std::array<uint8_t, 2> entry;
  if (!m_memory->read(m_layout.avail + 4 + 2ull * (m_last_avail % size), entry.data(), entry.size())) {
    return fail();
  }
  const uint16_t head = load_le16(entry.data());
  ++m_last_avail;
  if (head >= size) return fail();

  DescriptorChain chain(*m_memory, head);
  uint32_t index = head;
  for (uint32_t visited = 0;; ++visited) {
    // 2.7.5.3.1 / 2.7.5.2: a chain is never longer than Queue Size, so the walk visits at
    // most `size` descriptors; anything longer must be a loop.
    if (index >= size || visited >= size) return fail();
    Desc desc;
    if (!read_desc(m_layout.desc, index, desc)) return fail();
    if (desc.flags & kDescFIndirect) {
      if (!walk_indirect(chain, desc)) return fail();
      break;
    }
    if (!add_buffer(chain, desc)) return fail();
    if (!(desc.flags & kDescFNext)) break;
    index = desc.next;
  }
  return chain;
}

void Virtqueue::push_used(const DescriptorChain& chain, uint32_t written) {
  if (!m_enabled || m_broken) return;
  const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(written, chain.writable_len()));
  std::array<uint8_t, kUsedElemSize> elem;
  store_le32(&elem[0], chain.head());
  store_le32(&elem[4], len);
  const uint64_t slot = m_layout.used + 4 + kUsedElemSize * (m_used_idx % m_layout.size);
  if (!m_memory->write(slot, elem.data(), elem.size())) {
    m_broken = true;
    return;
  }
  // 2.7.8.2: the element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++m_used_idx;
  std::array<uint8_t, 2> idx;
  store_le16(idx.data(), m_used_idx);
  if (!m_memory->write(m_layout.used + 2, idx.data(), idx.size())) {
    m_broken = true;
    return;
  }
  m_used_pending = true;
}

bool Virtqueue::take_notification() {
  if (!m_used_pending) return false;
  m_used_pending = false;
  if (!m_enabled) return false;
  // 2.7.7.2: read the driver's flags only after the used index update is visible, or a
  // driver re-enabling interrupts in between would miss this batch (store->load order
  // needs a full fence even on x86).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::array<uint8_t, 2> flags;
  // If the flags cannot be read, notify: a spurious interrupt is harmless, a lost one hangs.
  if (!m_memory->read(m_layout.avail, flags.data(), flags.size())) return true;
  return (load_le16(flags.data()) & kAvailFNoInterrupt) == 0;
}

}  // namespace vigil::devices
