// The monitor hub: subscriptions, filters, P2m rights, breakpoints and response handling.
#include "monitor/monitor.h"

#include <algorithm>

#include "machine/machine.h"

namespace vigil::monitor {

namespace {
using riscv::Hart;
using riscv::HookVerdict;
namespace watch = riscv::watch;

constexpr unsigned kSp = 2, kA0 = 10, kA1 = 11, kA6 = 16, kA7 = 17;
// SBI_ERR_NOT_SUPPORTED (SBI spec 3 "Binary encoding"): a guest request nobody listens to.
constexpr int64_t kSbiErrNotSupported = -2;

bool number_matches(const Subscription& s, uint64_t number) {
  const auto& n = s.filter.numbers;
  if (!n.empty()) return std::find(n.begin(), n.end(), number) != n.end();
  if (s.type == EventType::kCsrWrite) {
    return std::find(kDefaultCsrs.begin(), kDefaultCsrs.end(), number) != kDefaultCsrs.end();
  }
  return true;
}

// The bits of Hart::watch a subscription needs.
uint32_t watch_bits(EventType t) {
  switch (t) {
    case EventType::kCsrWrite:
      return watch::kCsrWrite;
    case EventType::kSyscall:
      return watch::kUserEcall;
    case EventType::kSyscallReturn:
      return watch::kUserEcall | watch::kReturnToUser;
    case EventType::kTrap:
      return watch::kTrap;
    case EventType::kGuestRequest:
      return watch::kGuestRequest;
    case EventType::kMemAccess:   // the P2m violation handler
    case EventType::kBreakpoint:  // breakpoint slots in decoded pages
    case EventType::kSingleStep:  // per vCPU, from set_single_step
      return 0;
  }
  return 0;
}
}  // namespace

// ---------------------------------------------------------------------------------------
// Monitor: every change goes through the hub's lock and rebuilds what the vCPUs read.

void Monitor::subscribe(const Subscription& sub) {
  std::lock_guard lock(m_hub->m_mutex);
  if (!attached()) return;
  m_subs.push_back(sub);
  m_hub->rebuild_locked();
}

void Monitor::unsubscribe(EventType type) {
  std::lock_guard lock(m_hub->m_mutex);
  std::erase_if(m_subs, [&](const Subscription& s) { return s.type == type; });
  m_hub->rebuild_locked();
}

void Monitor::unsubscribe(EventType type, uint64_t lo) {
  std::lock_guard lock(m_hub->m_mutex);
  std::erase_if(m_subs, [&](const Subscription& s) { return s.type == type && s.filter.lo == lo; });
  m_hub->rebuild_locked();
}

bool Monitor::set_rights(uint64_t gpa, uint64_t length, uint8_t rights) {
  riscv::GuestMemory& mem = m_hub->m_mem;
  if (length == 0 || !mem.contains(gpa, length)) return false;
  const uint64_t first = mem.page_index(gpa), last = mem.page_index(gpa + length - 1);
  std::lock_guard lock(m_hub->m_mutex);
  if (!attached()) return false;
  m_hub->set_rights_locked(*this, first, last - first + 1, rights);
  return true;
}

bool Monitor::add_breakpoint(uint64_t gpa, uint64_t gva) {
  riscv::GuestMemory& mem = m_hub->m_mem;
  if ((gpa & 1) || !mem.contains(gpa, 2)) return false;
  std::lock_guard lock(m_hub->m_mutex);
  if (!attached() || m_breakpoints.contains(gpa)) return attached();
  m_breakpoints[gpa] = gva;
  const uint64_t page = mem.page_index(gpa);
  {
    std::lock_guard bp(m_hub->m_read_mutex);
    auto& offs = m_hub->m_bp_offsets[page];
    const auto off = static_cast<uint16_t>(gpa & riscv::kPageMask);
    if (std::find(offs.begin(), offs.end(), off) == offs.end()) offs.push_back(off);
  }
  ++m_hub->m_bp_count_per_page[page];
  mem.set_breakpoint_page(page, true);  // also drops decoded copies: they are rebuilt with the slot
  m_hub->rebuild_locked();
  return true;
}

void Monitor::remove_breakpoint(uint64_t gpa) {
  std::lock_guard lock(m_hub->m_mutex);
  if (m_breakpoints.erase(gpa) == 0) return;
  riscv::GuestMemory& mem = m_hub->m_mem;
  const uint64_t page = mem.page_index(gpa);
  const bool still_here = std::any_of(m_hub->m_monitors.begin(), m_hub->m_monitors.end(),
                                      [&](const auto& m) { return m->m_breakpoints.contains(gpa); });
  if (!still_here) {
    std::lock_guard bp(m_hub->m_read_mutex);
    std::erase(m_hub->m_bp_offsets[page], static_cast<uint16_t>(gpa & riscv::kPageMask));
  }
  auto it = m_hub->m_bp_count_per_page.find(page);
  if (it != m_hub->m_bp_count_per_page.end() && --it->second == 0) {
    m_hub->m_bp_count_per_page.erase(it);
    std::lock_guard bp(m_hub->m_read_mutex);
    m_hub->m_bp_offsets.erase(page);
    mem.set_breakpoint_page(page, false);
  } else {
    mem.set_breakpoint_page(page, true);
  }
  m_hub->rebuild_locked();
}

void Monitor::set_single_step(uint32_t vcpu, bool on) {
  std::lock_guard lock(m_hub->m_mutex);
  if (vcpu >= m_hub->m_harts.size()) return;
  if (on && attached())
    m_single_step.insert(vcpu);
  else
    m_single_step.erase(vcpu);
  m_hub->rebuild_locked();
}

void Monitor::detach() {
  m_hub->detach(*this);
}

// ---------------------------------------------------------------------------------------
// Hub

Hub::Hub(riscv::GuestMemory& memory, std::vector<riscv::Hart*> harts)
    : m_mem(memory), m_harts(std::move(harts)), m_snapshot(std::make_shared<const Snapshot>()) {
  for (Hart* h : m_harts) h->hooks = this;
  m_mem.violation_handler = this;
}

std::unique_ptr<Hub> Hub::for_machine(machine::Machine& machine) {
  std::vector<Hart*> harts;
  for (unsigned i = 0; i < machine.hart_count(); ++i) harts.push_back(&machine.hart(i));
  return std::make_unique<Hub>(machine.memory(), std::move(harts));
}

Hub::~Hub() {
  std::vector<std::shared_ptr<Monitor>> all;
  {
    std::lock_guard lock(m_mutex);
    all = m_monitors;
  }
  for (auto& m : all) detach(*m);
  for (Hart* h : m_harts) {
    h->watch.store(0, std::memory_order_release);
    h->hooks = nullptr;
  }
  m_mem.violation_handler = nullptr;
}

std::shared_ptr<Monitor> Hub::attach(std::string name, Callback callback) {
  std::lock_guard lock(m_mutex);
  std::shared_ptr<Monitor> m(new Monitor(*this, m_next_id++, std::move(name), std::move(callback)));
  m_monitors.push_back(m);
  rebuild_locked();
  return m;
}

void Hub::detach(Monitor& monitor) {
  std::lock_guard lock(m_mutex);
  remove_monitor_locked(monitor);
}

size_t Hub::monitor_count() {
  std::lock_guard lock(m_mutex);
  return m_monitors.size();
}

void Hub::remove_monitor_locked(Monitor& m) {
  if (!m.m_attached.exchange(false)) return;
  // Its pages get back what the other monitors leave them; its breakpoints go.
  std::vector<uint64_t> pages;
  for (const auto& [page, r] : m.m_rights) pages.push_back(page);
  m.m_rights.clear();
  for (uint64_t page : pages) apply_rights_locked(page, 1);
  std::vector<uint64_t> bps;
  for (const auto& [gpa, gva] : m.m_breakpoints) bps.push_back(gpa);
  m.m_subs.clear();
  m.m_single_step.clear();
  std::erase_if(m_monitors, [&](const auto& p) { return p.get() == &m; });
  for (uint64_t gpa : bps) {
    const uint64_t page = m_mem.page_index(gpa);
    const bool still_here = std::any_of(m_monitors.begin(), m_monitors.end(),
                                        [&](const auto& o) { return o->m_breakpoints.contains(gpa); });
    if (!still_here) {
      std::lock_guard bp(m_read_mutex);
      std::erase(m_bp_offsets[page], static_cast<uint16_t>(gpa & riscv::kPageMask));
    }
    auto it = m_bp_count_per_page.find(page);
    if (it != m_bp_count_per_page.end() && --it->second == 0) {
      m_bp_count_per_page.erase(it);
      std::lock_guard bp(m_read_mutex);
      m_bp_offsets.erase(page);
      m_mem.set_breakpoint_page(page, false);
    } else {
      m_mem.set_breakpoint_page(page, true);
    }
  }
  m.m_breakpoints.clear();
  rebuild_locked();
}

void Hub::set_rights_locked(Monitor& m, uint64_t first, uint64_t count, uint8_t rights) {
  for (uint64_t p = first; p < first + count; ++p) {
    if ((rights & riscv::p2m::kAll) == riscv::p2m::kAll)
      m.m_rights.erase(p);
    else
      m.m_rights[p] = rights & riscv::p2m::kAll;
  }
  apply_rights_locked(first, count);
}

void Hub::apply_rights_locked(uint64_t first, uint64_t count) {
  // A page keeps the rights every monitor leaves it.
  for (uint64_t p = first; p < first + count; ++p) {
    uint8_t r = riscv::p2m::kAll;
    for (const auto& m : m_monitors) {
      auto it = m->m_rights.find(p);
      if (it != m->m_rights.end()) r &= it->second;
    }
    if (m_mem.rights(p) != r) m_mem.set_rights(p, 1, r);
  }
}

void Hub::rebuild_locked() {
  auto snap = std::make_shared<Snapshot>();
  std::vector<uint32_t> bits(m_harts.size(), 0);
  for (const auto& m : m_monitors) {
    Entry e{m, m->m_subs, {}, m->m_single_step};
    for (const auto& [gpa, gva] : m->m_breakpoints) e.breakpoints.insert(gpa);
    for (const Subscription& s : m->m_subs) {
      for (size_t i = 0; i < bits.size(); ++i) {
        if (!s.filter.vcpu || *s.filter.vcpu == i) bits[i] |= watch_bits(s.type);
      }
    }
    for (uint32_t v : m->m_single_step) bits[v] |= watch::kSingleStep;
    snap->push_back(std::move(e));
  }
  {
    std::lock_guard lock(m_read_mutex);  // orders with breakpoints_in_page readers
    m_snapshot = std::move(snap);
  }
  for (size_t i = 0; i < m_harts.size(); ++i) {
    const uint32_t old = m_harts[i]->watch.exchange(bits[i], std::memory_order_acq_rel);
    // Single-stepping starts at the next slice; wake a hart parked in WFI so it gets one.
    if ((old ^ bits[i]) & watch::kSingleStep) m_harts[i]->kick();
  }
}

std::shared_ptr<const Hub::Snapshot> Hub::snapshot() {
  std::lock_guard lock(m_read_mutex);
  return m_snapshot;
}

Event Hub::base_event(Hart& hart, EventType type) {
  Event ev;
  ev.type = type;
  ev.vcpu = hart.hartid();
  ev.priv = hart.priv;
  ev.pc = hart.pc;
  ev.satp = hart.satp();
  ev.sp = hart.x[kSp];
  ev.sscratch = hart.sscratch();
  return ev;
}

Hub::Combined Hub::dispatch(Hart& hart, Event& ev, uint64_t match_addr, uint64_t match_number,
                            bool pc_regs_ok) {
  Combined c;
  const auto snap = snapshot();
  for (const Entry& e : *snap) {
    if (!e.monitor->attached()) continue;
    if (ev.type == EventType::kBreakpoint && !e.breakpoints.contains(ev.gpa)) continue;
    if (ev.type == EventType::kSingleStep && !e.single_step.contains(ev.vcpu)) continue;
    for (const Subscription& s : e.subs) {
      if (s.type != ev.type) continue;
      const Filter& f = s.filter;
      if (f.vcpu && *f.vcpu != ev.vcpu) continue;
      if (f.satp && *f.satp != ev.satp) continue;
      if (match_addr < f.lo || match_addr > f.hi) continue;
      if (!number_matches(s, match_number)) continue;
      if (s.on_change && ev.type == EventType::kCsrWrite && ev.old_value == ev.new_value) continue;
      ev.sync = s.sync;
      ev.seq = m_seq.fetch_add(1, std::memory_order_relaxed) + 1;
      e.monitor->m_delivered.fetch_add(1, std::memory_order_relaxed);
      Response r = e.monitor->m_callback(ev);
      c.any = true;
      if (s.sync) {
        // "Deny" from any monitor wins; otherwise the first "emulate" gives the value.
        if (r.action == Action::kDeny || (r.action == Action::kEmulate && c.action == Action::kContinue)) {
          c.action = r.action;
          c.value = r.value;
        }
        if (r.value != 0) c.reply = r.value;
        if (r.single_step) e.monitor->set_single_step(ev.vcpu, *r.single_step);
        for (const RightsChange& rc : r.rights) e.monitor->set_rights(rc.gpa, rc.length, rc.rights);
        apply(hart, r, pc_regs_ok);
        if (r.single_step) hart.end_slice();  // run() switches loops at the slice boundary
        if (r.hold) {
          c.hold = true;
          hart.end_slice();
        }
      }
      break;  // one delivery per monitor and event
    }
  }
  return c;
}

void Hub::apply(Hart& hart, const Response& r, bool pc_regs_ok) {
  if (!pc_regs_ok) return;
  for (const RegWrite& w : r.regs) {
    if (w.reg >= 1 && w.reg < 32) hart.x[w.reg] = w.value;
  }
  if (r.pc) hart.pc = *r.pc & ~1ull;
}

// ---- hooks (vCPU threads) ----

HookVerdict Hub::on_csr_write(Hart& hart, unsigned csr, uint64_t old_value, uint64_t& value) {
  Event ev = base_event(hart, EventType::kCsrWrite);
  ev.csr = csr;
  ev.old_value = old_value;
  ev.new_value = value;
  const Combined c = dispatch(hart, ev, hart.pc, csr, false);
  if (c.action == Action::kDeny) return HookVerdict::kDeny;
  if (c.action == Action::kEmulate) {
    value = c.value;
    return HookVerdict::kEmulate;
  }
  return HookVerdict::kContinue;
}

HookVerdict Hub::on_user_ecall(Hart& hart, uint64_t& value) {
  Event ev = base_event(hart, EventType::kSyscall);
  ev.nr = hart.x[kA7];
  for (unsigned i = 0; i < 6; ++i) ev.args[i] = hart.x[kA0 + i];
  const uint64_t ecall_pc = hart.pc;
  const Combined c = dispatch(hart, ev, ecall_pc, ev.nr, true);
  if (c.action != Action::kContinue) {
    value = c.value;
    return HookVerdict::kDeny;
  }
  if (hart.watching(watch::kReturnToUser) && hart.pc == ecall_pc) {
    // Linux returns to the instruction after the ECALL with the caller's satp and sp
    // (arch/riscv/kernel/traps.c do_trap_ecall_u: epc += 4); that triple finds the call again
    // whichever vCPU the thread comes back on.
    std::lock_guard lock(m_pending_mutex);
    if (m_pending.size() >= kMaxPendingSyscalls) m_pending.clear();  // calls that never return (exit, execve)
    m_pending[PendingKey{ev.satp, ev.sp, ecall_pc + 4}] = ev;
    m_pending_count.store(m_pending.size(), std::memory_order_relaxed);
  }
  return HookVerdict::kContinue;
}

void Hub::on_return_to_user(Hart& hart) {
  if (m_pending_count.load(std::memory_order_relaxed) == 0) return;
  Event ev;
  {
    std::lock_guard lock(m_pending_mutex);
    auto it = m_pending.find(PendingKey{hart.satp(), hart.x[kSp], hart.pc});
    if (it == m_pending.end()) return;
    ev = it->second;
    m_pending.erase(it);
    m_pending_count.store(m_pending.size(), std::memory_order_relaxed);
  }
  ev.type = EventType::kSyscallReturn;
  ev.vcpu = hart.hartid();
  ev.priv = hart.priv;
  ev.pc = hart.pc;
  ev.ret = static_cast<int64_t>(hart.x[kA0]);
  dispatch(hart, ev, ev.pc - 4, ev.nr, true);
}

void Hub::on_trap(Hart& hart, uint64_t cause, uint64_t tval, bool interrupt) {
  Event ev = base_event(hart, EventType::kTrap);
  ev.cause = cause;
  ev.tval = tval;
  ev.interrupt = interrupt;
  // The pc the trap was taken at (xepc of the mode it went to); pc is the handler.
  uint64_t epc = 0;
  hart.csr_read_as_machine(hart.priv == riscv::Priv::M ? riscv::csr::kMepc : riscv::csr::kSepc, epc);
  ev.gva = epc;
  dispatch(hart, ev, epc, cause | (interrupt ? riscv::kInterruptBit : 0), true);
}

void Hub::on_single_step(Hart& hart) {
  Event ev = base_event(hart, EventType::kSingleStep);
  dispatch(hart, ev, hart.pc, 0, true);
}

void Hub::on_guest_request(Hart& hart) {
  Event ev = base_event(hart, EventType::kGuestRequest);
  ev.nr = hart.x[kA6];
  for (unsigned i = 0; i < 6; ++i) ev.args[i] = hart.x[kA0 + i];
  const Combined c = dispatch(hart, ev, hart.pc, ev.nr, true);
  hart.x[kA0] = c.any ? 0 : static_cast<uint64_t>(kSbiErrNotSupported);
  hart.x[kA1] = c.reply;
}

HookVerdict Hub::on_breakpoint(Hart& hart, uint64_t gpa) {
  Event ev = base_event(hart, EventType::kBreakpoint);
  ev.gpa = gpa;
  ev.gva = hart.pc;
  const Combined c = dispatch(hart, ev, gpa, 0, true);
  if (c.hold) return HookVerdict::kHold;
  return c.action == Action::kContinue ? HookVerdict::kContinue : HookVerdict::kDeny;
}

void Hub::breakpoints_in_page(uint64_t page_pa, std::vector<uint16_t>& offsets) {
  std::lock_guard lock(m_read_mutex);
  auto it = m_bp_offsets.find(m_mem.page_index(page_pa));
  if (it != m_bp_offsets.end()) offsets = it->second;
}

riscv::P2mVerdict Hub::on_p2m_violation(Hart& hart, uint64_t gpa, uint64_t gva, unsigned size,
                                        riscv::AccessType type, uint64_t& value) {
  Event ev = base_event(hart, EventType::kMemAccess);
  ev.gpa = gpa;
  ev.gva = gva;
  ev.access = type;
  ev.size = size;
  const Combined c = dispatch(hart, ev, gpa, static_cast<uint64_t>(type), false);
  // Rights nobody watches behave as on Xen without a listener: the access faults.
  if (!c.any) return riscv::P2mVerdict::kFault;
  if (c.hold) return riscv::P2mVerdict::kHold;
  switch (c.action) {
    case Action::kContinue:
      return riscv::P2mVerdict::kAllow;
    case Action::kDeny:
      value = 0;
      return riscv::P2mVerdict::kSkip;
    case Action::kEmulate:
      value = c.value;
      return riscv::P2mVerdict::kSkip;
  }
  return riscv::P2mVerdict::kFault;
}

}  // namespace vigil::monitor
