// Fuzz target `insn`: decodes and executes arbitrary instruction streams on one Hart.
//
// 128 KiB of guest RAM at 0x80000000, a fake Platform with an MMIO window at 0x10000000
// and the real built-in SBI (handle_sbi_call) behind ECALLs when builtin_sbi is set. The
// input chooses the starting privilege (M, S or U), CSR state (mstatus, delegation,
// interrupt enables and pending bits, trap vectors, counters enables, PMP entries, timer
// compares), satp (page tables built from fuzz-chosen mappings, then raw 64-bit pokes that
// may point them anywhere, or a raw satp value), the integer registers, and the code.
//
// Invariants beyond "no crash, no sanitizer report": x0 reads 0, the privilege is U, S
// or M, pc stays 2-byte aligned while the hart runs, and without builtin_sbi no trap is
// reported as unhandled.
//
// Input layout (little-endian; see make_seeds.py):
//   u8 mode     bits 1:0 priv (0 U, 1 S, 2-3 M), 2 builtin_sbi, 3 paging, 4 Sv48 (else
//               Sv39), 5 raw satp, 6 fuzz PMP entries, 7 start as firmware would leave S
//   u8 mode2    bit 0 request FENCE.I between slices, 1 request SFENCE.VMA, 2 toggle mip
//               between slices, 3 no catch-all PMP entry
//   u64 mstatus (ORed in), u64 medeleg, u64 mideleg, u64 mie, u64 mip
//   u32 mtvec, u32 stvec       (RAM offsets; the low 2 bits are the mode)
//   u16 mtimecmp, u16 stimecmp (x16 ticks; 0xffff = never), u8 mcounteren, u8 scounteren
//   [raw satp: u64 satp]  [paging: u8 identity-gigapage PTE flags (0 = none),
//                          u8 n, n x (u32 vpn, u16 pa selector, u8 flags, u8 level)]
//   [PMP: u8 n, n x (u8 cfg, u32 addr)]
//   u8 n, n x (u8 reg, u8 kind, value)    kind 0: RAM + 2*u16, 1: u64, 2: sext(u8), 3: MMIO + 8*u8
//   u8 n, n x (u16 offset/8, u64 value)   64-bit pokes into RAM after the page tables
//   u8 slices, u16 budget
//   rest: code, placed at 0x80000000 (pc starts there)
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_input.h"
#include "machine/sbi.h"
#include "riscv/csr.h"
#include "riscv/hart.h"

namespace vigil::riscv {
// hart.h: `friend struct HartTestAccess;` -- the fuzzer switches privilege directly.
struct HartTestAccess {
  static void select_tlb(Hart& h) { h.select_tlb(); }
  static void flush_tlb(Hart& h) { h.flush_tlb(); }
};
}  // namespace vigil::riscv

namespace {

using namespace vigil;
using namespace vigil::riscv;
using vigil::fuzz::Input;

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kPages = 32;
constexpr uint64_t kRamSize = kPages * kPageSize;
constexpr uint64_t kPtFirstPage = 24;  // pages 24..31 hold page tables built by the fuzzer
constexpr uint64_t kMmioBase = 0x10000000;
constexpr uint64_t kMmioSize = 0x1000;

class FuzzPlatform final : public Platform, public machine::SbiHost {
 public:
  Hart* the_hart = nullptr;
  uint64_t time = 0;
  unsigned unhandled = 0;
  bool reset_requested = false;
  uint64_t console_sum = 0;
  unsigned getchar_left = 3;

  // Platform
  bool mmio_read(Hart&, uint64_t pa, unsigned size, uint64_t& value) override {
    FUZZ_CHECK(size == 1 || size == 2 || size == 4 || size == 8);
    if (pa < kMmioBase || pa - kMmioBase >= kMmioSize || size > kMmioBase + kMmioSize - pa) return false;
    value = (pa * 0x9E3779B97F4A7C15ull) >> (64 - 8 * size);
    return true;
  }
  bool mmio_write(Hart&, uint64_t pa, unsigned size, uint64_t value) override {
    FUZZ_CHECK(size == 1 || size == 2 || size == 4 || size == 8);
    (void)value;
    return pa >= kMmioBase && pa - kMmioBase < kMmioSize && size <= kMmioBase + kMmioSize - pa;
  }
  uint64_t mtime() override { return time; }
  bool sbi_ecall(Hart& h) override { return machine::handle_sbi_call(*this, h); }
  void unhandled_machine_trap(Hart&, uint64_t, uint64_t) override { ++unhandled; }

  // SbiHost: a one-hart board.
  unsigned hart_count() const override { return 1; }
  riscv::Hart& hart(unsigned id) override {
    FUZZ_CHECK(id == 0);
    return *the_hart;
  }
  void console_write(const uint8_t* data, size_t len) override {
    for (size_t i = 0; i < len; ++i) console_sum += data[i];  // every byte must be readable
  }
  int console_getchar() override { return getchar_left ? static_cast<int>('a' + --getchar_left) : -1; }
  void system_reset(uint32_t type, uint32_t reason) override {
    FUZZ_CHECK(type <= 2 && reason <= 1);
    reset_requested = true;
  }
  int64_t hart_start(unsigned id, uint64_t, uint64_t) override {
    FUZZ_CHECK(id == 0);
    return machine::kSbiErrAlreadyStarted;
  }
  int64_t hart_stop(unsigned id) override {
    FUZZ_CHECK(id == 0);
    the_hart->state.store(HartState::kStopped);
    the_hart->end_slice();
    return machine::kSbiSuccess;
  }
  int64_t hart_status(unsigned id) override {
    FUZZ_CHECK(id == 0);
    return 0;
  }
};

struct PageTables {
  std::vector<uint8_t>& ram;
  unsigned levels;
  uint64_t next_page = kPtFirstPage;
  uint64_t root = 0;

  uint64_t get(uint64_t pa) {
    uint64_t v;
    std::memcpy(&v, &ram[pa - kRamBase], 8);
    return v;
  }
  void put(uint64_t pa, uint64_t v) { std::memcpy(&ram[pa - kRamBase], &v, 8); }
  uint64_t alloc() {
    if (next_page >= kPages) return 0;
    const uint64_t pa = kRamBase + next_page++ * kPageSize;
    std::memset(&ram[pa - kRamBase], 0, kPageSize);
    return pa;
  }
  static bool in_pool(uint64_t pa) {
    return pa >= kRamBase + kPtFirstPage * kPageSize && pa < kRamBase + kRamSize;
  }
  // Writes a PTE for va at `level` (0 = 4 KiB leaf), creating tables on the way. Gives up
  // (silently) when the pool is full or the path runs into a leaf or a foreign table.
  void map(uint64_t va, uint64_t pte, unsigned level) {
    uint64_t table = root;
    for (int l = static_cast<int>(levels) - 1; l > static_cast<int>(level); --l) {
      const uint64_t a = table + ((va >> (12 + 9 * l)) & 511) * 8;
      uint64_t e = get(a);
      if (!(e & 1)) {
        const uint64_t next = alloc();
        if (!next) return;
        e = ((next >> 12) << 10) | 1;
        put(a, e);
      } else if (e & 0xe) {
        return;  // a leaf is in the way
      }
      table = ((e >> 10) & satp::kPpnMask) << 12;
      if (!in_pool(table)) return;
    }
    put(table + ((va >> (12 + 9 * level)) & 511) * 8, pte);
  }
};

void set_priv(Hart& h, Priv p) {
  h.priv = p;
  HartTestAccess::select_tlb(h);
  h.invalidate_fetch();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  std::vector<uint8_t> ram(kRamSize, 0);
  GuestMemory mem(ram.data(), kRamBase, kRamSize);
  FuzzPlatform platform;
  auto hart = std::make_unique<Hart>(0, mem, platform);
  Hart& h = *hart;
  platform.the_hart = &h;

  const uint8_t mode = in.u8();
  const uint8_t mode2 = in.u8();
  static constexpr Priv kPrivs[] = {Priv::U, Priv::S, Priv::M, Priv::M};
  const Priv start_priv = kPrivs[mode & 3];
  const bool paging = mode & 8, sv48 = mode & 16, raw_satp = mode & 32, fuzz_pmp = mode & 64;

  h.reset(kRamBase);
  if (mode & 128) h.enter_supervisor_as_firmware(kRamBase, in.u8(), kRamBase + kRamSize - 0x100);
  const bool builtin_sbi = h.builtin_sbi || (mode & 4);

  // CSRs, written with M-mode rights through the same path as CSR instructions (WARL
  // fields and illegal values are the hart's to handle).
  set_priv(h, Priv::M);
  h.csr_write(csr::kMstatus, h.mstatus() | in.u64());
  h.csr_write(csr::kMedeleg, in.u64());
  h.csr_write(csr::kMideleg, in.u64());
  h.csr_write(csr::kMie, in.u64());
  const uint64_t mip = in.u64();
  h.set_mip_bits(mip, true);
  h.csr_write(csr::kMtvec, kRamBase + (in.u32() % kRamSize));
  h.csr_write(csr::kStvec, kRamBase + (in.u32() % kRamSize));
  const uint16_t mtimecmp = in.u16(), stimecmp = in.u16();
  h.mtimecmp.store(mtimecmp == 0xffff ? ~0ull : uint64_t{mtimecmp} * 16);
  h.stimecmp.store(stimecmp == 0xffff ? ~0ull : uint64_t{stimecmp} * 16);
  h.csr_write(csr::kMcounteren, in.u8());
  h.csr_write(csr::kScounteren, in.u8());

  if (raw_satp) {
    h.csr_write(csr::kSatp, in.u64());
  } else if (paging) {
    PageTables pt{ram, sv48 ? 4u : 3u};
    pt.root = pt.alloc();
    const unsigned va_bits = 12 + 9 * pt.levels;
    if (const uint8_t id_flags = in.u8()) pt.map(kRamBase, ((kRamBase >> 12) << 10) | id_flags | 1, 2);
    for (unsigned n = in.u8() & 15; n > 0; --n) {
      uint64_t va = uint64_t{in.u32()} << 12;
      va = static_cast<uint64_t>(static_cast<int64_t>(va << (64 - va_bits)) >> (64 - va_bits));  // canonical
      const uint16_t sel = in.u16();
      uint64_t pa;
      switch (sel >> 14) {
        case 0: case 1: pa = kRamBase + (sel % kPages) * kPageSize; break;
        case 2: pa = kMmioBase + (uint64_t(sel & 0xff) << 12); break;
        default: pa = uint64_t(sel & 0x3fff) << 30; break;
      }
      const uint8_t flags = in.u8();
      const unsigned level = in.u8() % pt.levels;
      pt.map(va, ((pa >> 12) << 10) | flags, level);
    }
    const uint64_t mode_bits = sv48 ? satp::kModeSv48 : satp::kModeSv39;
    h.csr_write(csr::kSatp, (mode_bits << satp::kModeShift) | (uint64_t{in.u8()} << 44) | (pt.root >> 12));
  }

  if (fuzz_pmp) {
    for (unsigned i = 0, n = in.u8() & 7; i < n; ++i) {
      const uint8_t cfg = in.u8();
      h.csr_write(csr::kPmpaddr0 + i, (kRamBase >> 2) | (in.u32() & 0xfffff));
      uint64_t v = 0;
      h.csr_read(csr::kPmpcfg0, v);
      v = (v & ~(0xffull << (8 * i))) | (uint64_t{cfg} << (8 * i));
      h.csr_write(csr::kPmpcfg0, v);
    }
  }
  if (!(mode2 & 8)) {
    // Entry 15: everything RWX for S/U (NAPOT), lowest priority, as firmware would grant.
    h.csr_write(csr::kPmpaddr0 + 15, (1ull << 54) - 1);
    uint64_t v = 0;
    h.csr_read(csr::kPmpcfg0 + 2, v);
    h.csr_write(csr::kPmpcfg0 + 2, (v & ~(0xffull << 56)) | (0x1full << 56));
  }

  for (unsigned n = in.u8() & 31; n > 0; --n) {
    const unsigned r = in.u8() & 31;
    uint64_t v;
    switch (in.u8() & 3) {
      case 0: v = kRamBase + 2ull * in.u16(); break;
      case 1: v = in.u64(); break;
      case 2: v = static_cast<uint64_t>(static_cast<int8_t>(in.u8())); break;
      default: v = kMmioBase + 8ull * in.u8(); break;
    }
    if (r != 0) h.x[r] = v;
  }
  std::vector<std::pair<uint64_t, uint64_t>> pokes;
  for (unsigned n = in.u8(); n > 0; --n) {
    const uint64_t off = (8ull * in.u16()) % kRamSize;
    pokes.emplace_back(off, in.u64());
  }
  const unsigned slices = 1 + (in.u8() & 3);
  const uint64_t budget = 1 + (in.u16() & 1023);

  // The code, then the pokes (which may land on code or page tables alike).
  const auto code = in.bytes(kPtFirstPage * kPageSize);
  std::memcpy(ram.data(), code.data(), code.size());
  for (auto [off, v] : pokes) std::memcpy(&ram[off], &v, 8);

  h.builtin_sbi = builtin_sbi;
  HartTestAccess::flush_tlb(h);
  set_priv(h, start_priv);
  h.pc = kRamBase;

  for (unsigned s = 0; s < slices && !platform.reset_requested; ++s) {
    platform.time += 1000;
    const ExitReason r = h.run(budget);
    if (h.state.load() == HartState::kRunning) {
      FUZZ_CHECK((h.pc & 1) == 0);
    }
    FUZZ_CHECK(h.x[0] == 0);
    FUZZ_CHECK(h.priv == Priv::U || h.priv == Priv::S || h.priv == Priv::M);
    if (r == ExitReason::kStopped) break;
    if (r == ExitReason::kWfi) h.wfi_pending = false;  // a spurious wake-up, which WFI allows
    if (mode2 & 1) h.request(Hart::kReqFenceI);
    if (mode2 & 2) h.request(Hart::kReqSfenceVma);
    if (mode2 & 4) h.set_mip_bits(mip, s & 1);
  }
  if (!builtin_sbi) FUZZ_CHECK(platform.unhandled == 0);

  // Debug translation of whatever the registers hold, in every access type.
  for (unsigned r = 1; r < 32; ++r) {
    uint64_t pa = 0;
    for (AccessType t : {AccessType::kRead, AccessType::kWrite, AccessType::kFetch}) {
      if (h.translate_for_debug(h.x[r], t, pa)) (void)pa;
    }
  }
  (void)h.instret();
  return 0;
}
