// The decode table: one line per instruction (mnemonic, mask, match, handler, operand format),
// with each extension's lines next to its handlers in rv_<ext>.cpp (STYLE.md 4).
#pragma once

#include <cstdint>
#include <span>

#include "riscv/hart.h"
#include "riscv/insn.h"

namespace vigil::riscv {

// Which fields of the encoding the handler needs, and where the immediate comes from.
enum class Format : uint8_t {
  kR,      // rd, rs1, rs2
  kI,      // rd, rs1, imm_i
  kS,      // rs1, rs2, imm_s
  kB,      // rs1, rs2, imm_b
  kU,      // rd, imm_u
  kJ,      // rd, imm_j
  kShift,  // rd, rs1, imm = shamt
  kCsr,    // rd, rs1 (register or uimm), imm = CSR number
  kFpLoad, // rd is an FP register (no x0 remap), rs1, imm_i
  kFpStore,// rs1, rs2 (FP), imm_s
  kFpRaw,  // FP arithmetic: imm = raw encoding, rd not remapped (the FPU decides)
  kNone,
};

struct OpcodeEntry {
  const char* name;
  uint32_t mask;
  uint32_t match;
  Handler fn;
  Format format;
};

std::span<const OpcodeEntry> rv_i_table();
std::span<const OpcodeEntry> rv_m_table();
std::span<const OpcodeEntry> rv_a_table();
std::span<const OpcodeEntry> rv_f_table();
std::span<const OpcodeEntry> rv_zicsr_table();
std::span<const OpcodeEntry> rv_priv_table();

// Every extension's table, in decode order.
std::span<const OpcodeEntry> all_opcodes();

// Looks up the table entry for a 32-bit encoding, or nullptr if none matches.
const OpcodeEntry* find_opcode(uint32_t raw);

// Every handler decode() can put in a slot, as a small number (binary translation keeps one
// per decoded slot, so a page of slots stays small).
// kNoHandlerIndex for a handler decode() never produces.
inline constexpr uint16_t kNoHandlerIndex = 0xffff;
uint16_t handler_index(Handler fn);
Handler handler_at(uint16_t index);

// Handlers shared by all tables.
void op_illegal(Hart& h, const DecodedInsn& d);

}  // namespace vigil::riscv
