// RV64I (unprivileged spec chapters 2 "RV32I" and 5 "RV64I") and Zifencei.
#include <cstdint>
#include <limits>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;

constexpr uint64_t kMin64 = 0x8000000000000000ull;
constexpr uint64_t kMax64 = 0x7fffffffffffffffull;
constexpr uint64_t kOnes = ~0ull;

class RvITest : public CpuTest {
 protected:
  // Runs `insn` (rd=a0, rs1=a1, rs2=a2) with the given operands; returns a0.
  uint64_t alu(uint32_t insn, uint64_t a, uint64_t b = 0) {
    h().x[kA0] = 0xdeadbeefcafef00dull;
    h().x[kA1] = a;
    h().x[kA2] = b;
    exec(insn);
    EXPECT_EQ(h().pc, kCode + 4) << "instruction did not complete";
    return h().x[kA0];
  }
  bool branch_taken(uint32_t insn, uint64_t a, uint64_t b) {
    h().x[kA1] = a;
    h().x[kA2] = b;
    exec(insn);
    EXPECT_TRUE(h().pc == kCode + 4 || h().pc == kCode + 64) << std::hex << h().pc;
    return h().pc == kCode + 64;
  }
};

// ---- register-register ALU ----

TEST_F(RvITest, AddWrapsModulo2To64) {
  EXPECT_EQ(alu(add(kA0, kA1, kA2), 5, 7), 12u);
  EXPECT_EQ(alu(add(kA0, kA1, kA2), kOnes, 1), 0u);
  EXPECT_EQ(alu(add(kA0, kA1, kA2), kMax64, 1), kMin64);
}

TEST_F(RvITest, SubWrapsModulo2To64) {
  EXPECT_EQ(alu(sub(kA0, kA1, kA2), 5, 7), static_cast<uint64_t>(-2));
  EXPECT_EQ(alu(sub(kA0, kA1, kA2), kMin64, 1), kMax64);
  EXPECT_EQ(alu(sub(kA0, kA1, kA2), 0, kOnes), 1u);
}

TEST_F(RvITest, LogicalOps) {
  EXPECT_EQ(alu(and_(kA0, kA1, kA2), 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull), 0x0f000f000f000f00ull);
  EXPECT_EQ(alu(or_(kA0, kA1, kA2), 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull), 0xfff0fff0fff0fff0ull);
  EXPECT_EQ(alu(xor_(kA0, kA1, kA2), 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull), 0xf0f0f0f0f0f0f0f0ull);
}

TEST_F(RvITest, SltSignedEdgeCases) {
  EXPECT_EQ(alu(slt(kA0, kA1, kA2), kOnes, 0), 1u);         // -1 < 0
  EXPECT_EQ(alu(slt(kA0, kA1, kA2), 0, kOnes), 0u);
  EXPECT_EQ(alu(slt(kA0, kA1, kA2), kMin64, kMax64), 1u);
  EXPECT_EQ(alu(slt(kA0, kA1, kA2), kMax64, kMin64), 0u);
  EXPECT_EQ(alu(slt(kA0, kA1, kA2), 42, 42), 0u);
}

TEST_F(RvITest, SltuUnsignedEdgeCases) {
  EXPECT_EQ(alu(sltu(kA0, kA1, kA2), 0, kOnes), 1u);
  EXPECT_EQ(alu(sltu(kA0, kA1, kA2), kOnes, 0), 0u);
  EXPECT_EQ(alu(sltu(kA0, kA1, kA2), kMax64, kMin64), 1u);
  EXPECT_EQ(alu(sltu(kA0, kA1, kA2), 7, 7), 0u);
  // SLTU rd, x0, rs2 sets rd to 1 if rs2 != 0 (snez).
  h().x[kA2] = 9;
  exec(sltu(kA0, kZero, kA2));
  EXPECT_EQ(h().x[kA0], 1u);
}

TEST_F(RvITest, ShiftsUseLowSixBitsOfRs2) {
  EXPECT_EQ(alu(sll(kA0, kA1, kA2), 1, 63), kMin64);
  EXPECT_EQ(alu(sll(kA0, kA1, kA2), 1, 64), 1u);       // 64 & 63 == 0
  EXPECT_EQ(alu(sll(kA0, kA1, kA2), 1, 64 + 3), 8u);
  EXPECT_EQ(alu(sll(kA0, kA1, kA2), 1, 0xffffffffffffff40ull), 1u);
  EXPECT_EQ(alu(srl(kA0, kA1, kA2), kMin64, 63), 1u);
  EXPECT_EQ(alu(srl(kA0, kA1, kA2), kMin64, 65), kMin64 >> 1);
  EXPECT_EQ(alu(srl(kA0, kA1, kA2), kMin64, 32), 0x80000000ull);
  EXPECT_EQ(alu(sra(kA0, kA1, kA2), kMin64, 63), kOnes);
  EXPECT_EQ(alu(sra(kA0, kA1, kA2), kMin64, 64 + 4), 0xf800000000000000ull);
  EXPECT_EQ(alu(sra(kA0, kA1, kA2), 0x4000000000000000ull, 62), 1u);
}

// ---- register-immediate ALU ----

TEST_F(RvITest, AddiSignExtendsImmediate) {
  EXPECT_EQ(alu(addi(kA0, kA1, -1), 0), kOnes);
  EXPECT_EQ(alu(addi(kA0, kA1, -2048), 0), static_cast<uint64_t>(-2048));
  EXPECT_EQ(alu(addi(kA0, kA1, 2047), 1), 2048u);
  EXPECT_EQ(alu(addi(kA0, kA1, 1), kOnes), 0u);
}

TEST_F(RvITest, LogicalImmediatesSignExtend) {
  EXPECT_EQ(alu(xori(kA0, kA1, -1), 0x0123456789abcdefull), ~0x0123456789abcdefull);  // NOT
  EXPECT_EQ(alu(andi(kA0, kA1, -16), kOnes), 0xfffffffffffffff0ull);
  EXPECT_EQ(alu(andi(kA0, kA1, 0x7ff), kOnes), 0x7ffull);
  EXPECT_EQ(alu(ori(kA0, kA1, -2048), 0), 0xfffffffffffff800ull);
}

TEST_F(RvITest, SltiSltiuEdgeCases) {
  EXPECT_EQ(alu(slti(kA0, kA1, -1), static_cast<uint64_t>(-2)), 1u);
  EXPECT_EQ(alu(slti(kA0, kA1, -1), 0), 0u);
  EXPECT_EQ(alu(slti(kA0, kA1, 0), kMin64), 1u);
  // SLTIU: the immediate is sign-extended and then compared unsigned (2.4.1).
  EXPECT_EQ(alu(sltiu(kA0, kA1, -1), 0xfffffffffffffffeull), 1u);
  EXPECT_EQ(alu(sltiu(kA0, kA1, -1), kOnes), 0u);
  EXPECT_EQ(alu(sltiu(kA0, kA1, 1), 0), 1u);  // seqz
  EXPECT_EQ(alu(sltiu(kA0, kA1, 1), 5), 0u);
}

TEST_F(RvITest, ShiftImmediatesSixBitShamt) {
  EXPECT_EQ(alu(slli(kA0, kA1, 63), 1), kMin64);
  EXPECT_EQ(alu(slli(kA0, kA1, 32), 0x12345678ull), 0x1234567800000000ull);
  EXPECT_EQ(alu(srli(kA0, kA1, 63), kOnes), 1u);
  EXPECT_EQ(alu(srli(kA0, kA1, 32), 0xabcdef0012345678ull), 0xabcdef00ull);
  EXPECT_EQ(alu(srai(kA0, kA1, 63), kMin64), kOnes);
  EXPECT_EQ(alu(srai(kA0, kA1, 36), 0x8000000000000000ull), 0xfffffffff8000000ull);
  EXPECT_EQ(alu(srai(kA0, kA1, 0), 0x1234ull), 0x1234ull);
}

TEST_F(RvITest, ShiftImmediateReservedFunct6IsIllegal) {
  // Bits 31:26 other than 000000 / 010000 are reserved for the shift-immediate encodings.
  const uint32_t bad = slli(kA0, kA1, 3) | (1u << 29);
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

// ---- W forms (chapter 5.2): operate on the low 32 bits, sign-extend the 32-bit result ----

TEST_F(RvITest, AddwSubwSignExtend32BitResult) {
  EXPECT_EQ(alu(addw(kA0, kA1, kA2), 0x7fffffff, 1), 0xffffffff80000000ull);
  EXPECT_EQ(alu(addw(kA0, kA1, kA2), 0xffffffff00000001ull, 0x00000001ffffffffull), 0u);
  EXPECT_EQ(alu(addw(kA0, kA1, kA2), 0x1234567800000005ull, 0x9abcdef000000003ull), 8u);
  EXPECT_EQ(alu(subw(kA0, kA1, kA2), 0, 1), kOnes);
  EXPECT_EQ(alu(subw(kA0, kA1, kA2), 0x80000000ull, 1), 0x7fffffffull);
  EXPECT_EQ(alu(subw(kA0, kA1, kA2), 0xaaaaaaaa00000000ull, 0x80000000ull), 0xffffffff80000000ull);
}

TEST_F(RvITest, AddiwSignExtendsAndIgnoresUpperBits) {
  EXPECT_EQ(alu(addiw(kA0, kA1, 0), 0x00000000ffffffffull), kOnes);  // sext.w
  EXPECT_EQ(alu(addiw(kA0, kA1, 0), 0xffffffff7fffffffull), 0x7fffffffull);
  EXPECT_EQ(alu(addiw(kA0, kA1, 1), 0x7fffffffull), 0xffffffff80000000ull);
  EXPECT_EQ(alu(addiw(kA0, kA1, -1), 0), kOnes);
}

TEST_F(RvITest, SllwSrlwSrawMaskShiftTo5Bits) {
  EXPECT_EQ(alu(sllw(kA0, kA1, kA2), 1, 31), 0xffffffff80000000ull);
  EXPECT_EQ(alu(sllw(kA0, kA1, kA2), 1, 32), 1u);       // 32 & 31 == 0
  EXPECT_EQ(alu(sllw(kA0, kA1, kA2), 0xffffffff00000003ull, 33), 6u);
  EXPECT_EQ(alu(srlw(kA0, kA1, kA2), 0x80000000ull, 0), 0xffffffff80000000ull);  // result bit 31 sign-extends
  EXPECT_EQ(alu(srlw(kA0, kA1, kA2), 0xffffffff80000000ull, 1), 0x40000000ull);
  EXPECT_EQ(alu(srlw(kA0, kA1, kA2), 0x80000000ull, 33), 0x40000000ull);
  EXPECT_EQ(alu(sraw(kA0, kA1, kA2), 0x80000000ull, 31), kOnes);
  EXPECT_EQ(alu(sraw(kA0, kA1, kA2), 0x0000000180000000ull, 4), 0xfffffffff8000000ull);
  EXPECT_EQ(alu(sraw(kA0, kA1, kA2), 0xffffffff7fffffffull, 32 + 30), 1u);
}

TEST_F(RvITest, ShiftWImmediates) {
  EXPECT_EQ(alu(slliw(kA0, kA1, 31), 1), 0xffffffff80000000ull);
  EXPECT_EQ(alu(slliw(kA0, kA1, 4), 0xfedcba9876543210ull), 0x0000000065432100ull);
  EXPECT_EQ(alu(srliw(kA0, kA1, 0), 0x80000000ull), 0xffffffff80000000ull);
  EXPECT_EQ(alu(srliw(kA0, kA1, 31), 0xffffffffffffffffull), 1u);
  EXPECT_EQ(alu(sraiw(kA0, kA1, 31), 0x80000000ull), kOnes);
  EXPECT_EQ(alu(sraiw(kA0, kA1, 8), 0x1234567880000000ull), 0xffffffffff800000ull);
}

TEST_F(RvITest, ShiftWImmediateWithShamt5IsReserved) {
  // 5.2: SLLIW, SRLIW and SRAIW with imm[5] != 0 are reserved.
  for (uint32_t insn : {slliw(kA0, kA1, 1) | (1u << 25), srliw(kA0, kA1, 1) | (1u << 25),
                        sraiw(kA0, kA1, 1) | (1u << 25)}) {
    reset_hart();
    exec(insn);
    expect_m_trap(Cause::kIllegalInsn, insn, kCode);
  }
}

// ---- LUI / AUIPC ----

TEST_F(RvITest, LuiPlacesImmediateAndSignExtends) {
  exec(lui(kA0, 0x12345));
  EXPECT_EQ(h().x[kA0], 0x12345000u);
  exec(lui(kA0, 0x80000));
  EXPECT_EQ(h().x[kA0], 0xffffffff80000000ull);
  exec(lui(kA0, 0xfffff));
  EXPECT_EQ(h().x[kA0], 0xfffffffffffff000ull);
}

TEST_F(RvITest, AuipcAddsSignExtendedOffsetToPc) {
  code(kCode, {nop(), auipc(kA0, 0x1), auipc(kA1, 0xfffff), auipc(kA2, 0x80000)});
  h().pc = kCode;
  step(4);
  EXPECT_EQ(h().x[kA0], kCode + 4 + 0x1000);
  EXPECT_EQ(h().x[kA1], kCode + 8 - 0x1000);
  EXPECT_EQ(h().x[kA2], kCode + 12 - 0x80000000ull);
}

// ---- jumps ----

TEST_F(RvITest, JalLinksAndJumpsForward) {
  program({jal(kRa, 0x100)});
  step();
  EXPECT_EQ(h().pc, kCode + 0x100);
  EXPECT_EQ(h().x[kRa], kCode + 4);
}

TEST_F(RvITest, JalBackwardAndRdZeroDoesNotLink) {
  code(kCode + 0x800, {jal(kZero, -0x800)});
  h().pc = kCode + 0x800;
  step();
  EXPECT_EQ(h().pc, kCode);
  EXPECT_EQ(h().x[0], 0u);
}

TEST_F(RvITest, JalToHalfwordAlignedTargetDoesNotTrapWithC) {
  // With IALIGN=16 (C extension) a target that is 2-byte aligned is fine.
  program({jal(kRa, 6)});
  poke16(kCode + 6, 0x0001);  // c.nop
  step();
  EXPECT_EQ(h().pc, kCode + 6);
  EXPECT_EQ(h().priv, Priv::M);
  EXPECT_FALSE(in_m_trap());
}

TEST_F(RvITest, JalrClearsBitZeroOfTarget) {
  program({jalr(kRa, kA1, 3)});
  h().x[kA1] = kCode + 0x200;
  step();
  EXPECT_EQ(h().pc, kCode + 0x202);  // (0x200 + 3) & ~1
  EXPECT_EQ(h().x[kRa], kCode + 4);
}

TEST_F(RvITest, JalrNegativeOffset) {
  program({jalr(kT0, kA1, -16)});
  h().x[kA1] = kCode + 0x110;
  step();
  EXPECT_EQ(h().pc, kCode + 0x100);
  EXPECT_EQ(h().x[kT0], kCode + 4);
}

TEST_F(RvITest, JalrRdEqualsRs1UsesOldValue) {
  program({jalr(kA1, kA1, 0)});
  h().x[kA1] = kCode + 0x300;
  step();
  EXPECT_EQ(h().pc, kCode + 0x300);
  EXPECT_EQ(h().x[kA1], kCode + 4);
}

TEST_F(RvITest, JalrReservedFunct3IsIllegal) {
  const uint32_t bad = jalr(kRa, kA1, 0) | (1u << 12);
  h().x[kA1] = kCode + 0x100;
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

// ---- branches ----

TEST_F(RvITest, BeqBne) {
  EXPECT_TRUE(branch_taken(beq(kA1, kA2, 64), 5, 5));
  EXPECT_FALSE(branch_taken(beq(kA1, kA2, 64), 5, 6));
  EXPECT_TRUE(branch_taken(bne(kA1, kA2, 64), 0, kMin64));
  EXPECT_FALSE(branch_taken(bne(kA1, kA2, 64), kOnes, kOnes));
}

TEST_F(RvITest, BltBgeSigned) {
  EXPECT_TRUE(branch_taken(blt(kA1, kA2, 64), kOnes, 0));
  EXPECT_FALSE(branch_taken(blt(kA1, kA2, 64), 0, kOnes));
  EXPECT_TRUE(branch_taken(blt(kA1, kA2, 64), kMin64, kMax64));
  EXPECT_FALSE(branch_taken(blt(kA1, kA2, 64), 3, 3));
  EXPECT_TRUE(branch_taken(bge(kA1, kA2, 64), 3, 3));
  EXPECT_TRUE(branch_taken(bge(kA1, kA2, 64), 0, kOnes));
  EXPECT_FALSE(branch_taken(bge(kA1, kA2, 64), kMin64, 0));
}

TEST_F(RvITest, BltuBgeuUnsigned) {
  EXPECT_FALSE(branch_taken(bltu(kA1, kA2, 64), kOnes, 0));
  EXPECT_TRUE(branch_taken(bltu(kA1, kA2, 64), 0, kOnes));
  EXPECT_TRUE(branch_taken(bltu(kA1, kA2, 64), kMax64, kMin64));
  EXPECT_FALSE(branch_taken(bltu(kA1, kA2, 64), 9, 9));
  EXPECT_TRUE(branch_taken(bgeu(kA1, kA2, 64), 9, 9));
  EXPECT_TRUE(branch_taken(bgeu(kA1, kA2, 64), kOnes, 0));
  EXPECT_FALSE(branch_taken(bgeu(kA1, kA2, 64), 0, 1));
}

TEST_F(RvITest, BranchBackwardOffsetAndMaxRange) {
  code(kCode + 0x1000, {beq(kZero, kZero, -0x1000)});
  h().pc = kCode + 0x1000;
  step();
  EXPECT_EQ(h().pc, kCode);
  code(kCode, {bne(kZero, kZero, 4094)});  // not taken: falls through
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 4);
  code(kCode, {beq(kZero, kZero, 4094)});  // largest forward offset (B-immediate)
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 4094);
}

TEST_F(RvITest, BranchReservedFunct3IsIllegal) {
  const uint32_t bad = b_type(8, kA2, kA1, 2);
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

// ---- loads and stores ----

TEST_F(RvITest, LoadsSignAndZeroExtend) {
  poke64(kData, 0x8899aabbccddeeffull);
  poke64(kData + 8, 0x0102030405060708ull);
  h().x[kA1] = kData;
  struct Case { uint32_t insn; uint64_t expect; };
  const Case cases[] = {
      {lb(kA0, kA1, 0), 0xffffffffffffffffull}, {lbu(kA0, kA1, 0), 0xffull},
      {lb(kA0, kA1, 8), 0x08ull},               {lbu(kA0, kA1, 7), 0x88ull},
      {lh(kA0, kA1, 6), 0xffffffffffff8899ull}, {lhu(kA0, kA1, 6), 0x8899ull},
      {lh(kA0, kA1, 8), 0x0708ull},             {lw(kA0, kA1, 4), 0xffffffff8899aabbull},
      {lwu(kA0, kA1, 4), 0x8899aabbull},        {lw(kA0, kA1, 8), 0x05060708ull},
      {ld(kA0, kA1, 0), 0x8899aabbccddeeffull}, {ld(kA0, kA1, 8), 0x0102030405060708ull},
  };
  for (const Case& c : cases) {
    h().x[kA0] = 0x5555;
    exec(c.insn);
    EXPECT_EQ(h().x[kA0], c.expect) << std::hex << c.insn;
    EXPECT_EQ(h().pc, kCode + 4);
  }
}

TEST_F(RvITest, LoadNegativeOffset) {
  poke64(kData, 0x1122334455667788ull);
  h().x[kA1] = kData + 0x800;
  exec(ld(kA0, kA1, -0x800));
  EXPECT_EQ(h().x[kA0], 0x1122334455667788ull);
}

TEST_F(RvITest, StoresWriteOnlyTheirBytes) {
  poke64(kData, kOnes);
  poke64(kData + 8, kOnes);
  poke64(kData + 16, kOnes);
  poke64(kData + 24, kOnes);
  h().x[kA1] = kData;
  h().x[kA2] = 0x0123456789abcdefull;
  code(kCode, {sb(kA2, kA1, 1), sh(kA2, kA1, 10), sw(kA2, kA1, 20), sd(kA2, kA1, 24)});
  h().pc = kCode;
  step(4);
  EXPECT_EQ(h().pc, kCode + 16);
  EXPECT_EQ(peek64(kData), 0xffffffffffffefffull);
  EXPECT_EQ(peek64(kData + 8), 0xffffffffcdefffffull);
  EXPECT_EQ(peek64(kData + 16), 0x89abcdefffffffffull);
  EXPECT_EQ(peek64(kData + 24), 0x0123456789abcdefull);
}

TEST_F(RvITest, LoadReservedFunct3IsIllegal) {
  const uint32_t bad = i_type(0, kA1, 7, kA0, kOpLoad);  // no "LDU" in RV64I
  h().x[kA1] = kData;
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

TEST_F(RvITest, StoreReservedFunct3IsIllegal) {
  const uint32_t bad = s_type(0, kA2, kA1, 4, kOpStore);
  h().x[kA1] = kData;
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

// ---- x0 ----

TEST_F(RvITest, X0IgnoresWrites) {
  poke64(kData, 0x1234);
  h().x[kA1] = kData;
  code(kCode, {addi(kZero, kZero, 5), lui(kZero, 0x12345), ld(kZero, kA1, 0), jal(kZero, 4),
               auipc(kZero, 1), add(kA0, kZero, kZero), addi(kA2, kZero, 0)});
  h().pc = kCode;
  for (int i = 0; i < 7; ++i) {
    step();
    EXPECT_EQ(h().x[0], 0u) << "after instruction " << i;
  }
  EXPECT_EQ(h().x[kA0], 0u);
  EXPECT_EQ(h().x[kA2], 0u);
  EXPECT_EQ(h().pc, kCode + 28);
}

// ---- misaligned accesses (must be handled: Linux relies on it) ----

TEST_F(RvITest, MisalignedLoadsWithinPage) {
  for (int i = 0; i < 16; ++i) poke8(kData + i, static_cast<uint8_t>(0x80 + i));
  h().x[kA1] = kData;
  exec(ld(kA0, kA1, 3));
  EXPECT_EQ(h().x[kA0], 0x8a89888786858483ull);
  exec(lw(kA0, kA1, 1));
  EXPECT_EQ(h().x[kA0], 0xffffffff84838281ull);
  exec(lwu(kA0, kA1, 2));
  EXPECT_EQ(h().x[kA0], 0x85848382ull);
  exec(lh(kA0, kA1, 5));
  EXPECT_EQ(h().x[kA0], 0xffffffffffff8685ull);
  exec(lhu(kA0, kA1, 7));
  EXPECT_EQ(h().x[kA0], 0x8887ull);
  EXPECT_EQ(h().priv, Priv::M);
  EXPECT_EQ(h().pc, kCode + 4);
}

TEST_F(RvITest, MisalignedStoresWithinPage) {
  h().x[kA1] = kData;
  h().x[kA2] = 0x1122334455667788ull;
  code(kCode, {sd(kA2, kA1, 1), sw(kA2, kA1, 13), sh(kA2, kA1, 19)});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().pc, kCode + 12);
  EXPECT_EQ(peek64(kData), 0x2233445566778800ull);
  EXPECT_EQ(peek8(kData + 8), 0x11);
  EXPECT_EQ(peek32(kData + 13), 0x55667788u);
  EXPECT_EQ(peek16(kData + 19), 0x7788u);
}

TEST_F(RvITest, MisalignedLoadAcrossPageBoundary) {
  const uint64_t a = kData + kPageSize - 3;
  for (int i = 0; i < 8; ++i) poke8(a + i, static_cast<uint8_t>(0xf1 + i));
  h().x[kA1] = a;
  exec(ld(kA0, kA1, 0));
  EXPECT_EQ(h().x[kA0], 0xf8f7f6f5f4f3f2f1ull);
  EXPECT_EQ(h().pc, kCode + 4);
  h().x[kA1] = kData + kPageSize - 1;
  exec(lh(kA0, kA1, 0));
  EXPECT_EQ(h().x[kA0], 0xfffffffffffff4f3ull);
}

TEST_F(RvITest, MisalignedStoreAcrossPageBoundary) {
  const uint64_t a = kData + kPageSize - 5;
  h().x[kA1] = a;
  h().x[kA2] = 0x0102030405060708ull;
  exec(sd(kA2, kA1, 0));
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(peek64(a), 0x0102030405060708ull);
  h().x[kA1] = kData + 2 * kPageSize - 2;
  exec(sw(kA2, kA1, 0));
  EXPECT_EQ(peek32(kData + 2 * kPageSize - 2), 0x05060708u);
}

// ---- access faults on physical addresses ----

TEST_F(RvITest, LoadFromNonexistentAddressIsAccessFault) {
  h().x[kA1] = kUnmappedPa;
  h().x[kA0] = 0x1234;
  exec(lw(kA0, kA1, 8));
  expect_m_trap(Cause::kLoadAccessFault, kUnmappedPa + 8, kCode);
  EXPECT_EQ(h().x[kA0], 0x1234u) << "a faulting load does not write rd";
}

TEST_F(RvITest, FaultingLoadIntoBaseRegisterKeepsBase) {
  h().x[kA1] = kUnmappedPa;
  exec(ld(kA1, kA1, 0));
  EXPECT_TRUE(in_m_trap());
  EXPECT_EQ(h().x[kA1], kUnmappedPa);
}

TEST_F(RvITest, MmioStoreRejectedByDeviceIsAccessFault) {
  // FakePlatform only decodes [kMmio, kMmio + 0x1000): just above it nothing answers.
  h().x[kA1] = kMmio + 0x1000;
  exec(sw(kA2, kA1, 0));
  expect_m_trap(Cause::kStoreAccessFault, kMmio + 0x1000, kCode);
}

TEST_F(RvITest, StoreToNonexistentAddressIsAccessFault) {
  h().x[kA1] = kUnmappedPa;
  exec(sd(kA0, kA1, 16));
  expect_m_trap(Cause::kStoreAccessFault, kUnmappedPa + 16, kCode);
}

TEST_F(RvITest, MmioLoadsAndStoresReachPlatform) {
  platform.mmio_value = 0xff;
  h().x[kA1] = kMmio;
  h().x[kA2] = 0xabcd;
  code(kCode, {lb(kA0, kA1, 4), lbu(kA3, kA1, 4), sh(kA2, kA1, 8)});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().pc, kCode + 12);
  EXPECT_EQ(h().x[kA0], kOnes);   // LB sign-extends the byte the device returned
  EXPECT_EQ(h().x[kA3], 0xffu);
  ASSERT_EQ(platform.mmio.size(), 3u);
  EXPECT_FALSE(platform.mmio[0].write);
  EXPECT_EQ(platform.mmio[0].pa, kMmio + 4);
  EXPECT_EQ(platform.mmio[0].size, 1u);
  EXPECT_TRUE(platform.mmio[2].write);
  EXPECT_EQ(platform.mmio[2].pa, kMmio + 8);
  EXPECT_EQ(platform.mmio[2].size, 2u);
  EXPECT_EQ(platform.mmio[2].value & 0xffff, 0xabcdu);
}

// ---- FENCE / FENCE.I / illegal ----

TEST_F(RvITest, FenceVariantsExecuteAsNops) {
  h().x[kA0] = 77;
  code(kCode, {fence(), fence(3, 3), fence(3, 3, 8) /* fence.tso */, fence(0, 0) /* pause-like hint */,
               fence_i()});
  h().pc = kCode;
  step(5);
  EXPECT_EQ(h().pc, kCode + 20);
  EXPECT_EQ(h().priv, Priv::M);
  EXPECT_EQ(h().x[kA0], 77u);
}

TEST_F(RvITest, UnknownOpcodesAreIllegal) {
  for (uint32_t bad : {0xffffffffu, 0x0000200bu /* custom-0 */, i_type(0, kA1, 2, kA0, kOpImm32) /* OP-IMM-32 f3=2 */,
                       r_type(0x02, kA2, kA1, 0, kA0, kOpOp) /* OP funct7=2 */,
                       r_type(0x20, kA2, kA1, 1, kA0, kOpOp) /* SLL with funct7=0x20 */,
                       r_type(0x20, kA2, kA1, 1, kA0, kOpOp32) /* SLLW with funct7=0x20 */}) {
    reset_hart();
    exec(bad);
    expect_m_trap(Cause::kIllegalInsn, bad, kCode);
  }
}

TEST_F(RvITest, AllZeroWordIsIllegal) {
  exec(0x00000000);
  EXPECT_TRUE(in_m_trap());
  EXPECT_EQ(mcause(), cause_of(Cause::kIllegalInsn));
  EXPECT_EQ(mtval(), 0u);
  EXPECT_EQ(mepc(), kCode);
}

TEST_F(RvITest, SequentialProgramComputesSum) {
  // sum = 0; for (i = 10; i != 0; --i) sum += i;
  code(kCode, {addi(kA0, kZero, 0), addi(kA1, kZero, 10), add(kA0, kA0, kA1), addi(kA1, kA1, -1),
               bne(kA1, kZero, -8), self_loop()});
  h().pc = kCode;
  step(2 + 3 * 10);
  EXPECT_EQ(h().x[kA0], 55u);
  EXPECT_EQ(h().pc, kCode + 20);
}

}  // namespace
}  // namespace vigil::riscv::test
