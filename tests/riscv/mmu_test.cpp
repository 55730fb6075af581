// Virtual memory (privileged spec 20211203 chapter 4.3-4.5: Sv39, Sv48), MPRV/SUM/MXR
// (3.1.6.3), PMP (3.7), TLB maintenance (SFENCE.VMA, satp writes) and self-modifying code.
#include <cstdint>

#include "cpu_harness.h"

namespace vigil::riscv::test {
namespace {

using namespace enc;
using namespace mstatus;

constexpr uint64_t kVa = 0x40000000;  // a free 1 GiB slot in both Sv39 and Sv48

class MmuTest : public CpuTest {
 protected:
  // A fresh address space with the code and trap pages identity-mapped.
  void paging(uint64_t mode = satp::kModeSv39, uint64_t code_flags = 0) {
    new_address_space(mode);
    map_code(code_flags);
  }
  // Runs `insns` at kCode in privilege `p` (each one step).
  void run_in(Priv p, std::initializer_list<uint32_t> insns) {
    program(insns);
    set_priv(p);
    step(static_cast<unsigned>(insns.size()));
  }
  // Loads a doubleword from `va` in mode `p`; returns true if it completed.
  bool load_ok(Priv p, uint64_t va, uint64_t* out = nullptr) {
    h().x[kA1] = va;
    h().x[kA0] = 0;
    run_in(p, {ld(kA0, kA1, 0)});
    if (out) *out = h().x[kA0];
    return h().pc == kCode + 4;
  }
  bool store_ok(Priv p, uint64_t va, uint64_t value) {
    h().x[kA1] = va;
    h().x[kA2] = value;
    run_in(p, {sd(kA2, kA1, 0)});
    return h().pc == kCode + 4;
  }
  // Jumps to `va` in mode `p` and executes one instruction there.
  void fetch_at(Priv p, uint64_t va) {
    h().x[kA1] = va;
    program({jalr(kZero, kA1, 0)});
    set_priv(p);
    step(2);
  }
  uint64_t pte(uint64_t va, unsigned level = 0) { return peek64(pte_addr(va, level)); }
};

// ---- basic walks ----

TEST_F(MmuTest, Sv39FourKPageLoadStore) {
  paging();
  map(kVa, kData, pte::kRW);
  poke64(kData + 8, 0x1122334455667788ull);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa + 8, &v));
  EXPECT_EQ(v, 0x1122334455667788ull);
  ASSERT_TRUE(store_ok(Priv::S, kVa + 0x10, 0xabcdef));
  EXPECT_EQ(peek64(kData + 0x10), 0xabcdefu);
}

TEST_F(MmuTest, Sv39MegaPage) {
  paging();
  map(kVa + 0x200000, kBig, pte::kRW, 1);
  poke64(kBig + 0x12348, 0x5151);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa + 0x200000 + 0x12348, &v));
  EXPECT_EQ(v, 0x5151u);
}

TEST_F(MmuTest, Sv39GigaPage) {
  paging();
  const uint64_t va = 0xc0000000;
  map(va, kRamBase, pte::kRW, 2);
  poke64(kData + 0x18, 0x6262);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, va + (kData - kRamBase) + 0x18, &v));
  EXPECT_EQ(v, 0x6262u);
}

TEST_F(MmuTest, Sv39UpperHalfAddress) {
  paging();
  const uint64_t va = 0xffffffc000000000ull;  // bit 38 set, sign-extended
  map(va + 0x3000, kData, pte::kRW);
  poke64(kData, 0x7373);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, va + 0x3000, &v));
  EXPECT_EQ(v, 0x7373u);
}

TEST_F(MmuTest, Sv48FourKMegaGigaPages) {
  paging(satp::kModeSv48);
  map(kVa, kData, pte::kRW);
  map(kVa + 0x200000, kBig, pte::kRW, 1);
  map(0xc0000000, kRamBase, pte::kRW, 2);
  poke64(kData, 1);
  poke64(kBig + 0x1008, 2);
  poke64(kData + 0x20, 3);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa, &v));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(load_ok(Priv::S, kVa + 0x201008, &v));
  EXPECT_EQ(v, 2u);
  ASSERT_TRUE(load_ok(Priv::S, 0xc0000000 + (kData - kRamBase) + 0x20, &v));
  EXPECT_EQ(v, 3u);
}

TEST_F(MmuTest, Sv48TeraPage) {
  paging(satp::kModeSv48);
  const uint64_t va = 0x0000008000000000ull;  // VPN[3] = 1
  map(va, 0, pte::kRW, 3);                     // 512 GiB page at PA 0
  poke64(kData + 0x28, 0x4848);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, va + kData + 0x28, &v));
  EXPECT_EQ(v, 0x4848u);
}

TEST_F(MmuTest, Sv48HighAndNegativeAddresses) {
  paging(satp::kModeSv48);
  map(0x00007ffffffff000ull, kData, pte::kRW);
  map(0xffff800000000000ull, kData + 0x1000, pte::kRW);
  poke64(kData, 10);
  poke64(kData + 0x1000, 20);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, 0x00007ffffffff000ull, &v));
  EXPECT_EQ(v, 10u);
  ASSERT_TRUE(load_ok(Priv::S, 0xffff800000000000ull, &v));
  EXPECT_EQ(v, 20u);
}

TEST_F(MmuTest, Sv39CodeExecutesFromTranslatedPage) {
  paging();
  const uint64_t code_pa = kCode + 0x8000;
  map(kVa, code_pa, pte::kRX);
  code(code_pa, {addi(kA0, kZero, 42), auipc(kA2, 0)});
  h().x[kA1] = kVa;
  program({jalr(kZero, kA1, 0)});
  set_priv(Priv::S);
  step(3);
  EXPECT_EQ(h().x[kA0], 42u);
  EXPECT_EQ(h().x[kA2], kVa + 4) << "AUIPC sees the virtual pc";
  EXPECT_EQ(h().pc, kVa + 8);
}

TEST_F(MmuTest, CodeInMegaPage) {
  paging();
  map(kVa, kBig, pte::kRX, 1);
  code(kBig + 0x1230, {addi(kA0, kZero, 7)});
  fetch_at(Priv::S, kVa + 0x1230);
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_EQ(h().pc, kVa + 0x1234);
}

// ---- page faults ----

TEST_F(MmuTest, UnmappedLoadStoreFetchFaults) {
  paging();
  EXPECT_FALSE(load_ok(Priv::S, kVa + 0x18));
  expect_m_trap(Cause::kLoadPageFault, kVa + 0x18, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 0x20, 1));
  expect_m_trap(Cause::kStorePageFault, kVa + 0x20, kCode);
  fetch_at(Priv::S, kVa + 0x40);
  expect_m_trap(Cause::kInsnPageFault, kVa + 0x40, kVa + 0x40);
}

TEST_F(MmuTest, NonCanonicalSv39AddressFaults) {
  paging();
  EXPECT_FALSE(load_ok(Priv::S, 0x0000004000000000ull));  // bit 38 set, bits 63:39 clear
  expect_m_trap(Cause::kLoadPageFault, 0x0000004000000000ull, kCode);
  EXPECT_FALSE(store_ok(Priv::S, 0x8000000080100000ull, 1));
  expect_m_trap(Cause::kStorePageFault, 0x8000000080100000ull, kCode);
  // Bits 38:0 select a mapped page; bit 39 alone makes the address non-canonical.
  map(kVa, kData, pte::kRW);
  ASSERT_TRUE(load_ok(Priv::S, kVa));
  EXPECT_FALSE(load_ok(Priv::S, kVa | (1ull << 39)));
  expect_m_trap(Cause::kLoadPageFault, kVa | (1ull << 39), kCode);
  EXPECT_FALSE(load_ok(Priv::S, kVa | (1ull << 63)));
  expect_m_trap(Cause::kLoadPageFault, kVa | (1ull << 63), kCode);
}

TEST_F(MmuTest, NonCanonicalSv48AddressFaults) {
  paging(satp::kModeSv48);
  EXPECT_FALSE(load_ok(Priv::S, 0x0000800000000000ull));  // bit 47 set, bits 63:48 clear
  expect_m_trap(Cause::kLoadPageFault, 0x0000800000000000ull, kCode);
  fetch_at(Priv::S, 0x0001000080000000ull);
  expect_m_trap(Cause::kInsnPageFault, 0x0001000080000000ull, 0x0001000080000000ull);
  map(kVa, kData, pte::kRW);
  ASSERT_TRUE(load_ok(Priv::S, kVa));
  EXPECT_FALSE(load_ok(Priv::S, kVa | (1ull << 48)));
  expect_m_trap(Cause::kLoadPageFault, kVa | (1ull << 48), kCode);
}

TEST_F(MmuTest, StoreToReadOnlyPageFaults) {
  paging();
  map(kVa, kData, pte::kR);
  poke64(kData, 5);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 9));
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
  EXPECT_EQ(peek64(kData), 5u);
}

TEST_F(MmuTest, FetchFromNonExecutablePageFaults) {
  paging();
  map(kVa, kCode + 0x8000, pte::kRW);
  code(kCode + 0x8000, {nop()});
  fetch_at(Priv::S, kVa);
  expect_m_trap(Cause::kInsnPageFault, kVa, kVa);
}

TEST_F(MmuTest, LoadFromExecuteOnlyPageNeedsMxr) {
  paging();
  map(kVa, kData, pte::kX);
  poke64(kData, 0x99);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
  set_mstatus_bits(kMxr);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa, &v));
  EXPECT_EQ(v, 0x99u);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 1)) << "MXR does not grant writes";
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
}

TEST_F(MmuTest, WriteWithoutReadIsReservedEncoding) {
  paging();
  map(kVa, kData, pte::kW);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 1));
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
}

TEST_F(MmuTest, WriteExecuteWithoutReadIsReservedEncoding) {
  paging();
  map(kVa, kData, pte::kW | pte::kX);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 1));
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
}

TEST_F(MmuTest, ReservedHighPteBitsFault) {
  // Bits 63:54 are reserved (N and PBMT need Svnapot/Svpbmt, not implemented): page fault.
  for (unsigned b : {54u, 60u, 61u, 62u, 63u}) {
    reset_hart();
    paging();
    const uint64_t a = map(kVa, kData, pte::kRW);
    poke64(a, peek64(a) | (1ull << b));
    EXPECT_FALSE(load_ok(Priv::S, kVa)) << "bit " << b;
    expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
  }
}

TEST_F(MmuTest, ReservedBitsInNonLeafPteFault) {
  paging();
  map(kVa, kData, pte::kRW);
  const uint64_t root_entry = pt_root + ((kVa >> 30) & 511) * 8;
  poke64(root_entry, peek64(root_entry) | (1ull << 58));
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
}

TEST_F(MmuTest, MisalignedMegaPageFaults) {
  paging();
  map(kVa, kBig + 0x1000, pte::kRW, 1);  // PPN[0] != 0
  EXPECT_FALSE(load_ok(Priv::S, kVa + 0x10));
  expect_m_trap(Cause::kLoadPageFault, kVa + 0x10, kCode);
}

TEST_F(MmuTest, MisalignedGigaPageFaults) {
  paging();
  map(0xc0000000, kRamBase + 0x200000, pte::kRWX, 2);  // PPN[1] != 0
  EXPECT_FALSE(load_ok(Priv::S, 0xc0000000));
  expect_m_trap(Cause::kLoadPageFault, 0xc0000000, kCode);
  fetch_at(Priv::S, 0xc0000000 + 0x1000);
  expect_m_trap(Cause::kInsnPageFault, 0xc0001000, 0xc0001000);
}

TEST_F(MmuTest, PointerPteAtLastLevelFaults) {
  paging();
  const uint64_t a = pte_addr(kVa, 0);
  poke64(a, ((kData >> 12) << 10) | pte::kV);  // V=1, R=W=X=0 at level 0
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
}

// ---- U bit, SUM ----

TEST_F(MmuTest, UserCannotAccessSupervisorPage) {
  paging(satp::kModeSv39, pte::kU);
  map(kVa, kData, pte::kRW);
  EXPECT_FALSE(load_ok(Priv::U, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
  EXPECT_FALSE(store_ok(Priv::U, kVa, 1));
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
}

TEST_F(MmuTest, UserCanAccessUserPage) {
  paging(satp::kModeSv39, pte::kU);
  map(kVa, kData, pte::kRW | pte::kU);
  poke64(kData, 0x77);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::U, kVa, &v));
  EXPECT_EQ(v, 0x77u);
  ASSERT_TRUE(store_ok(Priv::U, kVa + 8, 0x88));
  EXPECT_EQ(peek64(kData + 8), 0x88u);
}

TEST_F(MmuTest, UserFetchFromSupervisorPageFaults) {
  paging();  // code pages without U
  program({nop()});
  set_priv(Priv::U);
  step();
  expect_m_trap(Cause::kInsnPageFault, kCode, kCode);
}

TEST_F(MmuTest, SupervisorFetchFromUserPageFaults) {
  paging(satp::kModeSv39, pte::kU);
  program({nop()});
  set_priv(Priv::S);
  step();
  expect_m_trap(Cause::kInsnPageFault, kCode, kCode);
  // SUM never permits supervisor execution of user pages.
  set_mstatus_bits(kSum);
  program({nop()});
  set_priv(Priv::S);
  step();
  expect_m_trap(Cause::kInsnPageFault, kCode, kCode);
}

TEST_F(MmuTest, SupervisorDataAccessToUserPageNeedsSum) {
  paging();
  map(kVa, kData, pte::kRW | pte::kU);
  poke64(kData, 0x66);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 1));
  expect_m_trap(Cause::kStorePageFault, kVa, kCode);
  set_mstatus_bits(kSum);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa, &v));
  EXPECT_EQ(v, 0x66u);
  ASSERT_TRUE(store_ok(Priv::S, kVa, 0x67));
  EXPECT_EQ(peek64(kData), 0x67u);
  // Clearing SUM again revokes the access (no stale TLB permission).
  clear_mstatus_bits(kSum);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
}

TEST_F(MmuTest, MxrClearedAgainRevokesExecuteOnlyRead) {
  paging();
  map(kVa, kData, pte::kX);
  set_mstatus_bits(kMxr);
  ASSERT_TRUE(load_ok(Priv::S, kVa));
  clear_mstatus_bits(kMxr);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
}

// ---- MPRV (3.1.6.3) ----

TEST_F(MmuTest, MprvTranslatesMachineDataAccesses) {
  paging();
  map(kVa, kData + 0x3000, pte::kRW);
  poke64(kData + 0x3000, 0xfeed);
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | (1ull << kMppShift) | kMprv);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::M, kVa, &v)) << "fetch stays untranslated; the load uses S-mode translation";
  EXPECT_EQ(v, 0xfeedu);
}

TEST_F(MmuTest, MprvWithUserMppObeysUserBit) {
  paging();
  map(kVa, kData, pte::kRW);
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | kMprv);  // MPP = U
  EXPECT_FALSE(load_ok(Priv::M, kVa));
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode);
}

TEST_F(MmuTest, MachineModeIgnoresSatp) {
  paging();
  poke64(kData, 0x3131);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::M, kData, &v));
  EXPECT_EQ(v, 0x3131u);
}

TEST_F(MmuTest, SupervisorBareModeIsPhysical) {
  set_csr(csr::kSatp, 0);
  poke64(kData, 0x4242);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kData, &v));
  EXPECT_EQ(v, 0x4242u);
}

// ---- accessed / dirty bits (4.3.1: hardware may update them; Vigil does) ----

TEST_F(MmuTest, AccessedBitSetOnLoadDirtyOnlyOnStore) {
  paging();
  map(kVa, kData, pte::kRW, 0, /*with_ad=*/false);
  ASSERT_TRUE(load_ok(Priv::S, kVa));
  EXPECT_TRUE(pte(kVa) & pte::kA);
  EXPECT_FALSE(pte(kVa) & pte::kD);
  ASSERT_TRUE(store_ok(Priv::S, kVa, 1));
  EXPECT_TRUE(pte(kVa) & pte::kD);
}

TEST_F(MmuTest, DirtyBitSetOnFirstStoreEvenAfterCachedLoad) {
  paging();
  map(kVa, kData, pte::kRW, 0, false);
  h().x[kA1] = kVa;
  h().x[kA2] = 5;
  run_in(Priv::S, {ld(kA0, kA1, 0), ld(kA0, kA1, 8), sd(kA2, kA1, 0)});
  EXPECT_EQ(h().pc, kCode + 12);
  EXPECT_EQ(pte(kVa) & pte::kAD, pte::kAD);
}

TEST_F(MmuTest, AccessedBitSetOnFetch) {
  paging();
  map(kVa, kCode + 0x8000, pte::kRX, 0, false);
  code(kCode + 0x8000, {nop()});
  fetch_at(Priv::S, kVa);
  EXPECT_EQ(h().pc, kVa + 4);
  EXPECT_TRUE(pte(kVa) & pte::kA);
  EXPECT_FALSE(pte(kVa) & pte::kD);
}

TEST_F(MmuTest, FaultingAccessDoesNotSetAccessedBit) {
  paging();
  map(kVa, kData, pte::kR, 0, false);
  EXPECT_FALSE(store_ok(Priv::S, kVa, 1));
  EXPECT_FALSE(pte(kVa) & (pte::kA | pte::kD)) << "the PTE update must only happen for a permitted access";
}

TEST_F(MmuTest, AccessedBitOnSuperpageLeaf) {
  paging();
  map(kVa, kBig, pte::kRW, 1, false);
  ASSERT_TRUE(store_ok(Priv::S, kVa + 0x40, 3));
  EXPECT_EQ(pte(kVa, 1) & pte::kAD, pte::kAD);
}

// ---- access faults from translation ----

TEST_F(MmuTest, PageTableOutsideRamIsAccessFault) {
  paging();
  const uint64_t root_entry = pt_root + ((kVa >> 30) & 511) * 8;
  poke64(root_entry, ((kUnmappedPa >> 12) << 10) | pte::kV);
  EXPECT_FALSE(load_ok(Priv::S, kVa + 8));
  expect_m_trap(Cause::kLoadAccessFault, kVa + 8, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 8, 1));
  expect_m_trap(Cause::kStoreAccessFault, kVa + 8, kCode);
  fetch_at(Priv::S, kVa + 0x100);
  expect_m_trap(Cause::kInsnAccessFault, kVa + 0x100, kVa + 0x100);
}

TEST_F(MmuTest, PageTablePointingAtMmioIsAccessFault) {
  paging();
  const uint64_t root_entry = pt_root + ((kVa >> 30) & 511) * 8;
  poke64(root_entry, ((kMmio >> 12) << 10) | pte::kV);
  EXPECT_FALSE(load_ok(Priv::S, kVa));
  expect_m_trap(Cause::kLoadAccessFault, kVa, kCode);
  EXPECT_TRUE(platform.mmio.empty()) << "page-table walks must not read device registers";
}

TEST_F(MmuTest, SatpRootOutsideRamIsAccessFault) {
  set_csr(csr::kSatp, (satp::kModeSv39 << 60) | (kUnmappedPa >> 12));
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | (1ull << kMppShift) | kMprv);
  EXPECT_FALSE(load_ok(Priv::M, kVa));
  expect_m_trap(Cause::kLoadAccessFault, kVa, kCode);
}

TEST_F(MmuTest, LeafPointingOutsideRamIsAccessFault) {
  paging();
  map(kVa, kUnmappedPa, pte::kRW);
  EXPECT_FALSE(load_ok(Priv::S, kVa + 0x10));
  expect_m_trap(Cause::kLoadAccessFault, kVa + 0x10, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 0x10, 1));
  expect_m_trap(Cause::kStoreAccessFault, kVa + 0x10, kCode);
}

TEST_F(MmuTest, LeafPointingAtMmioReachesDevice) {
  paging();
  map(kVa, kMmio, pte::kRW);
  platform.mmio_value = 0x1234;
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa + 0x20, &v));
  EXPECT_EQ(v, 0x1234u);
  ASSERT_EQ(platform.mmio.size(), 1u);
  EXPECT_EQ(platform.mmio[0].pa, kMmio + 0x20);
  EXPECT_EQ(platform.mmio[0].size, 8u);
}

TEST_F(MmuTest, FetchFromMmioIsAccessFault) {
  paging();
  map(kVa, kMmio, pte::kRX);
  fetch_at(Priv::S, kVa);
  expect_m_trap(Cause::kInsnAccessFault, kVa, kVa);
}

TEST_F(MmuTest, MachineFetchFromNonexistentAddressIsAccessFault) {
  fetch_at(Priv::M, kUnmappedPa + 0x40);
  expect_m_trap(Cause::kInsnAccessFault, kUnmappedPa + 0x40, kUnmappedPa + 0x40);
}

TEST_F(MmuTest, MachineFetchAbovePhysicalAddressWidthIsAccessFault) {
  fetch_at(Priv::M, 0x0100000080000000ull);  // bit 56: beyond the 56-bit physical address space
  expect_m_trap(Cause::kInsnAccessFault, 0x0100000080000000ull, 0x0100000080000000ull);
}

// ---- TLB maintenance ----

TEST_F(MmuTest, SfenceVmaMakesNewMappingVisible) {
  paging();
  const uint64_t a = map(kVa, kData, pte::kRW);
  poke64(kData, 1);
  poke64(kData + 0x1000, 2);
  h().x[kA1] = kVa;
  program({ld(kA0, kA1, 0), sfence_vma(), ld(kA3, kA1, 0)});
  set_priv(Priv::S);
  step();
  EXPECT_EQ(h().x[kA0], 1u);
  poke64(a, (((kData + 0x1000) >> 12) << 10) | pte::kRW | pte::kV | pte::kAD);
  step(2);
  EXPECT_EQ(h().x[kA3], 2u);
}

TEST_F(MmuTest, SfenceVmaWithAddressMakesNewMappingVisible) {
  paging();
  const uint64_t a = map(kVa, kData, pte::kRW);
  poke64(kData, 1);
  poke64(kData + 0x1000, 2);
  h().x[kA1] = kVa;
  program({ld(kA0, kA1, 0), sfence_vma(kA1, 0), ld(kA3, kA1, 0)});
  set_priv(Priv::S);
  step();
  poke64(a, (((kData + 0x1000) >> 12) << 10) | pte::kRW | pte::kV | pte::kAD);
  step(2);
  EXPECT_EQ(h().x[kA3], 2u);
}

TEST_F(MmuTest, SatpWriteFlushesTlb) {
  paging();
  const uint64_t a = map(kVa, kData, pte::kRW);
  poke64(kData, 1);
  poke64(kData + 0x1000, 2);
  h().x[kA1] = kVa;
  h().x[kA2] = get_csr(csr::kSatp);
  program({ld(kA0, kA1, 0), csrw(csr::kSatp, kA2), ld(kA3, kA1, 0)});
  set_priv(Priv::S);
  step();
  EXPECT_EQ(h().x[kA0], 1u);
  poke64(a, (((kData + 0x1000) >> 12) << 10) | pte::kRW | pte::kV | pte::kAD);
  step(2);
  EXPECT_EQ(h().x[kA3], 2u);
}

TEST_F(MmuTest, SwitchingAddressSpacesThroughSatp) {
  paging();
  map(kVa, kData, pte::kRW);
  const uint64_t satp1 = get_csr(csr::kSatp);
  paging();
  map(kVa, kData + 0x1000, pte::kRW);
  const uint64_t satp2 = get_csr(csr::kSatp);
  poke64(kData, 11);
  poke64(kData + 0x1000, 22);
  h().x[kA1] = kVa;
  h().x[kA2] = satp1;
  h().x[kA4] = satp2;
  program({ld(kA0, kA1, 0), csrw(csr::kSatp, kA2), ld(kA3, kA1, 0), csrw(csr::kSatp, kA4), ld(kA5, kA1, 0)});
  set_priv(Priv::S);
  step(5);
  EXPECT_EQ(h().x[kA0], 22u);
  EXPECT_EQ(h().x[kA3], 11u);
  EXPECT_EQ(h().x[kA5], 22u);
}

TEST_F(MmuTest, PermissionDowngradeAfterSfence) {
  paging();
  const uint64_t a = map(kVa, kData, pte::kRW);
  ASSERT_TRUE(store_ok(Priv::S, kVa, 1));
  poke64(a, ((kData >> 12) << 10) | pte::kR | pte::kV | pte::kAD);
  program({sfence_vma(), sd(kA2, kA1, 0)});
  set_priv(Priv::S);
  step(2);
  expect_m_trap(Cause::kStorePageFault, kVa, kCode + 4);
}

TEST_F(MmuTest, UnmapAfterSfenceFaults) {
  paging();
  const uint64_t a = map(kVa, kData, pte::kRW);
  ASSERT_TRUE(load_ok(Priv::S, kVa));
  poke64(a, 0);
  program({sfence_vma(), ld(kA0, kA1, 0)});
  set_priv(Priv::S);
  step(2);
  expect_m_trap(Cause::kLoadPageFault, kVa, kCode + 4);
}

TEST_F(MmuTest, RemappedCodePageAfterSfence) {
  paging();
  const uint64_t a = map(kVa, kCode + 0x8000, pte::kRX);
  code(kCode + 0x8000, {addi(kA0, kZero, 1), jalr(kZero, kRa, 0)});
  code(kCode + 0x9000, {addi(kA0, kZero, 2), jalr(kZero, kRa, 0)});
  h().x[kA1] = kVa;
  program({jalr(kRa, kA1, 0), sfence_vma(), jalr(kRa, kA1, 0), nop()});
  set_priv(Priv::S);
  step(3);
  EXPECT_EQ(h().x[kA0], 1u);
  EXPECT_EQ(h().pc, kCode + 4);
  poke64(a, (((kCode + 0x9000) >> 12) << 10) | pte::kRX | pte::kV | pte::kAD);
  step(4);
  EXPECT_EQ(h().x[kA0], 2u);
  EXPECT_EQ(h().pc, kCode + 12);
}

// ---- self-modifying code ----

TEST_F(MmuTest, SelfModifyingCodeWithoutFenceI) {
  const uint32_t new_insn = addi(kA0, kZero, 2);
  code(kCode, {addi(kA0, kZero, 1), sw(kA2, kA1, 0), jal(kZero, -8)});
  h().x[kA1] = kCode;
  h().x[kA2] = new_insn;
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kA0], 1u);
  step(2);  // jal back, run the rewritten instruction
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(h().x[kA0], 2u);
}

TEST_F(MmuTest, SelfModifyingCodeWithFenceI) {
  const uint32_t new_insn = addi(kA0, kZero, 3);
  code(kCode, {addi(kA0, kZero, 1), sw(kA2, kA1, 0), fence_i(), jal(kZero, -12)});
  h().x[kA1] = kCode;
  h().x[kA2] = new_insn;
  h().pc = kCode;
  step(5);
  EXPECT_EQ(h().x[kA0], 3u);
}

TEST_F(MmuTest, StoreModifiesNextInstruction) {
  code(kCode, {sw(kA2, kA1, 4), addi(kA0, kZero, 1)});
  h().x[kA1] = kCode;
  h().x[kA2] = addi(kA0, kZero, 9);
  h().pc = kCode;
  step(2);
  EXPECT_EQ(h().x[kA0], 9u);
}

TEST_F(MmuTest, ModifyPreviouslyExecutedCodeOnOtherPage) {
  const uint64_t sub = kCode + 0x2000;
  code(sub, {addi(kA0, kZero, 1), jalr(kZero, kRa, 0)});
  h().x[kA1] = sub;
  h().x[kA2] = addi(kA0, kZero, 5);
  code(kCode, {jal(kRa, 0x2000), sw(kA2, kA1, 0), jal(kRa, 0x2000 - 8), nop()});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA0], 1u);
  step(4);
  EXPECT_EQ(h().x[kA0], 5u);
  EXPECT_EQ(h().pc, kCode + 12);
}

TEST_F(MmuTest, SelfModifyingCodeThroughAmo) {
  const uint64_t sub = kCode + 0x3000;
  code(sub, {addi(kA0, kZero, 1), jalr(kZero, kRa, 0)});
  h().x[kA1] = sub;
  h().x[kA2] = addi(kA0, kZero, 6);
  code(kCode, {jal(kRa, 0x3000), amo_op(amo::kSwap, false, kA3, kA1, kA2), jal(kRa, 0x3000 - 8), nop()});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA0], 1u);
  step(4);
  EXPECT_EQ(h().x[kA0], 6u);
}

TEST_F(MmuTest, SelfModifyingCodeThroughAliasMapping) {
  paging();
  const uint64_t pa = kCode + 0x8000;
  map(kVa, pa, pte::kRX);
  map(kVa + 0x10000, pa, pte::kRW);  // writable alias of the same physical page
  code(pa, {addi(kA0, kZero, 1), jalr(kZero, kRa, 0)});
  h().x[kA1] = kVa;
  h().x[kA4] = kVa + 0x10000;
  h().x[kA2] = addi(kA0, kZero, 8);
  program({jalr(kRa, kA1, 0), sw(kA2, kA4, 0), fence_i(), jalr(kRa, kA1, 0)});
  set_priv(Priv::S);
  step(3);
  EXPECT_EQ(h().x[kA0], 1u);
  step(5);
  EXPECT_EQ(h().x[kA0], 8u);
}

TEST_F(MmuTest, SelfModifyingCompressedCode) {
  // Replace a 32-bit instruction by two 16-bit ones in already-decoded code.
  code(kCode + 0x100, {addi(kA0, kZero, 1), jalr(kZero, kRa, 0)});
  h().x[kA1] = kCode + 0x100;
  h().x[kA2] = 0x0505'4505;  // c.li a0, 1 ; c.addi a0, 1  (0x4505, 0x0505)
  code(kCode, {jal(kRa, 0x100), sw(kA2, kA1, 0), jal(kRa, 0x100 - 8), nop()});
  h().pc = kCode;
  step(3);
  EXPECT_EQ(h().x[kA0], 1u);
  step(5);  // sw, jal, c.li, c.addi, jalr
  EXPECT_EQ(h().x[kA0], 2u);
  EXPECT_EQ(h().pc, kCode + 12);
}

// ---- misaligned accesses across pages ----

TEST_F(MmuTest, MisalignedLoadAcrossPagesToDiscontiguousFrames) {
  paging();
  map(kVa, kData, pte::kRW);
  map(kVa + 0x1000, kData + 0x5000, pte::kRW);
  for (int i = 0; i < 3; ++i) poke8(kData + 0xffd + i, static_cast<uint8_t>(0x11 * (i + 1)));
  for (int i = 0; i < 5; ++i) poke8(kData + 0x5000 + i, static_cast<uint8_t>(0x44 + 0x11 * i));
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kVa + 0xffd, &v));
  EXPECT_EQ(v, 0x8877665544332211ull);
  ASSERT_TRUE(store_ok(Priv::S, kVa + 0xffe, 0x0807060504030201ull));
  EXPECT_EQ(peek16(kData + 0xffe), 0x0201u);
  EXPECT_EQ(peek32(kData + 0x5000), 0x06050403u);
  EXPECT_EQ(peek16(kData + 0x5004), 0x0807u);
}

TEST_F(MmuTest, MisalignedLoadIntoUnmappedSecondPageFaults) {
  paging();
  map(kVa, kData, pte::kRW);
  EXPECT_FALSE(load_ok(Priv::S, kVa + 0xffc));
  expect_m_trap(Cause::kLoadPageFault, kVa + 0x1000, kCode);
}

TEST_F(MmuTest, MisalignedStoreIntoUnmappedSecondPageWritesNothing) {
  paging();
  map(kVa, kData, pte::kRW);
  poke64(kData + 0xff8, 0x1111111111111111ull);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 0xffa, ~0ull));
  expect_m_trap(Cause::kStorePageFault, kVa + 0x1000, kCode);
  EXPECT_EQ(peek64(kData + 0xff8), 0x1111111111111111ull);
}

TEST_F(MmuTest, MisalignedStoreIntoReadOnlySecondPageWritesNothing) {
  paging();
  map(kVa, kData, pte::kRW);
  map(kVa + 0x1000, kData + 0x1000, pte::kR);
  poke64(kData + 0xff8, 0x2222222222222222ull);
  poke64(kData + 0x1000, 0x3333333333333333ull);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 0xffc, ~0ull));
  expect_m_trap(Cause::kStorePageFault, kVa + 0x1000, kCode);
  EXPECT_EQ(peek64(kData + 0xff8), 0x2222222222222222ull);
  EXPECT_EQ(peek64(kData + 0x1000), 0x3333333333333333ull);
}

TEST_F(MmuTest, MisalignedLoadWithUnmappedFirstPageFaultsOnFirst) {
  paging();
  map(kVa + 0x1000, kData, pte::kRW);
  EXPECT_FALSE(load_ok(Priv::S, kVa + 0xffe));
  expect_m_trap(Cause::kLoadPageFault, kVa + 0xffe, kCode);
}

TEST_F(MmuTest, FaultingMisalignedStoreDoesNotDirtySecondPage) {
  // 4.3.1: updates to the D bit must be exact (not speculative). A store whose first part
  // faults writes nothing, so the second page must not become dirty.
  paging();
  map(kVa, kData, pte::kR);
  map(kVa + 0x1000, kData + 0x1000, pte::kRW, 0, /*with_ad=*/false);
  EXPECT_FALSE(store_ok(Priv::S, kVa + 0xffc, ~0ull));
  expect_m_trap(Cause::kStorePageFault, kVa + 0xffc, kCode);
  // Was a bug (fixed): mmu.cpp store_slow probes the second page with translate(..., update_ad =
  // true) before the first part is checked, so D gets set for a store that never happened
  // (setting A speculatively would be allowed; D is not).
  EXPECT_FALSE(pte(kVa + 0x1000) & pte::kD);
}

TEST_F(MmuTest, InstructionStraddlingIntoUnmappedPageFaults) {
  paging();
  const uint64_t pa = kCode + 0x8000;
  map(kVa, pa, pte::kRX);
  const uint32_t insn = addi(kA0, kZero, 1);
  poke16(pa + 0xffe, static_cast<uint16_t>(insn));
  fetch_at(Priv::S, kVa + 0xffe);
  // The fault is on the second half: tval = its address, epc = start of the instruction.
  expect_m_trap(Cause::kInsnPageFault, kVa + 0x1000, kVa + 0xffe);
}

TEST_F(MmuTest, InstructionStraddlingIntoMappedPageExecutes) {
  paging();
  map(kVa, kCode + 0x8000, pte::kRX);
  map(kVa + 0x1000, kCode + 0xa000, pte::kRX);  // discontiguous frames
  const uint32_t insn = addi(kA0, kZero, 0x7b);
  poke16(kCode + 0x8ffe, static_cast<uint16_t>(insn));
  poke16(kCode + 0xa000, static_cast<uint16_t>(insn >> 16));
  fetch_at(Priv::S, kVa + 0xffe);
  EXPECT_EQ(h().x[kA0], 0x7bu);
  EXPECT_EQ(h().pc, kVa + 0x1002);
}

// ---- PMP (3.7) ----

class PmpTest : public MmuTest {
 protected:
  void SetUp() override {
    clear_pmp();
    // Entry 0: the code pages, R/X, so S-mode can run the test programs.
    set_pmp(0, 0x18 | 0x5, napot(kCode, 0x10000));
  }
};

TEST_F(PmpTest, SupervisorAccessOutsideAnyRegionFails) {
  EXPECT_FALSE(load_ok(Priv::S, kData));
  expect_m_trap(Cause::kLoadAccessFault, kData, kCode);
  EXPECT_FALSE(store_ok(Priv::S, kData + 8, 1));
  expect_m_trap(Cause::kStoreAccessFault, kData + 8, kCode);
}

TEST_F(PmpTest, UserAccessOutsideAnyRegionFails) {
  EXPECT_FALSE(load_ok(Priv::U, kData));
  expect_m_trap(Cause::kLoadAccessFault, kData, kCode);
}

TEST_F(PmpTest, NoRegionsAtAllBlocksSupervisorFetch) {
  clear_pmp();
  program({nop()});
  set_priv(Priv::S);
  step();
  expect_m_trap(Cause::kInsnAccessFault, kCode, kCode);
}

TEST_F(PmpTest, MachineModeUnaffectedWithoutMatchingEntry) {
  ASSERT_TRUE(store_ok(Priv::M, kData, 5));
  EXPECT_EQ(peek64(kData), 5u);
}

TEST_F(PmpTest, TorRegionReadOnly) {
  set_pmp(1, 0, kData >> 2);                      // OFF: just the bottom of the TOR range
  set_pmp(2, 0x08 | 0x1, (kData + 0x2000) >> 2);  // TOR, R
  poke64(kData + 0x1ff8, 0x99);
  uint64_t v = 0;
  ASSERT_TRUE(load_ok(Priv::S, kData + 0x1ff8, &v));
  EXPECT_EQ(v, 0x99u);
  EXPECT_FALSE(store_ok(Priv::S, kData, 1));
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
  EXPECT_FALSE(load_ok(Priv::S, kData + 0x2000)) << "TOR top is exclusive";
  expect_m_trap(Cause::kLoadAccessFault, kData + 0x2000, kCode);
  EXPECT_FALSE(load_ok(Priv::S, kData - 8)) << "below the TOR bottom";
  expect_m_trap(Cause::kLoadAccessFault, kData - 8, kCode);
}

TEST_F(PmpTest, TorRegionWithoutExecuteBlocksFetch) {
  clear_pmp();
  set_pmp(0, 0x08 | 0x3, (kCode + 0x5000) >> 2);  // TOR [0, kCode+0x5000): RW
  set_pmp(1, 0x18 | 0x7, napot(kCode, 0x10000));  // the rest of the code RWX (lower priority)
  program({nop()});
  set_priv(Priv::S);
  step();
  expect_m_trap(Cause::kInsnAccessFault, kCode, kCode);
}

TEST_F(PmpTest, NapotRegionBounds) {
  set_pmp(1, 0x18 | 0x3, napot(kData + 0x4000, 0x4000));  // 16 KiB, RW
  ASSERT_TRUE(store_ok(Priv::S, kData + 0x4000, 1));
  ASSERT_TRUE(store_ok(Priv::S, kData + 0x7ff8, 2));
  EXPECT_FALSE(store_ok(Priv::S, kData + 0x8000, 3));
  expect_m_trap(Cause::kStoreAccessFault, kData + 0x8000, kCode);
  EXPECT_FALSE(load_ok(Priv::S, kData + 0x3ff8));
  expect_m_trap(Cause::kLoadAccessFault, kData + 0x3ff8, kCode);
}

TEST_F(PmpTest, Na4RegionAndPartialMatch) {
  set_pmp(1, 0x10 | 0x1, (kData + 8) >> 2);  // NA4 at kData+8, R
  poke32(kData + 8, 0xcafe);
  h().x[kA1] = kData + 8;
  run_in(Priv::S, {lwu(kA0, kA1, 0)});
  EXPECT_EQ(h().pc, kCode + 4);
  EXPECT_EQ(h().x[kA0], 0xcafeu);
  // An aligned doubleword that only partly lies in the matching entry fails (3.7.1.3).
  EXPECT_FALSE(load_ok(Priv::S, kData + 8));
  expect_m_trap(Cause::kLoadAccessFault, kData + 8, kCode);
}

TEST_F(PmpTest, LowestNumberedMatchingEntryWins) {
  set_pmp(1, 0x18 | 0x1, napot(kData, 0x1000));        // R only
  set_pmp(2, 0x18 | 0x7, napot(kRamBase, kRamSize));   // everything RWX
  ASSERT_TRUE(load_ok(Priv::S, kData));
  EXPECT_FALSE(store_ok(Priv::S, kData, 1));
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
  ASSERT_TRUE(store_ok(Priv::S, kData + 0x1000, 1));
}

TEST_F(PmpTest, UnlockedEntryDoesNotRestrictMachineMode) {
  set_pmp(1, 0x18 | 0x1, napot(kData, 0x1000));  // R only, not locked
  ASSERT_TRUE(store_ok(Priv::M, kData, 7));
  EXPECT_EQ(peek64(kData), 7u);
}

TEST_F(PmpTest, LockedEntryRestrictsMachineMode) {
  set_pmp(1, 0x80 | 0x18 | 0x1, napot(kData, 0x1000));  // L, NAPOT, R
  uint64_t v = 0;
  poke64(kData, 4);
  ASSERT_TRUE(load_ok(Priv::M, kData, &v));
  EXPECT_EQ(v, 4u);
  EXPECT_FALSE(store_ok(Priv::M, kData, 7));
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
  EXPECT_EQ(peek64(kData), 4u);
}

TEST_F(PmpTest, LockedEntryCannotBeReconfigured) {
  set_pmp(1, 0x80 | 0x18 | 0x1, napot(kData, 0x1000));
  const uint64_t cfg = get_csr(csr::kPmpcfg0);
  set_csr(csr::kPmpcfg0, cfg | (0x7ull << 8));
  EXPECT_EQ((get_csr(csr::kPmpcfg0) >> 8) & 0xff, 0x99u);
  set_csr(csr::kPmpaddr0 + 1, 0);
  EXPECT_EQ(get_csr(csr::kPmpaddr0 + 1), napot(kData, 0x1000));
}

TEST_F(PmpTest, PermissionRevokedAfterPmpWrite) {
  set_pmp(1, 0x18 | 0x3, napot(kData, 0x1000));
  ASSERT_TRUE(store_ok(Priv::S, kData, 1));  // may be cached in the TLB now
  set_pmp(1, 0x18 | 0x1, napot(kData, 0x1000));
  EXPECT_FALSE(store_ok(Priv::S, kData, 2));
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
  EXPECT_EQ(peek64(kData), 1u);
}

TEST_F(PmpTest, PageTableWalkIsCheckedByPmp) {
  // The walk's implicit reads are checked as S-mode accesses: page tables in a region S
  // cannot read give an access fault for the original access type.
  set_pmp(1, 0x18 | 0x3, napot(kData, 0x10000));
  set_pmp(2, 0x18, napot(kPtPool, 0x200000));  // no permissions
  new_address_space();
  map(kVa, kData, pte::kRW);
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | (1ull << kMppShift) | kMprv);
  EXPECT_FALSE(load_ok(Priv::M, kVa));
  expect_m_trap(Cause::kLoadAccessFault, kVa, kCode);
}

TEST_F(PmpTest, AccessedBitUpdateNeedsPmpWritePermission) {
  // 4.3.2 step 7: the A/D update is a store to the PTE; if it violates a PMP check, an
  // access fault for the original access type is raised (and the PTE stays unchanged).
  set_pmp(1, 0x18 | 0x3, napot(kData, 0x10000));
  set_pmp(2, 0x18 | 0x1, napot(kPtPool, 0x200000));  // page tables readable, not writable
  new_address_space();
  map(kVa, kData, pte::kRW);                         // A/D preset: no update needed
  map(kVa + 0x1000, kData + 0x1000, pte::kRW, 0, /*with_ad=*/false);
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | (1ull << kMppShift) | kMprv);
  ASSERT_TRUE(load_ok(Priv::M, kVa)) << "walking read-only page tables is fine";
  EXPECT_FALSE(load_ok(Priv::M, kVa + 0x1000));
  // Was a bug (fixed): mmu.cpp translate sets A/D with a compare-exchange without checking that PMP
  // allows S-mode writes to the PTE.
  expect_m_trap(Cause::kLoadAccessFault, kVa + 0x1000, kCode);
  EXPECT_FALSE(pte(kVa + 0x1000) & pte::kA);
}

TEST_F(PmpTest, MprvUsesMppForPmpChecks) {
  set_pmp(1, 0x18 | 0x1, napot(kData, 0x1000));  // R for S/U
  set_csr(csr::kMstatus, (get_csr(csr::kMstatus) & ~kMpp) | (1ull << kMppShift) | kMprv);
  EXPECT_FALSE(store_ok(Priv::M, kData, 1));
  expect_m_trap(Cause::kStoreAccessFault, kData, kCode);
}

TEST_F(PmpTest, MisalignedStoreIntoPmpDeniedSecondPageWritesNothing) {
  set_pmp(1, 0x18 | 0x3, napot(kData, 0x1000));  // first page RW, second page: no entry
  poke64(kData + 0xff8, 0x4444444444444444ull);
  EXPECT_FALSE(store_ok(Priv::S, kData + 0xffc, ~0ull));
  EXPECT_TRUE(in_m_trap());
  EXPECT_EQ(mcause(), cause_of(Cause::kStoreAccessFault));
  EXPECT_EQ(mtval(), kData + 0x1000);
  // Was a bug (fixed): mmu.cpp store_slow probes only the translation of the second page, not its
  // PMP/physical check, so the first page's bytes are already written when the second part
  // faults. A faulting store must not have partially updated memory visible to the fault handler
  // in this emulator (see MisalignedStoreIntoUnmappedSecondPageWritesNothing).
  EXPECT_EQ(peek64(kData + 0xff8), 0x4444444444444444ull);
}

}  // namespace
}  // namespace vigil::riscv::test
