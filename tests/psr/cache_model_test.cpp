#include "psr/cache_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace vigil::psr {
namespace {

std::unique_ptr<CacheModel> make(Geometry g, uint32_t sampling) {
  auto m = CacheModel::create(g, sampling);
  EXPECT_TRUE(m) << (m ? "" : m.error().message);
  return m ? std::move(*m) : nullptr;
}

TEST(Geometry, DefaultWhenSysfsIsMissing) {
  Geometry g = host_l3_geometry("/nonexistent/index3");
  EXPECT_EQ(g.size_bytes, 8ull << 20);
  EXPECT_EQ(g.ways, 16u);
  EXPECT_EQ(g.line_bytes, 64u);
  EXPECT_EQ(g.sets(), 8192u);
}

TEST(Geometry, ReadsSysfsWithSuffix) {
  auto dir = std::filesystem::temp_directory_path() / ("psr_sysfs_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "size") << "12288K\n";
  std::ofstream(dir / "ways_of_associativity") << "12\n";
  std::ofstream(dir / "coherency_line_size") << "64\n";
  Geometry g = host_l3_geometry(dir.string());
  EXPECT_EQ(g.size_bytes, 12ull << 20);
  EXPECT_EQ(g.ways, 12u);
  EXPECT_EQ(g.sets(), 16384u);
  std::ofstream(dir / "ways_of_associativity") << "garbage\n";
  EXPECT_EQ(host_l3_geometry(dir.string()).ways, 16u);  // unreadable: the default
  std::filesystem::remove_all(dir);
}

TEST(Geometry, RejectsNonsense) {
  EXPECT_FALSE((Geometry{8 << 20, 0, 64}.validate()));
  EXPECT_FALSE((Geometry{8 << 20, 16, 48}.validate()));
  EXPECT_FALSE((Geometry{1000, 16, 64}.validate()));
  EXPECT_FALSE(CacheModel::create(Geometry{}, 3));
  EXPECT_FALSE(CacheModel::create(Geometry{}, 0));
}

TEST(Cbm, IntelRules) {
  EXPECT_TRUE(validate_cbm(0xffff, 16));
  EXPECT_TRUE(validate_cbm(0xf, 16));
  EXPECT_TRUE(validate_cbm(0xf0, 16));
  EXPECT_TRUE(validate_cbm(0x8000, 16));
  auto empty = validate_cbm(0, 16);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
  auto sparse = validate_cbm(0x5, 16);
  ASSERT_FALSE(sparse);
  EXPECT_NE(sparse.error().message.find("not contiguous"), std::string::npos);
  auto wide = validate_cbm(0x1ffff, 16);
  ASSERT_FALSE(wide);
  EXPECT_NE(wide.error().message.find("16-bit"), std::string::npos);
  EXPECT_FALSE(validate_cbm(0xf00f, 16));
}

TEST(Cos, EqualMasksShareAndClassesRunOut) {
  auto m = make(Geometry{}, 1);
  auto a = m->acquire_cos(0xf);
  auto b = m->acquire_cos(0xf);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, 0u);
  EXPECT_EQ(*m->acquire_cos(0xffff), 0u);  // the default mask is COS 0
  EXPECT_EQ(m->cos_in_use(), 2u);
  std::vector<uint32_t> held;
  for (uint32_t i = 0; i < kMaxCos - 2; ++i) {
    auto c = m->acquire_cos(1ull << i);  // 14 more distinct masks: COS 2..15
    ASSERT_TRUE(c) << i;
    held.push_back(*c);
  }
  auto full = m->acquire_cos(0x3);
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message.find("classes of service"), std::string::npos);
  m->release_cos(held[0]);
  EXPECT_TRUE(m->acquire_cos(0x3));
  m->release_cos(*a);
  EXPECT_EQ(m->cos_mask(*a), 0xfu);  // still held by b
  m->release_cos(*b);
  EXPECT_EQ(m->cos_mask(*a), 0u);
  EXPECT_FALSE(m->acquire_cos(0x5));
}

TEST(Rmid, AllocateExhaustFree) {
  auto m = make(Geometry{}, 1);
  std::vector<uint32_t> got;
  for (uint32_t i = 1; i < kMaxRmids; ++i) {
    auto r = m->alloc_rmid();
    ASSERT_TRUE(r);
    EXPECT_NE(*r, 0u);
    got.push_back(*r);
  }
  EXPECT_FALSE(m->alloc_rmid());
  m->free_rmid(got[5]);
  auto again = m->alloc_rmid();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, got[5]);
}

// One 4-way set of 64-byte lines: every count can be worked out by hand.
TEST(Counters, ArithmeticOnOneSet) {
  auto m = make(Geometry{4 * 64, 4, 64}, 1);
  const uint32_t a = *m->alloc_rmid(), b = *m->alloc_rmid();
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(m->access(a, 0, i * 64, 8, /*write=*/true), 1u);
  EXPECT_EQ(m->access(a, 0, 0, 8, false), 0u);  // hit, line 0 becomes most recent
  EXPECT_EQ(m->counters(a).occupancy_bytes, 256u);
  // b fills two lines: evicts a's lines 1 and 2 (least recently used), both dirty.
  EXPECT_EQ(m->access(b, 0, 1000 * 64, 8, false), 1u);
  EXPECT_EQ(m->access(b, 0, 1001 * 64, 8, false), 1u);
  auto ca = m->counters(a), cb = m->counters(b);
  EXPECT_EQ(ca.occupancy_bytes, 128u);
  EXPECT_EQ(cb.occupancy_bytes, 128u);
  EXPECT_EQ(ca.accesses, 5u);
  EXPECT_EQ(ca.misses, 4u);
  EXPECT_EQ(ca.writebacks, 2u);
  EXPECT_EQ(ca.mbm_total_bytes, (4u + 2u) * 64u);
  EXPECT_EQ(cb.mbm_total_bytes, 2u * 64u);
  EXPECT_DOUBLE_EQ(ca.miss_rate(), 0.8);
  auto snap = m->snapshot(1'000'000'000);
  EXPECT_EQ(snap.evictions[b][a], 2u);
  EXPECT_EQ(snap.evictions[a][b], 0u);
  // An access spanning two lines is two modeled accesses.
  EXPECT_EQ(m->access(b, 0, 2000 * 64 + 60, 8, false), 2u);
  // Rates over half a second.
  auto later = m->snapshot(1'500'000'000);
  auto r = rates(snap, later, b);
  EXPECT_DOUBLE_EQ(r.mbm_bytes_per_s, 2 * 64 / 0.5);
  EXPECT_DOUBLE_EQ(r.misses_per_s, 4.0);
  EXPECT_DOUBLE_EQ(r.miss_rate, 1.0);
  EXPECT_DOUBLE_EQ(rates(later, snap, b).mbm_bytes_per_s, 0.0);  // time went backwards
  // Freeing a gives its lines to RMID 0; occupancy is conserved.
  m->free_rmid(a);
  EXPECT_EQ(m->counters(a).occupancy_bytes, 0u);
  EXPECT_EQ(m->counters(0).occupancy_bytes + m->counters(b).occupancy_bytes, 256u);
}

TEST(Counters, InflictedMissesAreReusesOfLinesAnotherDomainEvicted) {
  // a touches 1000 lines; b streams over twice the cache, evicting them all; a comes back to
  // them (inflicted misses) and to 1000 lines nobody evicted (cold misses, not inflicted).
  auto m = make(Geometry{}, 1);
  const uint32_t a = *m->alloc_rmid(), b = *m->alloc_rmid();
  for (uint64_t i = 0; i < 1000; ++i) m->access(a, 0, i * 64, 8, false);
  const uint64_t lines = m->capacity_bytes() / 64;
  for (uint64_t i = 0; i < 2 * lines; ++i) m->access(b, 0, (1ull << 40) + i * 64, 8, false);
  auto s0 = m->snapshot(0);
  EXPECT_EQ(s0.evictions[b][a], 1000u);
  EXPECT_EQ(s0.inflicted[b][a], 0u);  // evicted, not yet missed
  for (uint64_t i = 0; i < 1000; ++i) m->access(a, 0, i * 64, 8, false);
  for (uint64_t i = 0; i < 1000; ++i) m->access(a, 0, (1ull << 36) + i * 64, 8, false);
  auto s1 = m->snapshot(0);
  // The ghost table is direct-mapped: a few of the 1000 entries may have collided.
  EXPECT_GE(s1.inflicted[b][a], 950u);
  EXPECT_LE(s1.inflicted[b][a], 1000u);
  EXPECT_EQ(s1.rmid[a].misses, 3000u);
  EXPECT_EQ(s1.inflicted[a][b], 0u);  // b never came back to the lines a evicted
}

TEST(Cat, NarrowedMaskDropsTheDomainsLinesOutsideIt) {
  auto m = make(Geometry{}, 1);
  const uint32_t a = *m->alloc_rmid();
  for (uint64_t i = 0; i < 200'000; ++i) m->access(a, 0, i * 64, 8, /*write=*/(i & 1) != 0);
  const auto before = m->counters(a);
  EXPECT_GT(before.occupancy_bytes, m->capacity_bytes() * 9 / 10);
  const uint64_t dropped = m->drop_outside(a, 0xf);
  const auto after = m->counters(a);
  EXPECT_LE(after.occupancy_bytes, m->capacity_bytes() / 4);
  EXPECT_EQ(after.occupancy_bytes + dropped * 64, before.occupancy_bytes);
  EXPECT_GT(after.writebacks, before.writebacks);  // dirty lines written back
  EXPECT_EQ(after.mbm_total_bytes - before.mbm_total_bytes, (after.writebacks - before.writebacks) * 64);
}

TEST(Cat, FillsStayInTheMask) {
  auto m = make(Geometry{}, 1);
  const uint32_t a = *m->alloc_rmid(), b = *m->alloc_rmid();
  const uint32_t quarter = *m->acquire_cos(0xf);  // 4 of 16 ways
  std::mt19937_64 rng(1);
  for (int i = 0; i < 400'000; ++i) {
    m->access(a, quarter, (rng() % (64ull << 20)) & ~63ull, 8, false);  // 64 MiB random
    m->access(b, 0, (1ull << 40) + (uint64_t(i) % 32768) * 64, 8, false);  // 2 MiB loop
  }
  const uint64_t cap = m->capacity_bytes();
  EXPECT_LE(m->counters(a).occupancy_bytes, cap / 4);
  EXPECT_GT(m->counters(a).occupancy_bytes, cap / 5);
  // b's 2 MiB fits in the other 12 ways: after warm-up it no longer misses.
  auto before = m->counters(b);
  for (int i = 0; i < 65536; ++i) {
    m->access(a, quarter, (rng() % (64ull << 20)) & ~63ull, 8, false);
    m->access(b, 0, (1ull << 40) + (uint64_t(i) % 32768) * 64, 8, false);
  }
  // (A few hashed sets hold more than 12 of b's lines: allow 1% of b's 65536 accesses.)
  EXPECT_LE(m->counters(b).misses - before.misses, 655u);
  EXPECT_GT(before.misses, 32768u);  // b did miss while warming up
}

// The sampled model against the full one on the same synthetic streams: a thrasher (random
// over 64 MiB, 3 accesses in 4) and a quiet loop (over 3 MiB), both with some writes.
struct Stream {
  uint64_t thrash_bytes, loop_bytes;
  uint32_t seed;
};

void run_stream(CacheModel& m, uint32_t a, uint32_t b, const Stream& s, int n) {
  std::mt19937_64 rng(s.seed);
  uint64_t loop_pos = 0;
  for (int i = 0; i < n; ++i) {
    if (i % 4 != 3) {
      uint64_t addr = (rng() % s.thrash_bytes) & ~7ull;
      m.access(a, 0, addr, 8, (i & 7) == 0);
    } else {
      m.access(b, 0, (1ull << 40) + loop_pos, 8, (i & 15) == 3);
      loop_pos = (loop_pos + 64) % s.loop_bytes;
    }
  }
}

class SampledVsFull : public testing::TestWithParam<uint32_t> {};

TEST_P(SampledVsFull, OccupancyWithin5PercentOfCacheMissesWithin10Percent) {
  const uint32_t ratio = GetParam();
  for (Stream s : {Stream{64ull << 20, 3ull << 20, 7}, Stream{32ull << 20, 6ull << 20, 11},
                   Stream{16ull << 20, 1ull << 20, 13}}) {
    auto full = make(Geometry{}, 1);
    auto sampled = make(Geometry{}, ratio);
    const uint32_t fa = *full->alloc_rmid(), fb = *full->alloc_rmid();
    const uint32_t sa = *sampled->alloc_rmid(), sb = *sampled->alloc_rmid();
    const int n = 3'000'000;
    run_stream(*full, fa, fb, s, n);
    run_stream(*sampled, sa, sb, s, n);
    const double cap = double(full->capacity_bytes());
    for (auto [f, p] : {std::pair{fa, sa}, std::pair{fb, sb}}) {
      auto cf = full->counters(f), cs = sampled->counters(p);
      SCOPED_TRACE(testing::Message() << "R=" << ratio << " thrash=" << s.thrash_bytes << " loop="
                                      << s.loop_bytes << " rmid=" << f);
      EXPECT_LE(std::abs(double(cf.occupancy_bytes) - double(cs.occupancy_bytes)), 0.05 * cap)
          << cf.occupancy_bytes << " vs " << cs.occupancy_bytes;
      EXPECT_LE(std::abs(double(cf.misses) - double(cs.misses)), 0.10 * double(cf.misses))
          << cf.misses << " vs " << cs.misses;
      EXPECT_LE(std::abs(double(cf.mbm_total_bytes) - double(cs.mbm_total_bytes)),
                0.10 * double(cf.mbm_total_bytes));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ratios, SampledVsFull, testing::Values(8u, 16u, 32u));

TEST(Sampling, UnsampledPagesAreIgnoredAndAboutOneInR) {
  auto m = make(Geometry{}, 16);
  const uint32_t a = *m->alloc_rmid();
  int sampled = 0;
  for (uint64_t p = 0; p < 16384; ++p) {
    const uint64_t addr = p * kPageBytes;
    if (m->page_sampled(addr)) {
      ++sampled;
      continue;
    }
    EXPECT_EQ(m->access(a, 0, addr, 8, false), 0u);
  }
  EXPECT_EQ(m->counters(a).accesses, 0u);
  EXPECT_EQ(sampled, 16384 / 16);  // stratified: exactly one per group
}

}  // namespace
}  // namespace vigil::psr
