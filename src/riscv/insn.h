// Typed access to the fields of a 32-bit RISC-V encoding (unprivileged spec 2.2-2.3).
#pragma once

#include <cstdint>

namespace vigil::riscv {

struct Insn {
  uint32_t raw;

  constexpr unsigned opcode() const { return raw & 0x7f; }
  constexpr unsigned rd() const { return (raw >> 7) & 31; }
  constexpr unsigned funct3() const { return (raw >> 12) & 7; }
  constexpr unsigned rs1() const { return (raw >> 15) & 31; }
  constexpr unsigned rs2() const { return (raw >> 20) & 31; }
  constexpr unsigned rs3() const { return raw >> 27; }
  constexpr unsigned funct7() const { return raw >> 25; }
  constexpr unsigned csr() const { return raw >> 20; }
  constexpr int32_t imm_i() const { return static_cast<int32_t>(raw) >> 20; }
  constexpr int32_t imm_s() const {
    return ((static_cast<int32_t>(raw) >> 25) << 5) | static_cast<int32_t>((raw >> 7) & 31);
  }
  constexpr int32_t imm_b() const {
    return ((static_cast<int32_t>(raw) >> 31) << 12) | static_cast<int32_t>(((raw >> 7) & 1) << 11) |
           static_cast<int32_t>(((raw >> 25) & 0x3f) << 5) | static_cast<int32_t>(((raw >> 8) & 0xf) << 1);
  }
  constexpr int32_t imm_u() const { return static_cast<int32_t>(raw & 0xfffff000u); }
  constexpr int32_t imm_j() const {
    return ((static_cast<int32_t>(raw) >> 31) << 20) | static_cast<int32_t>(raw & 0xff000) |
           static_cast<int32_t>(((raw >> 20) & 1) << 11) | static_cast<int32_t>(((raw >> 21) & 0x3ff) << 1);
  }
  constexpr unsigned shamt() const { return (raw >> 20) & 0x3f; }
};

// Expands a 16-bit compressed instruction (unprivileged spec chapter 16, "C") into the
// equivalent 32-bit encoding. Returns 0 for an illegal or reserved encoding (0 is itself
// an illegal 32-bit encoding, so callers can treat it as such).
uint32_t expand_compressed(uint16_t c);

}  // namespace vigil::riscv
