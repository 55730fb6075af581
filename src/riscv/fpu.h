// RV64 F and D arithmetic (unprivileged spec chapters 11 "F" and 12 "D"):
// OP-FP (opcode 0x53) and the fused multiply-add group (0x43, 0x47, 0x4b, 0x4f).
// FP loads/stores (FLW/FLD/FSW/FSD) are memory instructions and live with the hart.
#pragma once

#include <cstdint>

namespace vigil::riscv {

struct FpuState {
  uint64_t f[32];   // NaN-boxed: a single lives in the low 32 bits with the upper 32 bits all ones
  uint32_t fcsr;    // frm in bits 7:5, fflags (NV DZ OF UF NX) in bits 4:0
};

// Executes one OP-FP or FMA instruction `insn` (raw 32-bit encoding).
// x: the integer register file, x[0] reads as zero; writes to integer register rd go to
//    x[rd == 0 ? 32 : rd] (x has 33 entries; x[32] is a sink so x[0] stays zero).
// Returns false if the encoding is illegal (reserved rounding mode, dynamic rm with an
// invalid frm, unknown funct); then no state may have been changed.
// The caller has already checked mstatus.FS != Off and marks FS dirty afterwards.
// Host requirement: the calling thread's FPU must be in its default state (round to nearest,
// no flush-to-zero / denormals-are-zero); execute_fp only changes it for the duration of one
// instruction. Host sticky exception flags are clobbered.
bool execute_fp(uint32_t insn, uint64_t* x, FpuState& fp);

}  // namespace vigil::riscv
