// Credit scheduler behaviour with fake targets (no guests): parking, waking, pausing,
// pinning and removal. Throughput shares are measured in bench/sched.py, not here.
#include "hv/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace vigil::hv {
namespace {

using namespace std::chrono_literals;
using Step = machine::Machine::StepResult;

// A target whose vCPUs either spin (kRan) or wait (kIdle) as the test says.
class FakeTarget : public SchedTarget {
 public:
  explicit FakeTarget(unsigned vcpus) : m_steps(vcpus), m_idle(vcpus) {
    for (auto& s : m_steps) s = 0;
    for (auto& i : m_idle) i = false;
  }
  Step sched_step(unsigned vcpu, uint64_t, uint64_t& wake_mtime) override {
    ++m_steps[vcpu];
    {
      std::lock_guard lock(m_mutex);
      m_workers.insert(std::this_thread::get_id());
    }
    m_running.fetch_add(1);
    std::this_thread::sleep_for(50us);
    m_running.fetch_sub(1);
    wake_mtime = ~0ull;
    return m_idle[vcpu] ? Step::kIdle : (m_stopped ? Step::kStopped : Step::kRan);
  }
  std::chrono::steady_clock::time_point sched_host_time(uint64_t) override {
    return std::chrono::steady_clock::time_point::max();
  }
  uint64_t steps(unsigned v) const { return m_steps[v].load(); }
  void set_idle(unsigned v, bool idle) { m_idle[v] = idle; }
  int running() const { return m_running.load(); }
  size_t distinct_workers() {
    std::lock_guard lock(m_mutex);
    return m_workers.size();
  }
  std::atomic<bool> m_stopped{false};

 private:
  std::vector<std::atomic<uint64_t>> m_steps;
  std::vector<std::atomic<bool>> m_idle;
  std::atomic<int> m_running{0};
  std::mutex m_mutex;
  std::set<std::thread::id> m_workers;
};

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

TEST(Scheduler, RunsEveryRunnableVcpu) {
  Scheduler s(2);
  FakeTarget t(3);
  s.add_domain(1, &t, 3, {}, {});
  EXPECT_TRUE(eventually([&] { return t.steps(0) > 10 && t.steps(1) > 10 && t.steps(2) > 10; }));
  s.remove_domain(1);
}

TEST(Scheduler, IdleVcpuIsParkedUntilWoken) {
  Scheduler s(1);
  FakeTarget t(1);
  t.set_idle(0, true);
  s.add_domain(1, &t, 1, {}, {});
  ASSERT_TRUE(eventually([&] { return t.steps(0) >= 1; }));
  std::this_thread::sleep_for(100ms);
  const uint64_t parked = t.steps(0);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(t.steps(0), parked) << "a parked vCPU must not be stepped without a wake";
  s.wake(1, 0);
  EXPECT_TRUE(eventually([&] { return t.steps(0) > parked; }));
  s.remove_domain(1);
}

TEST(Scheduler, WakeDuringStepIsNotLost) {
  Scheduler s(1);
  FakeTarget t(1);
  t.set_idle(0, true);
  s.add_domain(1, &t, 1, {}, {});
  // Wake while it may be mid-step, many times: it must always run again afterwards.
  for (int i = 0; i < 50; ++i) {
    const uint64_t before = t.steps(0);
    s.wake(1, 0);
    ASSERT_TRUE(eventually([&] { return t.steps(0) > before; }, 2000ms)) << "iteration " << i;
  }
  s.remove_domain(1);
}

TEST(Scheduler, PauseStopsStepsAndReturnsOnlyWhenNoneRun) {
  Scheduler s(2);
  FakeTarget t(2);
  s.add_domain(7, &t, 2, {}, {});
  ASSERT_TRUE(eventually([&] { return t.steps(0) > 5 && t.steps(1) > 5; }));
  s.pause_domain(7);
  EXPECT_EQ(t.running(), 0);
  const uint64_t a = t.steps(0), b = t.steps(1);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(t.steps(0), a);
  EXPECT_EQ(t.steps(1), b);
  EXPECT_EQ(s.vcpu_info(7)[0].state, "paused");
  s.unpause_domain(7);
  EXPECT_TRUE(eventually([&] { return t.steps(0) > a && t.steps(1) > b; }));
  s.remove_domain(7);
}

TEST(Scheduler, PinnedVcpuRunsOnlyOnItsWorker) {
  Scheduler s(2);
  FakeTarget t(1);
  s.add_domain(1, &t, 1, {}, {{1}});
  ASSERT_TRUE(eventually([&] { return t.steps(0) > 50; }));
  EXPECT_EQ(t.distinct_workers(), 1u);
  const auto info = s.vcpu_info(1);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].affinity, std::vector<unsigned>{1});
  s.remove_domain(1);
}

TEST(Scheduler, CappedDomainIsHeldBackWhileAnotherRuns) {
  // With one worker, a domain capped at 10% gets far fewer steps than an uncapped one.
  Scheduler s(1);
  FakeTarget capped(1), free(1);
  s.add_domain(1, &capped, 1, SchedParams{256, 10}, {});
  s.add_domain(2, &free, 1, SchedParams{256, 0}, {});
  std::this_thread::sleep_for(600ms);
  EXPECT_GT(free.steps(0), 3 * capped.steps(0));
  EXPECT_GT(capped.steps(0), 0u);
  s.remove_domain(1);
  s.remove_domain(2);
}

TEST(Scheduler, StoppedVcpuIsNotSteppedAgain) {
  Scheduler s(1);
  FakeTarget t(1);
  t.m_stopped = true;
  s.add_domain(1, &t, 1, {}, {});
  ASSERT_TRUE(eventually([&] { return t.steps(0) >= 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(t.steps(0), 1u);
  EXPECT_EQ(s.vcpu_info(1)[0].state, "stopped");
  s.remove_domain(1);
}

TEST(Scheduler, RemoveWaitsForRunningVcpus) {
  Scheduler s(2);
  auto t = std::make_unique<FakeTarget>(2);
  s.add_domain(1, t.get(), 2, {}, {});
  ASSERT_TRUE(eventually([&] { return t->steps(0) > 3; }));
  s.remove_domain(1);
  EXPECT_EQ(t->running(), 0);
  t.reset();  // the scheduler must not touch it any more
  std::this_thread::sleep_for(50ms);
}

TEST(Scheduler, ParamsAndUnknownDomains) {
  Scheduler s(1);
  FakeTarget t(1);
  s.add_domain(3, &t, 1, SchedParams{512, 25}, {});
  EXPECT_EQ(s.params(3).weight, 512u);
  EXPECT_EQ(s.params(3).cap, 25u);
  EXPECT_TRUE(s.set_params(3, SchedParams{100, 0}));
  EXPECT_EQ(s.params(3).weight, 100u);
  EXPECT_FALSE(s.set_params(99, SchedParams{}));
  EXPECT_FALSE(s.pin(99, 0, {0}));
  EXPECT_FALSE(s.pin(3, 5, {0}));
  EXPECT_TRUE(s.vcpu_info(99).empty());
  s.wake(99, 0);  // harmless
  s.remove_domain(3);
}

}  // namespace
}  // namespace vigil::hv
