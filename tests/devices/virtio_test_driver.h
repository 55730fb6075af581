// Test doubles shared by the virtio device tests: guest RAM behind a checked DmaMemory, an
// interrupt line that records its level, and a minimal virtio-mmio driver that does what
// Linux's virtio_mmio/virtio_ring do (status handshake, queue setup, descriptor chains,
// notifications) while also letting a test write whatever hostile ring contents it likes.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio_mmio.h"

namespace vigil::devices::virtio_test {

// 1 MiB of guest RAM at a fake base. Accesses outside it are refused and counted. One
// region can be "revoked" (refused although inside RAM) to model memory a device may not
// touch. Every access is locked so a test thread and a device thread may share it.
class FakeDma final : public DmaMemory {
 public:
  static constexpr uint64_t kBase = 0x8000'0000;
  static constexpr uint64_t kSize = 1 << 20;

  FakeDma() : m_ram(kSize) {}

  bool read(uint64_t gpa, void* dst, uint64_t len) override {
    std::lock_guard lock(m_mutex);
    if (!allowed(gpa, len)) return false;
    if (len) std::memcpy(dst, &m_ram[gpa - kBase], len);
    return true;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) override {
    std::lock_guard lock(m_mutex);
    if (!allowed(gpa, len)) return false;
    if (len) std::memcpy(&m_ram[gpa - kBase], src, len);
    return true;
  }

  // Host-side (driver) access: must be inside RAM, never refused.
  void poke(uint64_t gpa, const void* src, uint64_t len) {
    std::lock_guard lock(m_mutex);
    ASSERT_TRUE(inside(gpa, len));
    if (len) std::memcpy(&m_ram[gpa - kBase], src, len);
  }
  void peek(uint64_t gpa, void* dst, uint64_t len) {
    std::lock_guard lock(m_mutex);
    ASSERT_TRUE(inside(gpa, len));
    if (len) std::memcpy(dst, &m_ram[gpa - kBase], len);
  }
  template <typename T>
  void put(uint64_t gpa, T v) {  // little-endian host (x86-64, RISC-V): as the guest stores
    poke(gpa, &v, sizeof v);
  }
  template <typename T>
  T get(uint64_t gpa) {
    T v{};
    peek(gpa, &v, sizeof v);
    return v;
  }
  std::vector<uint8_t> bytes(uint64_t gpa, uint64_t len) {
    std::vector<uint8_t> out(len);
    peek(gpa, out.data(), len);
    return out;
  }
  void fill(uint64_t gpa, uint8_t byte, uint64_t len) {
    std::vector<uint8_t> v(len, byte);
    poke(gpa, v.data(), len);
  }

  void revoke(uint64_t gpa, uint64_t len) {
    std::lock_guard lock(m_mutex);
    m_revoked_lo = gpa;
    m_revoked_hi = gpa + len;
  }
  uint64_t refused() {
    std::lock_guard lock(m_mutex);
    return m_refused;
  }
  static bool inside(uint64_t gpa, uint64_t len) {
    return gpa >= kBase && len <= kSize && gpa - kBase <= kSize - len;
  }

 private:
  bool allowed(uint64_t gpa, uint64_t len) {
    const bool ok = inside(gpa, len) && (gpa + len <= m_revoked_lo || gpa >= m_revoked_hi);
    if (!ok) ++m_refused;
    return ok;
  }

  std::mutex m_mutex;
  std::vector<uint8_t> m_ram;
  uint64_t m_revoked_lo = 0, m_revoked_hi = 0;
  uint64_t m_refused = 0;
};

class FakeIrqLine final : public IrqLine {
 public:
  void set_level(bool high) override {
    std::lock_guard lock(m_mutex);
    if (high == m_level) ++m_redundant;  // devices should only report changes
    m_level = high;
    if (high) ++m_raised;
  }
  bool level() {
    std::lock_guard lock(m_mutex);
    return m_level;
  }
  int raised() {
    std::lock_guard lock(m_mutex);
    return m_raised;
  }
  int redundant() {
    std::lock_guard lock(m_mutex);
    return m_redundant;
  }

 private:
  std::mutex m_mutex;
  bool m_level = false;
  int m_raised = 0;
  int m_redundant = 0;
};

// Register offsets (VIRTIO 1.1, 4.2.2) as a driver uses them.
namespace reg {
constexpr uint64_t kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c;
constexpr uint64_t kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014;
constexpr uint64_t kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024;
constexpr uint64_t kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044;
constexpr uint64_t kQueueNotify = 0x050, kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070;
constexpr uint64_t kQueueDescLow = 0x080, kQueueDescHigh = 0x084;
constexpr uint64_t kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094;
constexpr uint64_t kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4;
constexpr uint64_t kShmSel = 0x0ac, kShmLenLow = 0x0b0, kShmLenHigh = 0x0b4;
constexpr uint64_t kConfigGeneration = 0x0fc, kConfig = 0x100;
}  // namespace reg

// Descriptor flags (2.7.5).
constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

// Where the driver puts each queue's rings: queue q at kBase + q * kQueueStride, so data
// buffers can start at kDataBase. Sizes up to 256 fit (16 * 256 bytes of descriptors).
constexpr uint64_t kQueueStride = 0x4000;
constexpr uint64_t kDataBase = FakeDma::kBase + 0x20000;

class TestDriver {
 public:
  TestDriver(VirtioMmio& dev, FakeDma& mem) : m_dev(dev), m_mem(mem) {}

  uint32_t rd(uint64_t offset) {
    uint64_t v = 0xdeadbeefdeadbeef;
    EXPECT_TRUE(m_dev.read(offset, 4, v)) << "read at " << offset;
    EXPECT_LE(v, 0xffffffffu);
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t offset, uint32_t v) { EXPECT_TRUE(m_dev.write(offset, 4, v)) << "write at " << offset; }

  uint64_t device_features() {
    wr(reg::kDeviceFeaturesSel, 0);
    uint64_t f = rd(reg::kDeviceFeatures);
    wr(reg::kDeviceFeaturesSel, 1);
    return f | (static_cast<uint64_t>(rd(reg::kDeviceFeatures)) << 32);
  }

  // 3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Accepts the
  // offered features within `mask` (or exactly `exact` if given). Returns whether
  // FEATURES_OK stuck.
  bool negotiate(uint64_t mask = ~0ull, std::optional<uint64_t> exact = std::nullopt) {
    wr(reg::kStatus, 0);
    wr(reg::kStatus, kVirtioStatusAcknowledge);
    wr(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver);
    const uint64_t accept = exact ? *exact : (device_features() & mask);
    wr(reg::kDriverFeaturesSel, 0);
    wr(reg::kDriverFeatures, static_cast<uint32_t>(accept));
    wr(reg::kDriverFeaturesSel, 1);
    wr(reg::kDriverFeatures, static_cast<uint32_t>(accept >> 32));
    wr(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
    return (rd(reg::kStatus) & kVirtioStatusFeaturesOk) != 0;
  }

  static Virtqueue::Layout standard_layout(unsigned q, uint32_t size) {
    const uint64_t base = FakeDma::kBase + q * kQueueStride;
    return {size, base, base + 0x1000, base + 0x2000};
  }

  // 4.2.3.2: program the queue and set QueueReady; returns QueueReady as read back.
  bool setup_queue(unsigned q, const Virtqueue::Layout& l) {
    // Fresh rings start zeroed, as Linux allocates them (2.7.6/2.7.8: idx starts at 0).
    if (FakeDma::inside(l.desc, 16ull * l.size)) m_mem.fill(l.desc, 0, 16ull * l.size);
    if (FakeDma::inside(l.avail, 6 + 2ull * l.size)) m_mem.fill(l.avail, 0, 6 + 2ull * l.size);
    if (FakeDma::inside(l.used, 6 + 8ull * l.size)) m_mem.fill(l.used, 0, 6 + 8ull * l.size);
    wr(reg::kQueueSel, q);
    wr(reg::kQueueNum, l.size);
    wr(reg::kQueueDescLow, static_cast<uint32_t>(l.desc));
    wr(reg::kQueueDescHigh, static_cast<uint32_t>(l.desc >> 32));
    wr(reg::kQueueDriverLow, static_cast<uint32_t>(l.avail));
    wr(reg::kQueueDriverHigh, static_cast<uint32_t>(l.avail >> 32));
    wr(reg::kQueueDeviceLow, static_cast<uint32_t>(l.used));
    wr(reg::kQueueDeviceHigh, static_cast<uint32_t>(l.used >> 32));
    wr(reg::kQueueReady, 1);
    const bool ready = rd(reg::kQueueReady) == 1;
    if (ready) {
      if (m_queues.size() <= q) m_queues.resize(q + 1);
      m_queues[q] = QueueState{l, 0, 0};
    }
    return ready;
  }
  bool setup_queue(unsigned q, uint32_t size) { return setup_queue(q, standard_layout(q, size)); }

  void driver_ok() { wr(reg::kStatus, rd(reg::kStatus) | kVirtioStatusDriverOk); }

  // The whole bring-up: negotiate everything offered, set up `queues` queues of `size`
  // (each checked), DRIVER_OK.
  void start(unsigned queues, uint32_t size, uint64_t feature_mask = ~0ull) {
    ASSERT_TRUE(negotiate(feature_mask));
    for (unsigned q = 0; q < queues; ++q) ASSERT_TRUE(setup_queue(q, size)) << "queue " << q;
    driver_ok();
    ASSERT_EQ(rd(reg::kStatus) & kVirtioStatusDriverOk, kVirtioStatusDriverOk);
  }

  // Writes descriptor `index` of queue q as is (no checks: tests use it to be hostile).
  void write_desc(unsigned q, uint32_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    write_desc_at(layout(q).desc + 16ull * index, addr, len, flags, next);
  }
  void write_desc_at(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    m_mem.put<uint64_t>(gpa, addr);
    m_mem.put<uint32_t>(gpa + 8, len);
    m_mem.put<uint16_t>(gpa + 12, flags);
    m_mem.put<uint16_t>(gpa + 14, next);
  }
  // Puts head in the next avail slot and publishes it (2.7.13), without notifying.
  void publish(unsigned q, uint16_t head) {
    QueueState& s = m_queues.at(q);
    m_mem.put<uint16_t>(s.layout.avail + 4 + 2ull * (s.avail_idx % s.layout.size), head);
    ++s.avail_idx;
    m_mem.put<uint16_t>(s.layout.avail + 2, s.avail_idx);
  }
  void set_avail_idx(unsigned q, uint16_t idx) {
    m_queues.at(q).avail_idx = idx;
    m_mem.put<uint16_t>(layout(q).avail + 2, idx);
  }
  void set_avail_flags(unsigned q, uint16_t flags) { m_mem.put<uint16_t>(layout(q).avail, flags); }
  void notify(unsigned q) { wr(reg::kQueueNotify, q); }

  // Builds a chain from bufs in fresh descriptor slots, publishes it and (by default)
  // notifies. Returns the head index.
  uint16_t submit(unsigned q, const std::vector<Buf>& bufs, bool do_notify = true) {
    QueueState& s = m_queues.at(q);
    const uint16_t head = static_cast<uint16_t>(s.next_desc % s.layout.size);
    for (size_t i = 0; i < bufs.size(); ++i) {
      const uint32_t index = (s.next_desc + i) % s.layout.size;
      const bool last = i + 1 == bufs.size();
      write_desc(q, index, bufs[i].addr, bufs[i].len, (bufs[i].writable ? kWrite : 0) | (last ? 0 : kNext),
                 static_cast<uint16_t>((index + 1) % s.layout.size));
    }
    s.next_desc = (s.next_desc + static_cast<uint32_t>(bufs.size())) % s.layout.size;
    publish(q, head);
    if (do_notify) notify(q);
    return head;
  }

  uint16_t used_idx(unsigned q) { return m_mem.get<uint16_t>(layout(q).used + 2); }
  UsedElem used(unsigned q, uint16_t i) {
    const uint64_t at = layout(q).used + 4 + 8ull * (i % layout(q).size);
    return {m_mem.get<uint32_t>(at), m_mem.get<uint32_t>(at + 4)};
  }
  // The used element for the most recent completion.
  UsedElem last_used(unsigned q) { return used(q, static_cast<uint16_t>(used_idx(q) - 1)); }

  uint32_t status() { return rd(reg::kStatus); }
  bool needs_reset() { return (status() & kVirtioStatusNeedsReset) != 0; }
  uint32_t interrupt_status() { return rd(reg::kInterruptStatus); }
  void ack(uint32_t bits) { wr(reg::kInterruptAck, bits); }

  // Bump allocator over the data area (never reused within a test).
  uint64_t alloc(uint64_t len, uint64_t align = 16) {
    m_next_data = (m_next_data + align - 1) / align * align;
    const uint64_t at = m_next_data;
    m_next_data += len;
    EXPECT_LE(m_next_data, FakeDma::kBase + FakeDma::kSize) << "test data area exhausted";
    return at;
  }

  const Virtqueue::Layout& layout(unsigned q) { return m_queues.at(q).layout; }
  FakeDma& mem() { return m_mem; }

 private:
  struct QueueState {
    Virtqueue::Layout layout;
    uint16_t avail_idx = 0;
    uint32_t next_desc = 0;
  };

  VirtioMmio& m_dev;
  FakeDma& m_mem;
  std::vector<QueueState> m_queues;
  uint64_t m_next_data = kDataBase;
};

}  // namespace vigil::devices::virtio_test
