// The hart's run loop, traps, interrupts and cross-thread requests.
#include "riscv/hart.h"

#include <malloc.h>

#include "riscv/decode.h"
#include "riscv/jit.h"

#include <chrono>
#include <thread>

namespace vigil::riscv {

namespace {
// misa for RV64IMAFDC with S and U modes (privileged spec 3.1.1).
constexpr uint64_t kMisa = (2ull << 62) | (1u << ('A' - 'A')) | (1u << ('C' - 'A')) | (1u << ('D' - 'A')) |
                           (1u << ('F' - 'A')) | (1u << ('I' - 'A')) | (1u << ('M' - 'A')) |
                           (1u << ('S' - 'A')) | (1u << ('U' - 'A'));
// Decoded pages kept per hart before the cache is dropped whole (38 KiB each).
constexpr size_t kMaxDecodedPages = 2048;
// mtime ticks per second: the device tree's timebase-frequency (10 MHz, as on QEMU virt).
constexpr uint64_t kNsPerTick = 100;
// How often (guest time) decoded pages nobody fetched from since the last sweep are dropped.
constexpr uint64_t kSweepTicks = 2'000'000'000 / kNsPerTick;
}  // namespace

GuestMemory::GuestMemory(uint8_t* host, uint64_t base, uint64_t size)
    : m_host(host),
      m_base(base),
      m_size(size),
      m_gen(new std::atomic<uint32_t>[size >> kPageShift]()),
      m_code(new std::atomic<uint8_t>[size >> kPageShift]()),
      m_rights(new std::atomic<uint8_t>[size >> kPageShift]()),
      m_breakpoints(new std::atomic<uint8_t>[size >> kPageShift]()),
      m_marks(new std::atomic<uint8_t>[size >> kPageShift]()),
      m_dirty(new std::atomic<uint64_t>[((size >> kPageShift) + 63) / 64]()) {
  for (uint64_t i = 0; i < (size >> kPageShift); ++i) m_rights[i].store(p2m::kAll, std::memory_order_relaxed);
}

bool GuestMemory::allows(uint64_t pa, uint64_t len, uint8_t need) const {
  if (len == 0) return contains(pa, 1);
  if (!contains(pa, len)) return false;
  if (!restricted()) return true;
  for (uint64_t i = page_index(pa), last = page_index(pa + len - 1); i <= last; ++i) {
    if ((rights(i) & need) != need) return false;
  }
  return true;
}

void GuestMemory::set_rights(uint64_t first, uint64_t count, uint8_t r) {
  const uint64_t pages = m_size >> kPageShift;
  if (first >= pages) return;
  count = std::min(count, pages - first);
  for (uint64_t i = first; i < first + count; ++i) {
    const uint8_t old = m_rights[i].exchange(r & p2m::kAll, std::memory_order_acq_rel);
    if (old == p2m::kAll && r != p2m::kAll) m_restricted_pages.fetch_add(1);
    if (old != p2m::kAll && r == p2m::kAll) m_restricted_pages.fetch_sub(1);
  }
  rights_epoch.fetch_add(1, std::memory_order_acq_rel);
}

void GuestMemory::set_breakpoint_page(uint64_t index, bool on) {
  if (index >= (m_size >> kPageShift)) return;
  m_breakpoints[index].store(on ? 1 : 0, std::memory_order_release);
  m_gen[index].fetch_add(1, std::memory_order_acq_rel);
}

void GuestMemory::set_mark(uint64_t index, uint8_t reason, bool on) {
  if (index >= (m_size >> kPageShift)) return;
  const uint8_t old = on ? m_marks[index].fetch_or(reason, std::memory_order_acq_rel)
                         : m_marks[index].fetch_and(static_cast<uint8_t>(~reason), std::memory_order_acq_rel);
  const uint8_t now = on ? (old | reason) : (old & ~reason);
  if (old == now) return;
  // kDirtyLog pages are not counted: any_marks() gates the PageObserver, which never sees them.
  if ((old & mark::kAllAccesses) == 0 && (now & mark::kAllAccesses) != 0) m_marked_pages.fetch_add(1, std::memory_order_relaxed);
  if ((old & mark::kAllAccesses) != 0 && (now & mark::kAllAccesses) == 0) m_marked_pages.fetch_sub(1, std::memory_order_relaxed);
  // Decoded code (and translated blocks) of the page are rebuilt; TLBs are flushed.
  m_gen[index].fetch_add(1, std::memory_order_acq_rel);
  rights_epoch.fetch_add(1, std::memory_order_acq_rel);
}

void GuestMemory::start_dirty_log() {
  const uint64_t pages = m_size >> kPageShift;
  for (uint64_t w = 0; w < dirty_words(); ++w) m_dirty[w].store(0, std::memory_order_relaxed);
  for (uint64_t i = 0; i < pages; ++i) m_marks[i].fetch_or(mark::kDirtyLog, std::memory_order_acq_rel);
  m_dirty_logging.store(true, std::memory_order_seq_cst);
  code_epoch.fetch_add(1, std::memory_order_seq_cst);
}

void GuestMemory::stop_dirty_log() {
  m_dirty_logging.store(false, std::memory_order_seq_cst);
  // Clearing the mark only lets pages back into the write TLB: nothing to flush.
  const uint64_t pages = m_size >> kPageShift;
  for (uint64_t i = 0; i < pages; ++i) {
    m_marks[i].fetch_and(static_cast<uint8_t>(~mark::kDirtyLog), std::memory_order_acq_rel);
  }
}

uint64_t GuestMemory::fetch_and_clear_dirty(std::vector<uint64_t>& words) {
  const uint64_t n = dirty_words(), pages = m_size >> kPageShift;
  words.assign(n, 0);
  uint64_t count = 0;
  for (uint64_t w = 0; w < n; ++w) {
    const uint64_t bits = m_dirty[w].exchange(0, std::memory_order_acq_rel);
    words[w] = bits;
    for (uint64_t b = bits; b != 0; b &= b - 1) {
      const uint64_t index = w * 64 + static_cast<uint64_t>(__builtin_ctzll(b));
      if (index < pages) m_marks[index].fetch_or(mark::kDirtyLog, std::memory_order_acq_rel);
      ++count;
    }
  }
  code_epoch.fetch_add(1, std::memory_order_seq_cst);
  return count;
}

void GuestMemory::log_dirty_range(uint64_t pa, uint64_t len) {
  if (!dirty_logging() || len == 0 || !contains(pa, len)) return;
  for (uint64_t i = page_index(pa), last = page_index(pa + len - 1); i <= last; ++i) log_dirty(i);
}

void GuestMemory::note_write(uint64_t pa, uint64_t len) {
  if (len == 0 || !contains(pa, len)) return;
  if (dirty_logging()) [[unlikely]] log_dirty_range(pa, len);
  for (uint64_t i = page_index(pa), last = page_index(pa + len - 1); i <= last; ++i) {
    if (m_code[i].load(std::memory_order_relaxed) && m_code[i].exchange(0, std::memory_order_acq_rel)) m_gen[i].fetch_add(1, std::memory_order_release);
  }
}

Hart::Hart(unsigned hartid, GuestMemory& mem, Platform& platform)
    : m_hartid(hartid), m_mem(mem), m_platform(platform) {
  reset(0);
}

Hart::~Hart() = default;

void Hart::reset(uint64_t reset_pc) {
  std::fill(std::begin(x), std::end(x), 0);
  fp = {};
  pc = reset_pc;
  priv = Priv::M;
  m_misa = kMisa;
  // UXL = SXL = 2 (64-bit), everything else off (3.1.6.2).
  m_mstatus = (2ull << 32) | (2ull << 34);
  m_medeleg = m_mideleg = m_mie = 0;
  m_mip.store(0);
  m_mtvec = m_mscratch = m_mepc = m_mcause = m_mtval = 0;
  m_stvec = m_sscratch = m_sepc = m_scause = m_stval = m_satp = 0;
  m_mcounteren = m_mcountinhibit = 0;
  // scounteren's reset value is unspecified (privileged spec 4.1.5). Linux only writes it
  // from its PMU drivers; starting with cycle/time/instret open lets U-mode read the clock
  // (vDSO, busybox dd) on kernels built without them, as on common hardware.
  m_scounteren = 7;
  m_menvcfg = m_senvcfg = 0;
  m_pmp = {};
  m_pmp_active = false;
  mtimecmp.store(~0ull);
  stimecmp.store(~0ull);
  reservation_addr = ~0ull;
  wfi_pending = false;
  m_instret = 0;
  flush_tlb();
  flush_decoded();
  select_tlb();
}

HartSnapshot Hart::save_state() const {
  HartSnapshot s;
  for (unsigned i = 1; i < 32; ++i) s.x[i] = x[i];
  s.pc = pc;
  s.fp = fp;
  s.priv = priv;
  s.mstatus = m_mstatus;
  s.misa = m_misa;
  s.medeleg = m_medeleg;
  s.mideleg = m_mideleg;
  s.mie = m_mie;
  s.mip = m_mip.load();
  s.mtvec = m_mtvec;
  s.mscratch = m_mscratch;
  s.mepc = m_mepc;
  s.mcause = m_mcause;
  s.mtval = m_mtval;
  s.stvec = m_stvec;
  s.sscratch = m_sscratch;
  s.sepc = m_sepc;
  s.scause = m_scause;
  s.stval = m_stval;
  s.satp = m_satp;
  s.mcounteren = m_mcounteren;
  s.scounteren = m_scounteren;
  s.mcountinhibit = m_mcountinhibit;
  s.menvcfg = m_menvcfg;
  s.senvcfg = m_senvcfg;
  s.pmp = m_pmp;
  s.instret = m_instret;  // outside run() there is no slice in flight
  s.mtimecmp = mtimecmp.load();
  s.stimecmp = stimecmp.load();
  s.running = state.load() == HartState::kRunning;
  s.wfi_pending = wfi_pending;
  s.builtin_sbi = builtin_sbi;
  return s;
}

void Hart::restore_state(const HartSnapshot& s) {
  x[0] = 0;
  for (unsigned i = 1; i < 32; ++i) x[i] = s.x[i];
  x[32] = 0;
  pc = s.pc;
  fp = s.fp;
  priv = s.priv;
  m_mstatus = s.mstatus;
  m_misa = s.misa;
  m_medeleg = s.medeleg;
  m_mideleg = s.mideleg;
  m_mie = s.mie;
  m_mip.store(s.mip);
  m_mtvec = s.mtvec;
  m_mscratch = s.mscratch;
  m_mepc = s.mepc;
  m_mcause = s.mcause;
  m_mtval = s.mtval;
  m_stvec = s.stvec;
  m_sscratch = s.sscratch;
  m_sepc = s.sepc;
  m_scause = s.scause;
  m_stval = s.stval;
  m_satp = s.satp;
  m_mcounteren = s.mcounteren;
  m_scounteren = s.scounteren;
  m_mcountinhibit = s.mcountinhibit;
  m_menvcfg = s.menvcfg;
  m_senvcfg = s.senvcfg;
  m_pmp = s.pmp;
  m_pmp_active = false;
  for (const auto& e : m_pmp) m_pmp_active |= (e.cfg & 0x18) != 0;
  m_instret = s.instret;
  m_slice_len = m_budget = 0;
  mtimecmp.store(s.mtimecmp);
  stimecmp.store(s.stimecmp);
  state.store(s.running ? HartState::kRunning : HartState::kStopped);
  wfi_pending = s.wfi_pending;
  builtin_sbi = s.builtin_sbi;
  reservation_addr = ~0ull;
  flush_tlb();
  flush_decoded();
  select_tlb();
}

void Hart::enter_supervisor_as_firmware(uint64_t entry, uint64_t a0, uint64_t a1) {
  // What OpenSBI leaves behind when it jumps to the next stage: all S-level interrupts and
  // the exceptions S-mode handles delegated, counters visible, one PMP entry granting S/U
  // access to everything, FS off (Linux turns it on).
  m_mideleg = irq::kSMask;
  m_medeleg = (1u << 0) | (1u << 3) | (1u << 8) | (1u << 12) | (1u << 13) | (1u << 15) | (1u << 4) |
              (1u << 6) | (1u << 1) | (1u << 5) | (1u << 7) | (1u << 2);
  m_mcounteren = 7;
  m_pmp[0].cfg = 0x1f;  // NAPOT, RWX
  m_pmp[0].addr = (1ull << 54) - 1;
  m_pmp_active = true;
  m_mstatus &= ~(mstatus::kMpp | mstatus::kMie | mstatus::kFs);
  builtin_sbi = true;
  priv = Priv::S;
  pc = entry;
  x[10] = a0;
  x[11] = a1;
  flush_tlb();
  select_tlb();
  invalidate_fetch();
}

// ---------------------------------------------------------------------------------------
// Run loop

ExitReason Hart::run(uint64_t budget) {
  if (state.load(std::memory_order_acquire) != HartState::kRunning) return ExitReason::kStopped;
  in_run.store(true, std::memory_order_seq_cst);
  struct Leave {
    std::atomic<bool>& flag;
    ~Leave() { flag.store(false, std::memory_order_release); }
  } leave{in_run};
  if (m_requests.load(std::memory_order_acquire) != 0) apply_requests();
  const uint64_t code_epoch = m_mem.code_epoch.load(std::memory_order_acquire);
  const uint64_t rights_epoch = m_mem.rights_epoch.load(std::memory_order_acquire);
  if (rights_epoch != m_seen_rights_epoch) {
    // P2m rights changed: no cached translation may outlive them.
    m_seen_rights_epoch = rights_epoch;
    flush_tlb();
  }
  if (code_epoch != m_seen_code_epoch) {
    // Some page became code (or dirty logging re-marked pages) since the last slice: drop
    // write entries that might cover it.
    m_seen_code_epoch = code_epoch;
    for (auto& set : m_tlb) set.write.fill(TlbEntry{});
    seen_code_epoch.store(code_epoch, std::memory_order_release);
  }
  const uint64_t now = m_platform.mtime();
  update_timers(now);
  check_interrupts();
  if (state.load(std::memory_order_relaxed) != HartState::kRunning) return ExitReason::kStopped;
  if (wfi_pending) {
    if (!interrupt_pending_for_wfi()) return ExitReason::kWfi;
    wfi_pending = false;
  }
  if (now >= m_next_sweep) [[unlikely]] sweep_decoded(now);
  // Revalidate the current code page once per slice: other harts may have written it.
  invalidate_fetch();
  if (m_jit != nullptr && m_jit->full()) [[unlikely]] {
    // The code area filled up: drop every block (they hang off decoded pages) and start over.
    flush_decoded();
    m_jit->reset();
  }
  if (watching(watch::kSingleStep)) [[unlikely]] return run_single_stepping(budget);
  m_jit_active = jit_enabled;

  m_slice_len = m_budget = static_cast<int64_t>(budget);
  while (m_budget > 0) {
    --m_budget;
    if (((pc ^ m_fetch_vpage) >> kPageShift) != 0) [[unlikely]] {
      refill_fetch();
      if (m_fetch_vpage == ~0ull) continue;  // the fetch trapped; pc now points at the handler
    }
    const DecodedInsn& d = m_fetch_page->slots[(pc & kPageMask) >> 1];
    d.fn(*this, d);
  }
  m_instret += static_cast<uint64_t>(m_slice_len - m_budget);
  m_slice_len = m_budget = 0;
  if (wfi_pending) return ExitReason::kWfi;
  return state.load(std::memory_order_relaxed) == HartState::kRunning ? ExitReason::kSliceDone
                                                                        : ExitReason::kStopped;
}

ExitReason Hart::run_single_stepping(uint64_t budget) {
  // One instruction per inner slice, the monitor told after each, interrupts checked in
  // between as the hardware would: the same loop body as run(), kept apart so that the
  // common loop carries no single-step test. Translated blocks run several instructions at
  // once, so they are bypassed here (jit_entry interprets instead).
  m_jit_active = false;
  for (uint64_t i = 0; i < budget && watching(watch::kSingleStep); ++i) {
    if (i > 0 && check_interrupts()) continue;
    m_slice_len = m_budget = 1;
    --m_budget;
    if (((pc ^ m_fetch_vpage) >> kPageShift) != 0) refill_fetch();
    if (m_fetch_vpage != ~0ull) {
      const DecodedInsn& d = m_fetch_page->slots[(pc & kPageMask) >> 1];
      d.fn(*this, d);
    }
    m_instret += static_cast<uint64_t>(m_slice_len - m_budget);
    m_slice_len = m_budget = 0;
    hooks->on_single_step(*this);
    if (wfi_pending || state.load(std::memory_order_relaxed) != HartState::kRunning) break;
  }
  if (wfi_pending) return ExitReason::kWfi;
  return state.load(std::memory_order_relaxed) == HartState::kRunning ? ExitReason::kSliceDone
                                                                        : ExitReason::kStopped;
}

void Hart::refill_fetch() {
  const unsigned set = priv == Priv::U ? 0 : priv == Priv::S ? 1 : 2;
  FetchEntry& e = m_itlb[set][tlb_index(pc)];
  if (e.tag != (pc >> kPageShift)) {
    uint64_t pa = 0;
    bool cacheable = false;
    if (uint64_t fault = translate(pc, AccessType::kFetch, priv, false, false, pa, cacheable)) {
      raise_fetch_fault(fault, pc);
      return;
    }
    bool whole_page = false;
    const uint64_t page_pa = pa & ~kPageMask;
    if (!m_mem.contains(page_pa, kPageSize) || !pmp_allows(pa, 2, AccessType::kFetch, priv, whole_page)) {
      raise_fetch_fault(static_cast<uint64_t>(Cause::kInsnAccessFault) + 1, pc);
      return;
    }
    const uint64_t index = m_mem.page_index(page_pa);
    const bool p2m_exec = (m_mem.rights(index) & p2m::kExec) != 0;
    uint64_t unused = 0;
    if (!p2m_exec && p2m_violation(pa, pc, 2, AccessType::kFetch, unused) != P2mVerdict::kAllow) {
      return;  // the fault was raised
    }
    DecodedPage* page = decoded_page_for(index);
    const uint8_t marks = m_mem.marks(index) & mark::kAllAccesses;
    if (marks != 0) [[unlikely]] m_mem.note_marked_access(pa, 2, AccessType::kFetch);
    if (!cacheable || !whole_page || !p2m_exec || marks != 0) {
      // Not cacheable in the fetch TLB: use it for this page visit only.
      page->used = m_sweep;
      m_fetch_page = page;
      m_fetch_page_index = index;
      m_fetch_vpage = pc & ~kPageMask;
      return;
    }
    e = FetchEntry{pc >> kPageShift, index, page};
  }
  DecodedPage* page = e.page;
  if (page->gen != m_mem.page_gen(e.page_index).load(std::memory_order_acquire) ||
      page->epoch != m_icache_epoch) {
    page = decoded_page_for(e.page_index);
    e.page = page;
  }
  page->used = m_sweep;
  m_fetch_page = page;
  m_fetch_page_index = e.page_index;
  m_fetch_vpage = pc & ~kPageMask;
}

void Hart::sweep_decoded(uint64_t now) {
  // First call (a new hart, or a clock set back by a restore): start the period now.
  if (m_next_sweep == 0 || now + kSweepTicks < m_next_sweep) {
    m_next_sweep = now + kSweepTicks;
    return;
  }
  const uint32_t period = m_sweep;
  const size_t dropped = std::erase_if(m_decoded, [&](const auto& kv) { return kv.second->used != period; });
  ++m_sweep;
  // A decoded page (~38 KiB) is below malloc's mmap threshold: freed, it would stay in the
  // heap, resident. malloc_trim gives the whole free pages inside the heaps back (madvise).
  if (dropped != 0) ::malloc_trim(0);
  // Fetch entries point at decoded pages: they are looked up again (and so marked used).
  for (auto& set : m_itlb) set.fill(FetchEntry{});
  invalidate_fetch();
  m_next_sweep = now + kSweepTicks;
}

Hart::DecodedPage* Hart::decoded_page_for(uint64_t index) {
  auto it = m_decoded.find(index);
  if (it == m_decoded.end()) {
    if (m_decoded.size() >= kMaxDecodedPages) {
      m_decoded.clear();
      for (auto& set : m_itlb) set.fill(FetchEntry{});
    }
    it = m_decoded.emplace(index, std::make_unique<DecodedPage>()).first;
    it->second->epoch = 0;  // force the reset below
  }
  DecodedPage* page = it->second.get();
  if (m_mem.mark_code(index)) {
    // The page just became code: writes to it must now take the slow path on every hart.
    m_mem.code_epoch.fetch_add(1, std::memory_order_acq_rel);
    for (auto& set : m_tlb) set.write.fill(TlbEntry{});
  }
  const uint32_t gen = m_mem.page_gen(index).load(std::memory_order_acquire);
  if (page->gen != gen || page->epoch != m_icache_epoch) {
    page->ppn_index = index;
    page->gen = gen;
    page->epoch = m_icache_epoch;
    for (auto& slot : page->slots) slot = DecodedInsn{&Hart::decode_slot, 0, 0, 0, 0, 0};
    std::memset(page->heat, 0, sizeof page->heat);
    if (hooks != nullptr && m_mem.has_breakpoints(index)) [[unlikely]] {
      std::vector<uint16_t> offsets;
      hooks->breakpoints_in_page(m_mem.base() + (index << kPageShift), offsets);
      for (uint16_t off : offsets) {
        if (off < kPageSize && (off & 1) == 0) page->slots[off >> 1].fn = &Hart::breakpoint_slot;
      }
    }
  }
  return page;
}

void Hart::breakpoint_slot(Hart& h, const DecodedInsn&) {
  // A hypervisor breakpoint: the monitor first, then the guest's own instruction, decoded
  // afresh from unmodified memory each time (the slot stays a breakpoint).
  const uint64_t at = h.pc;
  const uint64_t gpa = h.m_mem.base() + (h.m_fetch_page_index << kPageShift) + (at & kPageMask);
  const HookVerdict v = h.hooks->on_breakpoint(h, gpa);
  // The monitor moved pc (that is where the guest goes on) or stopped the hart.
  if (h.pc != at || h.state.load(std::memory_order_relaxed) != HartState::kRunning) return;
  if (v == HookVerdict::kHold) {
    ++h.m_budget;  // it did not retire
    h.end_slice();
    return;
  }
  if (v == HookVerdict::kDeny) {
    uint16_t lo;
    std::memcpy(&lo, h.m_mem.ptr(gpa), 2);
    h.pc += (lo & 3) == 3 ? 4 : 2;
    return;
  }
  DecodedInsn insn{&Hart::decode_slot, 0, 0, 0, 0, 0};
  decode_slot(h, insn);
}

void Hart::decode_slot(Hart& h, const DecodedInsn& d) {
  // The slot lives in a non-const DecodedPage; it is filled in here, once.
  auto& slot = const_cast<DecodedInsn&>(d);
  const uint64_t off = h.pc & kPageMask;
  if (off & 1) [[unlikely]] {
    // Unreachable through the ISA (every pc write clears bit 0); a host-side entry point
    // that forgot to would otherwise read past the page (and the end of RAM) below.
    h.raise_exception(Cause::kInsnMisaligned, h.pc);
    return;
  }
  const uint8_t* page = h.m_mem.host() + (h.m_fetch_page_index << kPageShift);
  uint16_t lo;
  std::memcpy(&lo, page + off, 2);
  if ((lo & 3) != 3) {
    decode(lo, true, slot);
  } else if (off <= kPageSize - 4) {
    uint32_t raw;
    std::memcpy(&raw, page + off, 4);
    decode(raw, false, slot);
  } else {
    // A 32-bit instruction straddling two pages: fetch the upper half through the MMU
    // each time and leave this slot undecoded.
    const uint64_t hi_va = h.pc + 2;
    uint64_t pa = 0;
    bool cacheable = false, whole_page = false;
    if (uint64_t fault = h.translate(hi_va, AccessType::kFetch, h.priv, false, false, pa, cacheable)) {
      h.raise_fetch_fault(fault, hi_va);
      return;
    }
    if (!h.m_mem.contains(pa, 2) || !h.pmp_allows(pa, 2, AccessType::kFetch, h.priv, whole_page)) {
      h.raise_fetch_fault(static_cast<uint64_t>(Cause::kInsnAccessFault) + 1, hi_va);
      return;
    }
    uint16_t hi;
    std::memcpy(&hi, h.m_mem.ptr(pa), 2);
    DecodedInsn tmp;
    decode(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16), false, tmp);
    tmp.fn(h, tmp);
    return;
  }
  DecodedPage* fetch_page = h.m_fetch_page;
  if (h.jit_enabled && &slot >= fetch_page->slots && &slot < std::end(fetch_page->slots) &&
      !h.m_mem.has_breakpoints(h.m_fetch_page_index) &&
      (h.m_mem.marks(h.m_fetch_page_index) & mark::kAllAccesses) == 0) {
    // Count this slot's runs: when it gets hot, a block is translated from here.
    if (const uint16_t real = handler_index(slot.fn); real != kNoHandlerIndex) {
      fetch_page->real[off >> 1] = real;
      slot.fn = &Hart::jit_probe;
    }
  }
  slot.fn(h, slot);
}

bool Hart::jit_ready() {
  if (m_jit == nullptr && !m_jit_tried) {
    m_jit_tried = true;
    m_jit = Jit::create(*this);
    m_jit_published.store(m_jit.get(), std::memory_order_release);
  }
  return m_jit != nullptr && !m_jit->full();
}

void Hart::jit_probe(Hart& h, const DecodedInsn& d) {
  DecodedPage* page = h.m_fetch_page;
  const unsigned index = static_cast<unsigned>((h.pc & kPageMask) >> 1);
  const Handler real = handler_at(page->real[index]);
  if (!h.m_jit_active || ++page->heat[index] < Jit::kHotThreshold) [[likely]] {
    real(h, d);
    return;
  }
  // Hot: from now on the slot is either a block entry or its interpreter handler.
  auto& slot = const_cast<DecodedInsn&>(d);
  const DecodedInsn decoded = d;
  slot.fn = real;
  if (h.jit_ready()) {
    const uint8_t* host_page = h.m_mem.host() + (h.m_fetch_page_index << kPageShift);
    const unsigned start = index << 1;
    unsigned end = start;
    const int32_t code = h.m_jit->translate(host_page, start, page->slots, end);
    if (code >= 0) {
      slot = DecodedInsn{&Hart::jit_entry, code, 0, 0, 0, decoded.flags};
      // The rest of this block's instructions ran as often as its first and would get hot
      // in this same pass: they start over, so only an entry into the middle of the block
      // (a branch target) makes a block of its own.
      for (unsigned o = start + 2; o < end; o += 2) page->heat[o >> 1] = 0;
    }
  }
  real(h, decoded);
}

void Hart::jit_entry(Hart& h, const DecodedInsn& d) {
  if (h.m_jit_active) [[likely]] {
    ++h.m_budget;  // the block counts its own instructions
    if (h.m_jit->block(d.imm)(&h) == 0) return;
    --h.m_budget;  // its first instruction needs the interpreter (TLB miss, MMIO, ...)
  }
  DecodedInsn insn{&Hart::decode_slot, 0, 0, 0, 0, 0};
  decode_slot(h, insn);
}

void Hart::raise_fetch_fault(uint64_t cause_plus_one, uint64_t va) {
  raise_exception(static_cast<Cause>(cause_plus_one - 1), va);
}

// ---------------------------------------------------------------------------------------
// Traps (privileged spec 3.1.6.1, 3.1.7, 4.1.1)

void Hart::raise_exception(Cause cause, uint64_t tval) {
  // The trapping instruction does not retire (3.3.1): undo the count the run loop took.
  if (m_slice_len > 0) --m_instret;
  take_trap(static_cast<uint64_t>(cause), tval, false);
}

uint32_t Hart::insn_bits_at_pc() {
  uint64_t pa = 0;
  bool cacheable = false;
  auto half = [&](uint64_t va, uint16_t& out) {
    if (translate(va, AccessType::kFetch, priv, false, false, pa, cacheable, false) != 0 || !m_mem.contains(pa, 2)) {
      return false;
    }
    std::memcpy(&out, m_mem.ptr(pa), 2);
    return true;
  };
  uint16_t lo = 0, hi = 0;
  if (!half(pc, lo)) return 0;
  if ((lo & 3) != 3) return lo;
  if (!half(pc + 2, hi)) return 0;
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

void Hart::take_trap(uint64_t cause, uint64_t tval, bool interrupt) {
  const uint64_t deleg = interrupt ? m_mideleg : m_medeleg;
  reservation_addr = ~0ull;
  if (priv != Priv::M && cause < 64 && ((deleg >> cause) & 1)) {
    m_scause = cause | (interrupt ? kInterruptBit : 0);
    m_sepc = pc;
    m_stval = tval;
    uint64_t s = m_mstatus & ~(mstatus::kSpie | mstatus::kSie | mstatus::kSpp);
    if (m_mstatus & mstatus::kSie) s |= mstatus::kSpie;
    if (priv == Priv::S) s |= mstatus::kSpp;
    m_mstatus = s;
    priv = Priv::S;
    pc = (m_stvec & ~3ull) + ((interrupt && (m_stvec & 1)) ? 4 * cause : 0);
  } else {
    if (builtin_sbi) {
      // No firmware lives in M-mode to take this trap: the guest is broken (or hostile).
      m_platform.unhandled_machine_trap(*this, cause | (interrupt ? kInterruptBit : 0), tval);
      state.store(HartState::kStopped, std::memory_order_release);
      end_slice();
      invalidate_fetch();
      return;
    }
    m_mcause = cause | (interrupt ? kInterruptBit : 0);
    m_mepc = pc;
    m_mtval = tval;
    uint64_t s = m_mstatus & ~(mstatus::kMpie | mstatus::kMie | mstatus::kMpp);
    if (m_mstatus & mstatus::kMie) s |= mstatus::kMpie;
    s |= static_cast<uint64_t>(priv) << mstatus::kMppShift;
    m_mstatus = s;
    priv = Priv::M;
    pc = (m_mtvec & ~3ull) + ((interrupt && (m_mtvec & 1)) ? 4 * cause : 0);
  }
  select_tlb();
  invalidate_fetch();
  if (watching(watch::kTrap)) [[unlikely]] hooks->on_trap(*this, cause, tval, interrupt);
}

bool Hart::interrupt_pending_for_wfi() const {
  return (m_mip.load(std::memory_order_relaxed) & m_mie) != 0;
}

bool Hart::check_interrupts() {
  const uint64_t pending = m_mip.load(std::memory_order_relaxed) & m_mie;
  if (pending == 0) return false;
  // Privileged spec 3.1.9: M-level interrupts are enabled below M or with MIE; those
  // delegated to S are enabled below S or in S with SIE, and never taken in M.
  const bool m_enabled = priv != Priv::M || (m_mstatus & mstatus::kMie);
  const bool s_enabled = priv == Priv::U || (priv == Priv::S && (m_mstatus & mstatus::kSie));
  // Interrupts for M are taken before interrupts for S (3.1.9); within each destination the
  // order is MEI, MSI, MTI, SEI, SSI, STI.
  static constexpr unsigned kOrder[] = {irq::kMei, irq::kMsi, irq::kMti, irq::kSei, irq::kSsi, irq::kSti};
  const uint64_t for_m = m_enabled ? pending & ~m_mideleg : 0;
  const uint64_t for_s = s_enabled ? pending & m_mideleg : 0;
  for (uint64_t takeable : {for_m, for_s}) {
    for (unsigned n : kOrder) {
      if (takeable & (1ull << n)) {
        wfi_pending = false;
        take_trap(n, 0, true);
        return true;
      }
    }
  }
  return false;
}

void Hart::set_mip_bits(uint64_t bits, bool level) {
  if (level) {
    m_mip.fetch_or(bits, std::memory_order_acq_rel);
    kick();
  } else {
    m_mip.fetch_and(~bits, std::memory_order_acq_rel);
  }
}

uint64_t Hart::update_timers(uint64_t now) {
  const uint64_t mcmp = mtimecmp.load(std::memory_order_relaxed);
  uint64_t bits_on = 0, bits_off = 0;
  (now >= mcmp ? bits_on : bits_off) |= 1ull << irq::kMti;
  uint64_t next = mcmp > now ? mcmp : ~0ull;
  if (builtin_sbi) {
    // Without firmware the built-in SBI's timer drives STIP directly (as Sstc would).
    const uint64_t scmp = stimecmp.load(std::memory_order_relaxed);
    (now >= scmp ? bits_on : bits_off) |= 1ull << irq::kSti;
    if (scmp > now && scmp < next) next = scmp;
  }
  const uint64_t cur = m_mip.load(std::memory_order_relaxed);
  if ((cur & bits_on) != bits_on) m_mip.fetch_or(bits_on, std::memory_order_acq_rel);
  if (cur & bits_off) m_mip.fetch_and(~bits_off, std::memory_order_acq_rel);
  return next;
}

// ---------------------------------------------------------------------------------------
// Requests from other threads and sleeping

void Hart::request(uint32_t what) {
  m_requests.fetch_or(what, std::memory_order_acq_rel);
  kick();
}

void Hart::apply_requests() {
  const uint32_t req = m_requests.exchange(0, std::memory_order_acq_rel);
  if (req & kReqFenceI) do_fence_i();
  if (req & kReqSfenceVma) flush_tlb();
  invalidate_fetch();
}

void Hart::kick() {
  m_kicked.store(true, std::memory_order_release);
  {
    std::lock_guard lock(m_sleep_mutex);
    m_sleep_cv.notify_all();
  }
  if (wake_hook) wake_hook();
}

void Hart::wait_for_interrupt(uint64_t deadline_mtime) {
  std::unique_lock lock(m_sleep_mutex);
  const uint64_t now = m_platform.mtime();
  if (deadline_mtime <= now) return;
  const uint64_t ticks = deadline_mtime - now;
  // Cap the sleep so a lost wake-up can never stall a hart for long.
  const auto wait = std::chrono::nanoseconds(std::min<uint64_t>(ticks, 1'000'000) * kNsPerTick);
  const auto until = std::chrono::steady_clock::now() + wait;
  m_sleep_cv.wait_until(lock, until, [&] {
    return m_kicked.exchange(false, std::memory_order_acq_rel) || interrupt_pending_for_wfi() ||
           m_requests.load(std::memory_order_acquire) != 0 ||
           state.load(std::memory_order_acquire) != HartState::kRunning;
  });
}

// ---------------------------------------------------------------------------------------
// Privileged instructions (privileged spec 3.3)

void Hart::do_mret() {
  if (priv != Priv::M) return raise_exception(Cause::kIllegalInsn, 0x30200073);
  const auto mpp = static_cast<Priv>((m_mstatus >> mstatus::kMppShift) & 3);
  uint64_t s = m_mstatus & ~(mstatus::kMie | mstatus::kMpp);
  if (m_mstatus & mstatus::kMpie) s |= mstatus::kMie;
  s |= mstatus::kMpie;
  if (mpp != Priv::M) s &= ~mstatus::kMprv;
  m_mstatus = s;
  priv = mpp;
  pc = m_mepc;
  select_tlb();
  invalidate_fetch();
  end_slice();  // interrupts may have become enabled
  if (priv == Priv::U && watching(watch::kReturnToUser)) [[unlikely]] hooks->on_return_to_user(*this);
}

void Hart::do_sret() {
  if (priv == Priv::U || (priv == Priv::S && (m_mstatus & mstatus::kTsr))) {
    return raise_exception(Cause::kIllegalInsn, 0x10200073);
  }
  const Priv spp = (m_mstatus & mstatus::kSpp) ? Priv::S : Priv::U;
  uint64_t s = m_mstatus & ~(mstatus::kSie | mstatus::kSpp | mstatus::kMprv);
  if (m_mstatus & mstatus::kSpie) s |= mstatus::kSie;
  s |= mstatus::kSpie;
  m_mstatus = s;
  priv = spp;
  pc = m_sepc;
  select_tlb();
  invalidate_fetch();
  end_slice();
  if (priv == Priv::U && watching(watch::kReturnToUser)) [[unlikely]] hooks->on_return_to_user(*this);
}

void Hart::do_wfi(const DecodedInsn& d) {
  if (priv == Priv::U || (priv == Priv::S && (m_mstatus & mstatus::kTw))) {
    return raise_exception(Cause::kIllegalInsn, 0x10500073);
  }
  pc += d.len();
  if (!interrupt_pending_for_wfi()) {
    wfi_pending = true;
    end_slice();
  }
}

void Hart::do_sfence_vma(const DecodedInsn& d) {
  if (priv == Priv::U || (priv == Priv::S && (m_mstatus & mstatus::kTvm))) {
    return raise_exception(Cause::kIllegalInsn, insn_bits_at_pc());
  }
  // The TLB has no ASID tags and is small: any SFENCE.VMA drops it whole.
  flush_tlb();
  invalidate_fetch();
  pc += d.len();
}

void Hart::do_fence_i() {
  ++m_icache_epoch;
  invalidate_fetch();
}

void Hart::do_ecall() {
  if (watch.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    if (priv == Priv::U && watching(watch::kUserEcall)) {
      uint64_t value = 0;
      if (hooks->on_user_ecall(*this, value) != HookVerdict::kContinue) {
        x[10] = value;  // the system call is skipped; the caller sees `value` returned
        pc += 4;
        return;
      }
    } else if (priv == Priv::S && watching(watch::kGuestRequest) && x[17] == kGuestRequestEid) {
      hooks->on_guest_request(*this);
      pc += 4;
      end_slice();  // the monitor may have changed memory rights or single-stepping
      return;
    }
  }
  if (priv == Priv::S && builtin_sbi) {
    if (m_platform.sbi_ecall(*this)) {
      pc += 4;
      end_slice();  // the call may have changed timers, IPIs or hart states
      return;
    }
  }
  const Cause c = priv == Priv::U ? Cause::kEcallU : priv == Priv::S ? Cause::kEcallS : Cause::kEcallM;
  raise_exception(c, 0);
}

}  // namespace vigil::riscv
