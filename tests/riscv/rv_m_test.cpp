// RV64M (unprivileged spec chapter 7). Table 7.1 gives the results of division by zero and
// of signed overflow; neither traps.
#include <cstdint>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;

constexpr uint64_t kMin64 = 0x8000000000000000ull;
constexpr uint64_t kMax64 = 0x7fffffffffffffffull;
constexpr uint64_t kOnes = ~0ull;
constexpr uint64_t neg(int64_t v) { return static_cast<uint64_t>(v); }

class RvMTest : public CpuTest {
 protected:
  uint64_t op(uint32_t (*make)(uint32_t, uint32_t, uint32_t), uint64_t a, uint64_t b) {
    h().x[kA0] = 0x5555aaaa5555aaaaull;
    h().x[kA1] = a;
    h().x[kA2] = b;
    exec(make(kA0, kA1, kA2));
    EXPECT_EQ(h().pc, kCode + 4) << "must not trap";
    EXPECT_EQ(h().priv, Priv::M);
    return h().x[kA0];
  }
};

// ---- multiplication ----

TEST_F(RvMTest, MulLow64Bits) {
  EXPECT_EQ(op(mul, 7, 6), 42u);
  EXPECT_EQ(op(mul, neg(-3), 5), neg(-15));
  EXPECT_EQ(op(mul, 0x100000000ull, 0x100000000ull), 0u);
  EXPECT_EQ(op(mul, kMin64, kOnes), kMin64);
  EXPECT_EQ(op(mul, 0x123456789ull, 0x987654321ull), 0x123456789ull * 0x987654321ull);
}

TEST_F(RvMTest, MulhSignedSigned) {
  EXPECT_EQ(op(mulh, kOnes, kOnes), 0u);                    // (-1)(-1) = 1
  EXPECT_EQ(op(mulh, kOnes, 1), kOnes);                     // -1: high half all ones
  EXPECT_EQ(op(mulh, kMin64, kMin64), 0x4000000000000000ull);  // 2^126
  EXPECT_EQ(op(mulh, kMin64, kMax64), 0xc000000000000000ull);  // -2^63 (2^63-1) = -2^126 + 2^63
  EXPECT_EQ(op(mulh, kMax64, kMax64), 0x3fffffffffffffffull);
  EXPECT_EQ(op(mulh, 0x100000000ull, 0x100000000ull), 1u);
}

TEST_F(RvMTest, MulhuUnsignedUnsigned) {
  EXPECT_EQ(op(mulhu, kOnes, kOnes), 0xfffffffffffffffeull);
  EXPECT_EQ(op(mulhu, kOnes, 1), 0u);
  EXPECT_EQ(op(mulhu, kMin64, 2), 1u);
  EXPECT_EQ(op(mulhu, 0x100000000ull, 0x100000000ull), 1u);
}

TEST_F(RvMTest, MulhsuSignedTimesUnsigned) {
  // rs1 signed, rs2 unsigned.
  EXPECT_EQ(op(mulhsu, kOnes, kOnes), kOnes);   // -1 * (2^64-1) = -2^64 + 1
  EXPECT_EQ(op(mulhsu, 2, kOnes), 1u);          // 2 (2^64-1) = 2^65 - 2
  EXPECT_EQ(op(mulhsu, kOnes, 1), kOnes);       // -1
  EXPECT_EQ(op(mulhsu, kMin64, kOnes), 0x8000000000000000ull);  // -2^63 (2^64-1) = -2^127 + 2^63
  EXPECT_EQ(op(mulhsu, 1, kOnes), 0u);
}

TEST_F(RvMTest, MulhsuDiffersFromMulhAndMulhu) {
  // -2 * 3 with rs2 unsigned: the same bits as MULH here, but -2 * (2^64-1) differs.
  EXPECT_EQ(op(mulhsu, neg(-2), 3), kOnes);
  EXPECT_EQ(op(mulh, neg(-2), kOnes), 0u);             // (-2)(-1) = 2
  EXPECT_EQ(op(mulhsu, neg(-2), kOnes), neg(-2));      // -2 (2^64-1) = -2^65 + 2
  EXPECT_EQ(op(mulhu, neg(-2), kOnes), 0xfffffffffffffffdull);
}

// ---- 64-bit division ----

TEST_F(RvMTest, DivRemTruncateTowardZero) {
  EXPECT_EQ(op(div, 7, neg(-2)), neg(-3));
  EXPECT_EQ(op(rem, 7, neg(-2)), 1u);
  EXPECT_EQ(op(div, neg(-7), 2), neg(-3));
  EXPECT_EQ(op(rem, neg(-7), 2), neg(-1));  // sign of the remainder = sign of the dividend
  EXPECT_EQ(op(div, neg(-7), neg(-2)), 3u);
  EXPECT_EQ(op(rem, neg(-7), neg(-2)), neg(-1));
}

TEST_F(RvMTest, DivuRemuUnsigned) {
  EXPECT_EQ(op(divu, kOnes, 2), kMax64);
  EXPECT_EQ(op(remu, kOnes, 2), 1u);
  EXPECT_EQ(op(divu, neg(-7), neg(-2)), 0u);
  EXPECT_EQ(op(remu, neg(-7), neg(-2)), neg(-7));
}

TEST_F(RvMTest, DivisionByZero64) {
  // Table 7.1: quotient all ones (-1 / 2^64-1), remainder = dividend.
  EXPECT_EQ(op(div, 123, 0), kOnes);
  EXPECT_EQ(op(div, kMin64, 0), kOnes);
  EXPECT_EQ(op(divu, 123, 0), kOnes);
  EXPECT_EQ(op(rem, neg(-123), 0), neg(-123));
  EXPECT_EQ(op(remu, 0xfedcba9876543210ull, 0), 0xfedcba9876543210ull);
}

TEST_F(RvMTest, SignedOverflow64) {
  EXPECT_EQ(op(div, kMin64, kOnes), kMin64);
  EXPECT_EQ(op(rem, kMin64, kOnes), 0u);
  // Not overflow for the unsigned forms.
  EXPECT_EQ(op(divu, kMin64, kOnes), 0u);
  EXPECT_EQ(op(remu, kMin64, kOnes), kMin64);
}

// ---- W forms: 32-bit operands, sign-extended 32-bit results ----

TEST_F(RvMTest, MulwSignExtendsLow32) {
  EXPECT_EQ(op(mulw, 0x10000, 0x8000), 0xffffffff80000000ull);
  EXPECT_EQ(op(mulw, 0xaaaaaaaa00000003ull, 0x5555555500000005ull), 15u);  // upper halves ignored
  EXPECT_EQ(op(mulw, kOnes, 2), neg(-2));
  EXPECT_EQ(op(mulw, 0x7fffffff, 2), neg(-2));
}

TEST_F(RvMTest, DivwRemwUseLow32Bits) {
  EXPECT_EQ(op(divw, 0xffffffff00000007ull, 0x00000001fffffffeull), neg(-3));  // 7 / -2
  EXPECT_EQ(op(remw, 0xffffffff00000007ull, 0x00000001fffffffeull), 1u);
  EXPECT_EQ(op(divw, 0xfffffff9, 2), neg(-3));                                // -7 / 2
  EXPECT_EQ(op(remw, 0xfffffff9, 2), neg(-1));
}

TEST_F(RvMTest, DivuwRemuwSignExtendResult) {
  EXPECT_EQ(op(divuw, 0x80000000, 1), 0xffffffff80000000ull);
  EXPECT_EQ(op(divuw, 0xffffffff, 2), 0x7fffffffull);
  EXPECT_EQ(op(divuw, 0x12345678ffffffffull, 0xffffffff), 1u);
  EXPECT_EQ(op(remuw, 0xffffffff, 0x80000001), 0x7ffffffeull);
  EXPECT_EQ(op(remuw, 0x80000005, 0xffffffff), 0xffffffff80000005ull);
}

TEST_F(RvMTest, DivisionByZero32) {
  // DIVW/DIVUW: quotient -1 / 2^32-1, sign-extended: all ones. REMW/REMUW: the dividend's
  // low 32 bits, sign-extended.
  EXPECT_EQ(op(divw, 5, 0xffffffff00000000ull), kOnes);  // divisor's low 32 bits are zero
  EXPECT_EQ(op(divuw, 5, 0), kOnes);
  EXPECT_EQ(op(remw, 0x1234567880000000ull, 0), 0xffffffff80000000ull);
  EXPECT_EQ(op(remw, 0x0000000100000005ull, 0), 5u);
  EXPECT_EQ(op(remuw, 0x0000000080000000ull, 0), 0xffffffff80000000ull);
  EXPECT_EQ(op(remuw, 0xffffffff7fffffffull, 0), 0x7fffffffull);
}

TEST_F(RvMTest, SignedOverflow32) {
  EXPECT_EQ(op(divw, 0x80000000, 0xffffffff), 0xffffffff80000000ull);
  EXPECT_EQ(op(remw, 0x80000000, 0xffffffff), 0u);
  EXPECT_EQ(op(divw, 0x0000000080000000ull, kOnes), 0xffffffff80000000ull);
  EXPECT_EQ(op(divuw, 0x80000000, 0xffffffff), 0u);
  EXPECT_EQ(op(remuw, 0x80000000, 0xffffffff), 0xffffffff80000000ull);
}

TEST_F(RvMTest, RdSameAsSources) {
  h().x[kA0] = 12;
  exec(mul(kA0, kA0, kA0));
  EXPECT_EQ(h().x[kA0], 144u);
  h().x[kA0] = 12;
  exec(div(kA0, kA0, kA0));
  EXPECT_EQ(h().x[kA0], 1u);
  h().x[kA0] = 0;
  exec(rem(kA0, kA0, kA0));  // 0 rem 0 = dividend = 0
  EXPECT_EQ(h().x[kA0], 0u);
}

TEST_F(RvMTest, WriteToX0Discarded) {
  h().x[kA1] = 6;
  h().x[kA2] = 7;
  exec(mul(kZero, kA1, kA2));
  EXPECT_EQ(h().x[0], 0u);
  EXPECT_EQ(h().pc, kCode + 4);
}

TEST_F(RvMTest, MulDivReservedWFunctsAreIllegal) {
  // OP-32 with funct7=1 has no funct3 1, 2, 3 (no MULHW etc. in RV64M).
  const uint32_t bad = r_type(1, kA2, kA1, 1, kA0, kOpOp32);
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

}  // namespace
}  // namespace vigil::riscv::test
