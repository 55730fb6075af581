#include "devices/virtio_net.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "devices/net_tap.h"
#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;
using Bytes = std::vector<uint8_t>;

constexpr unsigned kRx = VirtioNet::kReceiveq, kTx = VirtioNet::kTransmitq;
constexpr uint32_t kHdr = VirtioNet::kHdrSize;
constexpr MacAddress kMac = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

// Records what the device sends; deliver() plays the backend's I/O thread.
class FakeBackend final : public NetBackend {
 public:
  std::string_view name() const override { return "fake"; }
  void start(Receiver receiver) override {
    std::lock_guard lock(m_mutex);
    m_receiver = std::move(receiver);
    ++m_starts;
  }
  void stop() override {
    std::lock_guard lock(m_mutex);
    ++m_stops;
  }
  void send(std::span<const uint8_t> frame) override {
    std::lock_guard lock(m_mutex);
    m_sent.emplace_back(frame.begin(), frame.end());
  }
  NetBackendStats stats() const override {
    std::lock_guard lock(m_mutex);
    return {.tx_frames = m_sent.size()};
  }

  void deliver(const Bytes& frame) {
    Receiver r;
    {
      std::lock_guard lock(m_mutex);
      r = m_receiver;
    }
    ASSERT_TRUE(r) << "the device never started its backend";
    r(frame);
  }
  std::vector<Bytes> sent() {
    std::lock_guard lock(m_mutex);
    return m_sent;
  }
  int starts() {
    std::lock_guard lock(m_mutex);
    return m_starts;
  }

 private:
  mutable std::mutex m_mutex;
  Receiver m_receiver;
  std::vector<Bytes> m_sent;
  int m_starts = 0, m_stops = 0;
};

// An Ethernet frame of len bytes (len >= 18) whose payload starts with a 32-bit sequence
// number, so tests can tell frames apart and check their order.
Bytes make_frame(size_t len, uint32_t seq) {
  Bytes f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(i * 7 + seq);
  std::copy(kMac.begin(), kMac.end(), f.begin());  // to the guest
  f[12] = 0x08, f[13] = 0x00;                      // IPv4
  std::memcpy(&f[14], &seq, sizeof seq);
  return f;
}

uint32_t frame_seq(const Bytes& f) {
  uint32_t seq;
  std::memcpy(&seq, &f[14], sizeof seq);
  return seq;
}

class VirtioNetTest : public ::testing::Test {
 protected:
  VirtioNetTest() : net(make_backend(), kMac), mmio(net, mem, &irq), drv(mmio, mem) {}
  void TearDown() override { EXPECT_EQ(irq.redundant(), 0); }

  std::unique_ptr<NetBackend> make_backend() {
    auto b = std::make_unique<FakeBackend>();
    backend = b.get();
    return b;
  }

  // A receive buffer of len device-writable bytes, posted and notified.
  uint64_t post_rx(uint32_t len) {
    const uint64_t b = drv.alloc(len);
    mem.fill(b, 0xee, len);
    drv.submit(kRx, {{b, len, true}});
    return b;
  }
  // Transmits hdr + frame, with the chain split into buffers of at most `piece` bytes.
  void transmit(const Bytes& frame, uint32_t piece = 1u << 20, Bytes hdr = Bytes(kHdr, 0)) {
    Bytes all = hdr;
    all.insert(all.end(), frame.begin(), frame.end());
    const uint64_t at = drv.alloc(all.size());
    mem.poke(at, all.data(), all.size());
    std::vector<Buf> bufs;
    for (uint64_t off = 0; off < all.size(); off += piece) {
      bufs.push_back({at + off, static_cast<uint32_t>(std::min<uint64_t>(piece, all.size() - off)), false});
    }
    drv.submit(kTx, bufs);
  }

  FakeDma mem;
  FakeIrqLine irq;
  FakeBackend* backend = nullptr;  // owned by net
  VirtioNet net;
  VirtioMmio mmio;
  TestDriver drv;
};

TEST_F(VirtioNetTest, IdentityFeaturesQueues) {
  EXPECT_EQ(backend->starts(), 1);
  EXPECT_EQ(drv.rd(reg::kDeviceId), 1u);
  EXPECT_EQ(drv.device_features(),
            VirtioNet::kFMac | VirtioNet::kFStatus | kVirtioFVersion1 | kVirtioFIndirectDesc);
  for (unsigned q : {kRx, kTx}) {
    drv.wr(reg::kQueueSel, q);
    EXPECT_EQ(drv.rd(reg::kQueueNumMax), VirtioNet::kQueueSize);
  }
  drv.wr(reg::kQueueSel, 2);  // no control queue
  EXPECT_EQ(drv.rd(reg::kQueueNumMax), 0u);
}

TEST_F(VirtioNetTest, ConfigHoldsMacAndLinkStatus) {
  for (unsigned i = 0; i < 6; ++i) {
    uint64_t v = 0;
    ASSERT_TRUE(mmio.read(reg::kConfig + i, 1, v));
    EXPECT_EQ(v, kMac[i]) << "mac byte " << i;
  }
  uint64_t status = 0;
  ASSERT_TRUE(mmio.read(reg::kConfig + 6, 2, status));
  EXPECT_EQ(status, 1u);  // VIRTIO_NET_S_LINK_UP
  uint64_t pairs = 0;
  ASSERT_TRUE(mmio.read(reg::kConfig + 8, 2, pairs));
  EXPECT_EQ(pairs, 1u);
  uint64_t v;
  EXPECT_FALSE(mmio.read(reg::kConfig + 12, 1, v));  // past the config space
  EXPECT_EQ(net.mac(), kMac);
}

TEST_F(VirtioNetTest, LinkDownNotifiesAndDrops) {
  drv.start(2, 16);
  const uint32_t gen = drv.rd(reg::kConfigGeneration);
  net.set_link_up(false);
  uint64_t status = 0xff;
  ASSERT_TRUE(mmio.read(reg::kConfig + 6, 2, status));
  EXPECT_EQ(status, 0u);
  EXPECT_EQ(drv.rd(reg::kConfigGeneration), gen + 1);
  EXPECT_EQ(drv.interrupt_status(), 2u);
  drv.ack(2);
  post_rx(1600);
  backend->deliver(make_frame(60, 1));
  EXPECT_EQ(drv.used_idx(kRx), 0);
  transmit(make_frame(60, 2));
  EXPECT_TRUE(backend->sent().empty());
  EXPECT_EQ(net.stats().rx_dropped, 1u);
  EXPECT_EQ(net.stats().tx_dropped, 1u);
  net.set_link_up(true);
  backend->deliver(make_frame(60, 3));
  EXPECT_EQ(drv.used_idx(kRx), 1);
}

TEST_F(VirtioNetTest, TransmitHandsExactlyTheFrameToTheBackend) {
  drv.start(2, 64);
  const Bytes frame = make_frame(98, 7);
  transmit(frame, 5);  // 22 buffers, the header split too, as VERSION_1 (ANY_LAYOUT) allows
  const auto sent = backend->sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], frame);
  EXPECT_EQ(drv.used_idx(kTx), 1);
  EXPECT_EQ(drv.last_used(kTx).len, 0u);
  EXPECT_TRUE(irq.level());
  const auto s = net.stats();
  EXPECT_EQ(s.tx_frames, 1u);
  EXPECT_EQ(s.tx_bytes, 98u);
  EXPECT_EQ(s.tx_dropped, 0u);
}

TEST_F(VirtioNetTest, TransmitSizeBounds) {
  drv.start(2, 16);
  transmit(Bytes(13, 0xaa));  // 12 + 13: no whole Ethernet header
  transmit(Bytes{});          // a bare header
  EXPECT_TRUE(backend->sent().empty());
  EXPECT_EQ(drv.used_idx(kTx), 2);  // refused chains still come back

  transmit(make_frame(NetBackend::kMaxFrame + 1, 1));  // 65551 bytes with the header
  EXPECT_TRUE(backend->sent().empty());
  EXPECT_EQ(net.stats().tx_dropped, 3u);

  transmit(Bytes(14, 0x11));                       // smallest: 12 + 14
  transmit(make_frame(NetBackend::kMaxFrame, 2));  // largest: 65550 with the header
  const auto sent = backend->sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].size(), 14u);
  EXPECT_EQ(sent[1].size(), NetBackend::kMaxFrame);
  EXPECT_EQ(frame_seq(sent[1]), 2u);
  EXPECT_FALSE(drv.needs_reset());
}

TEST_F(VirtioNetTest, TransmitRefusesOffloadRequests) {
  drv.start(2, 16);
  Bytes csum(kHdr, 0);
  csum[0] = 1;  // NEEDS_CSUM without VIRTIO_NET_F_CSUM
  transmit(make_frame(60, 1), 4096, csum);
  Bytes gso(kHdr, 0);
  gso[1] = 1;  // GSO_TCPV4 without HOST_TSO4
  transmit(make_frame(60, 2), 4096, gso);
  EXPECT_TRUE(backend->sent().empty());
  EXPECT_EQ(net.stats().tx_dropped, 2u);
  transmit(make_frame(60, 3));
  ASSERT_EQ(backend->sent().size(), 1u);
}

TEST_F(VirtioNetTest, ReceiveFillsPostedBufferWithZeroedHeader) {
  drv.start(2, 16);
  const uint64_t b = post_rx(kHdr + 1518);
  EXPECT_EQ(drv.used_idx(kRx), 0);  // posted buffers wait for a frame
  EXPECT_FALSE(irq.level());
  const Bytes frame = make_frame(60, 42);
  backend->deliver(frame);
  ASSERT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, kHdr + 60);
  Bytes expect_hdr(kHdr, 0);
  expect_hdr[10] = 1;  // num_buffers = 1 (little-endian)
  EXPECT_EQ(mem.bytes(b, kHdr), expect_hdr);
  EXPECT_EQ(mem.bytes(b + kHdr, 60), frame);
  EXPECT_EQ(mem.get<uint8_t>(b + kHdr + 60), 0xee);  // nothing past the frame
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(drv.interrupt_status(), 1u);
  EXPECT_EQ(net.stats().rx_frames, 1u);
  EXPECT_EQ(net.stats().rx_bytes, 60u);
}

TEST_F(VirtioNetTest, ReceiveIntoChainOfSeveralBuffers) {
  drv.start(2, 16);
  const uint64_t h = drv.alloc(kHdr), d1 = drv.alloc(30), d2 = drv.alloc(100);
  drv.submit(kRx, {{h, kHdr, true}, {d1, 30, true}, {d2, 100, true}});
  const Bytes frame = make_frame(90, 5);
  backend->deliver(frame);
  ASSERT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, kHdr + 90);
  EXPECT_EQ(mem.get<uint16_t>(h + 10), 1);
  Bytes got = mem.bytes(d1, 30);
  const Bytes rest = mem.bytes(d2, 60);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, frame);
}

TEST_F(VirtioNetTest, ReceiveWithoutBuffersQueuesBoundedThenDrops) {
  drv.start(2, 256);
  constexpr uint32_t kExtra = 10;
  for (uint32_t i = 0; i < VirtioNet::kRxQueueFrames + kExtra; ++i) backend->deliver(make_frame(60, i));
  EXPECT_EQ(drv.used_idx(kRx), 0);
  EXPECT_EQ(net.stats().rx_dropped, kExtra);
  EXPECT_FALSE(irq.level());
  // Buffers posted later get the queued frames, oldest first; the dropped ones are gone.
  for (uint32_t i = 0; i < VirtioNet::kRxQueueFrames; ++i) {
    const uint64_t b = post_rx(kHdr + 64);
    ASSERT_EQ(drv.used_idx(kRx), i + 1);
    Bytes f = mem.bytes(b + kHdr, 60);
    ASSERT_EQ(frame_seq(f), i);
  }
  post_rx(kHdr + 64);
  EXPECT_EQ(drv.used_idx(kRx), VirtioNet::kRxQueueFrames);  // queue now empty
  EXPECT_EQ(net.stats().rx_frames, VirtioNet::kRxQueueFrames);
}

TEST_F(VirtioNetTest, ReceiveBeforeDriverIsDroppedAndResetEmptiesTheQueue) {
  backend->deliver(make_frame(60, 1));  // no driver yet
  EXPECT_EQ(net.stats().rx_dropped, 1u);
  drv.start(2, 16);
  backend->deliver(make_frame(60, 2));  // queued: no buffers
  EXPECT_EQ(net.stats().rx_dropped, 1u);
  drv.wr(reg::kStatus, 0);  // reset: the queued frame was for the old driver
  EXPECT_EQ(net.stats().rx_dropped, 2u);
  drv.start(2, 16);
  post_rx(1600);
  EXPECT_EQ(drv.used_idx(kRx), 0);
}

TEST_F(VirtioNetTest, ReceiveOversizeOrUndersizeFramesDropped) {
  drv.start(2, 16);
  post_rx(1600);
  backend->deliver(Bytes(13, 0));
  backend->deliver(make_frame(NetBackend::kMaxFrame + 1, 0));
  EXPECT_EQ(drv.used_idx(kRx), 0);
  EXPECT_EQ(net.stats().rx_dropped, 2u);
}

TEST_F(VirtioNetTest, ReceiveBufferTooSmallReturnsItEmptyAndDropsTheFrame) {
  drv.start(2, 16);
  post_rx(kHdr + 59);  // one byte short
  const uint64_t good = post_rx(kHdr + 1518);
  backend->deliver(make_frame(60, 1));
  EXPECT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, 0u);
  EXPECT_EQ(net.stats().rx_dropped, 1u);
  backend->deliver(make_frame(60, 2));
  EXPECT_EQ(drv.used_idx(kRx), 2);
  EXPECT_EQ(drv.last_used(kRx).len, kHdr + 60);
  EXPECT_EQ(frame_seq(mem.bytes(good + kHdr, 60)), 2u);
}

TEST_F(VirtioNetTest, ReceiveIntoReadOnlyChainReturnsItEmpty) {
  drv.start(2, 16);
  const uint64_t b = drv.alloc(1600);
  drv.submit(kRx, {{b, 1600, false}});  // device-readable only: nowhere to write
  backend->deliver(make_frame(60, 1));
  EXPECT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, 0u);
  EXPECT_FALSE(drv.needs_reset());
}

TEST_F(VirtioNetTest, HostileBuffersOutsideRamFailOnlyTheirFrame) {
  drv.start(2, 16);
  drv.submit(kRx, {{0x1000, 1600, true}});  // not guest RAM
  backend->deliver(make_frame(60, 1));
  EXPECT_EQ(drv.used_idx(kRx), 1);
  EXPECT_EQ(drv.last_used(kRx).len, 0u);
  drv.submit(kTx, {{FakeDma::kBase + FakeDma::kSize - 8, 100, false}});  // runs off the end
  drv.submit(kTx, {{0xffff'ffff'ffff'ff00, 200, false}});                // wraps around
  EXPECT_EQ(drv.used_idx(kTx), 2);
  EXPECT_TRUE(backend->sent().empty());
  EXPECT_GT(mem.refused(), 0u);
  // Revoked memory inside RAM: refused as well.
  const uint64_t r = drv.alloc(1600);
  mem.revoke(r, 1600);
  drv.submit(kRx, {{r, 1600, true}});
  backend->deliver(make_frame(60, 2));
  EXPECT_EQ(drv.last_used(kRx).len, 0u);
  EXPECT_FALSE(drv.needs_reset());
  // The device still works.
  const uint64_t ok = post_rx(1600);
  backend->deliver(make_frame(60, 3));
  EXPECT_EQ(frame_seq(mem.bytes(ok + kHdr, 60)), 3u);
  transmit(make_frame(60, 4));
  EXPECT_EQ(backend->sent().size(), 1u);
}

TEST_F(VirtioNetTest, DescriptorLoopBreaksTheQueueWithoutHarm) {
  drv.start(2, 16);
  const uint64_t b = drv.alloc(64);
  drv.write_desc(kTx, 0, b, 32, kNext, 1);
  drv.write_desc(kTx, 1, b + 32, 32, kNext, 0);  // back to 0
  drv.publish(kTx, 0);
  drv.notify(kTx);
  EXPECT_TRUE(drv.needs_reset());
  EXPECT_TRUE(backend->sent().empty());
  // Receiving while the device needs a reset does nothing either.
  backend->deliver(make_frame(60, 1));
  // After a reset the device works again.
  drv.start(2, 16);
  transmit(make_frame(60, 2));
  EXPECT_EQ(backend->sent().size(), 1u);
}

TEST_F(VirtioNetTest, DescriptorIndexOutOfRangeOnReceiveBreaksTheQueue) {
  drv.start(2, 16);
  const uint64_t b = drv.alloc(64);
  drv.write_desc(kRx, 0, b, 12, kNext | kWrite, 999);
  drv.publish(kRx, 0);
  drv.notify(kRx);
  backend->deliver(make_frame(60, 1));
  EXPECT_TRUE(drv.needs_reset());
  EXPECT_EQ(drv.used_idx(kRx), 0);
}

TEST_F(VirtioNetTest, AvailIndexFarAheadIsNotChased) {
  drv.start(2, 16);
  drv.set_avail_idx(kTx, 5000);
  drv.notify(kTx);
  EXPECT_TRUE(drv.needs_reset());
  EXPECT_TRUE(backend->sent().empty());
}

// A "slirp thread" delivers frames while the "vCPU" keeps reposting receive buffers and
// transmitting: every frame is either delivered once, in order, or counted as dropped.
TEST_F(VirtioNetTest, ConcurrentReceiveAndGuestActivity) {
  drv.start(2, 16);
  constexpr uint32_t kFrames = 5'000;
  constexpr uint32_t kBufLen = kHdr + 64;
  const uint64_t bufs = drv.alloc(16 * kBufLen);
  for (uint32_t i = 0; i < 16; ++i) drv.submit(kRx, {{bufs + i * kBufLen, kBufLen, true}}, false);
  drv.notify(kRx);
  // One transmit buffer, reused: the device serves it synchronously on every notify.
  const Bytes tx_frame = make_frame(60, 0);
  const uint64_t tx_at = drv.alloc(kHdr + tx_frame.size());
  mem.fill(tx_at, 0, kHdr);
  mem.poke(tx_at + kHdr, tx_frame.data(), tx_frame.size());

  std::atomic<bool> done{false};
  std::thread host([&] {
    for (uint32_t i = 0; i < kFrames; ++i) {
      backend->deliver(make_frame(60, i));
      if (i % 16 == 0) std::this_thread::yield();
    }
    done = true;
  });

  uint16_t seen = 0;
  uint32_t delivered = 0;
  int64_t last_seq = -1;
  bool in_order = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    const bool finished = done.load();
    const uint16_t used = drv.used_idx(kRx);
    if (used == seen) std::this_thread::yield();  // let the host thread run on a busy machine
    while (seen != used) {
      const UsedElem e = drv.used(kRx, seen);
      const uint64_t at = bufs + (e.id % 16) * kBufLen;
      const int64_t seq = frame_seq(mem.bytes(at + kHdr, 60));
      in_order = in_order && seq > last_seq;
      last_seq = seq;
      ++delivered;
      ++seen;
      drv.submit(kRx, {{at, kBufLen, true}}, true);  // repost (slots come back in order)
      if (seen % 8 == 0) drv.submit(kTx, {{tx_at, static_cast<uint32_t>(kHdr + tx_frame.size()), false}});
    }
    if (finished && drv.used_idx(kRx) == seen && net.stats().rx_frames == delivered) break;
  }
  host.join();
  EXPECT_TRUE(in_order);
  EXPECT_GT(delivered, 0u);
  const auto s = net.stats();
  EXPECT_EQ(s.rx_frames + s.rx_dropped, kFrames);
  EXPECT_EQ(s.rx_frames, delivered);
  EXPECT_EQ(backend->sent().size(), delivered / 8);
  EXPECT_FALSE(drv.needs_reset());
}

// A backend whose I/O thread delivers frames non-stop until stop().
class BusyBackend final : public NetBackend {
 public:
  struct Shared {
    std::atomic<uint64_t> delivered{0};
    std::atomic<bool> stopped{false};
    // stop() came from the owner, not from this destructor: the device's own members
    // are destroyed before the backend's, so only an explicit stop() is in time.
    std::atomic<bool> stopped_by_owner{false};
  };
  explicit BusyBackend(std::shared_ptr<Shared> shared) : m_shared(std::move(shared)) {}
  ~BusyBackend() override {
    m_in_destructor = true;
    stop();
  }
  std::string_view name() const override { return "busy"; }
  void start(Receiver receiver) override {
    m_receiver = std::move(receiver);
    m_thread = std::thread([this] {
      const Bytes frame = make_frame(60, 0);
      while (!m_stop.load()) {
        m_receiver(frame);
        m_shared->delivered.fetch_add(1);
      }
    });
  }
  void stop() override {
    if (!m_thread.joinable()) return;
    m_stop = true;
    m_thread.join();
    m_receiver = nullptr;
    m_shared->stopped = true;
    m_shared->stopped_by_owner = !m_in_destructor;
  }
  void send(std::span<const uint8_t>) override {}
  NetBackendStats stats() const override { return {}; }

 private:
  std::shared_ptr<Shared> m_shared;
  Receiver m_receiver;
  std::thread m_thread;
  std::atomic<bool> m_stop{false};
  bool m_in_destructor = false;
};

TEST(VirtioNetLifetime, DestroyedWhileBackendThreadDelivers) {
  auto shared = std::make_shared<BusyBackend::Shared>();
  FakeDma mem;
  FakeIrqLine irq;
  {
    auto net = std::make_unique<VirtioNet>(std::make_unique<BusyBackend>(shared), kMac);
    auto mmio = std::make_unique<VirtioMmio>(*net, mem, &irq);
    TestDriver drv(*mmio, mem);
    drv.start(2, 16);
    const uint64_t b = drv.alloc(16 * 1600);
    for (uint32_t i = 0; i < 16; ++i) drv.submit(kRx, {{b + i * 1600, 1600, true}});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (drv.used_idx(kRx) != 16 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_EQ(drv.used_idx(kRx), 16);  // the buffers filled up from the backend's thread
    mmio.reset();                      // the transport goes first, as in Machine
    const uint64_t before = shared->delivered.load();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (shared->delivered.load() == before && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    EXPECT_GT(shared->delivered.load(), before);  // still delivering into a detached device
    EXPECT_FALSE(shared->stopped.load());
  }
  EXPECT_TRUE(shared->stopped.load());
  EXPECT_TRUE(shared->stopped_by_owner.load());
}

TEST(VirtioNetCreate, MacFromConfig) {
  auto net = VirtioNet::create(std::make_unique<FakeBackend>(), "52:54:00:AB:cd:0f");
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_EQ((*net)->mac(), (MacAddress{0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f}));
  auto generated = VirtioNet::create(std::make_unique<FakeBackend>(), "");
  ASSERT_TRUE(generated);
  const MacAddress m = (*generated)->mac();
  EXPECT_EQ(m[0] & 3, 2) << "unicast, locally administered";
  EXPECT_FALSE(VirtioNet::create(nullptr, ""));
  auto bad = VirtioNet::create(std::make_unique<FakeBackend>(), "52:54:00:12:34");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("52:54:00:12:34"), std::string::npos);
}

TEST(MacAddress, ParseFormatAndRefusals) {
  auto m = parse_mac("02:00:5e:10:00:ff");
  ASSERT_TRUE(m);
  EXPECT_EQ(format_mac(*m), "02:00:5e:10:00:ff");
  EXPECT_FALSE(parse_mac(""));
  EXPECT_FALSE(parse_mac("02-00-5e-10-00-ff"));
  EXPECT_FALSE(parse_mac("02:00:5e:10:00:fg"));
  EXPECT_FALSE(parse_mac("02:00:5e:10:00:ff:"));
  EXPECT_FALSE(parse_mac("01:00:5e:00:00:01"));  // multicast
  EXPECT_FALSE(parse_mac("ff:ff:ff:ff:ff:ff"));
  EXPECT_FALSE(parse_mac("00:00:00:00:00:00"));
  for (int i = 0; i < 16; ++i) {
    const MacAddress r = random_mac();
    EXPECT_EQ(r[0] & 3, 2);
    EXPECT_TRUE(parse_mac(format_mac(r)));
  }
  EXPECT_NE(random_mac(), random_mac());
}

// ---- TapBackend ----

TEST(TapBackend, RefusesBadNames) {
  auto r = TapBackend::open("a-name-much-too-long-for-linux");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("too long"), std::string::npos) << r.error().message;
  EXPECT_FALSE(TapBackend::open("tap/0"));
}

// Needs CAP_NET_ADMIN and /dev/net/tun: otherwise checks that the refusal says why.
TEST(TapBackend, CreatesInterfaceSendsAndGoesAway) {
  const std::string name = "vgltst" + std::to_string(::getpid() % 100000);
  auto tap = TapBackend::open(name);
  if (!tap) {
    const std::string& msg = tap.error().message;
    EXPECT_TRUE(msg.find("/dev/net/tun") != std::string::npos || msg.find("permission") != std::string::npos)
        << msg;
    GTEST_SKIP() << "no TAP access here: " << msg;
  }
  EXPECT_EQ((*tap)->ifname(), name);
  EXPECT_NE(if_nametoindex(name.c_str()), 0u);
  auto again = TapBackend::open(name);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("in use"), std::string::npos) << again.error().message;

  (*tap)->start([](std::span<const uint8_t>) {});
  (*tap)->send(Bytes(10, 0));  // not a frame
  EXPECT_EQ((*tap)->stats().tx_dropped, 1u);
  // Bring the interface up so the kernel takes frames, then count what it received.
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  const bool up =
      sock >= 0 && ::ioctl(sock, SIOCGIFFLAGS, &ifr) == 0 &&
      (ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP), ::ioctl(sock, SIOCSIFFLAGS, &ifr) == 0);
  if (sock >= 0) ::close(sock);
  if (up) {
    Bytes frame = make_frame(60, 1);
    frame[12] = 0x88, frame[13] = 0xb5;  // IEEE local experimental EtherType: nobody acts on it
    (*tap)->send(frame);
    EXPECT_EQ((*tap)->stats().tx_frames, 1u);
    std::ifstream rx("/sys/class/net/" + name + "/statistics/rx_packets");
    uint64_t packets = 0;
    rx >> packets;
    EXPECT_GE(packets, 1u);
  }
  tap->reset();
  EXPECT_EQ(if_nametoindex(name.c_str()), 0u);  // not persistent: gone with its fd
}

}  // namespace
}  // namespace vigil::devices
