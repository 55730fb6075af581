// RV64A (unprivileged spec chapter 8): LR/SC and AMOs, plus their traps (privileged spec
// 3.6.3.1 "AMO PMA": atomics to regions without AMO support raise access faults).
#include <cstdint>
#include <string>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;

constexpr uint64_t kOnes = ~0ull;

class RvATest : public CpuTest {};

// ---- LR / SC ----

TEST_F(RvATest, LrScWordSucceeds) {
  poke64(kData, 0xaaaaaaaa80000001ull);
  h().x[kA1] = kData;
  h().x[kA2] = 0x1111111122222222ull;
  code(kCode, {lr_w(kA0, kA1), sc_w(kA3, kA1, kA2)});
  h().pc = kCode;
  h().x[kA3] = 77;
  step(2);
  EXPECT_EQ(h().pc, kCode + 8);
  EXPECT_EQ(h().x[kA0], 0xffffffff80000001ull);  // LR.W sign-extends
  EXPECT_EQ(h().x[kA3], 0u);                     // SC success writes 0
  EXPECT_EQ(peek64(kData), 0xaaaaaaaa22222222ull);
}

TEST_F(RvATest, LrScDoublewordSucceeds) {
  poke64(kData + 8, 0x8000000000000000ull);
  h().x[kA1] = kData + 8;
  h().x[kA2] = 0x0123456789abcdefull;
  code(kCode, {lr_d(kA0, kA1), sc_d(kA3, kA1, kA2)});
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kA0], 0x8000000000000000ull);
  EXPECT_EQ(h().x[kA3], 0u);
  EXPECT_EQ(peek64(kData + 8), 0x0123456789abcdefull);
}

TEST_F(RvATest, ScWithoutReservationFails) {
  poke64(kData, 5);
  h().x[kA1] = kData;
  h().x[kA2] = 9;
  exec(sc_d(kA3, kA1, kA2));
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(h().x[kA3], 1u);
  EXPECT_EQ(peek64(kData), 5u);
}

TEST_F(RvATest, ScToOtherAddressThanLrFails) {
  poke64(kData, 1);
  poke64(kData + 64, 2);
  h().x[kA1] = kData;
  h().x[kA4] = kData + 64;
  h().x[kA2] = 9;
  code(kCode, {lr_d(kA0, kA1), sc_d(kA3, kA4, kA2)});
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kA3], 1u);
  EXPECT_EQ(peek64(kData + 64), 2u);
  EXPECT_EQ(peek64(kData), 1u);
}

TEST_F(RvATest, SecondScFailsAfterFirstConsumesReservation) {
  // 8.2: an SC (successful or not) invalidates the reservation, so the second SC fails.
  // The first SC stores the value LR saw, so memory looks unchanged to the second one.
  poke32(kData, 10);
  h().x[kA1] = kData;
  h().x[kA2] = 10;
  h().x[kA4] = 20;
  code(kCode, {lr_w(kA0, kA1), sc_w(kA3, kA1, kA2), sc_w(kA5, kA1, kA4)});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA3], 0u);
  EXPECT_EQ(h().x[kA5], 1u);
  EXPECT_EQ(peek32(kData), 10u);
}

TEST_F(RvATest, FailedScAlsoInvalidatesReservation) {
  poke64(kData, 3);
  poke64(kData + 64, 4);
  h().x[kA1] = kData;
  h().x[kA4] = kData + 64;
  h().x[kA2] = 3;
  code(kCode, {lr_d(kA0, kA1), sc_d(kA3, kA4, kA2), sc_d(kA5, kA1, kA2)});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA3], 1u) << "SC to another address fails";
  EXPECT_EQ(h().x[kA5], 1u) << "and leaves no reservation behind";
}

TEST_F(RvATest, ScRdEqualsRs2StoresOldRs2) {
  h().x[kA1] = kData;
  h().x[kA2] = 0x42;
  code(kCode, {lr_d(kA0, kA1), sc_d(kA2, kA1, kA2)});
  h().pc = kCode;
  step(2);
  EXPECT_EQ(peek64(kData), 0x42u);
  EXPECT_EQ(h().x[kA2], 0u);
}

TEST_F(RvATest, LrWithNonzeroRs2IsReserved) {
  const uint32_t bad = lr_w(kA0, kA1) | (kA2 << 20);
  h().x[kA1] = kData;
  exec(bad);
  expect_m_trap(Cause::kIllegalInsn, bad, kCode);
}

TEST_F(RvATest, LrMisalignedRaisesLoadMisaligned) {
  h().x[kA1] = kData + 4;
  exec(lr_d(kA0, kA1));
  expect_m_trap(Cause::kLoadMisaligned, kData + 4, kCode);
}

TEST_F(RvATest, ScMisalignedRaisesStoreMisaligned) {
  h().x[kA1] = kData + 2;
  exec(sc_w(kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreMisaligned, kData + 2, kCode);
}

TEST_F(RvATest, LrFromMmioIsLoadAccessFault) {
  h().x[kA1] = kMmio;
  exec(lr_w(kA0, kA1));
  expect_m_trap(Cause::kLoadAccessFault, kMmio, kCode);
  EXPECT_TRUE(platform.mmio.empty());
}

// ---- AMOs ----

struct AmoCase {
  const char* name;
  uint32_t funct5;
  bool dword;
  uint64_t mem;       // initial memory (the low 32 bits for .W)
  uint64_t rs2;
  uint64_t new_mem;   // expected memory after
  uint64_t rd;        // expected rd (old value, sign-extended for .W)
};

class AmoTest : public CpuTest, public ::testing::WithParamInterface<AmoCase> {};

TEST_P(AmoTest, ResultAndMemory) {
  const AmoCase& c = GetParam();
  const uint64_t guard = 0x5a5a5a5a5a5a5a5aull;
  poke64(kData, guard);
  poke64(kData + 8, c.dword ? c.mem : (guard & ~0xffffffffull) | (c.mem & 0xffffffff));
  poke64(kData + 16, guard);
  h().x[kA1] = kData + 8;
  h().x[kA2] = c.rs2;
  exec(amo_op(c.funct5, c.dword, kA0, kA1, kA2));
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(h().x[kA0], c.rd);
  if (c.dword) {
    EXPECT_EQ(peek64(kData + 8), c.new_mem);
  } else {
    EXPECT_EQ(peek32(kData + 8), static_cast<uint32_t>(c.new_mem));
    EXPECT_EQ(peek32(kData + 12), 0x5a5a5a5au) << "AMO.W touched the upper word";
  }
  EXPECT_EQ(peek64(kData), guard);
  EXPECT_EQ(peek64(kData + 16), guard);
}

using namespace enc::amo;
INSTANTIATE_TEST_SUITE_P(
    Rv64A, AmoTest,
    ::testing::Values(
        // .W: the loaded word is sign-extended into rd (8.4).
        AmoCase{"swap_w", kSwap, false, 0x80000000, 0x1234, 0x1234, 0xffffffff80000000ull},
        AmoCase{"add_w", kAdd, false, 0x7fffffff, 1, 0x80000000, 0x7fffffff},
        AmoCase{"add_w_wrap", kAdd, false, 0xffffffff, 0xffffffff00000002ull, 1, kOnes},
        AmoCase{"xor_w", kXor, false, 0xff00ff00, 0x0ff00ff0, 0xf0f0f0f0, 0xffffffffff00ff00ull},
        AmoCase{"and_w", kAnd, false, 0xff00ff00, 0x0ff00ff0, 0x0f000f00, 0xffffffffff00ff00ull},
        AmoCase{"or_w", kOr, false, 0x0f00ff00, 0x0ff00ff0, 0x0ff0fff0, 0x0f00ff00},
        AmoCase{"min_w", kMin, false, 0x80000000, 5, 0x80000000, 0xffffffff80000000ull},
        AmoCase{"min_w_rs2_upper_ignored", kMin, false, 3, 0x00000001fffffffeull, 0xfffffffe, 3},
        AmoCase{"max_w", kMax, false, 0x80000000, 5, 5, 0xffffffff80000000ull},
        AmoCase{"minu_w", kMinu, false, 0x80000000, 5, 5, 0xffffffff80000000ull},
        AmoCase{"maxu_w", kMaxu, false, 0x80000000, 5, 0x80000000, 0xffffffff80000000ull},
        AmoCase{"maxu_w_rs2_upper_ignored", kMaxu, false, 0x7fffffff, 0xffffffff00000001ull, 0x7fffffff, 0x7fffffff},
        AmoCase{"swap_d", kSwap, true, 0x8000000000000000ull, 7, 7, 0x8000000000000000ull},
        AmoCase{"add_d", kAdd, true, kOnes, 2, 1, kOnes},
        AmoCase{"xor_d", kXor, true, 0xffff0000ffff0000ull, kOnes, 0x0000ffff0000ffffull, 0xffff0000ffff0000ull},
        AmoCase{"and_d", kAnd, true, 0xffff0000ffff0000ull, 0x00ffff0000ffff00ull, 0x00ff000000ff0000ull,
                0xffff0000ffff0000ull},
        AmoCase{"or_d", kOr, true, 0xf000000000000000ull, 1, 0xf000000000000001ull, 0xf000000000000000ull},
        AmoCase{"min_d", kMin, true, 0x8000000000000000ull, 1, 0x8000000000000000ull, 0x8000000000000000ull},
        AmoCase{"max_d", kMax, true, 0x8000000000000000ull, 1, 1, 0x8000000000000000ull},
        AmoCase{"minu_d", kMinu, true, 0x8000000000000000ull, 1, 1, 0x8000000000000000ull},
        AmoCase{"maxu_d", kMaxu, true, 0x8000000000000000ull, 1, 0x8000000000000000ull, 0x8000000000000000ull},
        AmoCase{"min_d_equal", kMin, true, 42, 42, 42, 42}),
    [](const ::testing::TestParamInfo<AmoCase>& info) { return std::string(info.param.name); });

TEST_F(RvATest, AmoRdEqualsRs2UsesOldRs2) {
  poke64(kData, 100);
  h().x[kA1] = kData;
  h().x[kA2] = 5;
  exec(amo_op(kAdd, true, kA2, kA1, kA2));
  EXPECT_EQ(peek64(kData), 105u);
  EXPECT_EQ(h().x[kA2], 100u);
}

TEST_F(RvATest, AmoWithRdZeroStillWritesMemory) {
  poke64(kData, 100);
  h().x[kA1] = kData;
  h().x[kA2] = 5;
  exec(amo_op(kSwap, true, kZero, kA1, kA2));
  EXPECT_EQ(peek64(kData), 5u);
  EXPECT_EQ(h().x[0], 0u);
}

TEST_F(RvATest, AmoWithAqRlBitsDecodes) {
  poke32(kData, 1);
  h().x[kA1] = kData;
  h().x[kA2] = 2;
  exec(amo_op(kAdd, false, kA0, kA1, kA2, true, true));
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(peek32(kData), 3u);
  EXPECT_EQ(h().x[kA0], 1u);
}

TEST_F(RvATest, MisalignedAmoWordIsStoreMisaligned) {
  poke64(kData, 0x1111111111111111ull);
  h().x[kA1] = kData + 2;
  h().x[kA2] = 0;
  exec(amo_op(kSwap, false, kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreMisaligned, kData + 2, kCode);
  EXPECT_EQ(peek64(kData), 0x1111111111111111ull);
}

TEST_F(RvATest, MisalignedAmoDoublewordIsStoreMisaligned) {
  h().x[kA1] = kData + 4;
  exec(amo_op(kAdd, true, kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreMisaligned, kData + 4, kCode);
}

TEST_F(RvATest, AmoToMmioIsStoreAccessFault) {
  h().x[kA1] = kMmio + 8;
  exec(amo_op(kAdd, true, kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreAccessFault, kMmio + 8, kCode);
  EXPECT_TRUE(platform.mmio.empty()) << "the device must not see a partial atomic";
}

TEST_F(RvATest, AmoWordToMmioIsStoreAccessFault) {
  h().x[kA1] = kMmio;
  exec(amo_op(kOr, false, kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreAccessFault, kMmio, kCode);
}

TEST_F(RvATest, AmoToNonexistentMemoryIsStoreAccessFault) {
  h().x[kA1] = kUnmappedPa;
  exec(amo_op(kSwap, false, kA0, kA1, kA2));
  expect_m_trap(Cause::kStoreAccessFault, kUnmappedPa, kCode);
}

TEST_F(RvATest, AmoOnReadOnlyPageIsStorePageFault) {
  new_address_space();
  map_code();
  const uint64_t va = 0x40000000;
  map(va, kData, pte::kR);
  poke64(kData, 7);
  set_priv(Priv::S);
  h().x[kA1] = va;
  h().x[kA2] = 1;
  code(kCode, {lr_d(kA0, kA1), amo_op(kAdd, true, kA3, kA1, kA2)});
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kA0], 7u) << "LR only needs read permission";
  expect_m_trap(Cause::kStorePageFault, va, kCode + 4);
  EXPECT_EQ(peek64(kData), 7u);
}

TEST_F(RvATest, AmoThroughVirtualMapping) {
  new_address_space();
  map_code();
  const uint64_t va = 0x40001000;
  map(va, kData + 0x2000, pte::kRW);
  poke64(kData + 0x2000 + 16, 40);
  set_priv(Priv::S);
  h().x[kA1] = va + 16;
  h().x[kA2] = 2;
  exec(amo_op(kAdd, true, kA0, kA1, kA2));
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(h().x[kA0], 40u);
  EXPECT_EQ(peek64(kData + 0x2000 + 16), 42u);
}

}  // namespace
}  // namespace vigil::riscv::test
