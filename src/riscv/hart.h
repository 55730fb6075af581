// One RISC-V hart (RV64IMAFDC, Zicsr, Zifencei, Zicntr; M/S/U; Sv39/Sv48; PMP).
//
// Speed comes from two caches, both private to the hart's thread:
//  - a software TLB per privilege view, holding host-pointer addends for RAM pages whose
//    rights allow the access, so a hit costs one compare (DESIGN.md "Performance shape");
//  - a decoded-instruction cache per guest-physical code page. Each guest page has a
//    generation counter in GuestMemory; a store to a page that holds decoded code bumps it
//    (write TLB entries are never installed for such pages, so such stores take the slow
//    path), and FENCE.I drops the hart's whole cache.
// Guest outcomes are architectural traps taken by the hart; nothing is thrown.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "riscv/csr.h"
#include "riscv/fpu.h"

namespace vigil::riscv {

class Hart;
class Jit;

enum class AccessType : uint8_t { kRead = 0, kWrite = 1, kFetch = 2 };

inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kPageSize = 1ull << kPageShift;
inline constexpr uint64_t kPageMask = kPageSize - 1;

// Second-stage access rights per guest-physical page (the P2m's R/W/X, as in Xen's EPT).
namespace p2m {
inline constexpr uint8_t kRead = 1, kWrite = 2, kExec = 4, kAll = 7;
}

// What happens to an access the P2m rights forbid, as a monitor decides (vm_event).
enum class P2mVerdict : uint8_t {
  kAllow,  // this one access proceeds (rights unchanged)
  kSkip,   // the access does not happen: a store is dropped, a load reads `value`; the
           // instruction completes (a monitor's "deny" or "emulate")
  kFault,  // the guest takes an access fault (as with no monitor)
  kHold,   // the access does not happen yet: the instruction does not retire, pc stays on it
           // and the slice ends, so it runs again when the vCPU next runs (a gdb watchpoint
           // stops before the access, as RISC-V's non-steppable watchpoints do)
};

// Told of an access the P2m rights forbid (src/monitor implements it). For kSkip on a
// load, `value` is what the load returns. Fetches cannot be skipped or held (they fault).
class P2mViolationHandler {
 public:
  virtual ~P2mViolationHandler() = default;
  virtual P2mVerdict on_p2m_violation(Hart& hart, uint64_t gpa, uint64_t gva, unsigned size, AccessType type,
                                      uint64_t& value) = 0;
};

// Events a monitor can watch on a hart (src/monitor implements HartHooks). Each hook sits
// where its event has exactly one place in the interpreter and is gated by a bit of
// Hart::watch, so an unwatched hart pays one test of a cached word there and nothing in
// the instruction loop (DESIGN.md "Hooks are part of the core").
namespace watch {
inline constexpr uint32_t kCsrWrite = 1,  // csr_write of any CSR (the hook filters)
    kUserEcall = 2,                       // ECALL from U-mode (a system call)
    kReturnToUser = 4,                    // SRET/MRET into U-mode (system call returns)
    kTrap = 8,                            // every exception and interrupt taken
    kSingleStep = 16,                     // after every instruction
    kGuestRequest = 32;                   // ECALL from S-mode with a7 = kGuestRequestEid
// Breakpoints need no bit: GuestMemory marks their pages (set_breakpoint_page).
}  // namespace watch

// SBI extension a cooperating guest calls to reach its monitors (vm_event "guest request"):
// in the vendor-specific range (SBI spec 3 "Extension IDs": 0x09000000-0x09FFFFFF), "VIL".
// a6 is the function id, a0-a5 its arguments; a0/a1 return the SBI error and value.
inline constexpr uint64_t kGuestRequestEid = 0x0956494c;

// Why a page is marked to leave the fast path (DESIGN.md "Hooks are part of the core"): a
// marked page never enters the data TLB or the fetch TLB and is never translated, so every
// access to it reaches access_page / refill_fetch, which tell the memory's PageObserver.
// P2m rights restrictions (vm_event) use the same exits through GuestMemory::rights().
namespace mark {
inline constexpr uint8_t kPsrSample = 1;  // a page the cache model samples (src/psr)
// A clean page while dirty logging runs (live migration). Unlike the other reasons it only
// keeps the page out of the write TLB: reads, fetches and translated code stay fast, and the
// first store clears it (GuestMemory::log_dirty), so a page costs one slow store per round.
inline constexpr uint8_t kDirtyLog = 0x80;
// The reasons that stop every access (and are told to the PageObserver).
inline constexpr uint8_t kAllAccesses = static_cast<uint8_t>(~kDirtyLog);
}  // namespace mark

// Told of accesses to marked pages: by harts (data, atomics, one per entry into a code page)
// and by device DMA (GuestDma). `pa` is guest-physical; may be called from any vCPU thread.
class PageObserver {
 public:
  virtual ~PageObserver() = default;
  virtual void on_marked_access(uint64_t pa, uint64_t len, AccessType type) = 0;
};

enum class HookVerdict : uint8_t {
  kContinue,  // proceed as the guest asked
  kDeny,      // the CSR write / system call / breakpointed instruction does not happen
  kEmulate,   // CSR write: write `value` instead; system call: skipped, a0 = `value`
  kHold,      // breakpoint: the instruction does not run yet and the slice ends (pc stays)
};

class HartHooks {
 public:
  virtual ~HartHooks() = default;
  // Before a CSR write takes effect; `value` may be replaced (kEmulate).
  virtual HookVerdict on_csr_write(Hart& hart, unsigned csr, uint64_t old_value, uint64_t& value) = 0;
  // ECALL from U-mode, before the trap; kDeny/kEmulate skip the call with a0 = `value`.
  virtual HookVerdict on_user_ecall(Hart& hart, uint64_t& value) = 0;
  // After an xRET landed in U-mode (pc and registers are the user's).
  virtual void on_return_to_user(Hart& hart) = 0;
  // After a trap was taken (pc at the handler).
  virtual void on_trap(Hart& hart, uint64_t cause, uint64_t tval, bool interrupt) = 0;
  // After each instruction while single-stepping.
  virtual void on_single_step(Hart& hart) = 0;
  // SBI guest request (a7 = kGuestRequestEid); sets a0/a1.
  virtual void on_guest_request(Hart& hart) = 0;
  // Before the instruction at guest-physical `gpa` (a breakpoint) executes.
  virtual HookVerdict on_breakpoint(Hart& hart, uint64_t gpa) = 0;
  // Byte offsets of the breakpoints in the guest-physical page at `page_pa`.
  virtual void breakpoints_in_page(uint64_t page_pa, std::vector<uint16_t>& offsets) = 0;
};

// Guest RAM as the harts see it: one contiguous block of host memory with per-page
// access rights (the P2m). Shared by all harts of a machine.
class GuestMemory {
 public:
  GuestMemory(uint8_t* host, uint64_t base, uint64_t size);

  uint8_t* host() const { return m_host; }
  uint64_t base() const { return m_base; }
  uint64_t size() const { return m_size; }
  bool contains(uint64_t pa, uint64_t len) const {
    return pa >= m_base && len <= m_size && pa - m_base <= m_size - len;
  }
  uint8_t* ptr(uint64_t pa) const { return m_host + (pa - m_base); }
  uint64_t page_index(uint64_t pa) const { return (pa - m_base) >> kPageShift; }

  // Decoded-code tracking (see the file comment).
  std::atomic<uint32_t>& page_gen(uint64_t index) { return m_gen[index]; }
  bool page_has_code(uint64_t index) const { return m_code[index].load(std::memory_order_relaxed) != 0; }
  // Marks a page as holding decoded code; returns true if it did not before.
  bool mark_code(uint64_t index) { return m_code[index].exchange(1, std::memory_order_acq_rel) == 0; }
  // A write reached [pa, pa+len): drop decoded code of the pages it covers.
  void note_write(uint64_t pa, uint64_t len);
  // Bumped whenever a page becomes code, so harts drop write-TLB entries to it.
  std::atomic<uint64_t> code_epoch{0};

  // P2m rights (p2m::kRead | kWrite | kExec) of the page holding `pa`.
  uint8_t rights(uint64_t index) const { return m_rights[index].load(std::memory_order_relaxed); }
  bool allows(uint64_t pa, uint64_t len, uint8_t need) const;
  // Sets the rights of pages [first, first+count); harts drop cached translations before
  // their next slice.
  void set_rights(uint64_t first_index, uint64_t count, uint8_t rights);
  bool restricted() const { return m_restricted_pages.load(std::memory_order_relaxed) != 0; }
  std::atomic<uint64_t> rights_epoch{0};
  P2mViolationHandler* violation_handler = nullptr;

  // Hypervisor breakpoints (vm_event): pages holding at least one. Marking or clearing a
  // page drops its decoded code, so every hart rebuilds it with (or without) breakpoint
  // slots before it next executes there; guest memory itself is never modified.
  bool has_breakpoints(uint64_t index) const {
    return m_breakpoints[index].load(std::memory_order_relaxed) != 0;
  }
  void set_breakpoint_page(uint64_t index, bool on);

  // Page marks (mark:: reasons). Setting or clearing a mark drops cached translations and
  // decoded code of the page (harts see it from their next slice).
  uint8_t marks(uint64_t index) const { return m_marks[index].load(std::memory_order_relaxed); }
  bool any_marks() const { return m_marked_pages.load(std::memory_order_relaxed) != 0; }
  void set_mark(uint64_t index, uint8_t reason, bool on);
  // Tells the observer of an access to [pa, pa+len) if the range touches a marked page.
  void note_marked_access(uint64_t pa, uint64_t len, AccessType type) {
    PageObserver* o = page_observer.load(std::memory_order_acquire);
    if (o != nullptr) o->on_marked_access(pa, len, type);
  }
  // Set before marking pages; must outlive every access (cleared only when no hart runs).
  std::atomic<PageObserver*> page_observer{nullptr};

  // Dirty-page logging (live migration; DESIGN.md "Hooks are part of the core"). While it
  // runs, a clean page carries mark::kDirtyLog so its first store takes the slow path,
  // which sets the page's bit and clears the mark; device DMA and other host-side writes
  // set bits through note_write. No extra cost on any store when logging is off.
  //
  // Protocol (why no store is lost): fetch_and_clear_dirty swaps each bitmap word to zero,
  // then re-marks the pages that were dirty and bumps code_epoch, so every hart drops its
  // write-TLB entries at its next slice boundary. The caller must wait for that (a hart
  // publishes it in Hart::seen_code_epoch) before reading page contents: a store through a
  // stale entry then lands before the read, and every later store finds the mark.
  void start_dirty_log();
  void stop_dirty_log();
  bool dirty_logging() const { return m_dirty_logging.load(std::memory_order_relaxed); }
  // Swaps the bitmap out (one bit per page, bit i of word i/64); returns the dirty count.
  uint64_t fetch_and_clear_dirty(std::vector<uint64_t>& words);
  uint64_t dirty_words() const { return ((m_size >> kPageShift) + 63) / 64; }
  void log_dirty(uint64_t index) {
    // Mark first, bit second: a concurrent fetch_and_clear_dirty then either sees the bit
    // or re-marks the page after us (fetch_and_clear_dirty's comment).
    m_marks[index].fetch_and(static_cast<uint8_t>(~mark::kDirtyLog), std::memory_order_acq_rel);
    m_dirty[index / 64].fetch_or(1ull << (index % 64), std::memory_order_acq_rel);
  }
  void log_dirty_range(uint64_t pa, uint64_t len);

 private:
  uint8_t* m_host;
  uint64_t m_base;
  uint64_t m_size;
  std::unique_ptr<std::atomic<uint32_t>[]> m_gen;
  std::unique_ptr<std::atomic<uint8_t>[]> m_code;
  std::unique_ptr<std::atomic<uint8_t>[]> m_rights;
  std::unique_ptr<std::atomic<uint8_t>[]> m_breakpoints;
  std::unique_ptr<std::atomic<uint8_t>[]> m_marks;
  std::atomic<uint64_t> m_restricted_pages{0};
  std::atomic<uint64_t> m_marked_pages{0};
  std::unique_ptr<std::atomic<uint64_t>[]> m_dirty;
  std::atomic<bool> m_dirty_logging{false};
};

// What a hart needs from the board it sits on. Implemented by machine::Machine.
class Platform {
 public:
  virtual ~Platform() = default;
  // Physical accesses outside RAM. Return false for an access fault.
  virtual bool mmio_read(Hart& hart, uint64_t pa, unsigned size, uint64_t& value) = 0;
  virtual bool mmio_write(Hart& hart, uint64_t pa, unsigned size, uint64_t value) = 0;
  // The platform clock (mtime), at the timebase frequency in the device tree.
  virtual uint64_t mtime() = 0;
  // ECALL from S-mode when no firmware runs in M-mode: the built-in SBI. True if handled
  // (the SBI implementation sets a0/a1); false makes the hart take the trap normally.
  virtual bool sbi_ecall(Hart& hart) = 0;
  // A trap was about to be taken into M-mode while no firmware exists to handle it.
  virtual void unhandled_machine_trap(Hart& hart, uint64_t cause, uint64_t tval) = 0;
};

struct DecodedInsn;
using Handler = void (*)(Hart&, const DecodedInsn&);

// One instruction decoded once: handler plus operands (STYLE.md: decode from a table).
struct DecodedInsn {
  Handler fn;
  int32_t imm;      // immediate; the raw encoding for FP arithmetic; CSR number for Zicsr
  uint8_t rd;       // 32 when the encoding's rd is x0 (x[32] is a write sink)
  uint8_t rs1;
  uint8_t rs2;
  uint8_t flags;    // bits 4:0 rs3, bit 7 set for a 16-bit (compressed) encoding
  unsigned len() const { return (flags & 0x80) ? 2 : 4; }
  unsigned rs3() const { return flags & 31; }
};
static_assert(sizeof(DecodedInsn) == 16);

// Decodes the 32-bit (or expanded compressed) instruction into `out`.
void decode(uint32_t raw, bool compressed, DecodedInsn& out);

// Why run() returned (STYLE.md: named reasons for leaving run()).
enum class ExitReason : uint8_t {
  kSliceDone,  // instruction budget used up or an event needs the outer loop
  kWfi,        // executed WFI with no interrupt pending: sleep until one is
  kStopped,    // hart is stopped (SBI HSM) or the machine is halting
};

enum class HartState : uint8_t { kRunning, kStopped };

struct PmpEntry {
  uint8_t cfg = 0;
  uint64_t addr = 0;
};

// Everything architectural a hart holds, for snapshots (issue 11, src/migrate). Caches
// (TLBs, decoded code, translated blocks) are not state; the LR/SC reservation is dropped
// on restore, as an SC may fail spuriously (unprivileged spec 8.2).
struct HartSnapshot {
  uint64_t x[32] = {};  // x[0] is saved as 0
  uint64_t pc = 0;
  FpuState fp = {};
  Priv priv = Priv::M;
  uint64_t mstatus = 0, misa = 0, medeleg = 0, mideleg = 0, mie = 0, mip = 0;
  uint64_t mtvec = 0, mscratch = 0, mepc = 0, mcause = 0, mtval = 0;
  uint64_t stvec = 0, sscratch = 0, sepc = 0, scause = 0, stval = 0, satp = 0;
  uint32_t mcounteren = 0, scounteren = 0, mcountinhibit = 0;
  uint64_t menvcfg = 0, senvcfg = 0;
  std::array<PmpEntry, 16> pmp{};
  uint64_t instret = 0;
  uint64_t mtimecmp = ~0ull, stimecmp = ~0ull;
  bool running = true;       // HartState::kRunning (false: stopped, SBI HSM)
  bool wfi_pending = false;  // sleeping in WFI
  bool builtin_sbi = false;
};

class Hart {
 public:
  Hart(unsigned hartid, GuestMemory& mem, Platform& platform);
  ~Hart();
  Hart(const Hart&) = delete;
  Hart& operator=(const Hart&) = delete;

  // ---- architectural state (public: the interpreter's handlers, SBI and tests use it) ----
  uint64_t x[33] = {};  // x[32] is the sink for writes to x0
  uint64_t pc = 0;
  FpuState fp = {};
  Priv priv = Priv::M;

  unsigned hartid() const { return m_hartid; }
  GuestMemory& memory() { return m_mem; }
  Platform& platform() { return m_platform; }

  // Resets to the state after power-on (privileged spec 3.4) at `reset_pc`.
  void reset(uint64_t reset_pc);
  // Enter S-mode directly, as firmware would before jumping to a kernel (built-in SBI mode):
  // delegations, counters and PMP set up the way OpenSBI leaves them.
  void enter_supervisor_as_firmware(uint64_t entry, uint64_t a0, uint64_t a1);

  // Snapshot support (HartSnapshot). save_state: only while the hart is outside run().
  // restore_state: on a hart that is outside run(); the caller has checked the values
  // (src/migrate/objects.cpp: privilege, satp mode, ...). Drops every cache.
  HartSnapshot save_state() const;
  void restore_state(const HartSnapshot& s);

  // Runs up to `budget` instructions.
  ExitReason run(uint64_t budget);

  // ---- interrupts ----
  // Bits of mip driven from outside (PLIC, CLINT, SBI IPIs); any thread.
  void set_mip_bits(uint64_t bits, bool level);
  uint64_t mip() const { return m_mip.load(std::memory_order_relaxed); }
  // Interrupts that are pending and enabled in mie (ignoring global enables): WFI's wake condition.
  bool interrupt_pending_for_wfi() const;
  // M-mode timer compare (CLINT mtimecmp) and the built-in SBI's supervisor timer deadline.
  std::atomic<uint64_t> mtimecmp{~0ull};
  std::atomic<uint64_t> stimecmp{~0ull};
  // Recomputes MTIP/STIP from mtime; returns the earliest future deadline.
  uint64_t update_timers(uint64_t now);

  // ---- requests from other threads, applied at the next slice boundary ----
  static constexpr uint32_t kReqFenceI = 1, kReqSfenceVma = 2;
  void request(uint32_t what);
  uint32_t pending_requests() const { return m_requests.load(std::memory_order_acquire); }
  // Applies pending requests now; only from the hart's own thread (e.g. while it waits in
  // an SBI call for other harts, so two harts fencing each other cannot deadlock).
  void service_requests() { apply_requests(); }
  // Wakes the hart's thread if it sleeps in WFI, and tells the wake hook (a scheduler that
  // parks idle vCPUs instead of sleeping on the hart) that the hart may have work.
  void kick();
  // Set once before the hart runs; called from any thread, must be cheap and non-blocking
  // beyond a short lock.
  std::function<void()> wake_hook;
  // Sleeps until an interrupt is pending for WFI, a request arrives, or `deadline_mtime`.
  void wait_for_interrupt(uint64_t deadline_mtime);

  std::atomic<HartState> state{HartState::kRunning};

  // ---- traps ----
  void raise_exception(Cause cause, uint64_t tval);
  void raise_illegal(uint32_t raw) { raise_exception(Cause::kIllegalInsn, raw); }
  // The encoding at pc (16 or 32 bits) for an illegal-instruction tval, read without side
  // effects; 0 if it cannot be read.
  uint32_t insn_bits_at_pc();

  // ---- CSRs (privileged spec chapters 2-4) ----
  // Returns false when the access is illegal (then the caller raises illegal instruction).
  bool csr_read(unsigned num, uint64_t& value);
  bool csr_write(unsigned num, uint64_t value);
  uint64_t mstatus() const { return m_mstatus; }
  void set_mstatus(uint64_t v);
  uint64_t satp() const { return m_satp; }
  // For introspection from outside the guest: Linux parks `current` here while in U-mode.
  uint64_t sscratch() const { return m_sscratch; }
  void mark_fs_dirty() { m_mstatus |= mstatus::kFsDirty; }
  bool fs_enabled() const { return (m_mstatus & mstatus::kFs) != 0; }

  // ---- privileged instructions ----
  void do_mret();
  void do_sret();
  void do_wfi(const DecodedInsn& d);
  void do_sfence_vma(const DecodedInsn& d);
  void do_fence_i();
  void do_ecall();

  // ---- memory (fast paths inline, slow paths in mmu.cpp) ----
  template <typename T>
  bool load(uint64_t va, T& out) {
    const TlbEntry& e = m_dtlb_read[tlb_index(va)];
    if (e.tag == (va >> kPageShift) && (va & kPageMask) <= kPageSize - sizeof(T)) [[likely]] {
      std::memcpy(&out, reinterpret_cast<const uint8_t*>(va + e.addend), sizeof(T));
      return true;
    }
    uint64_t v = 0;
    if (!load_slow(va, sizeof(T), v)) return false;
    out = static_cast<T>(v);
    return true;
  }
  template <typename T>
  bool store(uint64_t va, T value) {
    const TlbEntry& e = m_dtlb_write[tlb_index(va)];
    if (e.tag == (va >> kPageShift) && (va & kPageMask) <= kPageSize - sizeof(T)) [[likely]] {
      std::memcpy(reinterpret_cast<uint8_t*>(va + e.addend), &value, sizeof(T));
      return true;
    }
    return store_slow(va, sizeof(T), static_cast<uint64_t>(value));
  }
  // Host pointer for an aligned atomic access of `size` bytes (A extension), or nullptr
  // after raising the right trap. `for_write` selects store/AMO vs load rights and causes.
  uint8_t* atomic_pointer(uint64_t va, unsigned size, bool for_write);

  // LR/SC reservation (unprivileged spec 8.2): address and the value seen by LR.
  uint64_t reservation_addr = ~0ull;
  uint64_t reservation_value = 0;

  // Translation for tools and tests: guest-virtual -> guest-physical with the current
  // satp and the given privilege view; returns false on a fault (no trap is raised).
  bool translate_for_debug(uint64_t va, AccessType type, uint64_t& pa);

  // ---- counters ----
  // Instructions retired before the current one (a CSR read of instret sees the count
  // before itself).
  uint64_t instret() const {
    const int64_t in_slice = m_slice_len - m_budget;
    return m_instret + static_cast<uint64_t>(in_slice > 0 ? in_slice - 1 : 0);
  }

  // Ends the current slice after this instruction (state changed that the outer loop checks).
  // The slice shrinks to what ran, so instret counts only retired instructions.
  void end_slice() {
    m_slice_len -= m_budget;
    m_budget = 0;
  }
  void invalidate_fetch() { m_fetch_vpage = ~0ull; }

  // Set when this hart last executed WFI and it should sleep (run() returns kWfi).
  bool wfi_pending = false;
  // True while run() executes; a hart outside run() applies requests before it next runs.
  std::atomic<bool> in_run{false};
  // The GuestMemory::code_epoch this hart last acted on (write TLB dropped), for dirty logging.
  std::atomic<uint64_t> seen_code_epoch{0};
  // No firmware in M-mode: S-mode ECALLs go to the platform's SBI and STIP follows stimecmp.
  bool builtin_sbi = false;

  // ---- vm_event (src/monitor) ----
  // `hooks` is set before any bit of `watch` (watch:: bits); both from any thread. A change
  // of kSingleStep or kBreakpoint applies from the next slice.
  HartHooks* hooks = nullptr;
  std::atomic<uint32_t> watch{0};
  bool watching(uint32_t bits) const { return (watch.load(std::memory_order_relaxed) & bits) != 0; }
  // CSR access with M-mode rights for tools (monitors reading old values, setting registers).
  bool csr_read_as_machine(unsigned num, uint64_t& value);

  // ---- binary translation (jit.h) ----
  // Translate hot code; set before the hart runs (tests compare both ways). Translation
  // also needs JitPool::instance() to be available.
  bool jit_enabled = true;
  // Bytes of translated code this hart keeps before it drops all blocks and starts over;
  // 0 = its whole code area (JitPool::kChunkSize). Tests make it small.
  size_t jit_code_limit = 0;
  // The translator, once the first block was made (nullptr before, or without a code area).
  // Any thread may read it (it lives as long as the hart).
  const Jit* jit() const { return m_jit_published.load(std::memory_order_acquire); }

 private:
  friend struct HartTestAccess;
  friend class Jit;
  static constexpr unsigned kTlbSize = 256;
  struct TlbEntry {
    uint64_t tag = ~0ull;   // virtual page number
    intptr_t addend = 0;    // host address = va + addend
  };
  struct TlbSet {
    std::array<TlbEntry, kTlbSize> read, write;
  };
  struct DecodedPage {
    uint64_t ppn_index = 0;
    uint32_t gen = 0;
    uint32_t epoch = 0;
    uint32_t used = 0;  // the sweep period (m_sweep) in which a fetch last entered the page
    DecodedInsn slots[kPageSize / 2];
    // Binary translation: how often each slot ran (jit_probe), and its interpreter handler
    // while the probe sits in the slot.
    uint8_t heat[kPageSize / 2];
    uint16_t real[kPageSize / 2];  // decode.h handler_index()
  };
  struct FetchEntry {
    uint64_t tag = ~0ull;
    uint64_t page_index = 0;  // RAM page index of the translation
    DecodedPage* page = nullptr;
  };

  static unsigned tlb_index(uint64_t va) { return (va >> kPageShift) & (kTlbSize - 1); }

  // Translation (Privileged spec 4.3.2 / 4.5: Sv39 and Sv48). Returns 0 on success or the
  // exception cause + 1 (so that 0 means "no fault").
  uint64_t translate(uint64_t va, AccessType type, Priv mode, bool sum, bool mxr, uint64_t& pa,
                     bool& cacheable, bool update_ad = true);
  bool pmp_allows(uint64_t pa, uint64_t len, AccessType type, Priv mode, bool& whole_page) const;
  // An access to RAM at `pa` (from `va`) the P2m rights forbid: asks the violation handler
  // (raising the access fault itself for kFault; fetches are never skipped).
  P2mVerdict p2m_violation(uint64_t pa, uint64_t va, unsigned size, AccessType type, uint64_t& value);
  bool load_slow(uint64_t va, unsigned size, uint64_t& out);
  bool store_slow(uint64_t va, unsigned size, uint64_t value);
  // Access of up to 8 bytes within one page; on failure raises the trap and returns false.
  bool access_page(uint64_t va, unsigned size, AccessType type, uint64_t& value);
  Priv data_priv() const;
  void select_tlb();
  void flush_tlb();
  void flush_decoded();
  // Drops the decoded copies (and with them the translated blocks) of pages no fetch has
  // entered since the previous sweep: the code a guest ran once, at boot, stops costing
  // host memory (bench/memory.py).
  void sweep_decoded(uint64_t now);
  void take_trap(uint64_t cause, uint64_t tval, bool interrupt);
  bool check_interrupts();
  void refill_fetch();
  void apply_requests();
  DecodedPage* decoded_page_for(uint64_t page_index);
  static void decode_slot(Hart& h, const DecodedInsn& d);
  static void breakpoint_slot(Hart& h, const DecodedInsn& d);
  static void jit_probe(Hart& h, const DecodedInsn& d);
  static void jit_entry(Hart& h, const DecodedInsn& d);
  bool jit_ready();
  ExitReason run_single_stepping(uint64_t budget);
  bool csr_write_watched(unsigned num, uint64_t value);
  bool csr_write_unwatched(unsigned num, uint64_t value);
  void raise_fetch_fault(uint64_t cause_plus_one, uint64_t va);

  unsigned m_hartid;
  GuestMemory& m_mem;
  Platform& m_platform;

  // CSR state.
  uint64_t m_mstatus = 0;
  uint64_t m_misa = 0;
  uint64_t m_medeleg = 0, m_mideleg = 0, m_mie = 0;
  std::atomic<uint64_t> m_mip{0};
  uint64_t m_mtvec = 0, m_mscratch = 0, m_mepc = 0, m_mcause = 0, m_mtval = 0;
  uint64_t m_stvec = 0, m_sscratch = 0, m_sepc = 0, m_scause = 0, m_stval = 0, m_satp = 0;
  uint32_t m_mcounteren = 0, m_scounteren = 0, m_mcountinhibit = 0;
  uint64_t m_menvcfg = 0, m_senvcfg = 0;
  std::array<PmpEntry, 16> m_pmp{};
  bool m_pmp_active = false;

  // TLB sets by privilege view: U, S, S with SUM, M (M without MPRV maps identity).
  std::array<TlbSet, 4> m_tlb{};
  TlbEntry* m_dtlb_read = nullptr;
  TlbEntry* m_dtlb_write = nullptr;
  std::array<std::array<FetchEntry, kTlbSize>, 3> m_itlb{};  // U, S, M
  uint64_t m_seen_code_epoch = 0;
  uint64_t m_seen_rights_epoch = 0;

  // Decoded-instruction cache.
  std::unordered_map<uint64_t, std::unique_ptr<DecodedPage>> m_decoded;
  uint32_t m_icache_epoch = 1;
  uint32_t m_sweep = 1;
  uint64_t m_next_sweep = 0;  // mtime of the next sweep_decoded
  uint64_t m_fetch_vpage = ~0ull;   // virtual page of the current fetch page, or ~0
  DecodedPage* m_fetch_page = nullptr;
  uint64_t m_fetch_page_index = 0;

  // Binary translation (jit.h).
  std::unique_ptr<Jit> m_jit;
  std::atomic<const Jit*> m_jit_published{nullptr};
  bool m_jit_tried = false;
  bool m_jit_active = false;  // blocks may run (not while single-stepping)

  // Slice accounting.
  int64_t m_budget = 0;
  int64_t m_slice_len = 0;
  uint64_t m_instret = 0;

  // Where a skipped atomic (P2mVerdict::kSkip) reads and writes instead of guest memory.
  alignas(8) uint64_t m_skip_sink = 0;

  std::atomic<uint32_t> m_requests{0};
  std::mutex m_sleep_mutex;
  std::condition_variable m_sleep_cv;
  std::atomic<bool> m_kicked{false};
};

}  // namespace vigil::riscv
