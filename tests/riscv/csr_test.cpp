// Zicsr instructions and the CSR file (unprivileged spec chapter 9 "Zicsr", 10 "Counters";
// privileged spec 2.1 address conventions, 3.1 machine CSRs, 3.7 PMP CSRs, 4.1 supervisor CSRs).
#include <cstdint>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;
using namespace mstatus;

class CsrTest : public CpuTest {
 protected:
  // Executes one CSR instruction in the current mode; true if it completed (no trap).
  bool run_csr(uint32_t insn) {
    exec(insn);
    return h().pc == kCode + 4;
  }
  void expect_illegal(uint32_t insn) {
    EXPECT_FALSE(run_csr(insn)) << std::hex << insn;
    expect_m_trap(Cause::kIllegalInsn, insn, kCode);
  }
};

// ---- instruction semantics (9.1) ----

TEST_F(CsrTest, CsrrwSwapsOldAndNew) {
  set_csr(csr::kMscratch, 0x1111);
  h().x[kA1] = 0x2222;
  ASSERT_TRUE(run_csr(csrrw(kA0, csr::kMscratch, kA1)));
  EXPECT_EQ(h().x[kA0], 0x1111u);
  EXPECT_EQ(get_csr(csr::kMscratch), 0x2222u);
}

TEST_F(CsrTest, CsrrwRdEqualsRs1) {
  set_csr(csr::kMscratch, 7);
  h().x[kA0] = 9;
  ASSERT_TRUE(run_csr(csrrw(kA0, csr::kMscratch, kA0)));
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_EQ(get_csr(csr::kMscratch), 9u);
}

TEST_F(CsrTest, CsrrsSetsAndCsrrcClearsBits) {
  set_csr(csr::kMscratch, 0xf0);
  h().x[kA1] = 0x0f;
  ASSERT_TRUE(run_csr(csrrs(kA0, csr::kMscratch, kA1)));
  EXPECT_EQ(h().x[kA0], 0xf0u);
  EXPECT_EQ(get_csr(csr::kMscratch), 0xffu);
  h().x[kA1] = 0x3c;
  ASSERT_TRUE(run_csr(csrrc(kA0, csr::kMscratch, kA1)));
  EXPECT_EQ(h().x[kA0], 0xffu);
  EXPECT_EQ(get_csr(csr::kMscratch), 0xc3u);
}

TEST_F(CsrTest, ImmediateFormsZeroExtendUimm) {
  set_csr(csr::kMscratch, ~0ull);
  ASSERT_TRUE(run_csr(csrrwi(kA0, csr::kMscratch, 31)));
  EXPECT_EQ(h().x[kA0], ~0ull);
  EXPECT_EQ(get_csr(csr::kMscratch), 31u);  // 5-bit zero-extended, not sign-extended
  ASSERT_TRUE(run_csr(csrrci(kA0, csr::kMscratch, 0x11)));
  EXPECT_EQ(get_csr(csr::kMscratch), 0x0eu);
  ASSERT_TRUE(run_csr(csrrsi(kA0, csr::kMscratch, 0x10)));
  EXPECT_EQ(h().x[kA0], 0x0eu);
  EXPECT_EQ(get_csr(csr::kMscratch), 0x1eu);
}

TEST_F(CsrTest, ReadOnlyCsrReadableWithRs1X0OrUimm0) {
  // CSRRS/CSRRC with rs1 = x0 and CSRRSI/CSRRCI with uimm = 0 do not write (9.1, table 9.1).
  ASSERT_TRUE(run_csr(csrrs(kA0, csr::kMhartid, kZero)));
  EXPECT_EQ(h().x[kA0], 0u);
  ASSERT_TRUE(run_csr(csrrc(kA0, csr::kMvendorid, kZero)));
  ASSERT_TRUE(run_csr(csrrsi(kA0, csr::kMarchid, 0)));
  ASSERT_TRUE(run_csr(csrrci(kA0, csr::kMimpid, 0)));
}

TEST_F(CsrTest, WritesToReadOnlyCsrsAreIllegal) {
  h().x[kA1] = 0;  // rs1 != x0 counts as a write even if the value is zero
  expect_illegal(csrrs(kA0, csr::kMhartid, kA1));
  expect_illegal(csrrw(kZero, csr::kMvendorid, kA1));
  expect_illegal(csrrsi(kA0, csr::kMimpid, 1));
  expect_illegal(csrrwi(kZero, csr::kCycle, 0));
  expect_illegal(csrrci(kA0, csr::kInstret, 1));
}

TEST_F(CsrTest, NonexistentCsrIsIllegal) {
  expect_illegal(csrr(kA0, 0x7b0));  // dcsr: debug mode only
  expect_illegal(csrr(kA0, 0x110));
  expect_illegal(csrr(kA0, 0x3a1));  // pmpcfg1 does not exist on RV64
}

// ---- debug triggers (debug spec 5.7, Sdtrig): hard-wired to none ----

TEST_F(CsrTest, TriggerCsrsReportNoTriggersFromM) {
  // A debugger or firmware probes: write tselect, read it back, read tdata1's type.
  h().x[kA1] = 3;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kTselect, kA1)));
  h().x[kA0] = 0xdead;
  ASSERT_TRUE(run_csr(csrr(kA0, csr::kTselect)));
  EXPECT_EQ(h().x[kA0], 0u) << "tselect is WARL: only index 0 exists";
  h().x[kA1] = (2ull << 60) | (1 << 2) | (1 << 6);  // an mcontrol execute trigger in M-mode
  for (unsigned c : {csr::kTdata1, csr::kTdata2, csr::kTdata3}) {
    ASSERT_TRUE(run_csr(csrrw(kA0, c, kA1))) << std::hex << c;
    EXPECT_EQ(h().x[kA0], 0u) << std::hex << c;
    ASSERT_TRUE(run_csr(csrr(kA0, c))) << std::hex << c;
    EXPECT_EQ(h().x[kA0], 0u) << "writes are ignored: " << std::hex << c;
  }
  EXPECT_EQ(h().x[kA0] >> 60, 0u) << "tdata1.type 0: no trigger at this tselect";
  ASSERT_TRUE(run_csr(csrr(kA0, csr::kTinfo)));
  EXPECT_EQ(h().x[kA0], 1u) << "tinfo: only type 0 (none) is supported";
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kTinfo, kA1)));
  EXPECT_EQ(get_csr(csr::kTinfo), 1u);
}

TEST_F(CsrTest, TriggerCsrsAreMachineOnly) {
  for (unsigned c : {csr::kTselect, csr::kTdata1, csr::kTdata2, csr::kTdata3, csr::kTinfo}) {
    set_priv(Priv::S);
    expect_illegal(csrr(kA0, c));
  }
  expect_illegal(csrr(kA0, 0x7a5));  // tcontrol is not implemented
}

TEST_F(CsrTest, IllegalCsrAccessLeavesRdUnchanged) {
  h().x[kA0] = 0xabc;
  set_priv(Priv::S);
  EXPECT_FALSE(run_csr(csrr(kA0, csr::kMstatus)));
  EXPECT_EQ(h().x[kA0], 0xabcu);
}

// ---- privilege (2.1: bits 9:8 give the lowest privilege that may access) ----

TEST_F(CsrTest, SupervisorAccessingMachineCsrIsIllegal) {
  set_priv(Priv::S);
  expect_illegal(csrr(kA0, csr::kMstatus));
  set_priv(Priv::S);
  expect_illegal(csrw(csr::kMscratch, kA1));
  set_priv(Priv::S);
  expect_illegal(csrr(kA0, csr::kMhartid));
}

TEST_F(CsrTest, UserAccessingSupervisorCsrIsIllegal) {
  set_priv(Priv::U);
  expect_illegal(csrr(kA0, csr::kSstatus));
  set_priv(Priv::U);
  expect_illegal(csrrw(kA0, csr::kSscratch, kA1));
}

TEST_F(CsrTest, SupervisorCsrsAccessibleFromS) {
  set_priv(Priv::S);
  h().x[kA1] = 0x5555;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kSscratch, kA1)));
  EXPECT_EQ(get_csr(csr::kSscratch), 0x5555u);
}

// ---- mstatus / sstatus (3.1.6, 4.1.1) ----

TEST_F(CsrTest, MstatusXlFieldsReport64Bit) {
  const uint64_t v = get_csr(csr::kMstatus);
  EXPECT_EQ((v >> 32) & 3, 2u) << "UXL";
  EXPECT_EQ((v >> 34) & 3, 2u) << "SXL";
  set_csr(csr::kMstatus, 0);
  EXPECT_EQ((get_csr(csr::kMstatus) >> 32) & 0xf, 0xau) << "UXL/SXL are not writable to other values";
}

TEST_F(CsrTest, SstatusIsARestrictedViewOfMstatus) {
  set_csr(csr::kMstatus, kMie | kMpie | kMpp | kSie | kTvm);
  const uint64_t s = get_csr(csr::kSstatus);
  EXPECT_TRUE(s & kSie);
  EXPECT_FALSE(s & kMie);
  EXPECT_FALSE(s & kMpie);
  EXPECT_FALSE(s & kMpp);
  EXPECT_FALSE(s & kTvm);
  EXPECT_EQ((s >> 32) & 3, 2u) << "sstatus.UXL";
}

TEST_F(CsrTest, SstatusWriteCannotTouchMachineFields) {
  set_csr(csr::kMstatus, 0);
  set_priv(Priv::S);
  h().x[kA1] = kSie | kSpie | kSpp | kSum | kMxr | kMie | kMpie | kMpp | kTvm | kTsr | kTw | kMprv;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kSstatus, kA1)));
  const uint64_t m = mstatus();
  EXPECT_TRUE(m & kSie);
  EXPECT_TRUE(m & kSum);
  EXPECT_TRUE(m & kMxr);
  EXPECT_TRUE(m & kSpp);
  EXPECT_FALSE(m & (kMie | kMpie | kMpp | kTvm | kTsr | kTw | kMprv));
  // And clearing through sstatus leaves the machine fields set.
  set_csr(csr::kMstatus, kMie | kMpie | kTsr);
  set_priv(Priv::S);
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kSstatus, kZero)));
  EXPECT_EQ(mstatus() & (kMie | kMpie | kTsr), kMie | kMpie | kTsr);
}

TEST_F(CsrTest, MppReservedValueIsNotStored) {
  set_csr(csr::kMstatus, 2ull << kMppShift);  // 2 = reserved (H)
  EXPECT_NE((get_csr(csr::kMstatus) >> kMppShift) & 3, 2u);
}

TEST_F(CsrTest, SdReflectsDirtyFs) {
  set_csr(csr::kMstatus, kFsInitial);
  EXPECT_FALSE(get_csr(csr::kMstatus) & kSd);
  set_csr(csr::kMstatus, kFsDirty);
  EXPECT_TRUE(get_csr(csr::kMstatus) & kSd);
  EXPECT_TRUE(get_csr(csr::kSstatus) & kSd);
}

TEST_F(CsrTest, FcsrNeedsFsEnabledAndDirtiesIt) {
  expect_illegal(csrr(kA0, csr::kFcsr));
  set_csr(csr::kMstatus, kFsInitial);
  h().x[kA1] = 0xff;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kFcsr, kA1)));
  EXPECT_EQ(mstatus() & kFs, kFsDirty);
  EXPECT_EQ(get_csr(csr::kFrm), 7u);
  EXPECT_EQ(get_csr(csr::kFflags), 0x1fu);
  h().x[kA1] = 0x1ff;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kFcsr, kA1)));
  EXPECT_EQ(get_csr(csr::kFcsr), 0xffu) << "fcsr bits 31:8 are reserved (read zero)";
  ASSERT_TRUE(run_csr(csrrwi(kZero, csr::kFrm, 2)));
  EXPECT_EQ(get_csr(csr::kFcsr), 0x5fu);
}

// ---- misa, medeleg, mideleg, mie/mip, sie/sip ----

TEST_F(CsrTest, MisaReportsRv64Imafdcsu) {
  const uint64_t misa = get_csr(csr::kMisa);
  EXPECT_EQ(misa >> 62, 2u) << "MXL = 64";
  for (char ext : {'A', 'C', 'D', 'F', 'I', 'M', 'S', 'U'}) EXPECT_TRUE(misa & bit(ext - 'A')) << ext;
  EXPECT_FALSE(misa & bit('E' - 'A'));
  EXPECT_FALSE(misa & bit('H' - 'A'));
}

TEST_F(CsrTest, MidelegOnlySupervisorInterrupts) {
  set_csr(csr::kMideleg, ~0ull);
  const uint64_t v = get_csr(csr::kMideleg);
  EXPECT_EQ(v & irq::kMMask, 0u);
  EXPECT_EQ(v & irq::kSMask, irq::kSMask);
}

TEST_F(CsrTest, SieAndSipAreMaskedByMideleg) {
  set_csr(csr::kMideleg, bit(irq::kSti));
  set_csr(csr::kMie, bit(irq::kSti) | bit(irq::kSsi) | bit(irq::kMti));
  EXPECT_EQ(get_csr(csr::kSie), bit(irq::kSti));
  set_priv(Priv::S);
  h().x[kA1] = 0;
  ASSERT_TRUE(run_csr(csrrw(kZero, csr::kSie, kA1)));
  EXPECT_EQ(get_csr(csr::kMie), bit(irq::kSsi) | bit(irq::kMti)) << "non-delegated bits untouched";
}

TEST_F(CsrTest, SipSsipWritableFromSWhenDelegated) {
  set_csr(csr::kMideleg, irq::kSMask);
  set_priv(Priv::S);
  ASSERT_TRUE(run_csr(csrrsi(kZero, csr::kSip, 1u << irq::kSsi)));
  EXPECT_TRUE(h().mip() & bit(irq::kSsi));
  ASSERT_TRUE(run_csr(csrrci(kZero, csr::kSip, 1u << irq::kSsi)));
  EXPECT_FALSE(h().mip() & bit(irq::kSsi));
}

TEST_F(CsrTest, SipStipNotWritableFromS) {
  set_csr(csr::kMideleg, irq::kSMask);
  set_priv(Priv::S);
  h().x[kA1] = bit(irq::kSti);
  run_csr(csrrs(kZero, csr::kSip, kA1));
  EXPECT_FALSE(h().mip() & bit(irq::kSti));
}

TEST_F(CsrTest, MipStipWritableByMachineMode) {
  set_csr(csr::kMip, bit(irq::kSti) | bit(irq::kSsi));
  EXPECT_EQ(get_csr(csr::kMip) & (bit(irq::kSti) | bit(irq::kSsi)), bit(irq::kSti) | bit(irq::kSsi));
}

TEST_F(CsrTest, MipMsipAndMeipNotWritableBySoftware) {
  set_csr(csr::kMip, bit(irq::kMsi) | bit(irq::kMei));
  EXPECT_EQ(get_csr(csr::kMip) & (bit(irq::kMsi) | bit(irq::kMei)), 0u);
}

// ---- trap-vector and exception-PC registers ----

TEST_F(CsrTest, MtvecDirectAndVectoredModes) {
  set_csr(csr::kMtvec, 0x80002000);
  EXPECT_EQ(get_csr(csr::kMtvec), 0x80002000u);
  set_csr(csr::kMtvec, 0x80002001);
  EXPECT_EQ(get_csr(csr::kMtvec), 0x80002001u);
  set_csr(csr::kMtvec, 0x80002002);  // mode 2 is reserved (WARL): must not read back as 2
  EXPECT_NE(get_csr(csr::kMtvec) & 3, 2u);
}

TEST_F(CsrTest, EpcBitZeroAlwaysZero) {
  set_csr(csr::kMepc, 0x80001003);
  EXPECT_EQ(get_csr(csr::kMepc), 0x80001002u);
  set_csr(csr::kSepc, 0x1235);
  EXPECT_EQ(get_csr(csr::kSepc), 0x1234u);
}

TEST_F(CsrTest, CauseAndTvalHoldWrittenValues) {
  set_csr(csr::kMcause, kIrq | 7);
  EXPECT_EQ(get_csr(csr::kMcause), kIrq | 7);
  set_csr(csr::kStval, 0x123456789abcull);
  EXPECT_EQ(get_csr(csr::kStval), 0x123456789abcull);
}

// ---- satp (4.1.11) ----

TEST_F(CsrTest, SatpAcceptsSupportedModes) {
  set_csr(csr::kSatp, (satp::kModeSv39 << 60) | 0x80200);
  EXPECT_EQ(get_csr(csr::kSatp) >> 60, satp::kModeSv39);
  EXPECT_EQ(get_csr(csr::kSatp) & satp::kPpnMask, 0x80200u);
  set_csr(csr::kSatp, (satp::kModeSv48 << 60) | 0x80201);
  EXPECT_EQ(get_csr(csr::kSatp) >> 60, satp::kModeSv48);
  set_csr(csr::kSatp, 0);
  EXPECT_EQ(get_csr(csr::kSatp), 0u);
}

TEST_F(CsrTest, SatpUnsupportedModeWriteHasNoEffect) {
  set_csr(csr::kSatp, (satp::kModeSv39 << 60) | 0x80200);
  const uint64_t before = get_csr(csr::kSatp);
  set_csr(csr::kSatp, (10ull << 60) | 0x1234);  // Sv57: not supported
  EXPECT_EQ(get_csr(csr::kSatp), before);
  set_csr(csr::kSatp, (1ull << 60) | 0x1234);   // reserved mode
  EXPECT_EQ(get_csr(csr::kSatp), before);
}

// ---- counters (unprivileged chapter 10, privileged 3.1.11, 4.1.4) ----

TEST_F(CsrTest, CounterReadFromSBlockedByMcounteren) {
  set_csr(csr::kMcounteren, 0);  // reset value is unspecified (3.1.11)
  set_priv(Priv::S);
  expect_illegal(csrr(kA0, csr::kCycle));
  set_csr(csr::kMcounteren, 1);  // CY
  set_priv(Priv::S);
  EXPECT_TRUE(run_csr(csrr(kA0, csr::kCycle)));
  EXPECT_FALSE(run_csr(csrr(kA0, csr::kTime))) << "TM still clear";
}

TEST_F(CsrTest, CounterReadFromUNeedsBothEnables) {
  set_csr(csr::kScounteren, 0);  // reset value is unspecified (4.1.5)
  set_csr(csr::kMcounteren, 2);  // TM
  set_priv(Priv::U);
  expect_illegal(csrr(kA0, csr::kTime));
  set_csr(csr::kScounteren, 2);
  set_priv(Priv::U);
  platform.time = 123456;
  ASSERT_TRUE(run_csr(csrr(kA0, csr::kTime)));
  EXPECT_EQ(h().x[kA0], 123456u);
  set_csr(csr::kMcounteren, 0);
  set_priv(Priv::U);
  expect_illegal(csrr(kA0, csr::kTime));
}

TEST_F(CsrTest, TimeReadsPlatformMtime) {
  platform.time = 0xabcdef;
  ASSERT_TRUE(run_csr(csrr(kA0, csr::kTime)));
  EXPECT_EQ(h().x[kA0], 0xabcdefu);
}

TEST_F(CsrTest, InstretCountsRetiredInstructions) {
  code(kCode, {csrr(kA0, csr::kInstret), nop(), nop(), nop(), csrr(kA1, csr::kInstret), csrr(kA2, csr::kMinstret)});
  h().pc = kCode;
  step(6);
  EXPECT_EQ(h().x[kA1] - h().x[kA0], 4u);
  EXPECT_EQ(h().x[kA2] - h().x[kA1], 1u);
}

TEST_F(CsrTest, MinstretIsWritable) {
  // Privileged 3.1.11: mcycle/minstret "can be written with a given value"; the write takes
  // effect after the writing instruction has otherwise completed.
  h().x[kA1] = 1000;
  code(kCode, {csrw(csr::kMinstret, kA1), csrr(kA0, csr::kMinstret), nop(), csrr(kA2, csr::kInstret)});
  h().pc = kCode;
  step(4);
  EXPECT_GE(h().x[kA0], 1000u);
  EXPECT_LE(h().x[kA0], 1001u);
  EXPECT_EQ(h().x[kA2] - h().x[kA0], 2u) << "counting continues from the written value";
}

TEST_F(CsrTest, McycleIsWritable) {
  h().x[kA1] = 1u << 20;
  code(kCode, {csrw(csr::kMcycle, kA1), csrr(kA0, csr::kMcycle)});
  h().pc = kCode;
  step(2);
  EXPECT_GE(h().x[kA0], 1u << 20);
  EXPECT_LE(h().x[kA0], (1u << 20) + 1);
}

TEST_F(CsrTest, HpmCountersReadZeroWhenEnabled) {
  set_csr(csr::kMcounteren, 0);
  ASSERT_TRUE(run_csr(csrr(kA0, csr::kHpmcounter3)));
  EXPECT_EQ(h().x[kA0], 0u);
  set_priv(Priv::S);
  expect_illegal(csrr(kA0, csr::kHpmcounter3 + 1));  // mcounteren.HPM4 = 0
}

TEST_F(CsrTest, MhartidReportsHartNumber) {
  Hart other(5, mem, platform);
  uint64_t v = 0;
  ASSERT_TRUE(other.csr_read(csr::kMhartid, v));
  EXPECT_EQ(v, 5u);
}

// ---- PMP CSRs (3.7.1) ----

TEST_F(CsrTest, PmpcfgPacksEightEntriesPerRegister) {
  // Entry i lives in byte i of pmpcfg0 (RV64); all values here are legal (R set).
  set_csr(csr::kPmpcfg0, 0x0f1b091f0d110b19ull);
  EXPECT_EQ(get_csr(csr::kPmpcfg0), 0x0f1b091f0d110b19ull);
  set_csr(csr::kPmpaddr0 + 3, 0x12345);
  EXPECT_EQ(get_csr(csr::kPmpaddr0 + 3), 0x12345u);
}

TEST_F(CsrTest, PmpcfgWriteOnlyReadWithoutReadIsReserved) {
  set_csr(csr::kPmpcfg0, 0x0a);  // TOR, W=1, R=0: reserved combination
  const uint64_t cfg = get_csr(csr::kPmpcfg0) & 0xff;
  EXPECT_FALSE((cfg & 3) == 2) << std::hex << cfg;
}

TEST_F(CsrTest, PmpaddrHolds54Bits) {
  set_csr(csr::kPmpaddr0 + 1, ~0ull);
  EXPECT_EQ(get_csr(csr::kPmpaddr0 + 1), (1ull << 54) - 1);
}

TEST_F(CsrTest, LockedPmpEntryIgnoresWrites) {
  set_csr(csr::kPmpaddr0 + 2, 0x1000);
  set_csr(csr::kPmpcfg0, 0x99ull << 16);  // entry 2: L, NAPOT, R
  set_csr(csr::kPmpcfg0, 0x1full << 16);
  EXPECT_EQ((get_csr(csr::kPmpcfg0) >> 16) & 0xff, 0x99u);
  set_csr(csr::kPmpaddr0 + 2, 0x2000);
  EXPECT_EQ(get_csr(csr::kPmpaddr0 + 2), 0x1000u);
}

TEST_F(CsrTest, LockedTorEntryAlsoLocksPreviousPmpaddr) {
  // 3.7.1.3: if entry i is locked and uses TOR, writes to pmpaddr(i-1) are ignored.
  set_csr(csr::kPmpaddr0 + 0, 0x1000);
  set_csr(csr::kPmpaddr0 + 1, 0x2000);
  set_csr(csr::kPmpcfg0, 0x89ull << 8);  // entry 1: L, TOR, R
  set_csr(csr::kPmpaddr0 + 0, 0x1800);
  EXPECT_EQ(get_csr(csr::kPmpaddr0 + 0), 0x1000u);
}

TEST_F(CsrTest, CsrIllegalFromUserRaisesWithInstructionBits) {
  set_priv(Priv::U);
  const uint32_t insn = csrrwi(kA3, csr::kMepc, 17);
  exec(insn);
  expect_m_trap(Cause::kIllegalInsn, insn, kCode);
  EXPECT_EQ((mstatus() >> kMppShift) & 3, 0u);
}

}  // namespace
}  // namespace vigil::riscv::test
