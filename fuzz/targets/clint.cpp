// Fuzz target `clint`: random MMIO reads and writes on a Clint over a fake board of 1-8
// harts.
//
// Invariants: the CLINT only names harts that exist; msip reads 0 or 1; a successful write
// to msip or mtimecmp reads back (msip: bit 0; mtimecmp: the bytes written).
//
// Input: u8 harts (1 + mod 8), u64 mtime, then operations: u8 op; op & 1: 0 read, 1 write
// (u64 value after the offset); size = kSizes[(op >> 1) & 3]; offset: u8 region, then
// region 0 msip 4*(u8 % 10), 1 mtimecmp 0x4000 + 4*(u8 % 20), 2 mtime 0xbff8 + 4*(u8 % 3),
// 3 raw u16, 4 raw u64; op bit 3 adds a misalignment of (u8 & 7).
#include <cstdint>
#include <vector>

#include "devices/clint.h"
#include "fuzz_input.h"

namespace {

using namespace vigil::devices;
using vigil::fuzz::Input;

class Board final : public ClintTarget {
 public:
  Board(unsigned harts, uint64_t time) : m_msip(harts), m_cmp(harts, ~0ull), m_time(time) {}
  unsigned hart_count() const override { return static_cast<unsigned>(m_msip.size()); }
  uint64_t clint_mtime() override { return m_time; }
  bool msip(unsigned hart) override {
    FUZZ_CHECK(hart < m_msip.size());
    return m_msip[hart];
  }
  void set_msip(unsigned hart, bool level) override {
    FUZZ_CHECK(hart < m_msip.size());
    m_msip[hart] = level;
  }
  uint64_t mtimecmp(unsigned hart) override {
    FUZZ_CHECK(hart < m_cmp.size());
    return m_cmp[hart];
  }
  void set_mtimecmp(unsigned hart, uint64_t value) override {
    FUZZ_CHECK(hart < m_cmp.size());
    m_cmp[hart] = value;
  }

 private:
  std::vector<bool> m_msip;
  std::vector<uint64_t> m_cmp;
  uint64_t m_time;
};

constexpr unsigned kSizes[4] = {4, 8, 1, 2};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const unsigned harts = 1 + in.u8() % 8;
  Board board(harts, in.u64());
  Clint clint(board);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const unsigned sz = kSizes[(op >> 1) & 3];
    const uint8_t region = in.u8();
    uint64_t off;
    switch (region % 5) {
      case 0: off = 4ull * (in.u8() % 10); break;
      case 1: off = 0x4000 + 4ull * (in.u8() % 20); break;
      case 2: off = 0xbff8 + 4ull * (in.u8() % 3); break;
      case 3: off = in.u16(); break;
      default: off = in.u64(); break;
    }
    if (op & 8) off += in.u8() & 7;
    const bool in_msip = off < 4ull * harts;
    const bool in_cmp = off >= 0x4000 && off < 0x4000 + 8ull * harts;
    if (op & 1) {
      const uint64_t v = in.u64();
      if (clint.write(off, sz, v) && (in_msip || in_cmp)) {
        uint64_t back = ~0ull;
        FUZZ_CHECK(clint.read(off, sz, back));
        const uint64_t mask = sz == 8 ? ~0ull : (1ull << (8 * sz)) - 1;
        FUZZ_CHECK(back == (in_msip ? (v & 1) : (v & mask)));
      }
    } else {
      uint64_t v = 0;
      if (clint.read(off, sz, v)) {
        if (sz < 8) FUZZ_CHECK(v < (1ull << (8 * sz)));
        if (in_msip) FUZZ_CHECK(v <= 1);
      }
    }
  }
  return 0;
}
