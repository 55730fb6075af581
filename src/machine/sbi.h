// The built-in SBI implementation (RISC-V SBI spec v2.0) used when a kernel boots directly
// in S-mode with no firmware: BASE, TIME, IPI, RFENCE, HSM, SRST, DBCN and the legacy
// extensions. Every argument comes from the guest and is checked before use.
#pragma once

#include <cstdint>

#include "riscv/hart.h"

namespace vigil::machine {

// SBI error codes (SBI spec 3.2).
enum SbiError : int64_t {
  kSbiSuccess = 0,
  kSbiErrFailed = -1,
  kSbiErrNotSupported = -2,
  kSbiErrInvalidParam = -3,
  kSbiErrDenied = -4,
  kSbiErrInvalidAddress = -5,
  kSbiErrAlreadyAvailable = -6,
  kSbiErrAlreadyStarted = -7,
  kSbiErrAlreadyStopped = -8,
};

// What the SBI needs from the board.
class SbiHost {
 public:
  virtual ~SbiHost() = default;
  virtual unsigned hart_count() const = 0;
  virtual riscv::Hart& hart(unsigned id) = 0;
  virtual void console_write(const uint8_t* data, size_t len) = 0;
  virtual int console_getchar() = 0;  // -1 when no input is waiting
  // SRST: type 0 shutdown, 1 cold reboot, 2 warm reboot; reason 1 = system failure.
  virtual void system_reset(uint32_t type, uint32_t reason) = 0;
  virtual int64_t hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) = 0;
  virtual int64_t hart_stop(unsigned hart) = 0;
  virtual int64_t hart_status(unsigned hart) = 0;
};

// Handles the ECALL in a0..a7 of `hart`; writes the results to a0 (and a1). Returns false
// if the call is not an SBI call this implementation knows (the hart then traps).
bool handle_sbi_call(SbiHost& host, riscv::Hart& hart);

}  // namespace vigil::machine
