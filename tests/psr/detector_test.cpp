// The noisy-neighbour detector (psr/detector.h) on a full (unsampled) model fed directly: a
// streaming RMID beside a small loop is named with its victim; two small loops are not; the
// migration candidate appears only when the modeled memory system is saturated.
#include "psr/detector.h"

#include <gtest/gtest.h>

namespace vigil::psr {
namespace {

constexpr Geometry kGeometry{256 << 10, 16, 64};  // 256 KiB, 16 ways

struct Fixture {
  std::unique_ptr<CacheModel> m;
  uint32_t stream = 0, loop = 0;
  Fixture() {
    auto c = CacheModel::create(kGeometry, 1);
    EXPECT_TRUE(c);
    m = std::move(*c);
    stream = *m->alloc_rmid();
    loop = *m->alloc_rmid();
  }
  // One round: `stream_kib` streamed once by `stream`, a 48 KiB loop run once by `loop`.
  void round(uint64_t& cursor, uint64_t stream_kib, uint32_t loop_rmid, uint64_t loop_base = 1ull << 40) {
    for (uint64_t i = 0; i < (stream_kib << 10) / 64; ++i) m->access(stream, 0, (1ull << 32) + (cursor++ % (1 << 20)) * 64, 8, true);
    for (uint64_t a = 0; a < (48 << 10); a += 64) m->access(loop_rmid, 0, loop_base + a, 8, false);
  }
};

TEST(Detector, NamesTheStreamerAndItsVictim) {
  Fixture f;
  uint64_t cursor = 0;
  for (int i = 0; i < 4; ++i) f.round(cursor, 512, f.loop);  // warm
  const Snapshot a = f.m->snapshot(1'000'000'000);
  for (int i = 0; i < 20; ++i) f.round(cursor, 512, f.loop);
  const Snapshot b = f.m->snapshot(2'000'000'000);
  const Verdict v = detect(a, b, {f.stream, f.loop}, 1e12);  // a huge peak: not saturated
  ASSERT_EQ(v.domains.size(), 2u);
  ASSERT_TRUE(v.noisy.has_value());
  EXPECT_EQ(*v.noisy, f.stream);
  EXPECT_GE(v.domains[0].occupancy_share, 0.75);
  EXPECT_GT(v.domains[0].evicted_others_lines, 0u);
  ASSERT_EQ(v.victims.size(), 1u);
  EXPECT_EQ(v.victims[0].rmid, f.loop);
  EXPECT_GE(v.victims[0].evicted_share, 0.99);  // nobody else evicts the loop's lines
  EXPECT_GE(v.victims[0].rise, kMinMissRise);
  EXPECT_NEAR(v.window_s, 1.0, 1e-9);
  EXPECT_FALSE(v.saturated);
  EXPECT_FALSE(v.migrate.has_value());
}

TEST(Detector, QuietNeighboursAreNotFlagged) {
  Fixture f;
  uint64_t cursor = 0;
  // Two 64 KiB loops in a 256 KiB cache: they fit together, nobody evicts anybody.
  auto both = [&] {
    for (uint64_t a = 0; a < (64 << 10); a += 64) f.m->access(f.stream, 0, (1ull << 32) + a, 8, false);
    for (uint64_t a = 0; a < (64 << 10); a += 64) f.m->access(f.loop, 0, (1ull << 40) + a, 8, false);
  };
  for (int i = 0; i < 4; ++i) both();
  const Snapshot a = f.m->snapshot(0);
  for (int i = 0; i < 20; ++i) both();
  const Snapshot b = f.m->snapshot(500'000'000);
  const Verdict v = detect(a, b, {f.stream, f.loop}, 1e12);
  EXPECT_FALSE(v.noisy.has_value());
  (void)cursor;
}

TEST(Detector, MigrationCandidateOnlyWhenSaturated) {
  Fixture f;
  uint64_t cursor = 0;
  for (int i = 0; i < 4; ++i) f.round(cursor, 512, f.loop);
  const Snapshot a = f.m->snapshot(0);
  for (int i = 0; i < 10; ++i) f.round(cursor, 512, f.loop);
  const Snapshot b = f.m->snapshot(1'000'000'000);
  Verdict quiet = detect(a, b, {f.stream, f.loop}, 1e12);
  EXPECT_FALSE(quiet.migrate.has_value());
  // The same traffic against a peak just above it: saturated, and the streamer moves.
  const double total = quiet.total_bandwidth_bytes_per_s;
  ASSERT_GT(total, 0);
  Verdict busy = detect(a, b, {f.stream, f.loop}, total / 0.9);
  EXPECT_TRUE(busy.saturated);
  ASSERT_TRUE(busy.migrate.has_value());
  EXPECT_EQ(*busy.migrate, f.stream);
  EXPECT_GT(busy.domains[0].bandwidth_share, 0.9);
}

TEST(Detector, OneDomainOrUnknownRmidsNameNobody) {
  Fixture f;
  uint64_t cursor = 0;
  const Snapshot a = f.m->snapshot(0);
  for (int i = 0; i < 4; ++i) f.round(cursor, 512, f.loop);
  const Snapshot b = f.m->snapshot(1);
  EXPECT_FALSE(detect(a, b, {f.stream}, 1e12).noisy.has_value());
  EXPECT_EQ(detect(a, b, {0, 999, f.stream}, 1e12).domains.size(), 1u);  // RMID 0 and out of range dropped
  EXPECT_EQ(detect(b, a, {f.stream, f.loop}, 1e12).window_s, 0.0);        // reversed: no time passed
}

}  // namespace
}  // namespace vigil::psr
