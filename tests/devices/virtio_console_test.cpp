#include "devices/virtio_console.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;

constexpr unsigned kRx = VirtioConsole::kReceiveq, kTx = VirtioConsole::kTransmitq;

class VirtioConsoleTest : public ::testing::Test {
 protected:
  VirtioConsoleTest()
      : console([this](const uint8_t* p, size_t n) {
          std::lock_guard lock(output_mutex);
          output.append(reinterpret_cast<const char*>(p), n);
        }),
        mmio(console, mem, &irq),
        drv(mmio, mem) {}
  void TearDown() override { EXPECT_EQ(irq.redundant(), 0); }

  size_t push(const std::string& s) {
    return console.push_input(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::string str(uint64_t gpa, size_t n) {
    const auto b = mem.bytes(gpa, n);
    return std::string(b.begin(), b.end());
  }
  uint64_t post_rx(uint32_t len) {
    const uint64_t b = drv.alloc(len);
    drv.submit(kRx, {{b, len, true}});
    return b;
  }

  FakeDma mem;
  FakeIrqLine irq;
  std::mutex output_mutex;
  std::string output;
  VirtioConsole console;
  VirtioMmio mmio;
  TestDriver drv;
};

TEST_F(VirtioConsoleTest, IdentityQueuesAndConfig) {
  EXPECT_EQ(drv.rd(reg::kDeviceId), 3u);
  EXPECT_EQ(drv.device_features(), 1 | kVirtioFVersion1 | kVirtioFIndirectDesc);  // F_SIZE
  drv.wr(reg::kQueueSel, 1);
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), VirtioConsole::kQueueSize);
  drv.wr(reg::kQueueSel, 2);  // no control queues without MULTIPORT
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), 0u);
  EXPECT_EQ(drv.rd(reg::kConfig), 0u);  // cols, rows
  EXPECT_EQ(drv.rd(reg::kConfig + 8), 0u);
  uint64_t v;
  EXPECT_FALSE(mmio.read(reg::kConfig + 12, 1, v));
}

TEST_F(VirtioConsoleTest, TransmitReachesSink) {
  drv.start(2, 16);
  const uint64_t a = drv.alloc(6), b = drv.alloc(5);
  mem.poke(a, "hello ", 6);
  mem.poke(b, "world", 5);
  drv.submit(kTx, {{a, 6, false}, {b, 5, false}});
  EXPECT_EQ(output, "hello world");
  EXPECT_EQ(drv.used_idx(kTx), 1);
  EXPECT_EQ(drv.last_used(kTx).len, 0u);  // the device wrote nothing
  EXPECT_TRUE(irq.level());
}

TEST_F(VirtioConsoleTest, TransmitOrderAcrossManyBuffers) {
  drv.start(2, 16);
  std::string expect;
  for (int i = 0; i < 40; ++i) {
    const std::string piece = "<" + std::to_string(i) + ">";
    const uint64_t p = drv.alloc(piece.size());
    mem.poke(p, piece.data(), piece.size());
    drv.submit(kTx, {{p, static_cast<uint32_t>(piece.size()), false}}, i % 5 == 4);
    expect += piece;
  }
  EXPECT_EQ(output, expect);
}

TEST_F(VirtioConsoleTest, TransmitFromUnreadableBufferStopsThatBufferOnly) {
  drv.start(2, 16);
  const uint64_t ok = drv.alloc(2);
  mem.poke(ok, "ok", 2);
  drv.submit(kTx, {{0x100, 64, false}});
  drv.submit(kTx, {{ok, 2, false}});
  EXPECT_EQ(output, "ok");
  EXPECT_FALSE(drv.needs_reset());
  EXPECT_EQ(drv.used_idx(kTx), 2);
}

TEST_F(VirtioConsoleTest, InputWithBufferPostedIsDeliveredAtOnce) {
  drv.start(2, 16);
  const uint64_t b = post_rx(64);
  EXPECT_EQ(drv.used_idx(kRx), 0);  // nothing to deliver yet: the buffer stays posted
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(push("ls -l\n"), 6u);
  EXPECT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, 6u);
  EXPECT_EQ(str(b, 6), "ls -l\n");
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(drv.interrupt_status(), 1u);
}

TEST_F(VirtioConsoleTest, InputWaitsForBuffersAndSplitsAcrossThem) {
  drv.start(2, 16);
  EXPECT_EQ(push("abcdefghij"), 10u);
  EXPECT_EQ(console.input_space(), VirtioConsole::kInputCapacity - 10);
  const uint64_t b1 = post_rx(4);
  EXPECT_EQ(str(b1, 4), "abcd");
  EXPECT_EQ(drv.last_used(kRx).len, 4u);
  const uint64_t b2 = post_rx(4);
  const uint64_t b3 = post_rx(4);
  EXPECT_EQ(str(b2, 4), "efgh");
  EXPECT_EQ(str(b3, 2), "ij");
  EXPECT_EQ(drv.last_used(kRx).len, 2u);
  EXPECT_EQ(console.input_space(), VirtioConsole::kInputCapacity);
}

TEST_F(VirtioConsoleTest, InputBufferIsBounded) {
  std::vector<uint8_t> big(VirtioConsole::kInputCapacity + 100, 'x');
  EXPECT_EQ(console.push_input(big.data(), big.size()), VirtioConsole::kInputCapacity);
  EXPECT_EQ(console.input_space(), 0u);
  EXPECT_EQ(console.push_input(big.data(), 1), 0u);
  EXPECT_EQ(console.push_input(nullptr, 5), 0u);
}

TEST_F(VirtioConsoleTest, InputBeforeDriverOkSurvivesResetAndArrivesLater) {
  EXPECT_EQ(push("early"), 5u);
  drv.wr(reg::kStatus, 0);  // the driver's probe resets the device first
  drv.start(2, 16);
  const uint64_t b = post_rx(16);
  EXPECT_EQ(str(b, 5), "early");
  EXPECT_EQ(drv.last_used(kRx).len, 5u);
}

TEST_F(VirtioConsoleTest, InputIntoUnwritableBufferIsKept) {
  drv.start(2, 16);
  drv.submit(kRx, {{0x100, 16, true}});  // not guest RAM
  EXPECT_EQ(push("keep"), 4u);
  EXPECT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, 0u);
  EXPECT_FALSE(drv.needs_reset());
  const uint64_t b = post_rx(16);
  EXPECT_EQ(str(b, 4), "keep");
}

TEST_F(VirtioConsoleTest, SetSizeNotifiesConfigChange) {
  drv.start(2, 16);
  const uint32_t gen = drv.rd(reg::kConfigGeneration);
  console.set_size(132, 43);
  EXPECT_EQ(drv.rd(reg::kConfig), (43u << 16) | 132u);
  uint64_t v = 0;
  ASSERT_TRUE(mmio.read(reg::kConfig + 2, 2, v));
  EXPECT_EQ(v, 43u);
  EXPECT_EQ(drv.rd(reg::kConfigGeneration), gen + 1);
  EXPECT_EQ(drv.interrupt_status(), 2u);
  EXPECT_TRUE(irq.level());
  drv.ack(2);
  console.set_size(132, 43);  // unchanged: no notification
  EXPECT_EQ(drv.interrupt_status(), 0u);
}

// A host thread types while the "vCPU" thread keeps re-posting receive buffers and
// printing: every byte arrives once, in order, and nothing deadlocks.
TEST_F(VirtioConsoleTest, ConcurrentInputAndGuestActivity) {
  drv.start(2, 16);
  constexpr size_t kTotal = 200'000;
  std::string sent(kTotal, 0);
  for (size_t i = 0; i < kTotal; ++i) sent[i] = static_cast<char>('a' + i % 26);

  // 8 receive buffers of 64 bytes, reposted as they come back.
  const uint64_t bufs = drv.alloc(8 * 64);
  for (uint32_t i = 0; i < 8; ++i) drv.submit(kRx, {{bufs + 64 * i, 64, true}}, false);
  drv.notify(kRx);

  std::atomic<bool> done_sending{false};
  std::thread host([&] {
    size_t off = 0;
    while (off < kTotal) {
      const size_t n = std::min<size_t>(1 + off % 777, kTotal - off);
      off += console.push_input(reinterpret_cast<const uint8_t*>(sent.data()) + off, n);
      if (off < kTotal && console.input_space() == 0) std::this_thread::yield();
    }
    done_sending = true;
  });

  std::string received;
  uint16_t seen = 0;
  const uint64_t tx = drv.alloc(1);
  mem.poke(tx, "!", 1);
  for (int spins = 0; received.size() < kTotal && spins < 50'000'000; ++spins) {
    const uint16_t used = drv.used_idx(kRx);
    if (used == seen) {
      if (spins % 64 == 0) drv.notify(kRx);  // like a driver re-checking its queue
      continue;
    }
    for (; seen != used; ++seen) {
      const UsedElem e = drv.used(kRx, seen);
      ASSERT_LT(e.id, 16u);
      ASSERT_LE(e.len, 64u);
      // Chains are one descriptor each; find its buffer from the descriptor table.
      const uint64_t addr = mem.get<uint64_t>(drv.layout(kRx).desc + 16ull * e.id);
      received += str(addr, e.len);
      drv.submit(kRx, {{addr, 64, true}}, false);
    }
    drv.notify(kRx);
    drv.submit(kTx, {{tx, 1, false}});  // the guest also prints meanwhile
    drv.ack(drv.interrupt_status());
  }
  host.join();
  EXPECT_TRUE(done_sending);
  EXPECT_EQ(received.size(), kTotal);
  EXPECT_TRUE(received == sent) << "input reordered or corrupted";
  std::lock_guard lock(output_mutex);
  EXPECT_FALSE(output.empty());
  EXPECT_EQ(output.find_first_not_of('!'), std::string::npos);
}

}  // namespace
}  // namespace vigil::devices
