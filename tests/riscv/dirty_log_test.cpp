// Dirty-page logging (GuestMemory::start_dirty_log, hart.h mark::kDirtyLog): stores through
// the interpreter and through translated code mark exactly the pages they write; loads and
// fetches mark nothing; after a fetch-and-clear the next store to a page that had entered the
// write TLB (or a translated block's inline path) is caught again; with logging off nothing
// is marked.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "cpu_harness.h"
#include "riscv/jit.h"

namespace vigil::riscv {
namespace {

using namespace test;
using namespace test::enc;

constexpr uint64_t kRamBase = 0x80000000, kRamSize = 4ull << 20;
constexpr uint64_t kCodePa = kRamBase;
constexpr uint64_t kDataPa = kRamBase + 0x100000;
constexpr uint64_t kTrapPa = kRamBase + 0x200000;

struct Rig {
  explicit Rig(bool jit) : ram(kRamSize, 0), mem(ram.data(), kRamBase, kRamSize) {
    hart = std::make_unique<Hart>(0, mem, platform);
    hart->jit_enabled = jit;
    hart->reset(kCodePa);
    EXPECT_TRUE(hart->csr_write(csr::kMtvec, kTrapPa));
    poke32(kTrapPa, wfi());
    // Stores t0 into `pages` pages from a1 on, every a2 bytes, reading the page at a3 each
    // time, `iterations` times (hot enough to be translated), then WFI.
    code(kCodePa, {
                      addi(kT2, kA4, 0),       // 0: t2 = iterations
                      addi(kA0, kA1, 0),       // 4
                      addi(kT1, 0, 4),         // 8: four pages per pass
                      sd(kT0, kA0, 8),         // 12
                      ld(kT3, kA3, 0),         // 16
                      add(kA0, kA0, kA2),      // 20
                      addi(kT1, kT1, -1),      // 24
                      bne(kT1, 0, -16),        // 28: back to 12
                      addi(kT2, kT2, -1),      // 32
                      bne(kT2, 0, -32),        // 36: back to 4
                      wfi(),                   // 40
                  });
  }
  void poke32(uint64_t pa, uint32_t v) {
    std::memcpy(mem.ptr(pa), &v, 4);
    mem.note_write(pa, 4);
  }
  void code(uint64_t pa, const std::vector<uint32_t>& insns) {
    for (uint32_t i : insns) {
      poke32(pa, i);
      pa += 4;
    }
  }
  // Runs the store loop from the start over data pages first, first+2, first+4, first+6.
  void run_stores(uint64_t first_page, int iterations) {
    hart->wfi_pending = false;  // woken from the previous run's WFI
    hart->pc = kCodePa;
    hart->x[kA4] = static_cast<uint64_t>(iterations);
    hart->x[kA1] = kDataPa + first_page * kPageSize;
    hart->x[kA2] = 2 * kPageSize;
    hart->x[kA3] = kDataPa + 9 * kPageSize;
    hart->x[kT0] = 0x1234;
    for (int i = 0; i < 100000; ++i) {
      if (hart->run(300) == ExitReason::kWfi) return;
    }
    ADD_FAILURE() << "no WFI reached";
  }
  // Dirty pages since the last call, as data-page numbers (pages below kDataPa as negative).
  std::set<int64_t> fetch_dirty() {
    std::vector<uint64_t> words;
    const uint64_t n = mem.fetch_and_clear_dirty(words);
    std::set<int64_t> out;
    for (uint64_t w = 0; w < words.size(); ++w) {
      for (unsigned b = 0; b < 64; ++b) {
        if (words[w] >> b & 1) out.insert(static_cast<int64_t>(w * 64 + b) - static_cast<int64_t>((kDataPa - kRamBase) >> kPageShift));
      }
    }
    EXPECT_EQ(n, out.size());
    return out;
  }

  std::vector<uint8_t> ram;
  GuestMemory mem;
  FakePlatform platform;
  std::unique_ptr<Hart> hart;
};

const std::set<int64_t> kEven{0, 2, 4, 6}, kOdd{1, 3, 5, 7};

void check_rounds(Rig& r, int iterations) {
  r.mem.start_dirty_log();
  r.run_stores(0, iterations);
  EXPECT_EQ(r.fetch_dirty(), kEven);  // not the code page, not the page only read (9)
  EXPECT_EQ(r.fetch_dirty(), std::set<int64_t>{});
  r.run_stores(1, iterations);
  EXPECT_EQ(r.fetch_dirty(), kOdd);
  // The even pages were dirty and in the write TLB (and the translated block's inline
  // path); after the fetch re-marked them, the next stores are caught again.
  r.run_stores(0, iterations);
  EXPECT_EQ(r.fetch_dirty(), kEven);
  r.mem.stop_dirty_log();
  r.run_stores(0, iterations);
  EXPECT_EQ(r.fetch_dirty(), std::set<int64_t>{});
  for (uint64_t i = 0; i < (kRamSize >> kPageShift); ++i) ASSERT_EQ(r.mem.marks(i), 0) << i;
}

TEST(DirtyLog, InterpreterStoresMarkExactlyTheWrittenPages) {
  Rig r(false);
  check_rounds(r, 3);
}

TEST(DirtyLog, TranslatedStoresMarkExactlyTheWrittenPages) {
  ASSERT_TRUE(JitPool::instance().available()) << JitPool::instance().error();
  Rig r(true);
  r.run_stores(0, 400);  // hot before logging starts: the loop runs as a translated block
  ASSERT_NE(r.hart->jit(), nullptr);
  ASSERT_GE(r.hart->jit()->blocks_translated(), 1u);
  check_rounds(r, 400);
}

TEST(DirtyLog, AtomicsAndHostWritesMark) {
  Rig r(false);
  r.mem.start_dirty_log();
  // amoadd.d to data page 11, then a host-side write (what GuestDma, SBI and A/D updates do).
  r.code(kCodePa + 0x800, {amo_op(amo::kAdd, true, kT3, kA1, kT0), wfi()});
  r.hart->pc = kCodePa + 0x800;
  r.hart->x[kA1] = kDataPa + 11 * kPageSize;
  r.hart->x[kT0] = 1;
  ASSERT_EQ(r.hart->run(10), ExitReason::kWfi);
  r.mem.note_write(kDataPa + 13 * kPageSize - 4, 8);  // straddles pages 12 and 13
  // The code poke above is a host write too (data page -256 is kCodePa).
  EXPECT_EQ(r.fetch_dirty(), (std::set<int64_t>{-256, 11, 12, 13}));
}

TEST(DirtyLog, LoggingOffMarksNothingAndLeavesOtherMarksAlone) {
  Rig r(false);
  r.run_stores(0, 2);
  EXPECT_EQ(r.fetch_dirty(), std::set<int64_t>{});
  const uint64_t i = r.mem.page_index(kDataPa);
  r.mem.set_mark(i, mark::kPsrSample, true);
  r.mem.start_dirty_log();
  EXPECT_EQ(r.mem.marks(i), mark::kPsrSample | mark::kDirtyLog);
  r.mem.stop_dirty_log();
  EXPECT_EQ(r.mem.marks(i), mark::kPsrSample);
  EXPECT_TRUE(r.mem.any_marks());
  r.mem.set_mark(i, mark::kPsrSample, false);
  EXPECT_FALSE(r.mem.any_marks());
}

TEST(DirtyLog, HartsPublishTheEpochTheyActedOn) {
  Rig r(false);
  r.mem.start_dirty_log();
  const uint64_t target = r.mem.code_epoch.load();
  r.run_stores(0, 1);
  EXPECT_GE(r.hart->seen_code_epoch.load(), target);
}

}  // namespace
}  // namespace vigil::riscv
