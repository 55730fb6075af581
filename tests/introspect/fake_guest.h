// A guest RAM in a host buffer with page tables built by hand, for introspection tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "introspect/guest_view.h"

namespace vigil::introspect::testing {

class FakeGuest {
 public:
  static constexpr uint64_t kBase = 0x8000'0000;

  explicit FakeGuest(uint64_t size = 16 << 20)
      : m_ram(size), m_mem(std::make_unique<riscv::GuestMemory>(m_ram.data(), kBase, size)) {}

  riscv::GuestMemory& memory() { return *m_mem; }
  GuestView view() { return GuestView(*m_mem); }

  // A zeroed page from the top of RAM downwards (data pages are placed by the tests below).
  uint64_t alloc_page() {
    m_next_table -= riscv::kPageSize;
    std::memset(m_ram.data() + (m_next_table - kBase), 0, riscv::kPageSize);
    return m_next_table;
  }
  void put64(uint64_t pa, uint64_t v) { std::memcpy(m_ram.data() + (pa - kBase), &v, 8); }
  uint64_t get64(uint64_t pa) const {
    uint64_t v;
    std::memcpy(&v, m_ram.data() + (pa - kBase), 8);
    return v;
  }
  void put_bytes(uint64_t pa, const void* data, size_t len) {
    std::memcpy(m_ram.data() + (pa - kBase), data, len);
  }

  static uint64_t pte(uint64_t pa, uint64_t flags) { return ((pa >> 12) << sv::kPtePpnShift) | flags; }

  // A new root table for `mode` (Sv39 or Sv48); returns its satp.
  uint64_t new_root(uint64_t mode) { return make_satp(mode, alloc_page()); }

  // Maps `va` -> `pa` with a leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB) in `satp`'s tables,
  // creating intermediate tables as needed.
  void map(uint64_t satp, uint64_t va, uint64_t pa, unsigned level = 0,
           uint64_t flags = sv::kPteR | sv::kPteW | sv::kPteA | sv::kPteD) {
    const unsigned levels = (satp >> sv::kModeShift) == sv::kModeSv39 ? 3 : 4;
    uint64_t table = (satp & sv::kSatpPpnMask) << 12;
    for (int l = static_cast<int>(levels) - 1; l > static_cast<int>(level); --l) {
      const uint64_t at = table + ((va >> (12 + 9 * l)) & 511) * 8;
      uint64_t e = get64(at);
      if (!(e & sv::kPteV)) {
        e = pte(alloc_page(), sv::kPteV);
        put64(at, e);
      }
      table = ((e >> sv::kPtePpnShift) & sv::kPtePpnMask) << 12;
    }
    put64(table + ((va >> (12 + 9 * level)) & 511) * 8, pte(pa, flags | sv::kPteV));
  }
  // Address of the PTE for `va` at `level` (the tables down to it must exist).
  uint64_t pte_addr(uint64_t satp, uint64_t va, unsigned level) {
    const unsigned levels = (satp >> sv::kModeShift) == sv::kModeSv39 ? 3 : 4;
    uint64_t table = (satp & sv::kSatpPpnMask) << 12;
    for (int l = static_cast<int>(levels) - 1; l > static_cast<int>(level); --l) {
      table = ((get64(table + ((va >> (12 + 9 * l)) & 511) * 8) >> sv::kPtePpnShift) & sv::kPtePpnMask) << 12;
    }
    return table + ((va >> (12 + 9 * level)) & 511) * 8;
  }

 private:
  std::vector<uint8_t> m_ram;
  std::unique_ptr<riscv::GuestMemory> m_mem;
  uint64_t m_next_table = kBase + m_ram.size();
};

}  // namespace vigil::introspect::testing
