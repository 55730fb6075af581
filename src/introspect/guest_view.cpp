#include "introspect/guest_view.h"

#include <algorithm>
#include <cstring>

namespace vigil::introspect {

namespace {

// Paging levels of a satp mode, 0 for Bare, -1 for a reserved mode.
int levels_of(uint64_t mode) {
  switch (mode) {
    case sv::kModeBare:
      return 0;
    case sv::kModeSv39:
      return 3;
    case sv::kModeSv48:
      return 4;
    case sv::kModeSv57:
      return 5;
    default:
      return -1;
  }
}

// Physical addresses are 56 bits wide (4.4.1).
constexpr unsigned kPaBits = 56;

}  // namespace

std::string satp_mode_name(uint64_t satp) {
  const uint64_t mode = satp >> sv::kModeShift;
  switch (mode) {
    case sv::kModeBare:
      return "Bare";
    case sv::kModeSv39:
      return "Sv39";
    case sv::kModeSv48:
      return "Sv48";
    case sv::kModeSv57:
      return "Sv57";
    default:
      return fmt::format("mode {}", mode);
  }
}

Result<void> GuestView::read_phys(uint64_t pa, std::span<uint8_t> out) const {
  if (!m_mem->contains(pa, out.size())) {
    return make_error("guest-physical range {:#x}+{:#x} is outside guest RAM ({:#x}-{:#x})", pa, out.size(),
                      m_mem->base(), m_mem->base() + m_mem->size() - 1);
  }
  // The guest may be running (an unpaused read): the copy may tear but stays inside RAM.
  if (!out.empty()) std::memcpy(out.data(), m_mem->ptr(pa), out.size());
  return {};
}

Result<void> GuestView::write_phys(uint64_t pa, std::span<const uint8_t> data) const {
  if (!m_mem->contains(pa, data.size())) {
    return make_error("guest-physical range {:#x}+{:#x} is outside guest RAM ({:#x}-{:#x})", pa, data.size(),
                      m_mem->base(), m_mem->base() + m_mem->size() - 1);
  }
  if (data.empty()) return {};
  std::memcpy(m_mem->ptr(pa), data.data(), data.size());
  // Harts must not keep executing decoded copies of what we just changed.
  m_mem->note_write(pa, data.size());
  return {};
}

Result<uint64_t> GuestView::read_phys_u64(uint64_t pa) const {
  uint64_t v = 0;
  if (auto r = read_phys(pa, {reinterpret_cast<uint8_t*>(&v), sizeof(v)}); !r)
    return std::unexpected(r.error());
  return v;
}

Result<Translation> GuestView::translate(uint64_t satp, uint64_t va) const {
  const uint64_t mode = satp >> sv::kModeShift;
  const int levels = levels_of(mode);
  if (levels < 0)
    return make_error("satp {:#x} has a reserved MODE ({}): no page tables to walk", satp, mode);
  Translation t;
  t.va = va;
  if (levels == 0) {
    if (va >> kPaBits) return make_error("address {:#x} is beyond the 56-bit physical address space", va);
    t.pa = va;
    t.page_size = riscv::kPageSize;
    return t;
  }
  // Bits above the VA width must equal its top bit (4.3.1 / 4.5.1).
  const unsigned va_bits = riscv::kPageShift + 9 * static_cast<unsigned>(levels);
  if ((static_cast<int64_t>(va << (64 - va_bits)) >> (64 - va_bits)) != static_cast<int64_t>(va)) {
    return make_error("{:#x} is not a canonical {} address", va, satp_mode_name(satp));
  }
  uint64_t table = (satp & sv::kSatpPpnMask) << riscv::kPageShift;
  // One step per level, at most five: a self-referencing table cannot make this loop.
  for (int level = levels - 1; level >= 0; --level) {
    const unsigned shift = riscv::kPageShift + 9 * static_cast<unsigned>(level);
    const uint64_t pte_addr = table + ((va >> shift) & 511) * 8;
    if (!m_mem->contains(pte_addr, 8)) {
      return make_error("translating {:#x}: the level-{} PTE at guest-physical {:#x} is outside guest RAM",
                        va, level, pte_addr);
    }
    // Aligned 8-byte load: a guest updating its PTE concurrently cannot tear it.
    const uint64_t pte =
        __atomic_load_n(reinterpret_cast<const uint64_t*>(m_mem->ptr(pte_addr)), __ATOMIC_ACQUIRE);
    if (!(pte & sv::kPteV)) {
      return make_error("{:#x} is not mapped (invalid level-{} PTE {:#x} at {:#x})", va, level, pte,
                        pte_addr);
    }
    if (!(pte & sv::kPteR) && (pte & sv::kPteW)) {
      return make_error("translating {:#x}: reserved PTE encoding W without R ({:#x} at {:#x})", va, pte,
                        pte_addr);
    }
    // Bits 63:54 (N, PBMT, reserved) must be zero: Vigil's harts implement neither Svnapot
    // nor Svpbmt and fault on them too (4.4.1).
    if (pte >> 54) {
      return make_error("translating {:#x}: PTE {:#x} at {:#x} sets reserved bits 63:54", va, pte, pte_addr);
    }
    const uint64_t ppn = (pte >> sv::kPtePpnShift) & sv::kPtePpnMask;
    if (!(pte & (sv::kPteR | sv::kPteX))) {
      if (level == 0) {
        return make_error("translating {:#x}: the level-0 PTE {:#x} at {:#x} points to another table", va,
                          pte, pte_addr);
      }
      table = ppn << riscv::kPageShift;
      continue;
    }
    if (level > 0 && (ppn & ((1ull << (9 * level)) - 1))) {
      return make_error("translating {:#x}: misaligned level-{} superpage (PTE {:#x} at {:#x})", va, level,
                        pte, pte_addr);
    }
    t.pa = (ppn << riscv::kPageShift) | (va & ((1ull << shift) - 1));
    t.level = static_cast<unsigned>(level);
    t.page_size = 1ull << shift;
    t.pte = pte;
    t.pte_pa = pte_addr;
    return t;
  }
  return make_error("translating {:#x}: no leaf PTE", va);  // unreachable: level 0 returns above
}

Result<void> GuestView::read_virt(uint64_t satp, uint64_t va, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t at = va + done;
    auto t = translate(satp, at);
    if (!t) return std::unexpected(t.error());
    const size_t chunk = std::min<uint64_t>(out.size() - done, riscv::kPageSize - (at & riscv::kPageMask));
    if (auto r = read_phys(t->pa, out.subspan(done, chunk)); !r) {
      return make_error("virtual {:#x} maps to guest-physical {:#x}, outside guest RAM", at, t->pa);
    }
    done += chunk;
  }
  return {};
}

Result<void> GuestView::write_virt(uint64_t satp, uint64_t va, std::span<const uint8_t> data) const {
  // Translate every page first: a write either happens whole or not at all.
  std::vector<std::pair<uint64_t, size_t>> pieces;
  size_t done = 0;
  while (done < data.size()) {
    const uint64_t at = va + done;
    auto t = translate(satp, at);
    if (!t) return std::unexpected(t.error());
    const size_t chunk = std::min<uint64_t>(data.size() - done, riscv::kPageSize - (at & riscv::kPageMask));
    if (!m_mem->contains(t->pa, chunk)) {
      return make_error("virtual {:#x} maps to guest-physical {:#x}, outside guest RAM", at, t->pa);
    }
    pieces.emplace_back(t->pa, chunk);
    done += chunk;
  }
  done = 0;
  for (auto [pa, len] : pieces) {
    if (auto r = write_phys(pa, data.subspan(done, len)); !r) return r;
    done += len;
  }
  return {};
}

Result<uint64_t> GuestView::read_virt_u64(uint64_t satp, uint64_t va) const {
  uint64_t v = 0;
  if (auto r = read_virt(satp, va, {reinterpret_cast<uint8_t*>(&v), sizeof(v)}); !r)
    return std::unexpected(r.error());
  return v;
}

Result<uint32_t> GuestView::read_virt_u32(uint64_t satp, uint64_t va) const {
  uint32_t v = 0;
  if (auto r = read_virt(satp, va, {reinterpret_cast<uint8_t*>(&v), sizeof(v)}); !r)
    return std::unexpected(r.error());
  return v;
}

Result<std::string> GuestView::read_virt_string(uint64_t satp, uint64_t va, size_t max_len) const {
  std::string s;
  uint8_t buf[64];
  while (s.size() < max_len) {
    // Never cross a page in one read: the next page may be unmapped while the string ends here.
    const size_t chunk = std::min<uint64_t>(
        {sizeof(buf), max_len - s.size(), riscv::kPageSize - ((va + s.size()) & riscv::kPageMask)});
    if (auto r = read_virt(satp, va + s.size(), {buf, chunk}); !r) return std::unexpected(r.error());
    const auto* nul = static_cast<const uint8_t*>(std::memchr(buf, 0, chunk));
    s.append(reinterpret_cast<const char*>(buf), nul ? static_cast<size_t>(nul - buf) : chunk);
    if (nul) break;
  }
  return s;
}

}  // namespace vigil::introspect
