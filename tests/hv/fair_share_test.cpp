// The fair-share solver the credit scheduler pays its vCPUs from (issue 15): weighted
// max-min shares under hard affinity, per-vCPU demand and per-domain caps.
#include "hv/fair_share.h"

#include <gtest/gtest.h>

#include <numeric>

namespace vigil::hv {
namespace {

constexpr uint64_t kW0 = 1, kW1 = 2, kBoth = 3;

double sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

TEST(FairShare, PinnedPairSharesItsWorkerByWeightWhateverTheOtherWorkerDoes) {
  // The three cases: 512 and 256 pinned to worker 0; worker 1 empty, idle, or capped.
  const ShareDemand a{512, kW0}, b{256, kW0};
  for (const auto& extra : std::vector<std::vector<ShareDemand>>{
           {}, {{256, kW1, 0.02}}, {{256, kW1, 1.0, 2}}}) {
    std::vector<ShareDemand> d{a, b};
    d.insert(d.end(), extra.begin(), extra.end());
    const auto s = fair_shares(d, 2, {0, 0, 0.25});
    EXPECT_NEAR(s[0], 2.0 / 3, 1e-9);
    EXPECT_NEAR(s[1], 1.0 / 3, 1e-9);
    if (!extra.empty()) {
      EXPECT_LE(s[2], extra[0].max + 1e-9);
    }
  }
  EXPECT_NEAR(fair_shares({a, b, {256, kW1, 1.0, 2}}, 2, {0, 0, 0.25})[2], 0.25, 1e-9);
}

TEST(FairShare, UnpinnedDomainsShareThePoolByWeight) {
  const auto s = fair_shares({{512}, {512}, {256}, {256}}, 2);
  EXPECT_NEAR(s[0], 2.0 / 3, 1e-9);
  EXPECT_NEAR(s[1], 2.0 / 3, 1e-9);
  EXPECT_NEAR(s[2], 1.0 / 3, 1e-9);
  EXPECT_NEAR(s[3], 1.0 / 3, 1e-9);
}

TEST(FairShare, OverlappingAffinitiesGiveTheFreeVcpuTheOtherWorker) {
  // A and B may use only worker 0; C may use both: A:B = 2:1 on worker 0, C gets worker 1.
  const auto s = fair_shares({{512, kW0}, {256, kW0}, {256, kBoth}}, 2);
  EXPECT_NEAR(s[0], 2.0 / 3, 1e-9);
  EXPECT_NEAR(s[1], 1.0 / 3, 1e-9);
  EXPECT_NEAR(s[2], 1.0, 1e-9);
  // Three affinities meeting on worker 1: A {0}, B {0,1}, C {1}, equal weights: max-min gives
  // everyone 2/3 (B splits its time over both workers).
  const auto t = fair_shares({{256, kW0}, {256, kBoth}, {256, kW1}}, 2);
  for (double x : t) EXPECT_NEAR(x, 2.0 / 3, 1e-9);
  EXPECT_NEAR(sum(t), 2.0, 1e-9);
}

TEST(FairShare, SchedulableOnEverySetOfWorkers) {
  // Four workers, vCPUs crowding two of them: no set of workers is promised more than it has.
  std::vector<ShareDemand> d;
  for (int i = 0; i < 5; ++i) d.push_back({static_cast<double>(100 + 50 * i), 0b0011});
  for (int i = 0; i < 3; ++i) d.push_back({256, 0b1110});
  d.push_back({256, 0});
  const auto s = fair_shares(d, 4);
  for (uint64_t set = 1; set < 16; ++set) {
    double inside = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const uint64_t m = d[i].affinity ? d[i].affinity : 0b1111;
      if ((m & ~set) == 0) inside += s[i];
    }
    EXPECT_LE(inside, std::popcount(set) + 1e-9) << "set " << set;
  }
  // Work conserving: the four workers are fully promised, and the two crowded ones hold
  // the five vCPUs pinned there in proportion to their weights.
  EXPECT_NEAR(sum(s), 4.0, 1e-9);
  EXPECT_NEAR(s[4] / s[0], 300.0 / 100.0, 1e-9);
}

TEST(FairShare, DemandAndCapLeaveTheRestToOthers) {
  // A vCPU that uses a tenth of a worker is owed no more; the other gets the rest.
  auto s = fair_shares({{1024, kW0, 0.1}, {256, kW0}}, 2);
  EXPECT_NEAR(s[0], 0.1, 1e-9);
  EXPECT_NEAR(s[1], 0.9, 1e-9);
  // A domain of two vCPUs capped at half a worker in total.
  s = fair_shares({{256, 0, 1, 0}, {256, 0, 1, 0}, {256, 0, 1, 1}}, 2, {0.5, 0});
  EXPECT_NEAR(s[0] + s[1], 0.5, 1e-9);
  EXPECT_NEAR(s[2], 1.0, 1e-9);
}

TEST(FairShare, DegenerateInputs) {
  EXPECT_TRUE(fair_shares({}, 2).empty());
  EXPECT_EQ(fair_shares({{256}}, 0), std::vector<double>{0.0});
  // Affinity only on workers that do not exist, zero weight, zero demand: no share.
  const auto s = fair_shares({{256, 0b100}, {0}, {256, 0, 0}, {256}}, 2);
  EXPECT_EQ(s[0], 0.0);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_EQ(s[2], 0.0);
  EXPECT_NEAR(s[3], 1.0, 1e-9);
  // Many distinct masks on 64 workers stay bounded in time and schedulable on the pool.
  std::vector<ShareDemand> many;
  for (unsigned i = 0; i < 200; ++i) many.push_back({256, (1ull << (i % 64)) | (1ull << ((i * 7 + 3) % 64))});
  EXPECT_LE(sum(fair_shares(many, 64)), 64.0 + 1e-6);
}

}  // namespace
}  // namespace vigil::hv
