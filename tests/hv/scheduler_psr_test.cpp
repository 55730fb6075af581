// The cache model's effects through the credit scheduler (hv/scheduler.h MemoryMeter): CAT's
// (modeled misses cost credit, so a domain that misses more gets less of a contended worker)
// and MBA's (a throttled domain waits after each slice in proportion to its memory-stall share).
// Fake targets and a fake meter, as in scheduler_test.cpp: shares are of worker time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "hv/scheduler.h"

namespace vigil::hv {
namespace {

using namespace std::chrono_literals;
using Step = machine::Machine::StepResult;

class BusyTarget : public SchedTarget {
 public:
  Step sched_step(unsigned, uint64_t, uint64_t&) override {
    // Busy for 50 us of host CPU (MBA paces CPU time: a sleeping target would use none).
    const auto until = std::chrono::steady_clock::now() + 50us;
    while (std::chrono::steady_clock::now() < until) {
    }
    return Step::kRan;
  }
  std::chrono::steady_clock::time_point sched_host_time(uint64_t) override {
    return std::chrono::steady_clock::time_point::max();
  }
};

// Reports a fixed charge per slice for each domain, and counts the takes.
class FakeMeter : public MemoryMeter {
 public:
  MemoryCharge take(uint32_t domid) override {
    std::lock_guard lock(m_mutex);
    ++takes[domid];
    return per_slice[domid];
  }
  uint64_t miss_cost_ns() const override { return 100; }
  uint64_t peak_bytes_per_s() const override { return 100'000'000; }  // 3 MB per 30 ms period
  std::mutex m_mutex;
  std::map<uint32_t, MemoryCharge> per_slice;
  std::map<uint32_t, uint64_t> takes;
};

std::vector<double> share_over(Scheduler& s, const std::vector<uint32_t>& doms, std::chrono::milliseconds window) {
  std::this_thread::sleep_for(300ms);
  std::vector<double> before;
  for (uint32_t d : doms) before.push_back(s.cpu_seconds(d));
  std::this_thread::sleep_for(window);
  std::vector<double> out;
  for (size_t i = 0; i < doms.size(); ++i) {
    out.push_back((s.cpu_seconds(doms[i]) - before[i]) / std::chrono::duration<double>(window).count());
  }
  return out;
}

TEST(SchedulerPsr, MissesCostCreditSoTheMissingDomainGetsLessOfAContendedWorker) {
  FakeMeter meter;
  // A slice is about 2 ms; 20000 misses at 100 ns charge another 2 ms: domain 1 pays double.
  meter.per_slice[1] = {20000, 0, 0};
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a, b;
  s.add_domain(1, &a, 1, {}, {});
  s.add_domain(2, &b, 1, {}, {});
  const auto t = share_over(s, {1, 2}, 1500ms);
  EXPECT_GT(t[1] / t[0], 1.5) << "missing " << t[0] << ", clean " << t[1];
  EXPECT_LT(t[1] / t[0], 3.0) << "missing " << t[0] << ", clean " << t[1];
  EXPECT_GT(s.memory_effect(1).miss_credit_seconds, 0.1);
  EXPECT_EQ(s.memory_effect(2).miss_credit_seconds, 0.0);
  s.remove_domain(1);
  s.remove_domain(2);
  s.set_memory_meter(nullptr);
}

TEST(SchedulerPsr, MissesCostNothingWhenTheWorkerIsNotContended) {
  // CAT's cost is credit: alone on a worker, a domain still gets all of it.
  FakeMeter meter;
  meter.per_slice[1] = {20000, 0, 0};
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a;
  s.add_domain(1, &a, 1, {}, {});
  EXPECT_GT(share_over(s, {1}, 600ms)[0], 0.8);
  s.remove_domain(1);
  s.set_memory_meter(nullptr);
}

TEST(SchedulerPsr, MbaThrottleKeepsThatShareOfAMemoryBoundDomain) {
  FakeMeter meter;
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a;
  // Every access a miss: all memory stall (f = 200 / 203).
  meter.per_slice[1] = {1000, 64'000, 0, 1000};
  s.add_domain(1, &a, 1, {}, {});
  const double free = share_over(s, {1}, 600ms)[0];
  EXPECT_GT(free, 0.8) << "unthrottled, the domain has the worker";
  EXPECT_EQ(s.memory_effect(1).mba_held_periods, 0u);
  {
    std::lock_guard lock(meter.m_mutex);
    meter.per_slice[1] = {1000, 64'000, 50, 1000};
  }
  // MBA paces host CPU time; this measures wall time in slices, which is the same only on an
  // idle host (a sleeping worker gets more of a loaded host while it runs), so the bounds are
  // wide here; tests/e2e/test_psr.py measures the modeled bandwidth itself.
  const double half = share_over(s, {1}, 900ms)[0];
  EXPECT_GT(half / free, 0.05) << free << " -> " << half;
  EXPECT_LT(half / free, 0.65) << free << " -> " << half;
  EXPECT_GT(s.memory_effect(1).mba_held_periods, 10u);
  {
    std::lock_guard lock(meter.m_mutex);
    meter.per_slice[1] = {1000, 64'000, 90, 1000};
  }
  const double tenth = share_over(s, {1}, 900ms)[0];
  EXPECT_LT(tenth, half) << free << " -> " << half << " -> " << tenth;
  s.remove_domain(1);
  s.set_memory_meter(nullptr);
}

TEST(SchedulerPsr, MbaHardlyDelaysADomainThatHitsInTheCache) {
  FakeMeter meter;
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a;
  // A domain whose accesses all hit has no memory stall: a 90% throttle does not delay it.
  meter.per_slice[1] = {0, 0, 90, 1000};
  s.add_domain(1, &a, 1, {}, {});
  EXPECT_GT(share_over(s, {1}, 600ms)[0], 0.8);
  EXPECT_EQ(s.memory_effect(1).mba_held_periods, 0u);
  s.remove_domain(1);
  s.set_memory_meter(nullptr);
}

TEST(SchedulerPsr, ThrottledDomainLeavesTheWorkerToOthers) {
  FakeMeter meter;
  meter.per_slice[1] = {1000, 64'000, 90, 1000};
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a, b;
  s.add_domain(1, &a, 1, {}, {});
  s.add_domain(2, &b, 1, {}, {});
  const auto t = share_over(s, {1, 2}, 1200ms);
  EXPECT_GT(t[1], 3 * t[0]) << "throttled " << t[0] << ", other " << t[1];
  s.remove_domain(1);
  s.remove_domain(2);
  s.set_memory_meter(nullptr);
}

}  // namespace
}  // namespace vigil::hv
