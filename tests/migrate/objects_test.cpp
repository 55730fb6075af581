// Per-object save/restore (src/migrate/objects.h): each object's state survives a round trip
// into a fresh object, and a hostile payload is refused with a sentence naming the record.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "devices/plic.h"
#include "devices/uart16550.h"
#include "devices/virtio_mmio.h"
#include "devices/virtio_rng.h"
#include "migrate/objects.h"
#include "migrate/snapshot.h"

namespace vigil::migrate {
namespace {

// The single record of a stream holding only `w`'s records, and the stream to keep it alive.
struct OneRecord {
  std::vector<uint8_t> stream;
  Record rec;
};
OneRecord only_record(StreamWriter& w) {
  OneRecord o;
  o.stream = w.finish();
  auto recs = parse_stream(o.stream);
  EXPECT_TRUE(recs.has_value()) << recs.error().message;
  EXPECT_EQ(recs->size(), 1u);
  o.rec = recs->front();
  return o;
}
// A copy of `r` with its payload replaced (no checksum involved: restore_* take records).
struct Edited {
  std::vector<uint8_t> payload;
  Record rec;
};
Edited with_payload(const Record& r, std::vector<uint8_t> payload) {
  Edited e{std::move(payload), r};
  e.rec.payload = e.payload;
  return e;
}

class NullPlatform final : public riscv::Platform {
 public:
  bool mmio_read(riscv::Hart&, uint64_t, unsigned, uint64_t&) override { return false; }
  bool mmio_write(riscv::Hart&, uint64_t, unsigned, uint64_t) override { return false; }
  uint64_t mtime() override { return 0; }
  bool sbi_ecall(riscv::Hart&) override { return false; }
  void unhandled_machine_trap(riscv::Hart&, uint64_t, uint64_t) override {}
};

constexpr uint64_t kRamBase = 0x80000000;

class HartSnapshotTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> m_ram = std::vector<uint8_t>(1 << 20);
  riscv::GuestMemory m_mem{m_ram.data(), kRamBase, m_ram.size()};
  NullPlatform m_platform;
};

TEST_F(HartSnapshotTest, RoundTripKeepsEveryRegisterAndCsr) {
  riscv::Hart a(1, m_mem, m_platform), b(1, m_mem, m_platform);
  a.enter_supervisor_as_firmware(kRamBase + 0x1000, 7, 8);
  for (unsigned i = 1; i < 32; ++i) a.x[i] = 0x1000 + i;
  for (unsigned i = 0; i < 32; ++i) a.fp.f[i] = 0xffffffff00000000ull | i;
  a.fp.fcsr = 0x41;
  ASSERT_TRUE(a.csr_write(riscv::csr::kStvec, kRamBase + 0x2000));
  ASSERT_TRUE(a.csr_write(riscv::csr::kSscratch, 0x1234));
  ASSERT_TRUE(a.csr_write(riscv::csr::kSatp, (riscv::satp::kModeSv39 << 60) | 0x80123));
  a.mtimecmp = 999;
  a.stimecmp = 555;
  a.set_mip_bits(1u << riscv::irq::kSti, true);
  a.reservation_addr = kRamBase;  // dropped by restore
  StreamWriter w;
  add_hart(w, a);
  auto one = only_record(w);
  ASSERT_TRUE(restore_hart(one.rec, b)) << "restore failed";
  const riscv::HartSnapshot sa = a.save_state(), sb = b.save_state();
  EXPECT_EQ(std::memcmp(sa.x, sb.x, sizeof sa.x), 0);
  EXPECT_EQ(sb.pc, kRamBase + 0x1000);
  EXPECT_EQ(sb.priv, riscv::Priv::S);
  EXPECT_EQ(sb.stvec, kRamBase + 0x2000);
  EXPECT_EQ(sb.sscratch, 0x1234u);
  EXPECT_EQ(sb.satp, sa.satp);
  EXPECT_EQ(sb.mstatus, sa.mstatus);
  EXPECT_EQ(sb.medeleg, sa.medeleg);
  EXPECT_EQ(sb.mip, sa.mip);
  EXPECT_EQ(sb.mtimecmp, 999u);
  EXPECT_EQ(sb.stimecmp, 555u);
  EXPECT_EQ(sb.fp.fcsr, 0x41u);
  EXPECT_EQ(std::memcmp(sa.fp.f, sb.fp.f, sizeof sa.fp.f), 0);
  EXPECT_EQ(sb.pmp[0].cfg, sa.pmp[0].cfg);
  EXPECT_TRUE(sb.builtin_sbi);
  EXPECT_EQ(b.reservation_addr, ~0ull);
}

TEST_F(HartSnapshotTest, HostilePayloadsAreRefusedNamingTheRecord) {
  riscv::Hart a(0, m_mem, m_platform), b(0, m_mem, m_platform);
  StreamWriter w;
  add_hart(w, a);
  auto one = only_record(w);
  const std::vector<uint8_t> good(one.rec.payload.begin(), one.rec.payload.end());

  auto bad_priv = good;
  ASSERT_GT(bad_priv.size(), 1u);
  bad_priv.at(bad_priv.size() - 1) = 2;  // privilege is the last byte
  auto e = with_payload(one.rec, bad_priv);
  auto r = restore_hart(e.rec, b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("HART(0)"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("privilege 2"), std::string::npos) << r.error().message;

  auto shorter = good;
  shorter.resize(good.size() - 3);
  e = with_payload(one.rec, shorter);
  r = restore_hart(e.rec, b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;

  auto longer = good;
  longer.push_back(0);
  e = with_payload(one.rec, longer);
  EXPECT_FALSE(restore_hart(e.rec, b));

  // satp mode 5 does not exist: satp follows x, pc, f, fcsr and 16 CSRs.
  auto bad_satp = good;
  const size_t satp_at = 32 * 8 + 8 + 32 * 8 + 4 + 16 * 8;
  const uint64_t satp = 5ull << 60;
  std::memcpy(bad_satp.data() + satp_at, &satp, 8);
  e = with_payload(one.rec, bad_satp);
  r = restore_hart(e.rec, b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("satp mode 5"), std::string::npos) << r.error().message;

  // A record for hart 0 does not go into hart 1.
  riscv::Hart other(1, m_mem, m_platform);
  EXPECT_FALSE(restore_hart(one.rec, other));
}

TEST(PlicSnapshot, RoundTripAndHostileSizes) {
  devices::Plic a(96, 2, nullptr), b(96, 2, nullptr);
  ASSERT_TRUE(a.write(4 * 10, 4, 5));                  // priority of source 10
  ASSERT_TRUE(a.write(0x2000 + 0x80 * 1, 4, 1u << 10));  // context 1 enables source 10
  ASSERT_TRUE(a.write(0x200000 + 0x1000 * 1, 4, 2));   // threshold of context 1
  a.line(10)->set_level(true);
  StreamWriter w;
  add_plic(w, a);
  auto one = only_record(w);
  ASSERT_TRUE(restore_plic(one.rec, b));
  uint64_t claim = 0;
  ASSERT_TRUE(b.read(0x200000 + 0x1000 * 1 + 4, 4, claim));
  EXPECT_EQ(claim, 10u);  // pending, enabled, priority above threshold: claimable

  devices::Plic small(32, 1, nullptr);
  auto r = restore_plic(one.rec, small);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("PLIC(0)"), std::string::npos) << r.error().message;

  // A count far beyond the payload is refused before anything is allocated.
  std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff};
  auto e = with_payload(one.rec, huge);
  r = restore_plic(e.rec, b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exceeds the payload"), std::string::npos) << r.error().message;
}

TEST(UartSnapshot, RoundTripKeepsRegistersAndFifo) {
  devices::Uart16550 a(nullptr, nullptr), b(nullptr, nullptr);
  ASSERT_TRUE(a.write(3, 1, 0x03));  // LCR 8N1
  ASSERT_TRUE(a.write(1, 1, 0x01));  // IER: rx data
  ASSERT_TRUE(a.write(7, 1, 0x5a));  // scratch
  const uint8_t in[] = {'h', 'i'};
  ASSERT_EQ(a.push_input(in, 2), 2u);
  StreamWriter w;
  add_uart(w, a);
  auto one = only_record(w);
  ASSERT_TRUE(restore_uart(one.rec, b));
  uint64_t v = 0;
  ASSERT_TRUE(b.read(7, 1, v));
  EXPECT_EQ(v, 0x5au);
  ASSERT_TRUE(b.read(0, 1, v));
  EXPECT_EQ(v, 'h');
  ASSERT_TRUE(b.read(0, 1, v));
  EXPECT_EQ(v, 'i');

  std::vector<uint8_t> bad(one.rec.payload.begin(), one.rec.payload.end());
  bad[0] = 0xf0;  // IER reserved bits
  auto e = with_payload(one.rec, bad);
  auto r = restore_uart(e.rec, b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("UART(0)"), std::string::npos) << r.error().message;
}

// Guest RAM for DMA: a vector at kRamBase.
class VectorDma final : public devices::DmaMemory {
 public:
  explicit VectorDma(size_t size) : m_mem(size) {}
  bool read(uint64_t gpa, void* dst, uint64_t len) override {
    if (gpa < kRamBase || gpa - kRamBase > m_mem.size() || len > m_mem.size() - (gpa - kRamBase)) return false;
    std::memcpy(dst, m_mem.data() + (gpa - kRamBase), len);
    return true;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) override {
    if (gpa < kRamBase || gpa - kRamBase > m_mem.size() || len > m_mem.size() - (gpa - kRamBase)) return false;
    std::memcpy(m_mem.data() + (gpa - kRamBase), src, len);
    return true;
  }

 private:
  std::vector<uint8_t> m_mem;
};

// A device that cannot be saved, named as virtio-net is.
class UnsaveableDevice final : public devices::VirtioDevice {
 public:
  std::string_view name() const override { return "virtio-net"; }
  uint32_t device_id() const override { return 1; }
  uint64_t device_features() const override { return 0; }
  bool accept_features(uint64_t) override { return true; }
  uint32_t config_size() const override { return 0; }
  void read_config(uint32_t, std::span<uint8_t>) const override {}
  unsigned queue_count() const override { return 2; }
  uint32_t queue_max_size(unsigned) const override { return 64; }
  void process_queue(unsigned, devices::Virtqueue&) override {}
  void reset() override {}
};

devices::VirtioMmio::State live_rng_state() {
  devices::VirtioMmio::State s;
  s.device_id = 4;
  s.status = devices::kVirtioStatusAcknowledge | devices::kVirtioStatusDriver | devices::kVirtioStatusFeaturesOk |
             devices::kVirtioStatusDriverOk;
  s.driver_features = devices::kVirtioFVersion1;
  s.config_generation = 3;
  devices::VirtioMmio::QueueState q;
  q.vq.enabled = true;
  q.vq.layout = {.size = 16, .desc = kRamBase + 0x1000, .avail = kRamBase + 0x2000, .used = kRamBase + 0x3000};
  q.pending = q.vq.layout;
  q.vq.last_avail = q.vq.used_idx = 65530;  // free-running: wraps
  q.vq.avail_shadow = 4;
  s.queues.push_back(q);
  return s;
}

TEST(VirtioSnapshot, RoundTripThroughTheTransport) {
  VectorDma dma(1 << 20);
  devices::VirtioRng rng_a, rng_b;
  devices::VirtioMmio a(rng_a, dma, nullptr), b(rng_b, dma, nullptr);
  ASSERT_TRUE(a.restore_state(live_rng_state()));
  StreamWriter w;
  ASSERT_TRUE(add_virtio(w, 2, a));
  auto one = only_record(w);
  EXPECT_EQ(one.rec.instance, 2u);
  ASSERT_TRUE(restore_virtio(one.rec, b));
  auto s = b.save_state();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, live_rng_state().status);
  EXPECT_EQ(s->config_generation, 3u);
  ASSERT_EQ(s->queues.size(), 1u);
  EXPECT_TRUE(s->queues[0].vq.enabled);
  EXPECT_EQ(s->queues[0].vq.last_avail, 65530);
  EXPECT_EQ(s->queues[0].vq.avail_shadow, 4);
  uint64_t status = 0;
  ASSERT_TRUE(b.read(0x070, 4, status));
  EXPECT_EQ(status, live_rng_state().status);
}

TEST(VirtioSnapshot, HostileQueuesAreRefused) {
  VectorDma dma(1 << 20);
  devices::VirtioRng rng;
  devices::VirtioMmio dev(rng, dma, nullptr);

  auto outside = live_rng_state();
  outside.queues[0].vq.layout.used = kRamBase + (1 << 20);  // past the end of RAM
  auto r = dev.restore_state(outside);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("queue 0"), std::string::npos) << r.error().message;

  auto ahead = live_rng_state();
  ahead.queues[0].vq.avail_shadow = static_cast<uint16_t>(ahead.queues[0].vq.last_avail + 17);  // size 16
  r = dev.restore_state(ahead);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than the queue size"), std::string::npos) << r.error().message;

  auto in_flight = live_rng_state();
  in_flight.queues[0].vq.used_idx = 1;
  EXPECT_FALSE(dev.restore_state(in_flight));

  auto features = live_rng_state();
  features.driver_features |= 1ull << 40;  // never offered
  EXPECT_FALSE(dev.restore_state(features));

  auto other = live_rng_state();
  other.device_id = 2;  // a disk's record into an entropy source's slot
  EXPECT_FALSE(dev.restore_state(other));

  // The refused restores left the device reset, not half restored.
  auto now = dev.save_state();
  ASSERT_TRUE(now);
  EXPECT_EQ(now->status, 0u);
}

TEST(VirtioSnapshot, UnsaveableDeviceRefusesByName) {
  VectorDma dma(1 << 16);
  UnsaveableDevice net;
  devices::VirtioMmio dev(net, dma, nullptr);
  StreamWriter w;
  auto r = add_virtio(w, 0, dev);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "device virtio-net cannot be saved");
}

class FakeClint final : public devices::ClintTarget {
 public:
  explicit FakeClint(unsigned harts) : cmp(harts, ~0ull), sip(harts, false) {}
  unsigned hart_count() const override { return static_cast<unsigned>(cmp.size()); }
  uint64_t clint_mtime() override { return 0; }
  bool msip(unsigned h) override { return sip[h]; }
  void set_msip(unsigned h, bool level) override { sip[h] = level; }
  uint64_t mtimecmp(unsigned h) override { return cmp[h]; }
  void set_mtimecmp(unsigned h, uint64_t v) override { cmp[h] = v; }
  std::vector<uint64_t> cmp;
  std::vector<bool> sip;
};

TEST(ClintSnapshot, RoundTripAndHartCountMismatch) {
  FakeClint a(2), b(2), c(3);
  a.cmp = {100, 200};
  a.sip = {false, true};
  StreamWriter w;
  add_clint(w, a);
  auto one = only_record(w);
  ASSERT_TRUE(restore_clint(one.rec, b));
  EXPECT_EQ(b.cmp, a.cmp);
  EXPECT_EQ(b.sip, a.sip);
  auto r = restore_clint(one.rec, c);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("saved for 2 harts, the domain has 3"), std::string::npos) << r.error().message;
}

TEST(ConfigCodec, RoundTripAndHostileJson) {
  hv::DomainConfig c;
  c.name = "d1";
  c.memory_mib = 256;
  c.vcpus = 2;
  c.kernel = "/k";
  c.disks.push_back({"/disk.img", false, "xvda"});
  c.cpu_pins = {{0}, {1}};
  auto back = decode_config(encode_config(c));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->name, "d1");
  EXPECT_EQ(back->memory_mib, 256u);
  EXPECT_EQ(back->vcpus, 2u);
  ASSERT_EQ(back->disks.size(), 1u);
  EXPECT_EQ(back->disks[0].path, "/disk.img");
  EXPECT_EQ(back->cpu_pins, c.cpu_pins);
  EXPECT_FALSE(decode_config("not json"));
  EXPECT_FALSE(decode_config("[1,2]"));
  auto r = decode_config(R"({"name": 5})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("\"name\""), std::string::npos) << r.error().message;
  EXPECT_FALSE(back->vtpm) << "no vtpm key: no vTPM";
  c.vtpm = hv::VtpmConfig{.state_dir = "/var/lib/x"};
  auto with = decode_config(encode_config(c));
  ASSERT_TRUE(with && with->vtpm);
  EXPECT_EQ(with->vtpm->state_dir, "/var/lib/x");
  std::string text = encode_config(c);
  text.replace(text.find("\"vtpm\":{"), 8, "\"vtpm\":7,\"x\":{");
  auto bad = decode_config(text);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "config: \"vtpm\" is not an object");
}

}  // namespace
}  // namespace vigil::migrate
