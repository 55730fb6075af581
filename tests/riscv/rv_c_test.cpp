// The C extension (unprivileged spec chapter 16, RV64C): expansion of every compressed
// instruction to its 32-bit equivalent (tables 16.4-16.6 and the per-instruction text),
// reserved encodings, and execution of mixed 16/32-bit code.
#include <cstdint>
#include <string>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;

// ---- compressed encoders, one per instruction, from the format figures of chapter 16 ----
// Registers named rd'/rs1'/rs2' are given as full register numbers 8..15.
constexpr uint32_t p(uint32_t r) { return r - 8; }
constexpr uint32_t b(uint32_t v, unsigned n) { return (v >> n) & 1; }
constexpr uint32_t bs(uint32_t v, unsigned hi, unsigned lo) { return (v >> lo) & ((1u << (hi - lo + 1)) - 1); }
constexpr uint16_t h16(uint32_t v) { return static_cast<uint16_t>(v); }

// Quadrant 0
constexpr uint16_t c_addi4spn(uint32_t rd, uint32_t nzuimm) {  // nzuimm[5:4|9:6|2|3]
  return h16((0u << 13) | (bs(nzuimm, 5, 4) << 11) | (bs(nzuimm, 9, 6) << 7) | (b(nzuimm, 2) << 6) |
             (b(nzuimm, 3) << 5) | (p(rd) << 2) | 0);
}
constexpr uint16_t cl_w(uint32_t f3, uint32_t rd, uint32_t rs1, uint32_t uimm) {  // uimm[5:3] uimm[2|6]
  return h16((f3 << 13) | (bs(uimm, 5, 3) << 10) | (p(rs1) << 7) | (b(uimm, 2) << 6) | (b(uimm, 6) << 5) |
             (p(rd) << 2) | 0);
}
constexpr uint16_t cl_d(uint32_t f3, uint32_t rd, uint32_t rs1, uint32_t uimm) {  // uimm[5:3] uimm[7:6]
  return h16((f3 << 13) | (bs(uimm, 5, 3) << 10) | (p(rs1) << 7) | (bs(uimm, 7, 6) << 5) | (p(rd) << 2) | 0);
}
constexpr uint16_t c_lw(uint32_t rd, uint32_t rs1, uint32_t u) { return cl_w(2, rd, rs1, u); }
constexpr uint16_t c_sw(uint32_t rs2, uint32_t rs1, uint32_t u) { return cl_w(6, rs2, rs1, u); }
constexpr uint16_t c_ld(uint32_t rd, uint32_t rs1, uint32_t u) { return cl_d(3, rd, rs1, u); }
constexpr uint16_t c_sd(uint32_t rs2, uint32_t rs1, uint32_t u) { return cl_d(7, rs2, rs1, u); }
constexpr uint16_t c_fld(uint32_t rd, uint32_t rs1, uint32_t u) { return cl_d(1, rd, rs1, u); }
constexpr uint16_t c_fsd(uint32_t rs2, uint32_t rs1, uint32_t u) { return cl_d(5, rs2, rs1, u); }

// Quadrant 1
constexpr uint16_t ci(uint32_t f3, uint32_t rd, int32_t imm6, uint32_t op) {
  const uint32_t u = static_cast<uint32_t>(imm6);
  return h16((f3 << 13) | (b(u, 5) << 12) | (rd << 7) | (bs(u, 4, 0) << 2) | op);
}
constexpr uint16_t c_addi(uint32_t rd, int32_t imm) { return ci(0, rd, imm, 1); }
constexpr uint16_t c_addiw(uint32_t rd, int32_t imm) { return ci(1, rd, imm, 1); }
constexpr uint16_t c_li(uint32_t rd, int32_t imm) { return ci(2, rd, imm, 1); }
constexpr uint16_t c_addi16sp(int32_t nzimm) {  // nzimm[9] nzimm[4|6|8:7|5]
  const uint32_t u = static_cast<uint32_t>(nzimm);
  return h16((3u << 13) | (b(u, 9) << 12) | (2u << 7) | (b(u, 4) << 6) | (b(u, 6) << 5) | (bs(u, 8, 7) << 3) |
             (b(u, 5) << 2) | 1);
}
constexpr uint16_t c_lui(uint32_t rd, int32_t nzimm) {  // nzimm[17] nzimm[16:12]
  const uint32_t u = static_cast<uint32_t>(nzimm);
  return h16((3u << 13) | (b(u, 17) << 12) | (rd << 7) | (bs(u, 16, 12) << 2) | 1);
}
constexpr uint16_t cb_shift(uint32_t f2, uint32_t rd, uint32_t sh) {
  return h16((4u << 13) | (b(sh, 5) << 12) | (f2 << 10) | (p(rd) << 7) | (bs(sh, 4, 0) << 2) | 1);
}
constexpr uint16_t c_srli(uint32_t rd, uint32_t sh) { return cb_shift(0, rd, sh); }
constexpr uint16_t c_srai(uint32_t rd, uint32_t sh) { return cb_shift(1, rd, sh); }
constexpr uint16_t c_andi(uint32_t rd, int32_t imm) { return cb_shift(2, rd, static_cast<uint32_t>(imm)); }
constexpr uint16_t ca(uint32_t bit12, uint32_t f2, uint32_t rd, uint32_t rs2) {
  return h16((4u << 13) | (bit12 << 12) | (3u << 10) | (p(rd) << 7) | (f2 << 5) | (p(rs2) << 2) | 1);
}
constexpr uint16_t c_sub(uint32_t rd, uint32_t rs2) { return ca(0, 0, rd, rs2); }
constexpr uint16_t c_xor(uint32_t rd, uint32_t rs2) { return ca(0, 1, rd, rs2); }
constexpr uint16_t c_or(uint32_t rd, uint32_t rs2) { return ca(0, 2, rd, rs2); }
constexpr uint16_t c_and(uint32_t rd, uint32_t rs2) { return ca(0, 3, rd, rs2); }
constexpr uint16_t c_subw(uint32_t rd, uint32_t rs2) { return ca(1, 0, rd, rs2); }
constexpr uint16_t c_addw(uint32_t rd, uint32_t rs2) { return ca(1, 1, rd, rs2); }
constexpr uint16_t c_j(int32_t off) {  // offset[11|4|9:8|10|6|7|3:1|5]
  const uint32_t u = static_cast<uint32_t>(off);
  return h16((5u << 13) | (b(u, 11) << 12) | (b(u, 4) << 11) | (bs(u, 9, 8) << 9) | (b(u, 10) << 8) |
             (b(u, 6) << 7) | (b(u, 7) << 6) | (bs(u, 3, 1) << 3) | (b(u, 5) << 2) | 1);
}
constexpr uint16_t cbranch(uint32_t f3, uint32_t rs1, int32_t off) {  // offset[8|4:3] offset[7:6|2:1|5]
  const uint32_t u = static_cast<uint32_t>(off);
  return h16((f3 << 13) | (b(u, 8) << 12) | (bs(u, 4, 3) << 10) | (p(rs1) << 7) | (bs(u, 7, 6) << 5) |
             (bs(u, 2, 1) << 3) | (b(u, 5) << 2) | 1);
}
constexpr uint16_t c_beqz(uint32_t rs1, int32_t off) { return cbranch(6, rs1, off); }
constexpr uint16_t c_bnez(uint32_t rs1, int32_t off) { return cbranch(7, rs1, off); }

// Quadrant 2
constexpr uint16_t c_slli(uint32_t rd, uint32_t sh) {
  return h16((0u << 13) | (b(sh, 5) << 12) | (rd << 7) | (bs(sh, 4, 0) << 2) | 2);
}
constexpr uint16_t c_lwsp(uint32_t rd, uint32_t u) {  // uimm[5] uimm[4:2|7:6]
  return h16((2u << 13) | (b(u, 5) << 12) | (rd << 7) | (bs(u, 4, 2) << 4) | (bs(u, 7, 6) << 2) | 2);
}
constexpr uint16_t lsp_d(uint32_t f3, uint32_t rd, uint32_t u) {  // uimm[5] uimm[4:3|8:6]
  return h16((f3 << 13) | (b(u, 5) << 12) | (rd << 7) | (bs(u, 4, 3) << 5) | (bs(u, 8, 6) << 2) | 2);
}
constexpr uint16_t c_ldsp(uint32_t rd, uint32_t u) { return lsp_d(3, rd, u); }
constexpr uint16_t c_fldsp(uint32_t rd, uint32_t u) { return lsp_d(1, rd, u); }
constexpr uint16_t c_swsp(uint32_t rs2, uint32_t u) {  // uimm[5:2|7:6]
  return h16((6u << 13) | (bs(u, 5, 2) << 9) | (bs(u, 7, 6) << 7) | (rs2 << 2) | 2);
}
constexpr uint16_t ssp_d(uint32_t f3, uint32_t rs2, uint32_t u) {  // uimm[5:3|8:6]
  return h16((f3 << 13) | (bs(u, 5, 3) << 10) | (bs(u, 8, 6) << 7) | (rs2 << 2) | 2);
}
constexpr uint16_t c_sdsp(uint32_t rs2, uint32_t u) { return ssp_d(7, rs2, u); }
constexpr uint16_t c_fsdsp(uint32_t rs2, uint32_t u) { return ssp_d(5, rs2, u); }
constexpr uint16_t cr(uint32_t f4, uint32_t rd, uint32_t rs2) { return h16((f4 << 12) | (rd << 7) | (rs2 << 2) | 2); }
constexpr uint16_t c_jr(uint32_t rs1) { return cr(8, rs1, 0); }
constexpr uint16_t c_mv(uint32_t rd, uint32_t rs2) { return cr(8, rd, rs2); }
constexpr uint16_t c_ebreak() { return cr(9, 0, 0); }
constexpr uint16_t c_jalr(uint32_t rs1) { return cr(9, rs1, 0); }
constexpr uint16_t c_add(uint32_t rd, uint32_t rs2) { return cr(9, rd, rs2); }

// 32-bit FP load/store (for the C.FLD family): LOAD-FP 0x07 / STORE-FP 0x27, width 3 = D.
constexpr uint32_t fld(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 3, rd, 0x07); }
constexpr uint32_t fsd(uint32_t rs2, uint32_t rs1, int32_t off) { return s_type(off, rs2, rs1, 3, 0x27); }

struct Expansion {
  const char* name;
  uint16_t c;
  uint32_t full;
};

class ExpandTest : public ::testing::TestWithParam<Expansion> {};

TEST_P(ExpandTest, MatchesSpec) {
  const Expansion& e = GetParam();
  EXPECT_EQ(expand_compressed(e.c), e.full) << std::hex << "c=0x" << e.c << " expanded=0x" << expand_compressed(e.c)
                                            << " expected=0x" << e.full;
}

INSTANTIATE_TEST_SUITE_P(
    Rv64C, ExpandTest,
    ::testing::Values(
        // Quadrant 0
        Expansion{"addi4spn_min", c_addi4spn(kS0, 4), addi(kS0, kSp, 4)},
        Expansion{"addi4spn_max", c_addi4spn(kA5, 1020), addi(kA5, kSp, 1020)},
        Expansion{"addi4spn_mixed", c_addi4spn(kA0, 0x2a8), addi(kA0, kSp, 0x2a8)},
        Expansion{"fld", c_fld(kS1, kA0, 0xf8), fld(kS1, kA0, 0xf8)},
        Expansion{"lw", c_lw(kA0, kA1, 0x7c), lw(kA0, kA1, 0x7c)},
        Expansion{"lw_bit6", c_lw(kA2, kS0, 0x44), lw(kA2, kS0, 0x44)},
        Expansion{"lw_bit2_only", c_lw(kA2, kS0, 0x04), lw(kA2, kS0, 0x04)},
        Expansion{"lw_bit6_only", c_lw(kA2, kS0, 0x40), lw(kA2, kS0, 0x40)},
        Expansion{"ld_bit7_only", c_ld(kA0, kA1, 0x80), ld(kA0, kA1, 0x80)},
        Expansion{"beqz_bit5", c_beqz(kA0, 0x20), beq(kA0, kZero, 0x20)},
        Expansion{"beqz_bit3", c_beqz(kA0, 0x08), beq(kA0, kZero, 0x08)},
        Expansion{"addi16sp_bit4", c_addi16sp(0x10), addi(kSp, kSp, 0x10)},
        Expansion{"addi16sp_bit6", c_addi16sp(0x40), addi(kSp, kSp, 0x40)},
        Expansion{"addi4spn_bit3", c_addi4spn(kA0, 0x08), addi(kA0, kSp, 0x08)},
        Expansion{"ldsp_bit6", c_ldsp(kA0, 0x40), ld(kA0, kSp, 0x40)},
        Expansion{"lwsp_bit6", c_lwsp(kA0, 0x40), lw(kA0, kSp, 0x40)},
        Expansion{"sdsp_bit6", c_sdsp(kA0, 0x40), sd(kA0, kSp, 0x40)},
        Expansion{"swsp_bit6", c_swsp(kA0, 0x40), sw(kA0, kSp, 0x40)},
        Expansion{"ld", c_ld(kA3, kA4, 0xf8), ld(kA3, kA4, 0xf8)},
        Expansion{"ld_bit6", c_ld(kS1, kA5, 0x48), ld(kS1, kA5, 0x48)},
        Expansion{"fsd", c_fsd(kA0, kA1, 0x88), fsd(kA0, kA1, 0x88)},
        Expansion{"sw", c_sw(kA0, kA1, 0x64), sw(kA0, kA1, 0x64)},
        Expansion{"sd", c_sd(kS0, kA5, 0xb8), sd(kS0, kA5, 0xb8)},
        // Quadrant 1
        Expansion{"nop", c_addi(0, 0), addi(0, 0, 0)},
        Expansion{"addi_pos", c_addi(kA0, 31), addi(kA0, kA0, 31)},
        Expansion{"addi_neg", c_addi(kT6, -32), addi(kT6, kT6, -32)},
        Expansion{"addiw", c_addiw(kA0, -1), addiw(kA0, kA0, -1)},
        Expansion{"sext_w", c_addiw(kT0, 0), addiw(kT0, kT0, 0)},
        Expansion{"li", c_li(kA0, -7), addi(kA0, kZero, -7)},
        Expansion{"li_pos", c_li(kRa, 21), addi(kRa, kZero, 21)},
        Expansion{"addi16sp_neg", c_addi16sp(-512), addi(kSp, kSp, -512)},
        Expansion{"addi16sp_pos", c_addi16sp(496), addi(kSp, kSp, 496)},
        Expansion{"addi16sp_bits", c_addi16sp(0x1b0), addi(kSp, kSp, 0x1b0)},
        Expansion{"lui_pos", c_lui(kA0, 0x1f000), lui(kA0, 0x1f)},
        Expansion{"lui_neg", c_lui(kT0, -0x1000), lui(kT0, 0xfffff)},
        Expansion{"lui_min", c_lui(kS1, -0x20000), lui(kS1, 0xfffe0)},
        Expansion{"srli", c_srli(kA0, 3), srli(kA0, kA0, 3)},
        Expansion{"srli_63", c_srli(kS1, 63), srli(kS1, kS1, 63)},
        Expansion{"srai", c_srai(kA1, 33), srai(kA1, kA1, 33)},
        Expansion{"andi", c_andi(kA2, -16), andi(kA2, kA2, -16)},
        Expansion{"andi_pos", c_andi(kS0, 15), andi(kS0, kS0, 15)},
        Expansion{"sub", c_sub(kA0, kA1), sub(kA0, kA0, kA1)},
        Expansion{"xor", c_xor(kS0, kA5), xor_(kS0, kS0, kA5)},
        Expansion{"or", c_or(kA3, kA4), or_(kA3, kA3, kA4)},
        Expansion{"and", c_and(kA5, kS1), and_(kA5, kA5, kS1)},
        Expansion{"subw", c_subw(kA0, kA2), subw(kA0, kA0, kA2)},
        Expansion{"addw", c_addw(kA1, kA3), addw(kA1, kA1, kA3)},
        Expansion{"j_pos", c_j(0x7fe), jal(kZero, 0x7fe)},
        Expansion{"j_neg", c_j(-0x800), jal(kZero, -0x800)},
        Expansion{"j_bits", c_j(0x2d4), jal(kZero, 0x2d4)},
        Expansion{"j_bits2", c_j(-0x52a), jal(kZero, -0x52a)},
        Expansion{"j_bit4", c_j(0x10), jal(kZero, 0x10)},
        Expansion{"j_bit5", c_j(0x20), jal(kZero, 0x20)},
        Expansion{"j_bit6", c_j(0x40), jal(kZero, 0x40)},
        Expansion{"j_bit7", c_j(0x80), jal(kZero, 0x80)},
        Expansion{"j_bit8", c_j(0x100), jal(kZero, 0x100)},
        Expansion{"j_bit10", c_j(0x400), jal(kZero, 0x400)},
        Expansion{"j_bit7_neg", c_j(-0x780), jal(kZero, -0x780)},
        Expansion{"beqz_pos", c_beqz(kA0, 0xfe), beq(kA0, kZero, 0xfe)},
        Expansion{"beqz_neg", c_beqz(kS1, -0x100), beq(kS1, kZero, -0x100)},
        Expansion{"bnez_bits", c_bnez(kA5, 0x6a), bne(kA5, kZero, 0x6a)},
        Expansion{"bnez_neg", c_bnez(kS0, -0x36), bne(kS0, kZero, -0x36)},
        // Quadrant 2
        Expansion{"slli", c_slli(kA0, 1), slli(kA0, kA0, 1)},
        Expansion{"slli_63", c_slli(kT6, 63), slli(kT6, kT6, 63)},
        Expansion{"fldsp", c_fldsp(7, 0x1f8), fld(7, kSp, 0x1f8)},
        Expansion{"lwsp", c_lwsp(kRa, 0xfc), lw(kRa, kSp, 0xfc)},
        Expansion{"lwsp_bits", c_lwsp(kA0, 0x64), lw(kA0, kSp, 0x64)},
        Expansion{"ldsp", c_ldsp(kRa, 0x1f8), ld(kRa, kSp, 0x1f8)},
        Expansion{"ldsp_bits", c_ldsp(kT2, 0x148), ld(kT2, kSp, 0x148)},
        Expansion{"jr", c_jr(kRa), jalr(kZero, kRa, 0)},
        Expansion{"mv", c_mv(kA0, kA1), add(kA0, kZero, kA1)},
        Expansion{"ebreak", c_ebreak(), ebreak()},
        Expansion{"jalr", c_jalr(kT0), jalr(kRa, kT0, 0)},
        Expansion{"add", c_add(kA0, kA1), add(kA0, kA0, kA1)},
        Expansion{"fsdsp", c_fsdsp(9, 0x1f8), fsd(9, kSp, 0x1f8)},
        Expansion{"swsp", c_swsp(kA0, 0xfc), sw(kA0, kSp, 0xfc)},
        Expansion{"swsp_bits", c_swsp(kT6, 0x84), sw(kT6, kSp, 0x84)},
        Expansion{"sdsp", c_sdsp(kRa, 0x1f8), sd(kRa, kSp, 0x1f8)},
        Expansion{"sdsp_bits", c_sdsp(kS2, 0x148), sd(kS2, kSp, 0x148)},
        // Encodings as a toolchain emits them (cross-check of the encoders above).
        Expansion{"gas_addi_sp_m16", 0x1141, 0xff010113},
        Expansion{"gas_sd_ra_8sp", 0xe406, 0x00113423},
        Expansion{"gas_ld_ra_8sp", 0x60a2, 0x00813083},
        Expansion{"gas_ret", 0x8082, 0x00008067},
        Expansion{"gas_li_a0_0", 0x4501, 0x00000513},
        Expansion{"gas_mv_a0_a1", 0x852e, 0x00b00533},
        Expansion{"gas_addi_s0_sp_16", 0x0800, 0x01010413},
        Expansion{"gas_ebreak", 0x9002, 0x00100073},
        Expansion{"gas_nop", 0x0001, 0x00000013},
        Expansion{"gas_sext_w_a0", 0x2501, 0x0005051b},
        Expansion{"gas_lui_a0_1", 0x6505, 0x00001537},
        Expansion{"gas_addi_a0_m1", 0x157d, 0xfff50513}),
    [](const ::testing::TestParamInfo<Expansion>& info) { return std::string(info.param.name); });

TEST(CompressedEncoders, CrossCheckAgainstToolchainEncodings) {
  EXPECT_EQ(c_addi(kSp, -16), 0x1141);
  EXPECT_EQ(c_sdsp(kRa, 8), 0xe406);
  EXPECT_EQ(c_ldsp(kRa, 8), 0x60a2);
  EXPECT_EQ(c_jr(kRa), 0x8082);
  EXPECT_EQ(c_li(kA0, 0), 0x4501);
  EXPECT_EQ(c_mv(kA0, kA1), 0x852e);
  EXPECT_EQ(c_addi4spn(kS0, 16), 0x0800);
  EXPECT_EQ(c_addiw(kA0, 0), 0x2501);
  EXPECT_EQ(c_lui(kA0, 0x1000), 0x6505);
}

// ---- reserved encodings (table 16.4-16.6: "RES" and the nz* constraints) ----

struct Reserved {
  const char* name;
  uint16_t c;
};
class ReservedTest : public ::testing::TestWithParam<Reserved> {};

TEST_P(ReservedTest, ExpandsToIllegal) { EXPECT_EQ(expand_compressed(GetParam().c), 0u) << std::hex << GetParam().c; }

INSTANTIATE_TEST_SUITE_P(
    Rv64C, ReservedTest,
    ::testing::Values(Reserved{"all_zero", 0x0000},
                      Reserved{"addi4spn_zero_imm", 0x0004},          // rd'=x9, nzuimm=0
                      Reserved{"q0_funct3_100", 0x8000},
                      Reserved{"q0_funct3_100_any", 0x9ffc},
                      Reserved{"addiw_rd0", c_addiw(0, 1)},
                      Reserved{"addi16sp_zero", 0x6101},
                      Reserved{"lui_zero", 0x6501},                   // c.lui a0, 0
                      Reserved{"subw_reserved_10", ca(1, 2, kA0, kA1)},
                      Reserved{"subw_reserved_11", ca(1, 3, kA0, kA1)},
                      Reserved{"lwsp_rd0", 0x4002},
                      Reserved{"lwsp_rd0_imm", c_lwsp(0, 0xfc)},
                      Reserved{"ldsp_rd0", 0x6002},
                      Reserved{"jr_rs1_0", 0x8002}),
    [](const ::testing::TestParamInfo<Reserved>& info) { return std::string(info.param.name); });

// ---- execution ----

class RvCTest : public CpuTest {};

TEST_F(RvCTest, MixedSixteenAndThirtyTwoBitSequence) {
  uint64_t a = kCode;
  poke16(a, c_li(kA0, 5)), a += 2;                   // +0
  poke32(a, addi(kA1, kA0, 1)), a += 4;              // +2: 32-bit at a 2-byte aligned address
  poke16(a, c_add(kA0, kA1)), a += 2;                // +6: a0 = 11
  poke16(a, c_slli(kA0, 1)), a += 2;                 // +8: a0 = 22
  poke16(a, c_j(6)), a += 2;                         // +10 -> +16
  poke32(a, addi(kA0, kZero, 0)), a += 4;            // +12: skipped
  poke16(a, c_mv(kA2, kA0)), a += 2;                 // +16
  poke32(a, lui(kA3, 0x12)), a += 4;                 // +18
  h().pc = kCode;
  step(7);
  EXPECT_EQ(h().x[kA1], 6u);
  EXPECT_EQ(h().x[kA0], 22u);
  EXPECT_EQ(h().x[kA2], 22u);
  EXPECT_EQ(h().x[kA3], 0x12000u);
  EXPECT_EQ(h().pc, kCode + 22);
}

TEST_F(RvCTest, CJalrLinksPcPlus2) {
  poke16(kCode, c_jalr(kA5));
  h().x[kA5] = kCode + 0x41;  // bit 0 cleared by JALR
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 0x40);
  EXPECT_EQ(h().x[kRa], kCode + 2);
}

TEST_F(RvCTest, CJrDoesNotLink) {
  poke16(kCode, c_jr(kA5));
  h().x[kA5] = kCode + 0x80;
  h().x[kRa] = 1234;
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 0x80);
  EXPECT_EQ(h().x[kRa], 1234u);
}

TEST_F(RvCTest, CJBackward) {
  poke16(kCode + 0x100, c_j(-0x100));
  h().pc = kCode + 0x100;
  step();
  EXPECT_EQ(h().pc, kCode);
}

TEST_F(RvCTest, CBeqzBnez) {
  poke16(kCode, c_beqz(kA0, 0x20));
  h().x[kA0] = 0;
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 0x20);
  h().x[kA0] = 1;
  h().pc = kCode;
  step();
  EXPECT_EQ(h().pc, kCode + 2);
  poke16(kCode + 0x40, c_bnez(kA0, -0x40));
  h().pc = kCode + 0x40;
  step();
  EXPECT_EQ(h().pc, kCode);
}

TEST_F(RvCTest, StackPointerLoadsAndStores) {
  h().x[kSp] = kData + 0x100;
  h().x[kRa] = 0x8877665544332211ull;
  h().x[kA0] = 0x80000001;
  uint64_t a = kCode;
  poke16(a, c_sdsp(kRa, 8)), a += 2;
  poke16(a, c_swsp(kA0, 4)), a += 2;
  poke16(a, c_ldsp(kT0, 8)), a += 2;
  poke16(a, c_lwsp(kT1, 4)), a += 2;
  h().pc = kCode;
  step(4);
  EXPECT_EQ(peek64(kData + 0x108), 0x8877665544332211ull);
  EXPECT_EQ(peek32(kData + 0x104), 0x80000001u);
  EXPECT_EQ(h().x[kT0], 0x8877665544332211ull);
  EXPECT_EQ(h().x[kT1], 0xffffffff80000001ull);  // C.LWSP sign-extends like LW
}

TEST_F(RvCTest, RegisterBasedLoadsStores) {
  h().x[kA1] = kData;
  h().x[kA2] = 0xfedcba9876543210ull;
  uint64_t a = kCode;
  poke16(a, c_sd(kA2, kA1, 0x18)), a += 2;
  poke16(a, c_sw(kA2, kA1, 0x44)), a += 2;
  poke16(a, c_ld(kA3, kA1, 0x18)), a += 2;
  poke16(a, c_lw(kA4, kA1, 0x44)), a += 2;
  h().pc = kCode;
  step(4);
  EXPECT_EQ(peek64(kData + 0x18), 0xfedcba9876543210ull);
  EXPECT_EQ(peek32(kData + 0x44), 0x76543210u);
  EXPECT_EQ(h().x[kA3], 0xfedcba9876543210ull);
  EXPECT_EQ(h().x[kA4], 0x76543210u);
}

TEST_F(RvCTest, CAddi16spAndAddi4spn) {
  h().x[kSp] = 0x1000;
  uint64_t a = kCode;
  poke16(a, c_addi16sp(-64)), a += 2;
  poke16(a, c_addi4spn(kA0, 24)), a += 2;
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kSp], 0x1000u - 64);
  EXPECT_EQ(h().x[kA0], 0x1000u - 64 + 24);
}

TEST_F(RvCTest, CArithmeticWForms) {
  h().x[kA0] = 0x7fffffff;
  h().x[kA1] = 1;
  poke16(kCode, c_addw(kA0, kA1));
  poke16(kCode + 2, c_subw(kA1, kA0));  // 1 - 0xffffffff80000000 -> low 32: 0x80000001
  poke16(kCode + 4, c_addiw(kA2, 0));
  h().x[kA2] = 0x00000000ffffffffull;
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA0], 0xffffffff80000000ull);
  EXPECT_EQ(h().x[kA1], 0xffffffff80000001ull);
  EXPECT_EQ(h().x[kA2], ~0ull);
}

TEST_F(RvCTest, ThirtyTwoBitInstructionStraddlingPageBoundary) {
  const uint64_t boundary = kCode + kPageSize;
  poke16(boundary - 4, c_li(kA0, 1));
  const uint32_t insn = addi(kA0, kA0, 41);
  poke16(boundary - 2, static_cast<uint16_t>(insn));
  poke16(boundary, static_cast<uint16_t>(insn >> 16));
  poke16(boundary + 2, c_addi(kA0, 1));
  h().pc = boundary - 4;
  step(3);
  EXPECT_EQ(h().x[kA0], 43u);
  EXPECT_EQ(h().pc, boundary + 4);
  EXPECT_EQ(h().priv, Priv::M);
}

TEST_F(RvCTest, StraddlingInstructionSeesModifiedSecondHalf) {
  const uint64_t boundary = kCode + kPageSize;
  const uint32_t insn1 = addi(kA0, kZero, 0x123);
  const uint32_t insn2 = addi(kA0, kZero, -0x123);
  poke16(boundary - 2, static_cast<uint16_t>(insn1));
  poke16(boundary, static_cast<uint16_t>(insn1 >> 16));
  h().pc = boundary - 2;
  step();
  EXPECT_EQ(h().x[kA0], 0x123u);
  // Rewrite only the upper half (on the next page) with a guest store, then run again.
  h().x[kA1] = boundary;
  h().x[kA2] = insn2 >> 16;
  code(kCode, {sh(kA2, kA1, 0), fence_i(), jal(kZero, static_cast<int32_t>(kPageSize - 2 - 8))});
  h().pc = kCode;
  step(4);
  EXPECT_EQ(h().x[kA0], static_cast<uint64_t>(-0x123));
}

TEST_F(RvCTest, ReservedCompressedTrapsWithSixteenBitTval) {
  poke16(kCode, 0x4002);   // C.LWSP with rd = x0
  poke16(kCode + 2, 0xffff);
  h().pc = kCode;
  step();
  expect_m_trap(Cause::kIllegalInsn, 0x4002, kCode);
}

TEST_F(RvCTest, AllZeroHalfwordIsIllegal) {
  poke32(kCode, 0xffff0000);
  h().pc = kCode;
  step();
  expect_m_trap(Cause::kIllegalInsn, 0, kCode);
}

TEST_F(RvCTest, AddiFourSpnZeroImmediateTraps) {
  poke16(kCode, 0x0004);
  poke16(kCode + 2, 0x0000);
  h().pc = kCode;
  step();
  expect_m_trap(Cause::kIllegalInsn, 0x0004, kCode);
}

TEST_F(RvCTest, CEbreakTvalIsPc) {
  poke16(kCode + 6, c_ebreak());
  h().pc = kCode + 6;
  step();
  expect_m_trap(Cause::kBreakpoint, kCode + 6, kCode + 6);
}

TEST_F(RvCTest, CompressedFloatingPointLoadWithFsOffIsIllegal) {
  // mstatus.FS = Off after reset: FP instructions (compressed ones too) are illegal (3.1.6.6).
  const uint16_t insn = c_fld(kS0, kA0, 8);
  poke16(kCode, insn);
  poke16(kCode + 2, 0x0001);
  h().x[kA0] = kData;
  h().pc = kCode;
  step();
  EXPECT_TRUE(in_m_trap());
  EXPECT_EQ(mcause(), cause_of(Cause::kIllegalInsn));
  EXPECT_EQ(mepc(), kCode);
  // Was a bug (fixed): rv_f.cpp fp_load/fp_store raise_illegal(0): tval must be the instruction bits
  // (privileged 3.1.16, as for every other illegal instruction in this emulator).
  EXPECT_EQ(mtval(), insn);
}

TEST_F(RvCTest, MepcOfTrapInCompressedCodeIsHalfwordAligned) {
  poke16(kCode, 0x0001);        // c.nop
  poke32(kCode + 2, ecall());   // 32-bit ECALL at +2
  h().pc = kCode;
  step(2);
  expect_m_trap(Cause::kEcallM, 0, kCode + 2);
}

}  // namespace
}  // namespace vigil::riscv::test
