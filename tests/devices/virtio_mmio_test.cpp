// The virtio-mmio transport and split virtqueue against a test backend that echoes each
// chain's readable bytes into its writable bytes, so every ring rule can be checked
// without a real device type in the way.
#include "devices/virtio_mmio.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;

constexpr uint64_t kEchoFeatureA = 1ull << 0;
constexpr uint64_t kEchoFeatureB = 1ull << 5;

class EchoDevice final : public VirtioDevice {
 public:
  struct Seen {
    uint16_t head;
    uint64_t readable, writable;
    size_t readable_bufs, writable_bufs;
  };

  std::string_view name() const override { return "echo"; }
  uint32_t device_id() const override { return 42; }
  // Bits 29 (EVENT_IDX) and 40 are not device-type bits: the transport must not offer them.
  uint64_t device_features() const override {
    return kEchoFeatureA | kEchoFeatureB | (1ull << 29) | (1ull << 40);
  }
  bool accept_features(uint64_t f) override {
    accepted = f;
    ++accept_calls;
    return accept_result;
  }
  uint32_t config_size() const override { return 16; }
  void read_config(uint32_t offset, std::span<uint8_t> dst) const override {
    for (size_t i = 0; i < dst.size(); ++i) dst[i] = static_cast<uint8_t>(0x10 + offset + i);
  }
  void write_config(uint32_t offset, std::span<const uint8_t> src) override {
    config_writes.push_back({offset, static_cast<uint32_t>(src.size())});
  }
  unsigned queue_count() const override { return 2; }
  uint32_t queue_max_size(unsigned q) const override { return q == 0 ? 256 : 16; }
  void process_queue(unsigned q, Virtqueue& vq) override {
    ++process_calls;
    last_queue = q;
    while (auto chain = vq.pop()) {
      seen.push_back({chain->head(), chain->readable_len(), chain->writable_len(), chain->readable().size(),
                      chain->writable().size()});
      const uint64_t n = std::min(chain->readable_len(), chain->writable_len());
      std::vector<uint8_t> data(n);
      uint32_t written = 0;
      if (chain->read(0, data.data(), n) && chain->write(0, data.data(), n))
        written = static_cast<uint32_t>(n);
      vq.push_used(*chain, written);
    }
  }
  void reset() override {
    ++resets;
    accepted = 0;
  }
  void change_config() {
    std::lock_guard lock(mutex());
    transport()->config_changed_locked();
  }

  uint64_t accepted = 0;
  int accept_calls = 0;
  bool accept_result = true;
  int process_calls = 0;
  unsigned last_queue = ~0u;
  int resets = 0;
  std::vector<Seen> seen;
  std::vector<std::pair<uint32_t, uint32_t>> config_writes;
};

class VirtioMmioTest : public ::testing::Test {
 protected:
  VirtioMmioTest() : mmio(echo, mem, &irq), drv(mmio, mem) {}
  void TearDown() override { EXPECT_EQ(irq.redundant(), 0); }

  // Submits one readable + one writable buffer with `text`, returns the writable address.
  uint64_t echo_request(const std::string& text) {
    const uint64_t in = drv.alloc(text.size()), out = drv.alloc(text.size());
    mem.poke(in, text.data(), text.size());
    drv.submit(0, {{in, static_cast<uint32_t>(text.size()), false},
                   {out, static_cast<uint32_t>(text.size()), true}});
    return out;
  }
  std::string read_str(uint64_t gpa, size_t n) {
    const auto b = mem.bytes(gpa, n);
    return std::string(b.begin(), b.end());
  }
  // The device must have stopped: NEEDS_RESET set, config interrupt raised, nothing more
  // served after a fresh valid request.
  void expect_broken() {
    EXPECT_TRUE(drv.needs_reset());
    EXPECT_TRUE(drv.interrupt_status() & 2) << "config change notification for NEEDS_RESET";
    EXPECT_TRUE(irq.level());
    const uint16_t used = drv.used_idx(0);
    const int calls = echo.process_calls;
    echo_request("after");
    EXPECT_EQ(drv.used_idx(0), used);
    EXPECT_EQ(echo.process_calls, calls);
  }

  FakeDma mem;
  FakeIrqLine irq;
  EchoDevice echo;
  VirtioMmio mmio;
  TestDriver drv;
};

TEST_F(VirtioMmioTest, IdentityRegisters) {
  EXPECT_EQ(drv.rd(reg::kMagic), 0x74726976u);
  EXPECT_EQ(drv.rd(reg::kVersion), 2u);
  EXPECT_EQ(drv.rd(reg::kDeviceId), 42u);
  EXPECT_EQ(drv.rd(reg::kVendorId), VirtioMmio::kVendorId);
  EXPECT_EQ(drv.rd(reg::kStatus), 0u);
  EXPECT_EQ(mmio.name(), "echo");
  // No shared memory regions: length reads as -1 (4.2.2).
  drv.wr(reg::kShmSel, 0);
  EXPECT_EQ(drv.rd(reg::kShmLenLow), 0xffffffffu);
  EXPECT_EQ(drv.rd(reg::kShmLenHigh), 0xffffffffu);
}

TEST_F(VirtioMmioTest, FeatureWordsOfferVersion1AndIndirectButNotForeignBits) {
  drv.wr(reg::kDeviceFeaturesSel, 0);
  EXPECT_EQ(drv.rd(reg::kDeviceFeatures), kEchoFeatureA | kEchoFeatureB | kVirtioFIndirectDesc);
  drv.wr(reg::kDeviceFeaturesSel, 1);
  EXPECT_EQ(drv.rd(reg::kDeviceFeatures), 1u);  // bit 32, VIRTIO_F_VERSION_1
  drv.wr(reg::kDeviceFeaturesSel, 2);
  EXPECT_EQ(drv.rd(reg::kDeviceFeatures), 0u);
  drv.wr(reg::kDeviceFeaturesSel, 0xffffffff);
  EXPECT_EQ(drv.rd(reg::kDeviceFeatures), 0u);
}

TEST_F(VirtioMmioTest, NegotiationPassesAcceptedFeaturesToBackend) {
  ASSERT_TRUE(drv.negotiate(~kEchoFeatureB));
  EXPECT_EQ(echo.accepted, kEchoFeatureA | kVirtioFIndirectDesc | kVirtioFVersion1);
  EXPECT_EQ(drv.status(), kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
}

TEST_F(VirtioMmioTest, FeaturesOkRefusedWithoutVersion1) {
  EXPECT_FALSE(drv.negotiate(~kVirtioFVersion1));
  EXPECT_EQ(echo.accept_calls, 0);
  // DRIVER_OK cannot follow a refused FEATURES_OK.
  drv.wr(reg::kStatus, drv.status() | kVirtioStatusFeaturesOk | kVirtioStatusDriverOk);
  EXPECT_EQ(drv.status() & (kVirtioStatusFeaturesOk | kVirtioStatusDriverOk), 0u);
}

TEST_F(VirtioMmioTest, FeaturesOkRefusedForUnofferedBits) {
  EXPECT_FALSE(drv.negotiate(0, kVirtioFVersion1 | (1ull << 29)));  // EVENT_IDX, never offered
  EXPECT_FALSE(drv.negotiate(0, kVirtioFVersion1 | (1ull << 40)));
  EXPECT_TRUE(drv.negotiate(0, kVirtioFVersion1));
}

TEST_F(VirtioMmioTest, FeaturesOkRefusedWhenBackendDeclines) {
  echo.accept_result = false;
  EXPECT_FALSE(drv.negotiate());
  EXPECT_EQ(echo.accept_calls, 1);
}

TEST_F(VirtioMmioTest, DriverFeaturesFrozenAfterFeaturesOk) {
  ASSERT_TRUE(drv.negotiate(~kEchoFeatureB));
  drv.wr(reg::kDriverFeaturesSel, 0);
  drv.wr(reg::kDriverFeatures, 0xffffffff);
  // Re-setting FEATURES_OK does not renegotiate either.
  drv.wr(reg::kStatus, drv.status() | kVirtioStatusFeaturesOk);
  EXPECT_EQ(echo.accept_calls, 1);
  EXPECT_EQ(echo.accepted & kEchoFeatureB, 0u);
}

TEST_F(VirtioMmioTest, StatusBitsAreStickyAndNeedsResetIsDeviceOwned) {
  drv.wr(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusNeedsReset);
  EXPECT_EQ(drv.status(), kVirtioStatusAcknowledge);
  drv.wr(reg::kStatus, kVirtioStatusDriver);
  EXPECT_EQ(drv.status(), kVirtioStatusAcknowledge | kVirtioStatusDriver);
  drv.wr(reg::kStatus, 0x100 | kVirtioStatusFailed);  // bits above the 8-bit field are dropped
  EXPECT_EQ(drv.status(), kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFailed);
}

TEST_F(VirtioMmioTest, EchoRoundTripRaisesAndAcksInterrupt) {
  drv.start(2, 8);
  const uint64_t out = echo_request("hello");
  EXPECT_EQ(read_str(out, 5), "hello");
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_EQ(drv.last_used(0).id, 0u);
  EXPECT_EQ(drv.last_used(0).len, 5u);
  EXPECT_EQ(drv.interrupt_status(), 1u);
  EXPECT_TRUE(irq.level());
  drv.ack(1);
  EXPECT_EQ(drv.interrupt_status(), 0u);
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(echo.last_queue, 0u);
}

TEST_F(VirtioMmioTest, ByteStreamsSpanDescriptors) {
  drv.start(1, 8);
  // "abcdef" spread over three readable buffers, echoed into two writable ones.
  const uint64_t r1 = drv.alloc(2), r2 = drv.alloc(1), r3 = drv.alloc(3), w1 = drv.alloc(4),
                 w2 = drv.alloc(4);
  mem.poke(r1, "ab", 2);
  mem.poke(r2, "c", 1);
  mem.poke(r3, "def", 3);
  drv.submit(0, {{r1, 2, false}, {r2, 1, false}, {r3, 3, false}, {w1, 4, true}, {w2, 4, true}});
  ASSERT_EQ(echo.seen.size(), 1u);
  EXPECT_EQ(echo.seen[0].readable, 6u);
  EXPECT_EQ(echo.seen[0].writable, 8u);
  EXPECT_EQ(read_str(w1, 4), "abcd");
  EXPECT_EQ(read_str(w2, 2), "ef");
  EXPECT_EQ(drv.last_used(0).len, 6u);
}

TEST_F(VirtioMmioTest, NoInterruptFlagSuppressesNotification) {
  drv.start(1, 8);
  drv.set_avail_flags(0, 1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
  echo_request("x");
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_EQ(drv.interrupt_status(), 0u);
  EXPECT_FALSE(irq.level());
  drv.set_avail_flags(0, 0);
  echo_request("y");
  EXPECT_EQ(drv.interrupt_status(), 1u);
}

TEST_F(VirtioMmioTest, NothingServedBeforeDriverOkThenPickedUp) {
  ASSERT_TRUE(drv.negotiate());
  ASSERT_TRUE(drv.setup_queue(0, 8));
  echo_request("early");
  EXPECT_EQ(drv.used_idx(0), 0);
  EXPECT_EQ(echo.process_calls, 0);
  drv.driver_ok();
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_TRUE(irq.level());
}

TEST_F(VirtioMmioTest, NotifyForUnknownOrUnreadyQueueIsIgnored) {
  drv.start(1, 8);  // queue 1 exists but is not set up
  const int calls = echo.process_calls;
  drv.notify(1);
  drv.notify(2);
  drv.notify(0xffffffff);
  EXPECT_EQ(echo.process_calls, calls);
  drv.notify(0);
  EXPECT_EQ(echo.process_calls, calls + 1);
}

TEST_F(VirtioMmioTest, QueueRegistersForNonexistentQueue) {
  drv.wr(reg::kQueueSel, 0);
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), 256u);
  drv.wr(reg::kQueueSel, 1);
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), 16u);
  drv.wr(reg::kQueueSel, 2);
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), 0u);
  ASSERT_TRUE(drv.negotiate());
  EXPECT_FALSE(drv.setup_queue(2, 8));
  EXPECT_FALSE(drv.setup_queue(7, 8));
}

TEST_F(VirtioMmioTest, QueueReadyValidatesLayout) {
  ASSERT_TRUE(drv.negotiate());
  const auto good = TestDriver::standard_layout(0, 8);
  auto bad = good;
  bad.size = 6;  // not a power of 2
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad.size = 0;
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad.size = 512;  // above QueueNumMax (256)
  EXPECT_FALSE(drv.setup_queue(0, bad));
  EXPECT_FALSE(drv.setup_queue(1, 32));  // queue 1's max is 16
  bad = good;
  bad.desc += 8;  // descriptor table must be 16-byte aligned
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad = good;
  bad.avail += 1;
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad = good;
  bad.used += 2;
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad = good;
  bad.used = 0x1000;  // not guest RAM
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad = good;
  bad.desc = FakeDma::kBase + FakeDma::kSize - 64;  // table runs off the end of RAM
  EXPECT_FALSE(drv.setup_queue(0, bad));
  bad = good;
  bad.avail = ~0ull - 3;  // wraps around the address space
  EXPECT_FALSE(drv.setup_queue(0, bad));
  mem.revoke(good.used, 8);  // readable is not enough for the used ring
  EXPECT_FALSE(drv.setup_queue(0, good));
  mem.revoke(0, 0);
  EXPECT_TRUE(drv.setup_queue(0, good));
}

TEST_F(VirtioMmioTest, QueueReadyNeedsFeaturesOk) {
  drv.wr(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver);
  EXPECT_FALSE(drv.setup_queue(0, 8));
}

TEST_F(VirtioMmioTest, QueueLayoutFrozenWhileReadyAndReleasedOnReadyZero) {
  drv.start(1, 8);
  drv.wr(reg::kQueueSel, 0);
  drv.wr(reg::kQueueNum, 3);
  drv.wr(reg::kQueueDescLow, 0x1234);  // ignored: the queue is running
  const uint64_t out = echo_request("ok");
  EXPECT_EQ(read_str(out, 2), "ok");
  drv.wr(reg::kQueueSel, 0);
  drv.wr(reg::kQueueReady, 0);
  EXPECT_EQ(drv.rd(reg::kQueueReady), 0u);
  const int calls = echo.process_calls;
  drv.notify(0);
  EXPECT_EQ(echo.process_calls, calls);
}

TEST_F(VirtioMmioTest, ResetClearsEverything) {
  drv.start(2, 8);
  echo_request("x");
  ASSERT_TRUE(irq.level());
  const int resets = echo.resets;
  drv.wr(reg::kStatus, 0);
  EXPECT_EQ(drv.status(), 0u);
  EXPECT_EQ(drv.interrupt_status(), 0u);
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(echo.resets, resets + 1);
  for (unsigned q = 0; q < 2; ++q) {
    drv.wr(reg::kQueueSel, q);
    EXPECT_EQ(drv.rd(reg::kQueueReady), 0u);
  }
  // The board reset path behaves the same, and the device comes back up cleanly.
  drv.start(1, 8);
  mmio.reset();
  EXPECT_EQ(drv.status(), 0u);
  drv.start(1, 8);
  const uint64_t out = echo_request("again");
  EXPECT_EQ(read_str(out, 5), "again");
  EXPECT_EQ(drv.used_idx(0), 1);  // indices restarted at 0
}

TEST_F(VirtioMmioTest, ConfigChangeBumpsGenerationAndInterrupts) {
  const uint32_t gen = drv.rd(reg::kConfigGeneration);
  echo.change_config();  // before DRIVER_OK: no notification
  EXPECT_EQ(drv.rd(reg::kConfigGeneration), gen + 1);
  EXPECT_EQ(drv.interrupt_status(), 0u);
  drv.start(1, 8);
  echo.change_config();
  EXPECT_EQ(drv.rd(reg::kConfigGeneration), gen + 2);
  EXPECT_EQ(drv.interrupt_status(), 2u);
  EXPECT_TRUE(irq.level());
  drv.ack(2);
  EXPECT_FALSE(irq.level());
}

TEST_F(VirtioMmioTest, ConfigSpaceAccessesOfEverySize) {
  uint64_t v = 0;
  ASSERT_TRUE(mmio.read(reg::kConfig, 1, v));
  EXPECT_EQ(v, 0x10u);
  ASSERT_TRUE(mmio.read(reg::kConfig + 2, 2, v));
  EXPECT_EQ(v, 0x1312u);
  ASSERT_TRUE(mmio.read(reg::kConfig + 4, 4, v));
  EXPECT_EQ(v, 0x17161514u);
  ASSERT_TRUE(mmio.read(reg::kConfig + 8, 8, v));
  EXPECT_EQ(v, 0x1f1e1d1c1b1a1918u);
  ASSERT_TRUE(mmio.read(reg::kConfig + 15, 1, v));
  EXPECT_EQ(v, 0x1fu);
  ASSERT_TRUE(mmio.read(reg::kConfig + 3, 4, v));  // unaligned but inside: served
  EXPECT_EQ(v, 0x16151413u);
  // Past the 16 bytes of config space: fault.
  EXPECT_FALSE(mmio.read(reg::kConfig + 15, 2, v));
  EXPECT_FALSE(mmio.read(reg::kConfig + 16, 1, v));
  EXPECT_FALSE(mmio.read(reg::kConfig + 12, 8, v));
  EXPECT_FALSE(mmio.read(0xffc, 4, v));
  EXPECT_TRUE(mmio.write(reg::kConfig + 4, 2, 0xabcd));
  ASSERT_EQ(echo.config_writes.size(), 1u);
  EXPECT_EQ(echo.config_writes[0], std::make_pair(4u, 2u));
  EXPECT_FALSE(mmio.write(reg::kConfig + 16, 4, 0));
}

TEST_F(VirtioMmioTest, OddControlRegisterAccessesFault) {
  uint64_t v = 0;
  EXPECT_FALSE(mmio.read(reg::kMagic, 1, v));
  EXPECT_FALSE(mmio.read(reg::kMagic, 2, v));
  EXPECT_FALSE(mmio.read(reg::kMagic, 8, v));
  EXPECT_FALSE(mmio.read(reg::kMagic + 1, 4, v));
  EXPECT_FALSE(mmio.read(reg::kMagic, 3, v));
  EXPECT_FALSE(mmio.read(reg::kMagic, 0, v));
  EXPECT_FALSE(mmio.read(0x1000, 4, v));
  EXPECT_FALSE(mmio.read(~0ull - 1, 4, v));
  EXPECT_FALSE(mmio.write(reg::kStatus, 1, 1));
  EXPECT_FALSE(mmio.write(reg::kStatus + 2, 4, 1));
  EXPECT_FALSE(mmio.write(reg::kStatus, 8, 1));
  EXPECT_FALSE(mmio.write(0x1000, 4, 1));
  EXPECT_EQ(drv.status(), 0u);  // none of the refused writes landed
  // Reserved and write-only registers read 0; writes to read-only ones are ignored.
  EXPECT_EQ(drv.rd(0x018), 0u);
  EXPECT_EQ(drv.rd(reg::kQueueNotify), 0u);
  drv.wr(reg::kMagic, 0);
  drv.wr(reg::kInterruptStatus, 3);
  EXPECT_EQ(drv.rd(reg::kMagic), 0x74726976u);
  EXPECT_EQ(drv.interrupt_status(), 0u);
}

// ---- Hostile rings: each must stop the device (NEEDS_RESET), never hang or crash. ----

TEST_F(VirtioMmioTest, HeadIndexOutOfRangeBreaksDevice) {
  drv.start(1, 8);
  drv.publish(0, 8);
  drv.notify(0);
  expect_broken();
  EXPECT_TRUE(echo.seen.empty());
}

TEST_F(VirtioMmioTest, NextIndexOutOfRangeBreaksDevice) {
  drv.start(1, 8);
  const uint64_t buf = drv.alloc(16);
  drv.write_desc(0, 0, buf, 16, kNext, 200);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, DescriptorLoopIsRefused) {
  drv.start(1, 8);
  const uint64_t buf = drv.alloc(16);
  drv.write_desc(0, 0, buf, 16, kNext, 1);
  drv.write_desc(0, 1, buf, 16, kNext, 0);  // back to the head
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
  EXPECT_TRUE(echo.seen.empty());
}

TEST_F(VirtioMmioTest, SelfLoopIsRefused) {
  drv.start(1, 256);
  drv.write_desc(0, 5, drv.alloc(1), 1, kNext | kWrite, 5);
  drv.publish(0, 5);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, AbsurdLengthIsRefused) {
  drv.start(1, 8);
  drv.write_desc(0, 0, drv.alloc(16), 0xffffffff, kWrite, 0);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, TotalChainLengthIsCapped) {
  drv.start(1, 256);
  // 40 descriptors of 2 MiB each: every one "fits" but the chain totals 80 MiB.
  const uint64_t buf = drv.alloc(16);
  for (uint32_t i = 0; i < 40; ++i) drv.write_desc(0, i, buf, 2u << 20, i + 1 < 40 ? kNext : 0, i + 1);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, AddressWrapIsRefused) {
  drv.start(1, 8);
  drv.write_desc(0, 0, ~0ull - 15, 32, kWrite, 0);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, ReadableAfterWritableIsRefused) {
  drv.start(1, 8);
  drv.write_desc(0, 0, drv.alloc(4), 4, kWrite | kNext, 1);
  drv.write_desc(0, 1, drv.alloc(4), 4, 0, 0);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, AvailIndexFarAheadNeedsReset) {
  drv.start(1, 8);
  drv.set_avail_idx(0, 9);  // 9 > queue size 8
  drv.notify(0);
  expect_broken();
  EXPECT_TRUE(echo.seen.empty());
}

TEST_F(VirtioMmioTest, AvailIndexBackwardsNeedsReset) {
  drv.start(1, 8);
  echo_request("a");
  drv.set_avail_idx(0, 0xffff);  // "65535 new buffers"
  drv.notify(0);
  expect_broken();
}

TEST_F(VirtioMmioTest, BufferOutsideRamFailsRequestNotDevice) {
  drv.start(1, 8);
  const uint64_t out = drv.alloc(4);
  // The ring is fine; DmaMemory refuses the data. The backend sees a failed read.
  drv.submit(0, {{0x1000, 4, false}, {out, 4, true}});
  EXPECT_FALSE(drv.needs_reset());
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_EQ(drv.last_used(0).len, 0u);
  EXPECT_GT(mem.refused(), 0u);
  const uint64_t ok = echo_request("fine");
  EXPECT_EQ(read_str(ok, 4), "fine");
}

TEST_F(VirtioMmioTest, RingRevokedAtRuntimeBreaksDevice) {
  drv.start(1, 8);
  echo_request("a");
  mem.revoke(drv.layout(0).used, 6 + 8 * 8);
  echo_request("b");
  EXPECT_TRUE(drv.needs_reset());
  mem.revoke(drv.layout(0).desc, 16 * 8);
  drv.notify(0);  // still no crash, still broken
  EXPECT_TRUE(drv.needs_reset());
}

TEST_F(VirtioMmioTest, BrokenDeviceRecoversAfterReset) {
  drv.start(1, 8);
  drv.set_avail_idx(0, 100);
  drv.notify(0);
  ASSERT_TRUE(drv.needs_reset());
  drv.wr(reg::kStatus, 0);
  EXPECT_FALSE(drv.needs_reset());
  mem.fill(drv.layout(0).avail, 0, 0x1000);
  mem.fill(drv.layout(0).used, 0, 0x1000);
  drv.start(1, 8);
  const uint64_t out = echo_request("back");
  EXPECT_EQ(read_str(out, 4), "back");
}

// ---- Indirect descriptors (2.7.5.3). ----

TEST_F(VirtioMmioTest, IndirectTableServed) {
  drv.start(1, 8);
  const uint64_t table = drv.alloc(3 * 16);
  const uint64_t r = drv.alloc(3), w1 = drv.alloc(2), w2 = drv.alloc(2);
  mem.poke(r, "xyz", 3);
  drv.write_desc_at(table + 0, r, 3, kNext, 1);
  drv.write_desc_at(table + 16, w1, 2, kWrite | kNext, 2);
  drv.write_desc_at(table + 32, w2, 2, kWrite, 0);
  drv.write_desc(0, 0, table, 3 * 16, kIndirect, 0);
  drv.publish(0, 0);
  drv.notify(0);
  EXPECT_FALSE(drv.needs_reset());
  ASSERT_EQ(echo.seen.size(), 1u);
  EXPECT_EQ(echo.seen[0].readable_bufs, 1u);
  EXPECT_EQ(echo.seen[0].writable_bufs, 2u);
  EXPECT_EQ(read_str(w1, 2) + read_str(w2, 1), "xyz");
}

TEST_F(VirtioMmioTest, IndirectWithoutNegotiationIsRefused) {
  drv.start(1, 8, ~kVirtioFIndirectDesc);
  const uint64_t table = drv.alloc(16);
  drv.write_desc_at(table, drv.alloc(4), 4, kWrite, 0);
  drv.write_desc(0, 0, table, 16, kIndirect, 0);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
}

class IndirectHostile : public VirtioMmioTest, public ::testing::WithParamInterface<int> {};

TEST_P(IndirectHostile, Refused) {
  drv.start(1, 8);
  const uint64_t table = drv.alloc(16 * 16);
  const uint64_t buf = drv.alloc(16);
  uint32_t table_len = 2 * 16;
  uint16_t head_flags = kIndirect;
  drv.write_desc_at(table, buf, 4, kNext, 1);
  drv.write_desc_at(table + 16, buf, 4, kWrite, 0);
  switch (GetParam()) {
    case 0:  // loop inside the table
      drv.write_desc_at(table + 16, buf, 4, kWrite | kNext, 0);
      break;
    case 1:  // next beyond the table
      drv.write_desc_at(table + 16, buf, 4, kWrite | kNext, 2);
      break;
    case 2:  // nested table
      drv.write_desc_at(table + 16, table, 16, kIndirect, 0);
      break;
    case 3:  // length not a whole number of descriptors
      table_len = 24;
      break;
    case 4:  // empty table
      table_len = 0;
      break;
    case 5:  // more entries than the queue size
      table_len = 9 * 16;
      break;
    case 6:  // INDIRECT together with NEXT
      head_flags = kIndirect | kNext;
      break;
    case 7:  // table outside guest RAM
      drv.write_desc(0, 0, 0x2000, table_len, head_flags, 0);
      drv.publish(0, 0);
      drv.notify(0);
      expect_broken();
      return;
    case 8:  // absurd length inside the table
      drv.write_desc_at(table + 16, buf, 0xffffffff, kWrite, 0);
      break;
  }
  drv.write_desc(0, 0, table, table_len, head_flags, 1);
  drv.publish(0, 0);
  drv.notify(0);
  expect_broken();
  EXPECT_TRUE(echo.seen.empty());
}

INSTANTIATE_TEST_SUITE_P(Cases, IndirectHostile, ::testing::Range(0, 9));

TEST_F(VirtioMmioTest, FullRingOfRequestsInOneNotify) {
  drv.start(1, 16);
  // Eight 2-descriptor chains fill the 16-entry table. Ring indices wrap past 65535
  // without confusion: run many rounds.
  for (int round = 0; round < 10000; ++round) {
    for (int i = 0; i < 8; ++i) {
      const uint64_t b = kDataBase + 64 * i;
      drv.submit(0, {{b, 1, false}, {b + 32, 1, true}}, false);
    }
    drv.notify(0);
    ASSERT_FALSE(drv.needs_reset()) << "round " << round;
  }
  EXPECT_EQ(drv.used_idx(0), static_cast<uint16_t>(10000 * 8));
  EXPECT_EQ(echo.seen.size(), 10000u * 8);
}

}  // namespace
}  // namespace vigil::devices
