// Address translation (privileged spec 4.3-4.5: Sv39, Sv48), PMP (3.7) and the slow paths
// behind the hart's software TLB.
#include <atomic>

#include "riscv/hart.h"

namespace vigil::riscv {

namespace {
namespace pte {
constexpr uint64_t kV = 1, kR = 2, kW = 4, kX = 8, kU = 16, kA = 64, kD = 128;
constexpr unsigned kPpnShift = 10;
constexpr uint64_t kPpnMask = (1ull << 44) - 1;
}  // namespace pte

constexpr uint64_t cause_plus_one(Cause c) { return static_cast<uint64_t>(c) + 1; }

Cause page_fault_for(AccessType type) {
  return type == AccessType::kFetch   ? Cause::kInsnPageFault
         : type == AccessType::kWrite ? Cause::kStorePageFault
                                      : Cause::kLoadPageFault;
}
Cause access_fault_for(AccessType type) {
  return type == AccessType::kFetch   ? Cause::kInsnAccessFault
         : type == AccessType::kWrite ? Cause::kStoreAccessFault
                                      : Cause::kLoadAccessFault;
}
}  // namespace

Priv Hart::data_priv() const {
  if (priv == Priv::M && (m_mstatus & mstatus::kMprv)) {
    return static_cast<Priv>((m_mstatus >> mstatus::kMppShift) & 3);
  }
  return priv;
}

void Hart::select_tlb() {
  const Priv p = data_priv();
  const unsigned set = p == Priv::U ? 0 : p == Priv::S ? ((m_mstatus & mstatus::kSum) ? 2 : 1) : 3;
  m_dtlb_read = m_tlb[set].read.data();
  m_dtlb_write = m_tlb[set].write.data();
}

void Hart::flush_tlb() {
  for (auto& set : m_tlb) {
    set.read.fill(TlbEntry{});
    set.write.fill(TlbEntry{});
  }
  for (auto& set : m_itlb) set.fill(FetchEntry{});
  invalidate_fetch();
}

void Hart::flush_decoded() {
  m_decoded.clear();
  for (auto& set : m_itlb) set.fill(FetchEntry{});
  ++m_icache_epoch;
  invalidate_fetch();
}

uint64_t Hart::translate(uint64_t va, AccessType type, Priv mode, bool sum, bool mxr, uint64_t& pa,
                         bool& cacheable, bool update_ad) {
  const uint64_t satp_mode = m_satp >> satp::kModeShift;
  cacheable = true;
  if (mode == Priv::M || satp_mode == satp::kModeBare) {
    pa = va;
    // Physical addresses are 56 bits wide; anything above cannot exist.
    return (va >> 56) ? cause_plus_one(access_fault_for(type)) : 0;
  }
  const unsigned levels = satp_mode == satp::kModeSv39 ? 3 : 4;
  const unsigned va_bits = kPageShift + 9 * levels;
  // Bits above the VA width must equal its top bit (4.3.1 / 4.5.1).
  if ((static_cast<int64_t>(va << (64 - va_bits)) >> (64 - va_bits)) != static_cast<int64_t>(va)) {
    return cause_plus_one(page_fault_for(type));
  }
  uint64_t table = (m_satp & satp::kPpnMask) << kPageShift;
  for (int level = static_cast<int>(levels) - 1; level >= 0; --level) {
    const unsigned shift = kPageShift + 9 * static_cast<unsigned>(level);
    const uint64_t pte_addr = table + ((va >> shift) & 511) * 8;
    bool whole = false;
    // A page table outside RAM (or one PMP hides) is an access fault, never a host access.
    if (!m_mem.contains(pte_addr, 8) || !pmp_allows(pte_addr, 8, AccessType::kRead, Priv::S, whole) ||
        !m_mem.allows(pte_addr, 8, p2m::kRead)) {
      return cause_plus_one(access_fault_for(type));
    }
    std::atomic_ref<uint64_t> pte_ref(*reinterpret_cast<uint64_t*>(m_mem.ptr(pte_addr)));
    uint64_t entry = pte_ref.load(std::memory_order_acquire);
  retry:
    // Reserved bits 63:54 (Svnapot/Svpbmt not implemented) must be zero (4.4.1).
    if (!(entry & pte::kV) || (!(entry & pte::kR) && (entry & pte::kW)) || (entry >> 54)) {
      return cause_plus_one(page_fault_for(type));
    }
    const uint64_t ppn = (entry >> pte::kPpnShift) & pte::kPpnMask;
    if (!(entry & (pte::kR | pte::kX))) {
      if (level == 0) return cause_plus_one(page_fault_for(type));
      table = ppn << kPageShift;
      continue;
    }
    // Leaf: check rights for the privilege view.
    const bool user_page = entry & pte::kU;
    if (mode == Priv::U && !user_page) return cause_plus_one(page_fault_for(type));
    if (mode == Priv::S && user_page && (type == AccessType::kFetch || !sum)) {
      return cause_plus_one(page_fault_for(type));
    }
    bool allowed = false;
    switch (type) {
      case AccessType::kFetch: allowed = entry & pte::kX; break;
      case AccessType::kWrite: allowed = entry & pte::kW; break;
      case AccessType::kRead: allowed = (entry & pte::kR) || (mxr && (entry & pte::kX)); break;
    }
    if (!allowed) return cause_plus_one(page_fault_for(type));
    if (level > 0 && (ppn & ((1ull << (9 * level)) - 1))) return cause_plus_one(page_fault_for(type));
    // Hardware A/D update (Svadu behaviour), atomically against other harts' walks.
    const uint64_t need = pte::kA | (type == AccessType::kWrite ? pte::kD : 0);
    if ((entry & need) != need && update_ad) {
      // Updating A/D is a write to the page table: PMP and the P2m must allow it (4.3.2 step 7).
      if (!pmp_allows(pte_addr, 8, AccessType::kWrite, Priv::S, whole) || !m_mem.allows(pte_addr, 8, p2m::kWrite)) {
        return cause_plus_one(access_fault_for(type));
      }
      if (!pte_ref.compare_exchange_weak(entry, entry | need, std::memory_order_acq_rel)) goto retry;
      m_mem.note_write(pte_addr, 8);
    }
    pa = (ppn << kPageShift) | (va & ((1ull << shift) - 1));
    return 0;
  }
  return cause_plus_one(page_fault_for(type));
}

bool Hart::pmp_allows(uint64_t pa, uint64_t len, AccessType type, Priv mode, bool& whole_page) const {
  whole_page = true;
  if (!m_pmp_active) return mode == Priv::M;
  const uint64_t page_lo = pa & ~kPageMask, page_hi = page_lo + kPageSize;
  uint64_t prev_top = 0;
  for (const PmpEntry& e : m_pmp) {
    const unsigned a = (e.cfg >> 3) & 3;  // 0 OFF, 1 TOR, 2 NA4, 3 NAPOT
    uint64_t lo = 0, hi = 0;
    if (a == 1) {
      lo = prev_top;
      hi = e.addr << 2;
    } else if (a == 2) {
      lo = e.addr << 2;
      hi = lo + 4;
    } else if (a == 3) {
      const unsigned ones = static_cast<unsigned>(std::countr_one(e.addr));
      if (ones >= 54) {
        lo = 0;
        hi = ~0ull;
      } else {
        const uint64_t size = 1ull << (ones + 3);
        lo = (e.addr & ~((1ull << ones) - 1)) << 2;
        hi = lo + size;
      }
    }
    prev_top = e.addr << 2;
    if (a == 0 || hi <= lo) continue;
    // The first entry overlapping any byte decides (3.7.1.3).
    if (pa + len <= lo || pa >= hi) {
      if (page_hi > lo && page_lo < hi) whole_page = false;  // a lower entry overlaps this page
      continue;
    }
    if (!(page_lo >= lo && page_hi <= hi)) whole_page = false;
    if (pa < lo || pa + len > hi) return false;  // partial match fails
    if (mode == Priv::M && !(e.cfg & 0x80)) return true;
    switch (type) {
      case AccessType::kRead: return e.cfg & 1;
      case AccessType::kWrite: return e.cfg & 2;
      case AccessType::kFetch: return e.cfg & 4;
    }
  }
  return mode == Priv::M;
}

bool Hart::access_page(uint64_t va, unsigned size, AccessType type, uint64_t& value) {
  const Priv mode = data_priv();
  uint64_t pa = 0;
  bool cacheable = false;
  if (uint64_t fault = translate(va, type, mode, m_mstatus & mstatus::kSum, m_mstatus & mstatus::kMxr, pa,
                                 cacheable)) {
    raise_exception(static_cast<Cause>(fault - 1), va);
    return false;
  }
  bool whole_page = false;
  if (m_mem.contains(pa, size)) {
    if (!pmp_allows(pa, size, type, mode, whole_page)) {
      raise_exception(access_fault_for(type), va);
      return false;
    }
    const uint64_t index = m_mem.page_index(pa);
    const uint8_t need = type == AccessType::kWrite ? p2m::kWrite : p2m::kRead;
    const bool p2m_ok = m_mem.allows(pa, size, need);
    if (!p2m_ok) {
      uint64_t emulated = 0;
      switch (p2m_violation(pa, va, size, type, emulated)) {
        case P2mVerdict::kAllow: break;
        case P2mVerdict::kFault:
        case P2mVerdict::kHold: return false;
        case P2mVerdict::kSkip:
          if (type != AccessType::kWrite) value = size < 8 ? emulated & ((1ull << (8 * size)) - 1) : emulated;
          return true;
      }
    }
    uint8_t* host = m_mem.ptr(pa);
    if (type == AccessType::kWrite) {
      if (m_mem.page_has_code(index)) {
        m_mem.note_write(pa, size);
        if (index == m_fetch_page_index) invalidate_fetch();
      }
      std::memcpy(host, &value, size);
    } else {
      value = 0;
      std::memcpy(&value, host, size);
    }
    uint8_t marks = m_mem.marks(index);
    if (marks != 0) [[unlikely]] {
      // The first store to a clean page while dirty logging runs: log it, and the page may
      // enter the write TLB from now on.
      if (type == AccessType::kWrite && (marks & mark::kDirtyLog)) m_mem.log_dirty(index);
      marks &= mark::kAllAccesses;
      if (marks != 0) m_mem.note_marked_access(pa, size, type);
    }
    if (cacheable && whole_page && p2m_ok && marks == 0 && m_mem.contains(pa & ~kPageMask, kPageSize)) {
      TlbEntry& e = (type == AccessType::kWrite ? m_dtlb_write : m_dtlb_read)[tlb_index(va)];
      if (type != AccessType::kWrite || !m_mem.page_has_code(index)) {
        e.tag = va >> kPageShift;
        e.addend = reinterpret_cast<intptr_t>(m_mem.ptr(pa & ~kPageMask)) -
                   static_cast<intptr_t>(va & ~kPageMask);
      }
    }
    return true;
  }
  // Device space: naturally aligned power-of-two accesses only.
  if ((size & (size - 1)) || (pa & (size - 1)) || !pmp_allows(pa, size, type, mode, whole_page)) {
    raise_exception(access_fault_for(type), va);
    return false;
  }
  const bool ok = type == AccessType::kWrite ? m_platform.mmio_write(*this, pa, size, value)
                                             : m_platform.mmio_read(*this, pa, size, value);
  if (!ok) {
    raise_exception(access_fault_for(type), va);
    return false;
  }
  if (type != AccessType::kWrite && size < 8) value &= (1ull << (8 * size)) - 1;
  return true;
}

P2mVerdict Hart::p2m_violation(uint64_t pa, uint64_t va, unsigned size, AccessType type, uint64_t& value) {
  // A forbidden access goes to the monitor if one is attached; otherwise (or if it says
  // so) the guest sees an access fault, as on Xen without a listener: no host memory is
  // touched either way.
  P2mVerdict v = P2mVerdict::kFault;
  if (m_mem.violation_handler != nullptr) v = m_mem.violation_handler->on_p2m_violation(*this, pa, va, size, type, value);
  if ((v == P2mVerdict::kSkip || v == P2mVerdict::kHold) && type == AccessType::kFetch) v = P2mVerdict::kFault;
  if (v == P2mVerdict::kFault) raise_exception(access_fault_for(type), va);
  if (v == P2mVerdict::kHold) {
    // Not retired (the run loop counted it): the slice ends with pc still on the instruction.
    ++m_budget;
    end_slice();
  }
  return v;
}

bool Hart::load_slow(uint64_t va, unsigned size, uint64_t& out) {
  const uint64_t off = va & kPageMask;
  if (off + size <= kPageSize) return access_page(va, size, AccessType::kRead, out);
  // Misaligned across a page boundary: two accesses, each faulting with its own address.
  const unsigned first = static_cast<unsigned>(kPageSize - off);
  uint64_t lo = 0, hi = 0;
  if (!access_page(va, first, AccessType::kRead, lo)) return false;
  if (!access_page(va + first, size - first, AccessType::kRead, hi)) return false;
  out = lo | (hi << (8 * first));
  return true;
}

bool Hart::store_slow(uint64_t va, unsigned size, uint64_t value) {
  const uint64_t off = va & kPageMask;
  if (off + size <= kPageSize) return access_page(va, size, AccessType::kWrite, value);
  const unsigned first = static_cast<unsigned>(kPageSize - off);
  // Check both pages before writing either, without touching A/D bits, so a fault on
  // either leaves memory and page tables untouched.
  const Priv mode = data_priv();
  for (const auto& [part_va, part_len] : {std::pair{va, first}, std::pair{va + first, size - first}}) {
    uint64_t pa = 0;
    bool cacheable = false, whole_page = false;
    if (uint64_t fault = translate(part_va, AccessType::kWrite, mode, m_mstatus & mstatus::kSum,
                                   m_mstatus & mstatus::kMxr, pa, cacheable, false)) {
      raise_exception(static_cast<Cause>(fault - 1), part_va);
      return false;
    }
    if (!m_mem.contains(pa, part_len) || !pmp_allows(pa, part_len, AccessType::kWrite, mode, whole_page)) {
      raise_exception(Cause::kStoreAccessFault, part_va);
      return false;
    }
  }
  if (!access_page(va, first, AccessType::kWrite, value)) return false;
  uint64_t rest = value >> (8 * first);
  return access_page(va + first, size - first, AccessType::kWrite, rest);
}

uint8_t* Hart::atomic_pointer(uint64_t va, unsigned size, bool for_write) {
  const AccessType type = for_write ? AccessType::kWrite : AccessType::kRead;
  if (va & (size - 1)) {
    raise_exception(for_write ? Cause::kStoreMisaligned : Cause::kLoadMisaligned, va);
    return nullptr;
  }
  const TlbEntry& e = (for_write ? m_dtlb_write : m_dtlb_read)[tlb_index(va)];
  if (e.tag == (va >> kPageShift)) return reinterpret_cast<uint8_t*>(va + e.addend);
  const Priv mode = data_priv();
  uint64_t pa = 0;
  bool cacheable = false, whole_page = false;
  if (uint64_t fault = translate(va, type, mode, m_mstatus & mstatus::kSum, m_mstatus & mstatus::kMxr, pa,
                                 cacheable)) {
    raise_exception(static_cast<Cause>(fault - 1), va);
    return nullptr;
  }
  // Atomics work on RAM only; on device space they are access faults (3.6.3 "AMO" PMAs).
  if (!m_mem.contains(pa, size) || !pmp_allows(pa, size, type, mode, whole_page)) {
    raise_exception(access_fault_for(type), va);
    return nullptr;
  }
  const uint8_t need = for_write ? (p2m::kRead | p2m::kWrite) : p2m::kRead;
  if (!m_mem.allows(pa, size, need)) {
    uint64_t emulated = 0;
    switch (p2m_violation(pa, va, size, type, emulated)) {
      case P2mVerdict::kAllow: break;
      case P2mVerdict::kFault:
      case P2mVerdict::kHold: return nullptr;
      case P2mVerdict::kSkip:
        // The atomic works on a private word: guest memory is neither read nor written.
        m_skip_sink = emulated;
        return reinterpret_cast<uint8_t*>(&m_skip_sink);
    }
  }
  if (for_write) {
    m_mem.note_write(pa, size);
    if (m_mem.page_index(pa) == m_fetch_page_index) invalidate_fetch();
  }
  if ((m_mem.marks(m_mem.page_index(pa)) & mark::kAllAccesses) != 0) [[unlikely]] {
    m_mem.note_marked_access(pa, size, type);
  }
  return m_mem.ptr(pa);
}

bool Hart::translate_for_debug(uint64_t va, AccessType type, uint64_t& pa) {
  bool cacheable = false;
  const Priv mode = type == AccessType::kFetch ? priv : data_priv();
  return translate(va, type, mode, m_mstatus & mstatus::kSum, m_mstatus & mstatus::kMxr, pa, cacheable,
                   false) == 0;
}

}  // namespace vigil::riscv
