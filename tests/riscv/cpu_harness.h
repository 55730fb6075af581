// Test harness for the RISC-V hart: guest RAM over a host buffer at 0x80000000, a fake
// Platform (MMIO log, SBI log, controllable mtime), instruction encoders, page-table
// builders and helpers to run a few instructions and inspect traps.
//
// Expected values in the tests come from the RISC-V specifications (unprivileged 20191213,
// privileged 20211203), never from the implementation.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

#include "riscv/csr.h"
#include "riscv/hart.h"
#include "riscv/insn.h"

namespace vigil::riscv {

// Reaches the hart's private state (hart.h: `friend struct HartTestAccess;`).
struct HartTestAccess {
  static void select_tlb(Hart& h) { h.select_tlb(); }
  static void flush_tlb(Hart& h) { h.flush_tlb(); }
  static uint64_t& mstatus(Hart& h) { return h.m_mstatus; }
  static uint64_t& mcause(Hart& h) { return h.m_mcause; }
  static uint64_t& mepc(Hart& h) { return h.m_mepc; }
  static uint64_t& mtval(Hart& h) { return h.m_mtval; }
  static uint64_t& scause(Hart& h) { return h.m_scause; }
  static uint64_t& sepc(Hart& h) { return h.m_sepc; }
  static uint64_t& stval(Hart& h) { return h.m_stval; }
  static uint64_t& medeleg(Hart& h) { return h.m_medeleg; }
  static uint64_t& mideleg(Hart& h) { return h.m_mideleg; }
  static uint64_t& mie(Hart& h) { return h.m_mie; }
};

namespace test {

// ---------------------------------------------------------------------------------------
// Register numbers (ABI names).
inline constexpr uint32_t kZero = 0, kRa = 1, kSp = 2, kGp = 3, kTp = 4, kT0 = 5, kT1 = 6, kT2 = 7;
inline constexpr uint32_t kS0 = 8, kS1 = 9, kA0 = 10, kA1 = 11, kA2 = 12, kA3 = 13, kA4 = 14, kA5 = 15;
inline constexpr uint32_t kA6 = 16, kA7 = 17, kS2 = 18, kT3 = 28, kT4 = 29, kT5 = 30, kT6 = 31;

// ---------------------------------------------------------------------------------------
// 32-bit encoders (unprivileged spec 2.2-2.3, figure 2.3 and the opcode map, table 24.1).
namespace enc {
constexpr uint32_t r_type(uint32_t f7, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t i_type(int32_t imm, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return ((static_cast<uint32_t>(imm) & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t s_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t op) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (((u >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 31) << 7) | op;
}
constexpr uint32_t b_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
         (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
// imm20 is the 20-bit upper immediate (bits 31:12 of the result).
constexpr uint32_t u_type(uint32_t imm20, uint32_t rd, uint32_t op) { return ((imm20 & 0xfffff) << 12) | (rd << 7) | op; }
constexpr uint32_t j_type(int32_t imm, uint32_t rd) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return (((u >> 20) & 1) << 31) | (((u >> 1) & 0x3ff) << 21) | (((u >> 11) & 1) << 20) | (((u >> 12) & 0xff) << 12) |
         (rd << 7) | 0x6f;
}

constexpr uint32_t kOpLoad = 0x03, kOpMiscMem = 0x0f, kOpImm = 0x13, kOpAuipc = 0x17, kOpImm32 = 0x1b;
constexpr uint32_t kOpStore = 0x23, kOpAmo = 0x2f, kOpOp = 0x33, kOpLui = 0x37, kOpOp32 = 0x3b;
constexpr uint32_t kOpJalr = 0x67, kOpSystem = 0x73;

// RV64I
constexpr uint32_t lui(uint32_t rd, uint32_t imm20) { return u_type(imm20, rd, kOpLui); }
constexpr uint32_t auipc(uint32_t rd, uint32_t imm20) { return u_type(imm20, rd, kOpAuipc); }
constexpr uint32_t jal(uint32_t rd, int32_t off) { return j_type(off, rd); }
constexpr uint32_t jalr(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 0, rd, kOpJalr); }
constexpr uint32_t beq(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 0); }
constexpr uint32_t bne(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 1); }
constexpr uint32_t blt(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 4); }
constexpr uint32_t bge(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 5); }
constexpr uint32_t bltu(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 6); }
constexpr uint32_t bgeu(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 7); }
constexpr uint32_t lb(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 0, rd, kOpLoad); }
constexpr uint32_t lh(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 1, rd, kOpLoad); }
constexpr uint32_t lw(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 2, rd, kOpLoad); }
constexpr uint32_t ld(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 3, rd, kOpLoad); }
constexpr uint32_t lbu(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 4, rd, kOpLoad); }
constexpr uint32_t lhu(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 5, rd, kOpLoad); }
constexpr uint32_t lwu(uint32_t rd, uint32_t rs1, int32_t off) { return i_type(off, rs1, 6, rd, kOpLoad); }
constexpr uint32_t sb(uint32_t rs2, uint32_t rs1, int32_t off) { return s_type(off, rs2, rs1, 0, kOpStore); }
constexpr uint32_t sh(uint32_t rs2, uint32_t rs1, int32_t off) { return s_type(off, rs2, rs1, 1, kOpStore); }
constexpr uint32_t sw(uint32_t rs2, uint32_t rs1, int32_t off) { return s_type(off, rs2, rs1, 2, kOpStore); }
constexpr uint32_t sd(uint32_t rs2, uint32_t rs1, int32_t off) { return s_type(off, rs2, rs1, 3, kOpStore); }
constexpr uint32_t addi(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 0, rd, kOpImm); }
constexpr uint32_t slti(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 2, rd, kOpImm); }
constexpr uint32_t sltiu(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 3, rd, kOpImm); }
constexpr uint32_t xori(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 4, rd, kOpImm); }
constexpr uint32_t ori(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 6, rd, kOpImm); }
constexpr uint32_t andi(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 7, rd, kOpImm); }
constexpr uint32_t slli(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh & 63), rs1, 1, rd, kOpImm); }
constexpr uint32_t srli(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh & 63), rs1, 5, rd, kOpImm); }
constexpr uint32_t srai(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(0x400 | (sh & 63)), rs1, 5, rd, kOpImm); }
constexpr uint32_t addiw(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 0, rd, kOpImm32); }
constexpr uint32_t slliw(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh & 31), rs1, 1, rd, kOpImm32); }
constexpr uint32_t srliw(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh & 31), rs1, 5, rd, kOpImm32); }
constexpr uint32_t sraiw(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(0x400 | (sh & 31)), rs1, 5, rd, kOpImm32); }
constexpr uint32_t add(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 0, rd, kOpOp); }
constexpr uint32_t sub(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x20, rs2, rs1, 0, rd, kOpOp); }
constexpr uint32_t sll(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 1, rd, kOpOp); }
constexpr uint32_t slt(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 2, rd, kOpOp); }
constexpr uint32_t sltu(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 3, rd, kOpOp); }
constexpr uint32_t xor_(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 4, rd, kOpOp); }
constexpr uint32_t srl(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 5, rd, kOpOp); }
constexpr uint32_t sra(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x20, rs2, rs1, 5, rd, kOpOp); }
constexpr uint32_t or_(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 6, rd, kOpOp); }
constexpr uint32_t and_(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 7, rd, kOpOp); }
constexpr uint32_t addw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 0, rd, kOpOp32); }
constexpr uint32_t subw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x20, rs2, rs1, 0, rd, kOpOp32); }
constexpr uint32_t sllw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 1, rd, kOpOp32); }
constexpr uint32_t srlw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 5, rd, kOpOp32); }
constexpr uint32_t sraw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x20, rs2, rs1, 5, rd, kOpOp32); }
// FENCE pred/succ: bits I=8, O=4, R=2, W=1.
constexpr uint32_t fence(uint32_t pred = 0xf, uint32_t succ = 0xf, uint32_t fm = 0) {
  return (fm << 28) | (pred << 24) | (succ << 20) | kOpMiscMem;
}
constexpr uint32_t fence_i() { return 0x0000100f; }
constexpr uint32_t nop() { return addi(0, 0, 0); }
// `j .`: an infinite loop (used as a trap landing pad).
constexpr uint32_t self_loop() { return jal(0, 0); }

// RV64M (funct7 = 1)
constexpr uint32_t mul(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 0, rd, kOpOp); }
constexpr uint32_t mulh(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 1, rd, kOpOp); }
constexpr uint32_t mulhsu(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 2, rd, kOpOp); }
constexpr uint32_t mulhu(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 3, rd, kOpOp); }
constexpr uint32_t div(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 4, rd, kOpOp); }
constexpr uint32_t divu(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 5, rd, kOpOp); }
constexpr uint32_t rem(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 6, rd, kOpOp); }
constexpr uint32_t remu(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 7, rd, kOpOp); }
constexpr uint32_t mulw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 0, rd, kOpOp32); }
constexpr uint32_t divw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 4, rd, kOpOp32); }
constexpr uint32_t divuw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 5, rd, kOpOp32); }
constexpr uint32_t remw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 6, rd, kOpOp32); }
constexpr uint32_t remuw(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 7, rd, kOpOp32); }

// RV64A (figure 8.1/8.2): funct5 | aq | rl | rs2 | rs1 | width | rd | AMO.
namespace amo {
constexpr uint32_t kAdd = 0x00, kSwap = 0x01, kLr = 0x02, kSc = 0x03, kXor = 0x04, kOr = 0x08, kAnd = 0x0c;
constexpr uint32_t kMin = 0x10, kMax = 0x14, kMinu = 0x18, kMaxu = 0x1c;
}  // namespace amo
constexpr uint32_t amo_op(uint32_t funct5, bool dword, uint32_t rd, uint32_t rs1, uint32_t rs2, bool aq = false,
                          bool rl = false) {
  return r_type((funct5 << 2) | (aq ? 2u : 0u) | (rl ? 1u : 0u), rs2, rs1, dword ? 3 : 2, rd, kOpAmo);
}
constexpr uint32_t lr_w(uint32_t rd, uint32_t rs1) { return amo_op(amo::kLr, false, rd, rs1, 0); }
constexpr uint32_t lr_d(uint32_t rd, uint32_t rs1) { return amo_op(amo::kLr, true, rd, rs1, 0); }
constexpr uint32_t sc_w(uint32_t rd, uint32_t rs1, uint32_t rs2) { return amo_op(amo::kSc, false, rd, rs1, rs2); }
constexpr uint32_t sc_d(uint32_t rd, uint32_t rs1, uint32_t rs2) { return amo_op(amo::kSc, true, rd, rs1, rs2); }

// Zicsr (funct3 1..3 register, 5..7 immediate)
constexpr uint32_t csr_op(uint32_t f3, uint32_t rd, uint32_t csr, uint32_t rs1_or_uimm) {
  return (csr << 20) | (rs1_or_uimm << 15) | (f3 << 12) | (rd << 7) | kOpSystem;
}
constexpr uint32_t csrrw(uint32_t rd, uint32_t csr, uint32_t rs1) { return csr_op(1, rd, csr, rs1); }
constexpr uint32_t csrrs(uint32_t rd, uint32_t csr, uint32_t rs1) { return csr_op(2, rd, csr, rs1); }
constexpr uint32_t csrrc(uint32_t rd, uint32_t csr, uint32_t rs1) { return csr_op(3, rd, csr, rs1); }
constexpr uint32_t csrrwi(uint32_t rd, uint32_t csr, uint32_t uimm) { return csr_op(5, rd, csr, uimm); }
constexpr uint32_t csrrsi(uint32_t rd, uint32_t csr, uint32_t uimm) { return csr_op(6, rd, csr, uimm); }
constexpr uint32_t csrrci(uint32_t rd, uint32_t csr, uint32_t uimm) { return csr_op(7, rd, csr, uimm); }
constexpr uint32_t csrr(uint32_t rd, uint32_t csr) { return csrrs(rd, csr, 0); }
constexpr uint32_t csrw(uint32_t csr, uint32_t rs1) { return csrrw(0, csr, rs1); }

// Privileged (privileged spec table 9.1 / chapter 9 listings)
constexpr uint32_t ecall() { return 0x00000073; }
constexpr uint32_t ebreak() { return 0x00100073; }
constexpr uint32_t sret() { return 0x10200073; }
constexpr uint32_t mret() { return 0x30200073; }
constexpr uint32_t wfi() { return 0x10500073; }
constexpr uint32_t sfence_vma(uint32_t rs1 = 0, uint32_t rs2 = 0) { return r_type(0x09, rs2, rs1, 0, 0, kOpSystem); }
}  // namespace enc

// ---------------------------------------------------------------------------------------
// The fake board.
class FakePlatform : public Platform {
 public:
  static constexpr uint64_t kMmioBase = 0x10000000, kMmioSize = 0x1000;

  struct MmioAccess {
    bool write;
    uint64_t pa;
    unsigned size;
    uint64_t value;
  };
  struct Unhandled {
    uint64_t cause;
    uint64_t tval;
  };

  bool mmio_read(Hart&, uint64_t pa, unsigned size, uint64_t& value) override {
    if (pa < kMmioBase || pa + size > kMmioBase + kMmioSize) return false;
    value = mmio_value;
    mmio.push_back({false, pa, size, value});
    return true;
  }
  bool mmio_write(Hart&, uint64_t pa, unsigned size, uint64_t value) override {
    if (pa < kMmioBase || pa + size > kMmioBase + kMmioSize) return false;
    mmio.push_back({true, pa, size, value});
    return true;
  }
  uint64_t mtime() override { return time; }
  bool sbi_ecall(Hart& hart) override {
    sbi_calls.push_back(hart.x[17]);  // a7 = extension id
    if (!sbi_handles) return false;
    hart.x[10] = 0;                   // a0 = SBI_SUCCESS
    hart.x[11] = sbi_a1;              // a1 = value
    return true;
  }
  void unhandled_machine_trap(Hart&, uint64_t cause, uint64_t tval) override { unhandled.push_back({cause, tval}); }

  uint64_t time = 0;
  uint64_t mmio_value = 0;
  bool sbi_handles = true;
  uint64_t sbi_a1 = 0x5b1;
  std::vector<MmioAccess> mmio;
  std::vector<uint64_t> sbi_calls;
  std::vector<Unhandled> unhandled;
};

// ---------------------------------------------------------------------------------------
// PTE bits (privileged spec 4.3.1, figure 4.21)
namespace pte {
inline constexpr uint64_t kV = 1, kR = 2, kW = 4, kX = 8, kU = 16, kG = 32, kA = 64, kD = 128;
inline constexpr uint64_t kRW = kR | kW, kRX = kR | kX, kRWX = kR | kW | kX;
inline constexpr uint64_t kAD = kA | kD;
}  // namespace pte

class CpuTest : public ::testing::Test {
 public:
  // Physical layout of the test machine.
  static constexpr uint64_t kRamBase = 0x80000000, kRamSize = 8ull << 20;
  static constexpr uint64_t kCode = 0x80000000;     // code pages 0..15
  static constexpr uint64_t kMTrap = 0x80010000;    // M-mode trap vector page (all `j .`)
  static constexpr uint64_t kSTrap = 0x80011000;    // S-mode trap vector page (all `j .`)
  static constexpr uint64_t kData = 0x80100000;     // data pages
  static constexpr uint64_t kPtPool = 0x80200000;   // page-table pool (bump allocated)
  static constexpr uint64_t kPtPoolEnd = 0x80400000;
  static constexpr uint64_t kBig = 0x80400000;      // 2 MiB-aligned target for megapages
  static constexpr uint64_t kMmio = FakePlatform::kMmioBase;
  static constexpr uint64_t kUnmappedPa = 0x40000000;  // neither RAM nor MMIO

  using A = HartTestAccess;

  CpuTest()
      : ram(kRamSize, 0), mem(ram.data(), kRamBase, kRamSize), hart(std::make_unique<Hart>(0, mem, platform)) {
    for (uint64_t a = kMTrap; a < kMTrap + kPageSize; a += 4) poke32(a, enc::self_loop());
    for (uint64_t a = kSTrap; a < kSTrap + kPageSize; a += 4) poke32(a, enc::self_loop());
    reset_hart();
  }

  // Resets the hart and puts every CSR whose reset value the spec leaves unspecified
  // (privileged 3.4) into a known state: M-mode at kCode, nothing delegated or enabled,
  // counters closed, FS off, bare translation, trap vectors at kMTrap/kSTrap.
  void reset_hart() {
    h().reset(kCode);
    set_csr(csr::kMstatus, 0);
    set_csr(csr::kMedeleg, 0);
    set_csr(csr::kMideleg, 0);
    set_csr(csr::kMie, 0);
    set_csr(csr::kMip, 0);
    set_csr(csr::kSatp, 0);
    set_csr(csr::kMcounteren, 0);
    set_csr(csr::kScounteren, 0);
    set_csr(csr::kMtvec, kMTrap);
    set_csr(csr::kStvec, kSTrap);
    // PMP entry 15: all of memory RWX for S/U (lowest priority, so tests can add entries 0..14).
    set_csr(csr::kPmpaddr0 + 15, (1ull << 54) - 1);
    set_csr(csr::kPmpcfg0 + 2, 0x1full << 56);
    pt_next = kPtPool;
  }

  Hart& h() { return *hart; }

  // ---- memory (host side; every write tells GuestMemory so decoded code is dropped) ----
  uint8_t* host(uint64_t pa) {
    EXPECT_TRUE(mem.contains(pa, 1)) << std::hex << pa;
    return mem.ptr(pa);
  }
  void poke(uint64_t pa, const void* src, size_t n) {
    std::memcpy(host(pa), src, n);
    mem.note_write(pa, n);
  }
  void poke8(uint64_t pa, uint8_t v) { poke(pa, &v, 1); }
  void poke16(uint64_t pa, uint16_t v) { poke(pa, &v, 2); }
  void poke32(uint64_t pa, uint32_t v) { poke(pa, &v, 4); }
  void poke64(uint64_t pa, uint64_t v) { poke(pa, &v, 8); }
  uint8_t peek8(uint64_t pa) { return *host(pa); }
  uint16_t peek16(uint64_t pa) { uint16_t v; std::memcpy(&v, host(pa), 2); return v; }
  uint32_t peek32(uint64_t pa) { uint32_t v; std::memcpy(&v, host(pa), 4); return v; }
  uint64_t peek64(uint64_t pa) { uint64_t v; std::memcpy(&v, host(pa), 8); return v; }

  // Places 32-bit instructions at `pa` (consecutive words); returns the address after them.
  uint64_t code(uint64_t pa, std::initializer_list<uint32_t> insns) {
    for (uint32_t i : insns) {
      poke32(pa, i);
      pa += 4;
    }
    return pa;
  }
  // Places instructions at kCode and sets pc there.
  void program(std::initializer_list<uint32_t> insns) {
    code(kCode, insns);
    h().pc = kCode;
  }

  // ---- running ----
  // Runs `n` instructions, one run() slice each (so pending interrupts are checked before
  // every instruction, as the hardware would). Stops early if run() reports WFI or stopped.
  ExitReason step(unsigned n = 1) {
    ExitReason r = ExitReason::kSliceDone;
    for (unsigned i = 0; i < n; ++i) {
      r = h().run(1);
      if (r != ExitReason::kSliceDone) break;
    }
    return r;
  }
  // Places one instruction at kCode, runs it in the current privilege mode.
  void exec(uint32_t insn) {
    program({insn});
    step(1);
  }

  // ---- privilege and CSRs ----
  // Switches privilege directly (as if by xRET) and re-selects the hart's TLB view.
  void set_priv(Priv p) {
    h().priv = p;
    A::select_tlb(h());
    h().invalidate_fetch();
  }
  // CSR access with M-mode rights regardless of the current mode.
  void set_csr(unsigned num, uint64_t v) {
    const Priv p = h().priv;
    h().priv = Priv::M;
    EXPECT_TRUE(h().csr_write(num, v)) << "csr " << std::hex << num;
    set_priv(p);
  }
  uint64_t get_csr(unsigned num) {
    const Priv p = h().priv;
    h().priv = Priv::M;
    uint64_t v = 0;
    EXPECT_TRUE(h().csr_read(num, v)) << "csr " << std::hex << num;
    set_priv(p);
    return v;
  }
  void set_mstatus_bits(uint64_t bits) { set_csr(csr::kMstatus, get_csr(csr::kMstatus) | bits); }
  void clear_mstatus_bits(uint64_t bits) { set_csr(csr::kMstatus, get_csr(csr::kMstatus) & ~bits); }
  uint64_t mstatus() { return A::mstatus(h()); }
  uint64_t mcause() { return A::mcause(h()); }
  uint64_t mepc() { return A::mepc(h()); }
  uint64_t mtval() { return A::mtval(h()); }
  uint64_t scause() { return A::scause(h()); }
  uint64_t sepc() { return A::sepc(h()); }
  uint64_t stval() { return A::stval(h()); }

  bool in_m_trap() const { return hart->pc >= kMTrap && hart->pc < kMTrap + kPageSize; }
  bool in_s_trap() const { return hart->pc >= kSTrap && hart->pc < kSTrap + kPageSize; }

  // Expects the last step to have trapped into M-mode with this cause/tval/epc.
  void expect_m_trap(Cause cause, uint64_t tval, uint64_t epc) {
    EXPECT_EQ(h().priv, Priv::M);
    EXPECT_TRUE(in_m_trap()) << "pc=" << std::hex << h().pc;
    EXPECT_EQ(mcause(), static_cast<uint64_t>(cause));
    EXPECT_EQ(mtval(), tval) << std::hex << "mtval=" << mtval() << " expected " << tval;
    EXPECT_EQ(mepc(), epc) << std::hex << "mepc=" << mepc() << " expected " << epc;
  }
  void expect_s_trap(Cause cause, uint64_t tval, uint64_t epc) {
    EXPECT_EQ(h().priv, Priv::S);
    EXPECT_TRUE(in_s_trap()) << "pc=" << std::hex << h().pc;
    EXPECT_EQ(scause(), static_cast<uint64_t>(cause));
    EXPECT_EQ(stval(), tval) << std::hex << "stval=" << stval() << " expected " << tval;
    EXPECT_EQ(sepc(), epc) << std::hex << "sepc=" << sepc() << " expected " << epc;
  }

  // ---- page tables (privileged spec 4.3.2 / 4.4 / 4.5) ----
  uint64_t alloc_page() {
    EXPECT_LT(pt_next, kPtPoolEnd);
    const uint64_t pa = pt_next;
    pt_next += kPageSize;
    std::memset(host(pa), 0, kPageSize);
    return pa;
  }
  // Starts a fresh address space: mode is satp::kModeSv39 or kModeSv48. Writes satp.
  void new_address_space(uint64_t mode = satp::kModeSv39) {
    pt_mode = mode;
    pt_root = alloc_page();
    set_csr(csr::kSatp, (mode << satp::kModeShift) | (pt_root >> kPageShift));
  }
  unsigned pt_levels() const { return pt_mode == satp::kModeSv48 ? 4 : 3; }
  // Address of the PTE for `va` at `level` (0 = 4 KiB leaf level), creating intermediate
  // tables as needed.
  uint64_t pte_addr(uint64_t va, unsigned level) {
    uint64_t table = pt_root;
    for (int l = static_cast<int>(pt_levels()) - 1; l > static_cast<int>(level); --l) {
      const uint64_t a = table + ((va >> (12 + 9 * l)) & 511) * 8;
      uint64_t e = peek64(a);
      if (!(e & pte::kV)) {
        const uint64_t next = alloc_page();
        e = ((next >> 12) << 10) | pte::kV;
        poke64(a, e);
      }
      table = ((e >> 10) & ((1ull << 44) - 1)) << 12;
    }
    return table + ((va >> (12 + 9 * level)) & 511) * 8;
  }
  // Maps `va` to `pa` with a leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB, 3: 512 GiB).
  // `flags` are the PTE bits besides V (A and D are included unless `with_ad` is false).
  uint64_t map(uint64_t va, uint64_t pa, uint64_t flags, unsigned level = 0, bool with_ad = true) {
    const uint64_t a = pte_addr(va, level);
    poke64(a, ((pa >> 12) << 10) | flags | pte::kV | (with_ad ? pte::kAD : 0));
    return a;
  }
  // Identity-maps the code, trap-vector pages (and the data area) for execution in S (or U) mode.
  void map_code(uint64_t extra_flags = 0) {
    for (uint64_t a = kCode; a < kCode + 16 * kPageSize; a += kPageSize) map(a, a, pte::kRWX | extra_flags);
    map(kMTrap, kMTrap, pte::kRX);
    map(kSTrap, kSTrap, pte::kRX);
  }

  // ---- PMP ----
  void set_pmp(unsigned i, uint8_t cfg, uint64_t addr) {
    set_csr(csr::kPmpaddr0 + i, addr);
    const unsigned reg = csr::kPmpcfg0 + (i / 8) * 2;
    const unsigned shift = (i % 8) * 8;
    uint64_t v = get_csr(reg);
    v = (v & ~(0xffull << shift)) | (uint64_t{cfg} << shift);
    set_csr(reg, v);
  }
  void clear_pmp() {
    for (unsigned i = 0; i < 16; ++i) set_pmp(i, 0, 0);
  }
  // NAPOT pmpaddr for a naturally aligned power-of-two region of `size` >= 8 bytes.
  static uint64_t napot(uint64_t base, uint64_t size) { return (base >> 2) | ((size >> 3) - 1); }

  FakePlatform platform;
  std::vector<uint8_t> ram;
  GuestMemory mem;
  std::unique_ptr<Hart> hart;
  uint64_t pt_next = kPtPool;
  uint64_t pt_root = 0;
  uint64_t pt_mode = satp::kModeSv39;
};

inline constexpr uint64_t kIrq = kInterruptBit;
inline constexpr uint64_t bit(unsigned n) { return 1ull << n; }
inline uint64_t cause_of(Cause c) { return static_cast<uint64_t>(c); }

}  // namespace test
}  // namespace vigil::riscv
