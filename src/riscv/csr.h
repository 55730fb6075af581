// CSR numbers, mstatus fields and trap causes.
// Privileged spec (20211203) chapter 2 "CSR listing", 3.1 "Machine-level CSRs", 4.1 "Supervisor CSRs".
#pragma once

#include <cstdint>

namespace vigil::riscv {

enum class Priv : uint8_t { U = 0, S = 1, M = 3 };

namespace csr {
// Unprivileged floating-point and counter CSRs.
inline constexpr unsigned kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003;
inline constexpr unsigned kCycle = 0xc00, kTime = 0xc01, kInstret = 0xc02;
inline constexpr unsigned kHpmcounter3 = 0xc03, kHpmcounter31 = 0xc1f;
// Supervisor.
inline constexpr unsigned kSstatus = 0x100, kSie = 0x104, kStvec = 0x105, kScounteren = 0x106;
inline constexpr unsigned kSenvcfg = 0x10a, kSscratch = 0x140, kSepc = 0x141, kScause = 0x142;
inline constexpr unsigned kStval = 0x143, kSip = 0x144, kSatp = 0x180;
// Machine.
inline constexpr unsigned kMvendorid = 0xf11, kMarchid = 0xf12, kMimpid = 0xf13, kMhartid = 0xf14;
inline constexpr unsigned kMconfigptr = 0xf15;
inline constexpr unsigned kMstatus = 0x300, kMisa = 0x301, kMedeleg = 0x302, kMideleg = 0x303;
inline constexpr unsigned kMie = 0x304, kMtvec = 0x305, kMcounteren = 0x306, kMenvcfg = 0x30a;
inline constexpr unsigned kMcountinhibit = 0x320, kMhpmevent3 = 0x323, kMhpmevent31 = 0x33f;
inline constexpr unsigned kMscratch = 0x340, kMepc = 0x341, kMcause = 0x342, kMtval = 0x343;
inline constexpr unsigned kMip = 0x344;
inline constexpr unsigned kPmpcfg0 = 0x3a0, kPmpcfg15 = 0x3af, kPmpaddr0 = 0x3b0, kPmpaddr63 = 0x3ef;
inline constexpr unsigned kMcycle = 0xb00, kMinstret = 0xb02;
inline constexpr unsigned kMhpmcounter3 = 0xb03, kMhpmcounter31 = 0xb1f;
// Debug triggers (Sdtrig, debug spec 5.7): this hart has none, in the hard-wired form the
// specification allows, so firmware and debuggers that probe find zero triggers instead of
// taking an illegal-instruction trap.
inline constexpr unsigned kTselect = 0x7a0, kTdata1 = 0x7a1, kTdata2 = 0x7a2, kTdata3 = 0x7a3, kTinfo = 0x7a4;
}  // namespace csr

// mstatus fields (privileged spec 3.1.6).
namespace mstatus {
inline constexpr uint64_t kSie = 1ull << 1, kMie = 1ull << 3, kSpie = 1ull << 5, kUbe = 1ull << 6;
inline constexpr uint64_t kMpie = 1ull << 7, kSpp = 1ull << 8, kVs = 3ull << 9, kMpp = 3ull << 11;
inline constexpr uint64_t kFs = 3ull << 13, kXs = 3ull << 15, kMprv = 1ull << 17, kSum = 1ull << 18;
inline constexpr uint64_t kMxr = 1ull << 19, kTvm = 1ull << 20, kTw = 1ull << 21, kTsr = 1ull << 22;
inline constexpr uint64_t kUxl = 3ull << 32, kSxl = 3ull << 34, kSd = 1ull << 63;
inline constexpr unsigned kMppShift = 11, kFsShift = 13;
inline constexpr uint64_t kFsOff = 0, kFsInitial = 1ull << 13, kFsClean = 2ull << 13, kFsDirty = 3ull << 13;
// What S-mode sees through sstatus (4.1.1).
inline constexpr uint64_t kSstatusMask = kSie | kSpie | kUbe | kSpp | kVs | kFs | kXs | kSum | kMxr | kUxl | kSd;
}  // namespace mstatus

// Interrupt numbers = bit positions in mip/mie (3.1.9).
namespace irq {
inline constexpr unsigned kSsi = 1, kMsi = 3, kSti = 5, kMti = 7, kSei = 9, kMei = 11;
inline constexpr uint64_t kSMask = (1u << kSsi) | (1u << kSti) | (1u << kSei);
inline constexpr uint64_t kMMask = (1u << kMsi) | (1u << kMti) | (1u << kMei);
inline constexpr uint64_t kAll = kSMask | kMMask;
}  // namespace irq

// Exception codes (mcause with interrupt bit clear, table 3.6).
enum class Cause : uint64_t {
  kInsnMisaligned = 0,
  kInsnAccessFault = 1,
  kIllegalInsn = 2,
  kBreakpoint = 3,
  kLoadMisaligned = 4,
  kLoadAccessFault = 5,
  kStoreMisaligned = 6,
  kStoreAccessFault = 7,
  kEcallU = 8,
  kEcallS = 9,
  kEcallM = 11,
  kInsnPageFault = 12,
  kLoadPageFault = 13,
  kStorePageFault = 15,
};

inline constexpr uint64_t kInterruptBit = 1ull << 63;

// satp (4.1.11).
namespace satp {
inline constexpr uint64_t kModeBare = 0, kModeSv39 = 8, kModeSv48 = 9;
inline constexpr unsigned kModeShift = 60;
inline constexpr uint64_t kPpnMask = (1ull << 44) - 1;
}  // namespace satp

}  // namespace vigil::riscv
