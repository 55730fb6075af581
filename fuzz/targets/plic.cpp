// Fuzz target `plic`: random MMIO reads and writes on a Plic of fuzz-chosen size, with
// interrupt lines raised and lowered in between.
//
// Invariants: line(s) exists exactly for 1 <= s < num_sources(); a claim returns 0 or a
// valid source id; priorities and thresholds read back within kPriorityMask; the sink is
// only told about harts that exist, on MEIP/SEIP, and only about changes.
//
// Input: u16 num_sources (mod 1025), u8 num_harts (1 + mod 4), then operations:
//   u8 op; op & 3 == 0 read, 1 write (u32 value follows the offset), 2 set a line level
//   (u16 source, level = op bit 2), 3: (op >> 2) & 1 ? reset : claim and complete on a context.
// offset: u8 region, then region-specific fields (see offset()); region bit 3 adds a
// misalignment of (u8 & 3).
#include <cstdint>
#include <map>
#include <memory>

#include "devices/plic.h"
#include "fuzz_input.h"

namespace {

using namespace vigil::devices;
using vigil::fuzz::Input;

class Sink final : public HartIrqSink {
 public:
  explicit Sink(unsigned harts) : m_harts(harts) {}
  void set_hart_irq(unsigned hart, unsigned mip_bit, bool level) override {
    FUZZ_CHECK(hart < m_harts);
    FUZZ_CHECK(mip_bit == Plic::kMeipBit || mip_bit == Plic::kSeipBit);
    bool& cur = m_level[{hart, mip_bit}];
    FUZZ_CHECK(cur != level);  // only changes are reported
    cur = level;
  }

 private:
  unsigned m_harts;
  std::map<std::pair<unsigned, unsigned>, bool> m_level;
};

uint64_t offset(Input& in) {
  const uint8_t region = in.u8();
  uint64_t off;
  switch (region % 6) {
    case 0: off = 4ull * (in.u16() % 1100); break;                                   // priorities
    case 1: off = 0x1000 + 4ull * (in.u8() % 40); break;                             // pending
    case 2: off = 0x2000 + 0x80ull * (in.u16() % 20) + 4ull * (in.u8() % 40); break;  // enables
    case 3: off = 0x200000 + 0x1000ull * (in.u16() % 20) + 4ull * (in.u8() % 3); break;  // threshold/claim
    case 4: off = in.u32(); break;
    default: off = in.u64(); break;
  }
  if (region & 8) off += in.u8() & 3;
  return off;
}

constexpr unsigned kSizes[4] = {4, 4, 1, 8};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const unsigned sources = in.u16() % (Plic::kMaxSources + 1);
  const unsigned harts = 1 + in.u8() % 4;
  Sink sink(harts);
  auto plic = std::make_unique<Plic>(sources, harts, &sink);
  const unsigned n = plic->num_sources();
  FUZZ_CHECK(n >= 1 && n <= Plic::kMaxSources);
  FUZZ_CHECK(plic->num_contexts() == 2 * harts);

  while (!in.empty()) {
    const uint8_t op = in.u8();
    const unsigned sz = kSizes[(op >> 4) & 3];
    switch (op & 3) {
      case 0: {
        const uint64_t off = offset(in);
        uint64_t v = 0;
        if (plic->read(off, sz, v)) {
          FUZZ_CHECK(v <= 0xffffffffu);
          if (off >= 0x200004 && (off - 0x200004) % 0x1000 == 0) FUZZ_CHECK(v < n);  // claim
          if (off < 0x1000 || (off >= 0x200000 && (off - 0x200000) % 0x1000 == 0)) FUZZ_CHECK(v <= Plic::kPriorityMask);
        }
        break;
      }
      case 1: {
        const uint64_t off = offset(in);
        plic->write(off, sz, in.u32());
        break;
      }
      case 2: {
        const unsigned src = in.u16() % (n + 2);
        IrqLine* line = plic->line(src);
        FUZZ_CHECK((line != nullptr) == (src >= 1 && src < n));
        if (line) line->set_level((op >> 2) & 1);
        break;
      }
      default:
        if ((op >> 2) & 1) {
          plic->reset();
        } else {
          const unsigned ctx = in.u8() % plic->num_contexts();
          uint64_t id = 0;
          FUZZ_CHECK(plic->read(0x200004 + 0x1000ull * ctx, 4, id));
          FUZZ_CHECK(id < n);
          FUZZ_CHECK(plic->write(0x200004 + 0x1000ull * ctx, 4, (op & 0x80) ? in.u32() : id));
        }
        break;
    }
  }
  return 0;
}
