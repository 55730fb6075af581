// The in-process monitor API on a bare hart running hand-assembled code (tests/riscv's
// harness): every event type, deny/emulate, filters, several monitors, breakpoints the guest
// cannot see, single-step.
#include "monitor/monitor.h"

#include <gtest/gtest.h>

#include <vector>

#include "../riscv/cpu_harness.h"

namespace vigil::monitor {
namespace {

using namespace riscv;
using namespace riscv::test;
using namespace riscv::test::enc;

class MonitorTest : public CpuTest {
 protected:
  MonitorTest() : hub(std::make_unique<Hub>(mem, std::vector<Hart*>{hart.get()})) {}
  ~MonitorTest() override { hub.reset(); }

  // A monitor recording every event and answering with `answer`.
  std::shared_ptr<Monitor> recorder(std::vector<Event>& out, Response answer = {}) {
    return hub->attach("rec", [&out, answer](const Event& e) {
      out.push_back(e);
      return answer;
    });
  }
  ExitReason run(uint64_t n) { return h().run(n); }

  std::unique_ptr<Hub> hub;
};

// ---- CSR writes ----

TEST_F(MonitorTest, CsrWriteReportsOldAndNewValue) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kCsrWrite, .sync = true});
  set_priv(Priv::S);
  h().x[kT0] = 0x80002000;
  program({csrw(csr::kStvec, kT0), csrw(csr::kSscratch, kT0)});
  run(2);
  ASSERT_EQ(ev.size(), 1u);  // sscratch is not in the default set
  EXPECT_EQ(ev[0].csr, csr::kStvec);
  EXPECT_EQ(ev[0].old_value, kSTrap);
  EXPECT_EQ(ev[0].new_value, 0x80002000u);
  EXPECT_EQ(ev[0].pc, kCode);
  EXPECT_TRUE(ev[0].sync);
  EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);
}

TEST_F(MonitorTest, CsrWriteDeniedDoesNotHappenAndEmulateReplacesValue) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny});
  m->subscribe({.type = EventType::kCsrWrite, .sync = true});
  set_priv(Priv::S);
  h().x[kT0] = 0x80002000;
  program({csrw(csr::kStvec, kT0), addi(kA0, kZero, 7)});
  run(2);
  EXPECT_EQ(get_csr(csr::kStvec), kSTrap);  // unchanged
  EXPECT_EQ(h().x[kA0], 7u);                // and the guest went on
  m->detach();
  auto m2 = recorder(ev, Response{.action = Action::kEmulate, .value = 0x80003000});
  m2->subscribe({.type = EventType::kCsrWrite, .sync = true});
  program({csrw(csr::kStvec, kT0)});
  run(1);
  EXPECT_EQ(get_csr(csr::kStvec), 0x80003000u);
}

TEST_F(MonitorTest, CsrOnChangeOnlyAndExplicitCsrList) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  Subscription s{.type = EventType::kCsrWrite, .on_change = true};
  s.filter.numbers = {csr::kSscratch};
  m->subscribe(s);
  set_priv(Priv::S);
  h().x[kT0] = 5;
  program({csrw(csr::kSscratch, kT0), csrw(csr::kSscratch, kT0), csrw(csr::kStvec, kT0)});
  run(3);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].csr, csr::kSscratch);
  EXPECT_FALSE(ev[0].sync);
}

TEST_F(MonitorTest, SatpWriteReported) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kCsrWrite});
  new_address_space();
  map_code();
  const uint64_t satp_value = get_csr(csr::kSatp);
  set_csr(csr::kSatp, 0);
  ev.clear();
  set_priv(Priv::S);
  h().x[kT0] = satp_value;
  program({csrw(csr::kSatp, kT0)});
  run(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].csr, csr::kSatp);
  EXPECT_EQ(ev[0].old_value, 0u);
  EXPECT_EQ(ev[0].new_value, satp_value);
}

// ---- system calls ----

class SyscallTest : public MonitorTest {
 protected:
  void SetUp() override {
    // U-mode ECALLs go to S; the S handler returns 42 to the instruction after the ECALL.
    set_csr(csr::kMedeleg, bit(8));
    code(kSTrap,
         {addi(kA0, kZero, 42), csrr(kT0, csr::kSepc), addi(kT0, kT0, 4), csrw(csr::kSepc, kT0), sret()});
    h().x[kA7] = 172;  // getpid
    for (unsigned i = 0; i < 6; ++i) h().x[kA0 + i] = 100 + i;
    h().x[kSp] = 0x80150000;
    program({ecall(), addi(kA1, kA0, 0)});
    set_priv(Priv::U);
  }
};

TEST_F(SyscallTest, EcallFromUserWithNumberArgsAndReturnValue) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kSyscall});
  m->subscribe({.type = EventType::kSyscallReturn});
  run(7);  // SRET ends the slice
  run(1);
  EXPECT_EQ(h().priv, Priv::U);
  EXPECT_EQ(h().x[kA1], 42u);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, EventType::kSyscall);
  EXPECT_EQ(ev[0].nr, 172u);
  EXPECT_EQ(ev[0].args[0], 100u);
  EXPECT_EQ(ev[0].args[5], 105u);
  EXPECT_EQ(ev[0].pc, kCode);
  EXPECT_EQ(ev[0].priv, Priv::U);
  EXPECT_EQ(ev[1].type, EventType::kSyscallReturn);
  EXPECT_EQ(ev[1].nr, 172u);
  EXPECT_EQ(ev[1].ret, 42);
  EXPECT_EQ(ev[1].pc, kCode + 4);
  EXPECT_GT(ev[1].seq, ev[0].seq);
}

TEST_F(SyscallTest, DeniedSyscallIsSkippedWithValue) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny, .value = static_cast<uint64_t>(-1)});
  m->subscribe({.type = EventType::kSyscall, .sync = true});
  run(2);
  EXPECT_EQ(h().priv, Priv::U);  // never reached the kernel
  EXPECT_EQ(h().x[kA1], static_cast<uint64_t>(-1));
  EXPECT_EQ(ev.size(), 1u);
}

TEST_F(SyscallTest, NumberAndSatpFiltersRunBeforeDelivery) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  Subscription s{.type = EventType::kSyscall};
  s.filter.numbers = {64};  // write only
  m->subscribe(s);
  Subscription t{.type = EventType::kSyscall};
  t.filter.satp = 0x8000000000012345ull;  // another process
  m->subscribe(t);
  run(7);
  EXPECT_TRUE(ev.empty());
  EXPECT_EQ(m->delivered(), 0u);
}

TEST_F(SyscallTest, RegistersSetByTheResponse) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.regs = {{kA7, 64}, {kA0, 1}}});
  m->subscribe({.type = EventType::kSyscall, .sync = true});
  run(1);
  EXPECT_EQ(h().x[kA7], 64u);
  EXPECT_EQ(h().priv, Priv::S);  // the call proceeded into the kernel with the new registers
}

// ---- traps ----

TEST_F(MonitorTest, TrapEventWithCauseAndTval) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  Subscription s{.type = EventType::kTrap};
  s.filter.numbers = {static_cast<uint64_t>(Cause::kIllegalInsn)};
  m->subscribe(s);
  set_priv(Priv::S);
  program({addi(kA0, kZero, 1), 0xffffffffu});
  run(2);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].cause, 2u);
  EXPECT_EQ(ev[0].tval, 0xffffffffu);
  EXPECT_FALSE(ev[0].interrupt);
  EXPECT_EQ(ev[0].gva, kCode + 4);  // where it trapped
  EXPECT_EQ(ev[0].pc, kMTrap);      // the handler
}

TEST_F(MonitorTest, InterruptDeliveredIsReported) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kTrap});
  set_csr(csr::kMie, bit(irq::kMti));
  set_mstatus_bits(mstatus::kMie);
  program({nop(), nop()});
  h().mtimecmp = 0;
  run(2);
  ASSERT_FALSE(ev.empty());
  EXPECT_TRUE(ev[0].interrupt);
  EXPECT_EQ(ev[0].cause, irq::kMti);
}

// ---- breakpoints ----

TEST_F(MonitorTest, BreakpointFiresAndOriginalInstructionRuns) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kBreakpoint, .sync = true});
  program({addi(kA0, kA0, 1), addi(kA0, kA0, 1), addi(kA0, kA0, 1), lw(kA2, kA1, 0)});
  h().x[kA1] = kCode + 4;
  run(1);  // decoded before the breakpoint exists: it must still fire
  ASSERT_TRUE(m->add_breakpoint(kCode + 4, 0xffffffff80000004ull));
  run(3);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].gpa, kCode + 4);
  EXPECT_EQ(ev[0].pc, kCode + 4);
  EXPECT_EQ(h().x[kA0], 3u);
  // The guest reads its code unmodified.
  EXPECT_EQ(h().x[kA2] & 0xffffffffu, addi(kA0, kA0, 1));
  EXPECT_EQ(peek32(kCode + 4), addi(kA0, kA0, 1));
  // Fires on every pass; removed, it does not.
  h().pc = kCode;
  run(3);
  EXPECT_EQ(ev.size(), 2u);
  m->remove_breakpoint(kCode + 4);
  h().pc = kCode;
  run(3);
  EXPECT_EQ(ev.size(), 2u);
  EXPECT_FALSE(mem.has_breakpoints(mem.page_index(kCode)));
}

TEST_F(MonitorTest, BreakpointDenySkipsAndPcChangeRedirects) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny});
  m->subscribe({.type = EventType::kBreakpoint, .sync = true});
  program({addi(kA0, kA0, 1), addi(kA0, kA0, 1), addi(kA0, kA0, 1)});
  ASSERT_TRUE(m->add_breakpoint(kCode + 4));
  run(3);
  EXPECT_EQ(h().x[kA0], 2u);
  m->detach();
  auto m2 = recorder(ev, Response{.pc = kCode + 8});
  m2->subscribe({.type = EventType::kBreakpoint, .sync = true});
  ASSERT_TRUE(m2->add_breakpoint(kCode + 4));
  h().x[kA0] = 0;
  h().pc = kCode;
  run(3);
  EXPECT_EQ(h().x[kA0], 2u);  // kCode+4 jumped over
}

TEST_F(MonitorTest, BreakpointOnCompressedInstruction) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kBreakpoint});
  // c.addi a0, 1 (0x0505) twice, then a 32-bit addi.
  poke16(kCode, 0x0505);
  poke16(kCode + 2, 0x0505);
  poke32(kCode + 4, addi(kA0, kA0, 1));
  h().pc = kCode;
  ASSERT_TRUE(m->add_breakpoint(kCode + 2));
  run(3);
  EXPECT_EQ(ev.size(), 1u);
  EXPECT_EQ(h().x[kA0], 3u);
  EXPECT_EQ(h().pc, kCode + 8);
}

// ---- single-step ----

TEST_F(MonitorTest, SingleStepReportsEveryInstruction) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kSingleStep});
  m->set_single_step(0, true);
  program({nop(), nop(), nop(), nop()});
  run(4);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].pc, kCode + 4);
  EXPECT_EQ(ev[3].pc, kCode + 16);
  EXPECT_EQ(h().instret(), 4u);
  m->set_single_step(0, false);
  h().pc = kCode;
  run(4);
  EXPECT_EQ(ev.size(), 4u);
}

TEST_F(MonitorTest, ResponseTogglesSingleStep) {
  std::vector<Event> ev;
  auto m = hub->attach("bp-then-step", [&](const Event& e) {
    ev.push_back(e);
    return Response{.single_step = e.type == EventType::kBreakpoint};
  });
  m->subscribe({.type = EventType::kBreakpoint, .sync = true});
  m->subscribe({.type = EventType::kSingleStep, .sync = true});
  program({nop(), nop(), nop(), nop(), nop(), nop()});
  ASSERT_TRUE(m->add_breakpoint(kCode + 4));
  run(100);  // the breakpoint ends the slice
  run(100);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, EventType::kBreakpoint);
  EXPECT_EQ(ev[1].type, EventType::kSingleStep);
  EXPECT_EQ(ev.size(), 2u);  // the step event switched it off again
}

// ---- guest request ----

TEST_F(MonitorTest, GuestRequestSbiCall) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.value = 99});
  m->subscribe({.type = EventType::kGuestRequest, .sync = true});
  h().builtin_sbi = true;
  set_priv(Priv::S);
  h().x[kA7] = kGuestRequestEid;
  h().x[kA6] = 7;
  h().x[kA0] = 0x1234;
  program({ecall(), nop()});
  run(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].nr, 7u);
  EXPECT_EQ(ev[0].args[0], 0x1234u);
  EXPECT_EQ(h().x[kA0], 0u);
  EXPECT_EQ(h().x[kA1], 99u);
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_TRUE(platform.sbi_calls.empty());  // never reached the SBI
}

// ---- memory access ----

class MemTest : public MonitorTest {
 protected:
  void store_at(uint64_t pa, uint64_t value) {
    h().x[kA1] = pa;
    h().x[kA2] = value;
    program({sd(kA2, kA1, 0), addi(kA3, kZero, 1)});
    h().x[kA3] = 0;
    run(2);
  }
};

TEST_F(MemTest, WriteToProtectedPageDeniedReportedGuestContinues) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny});
  m->subscribe({.type = EventType::kMemAccess, .sync = true});
  poke64(kData, 0x1111);
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kRead | p2m::kExec));
  set_priv(Priv::S);
  store_at(kData + 0, 0x2222);
  EXPECT_EQ(peek64(kData), 0x1111u);
  EXPECT_EQ(h().x[kA3], 1u);  // the next instruction ran: no trap
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, EventType::kMemAccess);
  EXPECT_EQ(ev[0].gpa, kData);
  EXPECT_EQ(ev[0].gva, kData);
  EXPECT_EQ(ev[0].access, AccessType::kWrite);
  EXPECT_EQ(ev[0].pc, kCode);
  EXPECT_EQ(ev[0].size, 8u);
  // Reads are allowed and fast.
  h().x[kA1] = kData;
  program({ld(kA0, kA1, 0)});
  run(1);
  EXPECT_EQ(h().x[kA0], 0x1111u);
  EXPECT_EQ(ev.size(), 1u);
  // Detaching gives the rights back.
  m->detach();
  EXPECT_EQ(mem.rights(mem.page_index(kData)), p2m::kAll);
  store_at(kData, 0x3333);
  EXPECT_EQ(peek64(kData), 0x3333u);
}

TEST_F(MemTest, ContinueLetsOneAccessThroughAndEmulateFeedsLoads) {
  std::vector<Event> ev;
  auto m = recorder(ev);
  m->subscribe({.type = EventType::kMemAccess, .sync = true});
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kExec));
  set_priv(Priv::S);
  store_at(kData, 0x4444);
  EXPECT_EQ(peek64(kData), 0x4444u);
  store_at(kData, 0x5555);
  EXPECT_EQ(ev.size(), 2u);  // every access is seen again (rights unchanged)
  m->detach();
  auto m2 = recorder(ev, Response{.action = Action::kEmulate, .value = 0xabcd});
  m2->subscribe({.type = EventType::kMemAccess, .sync = true});
  ASSERT_TRUE(m2->set_rights(kData, kPageSize, 0));
  h().x[kA1] = kData;
  program({ld(kA0, kA1, 0)});
  run(1);
  EXPECT_EQ(h().x[kA0], 0xabcdu);
  EXPECT_EQ(ev.back().access, AccessType::kRead);
}

TEST_F(MemTest, NoSubscriberMeansAccessFaultAndRangeFilter) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny});
  Subscription s{.type = EventType::kMemAccess, .sync = true};
  s.filter.lo = kData + kPageSize;  // another page
  s.filter.hi = kData + 2 * kPageSize - 1;
  m->subscribe(s);
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kRead));
  set_priv(Priv::S);
  store_at(kData, 1);
  EXPECT_TRUE(ev.empty());
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
}

TEST_F(MemTest, ResponseChangesRights) {
  std::vector<Event> ev;
  auto m = hub->attach("lift", [&](const Event& e) {
    ev.push_back(e);
    return Response{.rights = {{e.gpa & ~kPageMask, kPageSize, p2m::kAll}}};
  });
  m->subscribe({.type = EventType::kMemAccess, .sync = true});
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kRead));
  set_priv(Priv::S);
  store_at(kData, 7);
  store_at(kData, 8);
  EXPECT_EQ(ev.size(), 1u);
  EXPECT_EQ(peek64(kData), 8u);
}

TEST_F(MemTest, HoldStopsBeforeTheAccessAndTheInstructionRunsLater) {
  // A debugger's watchpoint: the store does not happen, the instruction does not retire, the
  // slice ends at it; once the page is given back the same instruction runs.
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.hold = true});
  m->subscribe({.type = EventType::kMemAccess, .sync = true});
  poke64(kData, 0x1111);
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kRead | p2m::kExec));
  set_priv(Priv::S);
  h().x[kA1] = kData;
  h().x[kA2] = 0x2222;
  h().x[kA3] = 0;
  program({sd(kA2, kA1, 0), addi(kA3, kZero, 1)});
  const uint64_t before = h().instret();
  run(2);
  EXPECT_EQ(peek64(kData), 0x1111u);
  EXPECT_EQ(h().pc, kCode);    // still on the store
  EXPECT_EQ(h().x[kA3], 0u);   // the slice ended there
  EXPECT_EQ(h().instret(), before);
  ASSERT_EQ(ev.size(), 1u);
  // An atomic is held the same way.
  program({amo_op(amo::kAdd, true, kA0, kA1, kA2)});
  run(1);
  EXPECT_EQ(h().pc, kCode);
  EXPECT_EQ(peek64(kData), 0x1111u);
  EXPECT_EQ(ev.size(), 2u);
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kAll));
  program({sd(kA2, kA1, 0), addi(kA3, kZero, 1)});
  run(2);
  EXPECT_EQ(peek64(kData), 0x2222u);
  EXPECT_EQ(h().x[kA3], 1u);
  EXPECT_EQ(ev.size(), 2u);
}

TEST_F(MemTest, AtomicOnProtectedPageDenied) {
  std::vector<Event> ev;
  auto m = recorder(ev, Response{.action = Action::kDeny});
  m->subscribe({.type = EventType::kMemAccess, .sync = true});
  poke64(kData, 5);
  ASSERT_TRUE(m->set_rights(kData, kPageSize, p2m::kRead));
  set_priv(Priv::S);
  h().x[kA1] = kData;
  h().x[kA2] = 100;
  program({amo_op(amo::kAdd, true, kA0, kA1, kA2)});
  run(1);
  EXPECT_EQ(peek64(kData), 5u);
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(ev.size(), 1u);
}

// ---- several monitors ----

TEST_F(MonitorTest, SeveralMonitorsDenyWinsAndRightsCombine) {
  std::vector<Event> a, b;
  auto ma = recorder(a);
  auto mb = recorder(b, Response{.action = Action::kDeny});
  ma->subscribe({.type = EventType::kCsrWrite, .sync = true});
  mb->subscribe({.type = EventType::kCsrWrite, .sync = true});
  EXPECT_EQ(hub->monitor_count(), 2u);
  set_priv(Priv::S);
  h().x[kT0] = 0x80002000;
  program({csrw(csr::kStvec, kT0)});
  run(1);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].seq + 1, b[0].seq);
  EXPECT_EQ(get_csr(csr::kStvec), kSTrap);
  // Rights: the page keeps what both leave it; one leaving restores the other's.
  ma->set_rights(kData, kPageSize, p2m::kRead | p2m::kWrite);
  mb->set_rights(kData, kPageSize, p2m::kRead | p2m::kExec);
  EXPECT_EQ(mem.rights(mem.page_index(kData)), p2m::kRead);
  mb->detach();
  EXPECT_EQ(mem.rights(mem.page_index(kData)), p2m::kRead | p2m::kWrite);
  EXPECT_EQ(hub->monitor_count(), 1u);
  // A detached monitor hears nothing more.
  h().pc = kCode;
  run(1);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);
}

TEST_F(MonitorTest, NoMonitorLeavesNoWatchBits) {
  auto m = hub->attach("x", [](const Event&) { return Response{}; });
  m->subscribe({.type = EventType::kSyscallReturn});
  EXPECT_NE(h().watch.load(), 0u);
  m->detach();
  EXPECT_EQ(h().watch.load(), 0u);
}

}  // namespace
}  // namespace vigil::monitor
