// Page marks (hart.h mark::): a marked page leaves the TLB fast path, so every access to it
// reaches the page observer; unmarked pages never call it (DESIGN.md "Hooks are part of the core").
#include <vector>

#include "cpu_harness.h"

namespace vigil::riscv {
namespace {

using namespace test;

struct CountingObserver final : PageObserver {
  struct Seen {
    uint64_t pa, len;
    AccessType type;
  };
  std::vector<Seen> seen;
  void on_marked_access(uint64_t pa, uint64_t len, AccessType type) override { seen.push_back({pa, len, type}); }
  size_t count(AccessType t) const {
    size_t n = 0;
    for (const auto& s : seen) n += s.type == t;
    return n;
  }
};

class PageMarkTest : public CpuTest {
 protected:
  PageMarkTest() { mem.page_observer.store(&observer); }
  // Three loads and a store to kData, then a self-loop; runs them one slice each.
  void run_data_program() {
    h().x[kA1] = kData;
    program({enc::ld(kA0, kA1, 0), enc::ld(kA0, kA1, 8), enc::ld(kA0, kA1, 16), enc::sd(kA0, kA1, 24),
             enc::self_loop()});
    step(4);
  }
  CountingObserver observer;
};

TEST_F(PageMarkTest, UnmarkedPagesNeverReachTheObserver) {
  run_data_program();
  run_data_program();
  EXPECT_TRUE(observer.seen.empty());
  EXPECT_FALSE(mem.any_marks());
}

TEST_F(PageMarkTest, EveryAccessToAMarkedPageIsSeen) {
  mem.set_mark(mem.page_index(kData), mark::kPsrSample, true);
  EXPECT_TRUE(mem.any_marks());
  run_data_program();
  run_data_program();  // a second pass would hit the TLB if the page had entered it
  ASSERT_EQ(observer.count(AccessType::kRead), 6u);
  ASSERT_EQ(observer.count(AccessType::kWrite), 2u);
  for (const auto& s : observer.seen) {
    if (s.type == AccessType::kFetch) continue;
    EXPECT_EQ(s.pa & ~kPageMask, kData);
    EXPECT_EQ(s.len, 8u);
  }
  EXPECT_EQ(peek64(kData + 24), peek64(kData + 16));  // the store still happened
}

TEST_F(PageMarkTest, MarkingDropsTranslationsAlreadyCached) {
  run_data_program();  // installs TLB entries for kData
  ASSERT_TRUE(observer.seen.empty());
  mem.set_mark(mem.page_index(kData), mark::kPsrSample, true);
  run_data_program();
  EXPECT_EQ(observer.count(AccessType::kRead), 3u);
  EXPECT_EQ(observer.count(AccessType::kWrite), 1u);
  // Clearing the mark restores the fast path: after one refill the page is silent again.
  mem.set_mark(mem.page_index(kData), mark::kPsrSample, false);
  EXPECT_FALSE(mem.any_marks());
  observer.seen.clear();
  run_data_program();
  EXPECT_TRUE(observer.seen.empty());
}

TEST_F(PageMarkTest, FetchesFromAMarkedCodePageAreSeen) {
  mem.set_mark(mem.page_index(kCode), mark::kPsrSample, true);
  run_data_program();
  EXPECT_GE(observer.count(AccessType::kFetch), 1u);
  EXPECT_EQ(observer.count(AccessType::kRead), 0u);  // kData is not marked
}

TEST_F(PageMarkTest, ReasonsAreIndependentBits) {
  const uint64_t i = mem.page_index(kData);
  mem.set_mark(i, mark::kPsrSample, true);
  mem.set_mark(i, 2, true);
  mem.set_mark(i, mark::kPsrSample, false);
  EXPECT_EQ(mem.marks(i), 2);
  EXPECT_TRUE(mem.any_marks());
  mem.set_mark(i, 2, false);
  EXPECT_FALSE(mem.any_marks());
  mem.set_mark(~0ull, mark::kPsrSample, true);  // out of range: ignored
  EXPECT_FALSE(mem.any_marks());
}

}  // namespace
}  // namespace vigil::riscv
