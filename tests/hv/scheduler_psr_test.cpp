// The cache model's effects through the credit scheduler (hv/scheduler.h MemoryMeter): CAT's
// (modeled misses cost credit, so a domain that misses more gets less of a contended worker)
// and MBA's (a throttled domain is held off once its modeled bytes reach its period budget).
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
    std::this_thread::sleep_for(50us);
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

TEST(SchedulerPsr, MbaThrottleHoldsTheDomainToItsBandwidthBudget) {
  FakeMeter meter;
  Scheduler s(1);
  s.set_memory_meter(&meter);
  BusyTarget a;
  // 1 MB per slice: at full speed (15 slices a period) 15 MB per period, five times the peak.
  meter.per_slice[1] = {0, 1'000'000, 0};
  s.add_domain(1, &a, 1, {}, {});
  const double free = share_over(s, {1}, 600ms)[0];
  EXPECT_GT(free, 0.8) << "unthrottled, the domain has the worker";
  EXPECT_EQ(s.memory_effect(1).mba_held_periods, 0u);

  // Throttle 50: 1.5 MB per period, so about two slices of fifteen.
  {
    std::lock_guard lock(meter.m_mutex);
    meter.per_slice[1] = {0, 1'000'000, 50};
  }
  const double half = share_over(s, {1}, 900ms)[0];
  EXPECT_LT(half, 0.35) << "throttled to 50% of peak bandwidth";
  EXPECT_GT(half, 0.03);
  EXPECT_GT(s.memory_effect(1).mba_held_periods, 10u);

  // Throttle 90: 0.3 MB per period, so one slice (the overrun is paid back) every few periods.
  {
    std::lock_guard lock(meter.m_mutex);
    meter.per_slice[1] = {0, 1'000'000, 90};
  }
  const double tenth = share_over(s, {1}, 900ms)[0];
  EXPECT_LT(tenth, half) << "a harder throttle gives less";
  s.remove_domain(1);
  s.set_memory_meter(nullptr);
}

TEST(SchedulerPsr, ThrottledDomainLeavesTheWorkerToOthers) {
  FakeMeter meter;
  meter.per_slice[1] = {0, 1'000'000, 90};
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
