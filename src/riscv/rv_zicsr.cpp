// Zicsr instructions and the CSR file (privileged spec 2.1-2.3 for access rules).
#include <bit>

#include "riscv/decode.h"

namespace vigil::riscv {

namespace {
using namespace csr;

constexpr uint64_t kMstatusWritable = mstatus::kSie | mstatus::kMie | mstatus::kSpie | mstatus::kMpie |
                                      mstatus::kSpp | mstatus::kMpp | mstatus::kFs | mstatus::kMprv |
                                      mstatus::kSum | mstatus::kMxr | mstatus::kTvm | mstatus::kTw |
                                      mstatus::kTsr;
constexpr uint64_t kSstatusWritable =
    mstatus::kSie | mstatus::kSpie | mstatus::kSpp | mstatus::kFs | mstatus::kSum | mstatus::kMxr;
// medeleg: every exception S-mode may handle; ECALL from M (11) cannot be delegated.
constexpr uint64_t kMedelegWritable = 0xb3ff;
constexpr uint64_t kSatpAsidMask = 0xffffull << 44;

enum class CsrOp { kWrite, kSet, kClear };

template <CsrOp Op, bool Imm>
void csr_insn(Hart& h, const DecodedInsn& d) {
  const auto num = static_cast<unsigned>(d.imm);
  const uint64_t src = Imm ? d.rs1 : h.x[d.rs1];
  // CSRRW with rd=x0 does not read; CSRRS/CSRRC with rs1=x0 (or uimm 0) do not write (2.1).
  const bool do_read = Op != CsrOp::kWrite || d.rd != 32;
  const bool do_write = Op == CsrOp::kWrite || d.rs1 != 0;
  const uint32_t f3 = (Op == CsrOp::kWrite ? 1 : Op == CsrOp::kSet ? 2 : 3) + (Imm ? 4 : 0);
  const uint32_t raw = (num << 20) | (static_cast<uint32_t>(d.rs1) << 15) | (f3 << 12) |
                       (static_cast<uint32_t>(d.rd & 31) << 7) | 0x73;
  uint64_t old = 0;
  if (do_read || Op != CsrOp::kWrite) {
    if (!h.csr_read(num, old)) return h.raise_illegal(raw);
  }
  if (do_write) {
    const uint64_t value = Op == CsrOp::kWrite ? src : Op == CsrOp::kSet ? (old | src) : (old & ~src);
    if (!h.csr_write(num, value)) return h.raise_illegal(raw);
  }
  h.x[d.rd] = old;
  h.pc += d.len();
}

constexpr OpcodeEntry kTable[] = {
    {"csrrw", 0x707f, 0x1073, &csr_insn<CsrOp::kWrite, false>, Format::kCsr},
    {"csrrs", 0x707f, 0x2073, &csr_insn<CsrOp::kSet, false>, Format::kCsr},
    {"csrrc", 0x707f, 0x3073, &csr_insn<CsrOp::kClear, false>, Format::kCsr},
    {"csrrwi", 0x707f, 0x5073, &csr_insn<CsrOp::kWrite, true>, Format::kCsr},
    {"csrrsi", 0x707f, 0x6073, &csr_insn<CsrOp::kSet, true>, Format::kCsr},
    {"csrrci", 0x707f, 0x7073, &csr_insn<CsrOp::kClear, true>, Format::kCsr},
};
}  // namespace

std::span<const OpcodeEntry> rv_zicsr_table() { return kTable; }

void Hart::set_mstatus(uint64_t v) {
  uint64_t next = (m_mstatus & ~kMstatusWritable) | (v & kMstatusWritable);
  if (((next >> mstatus::kMppShift) & 3) == 2) next &= ~mstatus::kMpp;  // reserved MPP reads as U
  const uint64_t changed = next ^ m_mstatus;
  m_mstatus = next;
  if (changed & mstatus::kMxr) flush_tlb();
  select_tlb();
  end_slice();  // interrupt enables may have changed
}

bool Hart::csr_read(unsigned num, uint64_t& value) {
  if (static_cast<unsigned>(priv) < ((num >> 8) & 3)) return false;
  // Counters (Zicntr) visible below M only where mcounteren/scounteren allow (3.1.11, 4.1.5).
  if (num >= kCycle && num <= kHpmcounter31) {
    const unsigned bit = num - kCycle;
    if (priv != Priv::M && !((m_mcounteren >> bit) & 1)) return false;
    if (priv == Priv::U && !((m_scounteren >> bit) & 1)) return false;
    value = num == kTime ? m_platform.mtime() : (num == kCycle || num == kInstret) ? instret() : 0;
    return true;
  }
  switch (num) {
    case kFflags: if (!fs_enabled()) return false; value = fp.fcsr & 0x1f; return true;
    case kFrm: if (!fs_enabled()) return false; value = (fp.fcsr >> 5) & 7; return true;
    case kFcsr: if (!fs_enabled()) return false; value = fp.fcsr & 0xff; return true;
    case kSstatus: {
      uint64_t s = m_mstatus & mstatus::kSstatusMask;
      if ((m_mstatus & mstatus::kFs) == mstatus::kFsDirty) s |= mstatus::kSd;
      value = s;
      return true;
    }
    case kSie: value = m_mie & m_mideleg; return true;
    case kStvec: value = m_stvec; return true;
    case kScounteren: value = m_scounteren; return true;
    case kSenvcfg: value = m_senvcfg; return true;
    case kSscratch: value = m_sscratch; return true;
    case kSepc: value = m_sepc; return true;
    case kScause: value = m_scause; return true;
    case kStval: value = m_stval; return true;
    case kSip: value = mip() & m_mideleg; return true;
    case kSatp:
      if (priv == Priv::S && (m_mstatus & mstatus::kTvm)) return false;
      value = m_satp;
      return true;
    case kMvendorid: case kMarchid: case kMimpid: case kMconfigptr: value = 0; return true;
    case kMhartid: value = m_hartid; return true;
    case kMstatus:
      value = m_mstatus | (((m_mstatus & mstatus::kFs) == mstatus::kFsDirty) ? mstatus::kSd : 0);
      return true;
    case kMisa: value = m_misa; return true;
    case kMedeleg: value = m_medeleg; return true;
    case kMideleg: value = m_mideleg; return true;
    case kMie: value = m_mie; return true;
    case kMtvec: value = m_mtvec; return true;
    case kMcounteren: value = m_mcounteren; return true;
    case kMenvcfg: value = m_menvcfg; return true;
    case kMcountinhibit: value = m_mcountinhibit; return true;
    case kMscratch: value = m_mscratch; return true;
    case kMepc: value = m_mepc; return true;
    case kMcause: value = m_mcause; return true;
    case kMtval: value = m_mtval; return true;
    case kMip: value = mip(); return true;
    case kMcycle: case kMinstret: value = instret(); return true;
    // No triggers: tselect holds only 0, tdata1 says "no trigger at this tselect" (type 0),
    // tdata2/3 read 0, and tinfo lists type 0 as the only one supported.
    case kTselect: case kTdata1: case kTdata2: case kTdata3: value = 0; return true;
    case kTinfo: value = 1; return true;
    default: break;
  }
  if (num >= kMhpmcounter3 && num <= kMhpmcounter31) { value = 0; return true; }
  if (num >= kMhpmevent3 && num <= kMhpmevent31) { value = 0; return true; }
  if (num >= kPmpcfg0 && num <= kPmpcfg15) {
    if (num & 1) return false;  // odd pmpcfg registers do not exist on RV64
    const unsigned first = (num - kPmpcfg0) * 4;
    value = 0;
    for (unsigned i = 0; i < 8 && first + i < m_pmp.size(); ++i) value |= uint64_t{m_pmp[first + i].cfg} << (8 * i);
    return true;
  }
  if (num >= kPmpaddr0 && num <= kPmpaddr63) {
    const unsigned i = num - kPmpaddr0;
    value = i < m_pmp.size() ? m_pmp[i].addr : 0;
    return true;
  }
  return false;
}

bool Hart::csr_read_as_machine(unsigned num, uint64_t& value) {
  const Priv p = priv;
  priv = Priv::M;
  const bool ok = csr_read(num, value);
  priv = p;
  return ok;
}

bool Hart::csr_write(unsigned num, uint64_t value) {
  if (watching(watch::kCsrWrite)) [[unlikely]] return csr_write_watched(num, value);
  return csr_write_unwatched(num, value);
}

bool Hart::csr_write_watched(unsigned num, uint64_t value) {
  // Only writes that would succeed are reported, with the value the CSR reads before them.
  uint64_t old = 0;
  if (static_cast<unsigned>(priv) < ((num >> 8) & 3) || (num >> 10) == 3 || !csr_read(num, old)) {
    return csr_write_unwatched(num, value);
  }
  if (hooks->on_csr_write(*this, num, old, value) == HookVerdict::kDeny) return true;  // retires, writes nothing
  return csr_write_unwatched(num, value);
}

bool Hart::csr_write_unwatched(unsigned num, uint64_t value) {
  if (static_cast<unsigned>(priv) < ((num >> 8) & 3)) return false;
  if ((num >> 10) == 3) return false;  // read-only CSR
  switch (num) {
    case kFflags: if (!fs_enabled()) return false; fp.fcsr = (fp.fcsr & ~0x1fu) | (value & 0x1f); mark_fs_dirty(); return true;
    case kFrm: if (!fs_enabled()) return false; fp.fcsr = (fp.fcsr & 0x1fu) | ((value & 7) << 5); mark_fs_dirty(); return true;
    case kFcsr: if (!fs_enabled()) return false; fp.fcsr = value & 0xff; mark_fs_dirty(); return true;
    case kSstatus: set_mstatus((m_mstatus & ~kSstatusWritable) | (value & kSstatusWritable)); return true;
    case kSie:
      m_mie = (m_mie & ~m_mideleg) | (value & m_mideleg);
      end_slice();
      return true;
    case kStvec: m_stvec = (value & 2) ? value & ~3ull : value; return true;
    case kScounteren: m_scounteren = static_cast<uint32_t>(value & 7); return true;
    case kSenvcfg: m_senvcfg = 0; return true;
    case kSscratch: m_sscratch = value; return true;
    case kSepc: m_sepc = value & ~1ull; return true;
    case kScause: m_scause = value; return true;
    case kStval: m_stval = value; return true;
    case kSip: {
      // Only SSIP is writable from S-mode, and only if delegated (4.1.3).
      const uint64_t mask = (1ull << irq::kSsi) & m_mideleg;
      set_mip_bits(mask & ~value, false);
      if (value & mask) set_mip_bits(mask & value, true);
      end_slice();
      return true;
    }
    case kSatp: {
      if (priv == Priv::S && (m_mstatus & mstatus::kTvm)) return false;
      const uint64_t mode = value >> satp::kModeShift;
      if (mode != satp::kModeBare && mode != satp::kModeSv39 && mode != satp::kModeSv48) return true;  // WARL: ignored
      // No ASIDs implemented (ASIDLEN 0); the TLB is dropped on every satp write.
      m_satp = value & ~kSatpAsidMask;
      flush_tlb();
      return true;
    }
    case kMstatus: set_mstatus(value); return true;
    case kMisa: return true;  // WARL, fixed
    case kTselect: case kTdata1: case kTdata2: case kTdata3: case kTinfo: return true;  // no triggers: writes ignored
    case kMedeleg: m_medeleg = value & kMedelegWritable; return true;
    case kMideleg: m_mideleg = value & irq::kSMask; end_slice(); return true;
    case kMie: m_mie = value & irq::kAll; end_slice(); return true;
    case kMtvec: m_mtvec = (value & 2) ? value & ~3ull : value; return true;
    case kMcounteren: m_mcounteren = static_cast<uint32_t>(value & 7); return true;
    case kMenvcfg: m_menvcfg = 0; return true;
    case kMcountinhibit: m_mcountinhibit = static_cast<uint32_t>(value & 5); return true;
    case kMscratch: m_mscratch = value; return true;
    case kMepc: m_mepc = value & ~1ull; return true;
    case kMcause: m_mcause = value; return true;
    case kMtval: m_mtval = value; return true;
    case kMip: {
      uint64_t mask = 1ull << irq::kSsi;
      if (!builtin_sbi) mask |= 1ull << irq::kSti;
      set_mip_bits(mask & ~value, false);
      if (value & mask) set_mip_bits(mask & value, true);
      end_slice();
      return true;
    }
    case kMcycle: case kMinstret:
      // 3.1.11: the counters "can be written with a given value". mcycle is the same count
      // here (one instruction per cycle). Rebase so that instret() reads `value` now; the
      // following instructions count on from there.
      m_instret = value - static_cast<uint64_t>(m_slice_len - m_budget);
      return true;
    default: break;
  }
  if (num >= kMhpmcounter3 && num <= kMhpmcounter31) return true;
  if (num >= kMhpmevent3 && num <= kMhpmevent31) return true;
  if (num >= kPmpcfg0 && num <= kPmpcfg15) {
    if (num & 1) return false;
    const unsigned first = (num - kPmpcfg0) * 4;
    for (unsigned i = 0; i < 8 && first + i < m_pmp.size(); ++i) {
      PmpEntry& e = m_pmp[first + i];
      if (e.cfg & 0x80) continue;  // locked
      uint8_t cfg = static_cast<uint8_t>(value >> (8 * i)) & 0x9f;
      if ((cfg & 3) == 2) cfg &= ~3;  // R=0, W=1 is reserved
      e.cfg = cfg;
    }
  } else if (num >= kPmpaddr0 && num <= kPmpaddr63) {
    const unsigned i = num - kPmpaddr0;
    // A locked entry ignores writes to its address, and so does pmpaddr(i-1) when entry i is
    // locked and uses TOR, since it is that entry's bottom (3.7.1.3).
    const auto locked = [&](unsigned n) { return n < m_pmp.size() && (m_pmp[n].cfg & 0x80); };
    const bool locked_tor_above = locked(i + 1) && ((m_pmp[i + 1].cfg >> 3) & 3) == 1;
    if (i < m_pmp.size() && !locked(i) && !locked_tor_above) m_pmp[i].addr = value & ((1ull << 54) - 1);
  } else {
    return false;
  }
  m_pmp_active = false;
  for (const auto& e : m_pmp) m_pmp_active |= (e.cfg & 0x18) != 0;
  flush_tlb();
  return true;
}

}  // namespace vigil::riscv
