// Guest-physical and guest-virtual access and Sv39/Sv48 walks over hand-built page tables,
// including the hostile cases: loops, pointers outside RAM, reserved encodings.
#include "introspect/guest_view.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <random>
#include <string>
#include <thread>

#include "fake_guest.h"

namespace vigil::introspect {
namespace {

using testing::FakeGuest;
constexpr uint64_t kBase = FakeGuest::kBase;

TEST(GuestView, PhysicalReadWriteAndBounds) {
  FakeGuest g;
  auto v = g.view();
  const std::array<uint8_t, 4> data{1, 2, 3, 4};
  ASSERT_TRUE(v.write_phys(kBase + 0x1000, data));
  std::array<uint8_t, 4> back{};
  ASSERT_TRUE(v.read_phys(kBase + 0x1000, back));
  EXPECT_EQ(back, data);

  auto below = v.read_phys(kBase - 2, back);
  ASSERT_FALSE(below);
  EXPECT_NE(below.error().message.find("0x7ffffffe"), std::string::npos) << below.error().message;
  auto past_end = v.read_phys(kBase + g.memory().size() - 2, back);  // straddles the end
  ASSERT_FALSE(past_end);
  EXPECT_NE(past_end.error().message.find("outside guest RAM"), std::string::npos);
  EXPECT_FALSE(v.write_phys(~0ull - 1, data));  // wraps around: refused, not written
}

TEST(GuestView, BareMapsOneToOne) {
  FakeGuest g;
  auto t = g.view().translate(0, kBase + 0x1234);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, kBase + 0x1234);
  EXPECT_FALSE(g.view().translate(0, 1ull << 60));
}

class Walk : public ::testing::TestWithParam<uint64_t> {};

TEST_P(Walk, PagesAndSuperpages) {
  FakeGuest g;
  const uint64_t satp = g.new_root(GetParam());
  auto v = g.view();
  // 4 KiB page in the upper (kernel) half.
  const uint64_t kva = GetParam() == sv::kModeSv39 ? 0xffff'ffc0'0000'1000ull : 0xffff'8000'0000'1000ull;
  g.map(satp, kva, kBase + 0x5000, 0);
  auto t = v.translate(satp, kva + 0x10);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->pa, kBase + 0x5010);
  EXPECT_EQ(t->level, 0u);
  EXPECT_EQ(t->page_size, 4096u);

  // 2 MiB megapage and 1 GiB gigapage: the low bits come from the VA.
  g.map(satp, 0x4000'0000, kBase + 0x20'0000, 1);
  t = v.translate(satp, 0x4000'0000 + 0x1f'fff8);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->pa, kBase + 0x20'0000 + 0x1f'fff8);
  EXPECT_EQ(t->page_size, 2u << 20);
  g.map(satp, 0, kBase, 2);  // VA 0 .. 1 GiB
  t = v.translate(satp, 0x123'4567);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->pa, kBase + 0x123'4567);
  EXPECT_EQ(t->level, 2u);

  // Virtual reads and writes cross pages through different mappings.
  g.map(satp, kva + 0x1000, kBase + 0x9000, 0);
  const std::string text = "across a page boundary";
  ASSERT_TRUE(v.write_virt(satp, kva + 0xff8, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  std::string back(text.size(), '\0');
  ASSERT_TRUE(v.read_virt(satp, kva + 0xff8, {reinterpret_cast<uint8_t*>(back.data()), back.size()}));
  EXPECT_EQ(back, text);
  uint8_t b = 0;
  ASSERT_TRUE(v.read_phys(kBase + 0x9000, {&b, 1}));
  EXPECT_EQ(b, static_cast<uint8_t>(text[8]));  // the 9th byte landed on the second page
  auto s = v.read_virt_string(satp, kva + 0xff8, 100);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, text);
}

TEST_P(Walk, HostilePageTables) {
  FakeGuest g;
  const uint64_t satp = g.new_root(GetParam());
  auto v = g.view();
  const uint64_t root = (satp & sv::kSatpPpnMask) << 12;

  // Unmapped.
  auto t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("not mapped"), std::string::npos) << t.error().message;

  // A table whose every entry points back to itself: the walk ends after one step per level.
  for (int i = 0; i < 512; ++i) g.put64(root + i * 8, FakeGuest::pte(root, sv::kPteV));
  t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("level-0 PTE"), std::string::npos) << t.error().message;

  // A pointer outside RAM.
  g.put64(root, FakeGuest::pte(0x1000'0000, sv::kPteV));  // the UART, not RAM
  t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("outside guest RAM"), std::string::npos) << t.error().message;
  g.put64(root, FakeGuest::pte(sv::kPtePpnMask << 12, sv::kPteV));  // the largest PPN
  EXPECT_FALSE(v.translate(satp, 0x1000));

  // Reserved encodings: W without R; reserved high bits; misaligned superpage.
  g.put64(root, FakeGuest::pte(kBase, sv::kPteV | sv::kPteW));
  t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("W without R"), std::string::npos) << t.error().message;
  g.put64(root, FakeGuest::pte(kBase, sv::kPteV | sv::kPteR) | (1ull << 61));
  t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("reserved bits"), std::string::npos) << t.error().message;
  g.put64(root, FakeGuest::pte(kBase + 0x1000, sv::kPteV | sv::kPteR));  // giant page at a 4 KiB boundary
  t = v.translate(satp, 0x1000);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("misaligned"), std::string::npos) << t.error().message;

  // A leaf mapping to somewhere outside RAM translates, but reading it is refused.
  g.put64(root, 0);
  g.map(satp, 0x2000, 0x1000'0000, 0);
  t = v.translate(satp, 0x2000);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, 0x1000'0000u);
  uint8_t buf[8];
  auto r = v.read_virt(satp, 0x2000, buf);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("outside guest RAM"), std::string::npos) << r.error().message;

  // A write straddling into an unmapped page changes nothing.
  g.map(satp, 0x3000, kBase + 0x3000, 0);
  const uint8_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_FALSE(v.write_virt(satp, 0x3ffc, ones));
  EXPECT_EQ(g.get64(kBase + 0x3ff8), 0u);

  // Non-canonical addresses.
  t = v.translate(satp, 0x0000'8000'0000'0000ull);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("canonical"), std::string::npos) << t.error().message;
}

INSTANTIATE_TEST_SUITE_P(Modes, Walk, ::testing::Values(sv::kModeSv39, sv::kModeSv48),
                         [](const auto& info) { return info.param == sv::kModeSv39 ? "Sv39" : "Sv48"; });

// Page tables of random words, rewritten by another thread while we walk them (a guest that
// runs while it is read): every walk ends with a translation or an error, every read stays in
// RAM (ASan checks that in scripts/sanitize.sh), and nothing hangs.
TEST(GuestView, RandomAndChangingPageTablesNeverEscapeRam) {
  FakeGuest g(1 << 20);
  auto v = g.view();
  std::mt19937_64 rng(42);
  const uint64_t pages = g.memory().size() / riscv::kPageSize;
  auto random_pte = [&](std::mt19937_64& r) {
    const uint64_t word = r();
    switch (word % 4) {
      case 0:
        return word;  // anything at all
      case 1:
        return FakeGuest::pte(kBase + (r() % pages) * riscv::kPageSize, sv::kPteV);  // a table in RAM
      case 2:
        return FakeGuest::pte(kBase + (r() % pages) * riscv::kPageSize, sv::kPteV | sv::kPteR);  // leaf
      default:
        return FakeGuest::pte(r() & ((1ull << 56) - 1), sv::kPteV | (r() & 0xe));  // anywhere
    }
  };
  for (uint64_t pa = kBase; pa < kBase + g.memory().size(); pa += 8) g.put64(pa, random_pte(rng));

  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::mt19937_64 r(7);
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t at = kBase + (r() % (g.memory().size() / 8)) * 8;
      __atomic_store_n(reinterpret_cast<uint64_t*>(g.memory().ptr(at)), random_pte(r), __ATOMIC_RELAXED);
    }
  });
  size_t translated = 0, refused = 0;
  uint8_t buf[64];
  for (int i = 0; i < 20000; ++i) {
    const uint64_t mode = (i & 1) ? sv::kModeSv39 : sv::kModeSv48;
    const uint64_t satp = make_satp(mode, kBase + (rng() % pages) * riscv::kPageSize);
    const unsigned va_bits = mode == sv::kModeSv39 ? 39 : 48;
    const uint64_t va =
        static_cast<uint64_t>(static_cast<int64_t>(rng() << (64 - va_bits)) >> (64 - va_bits));
    auto t = v.translate(satp, va);
    (t ? translated : refused)++;
    if (t) {
      EXPECT_TRUE(t->page_size == 4096 || t->page_size == 2u << 20 || t->page_size == 1u << 30 ||
                  t->page_size == 1ull << 39);
      EXPECT_EQ(t->pa & (t->page_size - 1), va & (t->page_size - 1));
    }
    auto r = v.read_virt(satp, va, buf);  // may straddle into another page: both checked
    (void)r;
  }
  stop = true;
  writer.join();
  EXPECT_GT(translated, 0u);
  EXPECT_GT(refused, 0u);
}

TEST(GuestView, ReservedSatpMode) {
  FakeGuest g;
  auto t = g.view().translate(3ull << 60, 0);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("reserved MODE"), std::string::npos);
}

TEST(GuestView, WritesDropDecodedCode) {
  FakeGuest g;
  const uint64_t index = g.memory().page_index(kBase + 0x7000);
  g.memory().mark_code(index);
  const uint32_t gen = g.memory().page_gen(index).load();
  const uint8_t nop[4] = {0x13, 0, 0, 0};
  ASSERT_TRUE(g.view().write_phys(kBase + 0x7000, nop));
  EXPECT_NE(g.memory().page_gen(index).load(), gen);
}

}  // namespace
}  // namespace vigil::introspect
