// Binary translation against the interpreter: the same programs run on a hart with the JIT
// and on one without; every register, the data memory, the retired-instruction count and
// any trap must come out the same (dynarmic-style random-instruction differential tests).
// A few hand-written programs check results against values worked out from the spec.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "cpu_harness.h"
#include "riscv/jit.h"

namespace vigil::riscv {
namespace {

using namespace test;
using namespace test::enc;

constexpr uint64_t kRamBase = 0x80000000, kRamSize = 4ull << 20;
constexpr uint64_t kCodePa = kRamBase;             // pages 0..3: code
constexpr uint64_t kFuncPa = kRamBase + 0x3000;    // a function in another page
constexpr uint64_t kDataPa = kRamBase + 0x100000;  // 64 KiB of data
constexpr uint64_t kDataSize = 0x10000;
constexpr uint64_t kTrapPa = kRamBase + 0x200000;  // trap vector: WFI (ends the run)
constexpr uint32_t kData = kS0, kCount = kS1;      // registers the generator never writes

// One machine: RAM, a fake board, one hart, with or without translation.
struct Rig {
  explicit Rig(bool jit) : ram(kRamSize, 0), mem(ram.data(), kRamBase, kRamSize) {
    hart = std::make_unique<Hart>(0, mem, platform);
    hart->jit_enabled = jit;
    hart->reset(kCodePa);
    // PMP: everything RWX for S/U as well (entry 15, NAPOT over all addresses).
    write_csr(csr::kPmpaddr0 + 15, (1ull << 54) - 1);
    write_csr(csr::kPmpcfg0 + 2, 0x1full << 56);
    write_csr(csr::kMtvec, kTrapPa);
    poke32(kTrapPa, wfi());
    platform.mmio_value = 0x1122334455667788ull;
  }
  void write_csr(unsigned num, uint64_t v) { EXPECT_TRUE(hart->csr_write(num, v)) << std::hex << num; }
  uint64_t read_csr(unsigned num) {
    uint64_t v = 0;
    EXPECT_TRUE(hart->csr_read_as_machine(num, v)) << std::hex << num;
    return v;
  }
  void poke(uint64_t pa, const void* src, size_t n) {
    std::memcpy(mem.ptr(pa), src, n);
    mem.note_write(pa, n);
  }
  void poke32(uint64_t pa, uint32_t v) { poke(pa, &v, 4); }
  void code(uint64_t pa, const std::vector<uint32_t>& insns) {
    for (uint32_t i : insns) {
      poke32(pa, i);
      pa += 4;
    }
  }
  // Runs slices of varying size until the hart executes WFI (or `max_slices` pass).
  void run_to_wfi(std::mt19937_64& rng, int max_slices = 100000) {
    for (int i = 0; i < max_slices; ++i) {
      if (hart->run(1 + rng() % 700) == ExitReason::kWfi) return;
    }
    ADD_FAILURE() << "no WFI reached, pc=" << std::hex << hart->pc;
  }

  std::vector<uint8_t> ram;
  GuestMemory mem;
  FakePlatform platform;
  std::unique_ptr<Hart> hart;
};

void expect_same(Rig& jit, Rig& interp, const char* what) {
  for (unsigned r = 0; r < 32; ++r) {
    EXPECT_EQ(jit.hart->x[r], interp.hart->x[r]) << what << ": x" << r;
  }
  EXPECT_EQ(jit.hart->pc, interp.hart->pc) << what;
  EXPECT_EQ(jit.hart->priv, interp.hart->priv) << what;
  EXPECT_EQ(jit.read_csr(csr::kMinstret), interp.read_csr(csr::kMinstret)) << what << ": minstret";
  EXPECT_EQ(jit.read_csr(csr::kMcause), interp.read_csr(csr::kMcause)) << what << ": mcause";
  EXPECT_EQ(jit.read_csr(csr::kMepc), interp.read_csr(csr::kMepc)) << what << ": mepc";
  EXPECT_EQ(jit.read_csr(csr::kMtval), interp.read_csr(csr::kMtval)) << what << ": mtval";
  EXPECT_EQ(std::memcmp(jit.mem.ptr(kDataPa), interp.mem.ptr(kDataPa), kDataSize), 0) << what << ": data";
  EXPECT_EQ(jit.platform.mmio.size(), interp.platform.mmio.size()) << what << ": MMIO accesses";
}

// Every test here is about translated code: without a code area (VIGIL_JIT=off, or the
// pool could not be mapped) they fail, naming why, rather than pass untested.
class JitDifferential : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(JitPool::instance().available()) << JitPool::instance().error(); }
};

// Random straight-line code the translator handles, plus what ends or interrupts blocks.
class Generator {
 public:
  explicit Generator(uint64_t seed) : m_rng(seed) {}

  uint32_t reg() {
    static constexpr uint32_t kRegs[] = {0, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 28, 29, 30, 31};
    return kRegs[m_rng() % std::size(kRegs)];
  }
  int32_t imm12() { return static_cast<int32_t>(m_rng() % 4096) - 2048; }
  int32_t data_off(unsigned size) { return static_cast<int32_t>(m_rng() % (2048 - size)); }

  // One instruction (or a short group); appended to `out`.
  void insn(std::vector<uint32_t>& out, bool allow_branch) {
    const uint32_t rd = reg(), a = reg(), b = reg();
    switch (m_rng() % 40) {
      case 0: out.push_back(add(rd, a, b)); break;
      case 1: out.push_back(sub(rd, a, b)); break;
      case 2: out.push_back(sll(rd, a, b)); break;
      case 3: out.push_back(slt(rd, a, b)); break;
      case 4: out.push_back(sltu(rd, a, b)); break;
      case 5: out.push_back(xor_(rd, a, b)); break;
      case 6: out.push_back(srl(rd, a, b)); break;
      case 7: out.push_back(sra(rd, a, b)); break;
      case 8: out.push_back(or_(rd, a, b)); break;
      case 9: out.push_back(and_(rd, a, b)); break;
      case 10: out.push_back(addw(rd, a, b)); break;
      case 11: out.push_back(subw(rd, a, b)); break;
      case 12: out.push_back(sllw(rd, a, b)); break;
      case 13: out.push_back(srlw(rd, a, b)); break;
      case 14: out.push_back(sraw(rd, a, b)); break;
      case 15: out.push_back(mul(rd, a, b)); break;
      case 16: out.push_back(mulh(rd, a, b)); break;
      case 17: out.push_back(mulhu(rd, a, b)); break;
      case 18: out.push_back(mulw(rd, a, b)); break;
      case 19: out.push_back(addi(rd, a, imm12())); break;
      case 20: out.push_back(slti(rd, a, imm12())); break;
      case 21: out.push_back(sltiu(rd, a, imm12())); break;
      case 22: out.push_back(xori(rd, a, imm12())); break;
      case 23: out.push_back(ori(rd, a, imm12())); break;
      case 24: out.push_back(andi(rd, a, imm12())); break;
      case 25: out.push_back(m_rng() % 2 ? slli(rd, a, m_rng() % 64) : srli(rd, a, m_rng() % 64)); break;
      case 26: out.push_back(srai(rd, a, m_rng() % 64)); break;
      case 27: out.push_back(addiw(rd, a, imm12())); break;
      case 28: {
        const uint32_t sh = m_rng() % 32;
        out.push_back(m_rng() % 3 == 0 ? slliw(rd, a, sh) : m_rng() % 2 ? srliw(rd, a, sh) : sraiw(rd, a, sh));
        break;
      }
      case 29: out.push_back(m_rng() % 2 ? lui(rd, m_rng() & 0xfffff) : auipc(rd, m_rng() & 0xfffff)); break;
      case 30: case 31: {
        static constexpr uint32_t (*kLoads[])(uint32_t, uint32_t, int32_t) = {lb, lh, lw, ld, lbu, lhu, lwu};
        out.push_back(kLoads[m_rng() % 7](rd, kData, data_off(8)));
        break;
      }
      case 32: case 33: {
        static constexpr uint32_t (*kStores[])(uint32_t, uint32_t, int32_t) = {sb, sh, sw, sd};
        out.push_back(kStores[m_rng() % 4](a, kData, data_off(8)));
        break;
      }
      case 34:
        if (allow_branch) {
          // A forward branch over 1-3 instructions (still a block end: both sides chain).
          static constexpr uint32_t (*kBranches[])(uint32_t, uint32_t, int32_t) = {beq, bne, blt, bge, bltu, bgeu};
          const unsigned skip = 1 + m_rng() % 3;
          out.push_back(kBranches[m_rng() % 6](a, b, static_cast<int32_t>(4 * (skip + 1))));
          for (unsigned i = 0; i < skip; ++i) insn(out, false);
        } else {
          out.push_back(xor_(rd, a, b));
        }
        break;
      case 35: out.push_back(csrr(rd, csr::kMinstret)); break;  // not translated: counts must agree
      case 36: out.push_back(div(rd, a, b)); break;             // not translated
      case 37: out.push_back(ld(rd, kT2 + 0, 0)); break;        // t2 may point anywhere: MMIO, a fault
      case 38: out.push_back(fence()); break;
      default: out.push_back(add(rd, rd, a)); break;
    }
  }

  std::mt19937_64& rng() { return m_rng; }

 private:
  std::mt19937_64 m_rng;
};

// A loop of random code run `iterations` times (so it gets hot and translated), a call into
// a function in the same page and one in another page, then WFI.
std::vector<uint32_t> loop_program(Generator& g, unsigned body_len, std::vector<uint32_t>& func) {
  std::vector<uint32_t> p;
  const size_t head = p.size();
  for (unsigned i = 0; i < body_len; ++i) g.insn(p, true);
  const size_t call_local = p.size();
  p.push_back(0);  // jal ra, local function (patched below)
  p.push_back(0);  // auipc/jalr pair to the far function (patched below)
  p.push_back(0);
  for (unsigned i = 0; i < 4; ++i) g.insn(p, true);
  p.push_back(addi(kCount, kCount, -1));
  p.push_back(bne(kCount, 0, -static_cast<int32_t>(4 * (p.size() - head))));
  p.push_back(wfi());
  const size_t local = p.size();
  for (unsigned i = 0; i < 5; ++i) g.insn(p, false);
  p.push_back(jalr(0, kRa, 0));
  p[call_local] = jal(kRa, static_cast<int32_t>(4 * (local - call_local)));
  const int64_t far = static_cast<int64_t>(kFuncPa) - static_cast<int64_t>(kCodePa + 4 * (call_local + 1));
  p[call_local + 1] = auipc(kRa, static_cast<uint32_t>((far + 0x800) >> 12));
  p[call_local + 2] = jalr(kRa, kRa, static_cast<int32_t>(far - (((far + 0x800) >> 12) << 12)));
  func.clear();
  for (unsigned i = 0; i < 6; ++i) g.insn(func, false);
  func.push_back(jalr(0, kRa, 0));
  return p;
}

void setup_registers(Rig& r, uint64_t seed, unsigned iterations) {
  std::mt19937_64 rng(seed);
  for (unsigned i = 1; i < 32; ++i) r.hart->x[i] = rng();
  r.hart->x[kData] = kDataPa + 1024;
  r.hart->x[kCount] = iterations;
  // t2: usually data, sometimes the MMIO window (loads leave blocks), sometimes unmapped.
  const uint64_t choice = rng() % 8;
  r.hart->x[kT2] = choice == 0 ? FakePlatform::kMmioBase : choice == 1 ? 0x40000000 : kDataPa + (rng() % 4096) * 8;
  std::vector<uint8_t> data(kDataSize);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  r.poke(kDataPa, data.data(), data.size());
}

TEST_F(JitDifferential, RandomLoopsMatchTheInterpreter) {
  uint64_t translated = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Generator g(seed);
    std::vector<uint32_t> func;
    const std::vector<uint32_t> prog = loop_program(g, 8 + static_cast<unsigned>(seed % 40), func);
    const unsigned iterations = 30 + static_cast<unsigned>(seed % 70);
    auto jit_rig = std::make_unique<Rig>(true), interp_rig = std::make_unique<Rig>(false);
    Rig& jit = *jit_rig;
    Rig& interp = *interp_rig;
    for (Rig* r : {&jit, &interp}) {
      r->code(kCodePa, prog);
      r->code(kFuncPa, func);
      setup_registers(*r, seed * 7919, iterations);
    }
    std::mt19937_64 slices_a(seed), slices_b(seed);
    jit.run_to_wfi(slices_a);
    interp.run_to_wfi(slices_b);
    const std::string what = "seed " + std::to_string(seed);
    expect_same(jit, interp, what.c_str());
    ASSERT_FALSE(::testing::Test::HasFailure()) << what;
    ASSERT_EQ(interp.hart->jit(), nullptr);
    if (jit.hart->jit() != nullptr) translated += jit.hart->jit()->blocks_translated();
  }
  EXPECT_GT(translated, 300u);  // the JIT really ran: several blocks per program
}

// A page fault in the middle of a hot translated block under Sv39: same cause, tval, epc
// and registers as the interpreter.
TEST_F(JitDifferential, PageFaultInsideAHotBlock) {
  std::unique_ptr<Rig> rig_jit = std::make_unique<Rig>(true), rig_interp = std::make_unique<Rig>(false);
  for (Rig* rp : {rig_jit.get(), rig_interp.get()}) {
    Rig& r = *rp;
    // Sv39: code, trap and the first data page mapped 1:1 through 4 KiB leaves; the page
    // after the data page is not mapped. Tables at RAM + 3 MiB.
    const uint64_t root = kRamBase + 0x300000, l1 = root + 0x1000, l0 = root + 0x2000;
    auto put = [&](uint64_t pa, uint64_t v) { r.poke(pa, &v, 8); };
    put(root + ((kRamBase >> 30) & 511) * 8, ((l1 >> 12) << 10) | pte::kV);
    put(l1 + ((kRamBase >> 21) & 511) * 8, ((l0 >> 12) << 10) | pte::kV);
    put(l0 + ((kCodePa >> 12) & 511) * 8, ((kCodePa >> 12) << 10) | pte::kRWX | pte::kAD | pte::kV);
    put(l0 + ((kDataPa >> 12) & 511) * 8, ((kDataPa >> 12) << 10) | pte::kRW | pte::kAD | pte::kV);
    // S-mode: the trap goes to M (nothing delegated) at kTrapPa (M is bare).
    r.write_csr(csr::kSatp, (satp::kModeSv39 << satp::kModeShift) | (root >> 12));
    r.hart->priv = Priv::S;
    r.hart->x[kA0] = kDataPa;
    r.hart->x[kA1] = 0;
    r.code(kCodePa, {
                        ld(kA2, kA0, 0),          // reads until a0 leaves the mapped page
                        add(kA1, kA1, kA2),
                        addi(kA1, kA1, 3),
                        addi(kA0, kA0, 8),
                        jal(0, -16),
                    });
  }
  std::mt19937_64 a(5), b(5);
  Rig* rigs[2] = {rig_jit.get(), rig_interp.get()};
  rigs[0]->run_to_wfi(a);
  rigs[1]->run_to_wfi(b);
  expect_same(*rigs[0], *rigs[1], "page fault");
  EXPECT_EQ(rigs[0]->read_csr(csr::kMcause), static_cast<uint64_t>(Cause::kLoadPageFault));
  EXPECT_EQ(rigs[0]->read_csr(csr::kMtval), kDataPa + kPageSize);
  EXPECT_EQ(rigs[0]->read_csr(csr::kMepc), kCodePa);
  EXPECT_EQ(rigs[0]->hart->x[kA1], 3u * 512);  // zeros read 512 times, +3 each
  ASSERT_NE(rigs[0]->hart->jit(), nullptr);
  EXPECT_GT(rigs[0]->hart->jit()->blocks_translated(), 0u);
}

// Self-modifying code made visible by FENCE.I while the code around it is translated: an
// inner loop (hot, translated) adds the immediate of one ADDI 50 times; the outer loop
// patches that immediate to the round number and executes FENCE.I (spec: it orders the
// store before later fetches). The sum is 50 * (1 + 2 + ... + n).
TEST_F(JitDifferential, FenceIAfterPatchingTranslatedCode) {
  constexpr unsigned kRounds = 40, kInner = 50;
  Rig r(true);
  r.code(kCodePa, {
                      addi(kT0, 0, 1),            // 0: t0 = round number (1..n)
                      addi(kT2, 0, kInner),       // 4: inner count
                      addi(kA1, kA1, 1),          // 8: patched: a1 += round (as immediate)
                      addi(kT2, kT2, -1),         // 12
                      bne(kT2, 0, -8),            // 16: back to 8
                      addi(kT0, kT0, 1),          // 20
                      slli(kT1, kT0, 20),         // 24: imm field of ADDI = t0 << 20
                      or_(kT1, kT1, kA2),         // 28: | rest of "addi a1, a1, 0"
                      sw(kT1, kA3, 0),            // 32: store over the ADDI at 8
                      fence_i(),                  // 36
                      addi(kCount, kCount, -1),   // 40
                      bne(kCount, 0, -40),        // 44: back to 4
                      wfi(),                      // 48
                  });
  r.hart->x[kA1] = 0;
  r.hart->x[kA2] = addi(kA1, kA1, 0);
  r.hart->x[kA3] = kCodePa + 8;
  r.hart->x[kCount] = kRounds;
  std::mt19937_64 rng(1);
  r.run_to_wfi(rng);
  EXPECT_EQ(r.hart->x[kA1], uint64_t{kInner} * kRounds * (kRounds + 1) / 2);
  ASSERT_NE(r.hart->jit(), nullptr);
  EXPECT_GE(r.hart->jit()->blocks_translated(), kRounds / 2);  // retranslated after each FENCE.I
}

// A guest with more hot code than the code area: the area fills, every block is dropped at
// the next slice and translation starts over; results stay exact.
TEST_F(JitDifferential, FullCodeAreaDropsBlocksAndStartsOver) {
  constexpr unsigned kPages = 200, kRounds = 3, kIterations = 30, kAdds = 14;
  constexpr uint64_t kFirst = kRamBase + 0x10000;
  Rig r(true);
  r.hart->jit_code_limit = 64 << 10;
  r.code(kCodePa, {
                      addi(kS2, 0, kPages),     // 0
                      addi(kT3, kT5, 0),        // 4: t3 = first function
                      addi(kA1, 0, kIterations),// 8
                      jalr(kRa, kT3, 0),        // 12
                      add(kT3, kT3, kT6),       // 16: next page
                      addi(kS2, kS2, -1),       // 20
                      bne(kS2, 0, -16),         // 24: back to 8
                      addi(kCount, kCount, -1), // 28
                      bne(kCount, 0, -32),      // 32: back to 0
                      wfi(),                    // 36
                  });
  uint64_t expect = 0;
  for (unsigned p = 0; p < kPages; ++p) {
    const int32_t k = static_cast<int32_t>(p + 1);
    std::vector<uint32_t> f(kAdds, addi(kA0, kA0, k));
    f.push_back(addi(kA1, kA1, -1));
    f.push_back(bne(kA1, 0, -static_cast<int32_t>(4 * (kAdds + 1))));
    f.push_back(jalr(0, kRa, 0));
    r.code(kFirst + p * kPageSize, f);
    expect += uint64_t{kRounds} * kIterations * kAdds * static_cast<uint64_t>(k);
  }
  r.hart->x[kT5] = kFirst;
  r.hart->x[kT6] = kPageSize;
  r.hart->x[kCount] = kRounds;
  std::mt19937_64 rng(9);
  r.run_to_wfi(rng);
  EXPECT_EQ(r.hart->x[kA0], expect);
  ASSERT_NE(r.hart->jit(), nullptr);
  EXPECT_GT(r.hart->jit()->resets(), 0u);
  EXPECT_GT(r.hart->jit()->blocks_translated(), kPages);
  EXPECT_LE(r.hart->jit()->bytes_used(), size_t{64} << 10);
}

// A hot loop ends on an exact budget boundary: instret counts only retired instructions
// when blocks overshoot a slice, and the loop's result is exact.
TEST_F(JitDifferential, CountsMatchAcrossManySlices) {
  Rig r(true);
  r.code(kCodePa, {
                      addi(kA0, kA0, 1),
                      xori(kA1, kA0, 0x55),
                      add(kA2, kA2, kA1),
                      addi(kCount, kCount, -1),
                      bne(kCount, 0, -16),
                      wfi(),
                  });
  r.hart->x[kCount] = 100000;
  std::mt19937_64 rng(3);
  r.run_to_wfi(rng);
  uint64_t expect = 0;
  for (uint64_t i = 1; i <= 100000; ++i) expect += i ^ 0x55;
  EXPECT_EQ(r.hart->x[kA2], expect);
  EXPECT_EQ(r.read_csr(csr::kMinstret), 5u * 100000 + 1);  // the loop, then WFI itself
  ASSERT_NE(r.hart->jit(), nullptr);
  EXPECT_GT(r.hart->jit()->blocks_translated(), 0u);
}

}  // namespace
}  // namespace vigil::riscv
