// Randomized abuse of each virtio device through its MMIO window and its rings: random
// register accesses of every size and alignment, random bring-ups, random ring bytes and
// descriptor chains that are mostly plausible and sometimes hostile. Nothing may crash,
// hang or touch memory outside the fake guest RAM (build with -fsanitize=address,undefined
// to check the last part), the interrupt line must always match InterruptStatus, and the
// identity registers must never change. The seed is fixed so failures reproduce; set
// VIGIL_FUZZ_SEED to explore others.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_mmio.h"
#include "devices/virtio_rng.h"
#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;

constexpr int kIterations = 50'000;

uint64_t fuzz_seed() {
  const char* s = std::getenv("VIGIL_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 0) : 0x5eed'1234'abcdull;
}

class Fuzzer {
 public:
  Fuzzer(VirtioDevice& device, std::function<void(std::mt19937_64&)> host_poke)
      : m_mmio(device, m_mem, &m_irq), m_host_poke(std::move(host_poke)), m_rng(fuzz_seed()) {
    m_device_id = read32(reg::kDeviceId);
  }

  void run() {
    for (int i = 0; i < kIterations; ++i) {
      step();
      uint64_t isr = 0;
      ASSERT_TRUE(m_mmio.read(reg::kInterruptStatus, 4, isr));
      ASSERT_EQ(m_irq.level(), isr != 0) << "iteration " << i;
      ASSERT_EQ(read32(reg::kMagic), 0x74726976u) << "iteration " << i;
      ASSERT_EQ(read32(reg::kDeviceId), m_device_id);
      ASSERT_EQ(read32(reg::kVersion), 2u);
    }
    EXPECT_EQ(m_irq.redundant(), 0);
    // The random chains must have reached the device's request handling, not just the
    // ring checks, or the fuzzing proves little.
    EXPECT_GT(m_completed, 1000u) << "too few requests completed";
    EXPECT_GT(m_broken_seen, 10u) << "too few hostile rings detected";
  }

 private:
  static constexpr std::array<uint64_t, 24> kRegs = {reg::kMagic,
                                                     reg::kVersion,
                                                     reg::kDeviceId,
                                                     reg::kDeviceFeatures,
                                                     reg::kDeviceFeaturesSel,
                                                     reg::kDriverFeatures,
                                                     reg::kDriverFeaturesSel,
                                                     reg::kQueueSel,
                                                     reg::kQueueNumMax,
                                                     reg::kQueueNum,
                                                     reg::kQueueReady,
                                                     reg::kQueueNotify,
                                                     reg::kInterruptStatus,
                                                     reg::kInterruptAck,
                                                     reg::kStatus,
                                                     reg::kQueueDescLow,
                                                     reg::kQueueDescHigh,
                                                     reg::kQueueDriverLow,
                                                     reg::kQueueDriverHigh,
                                                     reg::kQueueDeviceLow,
                                                     reg::kQueueDeviceHigh,
                                                     reg::kShmSel,
                                                     reg::kConfigGeneration,
                                                     reg::kConfig};

  uint64_t pick(uint64_t n) { return n == 0 ? 0 : m_rng() % n; }
  bool chance(int percent) { return pick(100) < static_cast<uint64_t>(percent); }

  uint32_t read32(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(m_mmio.read(off, 4, v));
    return static_cast<uint32_t>(v);
  }
  void write32(uint64_t off, uint32_t v) { m_mmio.write(off, 4, v); }

  uint64_t random_offset() {
    if (chance(80)) return kRegs[pick(kRegs.size())] + (chance(5) ? pick(4) : 0);
    return pick(0x1100);
  }
  unsigned random_size() {
    static constexpr std::array<unsigned, 8> kSizes = {0, 1, 2, 3, 4, 8, 16, 4};
    return chance(85) ? 4 : kSizes[pick(kSizes.size())];
  }
  uint64_t random_value() {
    switch (pick(6)) {
      case 0:
        return pick(17);
      case 1:
        return 1ull << pick(64);
      case 2:
        return FakeDma::kBase + pick(FakeDma::kSize);
      case 3:
        return static_cast<uint32_t>(FakeDma::kBase + pick(4) * kQueueStride + pick(3) * 0x1000);
      case 4:
        return pick(0x100);  // status-like
      default:
        return m_rng();
    }
  }
  uint32_t random_queue_size() {
    if (chance(80)) return 1u << pick(9);  // 1..256
    return static_cast<uint32_t>(pick(70000));
  }

  // A plausible bring-up of the whole device, occasionally with a bad queue size.
  void bring_up() {
    write32(reg::kStatus, 0);
    write32(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver);
    write32(reg::kDeviceFeaturesSel, 1);
    const uint64_t hi = read32(reg::kDeviceFeatures);
    write32(reg::kDeviceFeaturesSel, 0);
    const uint64_t lo = read32(reg::kDeviceFeatures);
    uint64_t accept = (hi << 32) | lo;
    if (chance(20)) accept &= m_rng();
    write32(reg::kDriverFeaturesSel, 0);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(accept));
    write32(reg::kDriverFeaturesSel, 1);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(accept >> 32));
    write32(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
    m_sizes.fill(0);
    for (unsigned q = 0; q < 4; ++q) {
      write32(reg::kQueueSel, q);
      const uint32_t max = read32(reg::kQueueNumMax);
      if (max == 0) break;
      const uint32_t size = chance(90) ? std::min(max, 1u << pick(9)) : random_queue_size();
      const auto l = TestDriver::standard_layout(q, 256);
      if (chance(50)) m_mem.fill(l.desc, 0, kQueueStride);
      write32(reg::kQueueNum, size);
      write32(reg::kQueueDescLow, static_cast<uint32_t>(l.desc));
      write32(reg::kQueueDescHigh, 0);
      write32(reg::kQueueDriverLow, static_cast<uint32_t>(l.avail));
      write32(reg::kQueueDriverHigh, 0);
      write32(reg::kQueueDeviceLow, static_cast<uint32_t>(l.used));
      write32(reg::kQueueDeviceHigh, 0);
      write32(reg::kQueueReady, 1);
      if (read32(reg::kQueueReady) == 1) m_sizes[q] = size;
    }
    write32(reg::kStatus, read32(reg::kStatus) | kVirtioStatusDriverOk);
  }

  // Writes a chain of 1-4 descriptors with contents a device might act on, publishes it
  // and notifies; sometimes corrupts one field first.
  void submit_chain() {
    const unsigned q = static_cast<unsigned>(pick(4));
    const uint32_t size = m_sizes[q];
    if (size == 0) return;
    const auto l = TestDriver::standard_layout(q, 256);
    const unsigned n = 1 + static_cast<unsigned>(pick(4));
    uint32_t index = static_cast<uint32_t>(pick(size));
    const uint16_t head = static_cast<uint16_t>(index);
    bool writable = false;
    for (unsigned i = 0; i < n; ++i) {
      const uint32_t next = (index + 1) % size;
      const uint64_t addr = kDataBase + pick(0x8000);
      uint32_t len = static_cast<uint32_t>(i == 0 ? 16 : 1 + pick(1100));
      if (i > 0 && chance(40)) writable = true;
      if (i == 0) {
        // A block request header; other devices just see bytes.
        static constexpr std::array<uint32_t, 7> kTypes = {0, 1, 4, 8, 11, 13, 0xdead};
        m_mem.put<uint32_t>(addr, kTypes[pick(kTypes.size())]);
        m_mem.put<uint64_t>(addr + 8, chance(90) ? pick(200) : m_rng());
      }
      uint16_t flags = static_cast<uint16_t>((writable ? kWrite : 0) | (i + 1 < n ? kNext : 0));
      uint64_t a = addr;
      uint16_t nx = static_cast<uint16_t>(next);
      if (chance(3)) {
        switch (pick(6)) {
          case 0:
            nx = static_cast<uint16_t>(m_rng());
            break;
          case 1:
            len = static_cast<uint32_t>(m_rng());
            break;
          case 2:
            a = m_rng();
            break;
          case 3:
            flags = static_cast<uint16_t>(m_rng());
            break;
          case 4:
            nx = head;
            flags |= kNext;
            break;
          case 5:
            flags |= kIndirect;
            len = 16 * (1 + pick(4));
            break;
        }
      }
      const uint64_t d = l.desc + 16ull * index;
      m_mem.put<uint64_t>(d, a);
      m_mem.put<uint32_t>(d + 8, len);
      m_mem.put<uint16_t>(d + 12, flags);
      m_mem.put<uint16_t>(d + 14, nx);
      index = next;
    }
    const uint16_t avail = m_mem.get<uint16_t>(l.avail + 2);
    m_mem.put<uint16_t>(l.avail + 4 + 2ull * (avail % size),
                        chance(98) ? head : static_cast<uint16_t>(m_rng()));
    m_mem.put<uint16_t>(l.avail + 2, static_cast<uint16_t>(avail + (chance(99) ? 1 : m_rng())));
    const uint16_t used_before = m_mem.get<uint16_t>(l.used + 2);
    const bool was_broken = read32(reg::kStatus) & kVirtioStatusNeedsReset;
    write32(reg::kQueueNotify, q);
    m_completed += static_cast<uint16_t>(m_mem.get<uint16_t>(l.used + 2) - used_before);
    if (!was_broken && (read32(reg::kStatus) & kVirtioStatusNeedsReset)) ++m_broken_seen;
  }

  void scribble() {
    const uint64_t at = FakeDma::kBase + pick(4 * kQueueStride);
    const uint64_t len = std::min<uint64_t>(1 + pick(64), FakeDma::kBase + FakeDma::kSize - at);
    std::vector<uint8_t> junk(len);
    for (auto& b : junk) b = static_cast<uint8_t>(m_rng());
    m_mem.poke(at, junk.data(), junk.size());
  }

  void step() {
    const uint64_t op = pick(100);
    if (op < 25) {
      m_mmio.write(random_offset(), random_size(), random_value());
    } else if (op < 40) {
      uint64_t v;
      m_mmio.read(random_offset(), random_size(), v);
    } else if (op < 48) {
      scribble();
    } else if (op < 80) {
      submit_chain();
    } else if (op < 84) {
      bring_up();
    } else if (op < 86) {
      write32(reg::kStatus, 0);
      m_sizes.fill(0);
    } else if (op < 90) {
      if (m_host_poke) m_host_poke(m_rng);
    } else if (op < 95) {
      write32(reg::kInterruptAck, static_cast<uint32_t>(random_value()));
    } else {
      write32(reg::kQueueNotify, static_cast<uint32_t>(pick(5)));
    }
  }

  FakeDma m_mem;
  FakeIrqLine m_irq;
  VirtioMmio m_mmio;
  std::function<void(std::mt19937_64&)> m_host_poke;
  std::mt19937_64 m_rng;
  uint32_t m_device_id = 0;
  std::array<uint32_t, 4> m_sizes{};
  uint64_t m_completed = 0;
  uint64_t m_broken_seen = 0;
};

TEST(VirtioFuzz, Blk) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/vigil-fuzz-XXXXXX";
  const int fd = ::mkstemp(path.data());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 128 * 512), 0);
  ::close(fd);
  {
    auto blk = VirtioBlk::open(path, false);
    ASSERT_TRUE(blk.has_value()) << blk.error().message;
    Fuzzer(**blk, nullptr).run();
  }
  ::unlink(path.c_str());
}

TEST(VirtioFuzz, Rng) {
  VirtioRng rng;
  Fuzzer(rng, nullptr).run();
}

TEST(VirtioFuzz, Console) {
  uint64_t out = 0;
  VirtioConsole console([&](const uint8_t*, size_t n) { out += n; });
  Fuzzer(console, [&](std::mt19937_64& rng) {
    std::vector<uint8_t> in(rng() % 300, 'k');
    console.push_input(in.data(), in.size());
    if (rng() % 4 == 0) console.set_size(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()));
  }).run();
  EXPECT_GT(out, 0u);
}

}  // namespace
}  // namespace vigil::devices
