// A credit scheduler after Xen's (docs: "Credit Scheduler", xen/common/sched/credit.c for
// the idea): the vCPUs of all domains share a pool of host worker threads. Every accounting
// period each active vCPU earns credit: its weighted max-min fair share of the workers it
// may run on (hv/fair_share.h), so weights hold among the vCPUs that compete for the same
// workers whatever runs elsewhere; a worker always runs the runnable vCPU with the most
// credit and charges it the host time it used. A cap limits
// a domain to a percentage of one worker per period. A vCPU waiting for an interrupt is
// parked and costs nothing until it is woken or its timer is due.
#pragma once

#include <atomic>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "machine/machine.h"

namespace vigil::hv {

// What the scheduler runs: implemented by Domain.
class SchedTarget {
 public:
  virtual ~SchedTarget() = default;
  virtual machine::Machine::StepResult sched_step(unsigned vcpu, uint64_t budget, uint64_t& wake_mtime) = 0;
  virtual std::chrono::steady_clock::time_point sched_host_time(uint64_t mtime) = 0;
};

// Modeled memory traffic of a domain, from the noisy-neighbour cache model (hv/psr_service.h).
// The scheduler takes it after every slice of one of the domain's vCPUs:
//  - CAT's effect: each modeled LLC miss costs the vCPU that ran `miss_cost_ns` of credit on top
//    of the host time it used, so a domain squeezed into few ways (more misses) gets less of
//    the workers whenever it competes for them, as a core stalled on DRAM retires less work.
//  - MBA's effect, a delay as Intel's MBA inserts one before each of a throttled core's memory
//    requests: the part of a slice the vCPU would have spent stalled on memory on the
//    reference machine, f = misses * kMissStallCycles / (accesses * kAccessCycles +
//    misses * kMissStallCycles) of its host time `used`, is stretched by 100 / (100 - T) for a
//    throttle of T%: the domain's vCPUs wait used * f * T / (100 - T) before they run again.
//    A domain that is all memory stall (a pointer chase over more than the cache: f near 1)
//    keeps (100 - T)% of its unthrottled bandwidth and speed whatever the host's speed; one
//    that hits in the cache (f near 0) is hardly delayed; its worker is free for others meanwhile.
//    The delay paces host CPU time, not wall time: on a shared host a worker thread that sleeps
//    half the time gets more of the host CPU while it runs (the host scheduler's sleeper
//    credit), which gave a 50% throttle 63% of the bandwidth. So the wait after a slice of CPU
//    time c and wall time w is f * (c / ((100 - T)% * s) - w), s being the host CPU share the
//    domain's own slices got while it ran unthrottled (a moving average; 1 until it has run
//    unthrottled), so its CPU time per wall second, and its bandwidth, is (100 - T)% of its
//    unthrottled rate. (A share measured on other domains' slices gave 81%: the domains'
//    workers did not get the same share of the host.)
//    (A first version gave the domain (100 - T)% of a fixed modeled peak per period: the effect
//    then depended on how fast the host ran the guest, not on the throttle.)
struct MemoryCharge {
  uint64_t misses = 0;    // modeled misses since the previous take (scaled by the sampling)
  uint64_t bytes = 0;     // modeled memory bytes since the previous take
  unsigned thrtl = 0;     // the domain's MBA throttle now, percent
  uint64_t accesses = 0;  // modeled accesses since the previous take (scaled), misses included
};
// The reference machine behind MBA's delay: a miss stalls a core ~200 cycles (DRAM latency at
// 3 GHz, ~70 ns); an access with the work around it (one load or store in three instructions
// at about one instruction a cycle) takes ~3.
inline constexpr double kMissStallCycles = 200;
inline constexpr double kAccessCycles = 3;
class MemoryMeter {
 public:
  virtual ~MemoryMeter() = default;
  // Any worker thread; must not block for long (one short lock at most).
  virtual MemoryCharge take(uint32_t domid) = 0;
  virtual uint64_t miss_cost_ns() const = 0;
  virtual uint64_t peak_bytes_per_s() const = 0;
};

struct SchedParams {
  unsigned weight = 256;  // relative share, 1..65535
  unsigned cap = 0;       // percent of one worker, 0 = no cap
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kPeriod = std::chrono::milliseconds(30);     // accounting period
  static constexpr auto kTimeslice = std::chrono::milliseconds(2);   // longest uninterrupted run
  static constexpr uint64_t kStepInstructions = 20'000;

  explicit Scheduler(unsigned workers = 0);  // 0: one per host core
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  unsigned workers() const { return static_cast<unsigned>(m_threads.size()); }

  // pins[v]: workers vCPU v may run on (empty or missing = any).
  // paused: added as if pause_domain had been called (a restored domain, issue 11).
  void add_domain(uint32_t domid, SchedTarget* target, unsigned vcpus, SchedParams params,
                  const std::vector<std::vector<unsigned>>& pins, bool paused = false);
  // Returns once none of the domain's vCPUs is running; the target may then be destroyed.
  void remove_domain(uint32_t domid);
  // Returns once none of the domain's vCPUs is running.
  void pause_domain(uint32_t domid);
  // Stops scheduling the domain's vCPUs without waiting for the running ones: safe from one
  // of its own vCPU threads (a debugger's breakpoint); pause_domain then waits for the rest.
  void request_pause(uint32_t domid);
  // A held vCPU is not scheduled even while its domain runs (gdb's "vCont;c:2": only thread
  // 2 runs). Takes effect when the vCPU next leaves its worker.
  void hold_vcpu(uint32_t domid, unsigned vcpu, bool held);
  void unpause_domain(uint32_t domid);
  // A vCPU may have work (interrupt, IPI, HSM start): any thread.
  void wake(uint32_t domid, unsigned vcpu);

  // The cache model's meter (nullptr: none); the meter must outlive its use (unset it first).
  void set_memory_meter(MemoryMeter* meter) { m_meter.store(meter, std::memory_order_release); }

  bool set_params(uint32_t domid, SchedParams params);
  SchedParams params(uint32_t domid);
  bool pin(uint32_t domid, unsigned vcpu, const std::vector<unsigned>& workers);

  struct VcpuInfo {
    unsigned vcpu;
    int worker;         // worker running it now, -1 if none
    std::string state;  // "running", "runnable", "blocked", "paused", "stopped"
    double cpu_seconds;
    std::vector<unsigned> affinity;  // empty = any
    uint64_t translated_blocks = 0;  // blocks of guest code translated to host code so far
    double credit_seconds = 0;       // scheduler credit now (negative: in debt)
    double wake_in_seconds = -1;     // blocked: when its timer wakes it (negative: past; -1 also: no timer)
    bool has_wake = false;           // blocked with a timer armed
  };
  // Memory effects applied to a domain so far (MemoryMeter): credit charged for modeled misses,
  // and how many accounting periods MBA held the domain back.
  struct MemoryEffect {
    double miss_credit_seconds = 0;
    uint64_t mba_held_periods = 0;
  };
  MemoryEffect memory_effect(uint32_t domid);
  std::vector<VcpuInfo> vcpu_info(uint32_t domid);
  double cpu_seconds(uint32_t domid);

 private:
  enum class VcpuState { kRunnable, kRunning, kBlocked, kDone };
  struct Vcpu {
    unsigned index;
    VcpuState state = VcpuState::kRunnable;
    bool woken = false;
    int64_t credit_ns = 0;
    int64_t cpu_ns = 0;
    int64_t period_ns = 0;  // run time since the last refill
    bool slept = false;     // blocked (WFI) at some point since the last refill
    Clock::time_point wake_at = Clock::time_point::max();
    Clock::time_point last_ran{};
    uint64_t pin_mask = 0;  // 0 = any worker
    int worker = -1;
    bool held = false;  // a debugger keeps it stopped while the domain's other vCPUs run
  };
  struct Dom {
    uint32_t id;
    SchedTarget* target;
    SchedParams params;
    bool paused = false;
    // Set with `paused`, read without the lock: a running vCPU gives its worker back at the
    // next step instead of at the end of its timeslice.
    std::atomic<bool> leave{false};
    bool removing = false;
    int64_t period_used_ns = 0;
    int64_t cpu_ns = 0;
    unsigned thrtl = 0;            // MBA throttle, from the meter
    Clock::time_point mba_until{};  // MBA: the domain's vCPUs wait until then
    double host_share = 1.0;       // MBA: host CPU / wall time of its unthrottled slices (average)
    bool mba_held = false;         // delayed by MBA in this period
    int64_t miss_credit_ns = 0;    // credit charged for modeled misses, total
    uint64_t mba_held_periods = 0;
    std::vector<Vcpu> vcpus;
  };

  void worker_loop(unsigned worker);
  void refill_if_due(Clock::time_point now);
  bool under_cap(const Dom& d) const;
  Vcpu* pick(unsigned worker, Clock::time_point now, Dom*& dom);
  bool any_running(const Dom& d) const;
  static uint64_t mask_of(const std::vector<unsigned>& workers);

  std::mutex m_mutex;
  std::condition_variable m_cv;       // workers wait for work
  std::condition_variable m_idle_cv;  // pause/remove wait for running vCPUs to stop
  std::map<uint32_t, std::unique_ptr<Dom>> m_doms;
  Clock::time_point m_period_end;
  bool m_shutdown = false;
  std::atomic<MemoryMeter*> m_meter{nullptr};
  std::vector<std::thread> m_threads;
};

}  // namespace vigil::hv
