// Fuzz target `sbi`: handle_sbi_call with arbitrary a0-a7 on a fake board of 1-4 harts
// that share 64 KiB of RAM, with fuzz-chosen satp (legacy calls read hart masks through
// the calling hart's page tables).
//
// Invariants: the SBI only names harts that exist; every byte handed to console_write is
// readable (ASan checks it); a non-legacy call returns an SBI error code in a0
// (0 or -1..-8); it always reports the call as handled; SRST passes only valid type/reason.
//
// Input: u8 harts (1 + mod 4), u64 satp (0 = Bare), u16 n + n bytes of RAM (at 0x80000000),
// then calls until the input ends:
//   u8 hart, u8 eid selector (< 16 from the known list, else a raw u64 follows),
//   u8 fid (0xff: raw u64 follows), 6 x argument (u8 kind: 0 RAM address + u16,
//   1 raw u64, 2 small u8, 3 all-ones, 4 = -1 and mask, others 0)
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_input.h"
#include "machine/sbi.h"
#include "riscv/csr.h"
#include "riscv/hart.h"

namespace {

using namespace vigil;
using namespace vigil::riscv;
using vigil::fuzz::Input;

constexpr uint64_t kRamBase = 0x80000000, kRamSize = 64 * 1024;

class NullPlatform final : public Platform {
 public:
  bool mmio_read(Hart&, uint64_t, unsigned, uint64_t&) override { return false; }
  bool mmio_write(Hart&, uint64_t, unsigned, uint64_t) override { return false; }
  uint64_t mtime() override { return 0; }
  bool sbi_ecall(Hart&) override { return false; }
  void unhandled_machine_trap(Hart&, uint64_t, uint64_t) override {}
};

class Host final : public machine::SbiHost {
 public:
  std::vector<std::unique_ptr<Hart>> harts;
  uint64_t console_sum = 0;
  unsigned getchars = 0;

  unsigned hart_count() const override { return static_cast<unsigned>(harts.size()); }
  Hart& hart(unsigned id) override {
    FUZZ_CHECK(id < harts.size());
    return *harts[id];
  }
  void console_write(const uint8_t* data, size_t len) override {
    FUZZ_CHECK(len <= 4096);
    for (size_t i = 0; i < len; ++i) console_sum += data[i];
  }
  int console_getchar() override { return (++getchars % 7) ? static_cast<int>(getchars & 0xff) : -1; }
  void system_reset(uint32_t type, uint32_t reason) override { FUZZ_CHECK(type <= 2 && reason <= 1); }
  int64_t hart_start(unsigned id, uint64_t, uint64_t) override {
    FUZZ_CHECK(id < harts.size());
    return id % 2 ? machine::kSbiErrAlreadyStarted : machine::kSbiSuccess;
  }
  int64_t hart_stop(unsigned id) override {
    FUZZ_CHECK(id < harts.size());
    return machine::kSbiSuccess;
  }
  int64_t hart_status(unsigned id) override {
    FUZZ_CHECK(id < harts.size());
    return id % 3;
  }
};

constexpr uint64_t kEids[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                0x10, 0x54494D45, 0x735049, 0x52464E43, 0x48534D, 0x53525354, 0x4442434E};

uint64_t arg(Input& in) {
  switch (in.u8()) {
    case 0: return kRamBase + in.u16();
    case 1: return in.u64();
    case 2: return in.u8();
    case 3: return ~0ull;
    case 4: return ~0ull - in.u8();
    default: return 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  std::vector<uint8_t> ram(kRamSize, 0);
  GuestMemory mem(ram.data(), kRamBase, kRamSize);
  NullPlatform platform;
  Host host;
  const unsigned n = 1 + in.u8() % 4;
  const uint64_t satp = in.u64();
  for (unsigned i = 0; i < n; ++i) {
    host.harts.push_back(std::make_unique<Hart>(i, mem, platform));
    Hart& h = *host.harts.back();
    h.enter_supervisor_as_firmware(kRamBase, i, 0);
    h.priv = Priv::M;
    h.csr_write(csr::kSatp, satp);
    h.priv = Priv::S;
  }
  const auto init = in.bytes(in.u16());
  std::memcpy(ram.data(), init.data(), std::min<size_t>(init.size(), kRamSize));

  while (!in.empty()) {
    Hart& h = *host.harts[in.u8() % n];
    const uint8_t sel = in.u8();
    const uint64_t eid = sel < 16 ? kEids[sel] : in.u64();
    const uint8_t fsel = in.u8();
    const uint64_t fid = fsel == 0xff ? in.u64() : fsel % 8;
    for (unsigned r = 10; r <= 15; ++r) h.x[r] = arg(in);
    h.x[16] = fid;
    h.x[17] = eid;
    FUZZ_CHECK(machine::handle_sbi_call(host, h));
    if (eid > 8) {
      const auto err = static_cast<int64_t>(h.x[10]);
      FUZZ_CHECK(err <= 0 && err >= -8);
    }
    FUZZ_CHECK(h.x[0] == 0);
  }
  return 0;
}
