#include "hv/scheduler.h"

#include <time.h>

#include <algorithm>
#include <limits>

#include "base/sandbox.h"
#include "hv/fair_share.h"

namespace vigil::hv {

namespace {

// How far below zero a vCPU's credit may go (in periods): debt from a long step is paid
// back, but a vCPU cannot be starved for longer than this after a host hiccup.
constexpr int64_t kMaxDebtPeriods = 4;

constexpr int64_t ns_of(std::chrono::nanoseconds d) { return d.count(); }
}  // namespace

Scheduler::Scheduler(unsigned workers) {
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, 64u);  // pin masks are 64-bit
  m_period_end = Clock::now() + kPeriod;
  for (unsigned w = 0; w < workers; ++w) m_threads.emplace_back([this, w] { worker_loop(w); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(m_mutex);
    m_shutdown = true;
  }
  m_cv.notify_all();
  for (auto& t : m_threads) t.join();
}

uint64_t Scheduler::mask_of(const std::vector<unsigned>& workers) {
  uint64_t mask = 0;
  for (unsigned w : workers) {
    if (w < 64) mask |= 1ull << w;
  }
  return mask;
}

void Scheduler::add_domain(uint32_t domid, SchedTarget* target, unsigned vcpus, SchedParams params,
                           const std::vector<std::vector<unsigned>>& pins, bool paused) {
  auto d = std::make_unique<Dom>();
  d->id = domid;
  d->paused = paused;
  d->target = target;
  d->params = params;
  for (unsigned v = 0; v < vcpus; ++v) {
    Vcpu vc{.index = v};
    if (v < pins.size()) vc.pin_mask = mask_of(pins[v]);
    d->vcpus.push_back(vc);
  }
  {
    std::lock_guard lock(m_mutex);
    m_doms[domid] = std::move(d);
  }
  m_cv.notify_all();
}

bool Scheduler::any_running(const Dom& d) const {
  return std::any_of(d.vcpus.begin(), d.vcpus.end(), [](const Vcpu& v) { return v.state == VcpuState::kRunning; });
}

void Scheduler::remove_domain(uint32_t domid) {
  std::unique_lock lock(m_mutex);
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return;
  it->second->removing = true;
  m_idle_cv.wait(lock, [&] { return !any_running(*it->second); });
  m_doms.erase(it);
}

void Scheduler::pause_domain(uint32_t domid) {
  std::unique_lock lock(m_mutex);
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return;
  it->second->paused = true;
  it->second->leave.store(true, std::memory_order_relaxed);
  m_idle_cv.wait(lock, [&] { return !any_running(*it->second); });
}

void Scheduler::request_pause(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return;
  it->second->paused = true;
  it->second->leave.store(true, std::memory_order_relaxed);
}

void Scheduler::hold_vcpu(uint32_t domid, unsigned vcpu, bool held) {
  {
    std::lock_guard lock(m_mutex);
    auto it = m_doms.find(domid);
    if (it == m_doms.end() || vcpu >= it->second->vcpus.size()) return;
    it->second->vcpus[vcpu].held = held;
  }
  if (!held) m_cv.notify_all();
}

void Scheduler::unpause_domain(uint32_t domid) {
  {
    std::lock_guard lock(m_mutex);
    auto it = m_doms.find(domid);
    if (it == m_doms.end()) return;
    it->second->paused = false;
    it->second->leave.store(false, std::memory_order_relaxed);
  }
  m_cv.notify_all();
}

void Scheduler::wake(uint32_t domid, unsigned vcpu) {
  bool notify = false;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_doms.find(domid);
    if (it == m_doms.end() || vcpu >= it->second->vcpus.size()) return;
    Vcpu& v = it->second->vcpus[vcpu];
    v.woken = true;
    if (v.state == VcpuState::kBlocked) {
      v.state = VcpuState::kRunnable;
      notify = true;
    }
  }
  if (notify) m_cv.notify_one();
}

bool Scheduler::set_params(uint32_t domid, SchedParams params) {
  std::lock_guard lock(m_mutex);
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return false;
  it->second->params = params;
  return true;
}

SchedParams Scheduler::params(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_doms.find(domid);
  return it == m_doms.end() ? SchedParams{} : it->second->params;
}

bool Scheduler::pin(uint32_t domid, unsigned vcpu, const std::vector<unsigned>& workers) {
  {
    std::lock_guard lock(m_mutex);
    auto it = m_doms.find(domid);
    if (it == m_doms.end() || vcpu >= it->second->vcpus.size()) return false;
    it->second->vcpus[vcpu].pin_mask = mask_of(workers);
  }
  m_cv.notify_all();
  return true;
}

std::vector<Scheduler::VcpuInfo> Scheduler::vcpu_info(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  std::vector<VcpuInfo> out;
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return out;
  const Dom& d = *it->second;
  for (const Vcpu& v : d.vcpus) {
    VcpuInfo info{v.index, v.worker, "", static_cast<double>(v.cpu_ns) / 1e9, {}};
    info.credit_seconds = static_cast<double>(v.credit_ns) / 1e9;
    if (v.state == VcpuState::kBlocked && v.wake_at != Clock::time_point::max()) {
      info.has_wake = true;
      info.wake_in_seconds = std::chrono::duration<double>(v.wake_at - Clock::now()).count();
    }
    switch (v.state) {
      case VcpuState::kRunning: info.state = "running"; break;
      case VcpuState::kRunnable: info.state = d.paused ? "paused" : "runnable"; break;
      case VcpuState::kBlocked: info.state = d.paused ? "paused" : "blocked"; break;
      case VcpuState::kDone: info.state = "stopped"; break;
    }
    for (unsigned w = 0; w < 64; ++w) {
      if ((v.pin_mask >> w) & 1) info.affinity.push_back(w);
    }
    out.push_back(info);
  }
  return out;
}

double Scheduler::cpu_seconds(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_doms.find(domid);
  return it == m_doms.end() ? 0.0 : static_cast<double>(it->second->cpu_ns) / 1e9;
}

// Whether the domain may run in this period: under its cap.
bool Scheduler::under_cap(const Dom& d) const {
  return d.params.cap == 0 || d.period_used_ns < ns_of(kPeriod) * static_cast<int64_t>(d.params.cap) / 100;
}

Scheduler::MemoryEffect Scheduler::memory_effect(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_doms.find(domid);
  if (it == m_doms.end()) return {};
  return {static_cast<double>(it->second->miss_credit_ns) / 1e9, it->second->mba_held_periods};
}

void Scheduler::refill_if_due(Clock::time_point now) {
  if (now < m_period_end) return;
  // Periods stay on a fixed grid: a refill that runs late (the slice in progress ended
  // after the boundary) must not stretch the period and so hand out less credit per time.
  m_period_end += kPeriod;
  if (m_period_end <= now) m_period_end = now + kPeriod;  // far behind (suspended host): restart the grid
  const int64_t period = ns_of(kPeriod);
  // Credit goes to active vCPUs (something to run, or ran last period) of running domains:
  // each earns its weighted max-min fair share of the workers it may use (fair_share.h).
  // A domain's weight is split among its active vCPUs, as Xen's credit1 does.
  std::vector<ShareDemand> demands;
  std::vector<Vcpu*> paid;
  std::vector<double> group_caps;
  for (auto& [id, d] : m_doms) {
    // A capped domain that overran its budget (its last step ran past it) pays the excess
    // back out of the next period, so the cap holds on average.
    const int64_t budget = d->params.cap ? period * static_cast<int64_t>(d->params.cap) / 100 : 0;
    d->period_used_ns = d->params.cap ? std::max<int64_t>(0, d->period_used_ns - budget) : 0;
    if (d->mba_held) ++d->mba_held_periods;
    d->mba_held = false;
    const int group = static_cast<int>(group_caps.size());
    group_caps.push_back(d->params.cap / 100.0);
    auto active = [](const Vcpu& v) {
      return v.state == VcpuState::kRunnable || v.state == VcpuState::kRunning ||
             (v.state == VcpuState::kBlocked && v.period_ns > 0);
    };
    const auto n_active = std::count_if(d->vcpus.begin(), d->vcpus.end(), active);
    for (Vcpu& v : d->vcpus) {
      if (!d->paused && active(v)) {
        // Demand: a vCPU that never waited wants a whole worker; one that slept is owed a
        // little more than it used (so it can grow), and what it leaves goes to the others.
        const double used = static_cast<double>(v.period_ns) / static_cast<double>(period);
        const double want = v.slept ? std::min(1.0, 1.5 * used + 0.05) : 1.0;
        demands.push_back({static_cast<double>(d->params.weight) / static_cast<double>(n_active), v.pin_mask, want, group});
        paid.push_back(&v);
      }
      v.period_ns = 0;
      v.slept = v.state == VcpuState::kBlocked;
    }
  }
  const std::vector<double> shares = fair_shares(demands, workers(), group_caps);
  int64_t top = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < paid.size(); ++i) {
    paid[i]->credit_ns += static_cast<int64_t>(shares[i] * static_cast<double>(period));
    top = std::max(top, paid[i]->credit_ns);
  }
  // Bounded so that no vCPU hoards history, but by shifting every active vCPU by the same
  // amount rather than clamping each: when the host steals time from the workers, income
  // and charges drift apart, and clamping each vCPU at the same ceiling (or floor) would
  // erase exactly the differences the weights make, turning the schedule into round robin.
  const int64_t shift = top > period ? top - period : 0;
  for (Vcpu* v : paid) v->credit_ns = std::max<int64_t>(v->credit_ns - shift, -kMaxDebtPeriods * period);
}

namespace {
// This thread's CPU time (clock_gettime; the sandbox allows it on workers).
int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

Scheduler::Vcpu* Scheduler::pick(unsigned worker, Clock::time_point now, Dom*& dom) {
  Vcpu* best = nullptr;
  for (auto& [id, d] : m_doms) {
    if (d->paused || d->removing || !under_cap(*d) || d->mba_until > now) continue;
    for (Vcpu& v : d->vcpus) {
      if (v.state == VcpuState::kBlocked && v.wake_at <= now) v.state = VcpuState::kRunnable;
      if (v.state != VcpuState::kRunnable || v.held) continue;
      if (v.pin_mask != 0 && !((v.pin_mask >> worker) & 1)) continue;
      if (best == nullptr || v.credit_ns > best->credit_ns ||
          (v.credit_ns == best->credit_ns && v.last_ran < best->last_ran)) {
        best = &v;
        dom = d.get();
      }
    }
  }
  return best;
}

void Scheduler::worker_loop(unsigned worker) {
  sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kVcpuWorker);
  std::unique_lock lock(m_mutex);
  Vcpu* prev = nullptr;  // what this worker ran last, while it is still runnable
  while (!m_shutdown) {
    const auto now = Clock::now();
    refill_if_due(now);
    Dom* d = nullptr;
    Vcpu* v = pick(worker, now, d);
    // The vCPU this worker just ran stays runnable but lost the pick: another worker it may
    // use could be asleep, so wake them all to look (else it waits for their timeout).
    if (prev != nullptr && prev != v) m_cv.notify_all();
    prev = nullptr;
    if (v == nullptr) {
      // Sleep until the next timer of a parked vCPU, the next period (capped domains
      // resume then), or a wake.
      auto until = m_period_end;
      for (auto& [id, dom] : m_doms) {
        for (const Vcpu& vc : dom->vcpus) {
          if (vc.state == VcpuState::kBlocked) until = std::min(until, vc.wake_at);
        }
      }
      bool capped = false;
      for (auto& [id, dom] : m_doms) {
        capped |= !under_cap(*dom);
        if (dom->mba_until > now) until = std::min(until, dom->mba_until);
      }
      if (!capped && until == m_period_end) until = now + std::chrono::milliseconds(100);
      m_cv.wait_until(lock, until);
      continue;
    }
    v->state = VcpuState::kRunning;
    v->worker = static_cast<int>(worker);
    v->woken = false;
    SchedTarget* target = d->target;
    const unsigned index = v->index;
    // How long this vCPU may run: a timeslice, less if its domain's cap is nearly used.
    int64_t limit = ns_of(kTimeslice);
    if (d->params.cap != 0) {
      limit = std::min(limit, ns_of(kPeriod) * static_cast<int64_t>(d->params.cap) / 100 - d->period_used_ns);
    }
    lock.unlock();

    const auto start = Clock::now();
    const int64_t cpu_start = thread_cpu_ns();
    uint64_t wake_mtime = ~0ull;
    machine::Machine::StepResult r;
    do {
      r = target->sched_step(index, kStepInstructions, wake_mtime);
    } while (r == machine::Machine::StepResult::kRan && ns_of(Clock::now() - start) < limit &&
             !d->leave.load(std::memory_order_relaxed));
    const auto end = Clock::now();
    const int64_t used = ns_of(end - start);
    const int64_t cpu_used = thread_cpu_ns() - cpu_start;
    const auto wake_at = r == machine::Machine::StepResult::kIdle && wake_mtime != ~0ull
                             ? target->sched_host_time(wake_mtime)
                             : Clock::time_point::max();
    MemoryCharge charge;
    int64_t miss_ns = 0;
    if (MemoryMeter* meter = m_meter.load(std::memory_order_acquire)) {
      charge = meter->take(d->id);
      miss_ns = static_cast<int64_t>(std::min<uint64_t>(charge.misses, uint64_t{1} << 32) * meter->miss_cost_ns());
    }

    lock.lock();
    // Misses of the domain's other vCPUs since the last take land on this one: fine, credit
    // is shared out per domain anyway.
    v->credit_ns -= used + miss_ns;
    d->miss_credit_ns += miss_ns;
    d->thrtl = charge.thrtl;
    if (charge.thrtl == 0 && used >= 500'000 && r == machine::Machine::StepResult::kRan) {
      // A slice that ran to its end unthrottled: how much of the host CPU the domain gets.
      const double share = std::clamp(static_cast<double>(cpu_used) / static_cast<double>(used), 0.05, 1.0);
      d->host_share += 0.05 * (share - d->host_share);
    }
    if (charge.thrtl != 0 && charge.misses != 0) {
      // MBA's delay (scheduler.h): the slice's memory-stall share f of its CPU time is paced
      // to (100 - T)% of what the domain got of the host unthrottled.
      const double stall = static_cast<double>(charge.misses) * kMissStallCycles;
      const double accesses = static_cast<double>(std::max(charge.accesses, charge.misses));
      const double f = stall / (accesses * kAccessCycles + stall);
      const double keep = (100.0 - std::min(charge.thrtl, 90u)) / 100.0;
      const double wait = f * (static_cast<double>(cpu_used) / (keep * d->host_share) - static_cast<double>(used));
      if (wait > 0) d->mba_until = std::max(d->mba_until, end) + std::chrono::nanoseconds(static_cast<int64_t>(wait));
      d->mba_held = true;
    }
    v->cpu_ns += used;
    v->period_ns += used;
    v->last_ran = end;
    v->worker = -1;
    d->period_used_ns += used;
    d->cpu_ns += used;
    if (r == machine::Machine::StepResult::kStopped) {
      v->state = VcpuState::kDone;
    } else if (r == machine::Machine::StepResult::kIdle && !v->woken) {
      v->state = VcpuState::kBlocked;
      v->slept = true;
      v->wake_at = wake_at;
    } else {
      v->state = VcpuState::kRunnable;
      if (!d->paused && !d->removing) prev = v;
    }
    m_idle_cv.notify_all();
  }
}

}  // namespace vigil::hv
