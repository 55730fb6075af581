// The monitor API (Xen's vm_event and mem_access, for Vigil's harts). A Hub sits on one
// domain's harts and guest memory; monitors attach to it, subscribe to events (event.h),
// restrict P2m rights, set breakpoints and single-step vCPUs. Several monitors may attach to
// one domain: each synchronous event goes to every subscriber in attach order, a "deny" from
// any of them wins, and the vCPU continues once all have answered.
//
// Events are raised on the vCPU's own thread and the callback runs there: an in-process
// monitor is a plain C++ callback (a synchronous event costs one indirect call and no
// thread switch). Out-of-process monitors are callbacks that cross a socket (remote.h).
//
//   auto hub = monitor::Hub::for_machine(domain.machine());
//   auto mon = hub->attach("tracer", [](const monitor::Event& e) { ...; return monitor::Response{}; });
//   mon->subscribe({.type = monitor::EventType::kSyscall});
//   mon->set_rights(kernel_text_pa, length, riscv::p2m::kRead | riscv::p2m::kExec);
//
// Rights set by several monitors combine (a page keeps only the rights every monitor
// leaves it); a monitor that detaches gives its pages back. Breakpoints never modify guest
// memory: their pages are decoded with breakpoint slots (riscv/hart.h HartHooks).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "monitor/event.h"
#include "riscv/hart.h"

namespace vigil::machine {
class Machine;
}

namespace vigil::monitor {

class Hub;

using Callback = std::function<Response(const Event&)>;

class Monitor {
 public:
  uint64_t id() const { return m_id; }
  const std::string& name() const { return m_name; }
  bool attached() const { return m_attached.load(std::memory_order_acquire); }

  void subscribe(const Subscription& sub);
  void unsubscribe(EventType type);
  // Only the subscriptions of `type` whose filter starts at `lo` (one of several ranges).
  void unsubscribe(EventType type, uint64_t lo);
  // P2m rights this monitor wants for guest-physical [gpa, gpa+length) (whole pages);
  // p2m::kAll gives the pages back. False if the range is not guest RAM.
  bool set_rights(uint64_t gpa, uint64_t length, uint8_t rights);
  // A breakpoint at a guest-physical address (2-byte aligned, in RAM); `gva` is reported with it.
  bool add_breakpoint(uint64_t gpa, uint64_t gva = 0);
  void remove_breakpoint(uint64_t gpa);
  void set_single_step(uint32_t vcpu, bool on);
  // Drops every subscription, right and breakpoint of this monitor and detaches it.
  void detach();

  // Counters (any thread).
  uint64_t delivered() const { return m_delivered.load(std::memory_order_relaxed); }

 private:
  friend class Hub;
  Monitor(Hub& hub, uint64_t id, std::string name, Callback cb)
      : m_hub(&hub), m_id(id), m_name(std::move(name)), m_callback(std::move(cb)) {}

  Hub* m_hub;
  uint64_t m_id;
  std::string m_name;
  Callback m_callback;
  std::atomic<bool> m_attached{true};
  std::atomic<uint64_t> m_delivered{0};
  // Guarded by the hub's mutex.
  std::vector<Subscription> m_subs;
  std::map<uint64_t, uint8_t> m_rights;        // RAM page index -> rights
  std::map<uint64_t, uint64_t> m_breakpoints;  // gpa -> gva
  std::set<uint32_t> m_single_step;
};

class Hub final : public riscv::HartHooks, public riscv::P2mViolationHandler {
 public:
  // Sits on `harts` and `memory` (installs itself as their hooks and violation handler).
  Hub(riscv::GuestMemory& memory, std::vector<riscv::Hart*> harts);
  static std::unique_ptr<Hub> for_machine(machine::Machine& machine);
  // Detaches every monitor and uninstalls itself. The harts must not be running.
  ~Hub() override;
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  std::shared_ptr<Monitor> attach(std::string name, Callback callback);
  void detach(Monitor& monitor);
  size_t monitor_count();
  riscv::GuestMemory& memory() { return m_mem; }
  unsigned vcpu_count() const { return static_cast<unsigned>(m_harts.size()); }

  // riscv::HartHooks (on the vCPU threads)
  riscv::HookVerdict on_csr_write(riscv::Hart& hart, unsigned csr, uint64_t old_value,
                                  uint64_t& value) override;
  riscv::HookVerdict on_user_ecall(riscv::Hart& hart, uint64_t& value) override;
  void on_return_to_user(riscv::Hart& hart) override;
  void on_trap(riscv::Hart& hart, uint64_t cause, uint64_t tval, bool interrupt) override;
  void on_single_step(riscv::Hart& hart) override;
  void on_guest_request(riscv::Hart& hart) override;
  riscv::HookVerdict on_breakpoint(riscv::Hart& hart, uint64_t gpa) override;
  void breakpoints_in_page(uint64_t page_pa, std::vector<uint16_t>& offsets) override;
  // riscv::P2mViolationHandler
  riscv::P2mVerdict on_p2m_violation(riscv::Hart& hart, uint64_t gpa, uint64_t gva, unsigned size,
                                     riscv::AccessType type, uint64_t& value) override;

 private:
  friend class Monitor;
  // What the vCPU threads read: rebuilt (copy on write) whenever a subscription changes.
  struct Entry {
    std::shared_ptr<Monitor> monitor;
    std::vector<Subscription> subs;
    std::set<uint64_t> breakpoints;  // gpa
    std::set<uint32_t> single_step;  // vCPUs
  };
  using Snapshot = std::vector<Entry>;
  struct Combined {
    bool any = false;  // some subscriber saw it
    Action action = Action::kContinue;
    uint64_t value = 0;  // of the deciding deny/emulate
    uint64_t reply = 0;  // the last non-zero value any synchronous answer carried (guest requests)
    bool hold = false;   // some synchronous answer held the vCPU (Response::hold)
  };
  // Pending system calls whose return is watched: (satp, sp, return pc) -> the call.
  struct PendingKey {
    uint64_t satp, sp, pc;
    bool operator==(const PendingKey&) const = default;
  };
  struct PendingHash {
    size_t operator()(const PendingKey& k) const {
      return (k.satp * 0x9e3779b97f4a7c15ull) ^ (k.sp * 31) ^ k.pc;
    }
  };
  static constexpr size_t kMaxPendingSyscalls = 4096;

  std::shared_ptr<const Snapshot> snapshot();
  void rebuild_locked();  // snapshot, watch bits, effective rights
  void apply_rights_locked(uint64_t first, uint64_t count);
  void set_rights_locked(Monitor& m, uint64_t first, uint64_t count, uint8_t rights);
  void remove_monitor_locked(Monitor& m);
  Event base_event(riscv::Hart& hart, EventType type);
  // Delivers `ev` to every matching subscriber; applies responses for synchronous ones.
  Combined dispatch(riscv::Hart& hart, Event& ev, uint64_t match_addr, uint64_t match_number,
                    bool pc_regs_ok);
  void apply(riscv::Hart& hart, const Response& r, bool pc_regs_ok);

  riscv::GuestMemory& m_mem;
  std::vector<riscv::Hart*> m_harts;
  std::atomic<uint64_t> m_seq{0};

  std::mutex m_mutex;  // monitors, their state, the snapshot pointer
  std::vector<std::shared_ptr<Monitor>> m_monitors;
  std::shared_ptr<const Snapshot> m_snapshot;
  uint64_t m_next_id = 1;
  std::map<uint64_t, uint64_t> m_bp_count_per_page;        // RAM page index -> breakpoints on it
  std::map<uint64_t, std::vector<uint16_t>> m_bp_offsets;  // RAM page index -> offsets (rebuild)
  std::mutex m_read_mutex;  // m_snapshot and m_bp_offsets as the vCPU threads read them

  std::mutex m_pending_mutex;
  std::unordered_map<PendingKey, Event, PendingHash> m_pending;
  std::atomic<size_t> m_pending_count{0};
};

}  // namespace vigil::monitor
