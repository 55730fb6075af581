// vm_event: the closed set of events a monitor can receive, its subscriptions and filters,
// and the responses a synchronous event takes (STYLE.md 10: one header, the same names the
// JSON transport and the Python bindings use).
//
// A synchronous event stops the vCPU that raised it until every monitor subscribed to it
// has answered; an asynchronous one is only reported. Filters are evaluated on the vCPU's
// thread, inside the hypervisor, before an event is built for a monitor.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "riscv/csr.h"
#include "riscv/hart.h"

namespace vigil::monitor {

enum class EventType : uint8_t {
  kMemAccess,      // an access the P2m rights a monitor set forbid (gpa, gva, access, pc)
  kCsrWrite,       // a write to a watched CSR (csr, old_value, new_value)
  kBreakpoint,     // a hypervisor breakpoint was reached (gpa; pc is the guest-virtual address)
  kSingleStep,     // one instruction retired on a single-stepped vCPU (pc is the next one)
  kSyscall,        // ECALL from U-mode: nr = a7, args = a0-a5
  kSyscallReturn,  // the return to U-mode of a reported system call: ret = a0
  kGuestRequest,   // SBI call with EID riscv::kGuestRequestEid: nr = FID (a6), args = a0-a5
  kTrap,           // an exception or interrupt delivered to the guest (cause, tval)
};
inline constexpr unsigned kEventTypeCount = 8;
// "mem", "csr", "breakpoint", "singlestep", "syscall", "sysret", "request", "trap".
std::string_view to_string(EventType type);
std::optional<EventType> event_type_from(std::string_view name);

// CSRs watched when a kCsrWrite subscription names none: satp (address-space switches, our
// CR3), the S-mode trap setup, and the M-mode trap CSRs when firmware runs.
inline constexpr std::array<unsigned, 9> kDefaultCsrs = {
    riscv::csr::kSatp,  riscv::csr::kStvec,   riscv::csr::kSstatus, riscv::csr::kSie, riscv::csr::kMstatus,
    riscv::csr::kMtvec, riscv::csr::kMedeleg, riscv::csr::kMideleg, riscv::csr::kMie};
// "satp" -> 0x180 and back (the CSRs above plus sepc/scause/stval/mepc/mcause/mtval/sscratch).
std::optional<unsigned> csr_from_name(std::string_view name);
std::string_view csr_name(unsigned csr);

struct Event {
  EventType type = EventType::kTrap;
  bool sync = false;  // the vCPU waits for the answer
  uint64_t seq = 0;   // per domain, increasing
  uint32_t vcpu = 0;
  riscv::Priv priv = riscv::Priv::S;  // privilege the vCPU was in when the event arose
  uint64_t pc = 0;
  uint64_t satp = 0;
  uint64_t sp = 0;
  uint64_t sscratch = 0;  // Linux keeps `current` here while in U-mode (pid lookup)
  // kMemAccess, kBreakpoint
  uint64_t gpa = 0, gva = 0;
  riscv::AccessType access = riscv::AccessType::kRead;
  unsigned size = 0;
  // kCsrWrite
  unsigned csr = 0;
  uint64_t old_value = 0, new_value = 0;
  // kSyscall, kSyscallReturn, kGuestRequest
  uint64_t nr = 0;
  std::array<uint64_t, 6> args{};
  int64_t ret = 0;
  // kTrap
  uint64_t cause = 0, tval = 0;
  bool interrupt = false;
};

enum class Action : uint8_t {
  kContinue,  // carry on as the guest asked (a forbidden access proceeds this once)
  kDeny,      // it does not happen: CSR write dropped, store dropped, load reads 0, system
              // call skipped (a0 = value), breakpointed instruction skipped; the guest continues
  kEmulate,   // CSR write: write `value` instead; load: reads `value`; system call: skipped, a0 = value
};
std::string_view to_string(Action action);
std::optional<Action> action_from(std::string_view name);

struct RegWrite {
  unsigned reg = 0;  // x1..x31
  uint64_t value = 0;
};

struct RightsChange {
  uint64_t gpa = 0, length = 0;
  uint8_t rights = riscv::p2m::kAll;  // p2m::kRead | kWrite | kExec
};

// The answer to a synchronous event. Register and pc changes apply for breakpoint,
// single-step, system call, guest request and trap events; a CSR or memory event is in
// the middle of an instruction, which completes as `action` says.
struct Response {
  Action action = Action::kContinue;
  uint64_t value = 0;
  std::vector<RegWrite> regs;
  std::optional<uint64_t> pc;
  std::optional<bool> single_step;  // for the vCPU that raised the event
  // Breakpoint, single-step and memory-access events: the vCPU leaves its slice at once, a
  // breakpointed instruction (or the access's instruction) not yet executed: it runs, or hits
  // again, when the vCPU next runs. How a debugger stops one vCPU while it pauses the others
  // (toolstack/api_gdb.h); a held access overrides any deny/emulate answer.
  bool hold = false;
  std::vector<RightsChange> rights;
};

// Filters run on the vCPU before the event leaves it.
struct Filter {
  uint64_t lo = 0, hi = ~0ull;    // address range [lo, hi]: gpa for kMemAccess/kBreakpoint, pc otherwise
  std::optional<uint64_t> satp;   // only while this address space runs (satp's MODE and PPN)
  std::vector<uint64_t> numbers;  // syscall numbers, CSR numbers, trap causes, request FIDs (empty: all)
  std::optional<uint32_t> vcpu;
};

struct Subscription {
  EventType type = EventType::kTrap;
  bool sync = false;
  bool on_change = false;  // kCsrWrite: only writes that change the value
  Filter filter;
};

// RISC-V ABI register names "ra".."t6", "x0".."x31" -> number.
std::optional<unsigned> reg_from_name(std::string_view name);

}  // namespace vigil::monitor
