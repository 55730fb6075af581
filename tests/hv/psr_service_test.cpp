// PsrService: attaching monitoring marks exactly the pages the model samples, accesses to them
// (by harts and by device DMA) reach the domain's RMID, and detach/forget undo everything.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include "hv/psr_service.h"
#include "machine/guest_dma.h"

namespace vigil::hv {
namespace {

constexpr uint64_t kBase = 0x80000000, kSize = 16ull << 20;

struct AlignedRam {
  uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(4096, kSize));
  ~AlignedRam() { std::free(p); }
};

class PsrServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = PsrService::create(psr::Geometry{}, 16);
    ASSERT_TRUE(s) << s.error().message;
    svc = std::move(*s);
  }
  uint64_t first_page(bool sampled) {
    for (uint64_t i = 0; i < kSize / 4096; ++i) {
      if (svc->model().page_sampled(reinterpret_cast<uint64_t>(ram.p) + i * 4096) == sampled) return i;
    }
    ADD_FAILURE() << "no such page";
    return 0;
  }
  AlignedRam ram;
  riscv::GuestMemory mem{ram.p, kBase, kSize};
  std::unique_ptr<PsrService> svc;
};

TEST_F(PsrServiceTest, AttachMarksOnlySampledPages) {
  ASSERT_TRUE(svc->attach(1, mem));
  uint64_t marked = 0;
  for (uint64_t i = 0; i < kSize / 4096; ++i) {
    const bool m = mem.marks(i) & riscv::mark::kPsrSample;
    EXPECT_EQ(m, svc->model().page_sampled(reinterpret_cast<uint64_t>(ram.p) + i * 4096));
    marked += m;
  }
  // Stratified: one page in each aligned group of R; the RAM need not start on a group boundary.
  EXPECT_NEAR(double(marked), double(kSize / 4096 / 16), 1.0);
  EXPECT_FALSE(svc->attach(1, mem));     // twice is refused
  ASSERT_TRUE(svc->detach(1));
  EXPECT_FALSE(mem.any_marks());
  auto again = svc->detach(1);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("no monitoring attached"), std::string::npos);
}

TEST_F(PsrServiceTest, DeviceDmaIsAttributedToTheDomain) {
  ASSERT_TRUE(svc->attach(3, mem));
  machine::GuestDma dma(mem);
  std::vector<uint8_t> buf(4096, 0xab);
  const uint64_t unsampled = kBase + first_page(false) * 4096;
  ASSERT_TRUE(dma.write(unsampled, buf.data(), buf.size()));
  auto s = svc->status(3);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->counters.accesses, 0u);
  const uint64_t sampled = kBase + first_page(true) * 4096;
  ASSERT_TRUE(dma.write(sampled, buf.data(), buf.size()));
  s = svc->status(3);
  EXPECT_GT(s->counters.accesses, 0u);
  EXPECT_GT(s->counters.occupancy_bytes, 0u);
  EXPECT_GT(s->counters.mbm_total_bytes, 0u);
  ASSERT_TRUE(dma.read(sampled, buf.data(), buf.size()));
  EXPECT_GT(svc->status(3)->counters.accesses, s->counters.accesses);
}

TEST_F(PsrServiceTest, SchedulerTakesMissesAndMbmBytesOnce) {
  ASSERT_TRUE(svc->attach(4, mem));
  ASSERT_TRUE(svc->set_thrtl(4, 30));
  machine::GuestDma dma(mem);
  std::vector<uint8_t> buf(4096, 1);
  ASSERT_TRUE(dma.write(kBase + first_page(true) * 4096, buf.data(), buf.size()));
  const MemoryCharge c = svc->take(4);
  EXPECT_EQ(c.misses, 64u * 16);  // 64 lines, all cold, scaled by R = 16
  EXPECT_EQ(c.bytes, svc->status(4)->counters.mbm_total_bytes);
  EXPECT_EQ(c.thrtl, 30u);
  const MemoryCharge again = svc->take(4);
  EXPECT_EQ(again.misses, 0u);
  EXPECT_EQ(again.bytes, 0u);
  EXPECT_EQ(svc->take(99).misses, 0u);  // unknown domain: nothing
}

TEST_F(PsrServiceTest, MasksAndThrottlesAreValidated) {
  EXPECT_TRUE(svc->set_cbm(1, 0xf));
  auto bad = svc->set_cbm(1, 0x5);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("contiguous"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(svc->set_cbm(1, 0));
  EXPECT_EQ(svc->status(1)->cbm, 0xfu);
  auto t = svc->set_thrtl(1, 50);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, 50u);
  auto odd = svc->set_thrtl(1, 57);
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.error().message.find("not a multiple of 10"), std::string::npos) << odd.error().message;
  auto high = svc->set_thrtl(1, 95);
  ASSERT_FALSE(high);
  EXPECT_NE(high.error().message.find("out of range"), std::string::npos) << high.error().message;
  EXPECT_EQ(svc->status(1)->thrtl, 50u);
  EXPECT_TRUE(svc->set_thrtl(1, 0));  // 0: no throttle
}

TEST_F(PsrServiceTest, FeedsFromSeveralThreadsLoseNoAccess) {
  // Two domains' vCPUs on two workers feed the one model at once: every access is counted once.
  AlignedRam ram2;
  riscv::GuestMemory mem2{ram2.p, kBase, kSize};
  ASSERT_TRUE(svc->attach(1, mem));
  ASSERT_TRUE(svc->attach(2, mem2));
  constexpr int kRounds = 20000;
  auto feed = [](riscv::GuestMemory& m, uint64_t page) {
    for (int i = 0; i < kRounds; ++i) m.note_marked_access(kBase + page * 4096 + (i % 64) * 64, 8, riscv::AccessType::kRead);
  };
  std::thread a(feed, std::ref(mem), first_page(true));
  uint64_t p2 = 0;
  while (!svc->model().page_sampled(reinterpret_cast<uint64_t>(ram2.p) + p2 * 4096)) ++p2;
  std::thread b(feed, std::ref(mem2), p2);
  a.join();
  b.join();
  EXPECT_EQ(svc->status(1)->counters.accesses, uint64_t{kRounds} * 16);  // counters are scaled by R
  EXPECT_EQ(svc->status(2)->counters.accesses, uint64_t{kRounds} * 16);
  svc->forget(2);  // before mem2 goes
}

TEST_F(PsrServiceTest, ForgetReleasesRmidAndObserver) {
  ASSERT_TRUE(svc->attach(1, mem));
  ASSERT_TRUE(svc->set_cbm(1, 0x3));
  svc->forget(1);
  EXPECT_EQ(mem.page_observer.load(), nullptr);
  EXPECT_FALSE(mem.any_marks());
  EXPECT_EQ(svc->model().cos_in_use(), 1u);
  EXPECT_EQ(svc->status(1)->rmid, 0u);
}

}  // namespace
}  // namespace vigil::hv
