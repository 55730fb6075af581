// Device DMA (machine/guest_dma.h) marks the pages it writes while dirty logging runs (the
// virtio used ring, blk reads, rng and net buffers all go through it); reads mark nothing.
#include <gtest/gtest.h>

#include <vector>

#include "machine/guest_dma.h"

namespace vigil::machine {
namespace {

TEST(GuestDma, WritesMarkDirtyPagesReadsDoNot) {
  constexpr uint64_t kBase = 0x80000000, kSize = 1 << 20;
  std::vector<uint8_t> ram(kSize);
  riscv::GuestMemory mem(ram.data(), kBase, kSize);
  GuestDma dma(mem);
  uint8_t buf[5000] = {1};
  ASSERT_TRUE(dma.write(kBase + 0x1000, buf, 16));  // before logging: not recorded
  mem.start_dirty_log();
  ASSERT_TRUE(dma.read(kBase + 0x5000, buf, sizeof buf));
  ASSERT_TRUE(dma.write(kBase + 0x2ff0, buf, sizeof buf));  // pages 2, 3 and 4
  ASSERT_FALSE(dma.write(kBase + kSize - 8, buf, 16));      // refused: outside RAM, no mark
  std::vector<uint64_t> words;
  EXPECT_EQ(mem.fetch_and_clear_dirty(words), 3u);
  ASSERT_FALSE(words.empty());
  EXPECT_EQ(words[0], 0b11100u);
  EXPECT_EQ(words.back() >> 63, 0u);
}

}  // namespace
}  // namespace vigil::machine
