#include "devices/virtio_rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;

class VirtioRngTest : public ::testing::Test {
 protected:
  VirtioRngTest() : mmio(rng, mem, &irq), drv(mmio, mem) {}
  void SetUp() override { drv.start(1, 8); }
  void TearDown() override { EXPECT_EQ(irq.redundant(), 0); }

  static bool all_zero(const std::vector<uint8_t>& v) {
    return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
  }

  FakeDma mem;
  FakeIrqLine irq;
  VirtioRng rng;
  VirtioMmio mmio;
  TestDriver drv;
};

TEST_F(VirtioRngTest, IdentityAndNoConfigSpace) {
  EXPECT_EQ(drv.rd(reg::kDeviceId), 4u);
  EXPECT_EQ(drv.device_features(), kVirtioFVersion1 | kVirtioFIndirectDesc);
  uint64_t v = 0;
  EXPECT_FALSE(mmio.read(reg::kConfig, 1, v));
  drv.wr(reg::kQueueSel, 0);
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), VirtioRng::kQueueSize);
}

TEST_F(VirtioRngTest, FillsWholeBuffer) {
  const uint64_t buf = drv.alloc(64);
  drv.submit(0, {{buf, 64, true}});
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_EQ(drv.last_used(0).len, 64u);
  const auto first = mem.bytes(buf, 64);
  EXPECT_FALSE(all_zero(first));
  EXPECT_TRUE(irq.level());
  // A second request gets different bytes (a 2^-512 chance of a false failure).
  drv.submit(0, {{buf, 64, true}});
  EXPECT_NE(mem.bytes(buf, 64), first);
}

TEST_F(VirtioRngTest, FillsAcrossDescriptors) {
  const uint64_t a = drv.alloc(300), b = drv.alloc(500);
  drv.submit(0, {{a, 300, true}, {b, 500, true}});
  EXPECT_EQ(drv.last_used(0).len, 800u);
  EXPECT_FALSE(all_zero(mem.bytes(a + 200, 100)));
  EXPECT_FALSE(all_zero(mem.bytes(b + 400, 100)));
}

TEST_F(VirtioRngTest, CapsOneRequest) {
  const uint64_t buf = drv.alloc(128 * 1024);
  drv.submit(0, {{buf, 128 * 1024, true}});
  EXPECT_EQ(drv.last_used(0).len, VirtioRng::kMaxBytesPerRequest);
  EXPECT_TRUE(all_zero(mem.bytes(buf + VirtioRng::kMaxBytesPerRequest, 1024)));
}

TEST_F(VirtioRngTest, ReadableOnlyChainGetsNothing) {
  const uint64_t buf = drv.alloc(64);
  drv.submit(0, {{buf, 64, false}});
  EXPECT_EQ(drv.used_idx(0), 1);
  EXPECT_EQ(drv.last_used(0).len, 0u);
  EXPECT_TRUE(all_zero(mem.bytes(buf, 64)));
}

TEST_F(VirtioRngTest, BufferRunningOutOfRamIsFilledUpToTheEdge) {
  // 256 bytes in RAM, then 256 beyond it: the device reports only what it delivered.
  const uint64_t edge = FakeDma::kBase + FakeDma::kSize - 256;
  drv.submit(0, {{edge, 512, true}});
  EXPECT_FALSE(drv.needs_reset());
  EXPECT_EQ(drv.last_used(0).len, 256u);
  EXPECT_GT(mem.refused(), 0u);
  const uint64_t buf = drv.alloc(16);
  drv.submit(0, {{0x10, 16, true}, {buf, 16, true}});  // first buffer not RAM at all
  EXPECT_EQ(drv.last_used(0).len, 0u);
  EXPECT_TRUE(all_zero(mem.bytes(buf, 16)));
}

}  // namespace
}  // namespace vigil::devices
