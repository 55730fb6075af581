// Guest memory as a hypervisor sees it, from outside the guest (LibVMI's vmi_read_pa /
// vmi_read_va / vmi_pagetable_lookup): physical reads and writes on the domain's RAM, and
// guest-virtual ones through the guest's own page tables for any satp.
//
// The guest is hostile: every PTE and every pointer read from it is untrusted. A walk takes at
// most one step per paging level, so a page table that points at itself cannot loop; a PTE
// outside RAM, a reserved encoding or a misaligned superpage is a clear error naming the
// address, never a host access outside the guest's RAM. Accesses ignore the P2m rights and the
// PTE permission bits (the hypervisor's view), and never set A/D bits: they leave no trace in
// the guest.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "riscv/hart.h"

namespace vigil::introspect {

// satp MODE values and PTE bits (Privileged spec 4.1.11, 4.4.1).
namespace sv {
inline constexpr uint64_t kModeBare = 0, kModeSv39 = 8, kModeSv48 = 9, kModeSv57 = 10;
inline constexpr unsigned kModeShift = 60;
inline constexpr uint64_t kSatpPpnMask = (1ull << 44) - 1;
inline constexpr uint64_t kPteV = 1, kPteR = 2, kPteW = 4, kPteX = 8, kPteU = 16, kPteG = 32, kPteA = 64,
                          kPteD = 128;
inline constexpr unsigned kPtePpnShift = 10;
inline constexpr uint64_t kPtePpnMask = (1ull << 44) - 1;
}  // namespace sv

// satp for a root page table at physical address `root` (ASID 0).
inline uint64_t make_satp(uint64_t mode, uint64_t root) {
  return (mode << sv::kModeShift) | ((root >> riscv::kPageShift) & sv::kSatpPpnMask);
}
// "Sv39", "Sv48", "Bare" or "mode N".
std::string satp_mode_name(uint64_t satp);

struct Translation {
  uint64_t va = 0;
  uint64_t pa = 0;
  unsigned level = 0;      // level of the leaf PTE (0 = 4 KiB page, 1 = 2 MiB, 2 = 1 GiB, 3 = 512 GiB)
  uint64_t page_size = 0;  // bytes mapped by the leaf
  uint64_t pte = 0;        // the leaf PTE (0 for Bare)
  uint64_t pte_pa = 0;     // where the leaf PTE is
};

// Read and write access to one guest's RAM. Cheap to copy; does not own the memory.
class GuestView {
 public:
  explicit GuestView(riscv::GuestMemory& memory) : m_mem(&memory) {}

  riscv::GuestMemory& memory() const { return *m_mem; }

  // Physical memory: the whole range must lie in guest RAM.
  Result<void> read_phys(uint64_t pa, std::span<uint8_t> out) const;
  Result<void> write_phys(uint64_t pa, std::span<const uint8_t> data) const;
  Result<uint64_t> read_phys_u64(uint64_t pa) const;

  // Guest-virtual address -> guest-physical through the page tables `satp` names
  // (Privileged spec 4.3.2, with the Sv39/Sv48 formats of 4.4 and 4.5). Bare maps 1:1.
  Result<Translation> translate(uint64_t satp, uint64_t va) const;

  // Virtual memory through `satp`, page by page; fails (naming the address) at the first
  // unmapped page, so a partial read never returns stale bytes.
  Result<void> read_virt(uint64_t satp, uint64_t va, std::span<uint8_t> out) const;
  Result<void> write_virt(uint64_t satp, uint64_t va, std::span<const uint8_t> data) const;
  Result<uint64_t> read_virt_u64(uint64_t satp, uint64_t va) const;
  Result<uint32_t> read_virt_u32(uint64_t satp, uint64_t va) const;
  // A NUL-terminated string of at most `max_len` bytes (without the NUL).
  Result<std::string> read_virt_string(uint64_t satp, uint64_t va, size_t max_len) const;

 private:
  riscv::GuestMemory* m_mem;
};

}  // namespace vigil::introspect
