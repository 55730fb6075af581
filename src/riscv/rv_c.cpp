// The C extension (unprivileged spec chapter 16, RV64 encodings): every compressed
// instruction expands to one 32-bit instruction, which the normal table then decodes.
#include <cstdint>

#include "riscv/insn.h"

namespace vigil::riscv {
namespace {

constexpr uint32_t bits(uint32_t v, unsigned hi, unsigned lo) { return (v >> lo) & ((1u << (hi - lo + 1)) - 1); }
constexpr uint32_t bit(uint32_t v, unsigned n) { return (v >> n) & 1; }
constexpr int32_t sext(uint32_t v, unsigned width) {
  return static_cast<int32_t>(v << (32 - width)) >> (32 - width);
}

enum : uint32_t {
  kOpLoad = 0x03, kOpLoadFp = 0x07, kOpImm = 0x13, kOpImm32 = 0x1b, kOpStore = 0x23, kOpStoreFp = 0x27,
  kOp = 0x33, kOpLui = 0x37, kOp32 = 0x3b, kOpBranch = 0x63, kOpJalr = 0x67, kOpJal = 0x6f, kOpSystem = 0x73,
};

constexpr uint32_t i_type(int32_t imm, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (static_cast<uint32_t>(imm) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t s_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t op) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (bits(u, 11, 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (bits(u, 4, 0) << 7) | op;
}
constexpr uint32_t r_type(uint32_t f7, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t b_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (bit(u, 12) << 31) | (bits(u, 10, 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
         (bits(u, 4, 1) << 8) | (bit(u, 11) << 7) | kOpBranch;
}
constexpr uint32_t j_type(int32_t imm, uint32_t rd) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (bit(u, 20) << 31) | (bits(u, 10, 1) << 21) | (bit(u, 11) << 20) | (bits(u, 19, 12) << 12) |
         (rd << 7) | kOpJal;
}

// Offsets of the loads/stores, by scaling (4: word, 8: doubleword).
constexpr uint32_t cl_offset(uint32_t c, bool dword) {
  return dword ? (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6)
               : (bits(c, 12, 10) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6);
}
constexpr uint32_t lsp_offset(uint32_t c, bool dword) {
  return dword ? (bit(c, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6)
               : (bit(c, 12) << 5) | (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6);
}
constexpr uint32_t ssp_offset(uint32_t c, bool dword) {
  return dword ? (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6) : (bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6);
}

uint32_t quadrant0(uint32_t c) {
  const uint32_t rs1p = bits(c, 9, 7) + 8, rdp = bits(c, 4, 2) + 8;
  switch (bits(c, 15, 13)) {
    case 0: {  // C.ADDI4SPN
      const uint32_t imm = (bits(c, 12, 11) << 4) | (bits(c, 10, 7) << 6) | (bit(c, 6) << 2) | (bit(c, 5) << 3);
      return imm == 0 ? 0 : i_type(static_cast<int32_t>(imm), 2, 0, rdp, kOpImm);
    }
    case 1: return i_type(static_cast<int32_t>(cl_offset(c, true)), rs1p, 3, rdp, kOpLoadFp);   // C.FLD
    case 2: return i_type(static_cast<int32_t>(cl_offset(c, false)), rs1p, 2, rdp, kOpLoad);    // C.LW
    case 3: return i_type(static_cast<int32_t>(cl_offset(c, true)), rs1p, 3, rdp, kOpLoad);     // C.LD
    case 5: return s_type(static_cast<int32_t>(cl_offset(c, true)), rdp, rs1p, 3, kOpStoreFp);  // C.FSD
    case 6: return s_type(static_cast<int32_t>(cl_offset(c, false)), rdp, rs1p, 2, kOpStore);   // C.SW
    case 7: return s_type(static_cast<int32_t>(cl_offset(c, true)), rdp, rs1p, 3, kOpStore);    // C.SD
    default: return 0;
  }
}

uint32_t quadrant1(uint32_t c) {
  const uint32_t rd = bits(c, 11, 7);
  const int32_t imm6 = sext((bit(c, 12) << 5) | bits(c, 6, 2), 6);
  const uint32_t rs1p = bits(c, 9, 7) + 8, rs2p = bits(c, 4, 2) + 8;
  switch (bits(c, 15, 13)) {
    case 0: return i_type(imm6, rd, 0, rd, kOpImm);                       // C.ADDI / C.NOP
    case 1: return rd == 0 ? 0 : i_type(imm6, rd, 0, rd, kOpImm32);       // C.ADDIW
    case 2: return i_type(imm6, 0, 0, rd, kOpImm);                        // C.LI
    case 3:
      if (rd == 2) {  // C.ADDI16SP
        const int32_t imm = sext((bit(c, 12) << 9) | (bit(c, 6) << 4) | (bit(c, 5) << 6) | (bits(c, 4, 3) << 7) |
                                     (bit(c, 2) << 5),
                                 10);
        return imm == 0 ? 0 : i_type(imm, 2, 0, 2, kOpImm);
      } else {  // C.LUI
        const int32_t imm = sext((bit(c, 12) << 17) | (bits(c, 6, 2) << 12), 18);
        return imm == 0 ? 0 : (static_cast<uint32_t>(imm) & 0xfffff000u) | (rd << 7) | kOpLui;
      }
    case 4: {
      const uint32_t shamt = (bit(c, 12) << 5) | bits(c, 6, 2);
      switch (bits(c, 11, 10)) {
        case 0: return i_type(static_cast<int32_t>(shamt), rs1p, 5, rs1p, kOpImm);             // C.SRLI
        case 1: return i_type(static_cast<int32_t>(shamt | 0x400), rs1p, 5, rs1p, kOpImm);     // C.SRAI
        case 2: return i_type(imm6, rs1p, 7, rs1p, kOpImm);                                    // C.ANDI
        default: {
          static constexpr uint32_t kF3[4] = {0, 4, 6, 7};  // SUB, XOR, OR, AND
          const uint32_t sel = bits(c, 6, 5);
          if (!bit(c, 12)) return r_type(sel == 0 ? 0x20 : 0, rs2p, rs1p, kF3[sel], rs1p, kOp);
          if (sel == 0) return r_type(0x20, rs2p, rs1p, 0, rs1p, kOp32);  // C.SUBW
          if (sel == 1) return r_type(0, rs2p, rs1p, 0, rs1p, kOp32);     // C.ADDW
          return 0;
        }
      }
    }
    case 5: {  // C.J
      const int32_t imm = sext((bit(c, 12) << 11) | (bit(c, 11) << 4) | (bits(c, 10, 9) << 8) | (bit(c, 8) << 10) |
                                   (bit(c, 7) << 6) | (bit(c, 6) << 7) | (bits(c, 5, 3) << 1) | (bit(c, 2) << 5),
                               12);
      return j_type(imm, 0);
    }
    default: {  // C.BEQZ, C.BNEZ
      const int32_t imm = sext((bit(c, 12) << 8) | (bits(c, 11, 10) << 3) | (bits(c, 6, 5) << 6) |
                                   (bits(c, 4, 3) << 1) | (bit(c, 2) << 5),
                               9);
      return b_type(imm, 0, rs1p, bits(c, 15, 13) == 6 ? 0 : 1);
    }
  }
}

uint32_t quadrant2(uint32_t c) {
  const uint32_t rd = bits(c, 11, 7), rs2 = bits(c, 6, 2);
  switch (bits(c, 15, 13)) {
    case 0: return i_type(static_cast<int32_t>((bit(c, 12) << 5) | rs2), rd, 1, rd, kOpImm);          // C.SLLI
    case 1: return i_type(static_cast<int32_t>(lsp_offset(c, true)), 2, 3, rd, kOpLoadFp);            // C.FLDSP
    case 2: return rd == 0 ? 0 : i_type(static_cast<int32_t>(lsp_offset(c, false)), 2, 2, rd, kOpLoad);  // C.LWSP
    case 3: return rd == 0 ? 0 : i_type(static_cast<int32_t>(lsp_offset(c, true)), 2, 3, rd, kOpLoad);   // C.LDSP
    case 4:
      if (!bit(c, 12)) {
        if (rs2 == 0) return rd == 0 ? 0 : i_type(0, rd, 0, 0, kOpJalr);  // C.JR
        return r_type(0, rs2, 0, 0, rd, kOp);                             // C.MV
      }
      if (rs2 == 0) return rd == 0 ? 0x00100073u : i_type(0, rd, 0, 1, kOpJalr);  // C.EBREAK, C.JALR
      return r_type(0, rs2, rd, 0, rd, kOp);                                      // C.ADD
    case 5: return s_type(static_cast<int32_t>(ssp_offset(c, true)), rs2, 2, 3, kOpStoreFp);  // C.FSDSP
    case 6: return s_type(static_cast<int32_t>(ssp_offset(c, false)), rs2, 2, 2, kOpStore);   // C.SWSP
    default: return s_type(static_cast<int32_t>(ssp_offset(c, true)), rs2, 2, 3, kOpStore);   // C.SDSP
  }
}

}  // namespace

uint32_t expand_compressed(uint16_t c) {
  switch (c & 3) {
    case 0: return quadrant0(c);
    case 1: return quadrant1(c);
    case 2: return quadrant2(c);
    default: return 0;
  }
}

}  // namespace vigil::riscv
